"""Sessions for the store's tests, built without DynamoDB: the codec's unit tests use them too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from capture_bridge.models import CaptureRequest, CaptureSession

# tests.conftest's START; not imported from there, which would bring moto into unit tests.
START = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def new_session(ticket: str = "1001", claim_id: str | None = "webhook-claim") -> CaptureSession:
    """A new Bugpilot session on a Zendesk ticket, held by `claim_id` for one lease."""
    request = CaptureRequest(
        helpdesk="zendesk",
        ticket_id=ticket,
        provider="bugpilot",
        action="upload-session",
        subject="upload-session",
        user_id="user-42",
        description="Ticket",
    )
    return CaptureSession.open(
        request,
        now=START,
        max_wait=timedelta(minutes=30),
        claim_id=claim_id,
        next_check_at=START + LEASE,
    )


def unidentified_request(helpdesk: str = "hubspot", ticket: str = "512") -> CaptureRequest:
    """A Bugpilot capture whose helpdesk named only contact `c-7`: its user is still to find."""
    return CaptureRequest(
        helpdesk=helpdesk,
        ticket_id=ticket,
        provider="bugpilot",
        action="upload-session",
        subject="upload-session",
        requester_ref="c-7",
    )
