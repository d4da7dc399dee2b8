"""One version, one description, and an installable command line: pyproject.toml is the source.

The OpenAPI document, the Zendesk app's manifest and the CHANGELOG repeat the version;
`pipx install .` installs the command line with pyproject's dependencies alone, so they must name
everything it imports.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from capture_bridge.capture import supported_providers
from capture_bridge.helpdesks import supported_helpdesks

ROOT = Path(__file__).resolve().parents[2]
CHANGELOG_VERSION = re.compile(r"^## (\d+\.\d+\.\d+)\b", re.MULTILINE)
REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9._-]+")
# The helpdesk the description names by what it is ("signed webhooks"), not by its name.
UNNAMED_HELPDESK = "generic"
# Modules an installed distribution brings along with it (botocore comes with boto3).
PROVIDED_BY = {"botocore": "boto3"}


def project() -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return table


def third_party_imports(package: Path) -> set[str]:
    """The top-level modules a package imports that are neither its own nor the standard library."""
    found: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names} - {package.name}


def test_the_openapi_document_has_the_projects_version() -> None:
    # given the version pyproject.toml declares
    version = project()["version"]
    # then the sessions API's document carries the same one
    document = yaml.safe_load((ROOT / "openapi" / "sessions.yaml").read_text())
    assert document["info"]["version"] == version


def test_the_zendesk_apps_manifest_has_the_projects_version() -> None:
    # given the version pyproject.toml declares, then the sidebar app (and its zip) carry it
    manifest = json.loads((ROOT / "apps" / "zendesk" / "manifest.json").read_text())
    assert manifest["version"] == project()["version"]


def test_the_changelogs_newest_entry_is_the_projects_version() -> None:
    # given the CHANGELOG's version headings, newest first
    versions = CHANGELOG_VERSION.findall((ROOT / "CHANGELOG.md").read_text())
    # then the newest is the version pyproject.toml declares
    assert versions[:1] == [project()["version"]], versions


def test_the_description_names_every_integration() -> None:
    # given the project's one-line description
    description = project()["description"].lower()
    # then it names every capture source and helpdesk, not only the first ones the bridge had
    names = [*supported_providers(), *supported_helpdesks()]
    missing = [name for name in names if name not in description and name != UNNAMED_HELPDESK]
    assert not missing, missing


def test_the_command_line_declares_every_package_it_imports() -> None:
    # given what capture_cli imports beyond the standard library
    imported = third_party_imports(ROOT / "capture_cli")
    # when each is mapped to the distribution that provides it
    needed = {PROVIDED_BY.get(name, name) for name in imported}
    # then pyproject's dependencies declare it, so `pipx install .` gives a working command
    declared = {
        match.group(0).lower()
        for requirement in project().get("dependencies", [])
        if (match := REQUIREMENT_NAME.match(requirement))
    }
    assert needed <= declared, needed - declared
