"""The test merchant that `make run` and the tests use (idempotent)."""

from __future__ import annotations

from paystream.db import Connection
from paystream_api.auth import hash_secret

TEST_MERCHANT_ID = "mer_test0000000001"
TEST_MERCHANT_EMAIL = "test@example.com"
TEST_API_KEY = "key_test_abc123"
TEST_API_SECRET = "secret_test_xyz789"
TEST_WEBHOOK_SECRET = "whsec_test_abc123"


async def seed_test_merchant(conn: Connection) -> None:
    await conn.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ($1, 'Test Merchant', $2, $3, $4, $5)
           ON CONFLICT (id) DO NOTHING""",
        TEST_MERCHANT_ID,
        TEST_MERCHANT_EMAIL,
        TEST_API_KEY,
        hash_secret(TEST_API_SECRET),
        TEST_WEBHOOK_SECRET,
    )
