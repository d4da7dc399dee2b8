"""Crash points on the queued path: the worker, the queue or the scheduler failing at any point.

As tests/integration/test_step_faults.py does for the scheduled path: one Bugpilot capture for one
Zendesk ticket, a fault at one boundary, then the world plays on, and the outside is counted
(Bugpilot actions, captures and checks, Zendesk notes, sessions by status). Here the world is the
worker taking the visible messages of `QueueDouble` (SQS with its event source mapping) as soon as
they are visible, and the scheduler's sweep every minute, on one hand-moved clock: a worker that
died leaves its whole batch to come back after the visibility timeout (720 s), its claim to lapse
after the lease (5 minutes), and the sweep sends whatever is overdue with no message waiting.

A worker's death is `Death`, a BaseException: it passes every `except Exception` in the product,
as a function killed at its timeout or out of memory would, and nothing of its batch is deleted.

The rules under test are the scheduled path's: one start per request, but for the state
machine's own rule (a start whose holder died is not repeated: the session fails as interrupted,
so a second action only ever comes from the one retry it allows); at most one note; and the
session reaches its final state, noted, whatever failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

import pytest

from capture_bridge.capture_flow import RESERVATION_HORIZON
from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.notes import marker
from capture_bridge.resolver import note_pace
from capture_bridge.runtime import Runtime
from tests import faults
from tests.conftest import runtime_with
from tests.faults import Fault, Target, When
from tests.integration.test_worker import SCHEDULE, USER, Queued
from tests.integration.test_worker import queued as queued  # a fixture

TICKET = "1001"
# Ample for every case: a session still open after this long is lost.
PLAY_LIMIT = timedelta(hours=2)
NOTHING_LEFT_AFTER = timedelta(hours=1)


class Death(BaseException):
    """The worker's function dies here: killed at its timeout, or out of memory."""


# -- faults ---------------------------------------------------------------------------------------


@contextmanager
def injected(queued: Queued, fault: Fault) -> Iterator[Runtime]:
    """A runtime for one worker invocation whose `fault` kills it."""
    with faults.injected(queued.runtime, fault, Death) as runtime:
        yield runtime


# -- the world playing on --------------------------------------------------------------------------


@dataclass
class Outage:
    """Until `until`: the scheduler does not run, and/or SQS refuses every send."""

    until: datetime
    scheduler: bool = False
    sqs: bool = False


def play(queued: Queued, session_id: str, outage: Outage | None = None) -> None:
    """Workers and the minutely sweep, each at its next time, until the session is settled.

    Workers take every batch as soon as it is visible; the scheduler runs every minute. Fails
    when the session is not settled (final, its note posted) within `PLAY_LIMIT`.
    """
    end = queued.clock() + PLAY_LIMIT
    next_sweep = queued.clock() + SCHEDULE
    while not queued.settled(session_id):
        assert queued.clock() < end, f"not settled: {queued.session(session_id)}"
        visible = queued.queue.next_visible()
        queued.clock.now = max(queued.clock(), min(next_sweep, visible or next_sweep))
        down = outage is not None and queued.clock() < outage.until
        queued.queue.fail_sends = down and outage is not None and outage.sqs
        while queued.queue.visible():
            queued.deliver()
        if queued.clock() >= next_sweep:
            if not (down and outage is not None and outage.scheduler):
                queued.sweep()
            next_sweep = queued.clock() + SCHEDULE
    queued.queue.fail_sends = False


@dataclass(frozen=True)
class Final:
    status: SessionStatus
    error: str | None
    says: str


RESOLVED = Final(SessionStatus.RESOLVED, None, "The capture is ready")
FAILED_INTERRUPTED = Final(SessionStatus.FAILED, "INTERRUPTED", "the request was interrupted")


def assert_the_end(
    queued: Queued, session_id: str, *, actions: int, captures: int, final: Final
) -> None:
    """Exact counts once settled, unchanged an hour later with workers and sweeps going on."""
    session = queued.session(session_id)
    assert (session.status, session.error, session.note_state) == (
        final.status,
        final.error,
        NoteState.POSTED,
    )
    assert session.claim_id is None
    assert len(queued.bugpilot.requests("action")) == actions
    assert len(queued.bugpilot.tokens) == captures
    [note] = queued.notes(TICKET)
    assert final.says in note["body"]
    assert marker(session) in note["body"]
    # And nothing is left: an hour on, every message delivered and a sweep, nothing moves
    queued.clock.advance(seconds=NOTHING_LEFT_AFTER.total_seconds())
    while queued.queue.visible():
        queued.deliver()
    assert queued.sweep().due == 0
    assert queued.queue.messages == {}
    assert len(queued.bugpilot.requests("action")) == actions
    assert len(queued.notes(TICKET)) == 1
    assert queued.session(session_id) == session


