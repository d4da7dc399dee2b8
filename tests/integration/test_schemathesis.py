"""Schemathesis against the local runner, as a new user's tooling would run it on the document.

Every phase (examples, coverage, fuzzing, stateful) and every check but one: the document must
say exactly what the API accepts, answers and refuses. The run is bounded (examples per
operation, a fixed seed, no example database) and offline: the local runner, the capture sources'
simulators and DynamoDB (moto) all listen on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from local_runner.demo import SESSIONS_API_TOKEN, demo_env, running
from local_runner.runner import LocalRunner
from local_runner.simulators import HELPDESK_SIMULATORS, PROVIDER_SIMULATORS
from tests.conftest import ROOT

DOCUMENT = ROOT / "openapi" / "sessions.yaml"
# Enough for each phase to reach every rule of the document in well under a minute or two.
MAX_EXAMPLES = 30
SEED = 20261206
RUN_SECONDS = 300
# Deleting a session cancels it: it stays readable, as `cancelled` (the document says so). The
# check assumes a DELETE makes the resource disappear.
EXCLUDED_CHECKS = "use_after_free"


@pytest.fixture
def local_api() -> Iterator[str]:
    """The local runner with its sessions API on the simulators; yields its URL."""
    with ExitStack() as stack:
        providers = {
            name: stack.enter_context(running(make())) for name, make in PROVIDER_SIMULATORS.items()
        }
        # Every helpdesk configured, so that each the document lists can be asked for.
        desks = [stack.enter_context(running(make())) for make in HELPDESK_SIMULATORS.values()]
        env = demo_env(desks[0], providers, verbose=False)
        for desk in desks[1:]:
            env.update(desk.bridge_settings())
        runner = stack.enter_context(
            LocalRunner(port=0, start_schedules=False, env=env, embedded_dynamodb=True)
        )
        yield runner.url


def test_schemathesis_finds_nothing_the_document_does_not_say(
    local_api: str, tmp_path: Path
) -> None:
    # Given the local runner serving the sessions API, and the hooks that read the document's
    # two extensions (tests/schemathesis_hooks.py)
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
        "NO_COLOR": "1",
    }
    # When every phase of Schemathesis runs against it with every check
    result = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            str(DOCUMENT),
            "--url",
            local_api,
            "--header",
            f"Authorization: Bearer {SESSIONS_API_TOKEN}",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED_CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--no-color",
        ],
        # Schemathesis keeps its replay cache in the working directory: not in the project.
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    # Then it finds no failure and no warning, and it really ran every phase
    report = result.stdout[-20_000:] + result.stderr[-5_000:]
    assert result.returncode == 0, report
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in result.stdout, report
    assert "WARNINGS" not in result.stdout, report


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/sessions", "GET, POST"),
        ("PATCH", "/sessions", "GET, POST"),
        ("OPTIONS", "/sessions", "GET, POST"),
        ("TRACE", "/sessions/0b0e0c5e-53a4-4c4e-9a4b-4a8e8d1c2f10", "DELETE, GET"),
        ("PROPFIND", "/sessions/0b0e0c5e-53a4-4c4e-9a4b-4a8e8d1c2f10", "DELETE, GET"),
    ],
)
def test_the_local_runner_answers_any_other_method_as_the_function_does(
    local_api: str, method: str, path: str, allowed: str
) -> None:
    # Given the local runner; when a path of the sessions API gets a method it does not list
    headers = {"Authorization": f"Bearer {SESSIONS_API_TOKEN}"}
    response = requests.request(method, f"{local_api}{path}", headers=headers, timeout=10)
    # Then the function's JSON 405 comes back, with the methods the path has
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.json() == {"detail": f"Method {method} not allowed"}
