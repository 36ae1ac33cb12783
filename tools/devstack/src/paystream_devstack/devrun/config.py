"""What `make run` starts and with which environment.

This is the one list of service commands and variables: `docker-compose.yml` mirrors it, and
`shared/tests/test_compose.py` fails when they drift apart. (`infra/k8s/` sets every setting each
service reads, with production values; `tests/k8s/` checks it against the settings modules.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from paystream.devrun_state import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR
from paystream.errors import SettingsError
from paystream.netguard import LOOPBACK_NETS
from paystream.settings import DEFAULT_BIND_HOST, Environ, env_float, env_port, env_str

# Service name (its output prefix) -> the package run as `python -m <package>`.
SERVICE_MODULES: Mapping[str, str] = {
    "api": "paystream_api",
    "processor": "payment_processor",
    "dispatcher": "webhook_dispatcher",
    "notifier": "notifier",
}
MIGRATIONS_MODULE = "paystream.migrations"

STORE_VARIABLES = ("REDIS_URL", "DATABASE_URL")
PORT_DEFAULTS: Mapping[str, int] = {
    "API_PORT": 8000,
    "NOTIFIER_PORT": 8080,
    "PROCESSOR_PORT": 8081,
    "DISPATCHER_PORT": 8082,
}
# `make run` listens on loopback only: it runs with the published test credentials below. The
# container deployments (docker-compose.yml, infra/k8s/) set these to 0.0.0.0, as containers need.
HOST_DEFAULTS: Mapping[str, str] = {
    "API_HOST": DEFAULT_BIND_HOST,
    "NOTIFIER_HOST": DEFAULT_BIND_HOST,
    "PROCESSOR_HOST": DEFAULT_BIND_HOST,
    "DISPATCHER_HOST": DEFAULT_BIND_HOST,
}
# Local-run defaults; a variable already set in the environment wins.
DEV_DEFAULTS: Mapping[str, str] = {
    "JWT_SECRET": "dev-jwt-secret-change-me",
    "TEST_MODE": "true",
    "TEST_PROCESSING_DELAY": "1000",
    "TEST_PAYMENT_SUCCESS": "true",
    "WEBHOOK_RETRY_INTERVALS_TEST": "true",
    # Webhook receivers on this machine, and no other private address (no metadata endpoint).
    "WEBHOOK_ALLOWED_PRIVATE_NETS": LOOPBACK_NETS,
    "RAZORPAY_WEBHOOK_SECRET": "rzp_webhook_secret_test",
    "PAYABLE_MERCHANT_KEY": "PAYABLE_TEST_KEY",
    "PAYABLE_MERCHANT_TOKEN": "PAYABLE_TEST_TOKEN",
    "LOG_FORMAT": "console",
    "SEED_TEST_DATA": "true",
}

COMMANDS_VARIABLE = "PAYSTREAM_DEVRUN_COMMANDS"


def service_variable_names() -> frozenset[str]:
    """Every variable devrun hands the services; compose must set exactly these."""
    return frozenset({*STORE_VARIABLES, *PORT_DEFAULTS, *HOST_DEFAULTS, *DEV_DEFAULTS})


@dataclass(frozen=True, slots=True)
class SeedMerchant:
    """The merchant that `SEED_TEST_DATA=true` creates (`paystream_api.seed`; a test keeps the two
    equal), printed so that a developer can call the API."""

    merchant_id: str = "mer_test0000000001"
    email: str = "test@example.com"
    api_key: str = "key_test_abc123"
    api_secret: str = "secret_test_xyz789"
    webhook_secret: str = "whsec_test_abc123"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One supervised child: the name that prefixes its output, and its argv."""

    name: str
    argv: tuple[str, ...]


def default_services(python: str = sys.executable) -> tuple[ServiceSpec, ...]:
    return tuple(ServiceSpec(name, (python, "-m", module)) for name, module in SERVICE_MODULES.items())


def services_from_json(raw: str) -> tuple[ServiceSpec, ...]:
    """Parse `PAYSTREAM_DEVRUN_COMMANDS`: `{"name": ["argv0", ...], ...}` replaces the whole service list."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise SettingsError(f"{COMMANDS_VARIABLE} must be JSON: {error}") from None
    if not isinstance(parsed, dict) or not parsed:
        raise SettingsError(f"{COMMANDS_VARIABLE} must be a non-empty JSON object of name -> argv list")
    services = []
    for name, argv in parsed.items():
        if not (isinstance(argv, list) and argv and all(isinstance(arg, str) for arg in argv)):
            raise SettingsError(f"{COMMANDS_VARIABLE}: {name!r} must map to a non-empty list of strings")
        services.append(ServiceSpec(name, tuple(argv)))
    return tuple(services)


@dataclass(frozen=True, slots=True)
class DevRunSettings:
    """How `python -m paystream_devstack.devrun` runs, read from the environment."""

    data_dir: Path
    redis_url: str | None
    database_url: str | None
    redis_port: int
    postgres_port: int
    stop_timeout: float
    services: tuple[ServiceSpec, ...]

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> DevRunSettings:
        commands = environ.get(COMMANDS_VARIABLE, "")
        return cls(
            data_dir=Path(env_str(environ, DATA_DIR_VARIABLE, DEFAULT_DATA_DIR)).resolve(),
            redis_url=environ.get("REDIS_URL") or None,
            database_url=environ.get("DATABASE_URL") or None,
            # The machine may run its own Redis on 6379 and PostgreSQL on 5432: stay clear of them.
            redis_port=env_port(environ, "PAYSTREAM_DEVRUN_REDIS_PORT", 6380),
            postgres_port=env_port(environ, "PAYSTREAM_DEVRUN_POSTGRES_PORT", 5433),
            stop_timeout=env_float(environ, "PAYSTREAM_DEVRUN_STOP_TIMEOUT", 10.0),
            services=services_from_json(commands) if commands.strip() else default_services(),
        )


def service_environment(environ: Environ, redis_url: str, database_url: str) -> dict[str, str]:
    """The children's environment: ours, plus local-run defaults for whatever is not set."""
    env = dict(environ)
    for name, port in PORT_DEFAULTS.items():
        env[name] = str(env_port(environ, name, port))
    for name, value in {**HOST_DEFAULTS, **DEV_DEFAULTS}.items():
        if not env.get(name):
            env[name] = value
    env["REDIS_URL"] = redis_url
    env["DATABASE_URL"] = database_url
    # Children write into pipes: without this their output would arrive in 8 KiB bursts.
    env["PYTHONUNBUFFERED"] = "1"
    return env
