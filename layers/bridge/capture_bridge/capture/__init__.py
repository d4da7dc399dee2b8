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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from capture_bridge.errors import InvalidRequest, UnknownProvider
from capture_bridge.models import CaptureRequest, ErrorCode, field_text, http_error

if TYPE_CHECKING:
    from capture_bridge.access import AccessCheck
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


@dataclass(frozen=True)
class BodyField:
    """A field of a helpdesk's body that a provider reads, in both spellings a body may use."""

    # In the rule body every rule-based helpdesk posts (snake_case): `lambdatest_session_id`.
    rule: str
    # In the generic webhook's body (camelCase): `lambdatestSessionId`.
    generic: str


class ApiTarget(StrEnum):
    """Where a field of the sessions API's create body goes (`sessions.NewSession`)."""

    REQUESTER = "requester"
    ACTION = "action"
    DESCRIPTION = "description"
    EXTERNAL_SESSION_ID = "external_session_id"


@dataclass(frozen=True)
class ApiField:
    """A field of `POST /sessions` that this provider reads, and how it is checked."""

    # As the API spells it (camelCase).
    name: str
    target: ApiTarget
    max_length: int
    required: bool = False
    pattern: re.Pattern[str] | None = None
    # The values it may take; empty for any text.
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderSpec:
    """Everything the bridge, its operators' tools and the sessions API know of one source."""

    # The name on every session and in the sessions API's `provider`.
    name: str
    # Builds the provider, timing its calls for a budget: `provider(settings, http, budget)`.
    provider: Callable[[Settings, HttpClient, CallBudget], CaptureProvider]
    # One read-only call proving the stored credentials (`ops doctor`); never in the request path.
    probe: Callable[[Settings, HttpClient], AccessCheck]
    # The longest a start or a check can take, every call at its timeouts (the resolver's budget).
    longest_step_seconds: float
    # Settings read from the functions' environment (template parameters).
    settings: tuple[str, ...] = ()
    # Keys read from the bridge secret, all needed to use it.
    secret_keys: tuple[str, ...] = ()
    # The fields of a helpdesk's body it reads (besides `text`, which every provider may read).
    body_fields: tuple[BodyField, ...] = ()
    # The fields of the sessions API's create body it reads, and which of them one is required.
    api_fields: tuple[ApiField, ...] = ()
    api_one_of: tuple[str, ...] = ()
    # The actions its captures take (Bugpilot's kinds of capture); empty for a single kind.
    actions: tuple[str, ...] = ()
    # Its links stop working, so a finished session's links may be read again (refresh).
    links_expire: bool = False
    # How a ticket names its existing sessions; None for a provider that starts captures.
    named: NamedSessions | None = None


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
            error_code=ErrorCode.INVALID_CREDENTIALS if status == 401 else "NO_ACCESS",
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
# The sessions API's bound on `externalSessionId` (the provider then checks its own form).
MAX_EXTERNAL_ID = 128


@dataclass(frozen=True)
class NamedSessions:
    """How a ticket names a provider's existing sessions: one body field, and links in `text`."""

    provider: str
    action: str
    field: str
    # A whole valid id, and what one looks like (for the 400 naming the field).
    id_pattern: re.Pattern[str]
    id_hint: str
    # Links naming a session on the vendor's own hosts; group 1 is the id.
    links: tuple[re.Pattern[str], ...]
    max_id_length: int = 64
    lowercase: bool = False

    def api_field(self) -> ApiField:
        """The sessions API's `externalSessionId`, which names one such session."""
        return ApiField(
            "externalSessionId", ApiTarget.EXTERNAL_SESSION_ID, MAX_EXTERNAL_ID, required=True
        )

    def ids_in(self, text: str) -> list[str]:
        """Session ids named by links in free text, in order, once each."""
        found = (match.group(1) for link in self.links for match in link.finditer(text))
        return list(dict.fromkeys(self._normal(session_id) for session_id in found))

    def requests_from(self, ticket: TicketRequest) -> list[CaptureRequest]:
        """A capture per session the field or the text names, each once."""
        ids: list[str] = []
        named = text_field(ticket, self.field, self.max_id_length)
        if named:
            if not self.id_pattern.match(named):
                raise InvalidRequest(f"{self.field} must be {self.id_hint}")
            ids.append(self._normal(named))
        ids.extend(self.ids_in(text_field(ticket, TEXT_FIELD, MAX_TEXT_LENGTH)))
        return [
            CaptureRequest(
                helpdesk=ticket.helpdesk,
                ticket_id=ticket.ticket_id,
                provider=self.provider,
                action=self.action,
                subject=session_id,
                user_id=ticket.requester,
                reference=session_id,
            )
            for session_id in dict.fromkeys(ids)
        ]

    def _normal(self, session_id: str) -> str:
        return session_id.lower() if self.lowercase else session_id


class ExistingSessions:
    """Base of the providers whose captures exist before a ticket names them."""

    named: NamedSessions

    def requests_from(self, ticket: TicketRequest) -> list[CaptureRequest]:
        """The sessions the ticket names for this provider."""
        return self.named.requests_from(ticket)

    def default_request(self, ticket: TicketRequest) -> CaptureRequest | None:
        """Never the capture a ticket gets without naming one."""
        return None

    def start(self, session: CaptureSession) -> CaptureResult:
        """The session exists already: there is nothing to start."""
        return CaptureResult(Outcome.INVALID, error_code=ErrorCode.NOTHING_TO_START)
