"""infra/k8s agrees with the code: commands, ports and probes, the settings each service reads,
shutdown grace periods, autoscaling metrics, the Ingress's paths, connection budgets, security.

Read with PyYAML, as written (tests/k8s/test_k8s_render.py builds them with kustomize); the numbers
come from the settings modules and the services' own wiring wherever the code holds them.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from k8s_support import (
    BASE,
    DUMMY_SECRETS,
    K8S,
    ROOT,
    SECRET_NAME,
    SERVICES,
    all_containers,
    base_documents,
    by_kind,
    container_environment,
    deployments,
    generated_config_maps,
    grace_of_background,
    kustomization,
    load_documents,
    main_container,
    pod_spec,
    read_env_file,
    secret_example,
    secret_keys,
    service_settings,
    variables_read,
)
from prometheus_client import REGISTRY

import notifier.app
import notifier.shutdown
import paystream.web
import webhook_dispatcher.worker
from paystream.events import ConsumerGroup, Stream
from paystream.netguard import PUBLIC_ONLY
from paystream.service import run_service
from paystream_api.provider_webhooks.ingest import IngestWriter
from paystream_devstack.devrun.config import MIGRATIONS_MODULE

# Variables a service reads that its Deployment leaves unset on purpose (the env files say why).
UNSET_ON_PURPOSE: dict[str, set[str]] = {
    name: {
        # Deprecated: setting it at all (even to false) logs a warning at start-up.
        "WEBHOOK_ALLOW_PRIVATE_URLS",
        # Used only with TEST_MODE=true.
        "TEST_PROCESSING_DELAY",
        "TEST_PAYMENT_SUCCESS",
    }
    for name in SERVICES
}
UNSET_ON_PURPOSE["api"] |= {
    # They seed the test merchant's provider accounts, only with SEED_TEST_DATA=true.
    "RAZORPAY_WEBHOOK_SECRET",
    "PAYABLE_MERCHANT_KEY",
    "PAYABLE_MERCHANT_TOKEN",
    # Only the default of NOTIFIER_PUBLIC_URL, which is set.
    "NOTIFIER_PORT",
}

# PostgreSQL sessions a process holds beside its pool (paystream.listen users), plus the migration
# runner's one at start-up in the API (apply_migrations in paystream_api.app).
OWN_SESSIONS = {"api": 1 + 1, "payment-processor": 2, "webhook-dispatcher": 2, "notifier": 0}
# The manifests' worst case must fit a server with max_connections = 800 (infra/k8s/README.md).
CONNECTION_BUDGET = 700

# /health checks PostgreSQL, then Redis, each under asyncio.timeout(2) (paystream.web.health).
HEALTH_WORST_CASE_S = 2 + 2


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return base_documents()


@pytest.fixture(scope="module")
def kinds(documents: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    return by_kind(documents)


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


# -- kustomize ----------------------------------------------------------------------------------


def _kustomization_folders() -> list[Path]:
    return sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


def _referenced_files(folder: Path) -> set[Path]:
    document = kustomization(folder)
    names: list[str] = [entry for entry in document.get("resources", []) if not entry.startswith("..")]
    names += [patch["path"] for patch in document.get("patches", []) if "path" in patch]
    for generator in document.get("configMapGenerator", []) + document.get("secretGenerator", []):
        names += generator.get("envs", [])
        names += [entry.split("=", 1)[-1] for entry in generator.get("files", [])]
    return {(folder / name).resolve() for name in names}


@pytest.mark.parametrize("folder", _kustomization_folders(), ids=lambda path: str(path.relative_to(K8S)))
def test_each_kustomization_lists_every_file_of_its_folder(folder: Path) -> None:
    referenced = _referenced_files(folder)
    files = {
        path.resolve()
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix in {".yaml", ".env"}
        and path.name != "kustomization.yaml"
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }
    # Folders with a kustomization of their own list their files themselves.
    nested = {path.parent for path in folder.rglob("kustomization.yaml")} - {folder}
    files = {path for path in files if not any(path.is_relative_to(inner) for inner in nested)}
    assert files - referenced == set(), "files the kustomization does not list"
    git_ignored = {"secrets.env", "postgres-ca.crt"}
    missing = {path for path in referenced if not path.exists() and path.name not in git_ignored}
    assert missing == set()
    for document in kustomization(folder).get("resources", []):
        assert (folder / document).exists(), document


def test_the_files_an_operator_provides_stay_out_of_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "infra/k8s/base/secrets.env" in ignored
    assert "infra/k8s/overlays/*/postgres-ca.crt" in ignored
    example = secret_example()
    # Empty: the notifier refuses to start until a real key (32 bytes or more) is filled in.
    assert example["JWT_SECRET"] == ""
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"} == set(example)


def test_base_images_are_the_dockerfiles_one_image() -> None:
    (image,) = kustomization(BASE)["images"]
    assert image["name"] == "paystream"
    for workload in [*deployments().values(), *by_kind(base_documents())["Job"].values()]:
        assert {container["image"] for container in all_containers(workload)} == {"paystream"}


# -- commands, ports, probes ------------------------------------------------------------------------


def test_one_deployment_per_service_running_its_module(kinds: dict[str, dict[str, dict[str, Any]]]) -> None:
    assert set(kinds["Deployment"]) == set(SERVICES)
    for name, service in SERVICES.items():
        container = main_container(kinds["Deployment"][name])
        assert container["command"] == ["python", "-m", service.module]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for service in SERVICES.values():
        assert f"`{service.module}`" in dockerfile or f"`python -m {service.module}`" in dockerfile


def test_migrations_run_before_every_service(kinds: dict[str, dict[str, dict[str, Any]]]) -> None:
    migrate = ["python", "-m", MIGRATIONS_MODULE]
    (job_container,) = pod_spec(kinds["Job"]["paystream-migrate"])["containers"]
    assert job_container["command"] == migrate
    # The runner reads DATABASE_URL (MIGRATIONS_DIR comes from the image).
    assert secret_keys(job_container) == {"DATABASE_URL": "DATABASE_URL"}
    for name, deployment in kinds["Deployment"].items():
        (init,) = pod_spec(deployment)["initContainers"]
        assert init["command"] == migrate, name
        assert secret_keys(init) == {"DATABASE_URL": "DATABASE_URL"}, name
        assert secret_keys(main_container(deployment))["DATABASE_URL"] == "DATABASE_URL"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_probes_are_health_on_the_port_the_settings_use(name: str) -> None:
    deployment = deployments()[name]
    container = main_container(deployment)
    settings = service_settings(name)
    minimal = SERVICES[name].from_env(DUMMY_SECRETS)
    (port,) = container["ports"]
    # The code's default port, and the one the manifest's environment gives.
    assert port["containerPort"] == settings.port == minimal.port
    assert settings.host == "0.0.0.0"
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = container[probe_name]
        assert probe["httpGet"]["path"] == "/health", probe_name
        assert probe["httpGet"]["port"] in (port["name"], port["containerPort"]), probe_name
        assert probe["timeoutSeconds"] > HEALTH_WORST_CASE_S, probe_name
    liveness = container["livenessProbe"]
    # A replica waits up to STARTUP_DEADLINE_S for PostgreSQL before it listens: liveness outlasts it.
    window_s = (
        liveness.get("initialDelaySeconds", 0) + liveness["periodSeconds"] * liveness["failureThreshold"]
    )
    assert window_s > paystream.web.STARTUP_DEADLINE_S


# -- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_variable_set_is_read_and_every_one_read_is_set(name: str) -> None:
    container = main_container(deployments()[name])
    environment = container_environment(container, generated_config_maps())
    read = variables_read(SERVICES[name], environment)
    assert set(environment) - read == set(), "set but never read"
    assert read - set(environment) == UNSET_ON_PURPOSE[name], "read but not set"


def test_every_config_file_feeds_a_deployment() -> None:
    maps = generated_config_maps()
    used = {
        source["configMapRef"]["name"]
        for deployment in deployments().values()
        for source in main_container(deployment)["envFrom"]
    }
    assert used == set(maps)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_required_setting_is_provided_and_production_safe(name: str) -> None:
    settings = service_settings(name)  # raises, naming the variable, when one is missing or bad
    common = settings.common
    assert common.test_mode.enabled is False
    assert common.test_mode.webhook_retry_intervals_test is False
    assert common.outbound.policy == PUBLIC_ONLY
    assert common.outbound.notices == ()
    assert common.log.format == "json"
    if name == "api":
        assert settings.seed_test_data is False
        assert settings.notifier_public_url.startswith("https://")
    if name == "notifier":
        assert settings.frontend_origins not in ("*", None)
    if name == "webhook-dispatcher":
        assert settings.delivery.retry_intervals == (0, 60, 300, 1800, 7200)


def test_secrets_come_from_the_secret_only() -> None:
    example = secret_example()
    for name, values in generated_config_maps().items():
        assert not set(values) & set(example), f"{name} holds a secret"
    for name, deployment in deployments().items():
        container = main_container(deployment)
        keys = secret_keys(container)
        read = variables_read(SERVICES[name], container_environment(container, generated_config_maps()))
        # Exactly the secrets this service reads, each from the key of its own name.
        assert set(keys) == read & set(example), name
        assert all(variable == key for variable, key in keys.items()), name


def test_the_dispatchers_timeouts_hold_together() -> None:
    settings = service_settings("webhook-dispatcher")
    assert settings.delivery.lease_s >= settings.delivery.http_timeout_s + 5
    assert settings.reclaim_idle_ms > 1000 * max(settings.handler_timeout_s, settings.delivery.http_timeout_s)
    # Left empty in the env file: the code derives it from the reclaim idle time and the timeout.
    assert read_env_file(BASE / "config" / "webhook-dispatcher.env")["WEBHOOK_ORDERING_GRACE_S"] == ""


# -- shutdown ---------------------------------------------------------------------------------------


def _server_shutdown_timeout(module: str) -> float:
    """`shutdown_timeout` of the run_service call in the service's __main__ (else its default)."""
    source = (ROOT / "services").glob(f"*/src/{module}/__main__.py")
    (path,) = list(source)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_service":
            for keyword in node.keywords:
                if keyword.arg == "shutdown_timeout":
                    return float(ast.literal_eval(keyword.value))
    default = inspect.signature(run_service).parameters["shutdown_timeout"].default
    return float(default)


