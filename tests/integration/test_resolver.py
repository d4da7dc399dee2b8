"""The scheduled resolver end to end: polling, retries, time-outs, notes, overlaps and crashes."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer

from capture_bridge.capture import BRIDGE_ERROR, BRIDGE_ERROR_REASON
from capture_bridge.capture.bugpilot import BugpilotProvider
from capture_bridge.capture_flow import CLAIM_LEASE, MAX_CONSECUTIVE_FAULTS, STEADY_POLLS
from capture_bridge.errors import StoreUnavailable
from capture_bridge.models import CaptureSession, NoteState, SessionStatus, format_time, utc_now
from capture_bridge.resolver import (
    NOTE_BUDGET_MS,
    SESSION_BUDGET_MS,
    RunOutcome,
    RunSummary,
    resolve_due_sessions,
)
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import SessionStore, to_item
from capture_bridge.settings import reset_settings_cache
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from tests.conftest import Clock, Webhook, load_event, runtime_with, trigger_body

PLENTY_MS = 90_000


class Crash(Exception):
    """Stands for a function dying at a chosen point."""


@dataclass
class World:
    """Moto, both simulators, the webhook and a hand-moved clock, seen from the resolver."""

    runtime: Runtime
    clock: Clock
    bugpilot: BugpilotSimulator
    zendesk: ZendeskSimulator

    @property
    def webhook(self) -> Webhook:
        return Webhook(self.runtime, self.clock)

    def request(self, **fields: Any) -> str:
        """A capture request through the webhook; returns its session id."""
        answer = self.webhook.send(trigger_body(**fields))
        assert answer.status == 202
        session_id: str = answer.body["session_id"]
        return session_id

    def ready_capture(self) -> str:
        """A capture request whose report is ready, due for its first check; returns its id."""
        self.bugpilot.connect_user("user-42")
        session_id = self.request()
        self.bugpilot.complete_report(self.bugpilot.tokens[-1])
        self.clock.advance(seconds=30)
        return session_id

    def run(self, runtime: Runtime | None = None, remaining_ms: int = PLENTY_MS) -> RunSummary:
        """One resolver run, as the scheduled handler makes it."""
        return resolve_due_sessions(runtime or self.runtime, lambda: remaining_ms, self.clock)

    def session(self, session_id: str) -> CaptureSession:
        session = self.runtime.store.get(session_id)
        assert session is not None
        return session

    def run_when_due(self, session_id: str) -> timedelta:
        """Move the clock to the session's next check and run; returns how long that was."""
        due = self.session(session_id).next_check_at
        assert due is not None
        waited = due - self.clock()
        self.clock.now = due
        self.run()
        return waited

    def run_when_due_outcomes(self, session_id: str) -> dict[RunOutcome, int]:
        """Move the clock to the session's next check, run, and say what the run did."""
        due = self.session(session_id).next_check_at
        assert due is not None
        self.clock.now = max(due, self.clock())
        return dict(self.run().outcomes)

    def run_dying_before_save(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """One run that does its work, then dies before saving any of it."""

        def dying_save(*args: Any, **kwargs: Any) -> bool:
            raise Crash

        with monkeypatch.context() as patch:
            patch.setattr(self.runtime.store, "save", dying_save)
            assert self.run().outcomes == {RunOutcome.ERROR: 1}

    def notes(self, ticket: str = "1001") -> list[dict[str, Any]]:
        return self.zendesk.comments(ticket)


@pytest.fixture
def world(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, zendesk: ZendeskSimulator
) -> World:
    return World(runtime, clock, bugpilot, zendesk)


class TestReportArrives:
    def test_pending_session_gets_its_note_and_resolves(self, world: World) -> None:
        # Given an accepted capture whose report is not there on the first poll
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        # When the resolver runs before it is due, nothing happens
        assert world.run().due == 0
        # When it is due: the first poll finds nothing yet
        world.clock.advance(seconds=30)
        assert world.run().outcomes == {RunOutcome.WAITING: 1}
        assert world.notes() == []
        # Then the next poll finds the report and writes the note
        world.clock.advance(seconds=60)
        assert world.run().outcomes == {RunOutcome.NOTED: 1}
        session = world.session(session_id)
        assert session.status is SessionStatus.RESOLVED
        assert session.note_state is NoteState.POSTED
        assert session.links["report"] == world.bugpilot.report_url(world.bugpilot.tokens[0])
        assert session.expires_at == int((world.clock() + timedelta(days=30)).timestamp())
        [note] = world.notes()
        assert note["public"] is False
        assert session.links["report"] in note["body"]
        assert "upload-session" in note["body"]
        assert "2026-11-25 12:00 UTC" in note["body"]
        # And nothing is left to do
        world.clock.advance(hours=1)
        assert world.run().due == 0
        assert len(world.notes()) == 1
        assert len(world.bugpilot.requests("action")) == 1

    def test_report_not_found_polls_with_growing_intervals_then_times_out(
        self, world: World
    ) -> None:
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        world.bugpilot.cancel_report(world.bugpilot.tokens[0])
        intervals = []
        while not world.session(session_id).status.is_final:
            intervals.append(world.run_when_due(session_id))
            assert len(intervals) < 40
        session = world.session(session_id)
        assert session.status is SessionStatus.TIMED_OUT
        assert session.error == "REPORT_NOT_FOUND"
        # First poll 30 s after acceptance, then every 45 s while the capture is young, then
        # growing, capped at five minutes...
        steady = [timedelta(seconds=45)] * STEADY_POLLS
        assert intervals[: 3 + STEADY_POLLS] == [
            timedelta(seconds=30),
            *steady,
            timedelta(seconds=90),
            timedelta(seconds=180),
        ]
        assert max(intervals) == timedelta(minutes=5)
        # ...and the last check lands on the deadline.
        assert world.clock() == session.deadline_at
        [note] = world.notes()
        assert "No report arrived in time" in note["body"]

    def test_invalid_session_token_fails_with_a_note(self, world: World) -> None:
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        world.bugpilot.script("session_info", 400, "INVALID_SESSION_TOKEN")
        world.clock.advance(seconds=30)
        world.run()
        session = world.session(session_id)
        assert (session.status, session.error) == (SessionStatus.FAILED, "INVALID_SESSION_TOKEN")
        assert "no longer knows this capture" in world.notes()[0]["body"]

    def test_untrusted_session_info_url_is_never_fetched(
        self, world: World, env: dict[str, str]
    ) -> None:
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        # The Bugpilot host configured later differs from the one that issued the URL.
        moved = runtime_with(env, BUGPILOT_API_URL="http://127.0.0.1:9")
        world.clock.advance(seconds=30)
        world.run(moved)
        assert world.session(session_id).error == "UNTRUSTED_SESSION_INFO_URL"
        assert world.bugpilot.requests("session_info") == []
        assert len(world.notes()) == 1


class TestUserOffline:
    def test_action_is_retried_until_the_user_connects(self, world: World) -> None:
        session_id = world.request()
        world.clock.advance(minutes=3)
        assert world.run().outcomes == {RunOutcome.WAITING: 1}
        world.bugpilot.connect_user("user-42")
        world.clock.advance(minutes=3)
        assert world.run().outcomes == {RunOutcome.WAITING: 1}
        world.clock.advance(seconds=30)
        world.run()
        world.clock.advance(seconds=60)
        world.run()
        assert world.session(session_id).status is SessionStatus.RESOLVED
        assert len(world.bugpilot.requests("action")) == 3
        assert len(world.notes()) == 1

    def test_user_never_connects_times_out_with_a_note(self, world: World) -> None:
        session_id = world.request()
        for _ in range(20):
            world.clock.advance(minutes=3)
            world.run()
        session = world.session(session_id)
        assert (session.status, session.error) == (SessionStatus.TIMED_OUT, "USER_NOT_CONNECTED")
        # Asked at intake, then every three minutes until the 30-minute deadline; not at the
        # deadline itself, when a capture taken would have nobody left to follow it up.
        assert len(world.bugpilot.requests("action")) == 10
        [note] = world.notes()
        assert "not online" in note["body"]


class TestUpstreamFailures:
    def test_failed_action_is_retried_with_backoff_then_succeeds(self, world: World) -> None:
        world.bugpilot.connect_user("user-42")
        world.bugpilot.script("action", 500, "INTERNAL_ERROR", times=3)
        session_id = world.request()
        delays = [world.run_when_due(session_id) for _ in range(3)]
        assert delays == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
        assert world.session(session_id).status is SessionStatus.PENDING
        assert len(world.bugpilot.requests("action")) == 4

    def test_bugpilot_down_until_the_deadline_fails_with_a_note(self, world: World) -> None:
        world.bugpilot.script("action", 503, times=100)
        session_id = world.request()
        for _ in range(30):
            world.clock.advance(minutes=2)
            world.run()
        session = world.session(session_id)
        assert (session.status, session.error) == (SessionStatus.FAILED, "INTERNAL_ERROR")
        assert "Bugpilot kept failing (INTERNAL_ERROR)" in world.notes()[0]["body"]

    def test_session_info_outage_is_retried(self, world: World) -> None:
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        world.bugpilot.script("session_info", 500, "INTERNAL_ERROR", retry_after=90)
        world.clock.advance(seconds=30)
        world.run()
        session = world.session(session_id)
        assert session.status is SessionStatus.PENDING
        assert session.next_check_at == world.clock() + timedelta(seconds=90)
        world.clock.advance(seconds=90)
        world.run()
        world.clock.advance(minutes=5)
        world.run()
        assert len(world.notes()) == 1


class TestNotes:
    def test_rate_limited_note_honours_retry_after(self, world: World) -> None:
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        world.clock.advance(seconds=30)
        world.run()  # first poll: not yet
        world.clock.advance(seconds=60)
        world.zendesk.script("update", 429, retry_after=45)
        world.run()
        session = world.session(session_id)
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.PENDING)
        assert session.next_check_at == world.clock() + timedelta(seconds=45)
        world.clock.advance(seconds=44)
        assert world.run().due == 0
        world.clock.advance(seconds=1)
        world.run()
        assert world.session(session_id).note_state is NoteState.POSTED
        # The retry checked the ticket first, then posted exactly one note.
        assert len(world.notes()) == 1
        assert len(world.zendesk.requests("comments")) == 1

    def test_rejected_note_is_given_up_and_logged(self, world: World, env: dict[str, str]) -> None:
        world.bugpilot.script("action", 401, "INVALID_API_KEY")
        session_id = world.request()
        wrong = runtime_with(env, ZENDESK_API_TOKEN="revoked")
        assert world.run(wrong).outcomes == {RunOutcome.NOTE_UNDELIVERABLE: 1}
        session = world.session(session_id)
        assert session.note_state is NoteState.UNDELIVERABLE
        assert session.next_check_at is None
        assert world.notes() == []

    def test_note_that_keeps_failing_is_given_up_after_a_bound(self, world: World) -> None:
        world.bugpilot.script("action", 403, "NO_ACCESS")
        session_id = world.request()
        world.zendesk.script("update", 503, times=100)
        world.zendesk.script("comments", 503, times=100)
        for _ in range(40):
            world.run()
            world.clock.advance(hours=4)
        session = world.session(session_id)
        assert session.note_state is NoteState.UNDELIVERABLE
        assert session.note_attempts == 12
        assert world.notes() == []


