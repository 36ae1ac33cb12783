"""docker-compose.yml runs the services `make run` runs, with the same variables.

No Docker engine runs here, so the file is read with PyYAML and compared with devrun's own list.
(infra/k8s/ is production's, not devrun's: tests/k8s/ checks it against the settings modules.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from paystream_devstack.devrun.config import (
    DEV_DEFAULTS,
    HOST_DEFAULTS,
    MIGRATIONS_MODULE,
    PORT_DEFAULTS,
    SERVICE_MODULES,
    service_variable_names,
)
from paystream_devstack.testing.platform import PORT_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {
    "api": "paystream_api",
    "payment-processor": "payment_processor",
    "webhook-dispatcher": "webhook_dispatcher",
    "notifier": "notifier",
}
_INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}$")


def load_documents(path: Path) -> list[Any]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (document,) = load_documents(ROOT / "docker-compose.yml")
    assert isinstance(document, dict)
    return document


def test_compose_runs_the_devrun_services_and_the_migrations(compose: dict[str, Any]) -> None:
    services = compose["services"]
    commands = {name: services[name]["command"] for name in APP_SERVICES}
    assert commands == {name: ["python", "-m", module] for name, module in APP_SERVICES.items()}
    assert set(APP_SERVICES.values()) == set(SERVICE_MODULES.values())
    assert services["migrate"]["command"] == ["python", "-m", MIGRATIONS_MODULE]


def test_compose_services_get_exactly_the_devrun_variables(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        assert set(environment) == service_variable_names(), name
        for variable, port in PORT_DEFAULTS.items():
            assert environment[variable] == str(port), variable
        # `make run` listens on loopback; a container has to listen on all its interfaces.
        for variable in HOST_DEFAULTS:
            assert environment[variable] == "0.0.0.0", variable
        for variable, default in DEV_DEFAULTS.items():
            match = _INTERPOLATION.match(environment[variable])
            assert match is not None, (
                f"{variable} should be ${{{variable}:-...}} so the shell can override it"
            )
            assert (match["name"], match["default"]) == (variable, default)


def test_compose_orders_start_up_and_checks_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, module in APP_SERVICES.items():
        service = services[name]
        assert service["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
        port = PORT_DEFAULTS[PORT_VARIABLE[module]]
        assert service["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/health", name


def test_compose_can_scale_the_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert not [name for name, service in services.items() if "container_name" in service]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {"api": ["8000:8000"], "notifier": ["8080:8080"]}


def test_compose_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    mount = next(volume for volume in redis["volumes"] if volume.startswith("./infra/redis/redis.conf:"))
    assert mount.split(":")[1] in redis["command"]
    settings = dict(
        line.split(None, 1)
        for line in (ROOT / "infra" / "redis" / "redis.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert settings["appendonly"] == "yes"
    assert settings["maxmemory-policy"] == "noeviction"
    assert compose["services"]["postgres"]["image"].startswith("postgres:16")


def test_the_image_listens_on_all_interfaces() -> None:
    # The services default to loopback; the image is what runs them in containers.
    dockerfile = (ROOT / "Dockerfile").read_text()
    for variable in HOST_DEFAULTS:
        assert re.search(rf"^\s+{variable}=0\.0\.0\.0\b", dockerfile, re.MULTILINE), variable