def _drain_stages(name: str) -> list[tuple[str, float]]:
    """What the service waits for, one stage after another, between SIGTERM and its exit."""
    settings = service_settings(name)
    app = SERVICES[name].create_app(settings)
    stages: list[tuple[str, float]] = []
    if name == "notifier":
        stages.append(("sockets drained before aiohttp stops", notifier.shutdown.DRAIN_DEADLINE_S))
    stages.append(("requests in flight", _server_shutdown_timeout(SERVICES[name].module)))
    # Cleanup contexts exit one after another, in reverse order.
    for context in reversed(list(app.cleanup_ctx)):
        background = grace_of_background(context)
        if background is not None:
            stages.append(background)
        elif context.__name__ == "ingest_context":
            grace = inspect.signature(IngestWriter.stop).parameters["grace_s"].default
            stages.append(("provider-webhook writer", float(grace)))
        elif context.__name__ == "delivery_pipeline":
            # The scheduler and the intake stop together (attempts finish within the HTTP timeout
            # + 5 s), then the recorder writes the outcomes.
            source = inspect.getsource(webhook_dispatcher.worker.delivery_pipeline)
            assert "drain_s = settings.delivery.http_timeout_s + 5" in source
            recorder = re.search(r'"webhook-recorder", recorder\.run, grace_s=([\d.]+)', source)
            assert recorder is not None
            stages.append(("attempts in flight", settings.delivery.http_timeout_s + 5))
            stages.append(("outcome recorder", float(recorder[1])))
        else:
            assert context.__name__ in {"stores", "migrate_and_seed", "http_client", "hub_context"}, (
                f"{name}: what does cleanup context {context.__name__} wait for at shutdown?"
            )
    return stages


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_grace_period_covers_the_whole_drain(name: str) -> None:
    deployment = deployments()[name]
    pre_stop = main_container(deployment).get("lifecycle", {}).get("preStop")
    pause = float(pre_stop["exec"]["command"][1]) if pre_stop else 0.0
    if pre_stop:
        assert pre_stop["exec"]["command"][0] == "sleep"
    stages = _drain_stages(name)
    worst = pause + sum(seconds for _, seconds in stages)
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace >= worst, f"{name}: {stages} (+{pause} s preStop) = {worst} s > {grace} s"
    # Not wildly more either: a stuck pod should not linger.
    assert grace <= worst + 30


