"""The scheduled resolver end to end: polling, retries, time-outs, notes, overlaps and crashes."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.resolver import RunSummary, resolve_due_sessions
from capture_bridge.runtime import Runtime
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from tests.conftest import Clock, Webhook, load_event, runtime_with, trigger_body

PLENTY_MS = 90_000


def run(runtime: Runtime, clock: Clock, remaining_ms: int = PLENTY_MS) -> RunSummary:
    return resolve_due_sessions(runtime, lambda: remaining_ms, clock)


def notes(zendesk: ZendeskSimulator, ticket: str = "1001") -> list[dict[str, Any]]:
    return zendesk.comments(ticket)


def requested(webhook: Webhook, **fields: Any) -> str:
    answer = webhook.send(trigger_body(**fields))
    assert answer.status == 202
    session_id: str = answer.body["session_id"]
    return session_id


class TestReportArrives:
    def test_pending_session_gets_its_note_and_resolves(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        # Given an accepted capture whose report is not there on the first poll
        bugpilot.connect_user("user-42")
        session_id = requested(webhook)
        # When the resolver runs before it is due, nothing happens
        assert run(runtime, clock).due == 0
        # When it is due: first poll finds nothing yet
        clock.advance(seconds=30)
        assert run(runtime, clock).outcomes == {"pending": 1}
        assert notes(zendesk) == []
        # Then the next poll finds the report and writes the note
        clock.advance(seconds=60)
        assert run(runtime, clock).outcomes == {"noted_resolved": 1}
        session = runtime.store.get(session_id)
        assert session is not None
        assert session.status is SessionStatus.RESOLVED
        assert session.note_state is NoteState.POSTED
        assert session.report_url == bugpilot.report_url(bugpilot.tokens[0])
        assert session.expires_at == int((clock() + timedelta(days=30)).timestamp())
        [note] = notes(zendesk)
        assert note["public"] is False
        assert session.report_url in note["body"]
        assert "upload-session" in note["body"]
        assert "2026-11-25 12:00 UTC" in note["body"]
        # And nothing is left to do
        clock.advance(hours=1)
        assert run(runtime, clock).due == 0
        assert len(notes(zendesk)) == 1
        assert len(bugpilot.actions) == 1

    def test_report_not_found_polls_with_growing_intervals_then_times_out(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        bugpilot.connect_user("user-42")
        session_id = requested(webhook)
        bugpilot.cancel_report(bugpilot.tokens[0])
        intervals = []
        for _ in range(40):
            session = runtime.store.get(session_id)
            assert session is not None
            if session.status.is_final:
                break
            assert session.next_check_at is not None
            clock.now = session.next_check_at
            before = clock()
            run(runtime, clock)
            after = runtime.store.get(session_id)
            assert after is not None
            if after.next_check_at is not None:
                intervals.append(after.next_check_at - before)
        session = runtime.store.get(session_id)
        assert session is not None
        assert session.status is SessionStatus.TIMED_OUT
        assert session.error == "REPORT_NOT_FOUND"
        # Growing, capped at five minutes, and the last check lands on the deadline.
        assert intervals[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
        assert max(intervals) == timedelta(minutes=5)
        assert clock() == session.deadline_at
        [note] = notes(zendesk)
        assert "No report arrived in time" in note["body"]

    def test_invalid_session_token_fails_with_a_note(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        bugpilot.connect_user("user-42")
        session_id = requested(webhook)
        bugpilot.script_session_info(400, "INVALID_SESSION_TOKEN")
        clock.advance(seconds=30)
        run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert (session.status, session.error) == (SessionStatus.FAILED, "INVALID_SESSION_TOKEN")
        assert "no longer knows this capture" in notes(zendesk)[0]["body"]

    def test_untrusted_session_info_url_is_never_fetched(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
        env: dict[str, str],
    ) -> None:
        bugpilot.connect_user("user-42")
        session_id = requested(webhook)
        # The Bugpilot host configured later differs from the one that issued the URL.
        moved = runtime_with(env, BUGPILOT_API_URL="http://127.0.0.1:9")
        clock.advance(seconds=30)
        run(moved, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert session.error == "UNTRUSTED_SESSION_INFO_URL"
        assert bugpilot.session_info_requests == []
        assert len(notes(zendesk)) == 1


class TestUserOffline:
    def test_action_is_retried_until_the_user_connects(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        session_id = requested(webhook)
        clock.advance(minutes=3)
        assert run(runtime, clock).outcomes == {"waiting_for_user": 1}
        bugpilot.connect_user("user-42")
        clock.advance(minutes=3)
        assert run(runtime, clock).outcomes == {"pending": 1}
        clock.advance(seconds=30)
        run(runtime, clock)
        clock.advance(seconds=60)
        run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert session.status is SessionStatus.RESOLVED
        assert len(bugpilot.actions) == 3
        assert len(notes(zendesk)) == 1

    def test_user_never_connects_times_out_with_a_note(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        session_id = requested(webhook)
        for _ in range(20):
            clock.advance(minutes=3)
            run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert (session.status, session.error) == (SessionStatus.TIMED_OUT, "USER_NOT_CONNECTED")
        # Asked at intake, then every three minutes up to and including the 30-minute deadline.
        assert len(bugpilot.actions) == 11
        [note] = notes(zendesk)
        assert "not online" in note["body"]


class TestUpstreamFailures:
    def test_failed_action_is_retried_with_backoff_then_succeeds(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
    ) -> None:
        bugpilot.connect_user("user-42")
        bugpilot.script_action(500, "INTERNAL_ERROR", times=3)
        session_id = requested(webhook)
        delays = []
        for _ in range(2):
            session = runtime.store.get(session_id)
            assert session is not None and session.next_check_at is not None
            delays.append(session.next_check_at - clock())
            clock.now = session.next_check_at
            run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        delays.append(session.next_check_at - clock())
        assert delays == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
        clock.now = session.next_check_at
        run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert session.status is SessionStatus.PENDING
        assert len(bugpilot.actions) == 4

    def test_bugpilot_down_until_the_deadline_fails_with_a_note(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        bugpilot.script_action(503, times=100)
        session_id = requested(webhook)
        for _ in range(30):
            clock.advance(minutes=2)
            run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert (session.status, session.error) == (SessionStatus.FAILED, "INTERNAL_ERROR")
        assert "Bugpilot kept failing (INTERNAL_ERROR)" in notes(zendesk)[0]["body"]

    def test_session_info_outage_is_retried(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        bugpilot.connect_user("user-42")
        session_id = requested(webhook)
        bugpilot.script_session_info(500, "INTERNAL_ERROR", retry_after=90)
        clock.advance(seconds=30)
        run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert session.status is SessionStatus.PENDING
        assert session.next_check_at == clock() + timedelta(seconds=90)
        clock.advance(seconds=90)
        run(runtime, clock)
        clock.advance(minutes=5)
        run(runtime, clock)
        assert len(notes(zendesk)) == 1


class TestNotes:
    def _resolved_and_due(
        self, webhook: Webhook, runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator
    ) -> str:
        bugpilot.connect_user("user-42")
        session_id = requested(webhook)
        clock.advance(seconds=30)
        return session_id

    def test_rate_limited_note_honours_retry_after(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        session_id = self._resolved_and_due(webhook, runtime, clock, bugpilot)
        run(runtime, clock)  # first poll: not yet
        clock.advance(seconds=60)
        zendesk.script_update(429, retry_after=45)
        run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.PENDING)
        assert session.next_check_at == clock() + timedelta(seconds=45)
        clock.advance(seconds=44)
        assert run(runtime, clock).due == 0
        clock.advance(seconds=1)
        run(runtime, clock)
        session = runtime.store.get(session_id)
        assert session is not None
        assert session.note_state is NoteState.POSTED
        # The retry checked the ticket first, then posted exactly one note.
        assert len(notes(zendesk)) == 1
        assert len(zendesk.comment_reads) == 1

    def test_rejected_note_is_given_up_and_logged(
        self,
        env: dict[str, str],
        webhook: Webhook,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        bugpilot.script_action(401, "INVALID_API_KEY")
        session_id = requested(webhook)
        wrong = runtime_with(env, ZENDESK_API_TOKEN="revoked")
        assert run(wrong, clock).outcomes == {"failed": 1}
        session = wrong.store.get(session_id)
        assert session is not None
        assert session.note_state is NoteState.UNDELIVERABLE
        assert session.next_check_at is None
        assert notes(zendesk) == []

    def test_note_that_keeps_failing_is_given_up_after_a_bound(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        bugpilot.script_action(403, "NO_ACCESS")
        session_id = requested(webhook)
        zendesk.script_update(503, times=100)
        zendesk.script_comments(503, times=100)
        for _ in range(40):
            run(runtime, clock)
            clock.advance(hours=4)
        session = runtime.store.get(session_id)
        assert session is not None
        assert session.note_state is NoteState.UNDELIVERABLE
        assert session.note_attempts == 12
        assert notes(zendesk) == []


class TestConcurrencyAndCrashes:
    def test_overlapping_runs_give_one_note_per_session(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        # Given many sessions whose reports are ready
        for n in range(12):
            bugpilot.connect_user(f"user-{n}")
            requested(webhook, ticket_id=str(2000 + n), requester_external_id=f"user-{n}")
        for token in bugpilot.tokens:
            bugpilot.complete_report(token)
        clock.advance(seconds=30)
        # When three resolver runs overlap
        barrier = threading.Barrier(3)
        summaries: list[RunSummary] = []

        def one_run() -> None:
            barrier.wait()
            summaries.append(run(runtime, clock))

        threads = [threading.Thread(target=one_run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then every session got exactly one note and one poll that resolved it
        total: dict[str, int] = {}
        for summary in summaries:
            for key, count in summary.outcomes.items():
                total[key] = total.get(key, 0) + count
        assert total.get("noted_resolved") == 12
        for n in range(12):
            assert len(notes(zendesk, str(2000 + n))) == 1
        assert len(bugpilot.actions) == 12

    def test_webhook_crash_after_storing_never_repeats_the_action(
        self,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        # Given a webhook that died between storing the request and recording Bugpilot's answer
        class Crash(Exception):
            pass

        class DiesAfterCalling:
            def request_capture(self, **kwargs: str) -> Any:
                runtime.provider.request_capture(**kwargs)
                raise Crash

        bugpilot.connect_user("user-42")
        crashing = replace(runtime, provider=DiesAfterCalling())  # type: ignore[arg-type]
        with pytest.raises(Crash):
            Webhook(crashing, clock).send(trigger_body())
        assert len(bugpilot.actions) == 1
        # When the resolver runs before the claim lapses, it leaves the session alone
        clock.advance(minutes=4)
        assert run(runtime, clock).due == 0
        # And after the lapse it fails it with a note instead of asking Bugpilot again
        clock.advance(minutes=1)
        assert run(runtime, clock).outcomes == {"noted_failed": 1}
        assert len(bugpilot.actions) == 1
        [note] = notes(zendesk)
        assert "interrupted" in note["body"]

    def test_crash_after_the_note_was_posted_gives_no_second_note(
        self,
        webhook: Webhook,
        runtime: Runtime,
        clock: Clock,
        bugpilot: BugpilotSimulator,
        zendesk: ZendeskSimulator,
    ) -> None:
        bugpilot.connect_user("user-42")
        session_id = requested(webhook)
        clock.advance(seconds=30)
        run(runtime, clock)
        clock.advance(seconds=60)

        # Given a run that posts the note, then dies before saving
        class Crash(Exception):
            pass

        store = runtime.store
        original_save = store.save

        def dying_save(*args: Any, **kwargs: Any) -> bool:
            raise Crash

        object.__setattr__(store, "save", dying_save)
        assert run(runtime, clock).outcomes == {"error": 1}
        object.__setattr__(store, "save", original_save)
        assert len(notes(zendesk)) == 1
        # When the next run finds the lapsed claim
        clock.advance(minutes=5)
        run(runtime, clock)
        # Then it sees the note on the ticket and does not post another
        session = runtime.store.get(session_id)
        assert session is not None
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.POSTED)
        assert len(notes(zendesk)) == 1

    def test_run_stops_in_time_and_leaves_the_rest(
        self, webhook: Webhook, runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator
    ) -> None:
        for n in range(3):
            requested(webhook, ticket_id=str(3000 + n))
        clock.advance(minutes=3)
        summary = run(runtime, clock, remaining_ms=20_000)
        assert summary.outcomes == {"deferred": 3}
        assert len(bugpilot.actions) == 3
        assert run(runtime, clock).outcomes == {"waiting_for_user": 3}

    def test_due_sessions_are_found_with_a_query_never_a_scan(
        self, webhook: Webhook, runtime: Runtime, clock: Clock
    ) -> None:
        requested(webhook)
        calls: list[str] = []
        client = runtime.store.client
        client.meta.events.register(
            "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
        )
        clock.advance(minutes=3)
        run(runtime, clock)
        assert "Query" in calls
        assert "Scan" not in calls


class TestHandler:
    @pytest.mark.usefixtures("configured")
    def test_scheduled_event_runs_the_resolver(
        self, lambda_context: Any, bugpilot: BugpilotSimulator, zendesk: ZendeskSimulator
    ) -> None:
        from resolver_handler import lambda_handler

        result = lambda_handler(load_event("resolver_tick"), lambda_context)
        assert result == {"due": 0, "outcomes": {}}

    @pytest.mark.usefixtures("configured")
    def test_a_failing_session_fails_the_run_for_the_dead_letter_queue(
        self, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import resolver_handler
        from capture_bridge.resolver import RunSummary

        broken = RunSummary(due=2)
        broken.outcomes.update({"error": 1, "pending": 1})
        monkeypatch.setattr(resolver_handler, "resolve_due_sessions", lambda *a, **k: broken)
        with pytest.raises(resolver_handler.ResolverRunFailed, match="1 of 2"):
            resolver_handler.lambda_handler(load_event("resolver_tick"), lambda_context)


def test_answer_not_recorded_at_intake_is_settled_without_a_second_action(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, zendesk: ZendeskSimulator
) -> None:
    from capture_bridge.errors import StoreUnavailable

    # Given a webhook whose write of Bugpilot's answer fails after the action went out
    bugpilot.connect_user("user-42")
    store = runtime.store
    original_save = store.save

    def unavailable(*args: Any, **kwargs: Any) -> bool:
        raise StoreUnavailable("throttled")

    object.__setattr__(store, "save", unavailable)
    answer = Webhook(runtime, clock).send(trigger_body())
    object.__setattr__(store, "save", original_save)
    # Then Zendesk still hears that the request is taken
    assert (answer.status, answer.body["status"]) == (202, "requested")
    # And once the claim lapses, the agent is told, and Bugpilot is not asked twice
    clock.advance(minutes=5)
    assert run(runtime, clock).outcomes == {"noted_failed": 1}
    assert len(bugpilot.actions) == 1
    assert "interrupted" in notes(zendesk)[0]["body"]
