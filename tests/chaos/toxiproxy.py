"""An in-test TCP proxy that injects network faults, in the spirit of Shopify's toxiproxy (which is
not packaged here): point a service's `REDIS_URL` at `proxy.redis_url` and the proxy forwards to
the real server, except that it can

- delay every chunk by a fixed latency, in both directions, without limiting throughput;
- blackhole: keep every connection open (and accept new ones) but silently drop what is sent
  either way, as a network partition or a dead NAT mapping does; `heal()` forwards again, but
  whatever was dropped stays lost, so a client waiting on a reply must notice on its own;
- reset every open connection with a TCP RST, as a crashing middlebox or a failover does.

The proxy runs its own event loop on its own thread: the "network" keeps moving while the test's
loop is busy or blocked (a synchronous process stop, say), as a real one would. Its controls are
plain calls, safe from the test's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

CHUNK_BYTES = 64 * 1024
CONTROL_TIMEOUT_S = 10.0

T = TypeVar("T")


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's side and the upstream side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """Forwards `listen_host:port` to `upstream_host:upstream_port` with injectable faults."""

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.listen_host = listen_host
        self.port = 0
        self.latency_s = 0.0
        self.blackholed = False
        self.connections_accepted = 0
        self.bytes_dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def redis_url(self) -> str:
        return f"redis://{self.listen_host}:{self.port}/0"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # -- life cycle (from the test's thread) ----------------------------------------------------

    def start(self) -> TcpProxy:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CONTROL_TIMEOUT_S)
        self._loop.close()
        self._loop = self._thread = None

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CONTROL_TIMEOUT_S)

    # -- faults ---------------------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every chunk by `seconds` from now on (0 to stop)."""
        self.latency_s = seconds

    def blackhole(self) -> None:
        """Drop everything sent either way, keeping connections open, until `heal()`."""
        self.blackholed = True

    def heal(self) -> None:
        self.blackholed = False
        self.latency_s = 0.0

    def reset_all(self) -> int:
        """Abort every open connection with an RST on both sides; returns how many were reset."""
        return self._call(self._reset_all())

    # -- on the proxy's loop --------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port or 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            _abort(link.client)
            _abort(link.upstream)
            for task in link.tasks:
                task.cancel()
        self._links.clear()
        return len(links)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            _abort(client_writer)  # upstream down: the client sees its connection reset
            return
        link = _Link(client_writer, upstream_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(client_reader, upstream_writer, link)),
            asyncio.create_task(self._pump(upstream_reader, client_writer, link)),
        ]
        self._tasks.update(link.tasks)
        for task in link.tasks:
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        """Copy one direction through a delay line: the reader never waits for the latency, so
        latency adds delay without throttling throughput, and chunk order is kept."""
        line: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = asyncio.create_task(self._deliver(line, writer))
        loop = asyncio.get_running_loop()
        try:
            while chunk := await reader.read(CHUNK_BYTES):
                if self.blackholed:
                    self.bytes_dropped += len(chunk)
                    continue
                line.put_nowait((loop.time() + self.latency_s, chunk))
            line.put_nowait(None)
            await sender
        except OSError:
            pass  # the connection broke: close both sides of the link
        finally:
            sender.cancel()
            self._drop(link)

    async def _deliver(
        self, line: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while (item := await line.get()) is not None:
                due, chunk = item
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            writer.close()

    def _drop(self, link: _Link) -> None:
        if link in self._links:
            self._links.discard(link)
            link.client.close()
            link.upstream.close()
            for task in link.tasks:
                task.cancel()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST rather than a FIN: linger on, with a zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