def test_the_services_that_take_traffic_pause_before_stopping() -> None:
    for name in ("api", "notifier"):
        assert main_container(deployments()[name])["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"


# -- replicas, disruption budgets, autoscaling -----------------------------------------------------------


def test_every_deployment_has_two_replicas_a_pdb_and_an_hpa(
    kinds: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for name, deployment in kinds["Deployment"].items():
        assert deployment["spec"]["replicas"] >= 2, name
        assert _selects(deployment["spec"]["selector"], _pod_labels(deployment))
        budgets = [
            pdb
            for pdb in kinds["PodDisruptionBudget"].values()
            if _selects(pdb["spec"]["selector"], _pod_labels(deployment))
        ]
        assert len(budgets) == 1, name
        spec = budgets[0]["spec"]
        assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable", 0) >= 1, name
        (hpa,) = [
            h
            for h in kinds["HorizontalPodAutoscaler"].values()
            if h["spec"]["scaleTargetRef"]["name"] == name
        ]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def _exported_metric_names() -> set[str]:
    return {family.name for family in REGISTRY.collect()} | {
        sample.name for family in REGISTRY.collect() for sample in family.samples
    }


def _hpa_metrics(hpa: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, metric name, its block) for every metric of an HPA."""
    found = []
    for metric in hpa["spec"]["metrics"]:
        kind = metric["type"]
        block = metric[kind[0].lower() + kind[1:]]
        found.append((kind, block["metric"]["name"] if "metric" in block else block["name"], block))
    return found


def test_the_api_scales_on_cpu_and_the_workers_on_waiting_work(
    kinds: dict[str, dict[str, dict[str, Any]]],
) -> None:
    hpas = kinds["HorizontalPodAutoscaler"]
    assert [(kind, metric) for kind, metric, _ in _hpa_metrics(hpas["api"])] == [("Resource", "cpu")]
    exported = _exported_metric_names()
    groups = {str(group) for group in ConsumerGroup}
    for name in ("payment-processor", "webhook-dispatcher", "notifier"):
        metrics = _hpa_metrics(hpas[name])
        assert any(kind in ("External", "Pods") for kind, _, _ in metrics), name
        for kind, metric, block in metrics:
            if kind == "Resource":
                continue
            assert metric in exported, f"{name}: no service exports {metric}"
            assert block["target"]["type"] == "AverageValue"
            selector = block["metric"].get("selector")
            if selector:
                assert set(selector["matchLabels"]) == {"group"}
                assert selector["matchLabels"]["group"] in groups
    lag_group = {
        name: block["metric"]["selector"]["matchLabels"]["group"]
        for name in ("payment-processor", "webhook-dispatcher")
        for _, metric, block in _hpa_metrics(hpas[name])
        if metric == "paystream_stream_lag"
    }
    assert lag_group == {
        "payment-processor": ConsumerGroup.PAYMENT_PROCESSOR.value,
        "webhook-dispatcher": ConsumerGroup.WEBHOOK_DISPATCHER.value,
    }


def test_the_adapter_serves_every_metric_the_hpas_read(kinds: dict[str, dict[str, dict[str, Any]]]) -> None:
    (values,) = load_documents(K8S / "autoscaling" / "prometheus-adapter-values.yaml")
    rules = values["rules"]

    def series(rule: dict[str, Any]) -> str:
        match = re.match(r"^(\w+)\{", rule["seriesQuery"])
        assert match is not None, rule["seriesQuery"]
        return match[1]

    served = {
        "Pods": {series(rule) for rule in rules["custom"]},
        "External": {series(rule) for rule in rules["external"]},
    }
    wanted: dict[str, set[str]] = {"Pods": set(), "External": set()}
    for hpa in kinds["HorizontalPodAutoscaler"].values():
        for kind, metric, _ in _hpa_metrics(hpa):
            if kind in wanted:
                wanted[kind].add(metric)
    assert wanted == served
    for rule in rules["custom"]:
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    for rule in rules["external"]:
        assert set(rule["resources"]["overrides"]) == {"namespace"}
        # Every replica exports the same bus gauges: a rule must not add them up across replicas.
        assert "max" in rule["metricsQuery"]


def test_keda_scales_the_same_workers_on_the_same_streams() -> None:
    folder = K8S / "components" / "keda"
    objects = by_kind(load_documents(folder / "scaledobjects.yaml"))
    deleted = {
        document["metadata"]["name"] for document in load_documents(folder / "without-worker-hpas.yaml")
    }
    assert set(objects["ScaledObject"]) == deleted == {"payment-processor", "webhook-dispatcher", "notifier"}
    for name, scaled in objects["ScaledObject"].items():
        assert scaled["spec"]["scaleTargetRef"]["name"] == name
        assert scaled["spec"]["minReplicaCount"] >= 2
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "redis-streams":
                assert trigger["metadata"]["stream"] == Stream.PAYMENT_EVENTS.value
                assert trigger["metadata"]["consumerGroup"] == name == ConsumerGroup(name).value
            if trigger["type"] == "postgresql":
                # The env var KEDA reads from the pod is one the Deployment sets.
                assert trigger["metadata"]["connectionFromEnv"] in secret_keys(
                    main_container(deployments()[name])
                )


def test_connections_at_the_hpa_maxima_fit_the_budget(kinds: dict[str, dict[str, dict[str, Any]]]) -> None:
    total = 1  # the migration Job
    for name, hpa in kinds["HorizontalPodAutoscaler"].items():
        settings = service_settings(name)
        total += hpa["spec"]["maxReplicas"] * (settings.common.database.pool_max_size + OWN_SESSIONS[name])
    assert total <= CONNECTION_BUDGET


# -- placement and security ---------------------------------------------------------------------------


def test_pods_spread_over_nodes(kinds: dict[str, dict[str, dict[str, Any]]]) -> None:
    for name, deployment in kinds["Deployment"].items():
        constraints = pod_spec(deployment)["topologySpreadConstraints"]
        by_key = {constraint["topologyKey"]: constraint for constraint in constraints}
        node = by_key["kubernetes.io/hostname"]
        assert node["maxSkew"] == 1, name
        assert _selects(node["labelSelector"], _pod_labels(deployment)), name


def _dockerfile_user() -> int:
    match = re.search(r"^USER (\d+)(?::\d+)?$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match is not None
    return int(match[1])


def test_every_container_has_requests_limits_and_runs_locked_down(
    kinds: dict[str, dict[str, dict[str, Any]]],
) -> None:
    workloads = [*kinds["Deployment"].values(), *kinds["Job"].values()]
    for workload in workloads:
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == _dockerfile_user(), name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in all_containers(workload):
            resources = container["resources"]
            for section in ("requests", "limits"):
                assert set(resources[section]) >= {"cpu", "memory"}, (name, container["name"], section)
            context = container["securityContext"]
            # The services write no file (checked by running them under a read-only /).
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (name, container["name"])
    assert kinds["ServiceAccount"]["paystream"]["automountServiceAccountToken"] is False


def test_services_expose_each_deployments_http_port(kinds: dict[str, dict[str, dict[str, Any]]]) -> None:
    for name, deployment in kinds["Deployment"].items():
        service = kinds["Service"][name]
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        (port,) = service["spec"]["ports"]
        (container_port,) = main_container(deployment)["ports"]
        assert port["targetPort"] == container_port["name"]
        assert port["port"] == container_port["containerPort"]


# -- the Ingress ----------------------------------------------------------------------------------


def _overlay() -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:
    folder = K8S / "overlays" / "example"
    ingresses = by_kind(load_documents(folder / "ingress.yaml"))
    merged: dict[str, str] = {}
    for generator in kustomization(folder)["configMapGenerator"]:
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            merged[key] = value
    return ingresses, merged


def _ingress_matches(paths: list[dict[str, Any]], route: str) -> bool:
    for entry in paths:
        path = entry["path"]
        if entry["pathType"] == "Exact" and route == path:
            return True
        if entry["pathType"] == "Prefix" and (route == path or route.startswith(path.rstrip("/") + "/")):
            return True
    return False


def _api_routes() -> set[str]:
    app = SERVICES["api"].create_app(service_settings("api"))
    routes = {resource.canonical for resource in app.router.resources()}
    return routes


def test_the_ingress_routes_the_apis_public_paths_and_nothing_else() -> None:
    ingresses, _ = _overlay()
    (rule,) = ingresses["Ingress"]["api"]["spec"]["rules"]
    paths = rule["http"]["paths"]
    assert {entry["backend"]["service"]["name"] for entry in paths} == {"api"}
    internal = {"/health", "/metrics"}
    test_mode_only = {"/demo", "/demo/orders", "/api/v1/test/jobs/status"}
    routes = _api_routes()
    assert internal <= routes
    for route in routes - internal - test_mode_only:
        assert _ingress_matches(paths, route), f"{route} is not reachable through the Ingress"
    for route in internal | {"/demo", "/demo/orders"}:
        assert not _ingress_matches(paths, route), f"{route} must stay inside the cluster"


def test_the_notifier_is_sticky_on_the_apis_origin() -> None:
    ingresses, merged = _overlay()
    ingress = ingresses["Ingress"]["notifier"]
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/socket.io"
    assert path["backend"]["service"]["name"] == "notifier"
    # The server offers long-polling, so one session's requests must reach one replica.
    app = SERVICES["notifier"].create_app(service_settings("notifier"))
    sio = app[notifier.app.SIO]
    assert "polling" in sio.eio.transports
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    (api_rule,) = ingresses["Ingress"]["api"]["spec"]["rules"]
    assert rule["host"] == api_rule["host"]
    origin = f"https://{rule['host']}"
    assert merged["NOTIFIER_PUBLIC_URL"] == origin
    assert merged["FRONTEND_ORIGINS"] == origin


def test_overlay_settings_are_settings_the_services_read() -> None:
    _, merged = _overlay()
    read = set().union(
        *(
            variables_read(
                service, container_environment(main_container(deployments()[name]), generated_config_maps())
            )
            for name, service in SERVICES.items()
        )
    )
    assert set(merged) <= read
    assert SECRET_NAME not in merged


def test_the_overlay_trusts_the_ingress_and_keeps_the_base_per_address_budgets() -> None:
    _, merged = _overlay()
    environment = container_environment(main_container(deployments()["api"]), generated_config_maps())
    base = SERVICES["api"].from_env(environment)
    site = SERVICES["api"].from_env({**environment, **merged})
    assert base.trusted_proxies.networks == ()
    # A private network (the pod CIDR), never a public range or everything.
    assert site.trusted_proxies.networks
    assert all(network.is_private for network in site.trusted_proxies.networks)
    # With the client's address known, the stopgap that raised the per-address budgets is gone.
    assert not [key for key in merged if key.endswith("_PER_IP")]
