"""The `payctl` command line: parsing, running one command, and turning failures into one line.

Stores: --redis-url / --database-url, else $REDIS_URL / $DATABASE_URL, else the URLs that a running
`make run` wrote to .data/devrun.json (looked for in $PAYSTREAM_DATA_DIR when set, else in .data/ of
the working directory or of one of its parents). `payctl token` signs with $JWT_SECRET, else with
the secret of that running `make run`.

Exit codes: 0 done (health: all well); 1 something needs attention (health), or what was asked for
does not exist or could not be done; 2 Redis or PostgreSQL unreachable, or a usage error; 130
interrupted (Ctrl-C ends `tail` with 0: that is how it is stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import asyncpg
from redis.exceptions import ResponseError

from payctl.commands import (
    claim,
    dlq,
    groups,
    health,
    pending,
    provider_events,
    replay,
    show,
    streams,
    tail,
    token,
)
from payctl.context import Context
from payctl.errors import EXIT_UNAVAILABLE, PayctlError
from payctl.render import Output
from payctl.settings import PayctlSettings
from payctl.stores import DATABASE_CONNECTION_ERRORS, REDIS_CONNECTION_ERRORS, Stores
from paystream.devrun_state import find_state
from paystream.errors import SettingsError

COMMANDS = (streams, groups, pending, tail, show, dlq, claim, replay, provider_events, health, token)
_REDIS_URL_HELP = "default: $REDIS_URL, else that of a running `make run` (.data/devrun.json)"
_DATABASE_URL_HELP = "default: $DATABASE_URL, else that of a running `make run` (.data/devrun.json)"
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


def build_parser() -> argparse.ArgumentParser:
    # The common options are accepted before or after the command; SUPPRESS keeps a sub-parser
    # from overwriting a value given before the command with its default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output, for machines"
    )
    common.add_argument("--redis-url", default=argparse.SUPPRESS, help=_REDIS_URL_HELP)
    common.add_argument("--database-url", default=argparse.SUPPRESS, help=_DATABASE_URL_HELP)
    parser = argparse.ArgumentParser(
        prog="payctl",
        description="Paystream's operators' CLI: streams, consumer groups, pending entries, dead letters.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", default=False, help="JSON output, for machines")
    parser.add_argument("--redis-url", default=None, help=_REDIS_URL_HELP)
    parser.add_argument("--database-url", default=None, help=_DATABASE_URL_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers, [common])
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = PayctlSettings.from_env(
            redis_url=args.redis_url, database_url=args.database_url, devrun=find_state(os.environ)
        )
    except SettingsError as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    out = Output(json_mode=args.json)
    try:
        return asyncio.run(_run_command(args, settings, out))
    except PayctlError as exc:
        return _fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        return 0 if args.command == "tail" else EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`payctl tail | head`): stop quietly, and keep the interpreter's
        # final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if os.environ.get("PAYCTL_DEBUG"):
            raise
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (set PAYCTL_DEBUG=1 for details)", EXIT_INTERNAL
        )


async def _run_command(args: argparse.Namespace, settings: PayctlSettings, out: Output) -> int:
    stores = Stores(settings)
    ctx = Context(settings=settings, stores=stores, out=out)
    try:
        exit_code: int = await args.handler(args, ctx)
        return exit_code
    except REDIS_CONNECTION_ERRORS as exc:
        stores.redis_unavailable(exc)
    except DATABASE_CONNECTION_ERRORS as exc:
        stores.database_unavailable(exc)
    except ResponseError as exc:
        raise PayctlError(f"Redis refused a command: {exc}") from None
    except asyncpg.PostgresError as exc:
        raise PayctlError(f"PostgreSQL error: {' '.join(str(exc).split())}") from None
    finally:
        await stores.close()


def _fail(message: str, exit_code: int) -> int:
    print(f"payctl: {message}", file=sys.stderr)
    return exit_code
