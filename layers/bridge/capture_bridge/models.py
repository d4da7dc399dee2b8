"""What a helpdesk asks for, the capture requests read from it, and the sessions we keep."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from capture_bridge.errors import InvalidRequest


class ErrorCode(StrEnum):
    """The bridge's own codes for why a capture failed or waits (`CaptureSession.error`).

    A vendor's own code (Bugpilot's `INVALID_API_KEY`, `USER_NOT_CONNECTED`) is kept as the
    vendor wrote it, and an HTTP answer without one as `http_error(status)`: stored values are
    a contract with deployed stacks, so each member's value is the text stored before it.
    """

    # No answer at all (refused, unresolvable, timed out).
    UNREACHABLE = "UNREACHABLE"
    # An answer we could not read.
    UNEXPECTED_RESPONSE = "UNEXPECTED_RESPONSE"
    # The source's settings or keys are not there.
    NOT_CONFIGURED = "NOT_CONFIGURED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    NO_ACCESS = "NO_ACCESS"
    # The source does not know the capture.
    NOT_FOUND = "NOT_FOUND"
    INVALID_SESSION_ID = "INVALID_SESSION_ID"
    # A source whose sessions exist already was asked to start one.
    NOTHING_TO_START = "NOTHING_TO_START"
    # A start whose holder died before it recorded what came back.
    INTERRUPTED = "INTERRUPTED"
    # A start that may have been carried out, with no answer saying so.
    UNCONFIRMED = "UNCONFIRMED"
    # The bridge itself kept failing on the session (`MAX_CONSECUTIVE_FAULTS`).
    BRIDGE_ERROR = "BRIDGE_ERROR"
    # Not ready yet: the test or browser session still runs; the report is not there yet.
    SESSION_RUNNING = "SESSION_RUNNING"
    SESSION_ACTIVE = "SESSION_ACTIVE"
    REPORT_NOT_FOUND = "REPORT_NOT_FOUND"
    # The source is overloaded (Notte's 529).
    OVERLOADED = "OVERLOADED"
    # A link the source gave that is not on its own hosts.
    UNTRUSTED_SESSION_INFO_URL = "UNTRUSTED_SESSION_INFO_URL"
    UNKNOWN = "UNKNOWN"
    # The helpdesk, asked who the requester is (its payload named only a contact), said: nobody
    # with an id or email; refused our credentials; or kept failing until the deadline.
    REQUESTER_NOT_FOUND = "REQUESTER_NOT_FOUND"
    REQUESTER_LOOKUP_REJECTED = "REQUESTER_LOOKUP_REJECTED"
    REQUESTER_LOOKUP_FAILING = "REQUESTER_LOOKUP_FAILING"


def http_error(status: int) -> str:
    """The code of an HTTP answer that named no code of its own: `HTTP_<status>`."""
    return f"HTTP_{status}"


class SessionStatus(StrEnum):
    """Where a capture session is in its life; the last four are final."""

    REQUESTED = "requested"
    PENDING = "pending"
    WAITING_FOR_USER = "waiting_for_user"
    RESOLVED = "resolved"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    # Stopped by a caller of the sessions API: final, and owes the ticket no note.
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {
        SessionStatus.RESOLVED,
        SessionStatus.FAILED,
        SessionStatus.TIMED_OUT,
        SessionStatus.CANCELLED,
    }
)


class NoteState(StrEnum):
    """Delivery of the one internal note a finished session owes its ticket."""

    PENDING = "pending"
    POSTED = "posted"
    UNDELIVERABLE = "undeliverable"


def storable_text(name: str, text: str) -> str:
    """`text` if DynamoDB can store it (valid UTF-8: no lone surrogate); a 400 naming it otherwise.

    JSON allows escapes such as "\\ud800" (and Python's decoder lets the raw bytes through too),
    which only the store would refuse, answered as an outage the sender retries forever.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{name} is not valid UTF-8 text") from None
    return text


def field_text(fields: Mapping[str, Any], name: str, limit: int) -> str:
    """A string (or number) field of a webhook body, stripped; a 400 naming it otherwise."""
    value = fields.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"{name} must be a string")
    text = str(value).strip()
    if len(text) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters")
    return storable_text(name, text)


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery as its helpdesk identifies it, and how long to recognise it again.

    `fingerprint` is the same for every redelivery of the same call and differs between calls;
    `remember_for` covers the helpdesk's own retries (a signed, time-limited scheme needs little;
    one that retries for hours without a delivery id needs more).
    """

    fingerprint: str
    remember_for: timedelta


@dataclass(frozen=True)
class TicketRequest:
    """A verified helpdesk call asking for captures on one ticket, before any provider reads it."""

    helpdesk: str
    ticket_id: str
    # Who the ticket is about, as the capture sources know them (external id, else email).
    requester: str
    # How the ticket is named in texts, e.g. "Zendesk ticket #1001".
    label: str
    # The body's other top-level fields, unread: each capture provider reads its own.
    fields: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    # The body's own names for the requester, for a 400 when a source needs one and it is empty.
    requester_fields: str = "the requester's external id or email"
    # When the payload names only a contact: the helpdesk's own reference to look the requester
    # up by (`HelpdeskAdapter.find_requester`), once, after the session is stored.
    requester_ref: str = ""
    # This ticket's own delivery, for a call carrying several events each with its own id
    # (HubSpot's `eventId`); None: the call's delivery (`HelpdeskAdapter.verify`).
    delivery: Delivery | None = None

    @property
    def names_requester(self) -> bool:
        """Whether a requester is given, or can be looked up."""
        return bool(self.requester or self.requester_ref)


@dataclass(frozen=True)
class CaptureRequest:
    """One capture a ticket asks for, from one provider."""

    helpdesk: str
    ticket_id: str
    provider: str
    # What is captured: the provider's action, e.g. "upload-session" or "test-session".
    action: str
    # Identity of "the same capture" within the ticket and provider (an action, a session id).
    subject: str
    user_id: str = ""
    description: str = ""
    # The provider's own reference when the capture already exists (an external session id).
    reference: str | None = None
    # The helpdesk's reference to look the requester up by, when `user_id` is still unknown.
    requester_ref: str = ""

    @property
    def capture_key(self) -> str:
        """One open capture per ticket, provider and subject."""
        return f"{self.helpdesk}#{self.ticket_id}#{self.provider}#{self.subject}"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, fixed width, so that strings sort in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Inverse of `format_time`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def ticket_key(helpdesk: str, ticket_id: str) -> str:
    """One ticket of one helpdesk, as a single string (the by-ticket index's partition)."""
    return f"{helpdesk}#{ticket_id}"


# Finished sessions are kept this long for support questions, then DynamoDB's TTL removes them.
RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class CaptureSession:
    """One capture request and everything that happened to it since."""

    session_id: str
    helpdesk: str
    ticket_id: str
    provider: str
    action: str
    capture_key: str
    status: SessionStatus
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime
    next_check_at: datetime | None
    user_id: str = ""
    description: str = ""
    # Starts sent (a provider's capture action), and checks made.
    attempts: int = 0
    polls: int = 0
    # Starts that may have been carried out without the provider confirming them.
    unconfirmed: int = 0
    # Runs that found the previous holder dead. That holder may have posted the note, so once
    # this is set, any note is looked for on the ticket before it is posted.
    interruptions: int = 0
    # The provider's handle on the capture: Bugpilot's session-info URL, an external session id.
    reference: str | None = None
    # The helpdesk's reference to the requester while `user_id` is unknown: looked up once,
    # before the capture starts (`capture_flow.identify`).
    requester_ref: str | None = None
    # What the provider found once the capture was ready: named links and facts.
    links: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    # Steps that raised in a row (reset by a step that completes), and the last one's error
    # text: exception type and a short message, redacted. See `capture_flow.MAX_CONSECUTIVE_FAULTS`.
    faults: int = 0
    fault: str | None = None
    note_state: NoteState | None = None
    note_attempts: int = 0
    # The time of a token its helpdesk's bucket holds for the note (taken ahead, `store.pace`):
    # the note posts then, taking no other. One try uses it (`capture_flow.deliver_note`).
    note_token_at: datetime | None = None
    claim_id: str | None = None
    expires_at: int | None = None
    # When the status became final; None while open.
    closed_at: datetime | None = None

    @classmethod
    def open(
        cls,
        request: CaptureRequest,
        *,
        now: datetime,
        max_wait: timedelta,
        claim_id: str | None,
        next_check_at: datetime,
    ) -> CaptureSession:
        """A new session for `request`; one that still has to be started opens `requested`."""
        return cls(
            session_id=str(uuid.uuid4()),
            helpdesk=request.helpdesk,
            ticket_id=request.ticket_id,
            provider=request.provider,
            action=request.action,
            capture_key=request.capture_key,
            user_id=request.user_id,
            description=request.description,
            reference=request.reference,
            requester_ref=request.requester_ref or None,
            status=SessionStatus.REQUESTED if request.reference is None else SessionStatus.PENDING,
            created_at=now,
            updated_at=now,
            deadline_at=now + max_wait,
            next_check_at=next_check_at,
            claim_id=claim_id,
        )

    @property
    def ticket_key(self) -> str:
        """The ticket as the by-ticket index names it: `<helpdesk>#<ticket id>`."""
        return ticket_key(self.helpdesk, self.ticket_id)

    @property
    def has_work(self) -> bool:
        """Whether the resolver still has something to do: a capture to finish or a note to post."""
        return not self.status.is_final or self.note_state is NoteState.PENDING

    def finish(
        self,
        status: SessionStatus,
        *,
        now: datetime,
        error: str | None = None,
        links: Mapping[str, str] | None = None,
        details: Mapping[str, str] | None = None,
    ) -> CaptureSession:
        """Move to a final status; the ticket is owed one note about it."""
        return replace(
            self,
            status=status,
            error=error,
            links=dict(links) if links else self.links,
            details=dict(details) if details else self.details,
            note_state=NoteState.PENDING,
            next_check_at=now,
            updated_at=now,
            closed_at=now,
            expires_at=int((now + RETENTION).timestamp()),
        )
