"""Unit tests are pure: no socket opens (`tests/component` has the tests that need one)."""

from __future__ import annotations

import socket
from typing import Any

import pytest


def _refused(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("unit tests open no socket: put this test in tests/component")


@pytest.fixture(autouse=True)
def _no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refused)
    monkeypatch.setattr(socket.socket, "connect_ex", _refused)
    monkeypatch.setattr(socket.socket, "bind", _refused)
