"""The layout rules, kept by test: who may import what, and what importing costs nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "layers" / "bridge" / "capture_bridge"
HANDLERS = sorted((ROOT / "functions").glob("*/*_handler.py"))


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, at any depth of the file."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        # DynamoDB lives in the session store's one client module, SQS in the work queue's;
        # settings reads the one secret.
        ("boto3", {"store/dynamodb.py", "settings.py", "work_queue.py"}),
        ("botocore", {"store/dynamodb.py", "settings.py", "work_queue.py"}),
        ("requests", {"http.py"}),
    ],
)
def test_only_one_module_talks_to_each_service(library: str, allowed: set[str]) -> None:
    users = {
        path.relative_to(PACKAGE).as_posix()
        for path in package_modules()
        if library in imported_roots(path)
    }
    assert users == allowed


def test_handlers_are_thin_entry_points() -> None:
    assert [path.parent.name for path in HANDLERS] == ["resolver", "sessions", "webhook", "worker"]
    for handler in HANDLERS:
        assert not imported_roots(handler) & {"boto3", "botocore", "requests"}, handler.name
        assert len(handler.read_text().splitlines()) < 40, handler.name


def fresh_python(probe: str) -> subprocess.CompletedProcess[str]:
    """`probe` run by a fresh interpreter with the layer and the handlers and no settings at all."""
    paths = [PACKAGE.parent, *(h.parent for h in HANDLERS)]
    return subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": ":".join(str(p) for p in paths), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_a_handler_builds_no_client_and_reads_no_setting() -> None:
    # A fresh interpreter with no settings at all: importing must still work and stay lazy.
    probe = (
        "import sys, webhook_handler, resolver_handler, sessions_handler, worker_handler\n"
        "from capture_bridge import http, settings\n"
        "assert http._client is None and settings._cached is None\n"
        "assert 'capture_bridge.helpdesks.zendesk' not in sys.modules\n"
        "assert 'capture_bridge.capture.bugpilot' not in sys.modules\n"
    )
    result = fresh_python(probe)
    assert result.returncode == 0, result.stderr


# Every module a handler's cold start loads beyond `import boto3, requests`, the standard
# library's aside: the budget (at most 1.15 times that floor, `make bench`) is spent here, so a
# new import shows up as a change to these lists in review.
FLOOR = "import boto3, requests"
SHARED_CORE = [
    "boto3.dynamodb",
    "boto3.dynamodb.types",
    "capture_bridge",
    "capture_bridge.capture",
    "capture_bridge.errors",
    "capture_bridge.helpdesks",
    "capture_bridge.http",
    "capture_bridge.metrics",
    "capture_bridge.models",
    "capture_bridge.observability",
    "capture_bridge.runtime",
    "capture_bridge.session_store",
    "capture_bridge.store",
    "capture_bridge.store.claims",
    "capture_bridge.store.codec",
    "capture_bridge.store.deliveries",
    "capture_bridge.store.dynamodb",
    "capture_bridge.store.reads",
    "capture_bridge.settings",
    "capture_bridge.work_queue",
]
# The rules of a capture's life, and the notes they end in: every handler that steps a session
# loads them; the sessions API only with its first create, refresh or cancel.
FLOW = ["capture_bridge.capture_flow", "capture_bridge.notes"]
LOADED_BEYOND_THE_FLOOR = {
    "webhook_handler": sorted(
        [
            *SHARED_CORE,
            *FLOW,
            "capture_bridge.api",
            "capture_bridge.api.edge",
            "capture_bridge.intake",
            "capture_bridge.webhook",
            "webhook_handler",
        ]
    ),
    # The resolver paces notes: the bucket's arithmetic is its own (the store's part that keeps
    # the bucket loads with the first note paced).
    "resolver_handler": sorted(
        [
            *SHARED_CORE,
            *FLOW,
            "capture_bridge.pacing",
            "capture_bridge.resolver",
            "resolver_handler",
        ]
    ),
    # The queue's worker takes the resolver's step.
    "worker_handler": sorted(
        [
            *SHARED_CORE,
            *FLOW,
            "capture_bridge.pacing",
            "capture_bridge.resolver",
            "capture_bridge.worker",
            "worker_handler",
        ]
    ),
    # Its commands (create, refresh, cancel) and the intake and flow they need load with the
    # first call that writes: the reads never need them (test_..._commands_on_first_use below;
    # tests/integration/test_sessions_api.py calls each command's route).
    "sessions_handler": sorted(
        [
            *SHARED_CORE,
            "capture_bridge.api",
            "capture_bridge.api.edge",
            "capture_bridge.api.sessions",
            "capture_bridge.api.sessions_input",
            "sessions_handler",
        ]
    ),
}
# The standard library's share varies with the Python version; boto3 loads what we use of it.
MAX_STDLIB_BEYOND_THE_FLOOR = 10


@pytest.mark.parametrize("handler", sorted(LOADED_BEYOND_THE_FLOOR))
def test_a_handler_loads_only_its_listed_modules_beyond_boto3_and_requests(handler: str) -> None:
    # given a fresh interpreter with no settings that has imported boto3 and requests
    probe = (
        f"import sys\n{FLOOR}\n"
        "before = set(sys.modules)\n"
        f"import {handler}\n"
        "print(repr(sorted(set(sys.modules) - before)))\n"
    )
    # when it imports the handler
    result = fresh_python(probe)
    assert result.returncode == 0, result.stderr
    added: list[str] = ast.literal_eval(result.stdout)
    # then it loads exactly the listed modules, a few of the standard library's,
    stdlib = [name for name in added if name.split(".")[0] in sys.stdlib_module_names]
    assert [name for name in added if name not in stdlib] == LOADED_BEYOND_THE_FLOOR[handler]
    assert len(stdlib) <= MAX_STDLIB_BEYOND_THE_FLOOR, stdlib
    # and nothing of Powertools and no integration: those load when a call needs them
    integrations = {f"capture_bridge.{p.parent.name}.{p.stem}" for p in integration_paths()}
    assert not [name for name in added if name.split(".")[0] == "aws_lambda_powertools"]
    assert not integrations & set(added)


# The start of a probe that calls the sessions API in a fresh interpreter: the handler imported
# (and none of COMMANDS with it), a runtime with the token, a store that knows no session.
SESSIONS_CALL = """\
import sys
import sessions_handler
from capture_bridge.api.sessions import handle
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import SessionPage
from capture_bridge.settings import settings_from

