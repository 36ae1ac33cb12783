"""Provider accounts: who may post webhooks, with which secret, for which merchant.

The webhook hot path never queries PostgreSQL for a secret: `AccountDirectory` keeps every active
account in memory, reloads it periodically, and reloads at once (at most once a second) when a
signature matches no known account, so a newly added account works without a restart while a flood
of forged requests costs at most one query a second.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from paystream.db import DATABASE_ERRORS, Connection
from paystream.logging import get_logger
from paystream.loops import Backoff, run_until_stopped
from paystream_api.seed import TEST_MERCHANT_ID
from paystream_api.settings import ApiSettings

log = get_logger(__name__)

RAZORPAY = "razorpay"
PAYABLE = "payable"

REFRESH_INTERVAL_S = 30.0
MISS_REFRESH_MIN_INTERVAL_S = 1.0

# The accounts `make run` and the tests seed for the test merchant; fixed ids keep seeding idempotent.
SEED_RAZORPAY_ACCOUNT = "pacc_test_razorpay"
SEED_PAYABLE_ACCOUNT = "pacc_test_payable"


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    id: str
    provider: str
    account_id: str | None
    merchant_id: str
    webhook_secret: bytes | None = field(repr=False)
    merchant_token_digest: str | None = field(repr=False)
    """PAYable: the upper-case hex SHA-512 of the merchant token, the last part of the checkValue."""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    razorpay_by_account: dict[str, tuple[ProviderAccount, ...]]
    razorpay_any_account: tuple[ProviderAccount, ...]
    payable_by_key: dict[str, ProviderAccount]


EMPTY = _Snapshot({}, (), {})


def token_digest(merchant_token: str) -> str:
    return hashlib.sha512(merchant_token.encode()).hexdigest().upper()


def _build(accounts: Sequence[ProviderAccount]) -> _Snapshot:
    by_account: dict[str, list[ProviderAccount]] = {}
    any_account: list[ProviderAccount] = []
    payable: dict[str, ProviderAccount] = {}
    for account in accounts:
        if account.provider == RAZORPAY:
            if account.account_id:
                by_account.setdefault(account.account_id, []).append(account)
            else:
                any_account.append(account)
        elif account.provider == PAYABLE and account.account_id:
            payable[account.account_id] = account
    return _Snapshot({key: tuple(value) for key, value in by_account.items()}, tuple(any_account), payable)


class AccountDirectory:
    """An in-memory copy of the active provider accounts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._snapshot = EMPTY
        self._last_load = float("-inf")
        self._reload_lock = asyncio.Lock()

    async def load(self) -> None:
        rows = await self._pool.fetch(
            """SELECT id, provider, account_id, merchant_id, webhook_secret, merchant_token
               FROM provider_accounts WHERE status = 'active'"""
        )
        accounts = [
            ProviderAccount(
                id=row["id"],
                provider=row["provider"],
                account_id=row["account_id"],
                merchant_id=row["merchant_id"],
                webhook_secret=row["webhook_secret"].encode() if row["webhook_secret"] else None,
                merchant_token_digest=token_digest(row["merchant_token"]) if row["merchant_token"] else None,
            )
            for row in rows
        ]
        self._snapshot = _build(accounts)
        self._last_load = asyncio.get_running_loop().time()

    def razorpay_candidates(self, account_hint: str | None) -> tuple[ProviderAccount, ...]:
        """The accounts whose secret may have signed a body naming `account_hint`: that account's,
        then those not bound to one Razorpay account id."""
        snapshot = self._snapshot
        named = snapshot.razorpay_by_account.get(account_hint, ()) if account_hint else ()
        return named + snapshot.razorpay_any_account

    def payable_account(self, merchant_key: str) -> ProviderAccount | None:
        return self._snapshot.payable_by_key.get(merchant_key)

    async def reload_after_miss(self) -> bool:
        """Reload when the last load is older than a second; True when the accounts were reloaded."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_load < MISS_REFRESH_MIN_INTERVAL_S:
            return False
        async with self._reload_lock:
            if loop.time() - self._last_load < MISS_REFRESH_MIN_INTERVAL_S:
                return True  # another request reloaded while this one waited
            try:
                await self.load()
            except DATABASE_ERRORS as exc:
                self._last_load = loop.time()  # do not hammer a failing database
                log.warning("provider_accounts.reload_failed", error=str(exc))
                return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Reload every REFRESH_INTERVAL_S until `stop`; failures keep the last good copy."""
        await run_until_stopped(
            "provider_accounts.reload",
            self.load,
            stop,
            interval_s=REFRESH_INTERVAL_S,
            first_wait_s=REFRESH_INTERVAL_S,  # loaded at start-up already
            retry_on=DATABASE_ERRORS,
            backoff=Backoff(cap_s=REFRESH_INTERVAL_S),
        )


async def seed_provider_accounts(
    conn: Connection,
    merchant_id: str,
    *,
    razorpay_webhook_secret: str,
    payable_merchant_key: str,
    payable_merchant_token: str,
) -> None:
    """One Razorpay and one PAYable account for the test merchant, from the settings (idempotent;
    changed settings update the seeded rows)."""
    await conn.execute(
        """INSERT INTO provider_accounts (id, provider, account_id, merchant_id, webhook_secret)
           VALUES ($1, 'razorpay', NULL, $2, $3)
           ON CONFLICT (id) DO UPDATE SET webhook_secret = EXCLUDED.webhook_secret, updated_at = now()
           WHERE provider_accounts.webhook_secret IS DISTINCT FROM EXCLUDED.webhook_secret""",
        SEED_RAZORPAY_ACCOUNT,
        merchant_id,
        razorpay_webhook_secret,
    )
    await conn.execute(
        """INSERT INTO provider_accounts (id, provider, account_id, merchant_id, merchant_token)
           VALUES ($1, 'payable', $2, $3, $4)
           ON CONFLICT (id) DO UPDATE
               SET account_id = EXCLUDED.account_id, merchant_token = EXCLUDED.merchant_token,
                   updated_at = now()
           WHERE (provider_accounts.account_id, provider_accounts.merchant_token)
                 IS DISTINCT FROM (EXCLUDED.account_id, EXCLUDED.merchant_token)""",
        SEED_PAYABLE_ACCOUNT,
        payable_merchant_key,
        merchant_id,
        payable_merchant_token,
    )


async def seed_test_provider_accounts(conn: Connection, settings: ApiSettings) -> None:
    """The test merchant's Razorpay and PAYable accounts, from RAZORPAY_WEBHOOK_SECRET,
    PAYABLE_MERCHANT_KEY and PAYABLE_MERCHANT_TOKEN (call after `seed_test_merchant`)."""
    await seed_provider_accounts(
        conn,
        TEST_MERCHANT_ID,
        razorpay_webhook_secret=settings.razorpay_webhook_secret,
        payable_merchant_key=settings.payable_merchant_key,
        payable_merchant_token=settings.payable_merchant_token,
    )