# -- the sessions the dying worker takes -----------------------------------------------------------


class Given(Enum):
    # Pending, its report ready at the first check.
    REPORT_READY = "report_ready"
    # Pending, its report not ready at the first check, ready afterwards.
    REPORT_LATER = "report_later"
    # Waiting for a user who was offline at intake and is online now: the action is re-sent.
    USER_BACK_ONLINE = "user_back_online"


def given(queued: Queued, kind: Given) -> str:
    """A session in the state `kind`, its reminder the one message, the clock at its time."""
    if kind is not Given.USER_BACK_ONLINE:
        queued.bugpilot.connect_user(USER)
    session_id = queued.request()
    [message] = queued.queue.waiting(session_id)
    queued.clock.now = message.visible_at
    if kind is Given.USER_BACK_ONLINE:
        assert queued.session(session_id).status is SessionStatus.WAITING_FOR_USER
        queued.bugpilot.connect_user(USER)
    elif kind is Given.REPORT_READY:
        queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
    return session_id


@dataclass(frozen=True)
class Case:
    given: Given
    fault: Fault
    # Whether the dead worker's claim is still on the session.
    claim_left: bool
    notes_after_crash: int
    actions: int
    captures: int
    final: Final


CASES = [
    pytest.param(
        Case(Given.REPORT_READY, Fault(Target.STORE, "claim", When.AFTER), True, 0, 1, 1, RESOLVED),
        id="claimed-then-dies",
    ),
    pytest.param(
        # A check goes unclaimed (read-only): no claim is left, and the next worker checks again.
        Case(
            Given.REPORT_READY,
            Fault(Target.PROVIDER, "check", When.AFTER),
            False,
            0,
            1,
            1,
            RESOLVED,
        ),
        id="the-vendor-answered-the-check-then-dies",
    ),
    pytest.param(
        Case(
            Given.USER_BACK_ONLINE,
            Fault(Target.PROVIDER, "start", When.BEFORE),
            True,
            0,
            1,
            0,
            FAILED_INTERRUPTED,
        ),
        id="claimed-a-start-then-dies-before-sending-it",
    ),
    pytest.param(
        Case(
            Given.USER_BACK_ONLINE,
            Fault(Target.PROVIDER, "start", When.AFTER),
            True,
            0,
            2,
            1,
            FAILED_INTERRUPTED,
        ),
        id="the-vendor-answered-the-start-then-dies",
    ),
    pytest.param(
        Case(
            Given.REPORT_READY,
            Fault(Target.HELPDESK, "post_note", When.AFTER),
            True,
            1,
            1,
            1,
            RESOLVED,
        ),
        id="posted-the-note-then-dies-before-the-save",
    ),
    pytest.param(
        Case(Given.REPORT_READY, Fault(Target.STORE, "save", When.BEFORE), True, 1, 1, 1, RESOLVED),
        id="posted-the-note-then-dies-while-saving",
    ),
    pytest.param(
        # A check that found the report not ready is saved unclaimed, if the session is as read.
        Case(
            Given.REPORT_LATER,
            Fault(Target.STORE, "save_checked", When.AFTER),
            False,
            0,
            1,
            1,
            RESOLVED,
        ),
        id="saved-then-dies-before-the-next-reminder",
    ),
    pytest.param(
        Case(
            Given.REPORT_LATER, Fault(Target.QUEUE, "send", When.BEFORE), False, 0, 1, 1, RESOLVED
        ),
        id="saved-then-dies-sending-the-next-reminder",
    ),
    pytest.param(
        Case(
            Given.USER_BACK_ONLINE,
            Fault(Target.STORE, "save", When.AFTER),
            False,
            0,
            2,
            1,
            RESOLVED,
        ),
        id="saved-the-start-then-dies-before-the-next-reminder",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_a_worker_dies_at_a_step_boundary(queued: Queued, case: Case) -> None:
    """One start (within the rules), one note, settled, driven by redelivery and the sweep."""
    # Given a session in the case's state, its reminder due now
    session_id = given(queued, case.given)
    # When the worker that takes it dies at the boundary
    with injected(queued, case.fault) as runtime:
        delivery = queued.deliver(runtime, dies=Death)
    assert delivery is not None and delivery.died
    # Then nothing of its batch was deleted, its claim stays or not, and the ticket has what was
    # posted before the death
    assert delivery.messages[0].message_id in queued.queue.messages
    assert (queued.session(session_id).claim_id is not None) is case.claim_left
    assert len(queued.notes(TICKET)) == case.notes_after_crash
    # When every capture Bugpilot took has its report ready, and the world plays on
    for token in queued.bugpilot.tokens:
        queued.bugpilot.complete_report(token)
    play(queued, session_id)
    # Then the counts are exact; a worker that took over a dead one's claim counted it
    assert queued.session(session_id).interruptions == int(case.claim_left)
    assert_the_end(
        queued, session_id, actions=case.actions, captures=case.captures, final=case.final
    )


def test_a_dead_workers_batch_alone_settles_the_session(queued: Queued) -> None:
    # Given a session due, and a worker that dies once it has claimed it
    session_id = given(queued, Given.REPORT_READY)
    with injected(queued, Fault(Target.STORE, "claim", When.AFTER)) as runtime:
        delivery = queued.deliver(runtime, dies=Death)
    assert delivery is not None and delivery.died
    died_at = queued.clock()
    # When the scheduler does not run at all, the world plays on
    play(queued, session_id, Outage(died_at + PLAY_LIMIT, scheduler=True))
    # Then SQS's redelivery after the visibility timeout took the lapsed claim over and settled it
    assert queued.clock() == died_at + queued.queue.visibility_timeout
    assert queued.session(session_id).interruptions == 1
    # (checked once before the claim, and again by the worker that took the claim over)
    assert len(queued.bugpilot.requests("session_info")) == 2
    assert_the_end(queued, session_id, actions=1, captures=1, final=RESOLVED)


# -- the queue and the scheduler failing -----------------------------------------------------------


def test_the_queue_loses_the_reminder(queued: Queued) -> None:
    # Given a pending session whose reminder SQS loses
    session_id = given(queued, Given.REPORT_READY)
    [message] = queued.queue.waiting(session_id)
    queued.queue.lose(message)
    # When the world plays on, then the sweep sends it again and it settles
    play(queued, session_id)
    assert_the_end(queued, session_id, actions=1, captures=1, final=RESOLVED)


def test_the_queue_loses_every_reminder_once(queued: Queued) -> None:
    # Given a session whose report comes late, and every reminder lost once sent
    queued.bugpilot.reports_after_polls = None
    session_id = given(queued, Given.REPORT_LATER)
    for _ in range(3):
        for message in queued.queue.waiting(session_id):
            queued.queue.lose(message)
        play_until_swept(queued, session_id)
    queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
    play(queued, session_id)
    assert_the_end(queued, session_id, actions=1, captures=1, final=RESOLVED)


def play_until_swept(queued: Queued, session_id: str) -> None:
    """Sweeps every minute until one sends the session, then its worker."""
    sent = len(queued.sent_for(session_id))
    for _ in range(10):
        queued.clock.advance(seconds=SCHEDULE.total_seconds())
        queued.sweep()
        if len(queued.sent_for(session_id)) > sent:
            queued.deliver()
            return
    pytest.fail("the sweep never sent the session")


def test_the_scheduler_does_not_run_for_a_while(queued: Queued) -> None:
    # Given a session whose reminder is lost, and the scheduler down for 20 minutes
    session_id = given(queued, Given.REPORT_READY)
    queued.queue.lose(queued.queue.waiting(session_id)[0])
    back = queued.clock() + timedelta(minutes=20)
    # When the world plays on
    play(queued, session_id, Outage(back, scheduler=True))
    # Then it is settled only once the scheduler is back, and exactly once
    assert queued.clock() >= back
    assert_the_end(queued, session_id, actions=1, captures=1, final=RESOLVED)


def test_sqs_down_for_sends(queued: Queued) -> None:
    # Given SQS refusing every send for 15 minutes, from before the request
    back = queued.clock() + timedelta(minutes=15)
    queued.queue.fail_sends = True
    queued.bugpilot.connect_user(USER)
    session_id = queued.request()
    queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
    assert queued.queue.messages == {}
    # When the world plays on
    play(queued, session_id, Outage(back, sqs=True))
    # Then it is settled once SQS takes sends again, exactly once
    assert queued.clock() >= back
    assert_the_end(queued, session_id, actions=1, captures=1, final=RESOLVED)


def test_sqs_down_for_the_next_reminder_only(queued: Queued) -> None:
    # Given a session whose report comes late, its first check done while SQS refuses sends
    session_id = given(queued, Given.REPORT_LATER)
    queued.queue.fail_sends = True
    queued.deliver()
    queued.queue.fail_sends = False
    assert queued.queue.messages == {}
    # When its report is ready and the world plays on, the sweep covers the lost reminder
    queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
    play(queued, session_id)
    assert_the_end(queued, session_id, actions=1, captures=1, final=RESOLVED)


def test_a_worker_dying_at_every_delivery_until_dead_lettered(queued: Queued) -> None:
    # Given a session due, whose worker dies before its claim, again and again
    session_id = given(queued, Given.REPORT_READY)
    fault = Fault(Target.STORE, "claim", When.BEFORE)
    for _ in range(5):
        with injected(queued, fault) as runtime:
            delivery = queued.deliver(runtime, dies=Death)
        assert delivery is not None and delivery.died
        queued.clock.advance(seconds=queued.queue.visibility_timeout.total_seconds())
    # When SQS gives up on the message (the redrive policy)
    assert queued.queue.receive() == []
    assert len(queued.queue.dead) == 1
    # Then the session, still due in the table, is swept and settles
    play(queued, session_id)
    assert_the_end(queued, session_id, actions=1, captures=1, final=RESOLVED)


def test_a_worker_dies_with_a_whole_batch_in_hand(queued: Queued) -> None:
    # Given three tickets' captures, their reports ready, all due at once: one batch
    queued.bugpilot.connect_user(USER)
    tickets = ("1001", "1002", "1003")
    session_ids = [queued.request(ticket_id=ticket) for ticket in tickets]
    for token in queued.bugpilot.tokens:
        queued.bugpilot.complete_report(token)
    queued.clock.now = min(m.visible_at for m in queued.queue.messages.values())
    # When the worker, stepping them all at once, dies as each note has been posted
    with injected(queued, Fault(Target.HELPDESK, "post_note", When.AFTER)) as runtime:
        delivery = queued.deliver(runtime, dies=Death)
    assert delivery is not None and delivery.died and len(delivery.messages) == len(tickets)
    # When the world plays on until each is settled
    for session_id in session_ids:
        play(queued, session_id)
    # Then each ticket has exactly one note, each session resolved and taken over once
    for ticket, session_id in zip(tickets, session_ids, strict=True):
        session = queued.session(session_id)
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.POSTED)
        assert session.interruptions == 1
        [note] = queued.notes(ticket)
        assert marker(session) in note["body"]
    assert len(queued.bugpilot.requests("action")) == len(tickets)


# -- a note that reserved its token ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("dies_at", "fault", "claim_left"),
    [
        pytest.param(1, Fault(Target.QUEUE, "send", When.BEFORE), False, id="reserved-then-dies"),
        pytest.param(
            2, Fault(Target.HELPDESK, "post_note", When.BEFORE), True, id="woken-dies-before-post"
        ),
        pytest.param(
            2, Fault(Target.HELPDESK, "post_note", When.AFTER), True, id="posted-then-dies"
        ),
    ],
)
def test_a_worker_dies_between_a_reservation_and_its_note(
    queued: Queued, env: dict[str, str], dies_at: int, fault: Fault, claim_left: bool
) -> None:
    """A reservation saved, then a death before its note is saved: still exactly one note."""
    # Given a session whose report is ready, notes paced at Zendesk's default (80 a minute), and
    # its helpdesk's bucket owing a minute's tokens
    paced = runtime_with(env, ZENDESK_NOTES_PER_MINUTE="80")
    queued.runtime = replace(paced, queue=queued.queue)
    session_id = given(queued, Given.REPORT_READY)
    pace = note_pace(queued.runtime, "zendesk")
    for _ in range(int(pace.capacity + 60 * pace.refill)):
        taken = queued.runtime.store.take_note_token(
            "zendesk", pace, now=queued.clock(), max_wait=RESERVATION_HORIZON
        )
        assert taken.granted
    # When the worker steps it: the note reserves its token, about a minute ahead, saved...
    for delivery in (1, 2):
        if delivery == 2:
            [message] = queued.queue.waiting(session_id)
            queued.clock.now = message.visible_at
        if delivery == dies_at:
            with injected(queued, fault) as runtime:
                died = queued.deliver(runtime, dies=Death)
            assert died is not None and died.died
            break
        queued.deliver()
        held = queued.session(session_id)
        assert held.note_token_at is not None
        assert held.note_token_at - queued.clock() > timedelta(seconds=40)
        # (due at its whole second: the token's own time is kept to the millisecond)
        assert held.next_check_at == held.note_token_at.replace(microsecond=0)
    # ...and the worker dies at the crash point
    assert (queued.session(session_id).claim_id is not None) is claim_left
    # Then, the world playing on (redelivery, the lapsed claim, the sweep), one note only
    play(queued, session_id)
    assert queued.session(session_id).note_token_at is None
    assert queued.zendesk.throttled == 0
    assert_the_end(queued, session_id, actions=1, captures=1, final=RESOLVED)
