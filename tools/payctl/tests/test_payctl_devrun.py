"""payctl next to `make run`: the stores and the JWT secret from `.data/devrun.json` when nothing in
the environment names them, and `payctl token` for the notifier."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from payctl_testkit import PAYMENTS, payment_event, publish, run_payctl

from notifier.auth import AuthError, authenticate
from paystream.devrun_state import DevRunState, write_state
from paystream.events import EventType
from paystream_devstack.embedded import free_port

SECRET = "devrun-file-secret"


@pytest.fixture
def devrun_data(tmp_path: Path, redis_url: str, database_url: str) -> Path:
    """A `.data/devrun.json` as a running devrun (this process) leaves it; returns the checkout."""
    write_state(tmp_path / ".data", DevRunState(redis_url, database_url, SECRET, os.getpid()))
    return tmp_path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_payctl_finds_the_stores_of_a_running_devrun_from_a_subdirectory(
    devrun_data: Path, redis: aioredis.Redis
) -> None:
    await publish(redis, PAYMENTS, payment_event(EventType.PAYMENT_CREATED, "mer_a", "pay_1", "created"))
    below = devrun_data / "services" / "api"
    below.mkdir(parents=True)

    # No REDIS_URL, no PAYSTREAM_DATA_DIR: the nearest .data/ up from the working directory.
    result = await run_payctl("streams", PAYMENTS, "--json", env={"PAYSTREAM_DATA_DIR": ""}, cwd=below)

    assert result.returncode == 0, result.stderr
    [stream] = result.json()["streams"]
    assert (stream["stream"], stream["length"]) == (PAYMENTS, 1)


async def test_the_environment_wins_over_the_devrun_file(devrun_data: Path) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    env = {"PAYSTREAM_DATA_DIR": str(devrun_data / ".data"), "REDIS_URL": nowhere}

    result = await run_payctl("streams", env=env)

    assert result.returncode == 2
    assert result.stderr.startswith(f"payctl: cannot reach Redis at {nowhere}: ")


async def test_a_store_from_the_devrun_file_is_named_with_the_file_when_unreachable(
    tmp_path: Path, database_url: str
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    path = write_state(tmp_path, DevRunState(nowhere, database_url, SECRET, os.getpid()))

    result = await run_payctl("streams", env={"PAYSTREAM_DATA_DIR": str(tmp_path)})

    assert result.returncode == 2
    assert result.stderr.startswith(f"payctl: cannot reach Redis at {nowhere} (from {path}): ")


async def test_the_file_of_a_devrun_that_is_gone_is_ignored(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    write_state(tmp_path, DevRunState(redis_url, database_url, SECRET, dead_pid()))

    result = await run_payctl("streams", env={"PAYSTREAM_DATA_DIR": str(tmp_path)})
    token = await run_payctl("token", "--merchant", "mer_a", env={"PAYSTREAM_DATA_DIR": str(tmp_path)})

    assert result.returncode == 2
    assert result.stderr.strip() == "payctl: REDIS_URL is not set (or pass --redis-url)"
    assert token.returncode == 2
    assert "JWT_SECRET is not set" in token.stderr


async def test_token_is_accepted_by_the_notifier_and_signed_with_the_devrun_secret(
    devrun_data: Path,
) -> None:
    env = {"PAYSTREAM_DATA_DIR": str(devrun_data / ".data")}

    result = await run_payctl("token", "--merchant", "mer_test0000000001", "--salon", "salon_7", env=env)

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"  # the token alone: TOKEN=$(payctl token ...) works
    principal = authenticate(token, SECRET)
    assert (principal.merchant_id, principal.salon_id, principal.user_id) == (
        "mer_test0000000001",
        "salon_7",
        "payctl",
    )
    assert 3500 < principal.expires_at - time.time() <= 3600
    with pytest.raises(AuthError):
        authenticate(token, "another-secret")


async def test_token_prefers_jwt_secret_and_takes_a_ttl_and_a_user(devrun_data: Path) -> None:
    env = {"PAYSTREAM_DATA_DIR": str(devrun_data / ".data"), "JWT_SECRET": "from-the-environment"}

    result = await run_payctl(
        "token", "--merchant", "mer_b", "--user", "ops_1", "--ttl", "5m", "--json", env=env
    )

    assert result.returncode == 0, result.stderr
    body = result.json()
    principal = authenticate(body["token"], "from-the-environment")
    assert (principal.merchant_id, principal.salon_id, principal.user_id) == ("mer_b", None, "ops_1")
    assert 250 < principal.expires_at - time.time() <= 300
    assert (body["merchant_id"], body["salon_id"], body["sub"], body["ttl_s"]) == (
        "mer_b",
        None,
        "ops_1",
        300,
    )


@pytest.mark.parametrize("merchant", ["", "mer:a", "m" * 129])
async def test_token_refuses_an_id_the_notifier_would_refuse(merchant: str) -> None:
    result = await run_payctl("token", "--merchant", merchant, env={"JWT_SECRET": SECRET})

    assert result.returncode == 2
    assert result.stderr.startswith("payctl: cannot make the token: merchant must be 1 to 128 characters")
