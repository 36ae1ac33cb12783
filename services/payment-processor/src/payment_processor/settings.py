"""The payment processor's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from paystream.errors import SettingsError
from paystream.settings import CommonSettings, Environ, env_bind_host, env_float, env_int, env_port


@dataclass(frozen=True, slots=True)
class SettlementSettings:
    """How API payments and refunds are settled outside test mode (test mode uses
    TEST_PROCESSING_DELAY and TEST_PAYMENT_SUCCESS instead)."""

    delay_min_ms: int = 5000
    delay_max_ms: int = 10_000
    upi_success_rate: float = 0.90
    card_success_rate: float = 0.95
    batch_size: int = 500

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> SettlementSettings:
        settings = cls(
            delay_min_ms=env_int(environ, "PROCESSING_DELAY_MIN_MS", 5000, maximum=600_000),
            delay_max_ms=env_int(environ, "PROCESSING_DELAY_MAX_MS", 10_000, maximum=600_000),
            upi_success_rate=_rate(environ, "UPI_SUCCESS_RATE", 0.90),
            card_success_rate=_rate(environ, "CARD_SUCCESS_RATE", 0.95),
            batch_size=env_int(environ, "SETTLEMENT_BATCH_SIZE", 500, minimum=1, maximum=10_000),
        )
        if settings.delay_max_ms < settings.delay_min_ms:
            raise SettingsError("PROCESSING_DELAY_MAX_MS must be at least PROCESSING_DELAY_MIN_MS")
        return settings


def _rate(environ: Environ, name: str, default: float) -> float:
    value = env_float(environ, name, default)
    if value > 1.0:
        raise SettingsError(f"{name} must be between 0 and 1, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    common: CommonSettings
    port: int
    host: str
    concurrency: int
    settlement: SettlementSettings = field(default_factory=SettlementSettings)
    # A stream entry left pending by a dead processor is taken over after `reclaim_idle_ms`, which
    # must exceed the longest a handler may run (or one entry would be worked twice at once).
    handler_timeout_s: float = 30.0
    reclaim_idle_ms: int = 60_000
    # Settled provider events are deleted after this many days (provider_events.retention).
    provider_events_retention_days: int = 30

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> ProcessorSettings:
        settings = cls(
            common=CommonSettings.from_env(environ),
            port=env_port(environ, "PROCESSOR_PORT", 8081),
            host=env_bind_host(environ, "PROCESSOR_HOST"),
            concurrency=env_int(environ, "PROCESSOR_CONCURRENCY", 256, minimum=1, maximum=10_000),
            settlement=SettlementSettings.from_env(environ),
            handler_timeout_s=env_float(environ, "PROCESSOR_HANDLER_TIMEOUT_S", 30.0, minimum=1.0),
            reclaim_idle_ms=env_int(environ, "PROCESSOR_RECLAIM_IDLE_MS", 60_000, minimum=1000),
            provider_events_retention_days=env_int(
                environ, "PROVIDER_EVENTS_RETENTION_DAYS", 30, minimum=2, maximum=3650
            ),
        )
        if settings.reclaim_idle_ms <= settings.handler_timeout_s * 1000:
            raise SettingsError("PROCESSOR_RECLAIM_IDLE_MS must exceed PROCESSOR_HANDLER_TIMEOUT_S")
        return settings
