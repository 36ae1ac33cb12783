"""The platform as real processes, as the suites that drive all of it see it (the browser tests and
the fault tests): its environment, its service processes, their URLs, and restarting one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from paystream_devstack.testing.processes import ServiceProcess

API = "paystream_api"
PROCESSOR = "payment_processor"
NOTIFIER = "notifier"
DISPATCHER = "webhook_dispatcher"
# Each service's module and the variable that names its HTTP port (`/health`, `/metrics`).
PORT_VARIABLE = {
    API: "API_PORT",
    PROCESSOR: "PROCESSOR_PORT",
    NOTIFIER: "NOTIFIER_PORT",
    DISPATCHER: "DISPATCHER_PORT",
}


def service_url(env: Mapping[str, str], module: str) -> str:
    return f"http://127.0.0.1:{env[PORT_VARIABLE[module]]}"


@dataclass(frozen=True)
class Platform:
    env: dict[str, str]
    processes: dict[str, ServiceProcess]

    @property
    def api_url(self) -> str:
        return service_url(self.env, API)

    @property
    def notifier_url(self) -> str:
        return service_url(self.env, NOTIFIER)

    def restart(self, module: str, **overrides: str) -> ServiceProcess:
        """Stop a service and start it again, with `overrides` in its environment."""
        old = self.processes[module]
        old.stop()
        process = ServiceProcess(module, {**self.env, **overrides}, old.log_path, old.health_url)
        self.processes[module] = process.start()
        return process

    async def sigkill_and_restart(self, module: str) -> None:
        """SIGKILL (no cleanup, no drain), then start a fresh process and wait until it is healthy."""
        process = self.processes[module]
        process.kill()
        await asyncio.to_thread(process.start)

    def logs(self) -> str:
        """The tail of every service's log, for a failure message."""
        return "\n".join(f"--- {name}\n{process.tail(15)}" for name, process in self.processes.items())
