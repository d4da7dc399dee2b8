"""Capture providers: where what the user saw is recorded (Bugpilot, LambdaTest, Notte).

Each provider is one module behind `CaptureProvider`, found by name in `_MODULES`. A provider
reads the captures a ticket names for it, may *start* one (Bugpilot asks the user's browser;
LambdaTest and Notte sessions already exist), *checks* it, and writes its part of the note. The
rest of the bridge only sees the `Outcome` of each call.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from capture_bridge.errors import InvalidRequest, UnknownProvider

if TYPE_CHECKING:
    from capture_bridge.http import HttpClient, HttpResponse
    from capture_bridge.models import CaptureRequest, CaptureSession, TicketRequest
    from capture_bridge.settings import Settings


class Outcome(StrEnum):
    """What a start or a check came to; `capture_flow.TRANSITIONS` says what each leads to."""

    # The capture is under way; the result carries the provider's reference to check it by.
    STARTED = "started"
    # The capture exists: the result carries its links and facts.
    READY = "ready"
    NOT_READY = "not_ready"
    # The user is not online right now; starting again later may work.
    USER_OFFLINE = "user_offline"
    # Refused for a reason only an operator can fix (credentials, access, not configured).
    REJECTED = "rejected"
    # The provider failed or was unreachable; asking again later is expected to work.
    RETRYABLE = "retryable"
    # The provider does not know this capture, or we refuse to follow it.
    INVALID = "invalid"
    # Not a provider's answer: a start whose holder died before recording what came back.
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class CaptureResult:
    """A provider's answer to a start or a check."""

    outcome: Outcome
    reference: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)
    error_code: str | None = None
    message: str = ""
    retry_after_seconds: int | None = None
    # A provider that knows how long its capture can take moves the session's deadline.
    deadline_at: datetime | None = None


class CaptureProvider(Protocol):
    """One capture source."""

    name: str

    def requests_from(self, ticket: TicketRequest) -> list[CaptureRequest]:
        """The captures the ticket names for this provider; raises `InvalidRequest`."""
        ...

    def default_request(self, ticket: TicketRequest) -> CaptureRequest | None:
        """The capture to make when the ticket names none at all (only the default provider)."""
        ...

    def start(self, session: CaptureSession) -> CaptureResult:
        """Ask for the capture; never raises for an upstream failure."""
        ...

    def check(self, session: CaptureSession) -> CaptureResult:
        """Ask whether the capture is ready; never raises for an upstream failure."""
        ...

    def render_note(self, session: CaptureSession) -> list[str]:
        """The lines of the note about a finished session, before the marker line."""
        ...


# The registry: adding a capture source is one line here and its module.
_MODULES = {
    "bugpilot": "capture_bridge.capture.bugpilot",
    "lambdatest": "capture_bridge.capture.lambdatest",
    "notte": "capture_bridge.capture.notte",
}
# Asked for its default capture when a ticket names no capture at all.
DEFAULT_PROVIDER = "bugpilot"


def supported_providers() -> tuple[str, ...]:
    return tuple(_MODULES)


def provider_module(name: str) -> ModuleType:
    """The module of provider `name` (it declares `SETTINGS` and `SECRET_KEYS`)."""
    module_name = _MODULES.get(name)
    if module_name is None:
        raise UnknownProvider(f"unknown capture provider {name[:40]!r}")
    return importlib.import_module(module_name)


def get_provider(name: str, settings: Settings, http: HttpClient) -> CaptureProvider:
    """The provider called `name`; raises `UnknownProvider` for any other name."""
    provider: CaptureProvider = provider_module(name).provider(settings, http)
    return provider


def requests_for(
    ticket: TicketRequest, settings: Settings, http: HttpClient
) -> list[CaptureRequest]:
    """Every capture the ticket names, once each, in registry order; else the default one."""
    found: dict[str, CaptureRequest] = {}
    for name in _MODULES:
        for request in get_provider(name, settings, http).requests_from(ticket):
            found.setdefault(request.capture_key, request)
    if not found:
        default = get_provider(DEFAULT_PROVIDER, settings, http).default_request(ticket)
        if default is not None:
            found[default.capture_key] = default
    if not found:
        raise InvalidRequest("the request names no capture")
    return list(found.values())


_SAFE_URL = re.compile(r"^https?://[^\s<>\"'\x00-\x1f]{1,2040}$")


def is_safe_link(url: object) -> bool:
    """A plain http(s) URL that can go into a note as it is."""
    return isinstance(url, str) and _SAFE_URL.match(url) is not None


def header_seconds(response: HttpResponse, name: str = "Retry-After") -> int | None:
    """A header holding a whole number of seconds, or None."""
    raw = (response.header(name) or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 10 else None


def text_field(ticket: TicketRequest, name: str, limit: int) -> str:
    """A string (or number) field of the ticket's body, stripped; 400 naming it otherwise."""
    value: Any = ticket.fields.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"{name} must be a string")
    text = str(value).strip()
    if len(text) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters")
    return text
