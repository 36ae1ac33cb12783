"""Unreachable stores and bad input end in one line on stderr and a documented exit code."""

from __future__ import annotations

from payctl_testkit import PAYMENTS, Payctl, run_payctl

from paystream_devstack.embedded import free_port


async def test_unreachable_redis_is_one_line_and_exit_2() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    for args in (["streams"], ["groups", "--json"], ["health", "--services", ""], ["tail", PAYMENTS]):
        result = await run_payctl(*args, env={"REDIS_URL": url})

        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith(f"payctl: cannot reach Redis at {url}: "), line
        assert "Traceback" not in result.stderr


async def test_unreachable_postgres_is_one_line_without_the_password(redis_url: str) -> None:
    url = f"postgresql://ops:s3cret-pw@127.0.0.1:{free_port()}/paystream"

    result = await run_payctl("replay", "--since", "1h", env={"REDIS_URL": redis_url, "DATABASE_URL": url})

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("payctl: cannot reach PostgreSQL at postgresql://ops:***@127.0.0.1:"), line
    assert "s3cret-pw" not in result.stderr


async def test_missing_redis_url_names_the_variable() -> None:
    result = await run_payctl("streams", env={})

    assert result.returncode == 2
    assert result.stderr.strip() == "payctl: REDIS_URL is not set (or pass --redis-url)"


async def test_flags_override_the_environment(redis_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"

    result = await run_payctl("--json", "streams", "--redis-url", redis_url, env={"REDIS_URL": dead})

    assert result.returncode == 0, result.stderr


async def test_bad_duration_is_a_usage_error(payctl: Payctl) -> None:
    result = await payctl("pending", PAYMENTS, "g", "--idle", "soon")

    assert result.returncode == 2
    assert "not a duration: 'soon'" in result.stderr
