"""`payctl token --merchant ID [--salon ID]`: a token for the notifier's Socket.IO handshake, to try
it by hand (`auth: {token}` or `Authorization: Bearer <token>`).

Signed (HS256) with $JWT_SECRET, else with the secret of the `make run` running here. Prints the
token alone, so that `TOKEN=$(payctl token --merchant mer_test0000000001)` works."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from payctl.args import duration_arg
from payctl.context import Context
from payctl.errors import EXIT_UNAVAILABLE, PayctlError
from paystream.notifier_tokens import mint_notifier_token


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "token",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="a notifier (Socket.IO) token for a merchant, to try it by hand",
    )
    parser.add_argument("--merchant", required=True, metavar="ID", help="the token's merchant_id")
    parser.add_argument("--salon", metavar="ID", help="a salon_id: the token sees only that salon")
    parser.add_argument("--user", default="payctl", metavar="ID", help="the token's sub (payctl)")
    parser.add_argument(
        "--ttl", type=duration_arg, default=3600.0, metavar="DURATION", help="how long it is valid (1h)"
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, ctx: Context) -> int:
    secret = ctx.settings.require_jwt_secret()
    try:
        now = time.time()
        token = mint_notifier_token(
            secret, merchant_id=args.merchant, salon_id=args.salon, subject=args.user, ttl_s=args.ttl, now=now
        )
        expires_at = int(now) + int(args.ttl)
    except ValueError as exc:
        raise PayctlError(f"cannot make the token: {exc}", exit_code=EXIT_UNAVAILABLE) from None
    payload = {
        "token": token,
        "merchant_id": args.merchant,
        "salon_id": args.salon,
        "sub": args.user,
        "expires_at": datetime.fromtimestamp(expires_at, UTC),
        "ttl_s": args.ttl,
    }
    ctx.out.result(payload, token)
    return 0
