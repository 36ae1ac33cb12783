"""The API's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from paystream.proxies import TRUST_NOBODY, TrustedProxies
from paystream.settings import (
    CommonSettings,
    Environ,
    env_bind_host,
    env_bool,
    env_int,
    env_port,
    env_str,
    env_trusted_proxies,
    env_url,
)


@dataclass(frozen=True, slots=True)
class PublicLimits:
    """Requests a minute to the public checkout endpoints (`/api/v1/public/...`), which take only
    the public key, counted per API process (see paystream_api.public_api.access).

    Paying is the scarce budget: it is what card testers hammer. A payer makes a few attempts, but
    carrier-grade NAT puts many payers behind one address, hence 20 per address. Reads are a page
    load plus the polling fallback (one read every 2 s while a payment settles, 30 a minute), so
    300 per address allows ten payers polling at once behind one address. The per-key budgets are
    a ceiling per merchant for each replica, far above a shop's checkout traffic (20 payments a
    second), and stop one leaked key from being used to flood the database."""

    payments_per_address: int = 20
    payments_per_key: int = 1200
    reads_per_address: int = 300
    reads_per_key: int = 6000

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> PublicLimits:
        defaults = cls()
        return cls(
            payments_per_address=env_int(
                environ, "PUBLIC_PAYMENTS_PER_IP", defaults.payments_per_address, minimum=1
            ),
            payments_per_key=env_int(
                environ, "PUBLIC_PAYMENTS_PER_KEY", defaults.payments_per_key, minimum=1
            ),
            reads_per_address=env_int(environ, "PUBLIC_READS_PER_IP", defaults.reads_per_address, minimum=1),
            reads_per_key=env_int(environ, "PUBLIC_READS_PER_KEY", defaults.reads_per_key, minimum=1),
        )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    common: CommonSettings
    port: int
    host: str
    jwt_secret: str
    razorpay_webhook_secret: str
    payable_merchant_key: str
    payable_merchant_token: str
    seed_test_data: bool
    # Where browsers reach the notifier (Socket.IO): the checkout and the dashboard connect there,
    # and the pages' Content-Security-Policy allows it.
    notifier_public_url: str = "http://127.0.0.1:8080"
    # Failed merchant authentications tolerated per minute (see paystream_api.auth).
    auth_failures_per_address: int = 20
    auth_failures_per_key: int = 100
    public_limits: PublicLimits = PublicLimits()
    # Dashboard sessions (paystream_api.sessions): an absolute lifetime, an idle timeout, and the
    # failed sign-ins tolerated per client address per minute (then 429).
    dashboard_session_ttl_s: int = 12 * 3600
    dashboard_session_idle_s: int = 2 * 3600
    dashboard_signin_failures_per_address: int = 5
    # The reverse proxies (an Ingress, a load balancer) whose X-Forwarded-For names the client that
    # the per-address budgets above count (paystream.proxies); by default nobody's: the TCP peer.
    trusted_proxies: TrustedProxies = TRUST_NOBODY

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> ApiSettings:
        return cls(
            common=CommonSettings.from_env(environ),
            port=env_port(environ, "API_PORT", 8000),
            host=env_bind_host(environ, "API_HOST"),
            jwt_secret=env_str(environ, "JWT_SECRET"),
            razorpay_webhook_secret=env_str(environ, "RAZORPAY_WEBHOOK_SECRET", "rzp_webhook_secret_test"),
            payable_merchant_key=env_str(environ, "PAYABLE_MERCHANT_KEY", "PAYABLE_TEST_KEY"),
            payable_merchant_token=env_str(environ, "PAYABLE_MERCHANT_TOKEN", "PAYABLE_TEST_TOKEN"),
            seed_test_data=env_bool(environ, "SEED_TEST_DATA", True),
            notifier_public_url=env_url(
                environ,
                "NOTIFIER_PUBLIC_URL",
                ("http", "https"),
                f"http://127.0.0.1:{env_port(environ, 'NOTIFIER_PORT', 8080)}",
            ).rstrip("/"),
            auth_failures_per_address=env_int(environ, "AUTH_FAILURES_PER_IP", 20, minimum=1),
            auth_failures_per_key=env_int(environ, "AUTH_FAILURES_PER_KEY", 100, minimum=1),
            public_limits=PublicLimits.from_env(environ),
            dashboard_session_ttl_s=env_int(environ, "DASHBOARD_SESSION_TTL_S", 12 * 3600, minimum=60),
            dashboard_session_idle_s=env_int(environ, "DASHBOARD_SESSION_IDLE_S", 2 * 3600, minimum=60),
            dashboard_signin_failures_per_address=env_int(
                environ, "DASHBOARD_SIGNIN_FAILURES_PER_IP", 5, minimum=1
            ),
            trusted_proxies=env_trusted_proxies(environ, "TRUSTED_PROXIES"),
        )
