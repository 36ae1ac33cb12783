"""Signal handling for `python -m notifier`: drain the sockets before aiohttp stops reading.

aiohttp's graceful shutdown stops reading from every connection before it runs `on_shutdown`, so a
WebSocket closed there cannot complete its closing handshake: the process then waits for each client
to give up on it (seconds). On SIGTERM or SIGINT the notifier therefore first closes its sockets
while it can still hear the clients answer, then hands over to aiohttp's shutdown as usual. Clients
read the close as a lost transport and reconnect, through the load balancer, to another process.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from notifier.keys import HUB, TRANSPORT_REQUESTS
from paystream.logging import get_logger

log = get_logger(__name__)

DRAIN_DEADLINE_S = 10.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def drain_before_exit(app: web.Application) -> None:
    """Install the handlers once the app has started (after aiohttp installed its own)."""

    async def install(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        def on_signal(signum: int) -> None:
            for handled in _SIGNALS:
                loop.remove_signal_handler(handled)
            log.info("notifier.stopping", signal=signal.Signals(signum).name)
            task = loop.create_task(drain_then_exit())
            tasks.add(task)

        async def drain_then_exit() -> None:
            deadline = loop.time() + DRAIN_DEADLINE_S
            try:
                async with asyncio.timeout_at(deadline):
                    await app[HUB].drain()
                # Closed means the clients answered: their requests have ended.
                requests = app[TRANSPORT_REQUESTS]
                if not await requests.wait_idle(max(0.0, deadline - loop.time())):
                    log.warning("notifier.drain_incomplete", requests=requests.active)
            except TimeoutError:
                log.warning("notifier.drain_timed_out")
            finally:
                loop.call_soon(_raise_graceful_exit)

        for signum in _SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)

    app.on_startup.append(install)


def _raise_graceful_exit() -> None:
    # Raised from a loop callback, as aiohttp's own handler does: it ends run_app's loop and runs
    # the usual cleanup (on_shutdown, then the cleanup contexts).
    raise GracefulExit()
