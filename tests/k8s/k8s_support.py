"""infra/k8s as the tests read it: the base's objects, the settings kustomize generates from its
env files, and what each service's settings module reads from an environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

import notifier.app
import payment_processor.worker
import paystream_api.app
import webhook_dispatcher.worker
from notifier.settings import NotifierSettings
from payment_processor.settings import ProcessorSettings
from paystream_api.settings import ApiSettings
from webhook_dispatcher.settings import DispatcherSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
BASE = K8S / "base"
SECRETS_EXAMPLE = BASE / "secrets.env.example"
SECRET_NAME = "paystream-secrets"

# Stand-ins for what an operator puts in secrets.env: valid, and reaching nothing.
DUMMY_SECRETS = {
    "DATABASE_URL": "postgresql://paystream:x@postgres.invalid:5432/paystream?sslmode=verify-full",
    "REDIS_URL": "rediss://default:x@redis.invalid:6379/0",
    "JWT_SECRET": "k" * 32,
}


@dataclass(frozen=True)
class Service:
    """One Deployment of the base and the code it runs."""

    deployment: str
    module: str
    from_env: Callable[[Mapping[str, str]], Any]
    create_app: Callable[[Any], web.Application]


SERVICES: dict[str, Service] = {
    service.deployment: service
    for service in (
        Service("api", "paystream_api", ApiSettings.from_env, paystream_api.app.create_app),
        Service(
            "payment-processor",
            "payment_processor",
            ProcessorSettings.from_env,
            payment_processor.worker.create_app,
        ),
        Service(
            "webhook-dispatcher",
            "webhook_dispatcher",
            DispatcherSettings.from_env,
            webhook_dispatcher.worker.create_app,
        ),
        Service("notifier", "notifier", NotifierSettings.from_env, notifier.app.create_app),
    )
}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


def kustomization(folder: Path) -> dict[str, Any]:
    (document,) = load_documents(folder / "kustomization.yaml")
    return document


def base_documents() -> list[dict[str, Any]]:
    """The objects the base's kustomization lists, as written (before kustomize)."""
    return [
        document
        for resource in kustomization(BASE)["resources"]
        for document in load_documents(BASE / resource)
    ]


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    kinds: dict[str, dict[str, dict[str, Any]]] = {}
    for document in documents:
        kinds.setdefault(document["kind"], {})[document["metadata"]["name"]] = document
    return kinds


def read_env_file(path: Path) -> dict[str, str]:
    """A kustomize env file: KEY=VALUE lines; blank lines and `#` lines skipped; no quoting."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, separator, value = line.partition("=")
        assert separator, f"{path.name}: {line!r} is not KEY=VALUE"
        assert key not in values, f"{path.name}: {key} twice"
        values[key] = value
    return values


def generated_config_maps(folder: Path = BASE) -> dict[str, dict[str, str]]:
    """The ConfigMaps the kustomization generates from env files, by name (before the hash)."""
    maps: dict[str, dict[str, str]] = {}
    for generator in kustomization(folder).get("configMapGenerator", []):
        values: dict[str, str] = {}
        for env_file in generator.get("envs", []):
            values.update(read_env_file(folder / env_file))
        maps[generator["name"]] = values
    return maps


def secret_example() -> dict[str, str]:
    return read_env_file(SECRETS_EXAMPLE)


def deployments() -> dict[str, dict[str, Any]]:
    return by_kind(base_documents())["Deployment"]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The service's own container: named after its Deployment."""
    (container,) = [
        c for c in pod_spec(deployment)["containers"] if c["name"] == deployment["metadata"]["name"]
    ]
    return container


def all_containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def secret_keys(container: dict[str, Any]) -> dict[str, str]:
    """Variable -> key of the Secret, for the variables a container takes from it."""
    keys = {}
    for entry in container.get("env", []):
        reference = entry.get("valueFrom", {}).get("secretKeyRef")
        if reference is not None:
            assert reference["name"] == SECRET_NAME, entry
            keys[entry["name"]] = reference["key"]
    return keys


def container_environment(
    container: dict[str, Any],
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, str] = DUMMY_SECRETS,
) -> dict[str, str]:
    """The variables a container starts with (envFrom first, then env, as Kubernetes does)."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment.update(config_maps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        assert "valueFrom" in entry, f"{entry['name']} is set literally: settings belong in config/*.env"
        environment[entry["name"]] = secrets[secret_keys({"env": [entry]})[entry["name"]]]
    return environment


class RecordingEnviron(dict[str, str]):
    """An environment that remembers every variable its reader asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def variables_read(service: Service, environment: Mapping[str, str]) -> set[str]:
    """Every variable the service's settings read (`from_env`) given this environment."""
    recording = RecordingEnviron(environment)
    service.from_env(recording)
    return recording.asked


def service_settings(name: str) -> Any:
    """The service's settings as its Deployment's environment makes them."""
    container = main_container(deployments()[name])
    return SERVICES[name].from_env(container_environment(container, generated_config_maps()))


def grace_of_background(context: Callable[..., Any]) -> tuple[str, float] | None:
    """(name, grace) of a cleanup context made by `paystream.web.background`, or of one that wraps
    such a context (builds something, then runs it: the processor's claimer and scheduler); else None."""
    closure = context.__closure__ or ()
    captured = dict(zip(context.__code__.co_freevars, (cell.cell_contents for cell in closure), strict=True))
    if "grace_s" in captured and "name" in captured and "runner" in captured:
        return str(captured["name"]), float(captured["grace_s"])
    runner = captured.get("runner")
    if callable(runner) and hasattr(runner, "__code__"):
        return grace_of_background(runner)
    return None
