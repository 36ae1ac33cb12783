"""`python -m paystream_devstack.devrun`: settings, restart policy, and a real run with stand-in services."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import re
import signal
import socket
import stat
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil
import pytest
import redis.asyncio as aioredis

from paystream.devrun_state import STATE_FILE, find_state
from paystream.errors import SettingsError
from paystream.settings import CommonSettings
from paystream.web import serve
from paystream_devstack.devrun.__main__ import banner
from paystream_devstack.devrun.config import (
    DEV_DEFAULTS,
    HOST_DEFAULTS,
    DevRunSettings,
    SeedMerchant,
    default_services,
    service_environment,
    services_from_json,
)
from paystream_devstack.devrun.servers import StoreUrls
from paystream_devstack.devrun.supervisor import Backoff
from paystream_devstack.embedded import free_port
from paystream_devstack.testing.polling import eventually

# A service stand-in: reports its environment, starts a grandchild in its process group, and on SIGTERM
# stops it and exits, except "stubborn", which ignores SIGTERM so that devrun has to SIGKILL it.
STAND_IN = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    name = sys.argv[1]
    grandchild = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    print(
        f"{name} up pid={os.getpid()} grandchild={grandchild.pid} "
        f"redis={os.environ['REDIS_URL']} test_mode={os.environ['TEST_MODE']}",
        flush=True,
    )
    def stop(*_):
        grandchild.terminate()
        sys.exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if name == "stubborn" else stop)
    while True:
        signal.pause()
    """
)


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0, reset_after=30.0)
    delays: list[float] = []
    previous: float | None = None
    for _ in range(7):
        previous = backoff.next_delay(previous, uptime=0.5)
        delays.append(previous)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.next_delay(30.0, uptime=31.0) == 1.0


def test_service_environment_fills_defaults_and_keeps_what_is_set() -> None:
    environ = {"PATH": "/usr/bin", "JWT_SECRET": "mine", "API_PORT": "9000", "TEST_MODE": ""}
    env = service_environment(environ, "redis://127.0.0.1:1/0", "postgresql://postgres@127.0.0.1:2/x")

    assert env["JWT_SECRET"] == "mine"
    assert env["API_PORT"] == "9000"
    assert env["NOTIFIER_PORT"] == "8080"
    assert env["TEST_MODE"] == "true"  # empty counts as unset
    assert env["RAZORPAY_WEBHOOK_SECRET"] == DEV_DEFAULTS["RAZORPAY_WEBHOOK_SECRET"]
    assert env["REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert env["PATH"] == "/usr/bin"


def test_service_environment_rejects_a_bad_port() -> None:
    with pytest.raises(SettingsError, match="PROCESSOR_PORT"):
        service_environment({"PROCESSOR_PORT": "eighty"}, "redis://r", "postgresql://p")


# Each service's host variable, and the settings class that reads it.
SERVICE_SETTINGS = {
    "API_HOST": ("paystream_api.settings", "ApiSettings"),
    "PROCESSOR_HOST": ("payment_processor.settings", "ProcessorSettings"),
    "DISPATCHER_HOST": ("webhook_dispatcher.settings", "DispatcherSettings"),
    "NOTIFIER_HOST": ("notifier.settings", "NotifierSettings"),
}


def _settings_class(variable: str) -> Any:
    module, name = SERVICE_SETTINGS[variable]
    return getattr(importlib.import_module(module), name)


def test_make_run_listens_on_loopback_and_sends_webhooks_to_loopback_only() -> None:
    env = service_environment({}, "redis://127.0.0.1:1/0", "postgresql://postgres@127.0.0.1:2/x")

    assert set(HOST_DEFAULTS) == set(SERVICE_SETTINGS)
    assert {variable: env[variable] for variable in SERVICE_SETTINGS} == dict.fromkeys(
        SERVICE_SETTINGS, "127.0.0.1"
    )
    for variable in SERVICE_SETTINGS:
        assert _settings_class(variable).from_env(env).host == "127.0.0.1", variable
    policy = CommonSettings.from_env(env).outbound.policy
    for address in ("127.0.0.1", "::1"):
        assert policy.refusal(address) is None, address
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "10.0.0.1", "192.168.1.1"):
        assert policy.refusal(address) is not None, address


