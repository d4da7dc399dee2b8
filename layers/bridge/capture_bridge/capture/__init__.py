"""Capture providers: where what the user saw is recorded (Bugpilot, LambdaTest, Notte).

Each provider is one module behind `CaptureProvider`, found by name in `_MODULES`, that declares
itself in one `SPEC = ProviderSpec(...)`. A provider reads the captures a ticket names for it, may
*start* one (Bugpilot asks the user's browser; LambdaTest and Notte sessions already exist),
*checks* it, and writes its part of the note. The rest of the bridge only sees the `Outcome` of
each call. `docs/extending.md` walks through adding one.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from capture_bridge.errors import InvalidRequest, UnknownProvider
from capture_bridge.models import CaptureRequest, ErrorCode, field_text, http_error

if TYPE_CHECKING:
    from capture_bridge.capture.spec import ProviderSpec
    from capture_bridge.http import HttpClient, HttpResponse
    from capture_bridge.models import CaptureSession, TicketRequest
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
    # The start may have been carried out, but no answer said so (a read timeout, a connection
    # dropped after sending, a gateway timeout): sending it again could capture twice.
    UNCONFIRMED = "unconfirmed"


# The error of a session ended because its steps kept raising (a defect or an unforeseen answer),
# and what every provider's note says of it.
BRIDGE_ERROR = ErrorCode.BRIDGE_ERROR
BRIDGE_ERROR_REASON = (
    "the capture bridge itself kept failing while handling this capture (its operators are "
    "alerted); request the capture again."
)


class CallBudget(StrEnum):
    """How long a provider's call may take, by who is waiting for it."""

    # A helpdesk waits on the webhook's answer (Zendesk gives up after about ten seconds).
    INTERACTIVE = "interactive"
    # The scheduled resolver: nobody waits, so slow answers are waited for rather than lost.
    BACKGROUND = "background"


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
    # For UNCONFIRMED: the start is one the user would not notice twice (a silent capture).
    repeatable: bool = False


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


# The registry: adding a capture source is one line here and its module (which declares `SPEC`).
_MODULES = {
    "bugpilot": "capture_bridge.capture.bugpilot",
    "lambdatest": "capture_bridge.capture.lambdatest",
    "notte": "capture_bridge.capture.notte",
}
# Asked for its default capture when a ticket names no capture at all.
DEFAULT_PROVIDER = "bugpilot"


def supported_providers() -> tuple[str, ...]:
    return tuple(_MODULES)


def provider_spec(name: str) -> ProviderSpec:
    """The spec of provider `name`, importing its module; raises `UnknownProvider` otherwise."""
    # Imported with the first integration: a handler's cold start does not build these types.
    from capture_bridge.capture.spec import ProviderSpec

    module_name = _MODULES.get(name)
    if module_name is None:
        raise UnknownProvider(f"unknown capture provider {name[:40]!r}")
    spec = importlib.import_module(module_name).SPEC
    if not isinstance(spec, ProviderSpec) or spec.name != name:
        raise TypeError(f"{module_name}.SPEC must be the ProviderSpec named {name!r}")
    return spec


def provider_specs() -> tuple[ProviderSpec, ...]:
    """Every provider's spec, in registry order."""
    return tuple(provider_spec(name) for name in _MODULES)


def body_field_names() -> dict[str, str]:
    """Every body field some provider reads, by each spelling a body may use, to its rule name.

    The generic webhook reads its camelCase body through this: `lambdatestSessionId` and
    `lambdatest_session_id` are both `lambdatest_session_id`; `text` is read by every provider.
    """
    names = {TEXT_FIELD: TEXT_FIELD}
    for spec in provider_specs():
        for body_field in spec.body_fields:
            names[body_field.rule] = body_field.rule
            names[body_field.generic] = body_field.rule
    return names


def get_provider(
    name: str,
    settings: Settings,
    http: HttpClient,
    budget: CallBudget = CallBudget.BACKGROUND,
) -> CaptureProvider:
    """The provider called `name`, timing its calls for `budget`; raises `UnknownProvider`."""
    return provider_spec(name).provider(settings, http, budget)


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
    return field_text(ticket.fields, name, limit)


def unreachable(exc: Exception) -> CaptureResult:
    """No answer at all: asking again later is expected to work."""
    return CaptureResult(Outcome.RETRYABLE, error_code=ErrorCode.UNREACHABLE, message=str(exc))


def failed_answer(response: HttpResponse, vendor: str) -> CaptureResult:
    """What a session API's answer other than 200 comes to (LambdaTest's and Notte's rules)."""
    status = response.status
    if status in (401, 403):
        return CaptureResult(
            Outcome.REJECTED,
            error_code=ErrorCode.INVALID_CREDENTIALS if status == 401 else ErrorCode.NO_ACCESS,
            message=f"{vendor} answered HTTP {status}",
        )
    if status == 404:
        return CaptureResult(Outcome.INVALID, error_code=ErrorCode.NOT_FOUND)
    if status == 429 or status >= 500:
        return CaptureResult(
            Outcome.RETRYABLE,
            error_code=http_error(status),
            retry_after_seconds=header_seconds(response),
        )
    return CaptureResult(
        Outcome.REJECTED, error_code=http_error(status), message=f"{vendor} answered HTTP {status}"
    )


# The body field whose links to sessions are followed (e.g. the ticket's latest comment).
TEXT_FIELD = "text"
MAX_TEXT_LENGTH = 20_000
