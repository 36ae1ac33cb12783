"""The bench's parameters: command-line flags into one frozen dataclass, recorded in the results."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCENARIOS: tuple[str, ...] = ("e2e", "dispatch", "create_payment", "ingest")
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class BenchParams:
    duration_s: float = 5.0
    warmup_s: float = 1.0
    rounds: int = 3
    concurrency: int = 64
    clients: int = 1
    e2e_rate: float = 500.0
    e2e_ladder: tuple[float, ...] = (250.0, 500.0, 1000.0, 1500.0, 2000.0)
    e2e_duration_s: float = 8.0
    e2e_sockets: int = 50
    dispatch_count: int = 10_000
    dispatch_concurrency: int = 32
    settle_timeout_s: float = 30.0
    only: tuple[str, ...] = SCENARIOS
    redis_db: int = 15
    allow_flush: bool = False
    processing_delay_ms: int = 0
    results_dir: Path = DEFAULT_RESULTS_DIR
    keep_workdir: bool = False
    # `--shards 1,2,3`: the shard-scaling run (bench.shards) instead of the scenarios.
    shards: tuple[int, ...] = ()
    shard_events: int = 20_000

    def to_record(self) -> dict[str, Any]:
        """The parameters as they go into latest.json."""
        record = asdict(self)
        record["only"] = list(self.only)
        record["e2e_ladder"] = list(self.e2e_ladder)
        record["results_dir"] = str(self.results_dir)
        record["shards"] = list(self.shards)
        return record


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {raw}")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {raw}")
    return value


def _rates(raw: str) -> tuple[float, ...]:
    try:
        rates = tuple(sorted({_positive_float(part) for part in raw.split(",") if part.strip()}))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"a comma-separated list of positive rates, got {raw!r}") from exc
    if not rates:
        raise argparse.ArgumentTypeError("at least one rate")
    return rates


def _shard_counts(raw: str) -> tuple[int, ...]:
    try:
        counts = tuple(sorted({_positive_int(part) for part in raw.split(",") if part.strip()}))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"a comma-separated list of shard counts, got {raw!r}") from exc
    if not counts:
        raise argparse.ArgumentTypeError("at least one shard count")
    return counts


def build_parser() -> argparse.ArgumentParser:
    defaults = BenchParams()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Boot Paystream on fresh stores, drive it from separate processes, print and "
        "record the figures beside the bare limits measured in the same run.",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=defaults.duration_s,
        help="seconds of each closed-loop run (default %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=defaults.warmup_s,
        help="seconds of unmeasured load before each closed-loop run (default %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        default=defaults.rounds,
        help="bare-baseline and ingest runs, alternated; the figures are their medians (default %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=defaults.concurrency,
        help="connections of the closed-loop client (default %(default)s)",
    )
    parser.add_argument(
        "--clients",
        type=_positive_int,
        default=defaults.clients,
        help="load-generator processes sharing those connections (default %(default)s)",
    )
    parser.add_argument(
        "--e2e-rate",
        type=_positive_float,
        default=defaults.e2e_rate,
        help="the headline rate of the e2e ladder: its p50/p99 are e2e_p50_ms/e2e_p99_ms, and the "
        "per-hop trace is taken there (default %(default)s)",
    )
    parser.add_argument(
        "--e2e-ladder",
        type=_rates,
        default=defaults.e2e_ladder,
        help="comma-separated webhook rates the e2e scenario climbs, stopping above the first one it "
        "cannot keep up with; the headline rate is always run (default 250,500,1000,1500,2000)",
    )
    parser.add_argument(
        "--e2e-duration",
        type=_positive_float,
        default=defaults.e2e_duration_s,
        help="seconds of each e2e rung (default %(default)s)",
    )
    parser.add_argument(
        "--e2e-sockets",
        type=_positive_int,
        default=defaults.e2e_sockets,
        help="Socket.IO clients sharing the e2e invoices (default %(default)s)",
    )
    parser.add_argument(
        "--dispatch-count",
        type=_positive_int,
        default=defaults.dispatch_count,
        help="payment events to deliver in the dispatch run (default %(default)s)",
    )
    parser.add_argument(
        "--dispatch-concurrency",
        type=_positive_int,
        default=defaults.dispatch_concurrency,
        help="connections of the raw client baseline against the receiver; the "
        "dispatcher's per-endpoint limit (default %(default)s)",
    )
    parser.add_argument(
        "--settle-timeout",
        type=_positive_float,
        default=defaults.settle_timeout_s,
        help="longest wait for the platform to drain between scenarios (default %(default)s)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SCENARIOS,
        default=list(defaults.only),
        metavar="SCENARIO",
        help=f"run only these scenarios ({', '.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        default=defaults.redis_db,
        help="with REDIS_URL set: the database number the bench takes (default %(default)s)",
    )
    parser.add_argument(
        "--allow-flush",
        action="store_true",
        help="with REDIS_URL set: FLUSHDB the bench's database even when it holds keys",
    )
    parser.add_argument(
        "--processing-delay",
        type=int,
        default=defaults.processing_delay_ms,
        help="TEST_PROCESSING_DELAY of the services in ms (default %(default)s)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=defaults.results_dir,
        help="where latest.json and latest.png go (default bench/results)",
    )
    parser.add_argument(
        "--shards",
        type=_shard_counts,
        default=defaults.shards,
        metavar="N,N,...",
        help="instead of the scenarios: the bus's throughput on a local Redis Cluster (three masters) "
        "with STREAM_SHARDS=N for each N, each master's Redis CPU and each shard's consumer rate "
        "(bench/shards.py; needs Debian's redis-server)",
    )
    parser.add_argument(
        "--shard-events",
        type=_positive_int,
        default=defaults.shard_events,
        help="events committed per shard count (default %(default)s)",
    )
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the temporary directory with the service logs and store data",
    )
    return parser


def parse_params(argv: Sequence[str] | None = None) -> BenchParams:
    args = build_parser().parse_args(argv)
    if not 0 <= args.redis_db <= 15:
        raise SystemExit("--redis-db must be between 0 and 15")
    return BenchParams(
        duration_s=args.duration,
        warmup_s=max(0.0, args.warmup),
        rounds=args.rounds,
        concurrency=args.concurrency,
        clients=min(args.clients, args.concurrency),
        e2e_rate=args.e2e_rate,
        e2e_ladder=tuple(sorted({*args.e2e_ladder, args.e2e_rate})),
        e2e_duration_s=args.e2e_duration,
        e2e_sockets=args.e2e_sockets,
        dispatch_count=args.dispatch_count,
        dispatch_concurrency=args.dispatch_concurrency,
        settle_timeout_s=args.settle_timeout,
        only=tuple(name for name in SCENARIOS if name in args.only),
        redis_db=args.redis_db,
        allow_flush=args.allow_flush,
        processing_delay_ms=max(0, args.processing_delay),
        results_dir=args.results_dir.resolve(),
        keep_workdir=args.keep_workdir,
        shards=args.shards,
        shard_events=args.shard_events,
    )
