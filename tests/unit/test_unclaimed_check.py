"""Which steps may go without a claim: only a due check of a pending capture nobody holds."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from capture_bridge.capture_flow import checks_unclaimed
from capture_bridge.models import CaptureRequest, CaptureSession, NoteState, SessionStatus
from tests.conftest import START

S = SessionStatus


def pending() -> CaptureSession:
    request = CaptureRequest(
        helpdesk="zendesk",
        ticket_id="1001",
        provider="bugpilot",
        action="upload-session",
        subject="upload-session",
        user_id="user-42",
    )
    opened = CaptureSession.open(
        request, now=START, max_wait=timedelta(minutes=30), claim_id=None, next_check_at=START
    )
    return replace(opened, status=S.PENDING, reference="token-1")


def test_a_due_pending_capture_nobody_holds_is_checked_without_a_claim() -> None:
    # given a pending capture due now, unclaimed, owing nothing
    # then its check needs no claim (the check is read-only)
    assert checks_unclaimed(pending(), START)


@pytest.mark.parametrize(
    ("why", "changed"),
    [
        ("not due yet", {"next_check_at": START + timedelta(seconds=1)}),
        ("nothing due", {"next_check_at": None}),
        ("still to start: a start is an action", {"status": S.REQUESTED}),
        ("waiting for its user: a start", {"status": S.WAITING_FOR_USER}),
        ("finished, its note owed", {"status": S.RESOLVED, "note_state": NoteState.PENDING}),
        ("held, or its holder died", {"claim_id": "someone"}),
        ("it raised before: the claimed step counts its faults", {"faults": 1}),
        ("at its deadline: it ends, and owes a note", {"deadline_at": START}),
    ],
)
def test_anything_else_is_claimed_first(why: str, changed: dict[str, object]) -> None:
    # given a session that differs from a plain due check in one way
    session = replace(pending(), **changed)  # type: ignore[arg-type]
    # then its step is claimed first
    assert not checks_unclaimed(session, START), why