def test_a_host_set_for_make_run_is_kept() -> None:
    env = service_environment({"API_HOST": "0.0.0.0"}, "redis://r", "postgresql://p")
    assert env["API_HOST"] == "0.0.0.0" and env["NOTIFIER_HOST"] == "127.0.0.1"


def test_services_listen_on_loopback_unless_told_otherwise() -> None:
    # Production settings (no TEST_MODE): binding every interface is the deployment's explicit choice.
    environ = {
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:2/x",
        "JWT_SECRET": "a-production-length-secret-0123456789abcdef",
        "FRONTEND_ORIGINS": "https://pos.example.com",
    }
    for variable in SERVICE_SETTINGS:
        settings_class = _settings_class(variable)
        assert settings_class.from_env(environ).host == "127.0.0.1", variable
        assert settings_class.from_env({**environ, variable: "0.0.0.0"}).host == "0.0.0.0", variable
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


def test_default_services_run_each_package_with_this_interpreter() -> None:
    argvs = {service.name: service.argv for service in default_services()}
    assert argvs == {
        "api": (sys.executable, "-m", "paystream_api"),
        "processor": (sys.executable, "-m", "payment_processor"),
        "dispatcher": (sys.executable, "-m", "webhook_dispatcher"),
        "notifier": (sys.executable, "-m", "notifier"),
    }


@pytest.mark.parametrize("raw", ["not json", "[]", "{}", '{"api": []}', '{"api": "python"}', '{"api": [1]}'])
def test_commands_override_must_be_an_object_of_argv_lists(raw: str) -> None:
    with pytest.raises(SettingsError, match="PAYSTREAM_DEVRUN_COMMANDS"):
        services_from_json(raw)


def test_settings_prefer_ports_clear_of_a_local_redis_and_postgres(tmp_path: Path) -> None:
    settings = DevRunSettings.from_env({"PAYSTREAM_DATA_DIR": str(tmp_path)})
    assert (settings.redis_port, settings.postgres_port) == (6380, 5433)
    assert settings.data_dir == tmp_path
    assert settings.redis_url is None and settings.database_url is None


def test_banner_shows_urls_and_credentials_but_no_database_password() -> None:
    env = service_environment({}, "redis://127.0.0.1:6380/0", "postgresql://u:hunter2@db:5432/paystream")
    urls = StoreUrls(env["REDIS_URL"], env["DATABASE_URL"], redis_embedded=True, postgres_embedded=False)
    text = "\n".join(banner(env, urls))

    assert "http://127.0.0.1:8000" in text and "http://127.0.0.1:8080" in text
    assert "http://127.0.0.1:8000/demo" in text
    assert "postgresql://u:***@db:5432/paystream" in text and "hunter2" not in text
    assert "key_test_abc123" in text and "rzp_webhook_secret_test" in text


def test_banner_gives_a_notifier_token_its_command_and_both_store_urls(tmp_path: Path) -> None:
    auth = pytest.importorskip("notifier.auth")
    env = service_environment(
        {}, "redis://127.0.0.1:6380/0", "postgresql://postgres@127.0.0.1:5433/paystream"
    )
    urls = StoreUrls(env["REDIS_URL"], env["DATABASE_URL"], redis_embedded=True, postgres_embedded=True)
    lines = banner(env, urls, tmp_path / STATE_FILE)

    token = next(line.split()[2] for line in lines if line.strip().startswith("Notifier JWT"))
    principal = auth.authenticate(token, DEV_DEFAULTS["JWT_SECRET"])
    assert principal.merchant_id == SeedMerchant().merchant_id
    assert any(
        line.strip().endswith(
            f".venv/bin/payctl token --merchant {principal.merchant_id} [--salon ID] [--ttl 1h]"
        )
        for line in lines
    )
    assert "  REDIS_URL=redis://127.0.0.1:6380/0" in lines
    assert "  DATABASE_URL=postgresql://postgres@127.0.0.1:5433/paystream" in lines


