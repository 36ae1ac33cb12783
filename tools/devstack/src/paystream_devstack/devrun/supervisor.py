"""Runs services as child processes: prefixes their output, restarts the ones that die, stops them all.

Each child leads its own process group (a new session), so that a terminal's Ctrl-C reaches only the
supervisor, which then stops the children itself, and so that signalling the group also reaches
whatever a child started.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from paystream_devstack.devrun.config import ServiceSpec

SUPERVISOR_NAME = "devrun"
_LINE_LIMIT = 1 << 20
_PR_SET_PDEATHSIG = 1
_OUTPUT_DRAIN_TIMEOUT = 1.0

PreexecFn = Callable[[], None]


def parent_death_signal(sig: signal.Signals) -> PreexecFn | None:
    """A `preexec_fn` asking Linux to send `sig` to the child when this process dies, even by SIGKILL.

    The kernel ties the setting to the thread that forked the child: spawn from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            os.kill(os.getpid(), sig)

    return die_with_parent


class PrefixedOutput:
    """Writes whole lines to one stream, each prefixed with the name of the process it came from."""

    def __init__(self, names: Iterable[str], stream: TextIO | None = None) -> None:
        self._width = max(len(name) for name in [*names, SUPERVISOR_NAME])
        self._stream = stream or sys.stdout

    def line(self, name: str, text: str) -> None:
        self._stream.write(f"{name:<{self._width}} | {text}\n")
        self._stream.flush()

    def note(self, text: str) -> None:
        """A line from the supervisor itself."""
        self.line(SUPERVISOR_NAME, text)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: `initial` doubling up to `maximum`, back to `initial` after a stable run."""

    initial: float = 1.0
    maximum: float = 30.0
    reset_after: float = 30.0

    def next_delay(self, previous: float | None, uptime: float) -> float:
        if previous is None or uptime >= self.reset_after:
            return self.initial
        return min(previous * 2, self.maximum)


class _ChildProtocol(asyncio.SubprocessProtocol):
    """Splits a child's output into lines, and tells when the child itself has exited.

    `Process.wait()` would also wait for the output pipe to close, which a grandchild holding it open
    delays forever; `process_exited` does not.
    """

    def __init__(self, emit_line: Callable[[bytes], None]) -> None:
        self._emit_line = emit_line
        self._pending = bytearray()
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._pending += data
        *lines, rest = self._pending.split(b"\n")
        for line in lines:
            self._emit_line(bytes(line))
        if len(rest) > _LINE_LIMIT:  # an endless line: show it in pieces rather than hold it all
            self._emit_line(bytes(rest))
            rest = bytearray()
        self._pending = rest

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self._pending:
            self._emit_line(bytes(self._pending))
            self._pending = bytearray()
        _resolve(self.output_closed)

    def process_exited(self) -> None:
        _resolve(self.exited)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Child:
    """One service: started, watched and restarted until asked to stop."""

    def __init__(
        self,
        spec: ServiceSpec,
        env: Mapping[str, str],
        output: PrefixedOutput,
        backoff: Backoff,
        preexec_fn: PreexecFn | None,
    ) -> None:
        self.spec = spec
        self._env = dict(env)
        self._output = output
        self._backoff = backoff
        self._preexec_fn = preexec_fn
        self._transport: asyncio.SubprocessTransport | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._transport is not None and self._transport.get_returncode() is None

    async def keep_running(self) -> None:
        delay: float | None = None
        while not self._stopping.is_set():
            started = time.monotonic()
            outcome = await self._run_once()
            if self._stopping.is_set():
                self._output.note(f"{self.spec.name} stopped ({outcome})")
                return
            delay = self._backoff.next_delay(delay, time.monotonic() - started)
            self._output.note(f"{self.spec.name} {outcome}; restarting in {delay:.1f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self) -> str:
        """Start the child and wait for it to exit; say how it ended."""
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ChildProtocol(self._emit),
                *self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                preexec_fn=self._preexec_fn,
            )
        except OSError as error:
            return f"could not start: {error}"
        self._transport = transport
        try:
            if self._stopping.is_set():
                self.signal_group(signal.SIGTERM)
            await protocol.exited
            # Whatever the child started and left behind goes with it.
            self.signal_group(signal.SIGKILL)
            # Show the last lines; a grandchild that left the group may hold the pipe open, so not forever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.output_closed), _OUTPUT_DRAIN_TIMEOUT)
            return f"exited with code {transport.get_returncode()}"
        finally:
            transport.close()

    def _emit(self, line: bytes) -> None:
        self._output.line(self.spec.name, line.decode(errors="replace").rstrip("\r"))

    def request_stop(self) -> None:
        self._stopping.set()
        if self.running:
            self.signal_group(signal.SIGTERM)

    def signal_group(self, sig: signal.Signals) -> None:
        if self._transport is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._transport.get_pid(), sig)


class Supervisor:
    """Keeps a set of services running until told to stop, then stops them within a deadline."""

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        env: Mapping[str, str],
        output: PrefixedOutput,
        *,
        backoff: Backoff | None = None,
        preexec_fn: PreexecFn | None = None,
    ) -> None:
        self._output = output
        self._children = [_Child(spec, env, output, backoff or Backoff(), preexec_fn) for spec in services]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(child.keep_running(), name=f"devrun-{child.spec.name}")
            for child in self._children
        ]

    async def run_until(self, stop: asyncio.Event, force: asyncio.Event, stop_timeout: float) -> None:
        """Run until `stop` is set, then SIGTERM every child, and SIGKILL the ones still running after
        `stop_timeout` seconds or as soon as `force` is set."""
        if not self._tasks:
            self.start()
        try:
            await stop.wait()
        finally:
            await self._shutdown(force, stop_timeout)

    async def _shutdown(self, force: asyncio.Event, stop_timeout: float) -> None:
        self._output.note(f"stopping the services (SIGKILL after {stop_timeout:g}s)")
        for child in self._children:
            child.request_stop()
        all_stopped = asyncio.gather(*self._tasks)
        forced = asyncio.create_task(force.wait())
        try:
            waiters: list[asyncio.Future[Any]] = [all_stopped, forced]
            await asyncio.wait(waiters, timeout=stop_timeout, return_when=asyncio.FIRST_COMPLETED)
            for child in self._children:
                if child.running:
                    self._output.note(f"{child.spec.name} did not stop in time: killing it")
                    child.signal_group(signal.SIGKILL)
            await all_stopped
        finally:
            forced.cancel()
