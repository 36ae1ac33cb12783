"""The payment processor's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from paystream.settings import CommonSettings, Environ, env_int, env_port, env_str


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    common: CommonSettings
    port: int
    host: str
    concurrency: int

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> ProcessorSettings:
        return cls(
            common=CommonSettings.from_env(environ),
            port=env_port(environ, "PROCESSOR_PORT", 8081),
            host=env_str(environ, "PROCESSOR_HOST", "0.0.0.0"),
            concurrency=env_int(environ, "PROCESSOR_CONCURRENCY", 256, minimum=1, maximum=10_000),
        )
