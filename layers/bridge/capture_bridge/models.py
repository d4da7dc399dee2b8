"""The capture request a helpdesk sends us and the capture session we keep for it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class SessionStatus(StrEnum):
    """Where a capture session is in its life; the last three are final."""

    REQUESTED = "requested"
    PENDING = "pending"
    WAITING_FOR_USER = "waiting_for_user"
    RESOLVED = "resolved"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in (SessionStatus.RESOLVED, SessionStatus.FAILED, SessionStatus.TIMED_OUT)


class NoteState(StrEnum):
    """Delivery of the one internal note a finished session owes its ticket."""

    PENDING = "pending"
    POSTED = "posted"
    UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True)
class CaptureRequest:
    """A helpdesk's request to capture what the ticket's requester sees."""

    helpdesk: str
    ticket_id: str
    user_id: str
    action: str
    description: str


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, fixed width, so that strings sort in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Inverse of `format_time`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# Finished sessions are kept this long for support questions, then DynamoDB's TTL removes them.
RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class CaptureSession:
    """One capture request and everything that happened to it since."""

    session_id: str
    helpdesk: str
    ticket_id: str
    user_id: str
    action: str
    description: str
    status: SessionStatus
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime
    next_check_at: datetime | None
    # Capture actions sent, and Session Info polls made.
    attempts: int = 0
    polls: int = 0
    session_info_url: str | None = None
    report_url: str | None = None
    error: str | None = None
    note_state: NoteState | None = None
    note_attempts: int = 0
    claim_id: str | None = None
    expires_at: int | None = None

    @classmethod
    def open(
        cls,
        request: CaptureRequest,
        *,
        now: datetime,
        max_wait: timedelta,
        claim_id: str,
        claimed_until: datetime,
    ) -> CaptureSession:
        """A new session for `request`, claimed until `claimed_until` by whoever opens it."""
        return cls(
            session_id=str(uuid.uuid4()),
            helpdesk=request.helpdesk,
            ticket_id=request.ticket_id,
            user_id=request.user_id,
            action=request.action,
            description=request.description,
            status=SessionStatus.REQUESTED,
            created_at=now,
            updated_at=now,
            deadline_at=now + max_wait,
            next_check_at=claimed_until,
            claim_id=claim_id,
        )

    @property
    def open_capture_key(self) -> str:
        """Identity of "the same capture": one open session per ticket and action."""
        return f"{self.helpdesk}#{self.ticket_id}#{self.action}"

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
        report_url: str | None = None,
    ) -> CaptureSession:
        """Move to a final status; the ticket is owed one note about it."""
        return replace(
            self,
            status=status,
            error=error,
            report_url=report_url or self.report_url,
            note_state=NoteState.PENDING,
            next_check_at=now,
            updated_at=now,
            expires_at=int((now + RETENTION).timestamp()),
        )
