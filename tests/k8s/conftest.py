"""The Kubernetes manifests' tests: no cluster, only the files, the code, kustomize and the schemas."""

from __future__ import annotations

import sys
from pathlib import Path

# The suite runs with --import-mode=importlib, which puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