def test_printed_merchant_id_is_the_seeded_one() -> None:
    seed = pytest.importorskip("paystream_api.seed")
    assert SeedMerchant().merchant_id == seed.TEST_MERCHANT_ID


def _time_wait_port() -> int:
    """A port whose server just closed a connection first, as a stopping server does: the server's
    end of it lingers in TIME-WAIT on the port. The listener sets SO_REUSEADDR, as redis-server and
    PostgreSQL do."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            served, _ = listener.accept()
            served.close()
            assert client.recv(1) == b""  # the server's FIN has arrived
    return port


def test_the_preferred_port_survives_time_wait_sockets_of_the_last_run() -> None:
    port = _time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the old probe did: the port looked taken

    assert free_port(port) == port


def test_a_preferred_port_something_listens_on_is_not_used() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert free_port(port) != port


def test_printed_credentials_are_the_seeded_merchant() -> None:
    seed = pytest.importorskip("paystream_api.seed")
    merchant = SeedMerchant()
    assert (merchant.email, merchant.api_key, merchant.api_secret, merchant.webhook_secret) == (
        seed.TEST_MERCHANT_EMAIL,
        seed.TEST_API_KEY,
        seed.TEST_API_SECRET,
        seed.TEST_WEBHOOK_SECRET,
    )


@dataclass
class DevRun:
    """A running `python -m paystream_devstack.devrun` and every line it has printed so far."""

    process: asyncio.subprocess.Process
    data_dir: str
    lines: list[str] = field(default_factory=list)

    async def read_output(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 20.0) -> re.Match[str]:
        """The first line from index `after` on that matches `pattern`."""
        regex = re.compile(pattern)

        def probe() -> re.Match[str] | None:
            return next((m for line in self.lines[after:] if (m := regex.search(line))), None)

        try:
            return await eventually(probe, timeout=timeout, message=f"no line matching {pattern!r}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- devrun output ---\n" + "\n".join(self.lines)) from None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
async def start_devrun(tmp_path: Path) -> AsyncIterator[Callable[[Sequence[str]], Awaitable[DevRun]]]:
    """Factory: `await start_devrun(["api", "stubborn"])` runs devrun with those stand-in services;
    whatever it started is stopped at the end of the test."""
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text(STAND_IN)
    started: list[tuple[DevRun, asyncio.Task[None]]] = []

    async def start(names: Sequence[str]) -> DevRun:
        commands = {name: [sys.executable, str(stand_in), name] for name in names}
        env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
        data_dir = str(tmp_path / f"data-{len(started)}")
        env |= {
            "PAYSTREAM_DATA_DIR": data_dir,
            "PAYSTREAM_DEVRUN_REDIS_PORT": "0",
            "PAYSTREAM_DEVRUN_POSTGRES_PORT": "0",
            "PAYSTREAM_DEVRUN_STOP_TIMEOUT": "1.5",
            "PAYSTREAM_DEVRUN_COMMANDS": orjson.dumps(commands).decode(),
            "API_PORT": str(free_port()),
            "NOTIFIER_PORT": str(free_port()),
            "PROCESSOR_PORT": str(free_port()),
            "DISPATCHER_PORT": str(free_port()),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "paystream_devstack.devrun",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        run = DevRun(process, data_dir)
        started.append((run, asyncio.create_task(run.read_output())))
        return run

    yield start
    for run, reader in started:
        if run.process.returncode is None:
            run.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(run.process.wait(), 30)
            except TimeoutError:
                run.process.kill()  # its children get their parent-death signal
                await run.process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 5)
        reader.cancel()


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_devrun_supervises_services_and_leaves_nothing_behind(
    start_devrun: Callable[[Sequence[str]], Awaitable[DevRun]],
) -> None:
    devrun = await start_devrun(["api", "processor", "stubborn"])
    redis_url = (await devrun.wait_for(r"Redis\s+(redis://\S+) \(embedded\)"))[1]
    database_url = (await devrun.wait_for(r"PostgreSQL\s+(postgresql://\S+) \(embedded\)"))[1]
    await devrun.wait_for(rf"^devrun\s+\|   REDIS_URL={re.escape(redis_url)}$")
    await devrun.wait_for(rf"^devrun\s+\|   DATABASE_URL={re.escape(database_url)}$")
    # The file that lets payctl find the stores: this devrun's, readable by its owner only.
    state = find_state({"PAYSTREAM_DATA_DIR": devrun.data_dir})
    assert state is not None and state.path is not None
    assert (state.redis_url, state.database_url, state.pid) == (redis_url, database_url, devrun.process.pid)
    assert state.jwt_secret == DEV_DEFAULTS["JWT_SECRET"]
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    await devrun.wait_for(r"API\s+http://127\.0\.0\.1:\d+")
    await devrun.wait_for(r"Notifier\s+http://127\.0\.0\.1:\d+")
    await devrun.wait_for(r"API key\s+key_test_abc123")
    for name in ("api", "processor", "stubborn"):
        started = await devrun.wait_for(rf"^{name}\s+\| {name} up pid=\d+ .*redis=(\S+) test_mode=(\S+)")
        assert started.groups() == (redis_url, "true")

    # The embedded stores answer, and the migrations ran.
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
    finally:
        await conn.close()

    # A service killed outright is restarted, and the log says so; what it had started goes with it.
    first = await devrun.wait_for(r"^processor\s+\| processor up pid=(\d+) grandchild=(\d+)")
    crashed_pid, orphan_pid = int(first[1]), int(first[2])
    orphan = psutil.Process(orphan_pid)
    mark = len(devrun.lines)
    os.kill(crashed_pid, signal.SIGKILL)
    await devrun.wait_for(r"processor exited with code -9; restarting in 1\.0s", after=mark)
    restarted = await devrun.wait_for(r"^processor\s+\| processor up pid=(\d+)", after=mark)
    assert int(restarted[1]) != crashed_pid
    await eventually(lambda: not _alive(orphan), timeout=5, message="the crashed service's child lingers")

    # Ctrl-C stops everything: services (and their children), Redis and PostgreSQL.
    descendants = psutil.Process(devrun.process.pid).children(recursive=True)
    described = [f"{process.pid} {process.name()}" for process in descendants]
    assert {"redis-server", "postgres"} <= {process.name() for process in descendants}, described
    devrun.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(devrun.process.wait(), 30) == 0
    await devrun.wait_for(r"stubborn did not stop in time: killing it")
    await devrun.wait_for(r"devrun\s+\| stopped$")
    assert not state.path.exists(), "devrun leaves its state file behind"
    await eventually(
        lambda: not [process for process in descendants if _alive(process)],
        timeout=5,
        message=f"devrun left some of {described} behind",
    )


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_everything_devrun_started_dies_with_it(
    start_devrun: Callable[[Sequence[str]], Awaitable[DevRun]],
) -> None:
    devrun = await start_devrun(["api", "processor"])
    for name in ("api", "processor"):
        await devrun.wait_for(rf"^{name}\s+\| {name} up pid=")
    descendants = psutil.Process(devrun.process.pid).children(recursive=True)
    described = [f"{process.pid} {process.name()}" for process in descendants]
    assert {"redis-server", "postgres"} <= {process.name() for process in descendants}, described

    devrun.process.kill()

    await eventually(
        lambda: not [process for process in descendants if _alive(process)],
        timeout=15,
        message=f"a SIGKILLed devrun left some of {described} behind",
    )
