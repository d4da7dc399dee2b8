"""Fault injection at every step boundary of one Bugpilot capture for one Zendesk ticket.

A capture request crosses: stored → action sent → answer saved → report found → note posted →
session saved. Each case makes the webhook or the resolver die at one boundary (a test-only
exception raised by a wrapped collaborator), lets the resolver finish the session, then counts
what the outside world saw: Bugpilot actions and captures, Zendesk notes, sessions by status.

The rules under test: the action is sent only after the session is stored, and a start whose
holder died is never repeated (the session fails with an "interrupted" note), so a crash can lose
a capture but never double it; the note is posted before the session is saved and looked for on
the ticket by the next holder, so a crash never doubles it either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import pytest

from capture_bridge.capture_flow import CLAIM_LEASE
from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.notes import marker
from capture_bridge.resolver import RunOutcome
from capture_bridge.runtime import Runtime
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from tests import faults
from tests.conftest import Clock, Webhook, trigger_body
from tests.faults import Fault, Target, When
from tests.integration.test_resolver import Crash, World

# The requester and ticket of `trigger_body()`.
USER = "user-42"
TICKET = "1001"
SESSION_PREFIX = "session#"
ONE_SECOND = timedelta(seconds=1)
# Zendesk, having had no answer from the webhook, sends the call again a little later.
ZENDESK_RETRY_AFTER = timedelta(seconds=10)
# How long before its deadline the near-deadline session is claimed by the dying run.
BEFORE_DEADLINE = timedelta(minutes=1)
# Ample for every case here; a session needing more runs than this never settles.
MAX_RUNS = 10
NOTHING_LEFT_AFTER = timedelta(hours=1)


@pytest.fixture
def world(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, zendesk: ZendeskSimulator
) -> World:
    return World(runtime, clock, bugpilot, zendesk)


# -- faults ---------------------------------------------------------------------------------


@contextmanager
def injected(world: World, fault: Fault) -> Iterator[Runtime]:
    """A runtime whose `fault.target.method` calls die with `Crash`."""
    with faults.injected(world.runtime, fault, Crash) as runtime:
        yield runtime


# -- what the world saw ---------------------------------------------------------------------


@dataclass(frozen=True)
class Final:
    """How the session ends, and a phrase its one note carries."""

    status: SessionStatus
    error: str | None
    says: str


RESOLVED = Final(SessionStatus.RESOLVED, None, "The capture is ready")
FAILED_INTERRUPTED = Final(SessionStatus.FAILED, "INTERRUPTED", "the request was interrupted")
TIMED_OUT = Final(SessionStatus.TIMED_OUT, "REPORT_NOT_FOUND", "No report arrived in time")

StatusCount = Counter[tuple[SessionStatus, str | None, NoteState | None]]


def session_ids(world: World) -> list[str]:
    """Every session in the table (a Scan: fine for a test's handful of items)."""
    page = world.runtime.store.client.scan(
        TableName=world.runtime.settings.table_name,
        FilterExpression="begins_with(pk, :kind)",
        ExpressionAttributeValues={":kind": {"S": SESSION_PREFIX}},
        ProjectionExpression="pk",
    )
    return [item["pk"]["S"].removeprefix(SESSION_PREFIX) for item in page["Items"]]


def sessions_by_status(world: World) -> StatusCount:
    """How many sessions end in each (status, error, note state)."""
    sessions = [world.session(session_id) for session_id in session_ids(world)]
    return Counter((s.status, s.error, s.note_state) for s in sessions)


def settle(world: World, session_id: str) -> None:
    """Run the resolver whenever the session is due until it is final and noted."""
    for _ in range(MAX_RUNS + 1):
        session = world.session(session_id)
        if session.status.is_final and session.note_state is NoteState.POSTED:
            return
        assert session.next_check_at is not None, session
        world.clock.now = max(session.next_check_at, world.clock())
        world.run()
    pytest.fail(f"session {session_id} did not settle in {MAX_RUNS} resolver runs")


def wait_out_the_claim(world: World, lease_end: datetime) -> None:
    """The resolver leaves a dead holder's session alone until its lease lapses, then takes it."""
    world.clock.now = lease_end - ONE_SECOND
    assert world.run().due == 0
    world.clock.now = lease_end


def assert_the_end(
    world: World, session_id: str, *, actions: int, captures: int, final: Final
) -> None:
    """Exact counts once the session settled, unchanged an hour later."""
    expected_sessions: StatusCount = Counter({(final.status, final.error, NoteState.POSTED): 1})
    assert len(world.bugpilot.requests("action")) == actions
    assert len(world.bugpilot.tokens) == captures
    assert sessions_by_status(world) == expected_sessions
    [note] = world.notes(TICKET)
    assert note["public"] is False
    assert final.says in note["body"]
    assert marker(world.session(session_id)) in note["body"]
    assert len(world.zendesk.requests("update")) == 1
    # And nothing is left to do: an hour later no run finds work, and no count moves
    world.clock.now += NOTHING_LEFT_AFTER
    assert world.run().due == 0
    assert len(world.bugpilot.requests("action")) == actions
    assert len(world.notes(TICKET)) == 1
    assert sessions_by_status(world) == expected_sessions


# -- the webhook ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookCase:
    """The webhook dies at `fault`, leaving the session in `left`."""

    fault: Fault
    left: SessionStatus
    # Whether the dead call's claim is still on the session (the resolver waits for its lease).
    claim_left: bool
    actions: int
    final: Final


WEBHOOK_CASES = [
    pytest.param(
        WebhookCase(
            Fault(Target.PROVIDER, "start", When.BEFORE),
            left=SessionStatus.REQUESTED,
            claim_left=True,
            actions=0,
            final=FAILED_INTERRUPTED,
        ),
        id="stored-then-dies-before-sending-the-action",
    ),
    pytest.param(
        WebhookCase(
            Fault(Target.PROVIDER, "start", When.AFTER),
            left=SessionStatus.REQUESTED,
            claim_left=True,
            actions=1,
            final=FAILED_INTERRUPTED,
        ),
        id="sent-the-action-then-dies-before-saving-its-answer",
    ),
    pytest.param(
        WebhookCase(
            Fault(Target.STORE, "save", When.BEFORE),
            left=SessionStatus.REQUESTED,
            claim_left=True,
            actions=1,
            final=FAILED_INTERRUPTED,
        ),
        id="dies-while-saving-the-answer",
    ),
    pytest.param(
        WebhookCase(
            Fault(Target.STORE, "save", When.AFTER),
            left=SessionStatus.PENDING,
            claim_left=False,
            actions=1,
            final=RESOLVED,
        ),
        id="saved-the-answer-then-dies-before-replying",
    ),
]


@pytest.mark.parametrize("case", WEBHOOK_CASES)
def test_webhook_dies_at_a_step_boundary(world: World, case: WebhookCase) -> None:
    """One action at most, one note, one session, whatever point the webhook died at."""
    # Given a requester online in the app
    world.bugpilot.connect_user(USER)
    # When the webhook call dies at the boundary
    with injected(world, case.fault) as runtime, pytest.raises(Crash):
        Webhook(runtime, world.clock).send(trigger_body())
    # Then the request is stored, and the action went out only if the call got that far
    [session_id] = session_ids(world)
    left = world.session(session_id)
    assert left.status is case.left
    assert (left.claim_id is not None) is case.claim_left
    assert len(world.bugpilot.requests("action")) == case.actions
    assert world.notes(TICKET) == []
    # When Zendesk, having had no answer, sends the call again
    world.clock.now += ZENDESK_RETRY_AFTER
    again = world.webhook.send(trigger_body())
    # Then it is the same request: no second session, no second action
    assert again.status == 202
    assert (again.body["session_id"], again.body["duplicate"]) == (session_id, True)
    assert session_ids(world) == [session_id]
    assert len(world.bugpilot.requests("action")) == case.actions
    # Given every capture Bugpilot took has its report ready
    for token in world.bugpilot.tokens:
        world.bugpilot.complete_report(token)
    if case.claim_left:
        # When the resolver comes before the dead call's claim lapses, it leaves the session
        wait_out_the_claim(world, left.created_at + CLAIM_LEASE)
    # When the resolver runs whenever the session is due until it is final and noted
    settle(world, session_id)
    # Then the counts are exact; every action reached an online user, so each is a capture
    assert_the_end(world, session_id, actions=case.actions, captures=case.actions, final=case.final)


# -- the resolver ---------------------------------------------------------------------------


class Given(Enum):
    """The session the dying resolver run takes."""

    # Pending, its report ready at the next check.
    REPORT_READY = "report_ready"
    # Pending, its report never coming, claimed a minute before the deadline.
    REPORT_NEVER_COMES = "report_never_comes"
    # Waiting for a user who was offline at intake and is online now: the action is re-sent.
    USER_BACK_ONLINE = "user_back_online"


def given(world: World, kind: Given) -> str:
    """A session in the state `kind`, with the clock at the run that will take it."""
    if kind is not Given.USER_BACK_ONLINE:
        world.bugpilot.connect_user(USER)
    session_id = world.request()
    session = world.session(session_id)
    assert session.next_check_at is not None
    world.clock.now = session.next_check_at
    if kind is Given.USER_BACK_ONLINE:
        assert (session.status, session.error) == (
            SessionStatus.WAITING_FOR_USER,
            "USER_NOT_CONNECTED",
        )
        world.bugpilot.connect_user(USER)
        return session_id
    assert session.status is SessionStatus.PENDING
    [token] = world.bugpilot.tokens
    if kind is Given.REPORT_READY:
        world.bugpilot.complete_report(token)
    else:
        world.bugpilot.cancel_report(token)
        world.clock.now = session.deadline_at - BEFORE_DEADLINE
    return session_id


@dataclass(frozen=True)
class ResolverCase:
    """A resolver run dies at `fault` while working on the session `given`."""

    given: Given
    fault: Fault
    # Whether the dead run's claim is still on the session (the next run waits for its lease).
    claim_left: bool
    notes_after_crash: int
    # At the end: action calls (refused ones included), captures taken, Session Info reads.
    actions: int
    captures: int
    checks: int
    final: Final


RESOLVER_CASES = [
    pytest.param(
        ResolverCase(
            Given.REPORT_READY,
            Fault(Target.STORE, "claim", When.AFTER),
            claim_left=True,
            notes_after_crash=0,
            actions=1,
            captures=1,
            checks=1,
            final=RESOLVED,
        ),
        id="claimed-then-dies-before-checking",
    ),
    pytest.param(
        ResolverCase(
            Given.REPORT_READY,
            Fault(Target.HELPDESK, "post_note", When.BEFORE),
            claim_left=True,
            notes_after_crash=0,
            actions=1,
            captures=1,
            checks=2,
            final=RESOLVED,
        ),
        id="found-the-report-then-dies-before-the-note",
    ),
    pytest.param(
        ResolverCase(
            Given.REPORT_READY,
            Fault(Target.HELPDESK, "post_note", When.AFTER),
            claim_left=True,
            notes_after_crash=1,
            actions=1,
            captures=1,
            checks=2,
            final=RESOLVED,
        ),
        id="posted-the-note-then-dies-before-saving",
    ),
    pytest.param(
        ResolverCase(
            Given.REPORT_READY,
            Fault(Target.STORE, "save", When.BEFORE),
            claim_left=True,
            notes_after_crash=1,
            actions=1,
            captures=1,
            checks=2,
            final=RESOLVED,
        ),
        id="posted-the-note-then-dies-while-saving",
    ),
    pytest.param(
        ResolverCase(
            Given.REPORT_READY,
            Fault(Target.STORE, "save", When.AFTER),
            claim_left=False,
            notes_after_crash=1,
            actions=1,
            captures=1,
            checks=1,
            final=RESOLVED,
        ),
        id="saved-the-session-then-dies",
    ),
    pytest.param(
        ResolverCase(
            Given.REPORT_NEVER_COMES,
            Fault(Target.STORE, "claim", When.AFTER),
            claim_left=True,
            notes_after_crash=0,
            actions=1,
            captures=1,
            checks=1,
            final=TIMED_OUT,
        ),
        id="claimed-the-last-check-then-dies-until-past-the-deadline",
    ),
    pytest.param(
        ResolverCase(
            Given.USER_BACK_ONLINE,
            Fault(Target.PROVIDER, "start", When.BEFORE),
            claim_left=True,
            notes_after_crash=0,
            actions=1,
            captures=0,
            checks=0,
            final=FAILED_INTERRUPTED,
        ),
        id="waiting-for-user-dies-before-re-sending-the-action",
    ),
    pytest.param(
        ResolverCase(
            Given.USER_BACK_ONLINE,
            Fault(Target.PROVIDER, "start", When.AFTER),
            claim_left=True,
            notes_after_crash=0,
            actions=2,
            captures=1,
            checks=0,
            final=FAILED_INTERRUPTED,
        ),
        id="waiting-for-user-re-sent-the-action-then-dies",
    ),
    pytest.param(
        ResolverCase(
            Given.USER_BACK_ONLINE,
            Fault(Target.STORE, "save", When.BEFORE),
            claim_left=True,
            notes_after_crash=0,
            actions=2,
            captures=1,
            checks=0,
            final=FAILED_INTERRUPTED,
        ),
        id="waiting-for-user-re-sent-the-action-then-dies-while-saving",
    ),
]


@pytest.mark.parametrize("case", RESOLVER_CASES)
def test_resolver_dies_at_a_step_boundary(world: World, case: ResolverCase) -> None:
    """No action repeated after a dead holder, and one note, whatever point the run died at."""
    # Given a session in the case's state, due now
    session_id = given(world, case.given)
    # When the resolver run that takes it dies at the boundary
    with injected(world, case.fault) as runtime:
        assert world.run(runtime).outcomes == {RunOutcome.ERROR: 1}
    died_at = world.clock()
    # Then its claim stays until it lapses, and the ticket has what was posted before the crash
    assert (world.session(session_id).claim_id is not None) is case.claim_left
    assert len(world.notes(TICKET)) == case.notes_after_crash
    if case.claim_left:
        # When the next runs come before the lease lapses, they leave the session alone
        wait_out_the_claim(world, died_at + CLAIM_LEASE)
    # When the resolver runs whenever the session is due until it is final and noted
    settle(world, session_id)
    # Then the counts are exact: a check may be repeated (it is read-only), nothing else is
    assert len(world.bugpilot.requests("session_info")) == case.checks
    assert_the_end(
        world, session_id, actions=case.actions, captures=case.captures, final=case.final
    )
