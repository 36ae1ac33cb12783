"""The scenarios, in the order they run.

e2e and dispatch go first, on a quiet platform; then create_payment (with the bare HTTP baseline
right before it when ingest does not run: ingest measures the baseline itself, in rounds alternated
with its own runs, and create_payment's ratio then divides by that median); ingest last, since the
backlog it leaves for the payment processor would take minutes to drain and no later scenario then
has to wait for it. Before each scenario the harness waits for the previous one's work to drain
(`bench.quiesce`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.context import BenchContext, ScenarioResult
from bench.params import BenchParams
from bench.scenarios import create_payment, dispatch, e2e, http_baseline, ingest

Runner = Callable[[BenchContext], Awaitable[ScenarioResult]]

ORDER: tuple[tuple[str, Runner], ...] = (
    (e2e.NAME, e2e.run),
    (dispatch.NAME, dispatch.run),
    (http_baseline.NAME, http_baseline.run),
    (create_payment.NAME, create_payment.run),
    (ingest.NAME, ingest.run),
)


def selected(params: BenchParams) -> list[tuple[str, Runner]]:
    """The scenarios `--only` asks for, plus the HTTP baseline whenever a ratio needs it (ingest
    measures its own, in rounds alternated with its runs)."""
    wanted = set(params.only)
    if create_payment.NAME in wanted and ingest.NAME not in wanted:
        wanted.add(http_baseline.NAME)
    return [(name, runner) for name, runner in ORDER if name in wanted]
