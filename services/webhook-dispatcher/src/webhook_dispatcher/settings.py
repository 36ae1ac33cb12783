"""The webhook dispatcher's settings, read once from the environment at start-up."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from paystream.errors import SettingsError
from paystream.netguard import PUBLIC_ONLY, OutboundPolicy
from paystream.settings import CommonSettings, Environ, env_bind_host, env_float, env_int, env_port

# How often the consumer looks for stream entries a dead consumer left pending.
RECLAIM_SWEEP_S = 5.0

# Seconds to wait after attempt n fails before attempt n + 1 (the first attempt goes out at once).
PRODUCTION_RETRY_INTERVALS: tuple[float, ...] = (0, 60, 300, 1800, 7200)
TEST_RETRY_INTERVALS: tuple[float, ...] = (0, 5, 10, 15, 20)
PRODUCTION_JITTER = 0.10


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How merchant webhooks are sent, retried and bounded."""

    retry_intervals: tuple[float, ...] = PRODUCTION_RETRY_INTERVALS
    jitter: float = PRODUCTION_JITTER
    http_timeout_s: float = 10.0
    # A claimed row belongs to its dispatcher this long; a crashed dispatcher's rows come back after it.
    lease_s: float = 60.0
    max_in_flight: int = 512
    endpoint_max_in_flight: int = 32
    claim_batch: int = 256
    response_body_limit: int = 4096
    # Which addresses attempts may connect to (the API checks the URLs against the same policy).
    outbound_policy: OutboundPolicy = PUBLIC_ONLY

    @property
    def max_attempts(self) -> int:
        return len(self.retry_intervals)

    @classmethod
    def from_env(cls, environ: Environ, common: CommonSettings) -> DeliverySettings:
        test_intervals = common.test_mode.webhook_retry_intervals_test
        settings = cls(
            retry_intervals=TEST_RETRY_INTERVALS if test_intervals else PRODUCTION_RETRY_INTERVALS,
            jitter=0.0 if test_intervals else PRODUCTION_JITTER,
            http_timeout_s=env_float(environ, "WEBHOOK_HTTP_TIMEOUT_S", 10.0, minimum=0.1),
            lease_s=env_float(environ, "WEBHOOK_LEASE_S", 60.0, minimum=1.0),
            max_in_flight=env_int(environ, "WEBHOOK_MAX_IN_FLIGHT", 512, minimum=1, maximum=20_000),
            endpoint_max_in_flight=env_int(
                environ, "WEBHOOK_ENDPOINT_MAX_IN_FLIGHT", 32, minimum=1, maximum=20_000
            ),
            claim_batch=env_int(environ, "WEBHOOK_CLAIM_BATCH", 256, minimum=1, maximum=5000),
            outbound_policy=common.outbound.policy,
        )
        # An attempt must finish and be recorded well inside its lease, or a second dispatcher could
        # claim the row and send the same attempt again while the first is still running.
        if settings.lease_s < settings.http_timeout_s + 5:
            raise SettingsError("WEBHOOK_LEASE_S must exceed WEBHOOK_HTTP_TIMEOUT_S by at least 5 seconds")
        return settings


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    common: CommonSettings
    delivery: DeliverySettings
    port: int
    host: str
    concurrency: int
    handler_timeout_s: float
    reclaim_idle_ms: int
    # How long a delivery is held for an earlier event of its payment that has not come before that
    # event is given up on (dead-lettered, or lost with Redis data): see ordering.py and upkeep.py.
    ordering_grace_s: float
    log_retention_days: int
    # An endpoint whose every attempt has failed for this long is disabled (5 days, like Svix).
    auto_disable_after_s: float = 5 * 86_400.0

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> DispatcherSettings:
        common = CommonSettings.from_env(environ)
        delivery = DeliverySettings.from_env(environ, common)
        handler_timeout_s = env_float(environ, "DISPATCHER_HANDLER_TIMEOUT_S", 30.0, minimum=1.0)
        reclaim_idle_ms = env_int(environ, "DISPATCHER_RECLAIM_IDLE_MS", 60_000, minimum=1000)
        # An earlier event in a dead consumer's pending list comes back once its entry has idled
        # past the reclaim deadline, the next sweep has found it and a handler has taken it in:
        # the grace period must cover that. The default covers it twice over on the reclaim side.
        handled_after_crash_s = reclaim_idle_ms / 1000 + RECLAIM_SWEEP_S + handler_timeout_s
        default_grace_s = 2 * reclaim_idle_ms / 1000 + RECLAIM_SWEEP_S + handler_timeout_s
        settings = cls(
            common=common,
            delivery=delivery,
            port=env_port(environ, "DISPATCHER_PORT", 8082),
            host=env_bind_host(environ, "DISPATCHER_HOST"),
            concurrency=env_int(environ, "DISPATCHER_CONCURRENCY", 1024, minimum=1, maximum=20_000),
            handler_timeout_s=handler_timeout_s,
            reclaim_idle_ms=reclaim_idle_ms,
            ordering_grace_s=env_float(environ, "WEBHOOK_ORDERING_GRACE_S", default_grace_s, minimum=1.0),
            log_retention_days=env_int(environ, "WEBHOOK_LOG_RETENTION_DAYS", 30, minimum=1, maximum=3650),
            auto_disable_after_s=env_float(
                environ, "WEBHOOK_AUTO_DISABLE_AFTER_S", 5 * 86_400.0, minimum=1.0
            ),
        )
        # Handlers only record deliveries (attempts run on their own), but the stream deadline must
        # still outlast both the handler and an HTTP attempt.
        longest_s = max(settings.handler_timeout_s, delivery.http_timeout_s)
        if settings.reclaim_idle_ms <= longest_s * 1000:
            raise SettingsError(
                "DISPATCHER_RECLAIM_IDLE_MS must exceed DISPATCHER_HANDLER_TIMEOUT_S and WEBHOOK_HTTP_TIMEOUT_S"
            )
        if not math.isfinite(settings.ordering_grace_s) or settings.ordering_grace_s <= handled_after_crash_s:
            raise SettingsError(
                "WEBHOOK_ORDERING_GRACE_S must exceed DISPATCHER_RECLAIM_IDLE_MS (in seconds) + "
                f"{RECLAIM_SWEEP_S:g} s (the reclaim sweep) + DISPATCHER_HANDLER_TIMEOUT_S "
                f"({handled_after_crash_s:g} s here), or it gives up on events that are only late"
            )
        return settings
