"""The notifier's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from paystream.errors import SettingsError
from paystream.settings import CommonSettings, Environ, env_bind_host, env_int, env_port, env_str

# RFC 7518 section 3.2: an HS256 key is at least 256 bits. Test mode accepts shorter secrets.
MIN_SECRET_BYTES = 32


def parse_origins(raw: str | None, *, test_mode: bool) -> str | list[str] | None:
    """`FRONTEND_ORIGINS` as python-socketio wants it.

    Unset: `"*"` in test mode (local frontends on any port), else `None`, which python-socketio
    reads as "same origin only". An explicit `*` allows every origin. Never `[]`: to python-socketio
    that means "no CORS checks at all", which is the opposite of what an empty list suggests.
    """
    if raw is None or raw.strip() == "":
        return "*" if test_mode else None
    origins = [origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip()]
    if "*" in origins:
        return "*"
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise SettingsError(
                f"FRONTEND_ORIGINS entries must start with http:// or https://, got {origin!r}"
            )
    return origins or None


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    common: CommonSettings
    port: int
    host: str
    jwt_secret: str
    frontend_origins: str | list[str] | None
    # How far back a reconnecting client may ask to be caught up.
    catchup_window_s: int
    # The most missed events one catch-up replays; beyond it the client is told to reload instead.
    catchup_max_events: int
    # Allowed clock difference between the hosts that mint event ids and Redis (stream ids).
    clock_skew_ms: int
    # Packets a socket may have queued and unsent before it counts as a slow client and is cut off.
    max_buffered: int

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> NotifierSettings:
        common = CommonSettings.from_env(environ)
        jwt_secret = env_str(environ, "JWT_SECRET")
        if len(jwt_secret.encode()) < MIN_SECRET_BYTES and not common.test_mode.enabled:
            raise SettingsError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes outside TEST_MODE")
        catchup_max_events = env_int(environ, "NOTIFIER_CATCHUP_MAX_EVENTS", 1000, minimum=1, maximum=100_000)
        max_buffered = env_int(environ, "NOTIFIER_MAX_BUFFERED", 2000, minimum=2, maximum=1_000_000)
        return cls(
            common=common,
            port=env_port(environ, "NOTIFIER_PORT", 8080),
            host=env_bind_host(environ, "NOTIFIER_HOST"),
            jwt_secret=jwt_secret,
            frontend_origins=parse_origins(
                environ.get("FRONTEND_ORIGINS"), test_mode=common.test_mode.enabled
            ),
            catchup_window_s=env_int(environ, "NOTIFIER_CATCHUP_WINDOW_S", 600, minimum=1, maximum=86_400),
            catchup_max_events=catchup_max_events,
            clock_skew_ms=env_int(environ, "NOTIFIER_CLOCK_SKEW_MS", 2000, minimum=0, maximum=600_000),
            max_buffered=max_buffered,
        )
