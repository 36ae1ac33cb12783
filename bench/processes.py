"""The bench's child processes: started in their own session, tied to the bench's life, always stopped.

Each child leads a new session, so a terminal's Ctrl-C reaches only the bench, which then stops the
children in order (services before the stores they use). Each also asks Linux for SIGTERM should the
bench die without stopping it (even by SIGKILL), so no run leaves a process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from paystream_devstack.devrun.supervisor import parent_death_signal


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait(self, timeout: float) -> int:
        """The exit code, waiting without blocking the event loop; TimeoutError past `timeout`."""
        if self.process.poll() is None:
            async with asyncio.timeout(timeout):
                await _exited(self.process.pid)
        return self.process.wait()

    def terminate(self) -> None:
        """SIGTERM the child's process group (once: a second SIGTERM cuts a graceful stop short)."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)

    def reap(self, timeout: float) -> None:
        """Wait for the child to exit; SIGKILL its process group past `timeout`."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its connections but does no work until `resume()`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL what is left after `timeout`."""
        self.terminate()
        self.reap(timeout)


async def _exited(pid: int) -> None:
    """Return once process `pid` (a child of ours) has exited: its pidfd turns readable then."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    exited = asyncio.Event()
    loop.add_reader(fd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


@dataclass
class Children:
    """Every process the bench started, stopped in reverse order of start."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def python(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        """`python <args>` with this interpreter, its output in `<log_dir>/<name>.log`."""
        return self.spawn(name, [sys.executable, *args], env)

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                list(argv),
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=parent_death_signal(signal.SIGTERM),
            )
        child = Child(name, process, log_path)
        self.started.append(child)
        return child

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM everything still running at once, then wait for each (SIGKILL past `timeout`)."""
        running = [child for child in reversed(self.started) if child.running()]
        for child in running:
            child.terminate()
        for child in running:
            child.reap(timeout)


HEALTH_TIMEOUT_S = 90.0


async def wait_healthy(child: Child, base_url: str) -> None:
    """Until `base_url/health` answers 200; fails at once if the child exits, or after HEALTH_TIMEOUT_S."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while True:
            if not child.running():
                raise RuntimeError(f"{child.name} exited at start-up:\n{child.tail()}")
            try:
                async with session.get(
                    f"{base_url}/health", timeout=aiohttp.ClientTimeout(total=2)
                ) as answer:
                    if answer.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{child.name} not healthy within {HEALTH_TIMEOUT_S:.0f}s:\n{child.tail()}"
                )
            await asyncio.sleep(0.1)
