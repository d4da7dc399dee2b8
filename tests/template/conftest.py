"""Shared by the template tests: the parsed template, its resources by type, and the SAM CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from local_runner.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_yaml(TEMPLATE)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def sam_cli() -> str:
    """The SAM CLI as an absolute path (some tests run it from another directory)."""
    candidate = os.environ.get("SAM_CLI") or shutil.which("sam") or str(ROOT / ".venv-sam/bin/sam")
    if Path(candidate).exists():
        return str(Path(candidate).absolute())
    found = shutil.which(candidate)
    if not found:
        pytest.fail("SAM CLI not found: run the suite with `make test`, which installs it")
    return found


def checkov_cli() -> str:
    """Checkov, from its own virtual environment (`make test` installs it and sets CHECKOV)."""
    candidate = os.environ.get("CHECKOV") or str(ROOT / ".venv-checkov/bin/checkov")
    if Path(candidate).exists():
        return str(Path(candidate).absolute())
    pytest.fail("Checkov not found: run the suite with `make test`, which installs it")