COMMANDS = (
    "capture_bridge.session_commands",
    "capture_bridge.intake",
    "capture_bridge.capture_flow",
)
assert not [name for name in COMMANDS if name in sys.modules]

class NoSessions:
    def get(self, session_id):
        return None

    def list_sessions(self, listing, *, limit, cursor):
        return SessionPage([], None)

settings = settings_from({"TABLE_NAME": "sessions", "SESSIONS_API_TOKEN": "t0ken"})
runtime = Runtime(settings, NoSessions(), None)
"""
ONE_SESSION_ID = "0b7c3a52-58a4-4f06-9d35-1e1f0f2a6d11"


def sessions_call(method: str, route: str, path: str, **event: object) -> str:
    """The probe that answers one call; it prints the status and which commands were loaded."""
    call = {
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "requestContext": {"http": {"method": method, "path": path}},
        "headers": {"authorization": "Bearer t0ken"},
        **event,
    }
    return SESSIONS_CALL + (
        f"answer = handle({call!r}, runtime_factory=lambda: runtime)\n"
        "print(repr((answer.status, [name for name in COMMANDS if name in sys.modules])))\n"
    )


@pytest.mark.parametrize(
    ("probe", "status"),
    [
        (
            sessions_call(
                "GET", "/sessions", "/sessions", queryStringParameters={"status": "pending"}
            ),
            200,
        ),
        (
            sessions_call(
                "GET",
                "/sessions/{sessionId}",
                f"/sessions/{ONE_SESSION_ID}",
                pathParameters={"sessionId": ONE_SESSION_ID},
            ),
            404,
        ),
    ],
    ids=["list", "show"],
)
def test_the_sessions_api_reads_without_its_commands(probe: str, status: int) -> None:
    # given a fresh interpreter that has imported the sessions handler (no command loaded yet)
    # when a caller lists sessions, or asks for one the store does not know
    result = fresh_python(probe)
    assert result.returncode == 0, result.stderr
    # then the route answers as it does warm, and loaded no command, intake or flow rule for it
    answered = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert answered == (status, [])


def test_the_sessions_api_loads_its_commands_on_first_use() -> None:
    # given a fresh interpreter that has imported the sessions handler (no command loaded yet)
    probe = sessions_call(
        "DELETE",
        "/sessions/{sessionId}",
        f"/sessions/{ONE_SESSION_ID}",
        pathParameters={"sessionId": ONE_SESSION_ID},
    )
    # when a caller cancels a session the store does not know
    result = fresh_python(probe)
    assert result.returncode == 0, result.stderr
    # then the route loaded its command, and what that needs, and answered 404 as it does warm
    # (create and refresh import theirs the same way: tests/integration/test_sessions_api.py
    # answers each, TestCreate, TestShow's refresh tests, TestCancel)
    status, loaded = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert (status, sorted(loaded)) == (
        404,
        ["capture_bridge.capture_flow", "capture_bridge.intake", "capture_bridge.session_commands"],
    )


def package_imports(path: Path) -> set[str]:
    """The `capture_bridge` modules `path` imports, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("capture_bridge")}


