"""The CLI against a test double of the sessions API (tests/cli/api_double.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from capture_cli.main import TOKEN_ENV, URL_ENV, main
from tests import openapi_contract as contract
from tests.cli.api_double import SessionsApiDouble, check_against_contract


@dataclass(frozen=True)
class Run:
    """What one `capture-bridge …` run did."""

    code: int
    out: str
    err: str


def run_cli(*argv: str, **injected: Any) -> Run:
    """`capture-bridge *argv`, in process, with its output captured."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err, **injected)
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def _no_cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own settings must not leak into the tests.
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def api() -> Iterator[SessionsApiDouble]:
    """The test double, running; afterwards every exchange is checked against the document."""
    double = SessionsApiDouble().start()
    try:
        yield double
    finally:
        double.stop()
    # A broken document fails test_contract.py once, plainly, rather than every test here.
    if contract.readable():
        check_against_contract(double)