class TestConcurrencyAndCrashes:
    def test_overlapping_runs_give_one_note_per_session(self, world: World) -> None:
        # Given many sessions whose reports are ready
        for n in range(12):
            world.bugpilot.connect_user(f"user-{n}")
            world.request(ticket_id=str(2000 + n), requester_external_id=f"user-{n}")
        for token in world.bugpilot.tokens:
            world.bugpilot.complete_report(token)
        world.clock.advance(seconds=30)
        # When three resolver runs overlap
        barrier = threading.Barrier(3)
        summaries: list[RunSummary] = []

        def one_run() -> None:
            barrier.wait()
            summaries.append(world.run())

        threads = [threading.Thread(target=one_run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then every session got exactly one note, from one of the runs
        total = sum((summary.outcomes for summary in summaries), start=RunSummary().outcomes)
        assert total.get(RunOutcome.NOTED) == 12
        for n in range(12):
            assert len(world.notes(str(2000 + n))) == 1
        assert len(world.bugpilot.requests("action")) == 12

    def test_webhook_crash_after_storing_never_repeats_the_action(self, world: World) -> None:
        # Given a webhook that died between storing the request and recording Bugpilot's answer
        real = world.runtime.provider("bugpilot")

        class DiesAfterStarting:
            def start(self, session: CaptureSession) -> Any:
                real.start(session)
                raise Crash

        world.bugpilot.connect_user("user-42")
        crashing = replace(world.runtime)
        object.__setattr__(crashing, "provider", lambda name, **_: DiesAfterStarting())
        with pytest.raises(Crash):
            Webhook(crashing, world.clock).send(trigger_body())
        assert len(world.bugpilot.requests("action")) == 1
        # When the resolver runs before the claim lapses, it leaves the session alone
        world.clock.advance(minutes=4)
        assert world.run().due == 0
        # And after the lapse it fails it with a note instead of asking Bugpilot again
        world.clock.advance(minutes=1)
        assert world.run().outcomes == {RunOutcome.NOTED: 1}
        assert len(world.bugpilot.requests("action")) == 1
        [note] = world.notes()
        assert "interrupted" in note["body"]

    def test_answer_not_recorded_at_intake_is_settled_without_a_second_action(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a webhook whose write of Bugpilot's answer fails after the action went out
        world.bugpilot.connect_user("user-42")

        def unavailable(*args: Any, **kwargs: Any) -> bool:
            raise StoreUnavailable("throttled")

        with monkeypatch.context() as patch:
            patch.setattr(world.runtime.store, "save", unavailable)
            answer = world.webhook.send(trigger_body())
        # Then Zendesk still hears that the request is taken
        assert (answer.status, answer.body["status"]) == (202, "requested")
        # And once the claim lapses, the agent is told, and Bugpilot is not asked twice
        world.clock.advance(minutes=5)
        assert world.run().outcomes == {RunOutcome.NOTED: 1}
        assert len(world.bugpilot.requests("action")) == 1
        assert "interrupted" in world.notes()[0]["body"]

    def test_crash_after_the_note_was_posted_gives_no_second_note(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        world.clock.advance(seconds=30)
        world.run()
        world.clock.advance(seconds=60)

        # Given a run that posts the note, then dies before saving
        world.run_dying_before_save(monkeypatch)
        assert len(world.notes()) == 1
        # When the next run finds the lapsed claim
        world.clock.advance(minutes=5)
        world.run()
        # Then it sees the note on the ticket and does not post another
        session = world.session(session_id)
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.POSTED)
        assert len(world.notes()) == 1

    def test_run_stops_in_time_and_leaves_the_rest(self, world: World) -> None:
        for n in range(3):
            world.request(ticket_id=str(3000 + n))
        world.clock.advance(minutes=3)
        assert world.run(remaining_ms=20_000).outcomes == {RunOutcome.DEFERRED: 3}
        assert len(world.bugpilot.requests("action")) == 3
        assert world.run().outcomes == {RunOutcome.WAITING: 3}

    def test_a_note_without_time_for_its_worst_case_waits_for_the_next_run(
        self, world: World
    ) -> None:
        # Given a capture whose report is ready
        session_id = world.ready_capture()
        # When a run has time for the check but not for the note's worst case
        time_left = iter([SESSION_BUDGET_MS, NOTE_BUDGET_MS - 1])
        summary = resolve_due_sessions(world.runtime, lambda: next(time_left), world.clock)
        # Then the session is finished and saved, its note due at once, not yet posted
        assert summary.outcomes == {RunOutcome.FINISHED: 1}
        session = world.session(session_id)
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.PENDING)
        assert session.next_check_at == world.clock()
        assert world.notes() == []
        # And the next run posts it
        assert world.run().outcomes == {RunOutcome.NOTED: 1}
        assert len(world.notes()) == 1

    def test_a_note_left_for_later_after_a_dead_holder_is_looked_for_before_posting(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a run that posted the note, then died before saving
        session_id = world.ready_capture()
        world.run_dying_before_save(monkeypatch)
        # When, after the lease, a run short of time leaves the note for the next one
        world.clock.advance(minutes=5)
        time_left = iter([SESSION_BUDGET_MS, NOTE_BUDGET_MS - 1])
        resolve_due_sessions(world.runtime, lambda: next(time_left), world.clock)
        # Then that next run finds the note already on the ticket and posts no second one
        assert world.run().outcomes == {RunOutcome.NOTED: 1}
        assert len(world.notes()) == 1
        assert world.session(session_id).note_state is NoteState.POSTED

    def test_a_note_posted_before_a_crash_is_not_posted_again_after_a_failed_recheck(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a run that posted the note, then died before saving: the session still looks open
        session_id = world.ready_capture()
        world.run_dying_before_save(monkeypatch)
        # And, after the lease, the run that finds it interrupted cannot re-check the report
        world.clock.advance(minutes=5)
        world.bugpilot.script("session_info", HTTPStatus.BAD_GATEWAY)
        assert world.run().outcomes == {RunOutcome.WAITING: 1}
        # When a later run, which took its claim cleanly, finds the report ready
        assert world.run_when_due(session_id)
        # Then it finds the earlier note on the ticket and posts no second one
        assert len(world.notes()) == 1
        session = world.session(session_id)
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.POSTED)

    def test_due_sessions_are_found_with_a_query_never_a_scan(self, world: World) -> None:
        world.request()
        calls: list[str] = []
        world.runtime.store.client.meta.events.register(
            "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
        )
        world.clock.advance(minutes=3)
        world.run()
        assert "Query" in calls
        assert "Scan" not in calls


class Broken(Exception):
    """Stands for a defect: a step raising what nothing expects."""


BROKEN_MESSAGE = "session info parser broke on ada@example.com"


def breaking_check(*args: Any, **kwargs: Any) -> Any:
    raise Broken(BROKEN_MESSAGE)


class TestFaultySessions:
    """A session whose step raises is its own affair: recorded on it, bounded, never the run's."""

    def test_a_raising_session_is_recorded_on_it_and_keeps_its_claim(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a started capture due for its check, and a check that raises
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        world.clock.advance(seconds=30)
        ran_at = world.clock()
        monkeypatch.setattr(BugpilotProvider, "check", breaking_check)
        # When the resolver runs, then the session is an error of the run, not its failure
        assert world.run().outcomes == {RunOutcome.ERROR: 1}
        # Then the fault is on the session: its count, its text without the raw email, its due
        session = world.session(session_id)
        assert session.faults == 1
        assert session.fault == "Broken: session info parser broke on a***@example.com"
        assert session.next_check_at == ran_at + CLAIM_LEASE
        # And the claim is still in place, so that the next holder sees the step interrupted
        assert session.claim_id is not None
        world.clock.now = ran_at + CLAIM_LEASE
        claim = world.runtime.store.claim(session_id, now=world.clock(), lease=CLAIM_LEASE)
        assert claim is not None and claim.interrupted

    def test_a_session_that_recovers_starts_counting_again(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a session whose check raised once
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        world.clock.advance(seconds=30)
        with monkeypatch.context() as patch:
            patch.setattr(BugpilotProvider, "check", breaking_check)
            world.run()
        # When the next check goes through
        world.run_when_due(session_id)
        # Then the count starts again and the last fault is kept for whoever looks
        session = world.session(session_id)
        assert (session.status, session.faults) == (SessionStatus.PENDING, 0)
        assert session.fault is not None and session.fault.startswith("Broken")

    def test_a_session_that_keeps_raising_ends_failed_after_the_bound_with_one_note(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a started capture whose every check raises
        world.bugpilot.connect_user("user-42")
        session_id = world.request()
        world.clock.advance(seconds=30)
        monkeypatch.setattr(BugpilotProvider, "check", breaking_check)
        # When the resolver runs whenever it is due, the bound's number of times
        for fault in range(1, MAX_CONSECUTIVE_FAULTS + 1):
            assert world.run_when_due_outcomes(session_id) == {RunOutcome.ERROR: 1}
            assert world.session(session_id).faults == fault
        assert world.notes() == []
        # Then the next run ends it as failed by the bridge, and the run after posts its one note
        assert world.run_when_due_outcomes(session_id) == {RunOutcome.FINISHED: 1}
        assert world.run_when_due_outcomes(session_id) == {RunOutcome.NOTED: 1}
        session = world.session(session_id)
        assert (session.status, session.error, session.note_state) == (
            SessionStatus.FAILED,
            BRIDGE_ERROR,
            NoteState.POSTED,
        )
        assert session.claim_id is None and session.next_check_at is None
        [note] = world.notes()
        assert f"Capture session: {session_id}" in note["body"]
        assert BRIDGE_ERROR_REASON in note["body"]
        # And nothing is left to do
        world.clock.advance(hours=1)
        assert world.run().due == 0

    def test_a_note_that_keeps_raising_is_given_up_after_the_bound(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a resolved capture whose note was left for a later run, and cannot be written
        session_id = world.ready_capture()
        time_left = iter([SESSION_BUDGET_MS, NOTE_BUDGET_MS - 1])
        summary = resolve_due_sessions(world.runtime, lambda: next(time_left), world.clock)
        assert summary.outcomes == {RunOutcome.FINISHED: 1}
        monkeypatch.setattr(BugpilotProvider, "render_note", breaking_check)
        # When the resolver runs whenever it is due, the bound's number of times
        for _ in range(MAX_CONSECUTIVE_FAULTS):
            assert world.run_when_due_outcomes(session_id) == {RunOutcome.ERROR: 1}
        # Then the next run gives the note up, and the session has nothing left to do
        assert world.run_when_due_outcomes(session_id) == {RunOutcome.NOTE_UNDELIVERABLE: 1}
        session = world.session(session_id)
        assert (session.status, session.note_state) == (
            SessionStatus.RESOLVED,
            NoteState.UNDELIVERABLE,
        )
        assert world.notes() == []
        assert session.next_check_at is None

    def test_one_raising_session_does_not_stop_the_others(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given two sessions due for their first step, the first of which raises
        world.bugpilot.connect_user("user-42")
        world.request(ticket_id=str(BROKEN_TICKET))
        world.request(ticket_id=str(BROKEN_TICKET + 1))
        world.clock.advance(seconds=30)
        real_check = BugpilotProvider.check

        def check(provider: BugpilotProvider, session: CaptureSession) -> Any:
            if session.ticket_id == str(BROKEN_TICKET):
                raise Broken(BROKEN_MESSAGE)
            return real_check(provider, session)

        monkeypatch.setattr(BugpilotProvider, "check", check)
        # When the resolver runs, then the other is checked as usual
        assert world.run().outcomes == {RunOutcome.ERROR: 1, RunOutcome.WAITING: 1}


BROKEN_TICKET = 4000


class TestHandler:
    @pytest.mark.usefixtures("configured", "bugpilot", "zendesk")
    def test_scheduled_event_runs_the_resolver(self, lambda_context: Any) -> None:
        from resolver_handler import lambda_handler

        result = lambda_handler(load_event("resolver_tick"), lambda_context)
        assert result == {"due": 0, "outcomes": {}}

    def test_a_raising_session_does_not_fail_the_run(
        self,
        configured: dict[str, str],
        bugpilot: BugpilotSimulator,
        lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        import resolver_handler

        # Given a capture started a minute ago (the handler runs on the real clock), due for its
        # check, and a check that raises
        bugpilot.connect_user("user-42")
        a_minute_ago = Clock(utc_now() - timedelta(minutes=1))
        answer = Webhook(runtime_with(configured), a_minute_ago).send(trigger_body())
        assert answer.status == 202
        monkeypatch.setattr(BugpilotProvider, "check", breaking_check)
        # When the scheduled handler runs, then it answers with the error counted, raising nothing
        result = resolver_handler.lambda_handler(load_event("resolver_tick"), lambda_context)
        assert result == {"due": 1, "outcomes": {RunOutcome.ERROR: 1}}

    def test_a_run_whose_store_is_unreachable_fails_saying_so(
        self, configured: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import resolver_handler

        # Given a session store that cannot list the due sessions
        def unreachable(*args: Any, **kwargs: Any) -> list[str]:
            raise StoreUnavailable("could not read the due sessions: connection refused")

        monkeypatch.setattr(SessionStore, "due_session_ids", unreachable)
        # When the scheduled handler runs, then the run fails, its message saying what failed
        with pytest.raises(
            resolver_handler.ResolverRunFailed,
            match=r"^the resolver cannot run: the session store is unreachable: could not read",
        ):
            resolver_handler.lambda_handler(load_event("resolver_tick"), lambda_context)

    def test_a_run_with_invalid_settings_fails_saying_so(
        self, configured: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import resolver_handler

        # Given settings that cannot be used
        monkeypatch.setenv("CAPTURE_MAX_WAIT_MINUTES", "forever")
        reset_settings_cache()
        # When the scheduled handler runs, then the run fails, its message saying what failed
        with pytest.raises(
            resolver_handler.ResolverRunFailed,
            match=r"^the resolver cannot run: its settings are invalid: CAPTURE_MAX_WAIT_MINUTES",
        ):
            resolver_handler.lambda_handler(load_event("resolver_tick"), lambda_context)


class TestSessionsStoredBeforeProviders:
    def test_a_session_in_the_older_item_shape_still_finishes_with_one_note(
        self, world: World, table: str
    ) -> None:
        # Given a pending Bugpilot session written before sessions named their provider
        world.bugpilot.connect_user("user-42")
        started = world.request()
        token = world.bugpilot.tokens[0]
        token_url = world.bugpilot.session_info_url(world.bugpilot.workspace_id, token)
        new = to_item(world.session(started))
        legacy = {
            key: value
            for key, value in new.items()
            if key not in ("provider", "capture_key", "reference", "links", "details")
        } | {"session_info_url": token_url, "next_check_at": format_time(world.clock())}
        boto3.client("dynamodb").put_item(
            TableName=table,
            Item={k: TypeSerializer().serialize(v) for k, v in legacy.items()},
        )
        # When the resolver runs until the report is there
        assert world.run().outcomes == {RunOutcome.WAITING: 1}
        world.run_when_due(started)
        # Then it is read as Bugpilot's, finishes, and its one note carries the report link
        session = world.session(started)
        assert (session.provider, session.status) == ("bugpilot", SessionStatus.RESOLVED)
        [note] = world.notes()
        assert world.bugpilot.report_url(token) in note["body"]
