"""The note sub-machine (`capture_flow.deliver_note`), applied directly: no DynamoDB, no HTTP.

One request gives at most one note: a first try posts; any later try (or one after a holder
died) looks for the note first and posts only when the ticket says it has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest

from capture_bridge.capture_flow import (
    MAX_NOTE_ATTEMPTS,
    MAX_NOTE_DELAY,
    MAX_RETRY_AFTER,
    NOTE_RETRY_BASE,
    NoteTurn,
    awaiting_token,
    deliver_note,
    note_turn,
)
from capture_bridge.helpdesks import NoteOutcome, NoteResult
from capture_bridge.models import CaptureSession, NoteState, SessionStatus
from capture_bridge.notes import Note, marker
from capture_bridge.pacing import Take
from tests.store_sessions import START, new_session

NOW = START + timedelta(minutes=5)
REPORT = "https://dash.bugpilot.io/report/r1"


@dataclass
class Desk:
    """A helpdesk adapter that answers as scripted and records what it was asked."""

    answer: NoteResult = field(default_factory=lambda: NoteResult(NoteOutcome.POSTED, status=201))
    has: bool | None = False
    posted: list[tuple[str, Note]] = field(default_factory=list)
    looked: list[tuple[str, str]] = field(default_factory=list)
    name: str = "zendesk"

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        self.posted.append((ticket_id, note))
        return self.answer

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        self.looked.append((ticket_id, marker))
        return self.has


class Source:
    """A capture provider whose note is one line."""

    name = "bugpilot"

    def render_note(self, session: CaptureSession) -> list[str]:
        return [f"The capture is ready: {REPORT}"]


def finished(**changes: object) -> CaptureSession:
    """A resolved session that owes its note."""
    done = new_session(claim_id=None).finish(
        SessionStatus.RESOLVED, now=START, links={"report": REPORT}
    )
    return replace(done, **changes)  # type: ignore[arg-type]


def deliver(session: CaptureSession, desk: Desk) -> CaptureSession:
    return deliver_note(session, desk, Source(), NOW)  # type: ignore[arg-type]


class TestFirstTry:
    def test_a_posted_note_is_settled_without_looking_first(self) -> None:
        # given a session owing its first note, and a helpdesk that takes it
        desk = Desk()
        # when the note is delivered
        after = deliver(finished(), desk)
        # then it was posted once, with the session's marker, and nothing more is due
        [(ticket, note)] = desk.posted
        assert ticket == "1001"
        assert marker(after) in note.text
        assert REPORT in note.text
        assert desk.looked == []
        assert (after.note_state, after.note_attempts, after.next_check_at) == (
            NoteState.POSTED,
            1,
            None,
        )

    def test_a_refused_note_is_undeliverable_and_never_tried_again(self) -> None:
        desk = Desk(answer=NoteResult(NoteOutcome.REJECTED, "Zendesk answered HTTP 404", None, 404))
        after = deliver(finished(), desk)
        assert (after.note_state, after.note_attempts, after.next_check_at) == (
            NoteState.UNDELIVERABLE,
            1,
            None,
        )
        assert not after.has_work

    def test_a_retryable_answer_waits_as_long_as_retry_after_says(self) -> None:
        desk = Desk(answer=NoteResult(NoteOutcome.RETRYABLE, "429", 120, 429))
        after = deliver(finished(), desk)
        assert (after.note_state, after.note_attempts) == (NoteState.PENDING, 1)
        assert after.next_check_at == NOW + timedelta(seconds=120)

    def test_a_retry_after_beyond_the_bound_waits_the_bound(self) -> None:
        desk = Desk(answer=NoteResult(NoteOutcome.RETRYABLE, "429", 10**6, 429))
        after = deliver(finished(), desk)
        assert after.next_check_at == NOW + MAX_RETRY_AFTER


class TestLaterTries:
    @pytest.mark.parametrize(
        "earlier", [{"note_attempts": 1}, {"interruptions": 1}], ids=["retried", "interrupted"]
    )
    def test_a_note_already_on_the_ticket_is_not_posted_again(
        self, earlier: dict[str, int]
    ) -> None:
        # given a session whose earlier try may have landed, and a ticket that has the note
        desk = Desk(has=True)
        session = finished(**earlier)
        # when the note is delivered again
        after = deliver(session, desk)
        # then the ticket was read for the marker, nothing posted, and the note is settled
        assert desk.looked == [("1001", marker(session))]
        assert desk.posted == []
        assert (after.note_state, after.next_check_at) == (NoteState.POSTED, None)

    def test_a_ticket_without_the_note_gets_it(self) -> None:
        desk = Desk(has=False)
        after = deliver(finished(note_attempts=2), desk)
        assert len(desk.looked) == len(desk.posted) == 1
        assert (after.note_state, after.note_attempts) == (NoteState.POSTED, 3)

    def test_a_ticket_that_cannot_be_read_posts_nothing_and_waits(self) -> None:
        # given a later try, and a helpdesk that cannot say whether the note is there
        desk = Desk(has=None)
        after = deliver(finished(note_attempts=1), desk)
        # then nothing is posted (it could be a second note), and it is tried again later
        assert desk.posted == []
        assert (after.note_state, after.note_attempts) == (NoteState.PENDING, 2)
        assert after.next_check_at == NOW + NOTE_RETRY_BASE * 2


class TestRetries:
    def test_retries_back_off_doubling_up_to_the_cap(self) -> None:
        # given a helpdesk that keeps failing without a Retry-After
        desk = Desk(answer=NoteResult(NoteOutcome.RETRYABLE, "HTTP 503", None, 503), has=False)
        session = finished()
        waits = []
        # when the note is tried until it is given up
        while session.note_state is NoteState.PENDING:
            session = deliver(session, desk)
            if session.next_check_at is not None:
                waits.append(session.next_check_at - NOW)
        # then each wait doubles from the base, capped, and it ends undeliverable at the bound
        expected = [
            min(NOTE_RETRY_BASE * 2**step, MAX_NOTE_DELAY) for step in range(MAX_NOTE_ATTEMPTS - 1)
        ]
        assert waits == expected
        assert (session.note_state, session.note_attempts) == (
            NoteState.UNDELIVERABLE,
            MAX_NOTE_ATTEMPTS,
        )
        assert len(desk.posted) == MAX_NOTE_ATTEMPTS
        # and every try after the first looked for the note first
        assert len(desk.looked) == MAX_NOTE_ATTEMPTS - 1

    def test_the_last_allowed_try_gives_up_instead_of_waiting(self) -> None:
        desk = Desk(answer=NoteResult(NoteOutcome.RETRYABLE, "HTTP 502", None, 502), has=False)
        after = deliver(finished(note_attempts=MAX_NOTE_ATTEMPTS - 1), desk)
        assert (after.note_state, after.note_attempts, after.next_check_at) == (
            NoteState.UNDELIVERABLE,
            MAX_NOTE_ATTEMPTS,
            None,
        )


class TestPace:
    """A note goes out only on a token of its helpdesk's bucket; without one it waits its turn."""

    def test_a_token_sends_and_none_waits(self) -> None:
        assert note_turn(Take(True, NOW)) is NoteTurn.SEND
        assert note_turn(Take(False, NOW)) is NoteTurn.WAIT

    def test_a_note_waiting_for_a_token_is_due_then_and_nothing_else_changes(self) -> None:
        # given a session owing a note tried once before, and no token for 40 s
        owed = finished(note_attempts=1)
        token_at = NOW + timedelta(seconds=40)
        # when it waits
        waiting = awaiting_token(owed, token_at, NOW)
        # then it is due when the token comes, still owing its note, and the wait is no attempt
        assert waiting.next_check_at == token_at
        assert waiting.note_state is NoteState.PENDING
        assert waiting.note_attempts == 1
        assert replace(waiting, next_check_at=None, updated_at=START) == replace(
            owed, next_check_at=None, updated_at=START
        )
        # and a token already come leaves it due at once, never in the past
        assert awaiting_token(owed, NOW - timedelta(seconds=5), NOW).next_check_at == NOW

    def test_the_answer_to_the_post_is_heard_for_the_pace(self) -> None:
        heard: list[NoteResult] = []
        answer = NoteResult(NoteOutcome.POSTED, status=201, rate_remaining=7)
        deliver_note(finished(), Desk(answer=answer), Source(), NOW, on_answer=heard.append)  # type: ignore[arg-type]
        assert heard == [answer]
