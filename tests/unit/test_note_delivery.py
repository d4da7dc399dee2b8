"""The note sub-machine (`capture_flow.deliver_note`), applied directly: no DynamoDB, no HTTP.

One request gives at most one note: a first try posts; any later try (or one after a holder
died) looks for the note first and posts only when the ticket says it has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest

from capture_bridge.capture_flow import (
    LATE_TOKEN,
    MAX_NOTE_ATTEMPTS,
    MAX_NOTE_DELAY,
    MAX_RETRY_AFTER,
    NOTE_RETRY_BASE,
    RESERVATION_HORIZON,
    NoteTurn,
    awaiting_token,
    deliver_note,
    held_token,
    note_turn,
    token_horizon,
)
from capture_bridge.helpdesks import NoteOutcome, NoteResult
from capture_bridge.models import CaptureSession, NoteState, SessionStatus
from capture_bridge.notes import Note, marker
from capture_bridge.pacing import Take
from tests.store_sessions import START, new_session

NOW = START + timedelta(minutes=5)
REPORT = "https://dash.bugpilot.io/report/r1"
SECOND = timedelta(seconds=1)


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

    def test_a_token_within_the_wait_sends_a_later_one_reserves_and_none_waits(self) -> None:
        spare = timedelta(seconds=20)
        assert note_turn(Take(True, NOW), NOW, spare) is NoteTurn.SEND
        assert note_turn(Take(True, NOW + spare), NOW, spare) is NoteTurn.SEND
        assert note_turn(Take(True, NOW + spare + SECOND), NOW, spare) is NoteTurn.RESERVE
        assert note_turn(Take(False, NOW), NOW, spare) is NoteTurn.WAIT

    def test_a_note_with_no_token_is_due_when_one_comes_and_nothing_else_changes(self) -> None:
        # given a session owing a note tried once before, and no token for 40 s
        owed = finished(note_attempts=1)
        token_at = NOW + timedelta(seconds=40)
        # when it waits
        waiting = awaiting_token(owed, Take(False, token_at), NOW)
        # then it is due when the token comes, still owing its note, holding no token, and the
        # wait is no attempt
        assert waiting.next_check_at == token_at
        assert waiting.note_state is NoteState.PENDING
        assert waiting.note_attempts == 1
        assert waiting.note_token_at is None
        assert replace(waiting, next_check_at=None, updated_at=START) == replace(
            owed, next_check_at=None, updated_at=START
        )
        # and a token already come leaves it due at once, never in the past
        assert awaiting_token(owed, Take(False, NOW - SECOND * 5), NOW).next_check_at == NOW

    def test_a_token_beyond_the_horizon_is_not_reserved_and_the_note_comes_back_then(
        self,
    ) -> None:
        # given a note whose helpdesk's next token is two hours off (not taken: past the horizon)
        owed = finished()
        later = awaiting_token(owed, Take(False, NOW + 2 * RESERVATION_HORIZON), NOW)
        # then it holds no token and is due at the horizon, when an hour's tokens have come
        assert later.note_token_at is None
        assert later.next_check_at == NOW + RESERVATION_HORIZON

    def test_a_reserved_token_is_kept_on_the_session_which_is_due_then(self) -> None:
        # given a note whose token was taken for 45 s from now
        owed = finished(note_attempts=1)
        token_at = NOW + timedelta(seconds=45, milliseconds=769)
        # when it reserves it
        holding = awaiting_token(owed, Take(True, token_at), NOW)
        # then the session keeps the token's time and is due then; nothing else changes
        assert holding.note_token_at == token_at
        assert holding.next_check_at == token_at
        assert holding.note_attempts == 1
        assert replace(holding, note_token_at=None, next_check_at=None, updated_at=START) == (
            replace(owed, next_check_at=None, updated_at=START)
        )

    def test_only_the_queue_reserves_beyond_what_the_step_can_wait(self) -> None:
        spare = timedelta(seconds=20)
        assert token_horizon(spare, reminded=True) == RESERVATION_HORIZON
        # the scheduled runs come once a minute: a token between them would be posted late
        assert token_horizon(spare, reminded=False) == spare


class TestReservation:
    """A note that reserved its token posts on it, taking no other; one try uses it."""

    SPARE = timedelta(seconds=20)

    def test_woken_within_its_wait_it_posts_on_the_held_token(self) -> None:
        # given a note holding a token 5 s ahead
        holding = finished(note_token_at=NOW + SECOND * 5)
        # when it is woken now
        held = held_token(holding, NOW)
        # then it holds that token, which is within its wait: sent, with no new take
        assert held == NOW + SECOND * 5
        assert note_turn(Take(True, held), NOW, self.SPARE) is NoteTurn.SEND

    def test_woken_early_it_takes_nothing_and_stays_due_at_its_token(self) -> None:
        # given a note holding a token 5 minutes ahead, woken now (a duplicate reminder)
        token_at = NOW + timedelta(minutes=5)
        holding = finished(note_token_at=token_at, next_check_at=token_at)
        held = held_token(holding, NOW)
        assert held == token_at
        # then it keeps its token and stays due at its time
        assert note_turn(Take(True, held), NOW, self.SPARE) is NoteTurn.RESERVE
        kept = awaiting_token(holding, Take(True, held), NOW)
        assert (kept.note_token_at, kept.next_check_at) == (token_at, token_at)

    def test_a_token_in_the_past_posts_at_once_unless_woken_too_late(self) -> None:
        # given notes whose token came 3 s ago, and one whose token came over LATE_TOKEN ago
        recent = finished(note_token_at=NOW - SECOND * 3)
        stale = finished(note_token_at=NOW - LATE_TOKEN - SECOND)
        # then the first posts at once on it; the second takes a new token (its own is lost)
        held = held_token(recent, NOW)
        assert held is not None
        assert note_turn(Take(True, held), NOW, timedelta(0)) is NoteTurn.SEND
        assert held_token(stale, NOW) is None
        assert held_token(finished(), NOW) is None

    @pytest.mark.parametrize(
        "answer",
        [
            NoteResult(NoteOutcome.POSTED, status=201),
            NoteResult(NoteOutcome.REJECTED, "HTTP 422", None, 422),
            NoteResult(NoteOutcome.RETRYABLE, "HTTP 429", 30, 429),
        ],
        ids=["posted", "refused", "retry-later"],
    )
    def test_one_try_uses_the_reservation(self, answer: NoteResult) -> None:
        # given a note holding a token that has come
        holding = finished(note_token_at=NOW - SECOND)
        # when it is delivered, whatever the helpdesk answers
        after = deliver(holding, Desk(answer=answer))
        # then the token is used: a later try takes a new one
        assert after.note_token_at is None

    def test_a_note_found_already_posted_drops_its_reservation(self) -> None:
        # given an interrupted note holding a token, already on the ticket
        holding = finished(note_token_at=NOW, interruptions=1)
        after = deliver(holding, Desk(has=True))
        assert (after.note_state, after.note_token_at) == (NoteState.POSTED, None)

    def test_the_answer_to_the_post_is_heard_for_the_pace(self) -> None:
        heard: list[NoteResult] = []
        answer = NoteResult(NoteOutcome.POSTED, status=201, rate_remaining=7)
        deliver_note(finished(), Desk(answer=answer), Source(), NOW, on_answer=heard.append)  # type: ignore[arg-type]
        assert heard == [answer]
