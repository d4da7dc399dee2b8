"""The typed spec each capture source declares (`SPEC = ProviderSpec(...)`), and its parts.

Imported by the capture modules, so only with the first integration a function uses; the rest of
the bridge reads specs through `capture.provider_spec`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from capture_bridge.capture import (
    MAX_TEXT_LENGTH,
    TEXT_FIELD,
    CallBudget,
    CaptureProvider,
    CaptureResult,
    Outcome,
    text_field,
)
from capture_bridge.errors import InvalidRequest
from capture_bridge.models import CaptureRequest, ErrorCode

if TYPE_CHECKING:
    from capture_bridge.access import AccessCheck
    from capture_bridge.http import HttpClient
    from capture_bridge.models import CaptureSession, TicketRequest
    from capture_bridge.settings import Settings

# The sessions API's bound on `externalSessionId` (the provider then checks its own form).
MAX_EXTERNAL_ID = 128


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
    # The settings and keys its captures need that are not set, named (no call is made).
    unconfigured: Callable[[Settings], list[str]]
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