# Modules of an integration folder that are no integration: the rules its integrations share.
SHARED_MODULES = frozenset({"__init__.py", "common.py", "spec.py"})


def integration_paths() -> list[Path]:
    return sorted(
        path
        for folder in ("capture", "helpdesks")
        for path in (PACKAGE / folder).glob("*.py")
        if path.name not in SHARED_MODULES
    )


def test_settings_imports_nothing_from_the_package_but_errors() -> None:
    imported = package_imports(PACKAGE / "settings.py")
    assert imported <= {"capture_bridge.errors", "capture_bridge.errors.ConfigurationError"}


def test_integrations_never_import_each_other() -> None:
    integrations = {f"capture_bridge.{p.parent.name}.{p.stem}" for p in integration_paths()}
    assert len(integrations) >= 2
    for path in integration_paths():
        own = f"capture_bridge.{path.parent.name}.{path.stem}"
        reached = {".".join(name.split(".")[:3]) for name in package_imports(path)}
        assert reached & integrations <= {own}, path.name


# The shared fixtures that stand on moto's DynamoDB or a simulator's server (tests/conftest.py).
SERVER_FIXTURES = frozenset(
    {"table", "env", "configured", "runtime", "webhook", "desk"}
    | {"bugpilot", "lambdatest", "notte", "zendesk"}
)
UNIT_TESTS = sorted((ROOT / "tests" / "unit").glob("test_*.py"))


@pytest.mark.parametrize("path", UNIT_TESTS, ids=lambda path: path.name)
def test_unit_tests_use_no_aws_double_and_no_server(path: Path) -> None:
    # given a unit test module (sockets are refused at run time by tests/unit/conftest.py)
    tree = ast.parse(path.read_text())
    # then it imports no AWS double, and asks for no fixture that starts a server or a table
    assert not imported_roots(path) & {"moto"}, path.name
    modules = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "tests.dynamodb_faults" not in modules, path.name
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            asked = {arg.arg for arg in node.args.args}
            assert not asked & SERVER_FIXTURES, f"{path.name}::{node.name}"


def test_a_unit_test_that_opens_a_socket_fails() -> None:
    # given the unit tests' guard, when a socket is opened, then the test fails saying where to go
    import socket

    with (
        socket.socket() as probe,
        pytest.raises(RuntimeError, match=r"tests/component"),
    ):
        probe.connect(("127.0.0.1", 9))
