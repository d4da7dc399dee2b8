"""The state machine's table and rules, applied directly: no DynamoDB, no HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import pairwise

import pytest

from capture_bridge.capture import BRIDGE_ERROR, CaptureResult, Outcome
from capture_bridge.capture_flow import (
    MAX_CONSECUTIVE_FAULTS,
    MAX_POLL_DELAY,
    MAX_UNCONFIRMED_REPEATS,
    STEADY_POLLS,
    TRANSITIONS,
    CancelVerdict,
    Continue,
    Finish,
    RetryPolicy,
    advance,
    apply,
    backoff,
    cancel_verdict,
    cancelled,
    completed,
    give_up_if_faulting,
    may_refresh,
    next_transition,
    poll_interval,
    record_fault,
    refreshed,
    releases_guard,
    transition_for,
)
from capture_bridge.models import CaptureRequest, CaptureSession, NoteState, SessionStatus
from tests.conftest import START

S = SessionStatus
POLICY = RetryPolicy(
    poll=timedelta(seconds=30), user_retry=timedelta(minutes=3), max_wait=timedelta(minutes=30)
)
RETRY_AFTER_SECONDS = 120
REPORT = "https://dash.bugpilot.io/report/r1"


def session(status: SessionStatus = S.REQUESTED, *, reference: str | None = None) -> CaptureSession:
    request = CaptureRequest(
        helpdesk="zendesk",
        ticket_id="1001",
        provider="bugpilot",
        action="upload-session",
        subject="upload-session",
        user_id="user-42",
        reference=reference,
    )
    opened = CaptureSession.open(
        request, now=START, max_wait=POLICY.max_wait, claim_id=None, next_check_at=START
    )
    return replace(opened, status=status)


@pytest.mark.parametrize(
    ("status", "outcome", "expected"),
    [
        (S.REQUESTED, Outcome.STARTED, S.PENDING),
        (S.REQUESTED, Outcome.USER_OFFLINE, S.WAITING_FOR_USER),
        (S.REQUESTED, Outcome.RETRYABLE, S.REQUESTED),
        (S.REQUESTED, Outcome.REJECTED, S.FAILED),
        (S.REQUESTED, Outcome.INTERRUPTED, S.FAILED),
        (S.REQUESTED, Outcome.UNCONFIRMED, S.REQUESTED),
        (S.WAITING_FOR_USER, Outcome.UNCONFIRMED, S.WAITING_FOR_USER),
        (S.WAITING_FOR_USER, Outcome.STARTED, S.PENDING),
        (S.WAITING_FOR_USER, Outcome.USER_OFFLINE, S.WAITING_FOR_USER),
        (S.WAITING_FOR_USER, Outcome.RETRYABLE, S.WAITING_FOR_USER),
        (S.PENDING, Outcome.READY, S.RESOLVED),
        (S.PENDING, Outcome.NOT_READY, S.PENDING),
        (S.PENDING, Outcome.RETRYABLE, S.PENDING),
        (S.PENDING, Outcome.INVALID, S.FAILED),
        (S.PENDING, Outcome.REJECTED, S.FAILED),
    ],
)
def test_the_table(status: SessionStatus, outcome: Outcome, expected: SessionStatus) -> None:
    assert next_transition(status, outcome).status is expected


def test_finishing_transitions_are_final_and_open_ones_give_up_into_a_final_status() -> None:
    for (status, outcome), transition in TRANSITIONS.items():
        assert not status.is_final
        if isinstance(transition, Finish):
            assert transition.status.is_final, (status, outcome)
        else:
            assert isinstance(transition, Continue)
            assert not transition.status.is_final, (status, outcome)
            assert transition.give_up_as.is_final, (status, outcome)


def test_an_outcome_out_of_turn_fails_the_session_and_says_so() -> None:
    # Given a pending capture whose provider answers as if it had just been started
    # When that answer is applied
    after = apply(session(S.PENDING, reference="r"), CaptureResult(Outcome.STARTED), START, POLICY)
    # Then the session fails with an error naming what happened, and owes a note
    assert (after.status, after.error) == (S.FAILED, "UNEXPECTED_STARTED")
    assert after.note_state is NoteState.PENDING


def test_started_keeps_the_reference_and_checks_after_the_poll_interval() -> None:
    after = apply(session(), CaptureResult(Outcome.STARTED, reference="info-url"), START, POLICY)
    assert (after.status, after.reference, after.attempts) == (S.PENDING, "info-url", 1)
    assert after.next_check_at == START + POLICY.poll


def test_ready_finishes_with_links_and_details() -> None:
    result = CaptureResult(Outcome.READY, links={"report": REPORT}, details={"kind": "screenshot"})
    after = apply(session(S.PENDING, reference="r"), result, START, POLICY)
    assert (after.status, after.polls, after.links["report"]) == (S.RESOLVED, 1, REPORT)
    assert after.details == {"kind": "screenshot"}


class TestPollSchedule:
    """A pending capture is checked steadily while young, then further apart (issue 26 §3)."""

    STEADY = timedelta(seconds=45)

    def checks_until(self, end: timedelta, policy: RetryPolicy = POLICY) -> list[timedelta]:
        """The times after the start at which a report that never comes is checked."""
        at, step, times = policy.poll, 0, []
        while at < end:
            times.append(at)
            at += poll_interval(step, policy)
            step += 1
        return times

    def test_a_young_capture_is_checked_every_one_and_a_half_first_polls(self) -> None:
        # Given a pending capture found not ready by each of its first checks
        # When each answer is applied, then the next check is 45 s later, every time
        for polls in range(STEADY_POLLS):
            pending = replace(session(S.PENDING, reference="r"), polls=polls)
            after = apply(pending, CaptureResult(Outcome.NOT_READY), START, POLICY)
            assert after.next_check_at == START + self.STEADY, polls

    def test_after_the_steady_checks_they_double_up_to_the_cap(self) -> None:
        # Given the checks after the steady ones
        steps = range(STEADY_POLLS, STEADY_POLLS + 4)
        # When their waits are taken, then they double from the steady pace to five minutes
        assert [poll_interval(step, POLICY) for step in steps] == [
            timedelta(seconds=s) for s in (90, 180, 300, 300)
        ]
        pending = replace(session(S.PENDING, reference="r"), polls=40)
        after = apply(pending, CaptureResult(Outcome.NOT_READY), START, POLICY)
        assert after.next_check_at == START + MAX_POLL_DELAY

    def test_no_ready_report_waits_more_than_the_steady_pace_in_its_first_ten_minutes(
        self,
    ) -> None:
        # Given the checks of the first ten minutes (the reports are ready within them)
        times = self.checks_until(timedelta(minutes=10, seconds=45))
        # Then no two are more than 45 s apart, and the first is the first poll
        assert times[0] == POLICY.poll
        assert max(b - a for a, b in pairwise(times)) == self.STEADY

    def test_a_report_that_never_comes_costs_under_twice_todays_checks(self) -> None:
        # Given today's checks in a capture's 30 minutes: 30 s, then 30 s doubling to 5 minutes
        today, at, step = [], POLICY.poll, 0
        while at < POLICY.max_wait:
            today.append(at)
            at += backoff(POLICY.poll, step, MAX_POLL_DELAY)
            step += 1
        # When the new schedule's are counted over the same 30 minutes
        new = self.checks_until(POLICY.max_wait)
        # Then its vendor calls (the start, the checks, one more at the deadline, the note) are
        # fewer than twice today's
        assert (len(today), len(new)) == (9, 19)
        assert (3 + len(today), 3 + len(new)) == (12, 22)

    def test_the_pace_follows_the_first_poll_and_never_exceeds_the_cap(self) -> None:
        # Given a first poll of 1 s (the demo's) and one of an hour (the setting's maximum)
        quick = replace(POLICY, poll=timedelta(seconds=1))
        slow = replace(POLICY, poll=timedelta(hours=1))
        # Then the steady pace is 1.5 s for the first, the cap for the second
        assert poll_interval(0, quick) == timedelta(seconds=1.5)
        assert poll_interval(0, slow) == poll_interval(STEADY_POLLS, slow) == MAX_POLL_DELAY


def test_retry_after_is_honoured() -> None:
    result = CaptureResult(Outcome.RETRYABLE, retry_after_seconds=RETRY_AFTER_SECONDS)
    after = apply(session(), result, START, POLICY)
    assert after.next_check_at == START + timedelta(seconds=RETRY_AFTER_SECONDS)


def test_the_next_check_is_never_past_the_deadline() -> None:
    near_end = START + POLICY.max_wait - timedelta(seconds=10)
    after = apply(session(), CaptureResult(Outcome.USER_OFFLINE), near_end, POLICY)
    assert after.next_check_at == after.deadline_at


@pytest.mark.parametrize(
    ("status", "outcome", "give_up_as"),
    [
        (S.PENDING, Outcome.NOT_READY, S.TIMED_OUT),
        (S.REQUESTED, Outcome.USER_OFFLINE, S.TIMED_OUT),
        (S.REQUESTED, Outcome.RETRYABLE, S.FAILED),
        (S.PENDING, Outcome.RETRYABLE, S.FAILED),
    ],
)
def test_at_the_deadline_open_outcomes_give_up(
    status: SessionStatus, outcome: Outcome, give_up_as: SessionStatus
) -> None:
    past = START + POLICY.max_wait
    after = apply(session(status, reference="r"), CaptureResult(outcome), past, POLICY)
    assert after.status is give_up_as
    assert after.note_state is NoteState.PENDING


def test_a_provider_may_move_the_deadline() -> None:
    # Given a provider that knows its capture can run for an hour
    later = START + timedelta(hours=1)
    result = CaptureResult(Outcome.NOT_READY, deadline_at=later)
    # When the check past the bridge's own wait says "not ready"
    after = apply(session(S.PENDING, reference="r"), result, START + POLICY.max_wait, POLICY)
    # Then the session keeps waiting until the provider's deadline
    assert (after.status, after.deadline_at) == (S.PENDING, later)


def test_the_guard_is_released_on_the_step_into_a_final_status_only() -> None:
    open_session = session(S.PENDING, reference="r")
    finished = apply(open_session, CaptureResult(Outcome.READY), START, POLICY)
    assert releases_guard(open_session, finished)
    assert not releases_guard(finished, replace(finished, note_state=NoteState.POSTED))
    waiting = apply(open_session, CaptureResult(Outcome.NOT_READY), START, POLICY)
    assert not releases_guard(open_session, waiting)


class TestUnconfirmedStarts:
    """A start that may have been carried out is repeated only when unnoticeable, and once."""

    SILENT = CaptureResult(Outcome.UNCONFIRMED, error_code="UNCONFIRMED", repeatable=True)
    VISIBLE = CaptureResult(Outcome.UNCONFIRMED, error_code="UNCONFIRMED", repeatable=False)

    @pytest.mark.parametrize("status", [S.REQUESTED, S.WAITING_FOR_USER])
    def test_a_silent_start_is_sent_again_once(self, status: SessionStatus) -> None:
        # Given a start left unconfirmed for the first time
        first = apply(session(status), self.SILENT, START, POLICY)
        # Then the session stays open, counting it, and starts again after a back-off
        assert (first.status, first.unconfirmed, first.attempts) == (status, 1, 1)
        assert first.next_check_at is not None
        assert first.next_check_at > START
        # When the repeat is left unconfirmed too, then the session fails and owes its note
        second = apply(first, self.SILENT, START, POLICY)
        assert (second.status, second.error, second.unconfirmed) == (S.FAILED, "UNCONFIRMED", 2)
        assert second.note_state is NoteState.PENDING
        assert second.unconfirmed == MAX_UNCONFIRMED_REPEATS + 1

    def test_a_start_the_user_would_see_is_never_sent_again(self) -> None:
        failed = apply(session(), self.VISIBLE, START, POLICY)
        assert (failed.status, failed.error, failed.unconfirmed) == (S.FAILED, "UNCONFIRMED", 1)

    def test_the_rule_is_the_table_within_the_budget_and_failure_beyond_it(self) -> None:
        fresh = session()
        assert transition_for(fresh, self.SILENT) == next_transition(
            S.REQUESTED, Outcome.UNCONFIRMED
        )
        assert transition_for(fresh, self.VISIBLE) == Finish(S.FAILED)
        repeated = replace(fresh, unconfirmed=MAX_UNCONFIRMED_REPEATS)
        assert transition_for(repeated, self.SILENT) == Finish(S.FAILED)

    def test_a_later_confirmed_start_keeps_the_count(self) -> None:
        # Given a silent start left unconfirmed, then confirmed when repeated
        first = apply(session(), self.SILENT, START, POLICY)
        started = CaptureResult(Outcome.STARTED, reference="https://x/api/v1/session-info/w/t")
        second = apply(first, started, START, POLICY)
        # Then the session follows the confirmed capture and remembers the unconfirmed one
        assert (second.status, second.unconfirmed) == (S.PENDING, 1)


class _Starts:
    """A provider that would start any capture, counting the starts."""

    name = "bugpilot"

    def __init__(self) -> None:
        self.starts = 0

    def start(self, session: CaptureSession) -> CaptureResult:
        self.starts += 1
        return CaptureResult(Outcome.STARTED, reference="https://x/api/v1/session-info/w/t")


@pytest.mark.parametrize(
    ("status", "given_up_as"), [(S.REQUESTED, S.FAILED), (S.WAITING_FOR_USER, S.TIMED_OUT)]
)
def test_nothing_is_started_at_the_deadline(
    status: SessionStatus, given_up_as: SessionStatus
) -> None:
    # Given a session still to start whose next try falls on its deadline
    provider = _Starts()
    due = replace(session(status), error="USER_NOT_CONNECTED")
    # When it is advanced then, then it gives up without asking the provider
    ended = advance(due, provider, due.deadline_at, POLICY, interrupted=False)  # type: ignore[arg-type]
    assert provider.starts == 0
    assert (ended.status, ended.error, ended.note_state) == (
        given_up_as,
        "USER_NOT_CONNECTED",
        NoteState.PENDING,
    )


class TestFaults:
    """A step that raises is counted on the session; after a bound in a row, its work ends."""

    ERROR = "Broken: a defect"

    def test_a_fault_is_counted_and_described_and_nothing_else_changes(self) -> None:
        # Given a pending session
        pending = session(S.PENDING, reference="r")
        # When a step of it raises
        faulted = record_fault(pending, self.ERROR, START + POLICY.poll)
        # Then the count and text are recorded, and the session stands where it stood
        assert (faulted.faults, faulted.fault, faulted.updated_at) == (
            1,
            self.ERROR,
            START + POLICY.poll,
        )
        assert replace(faulted, faults=0, fault=None, updated_at=START) == pending

    def test_a_completed_step_starts_the_count_again_and_keeps_the_last_text(self) -> None:
        # Given a session that raised twice
        faulted = replace(session(S.PENDING, reference="r"), faults=2, fault=self.ERROR)
        # When a step completes, then the count is back to zero, the last text kept
        assert (completed(faulted).faults, completed(faulted).fault) == (0, self.ERROR)

    @pytest.mark.parametrize("status", [S.REQUESTED, S.WAITING_FOR_USER, S.PENDING])
    def test_below_the_bound_nothing_is_given_up(self, status: SessionStatus) -> None:
        # Given an open session one fault short of the bound
        faulting = replace(session(status), faults=MAX_CONSECUTIVE_FAULTS - 1)
        # When it is looked at, then it goes on as it is
        assert give_up_if_faulting(faulting, START) is faulting

    @pytest.mark.parametrize("status", [S.REQUESTED, S.WAITING_FOR_USER, S.PENDING])
    def test_an_open_capture_at_the_bound_fails_as_a_bridge_error_owing_its_note(
        self, status: SessionStatus
    ) -> None:
        # Given an open session that raised the bound's number of times in a row
        faulting = replace(session(status), faults=MAX_CONSECUTIVE_FAULTS, fault=self.ERROR)
        # When it is looked at
        ended = give_up_if_faulting(faulting, START)
        # Then it fails with the bridge's error and owes the ticket its note, due now
        assert (ended.status, ended.error, ended.note_state, ended.next_check_at) == (
            S.FAILED,
            BRIDGE_ERROR,
            NoteState.PENDING,
            START,
        )
        assert ended.fault == self.ERROR
        assert releases_guard(faulting, ended)

    def test_a_note_at_the_bound_is_given_up_as_undeliverable(self) -> None:
        # Given a finished session whose note raised the bound's number of times in a row
        owing = session(S.PENDING, reference="r").finish(S.RESOLVED, now=START)
        faulting = replace(owing, faults=MAX_CONSECUTIVE_FAULTS)
        # When it is looked at
        ended = give_up_if_faulting(faulting, START)
        # Then its note is given up, and it has nothing left to do
        assert (ended.status, ended.note_state, ended.next_check_at) == (
            S.RESOLVED,
            NoteState.UNDELIVERABLE,
            None,
        )
        assert not ended.has_work


class TestCancelAndRefreshRules:
    """Cancelling and refreshing: pure rules, no store."""

    LEASE = timedelta(minutes=5)

    @pytest.mark.parametrize("status", [S.REQUESTED, S.PENDING, S.WAITING_FOR_USER])
    def test_an_open_unclaimed_session_may_be_cancelled(self, status: SessionStatus) -> None:
        assert cancel_verdict(session(status), START) is CancelVerdict.ALLOWED

    @pytest.mark.parametrize("status", [S.RESOLVED, S.FAILED, S.TIMED_OUT, S.CANCELLED])
    def test_a_final_session_is_finished(self, status: SessionStatus) -> None:
        assert cancel_verdict(session(status), START) is CancelVerdict.FINISHED

    def test_a_live_claim_holds_it_and_a_lapsed_one_does_not(self) -> None:
        # Given a session claimed at START for a lease
        claimed = replace(session(S.PENDING), claim_id="c1", next_check_at=START + self.LEASE)
        # Then it is held within the lease, and free once the lease has lapsed (holder died)
        assert cancel_verdict(claimed, START + timedelta(minutes=1)) is CancelVerdict.HELD
        assert cancel_verdict(claimed, START + self.LEASE) is CancelVerdict.ALLOWED

    def test_a_cancelled_session_is_final_owes_no_note_and_is_never_due(self) -> None:
        # Given an open session with a claim that lapsed
        open_session = replace(session(S.WAITING_FOR_USER), claim_id="dead", next_check_at=START)
        # When it is cancelled
        now = START + timedelta(minutes=2)
        gone = cancelled(open_session, now)
        # Then it is final, owes no note, has no claim and no next check, and is closed now
        assert gone.status is S.CANCELLED and gone.status.is_final
        assert gone.note_state is None and not gone.has_work
        assert (gone.claim_id, gone.next_check_at) == (None, None)
        assert gone.closed_at == now == gone.updated_at
        assert gone.expires_at is not None

    def test_finishing_sets_closed_at(self) -> None:
        now = START + timedelta(minutes=3)
        assert session(S.PENDING).closed_at is None
        assert session(S.PENDING).finish(S.RESOLVED, now=now).closed_at == now

    @pytest.mark.parametrize(
        ("status", "links_expire", "expected"),
        [
            (S.RESOLVED, True, True),
            (S.RESOLVED, False, False),
            (S.PENDING, True, False),
            (S.FAILED, True, False),
            (S.CANCELLED, True, False),
        ],
    )
    def test_only_resolved_sessions_whose_links_expire_are_refreshed(
        self, status: SessionStatus, links_expire: bool, expected: bool
    ) -> None:
        assert may_refresh(session(status), links_expire) is expected

    def test_a_refresh_takes_fresh_links_and_keeps_status_and_note(self) -> None:
        # Given a resolved session whose note is posted
        done = replace(
            session(S.RESOLVED, reference="lt-1"),
            links={"share": "https://old"},
            note_state=NoteState.POSTED,
        )
        now = START + timedelta(days=8)
        # When the provider gives fresh links
        result = CaptureResult(Outcome.READY, links={"share": "https://new"}, details={"a": "b"})
        fresh = refreshed(done, result, now)
        # Then only the links, details and update time change
        assert fresh == replace(
            done, links={"share": "https://new"}, details={"a": "b"}, updated_at=now
        )

    @pytest.mark.parametrize("outcome", [Outcome.RETRYABLE, Outcome.INVALID, Outcome.REJECTED])
    def test_a_refresh_without_an_answer_gives_nothing(self, outcome: Outcome) -> None:
        assert refreshed(session(S.RESOLVED), CaptureResult(outcome), START) is None
