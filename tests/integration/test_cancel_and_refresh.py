"""Cancelling against the resolver and the webhook, and refreshing links: flows on moto.

A cancel may only commit while no live claim holds the session, so a holder mid-way (starting
the capture, checking it, posting its note) always finishes first: no note ever follows
`cancelled`. Each race is replayed in a fixed order by pausing the holder inside a provider or
helpdesk call and letting the cancel's own pause decide when it resumes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge.capture import CaptureResult
from capture_bridge.capture.bugpilot import BugpilotProvider
from capture_bridge.capture.lambdatest import LambdaTestProvider
from capture_bridge.helpdesks.zendesk import ZendeskAdapter
from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.resolver import RunOutcome
from capture_bridge.session_commands import (
    CANCEL_ATTEMPTS,
    CancelOutcome,
    RefreshOutcome,
    cancel,
    refresh,
)
from tests.conftest import Desk, trigger_body

LT_SESSION = "bc02fd99593f14e37850745d66197f89"
TICKET = "1001"
WAIT_SECONDS = 10
EXPIRED_LINK = "https://automation.lambdatest.com/share?shareId=expired"


class Pause:
    """Holds a call in another thread until released; tells when it has been entered."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def paused(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            assert self.release.wait(WAIT_SECONDS)
            return call(*args, **kwargs)

        return paused


class Holder:
    """A resolver run (or webhook call) in a thread, paused inside one call."""

    def __init__(self, work: Callable[[], Any], pause: Pause) -> None:
        self.pause = pause
        self.thread = threading.Thread(target=work)

    def start(self) -> Holder:
        self.thread.start()
        assert self.pause.entered.wait(WAIT_SECONDS)
        return self

    def finish(self) -> None:
        self.pause.release.set()
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive()


def finish_holder_on_first_pause(holder: Holder) -> Callable[[float], None]:
    """The cancel's pause: the held session's holder completes while the cancel waits."""
    return lambda _seconds: holder.finish()


def never_released(_seconds: float) -> None:
    """The cancel's pause while the holder stays in its call."""


@pytest.fixture
def lambdatest_session(desk: Desk) -> str:
    """A LambdaTest session named on the ticket: pending, due at once."""
    desk.lambdatest.add_session(LT_SESSION, status="running")
    body = desk.send(trigger_body(tags="qa", lambdatest_session_id=LT_SESSION))
    session_id: str = body["sessions"][0]["session_id"]
    return session_id


class TestCancelRacingTheResolver:
    def test_a_cancel_during_the_note_waits_and_then_finds_it_finished(
        self, desk: Desk, lambdatest_session: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given the test session has finished and a resolver run is paused posting the note
        desk.lambdatest.finish_session(LT_SESSION)
        pause = Pause()
        monkeypatch.setattr(ZendeskAdapter, "post_note", pause.wrap(ZendeskAdapter.post_note))
        holder = Holder(desk.run, pause).start()
        # When a cancel comes meanwhile
        result = cancel(
            desk.runtime.store, lambdatest_session, desk.clock, finish_holder_on_first_pause(holder)
        )
        # Then it waited for the holder, and the session had finished: one note, not cancelled
        assert result.outcome is CancelOutcome.FINISHED
        assert len(desk.notes()) == 1
        session = desk.session(lambdatest_session)
        assert session.status is SessionStatus.RESOLVED
        assert session.note_state is NoteState.POSTED

    def test_a_cancel_during_a_check_that_finds_it_running_cancels_and_no_note_ever_follows(
        self, desk: Desk, lambdatest_session: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a resolver run paused checking the still running test session
        pause = Pause()
        monkeypatch.setattr(LambdaTestProvider, "check", pause.wrap(LambdaTestProvider.check))
        holder = Holder(desk.run, pause).start()
        # When a cancel comes meanwhile
        result = cancel(
            desk.runtime.store, lambdatest_session, desk.clock, finish_holder_on_first_pause(holder)
        )
        # Then it commits once the holder has saved its check
        assert result.outcome is CancelOutcome.CANCELLED
        assert result.session is not None and result.session.status is SessionStatus.CANCELLED
        assert desk.session(lambdatest_session).polls == 1
        # And when the test finishes and the resolver runs for days, no note ever comes
        desk.lambdatest.finish_session(LT_SESSION)
        for _ in range(3):
            desk.clock.advance(days=1)
            assert desk.run() == {}
        assert desk.notes() == []
        session = desk.session(lambdatest_session)
        assert (session.status, session.note_state) == (SessionStatus.CANCELLED, None)

    def test_a_cancel_first_means_no_claim_and_no_note(
        self, desk: Desk, lambdatest_session: str
    ) -> None:
        # Given the test session has finished but no run has seen it yet
        desk.lambdatest.finish_session(LT_SESSION)
        # When it is cancelled first, then the resolver runs
        assert cancel(desk.runtime.store, lambdatest_session, desk.clock).outcome is (
            CancelOutcome.CANCELLED
        )
        desk.clock.advance(minutes=10)
        # Then the run finds nothing due and posts nothing
        assert desk.run() == {}
        assert desk.notes() == []
        assert (
            desk.runtime.store.claim(
                lambdatest_session, now=desk.clock(), lease=timedelta(minutes=5)
            )
            is None
        )

    def test_a_holder_that_keeps_working_makes_the_cancel_busy_and_its_note_goes_out(
        self, desk: Desk, lambdatest_session: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a run paused posting the note of a finished test session
        desk.lambdatest.finish_session(LT_SESSION)
        pause = Pause()
        monkeypatch.setattr(ZendeskAdapter, "post_note", pause.wrap(ZendeskAdapter.post_note))
        holder = Holder(desk.run, pause).start()
        pauses: list[float] = []
        # When a cancel waits through all its tries
        result = cancel(desk.runtime.store, lambdatest_session, desk.clock, pauses.append)
        # Then it answers busy, having changed nothing
        assert result.outcome is CancelOutcome.BUSY
        assert len(pauses) == CANCEL_ATTEMPTS - 1
        # And the holder completes with its one note, the session resolved
        holder.finish()
        assert len(desk.notes()) == 1
        assert desk.session(lambdatest_session).status is SessionStatus.RESOLVED

    def test_a_dead_holders_lapsed_claim_does_not_block_the_cancel(
        self, desk: Desk, lambdatest_session: str
    ) -> None:
        # Given a claim whose holder died
        store = desk.runtime.store
        assert store.claim(lambdatest_session, now=desk.clock(), lease=timedelta(minutes=5))
        # When the lease has lapsed, then the cancel commits
        desk.clock.advance(minutes=5)
        assert cancel(store, lambdatest_session, desk.clock, never_released).outcome is (
            CancelOutcome.CANCELLED
        )

    def test_unknown_and_finished_sessions(self, desk: Desk, lambdatest_session: str) -> None:
        store = desk.runtime.store
        assert cancel(store, "no-such-session", desk.clock).outcome is CancelOutcome.NOT_FOUND
        assert cancel(store, lambdatest_session, desk.clock).outcome is CancelOutcome.CANCELLED
        again = cancel(store, lambdatest_session, desk.clock)
        assert again.outcome is CancelOutcome.FINISHED


class TestCancelRacingTheWebhook:
    def test_a_cancel_while_the_webhook_starts_the_capture_waits_then_cancels(
        self, desk: Desk, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a webhook call paused sending Bugpilot's capture action
        desk.bugpilot.connect_user("user-42")
        pause = Pause()
        monkeypatch.setattr(BugpilotProvider, "start", pause.wrap(BugpilotProvider.start))
        holder = Holder(lambda: desk.send(trigger_body()), pause).start()
        [session_id] = desk.runtime.store.due_session_ids(desk.clock() + timedelta(hours=1), 5)
        # When a cancel comes meanwhile
        result = cancel(
            desk.runtime.store, session_id, desk.clock, finish_holder_on_first_pause(holder)
        )
        # Then it waited for the start to be recorded, and cancelled after it
        assert result.outcome is CancelOutcome.CANCELLED
        assert len(desk.bugpilot.requests("action")) == 1
        # And when the report appears, no run ever notes it, and the guard is free again
        desk.bugpilot.complete_report(desk.bugpilot.tokens[0])
        desk.clock.advance(minutes=10)
        assert desk.run() == {}
        assert desk.notes() == []
        again = desk.send(trigger_body())
        assert again["duplicate"] is False


class TestRefresh:
    def resolved_lambdatest(self, desk: Desk, session_id: str) -> None:
        desk.lambdatest.finish_session(LT_SESSION)
        assert desk.run_when_due(session_id) == {RunOutcome.NOTED: 1}

    def test_expired_links_are_read_again_without_a_note_or_a_status_change(
        self, desk: Desk, lambdatest_session: str
    ) -> None:
        # Given a resolved session whose stored share link has expired
        self.resolved_lambdatest(desk, lambdatest_session)
        session = desk.session(lambdatest_session)
        fresh_share = session.links["share"]
        stale = replace(session, links={**session.links, "share": EXPIRED_LINK})
        assert desk.runtime.store.save_links(stale, seen=SessionStatus.RESOLVED)
        reads = len(desk.lambdatest.requests("session"))
        # When it is refreshed a week later
        desk.clock.advance(days=7)
        result = refresh(desk.runtime, desk.session(lambdatest_session), desk.clock)
        # Then LambdaTest was read again and the fresh link is stored
        assert result.outcome is RefreshOutcome.REFRESHED
        assert len(desk.lambdatest.requests("session")) == reads + 1
        stored = desk.session(lambdatest_session)
        assert stored.links["share"] == fresh_share
        # And nothing else changed: status, note, closing time; no second note
        assert (stored.status, stored.note_state) == (SessionStatus.RESOLVED, NoteState.POSTED)
        assert stored.closed_at == session.closed_at
        assert stored.updated_at == desk.clock()
        assert len(desk.notes()) == 1

    def test_a_provider_that_fails_leaves_the_links_and_says_unavailable(
        self, desk: Desk, lambdatest_session: str
    ) -> None:
        self.resolved_lambdatest(desk, lambdatest_session)
        desk.lambdatest.script("session", 503)
        session = desk.session(lambdatest_session)
        result = refresh(desk.runtime, session, desk.clock)
        assert result.outcome is RefreshOutcome.UNAVAILABLE
        assert desk.session(lambdatest_session) == session

    def test_open_sessions_and_links_that_do_not_expire_are_left_alone(
        self, desk: Desk, lambdatest_session: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given an open LambdaTest session and a resolved Bugpilot one
        def no_call(*_: Any) -> CaptureResult:
            raise AssertionError("no provider call expected")

        monkeypatch.setattr(LambdaTestProvider, "check", no_call)
        monkeypatch.setattr(BugpilotProvider, "check", no_call)
        open_session = desk.session(lambdatest_session)
        resolved = replace(
            open_session, provider="bugpilot", status=SessionStatus.RESOLVED, reference="x"
        )
        # Then neither calls its provider
        for session in (open_session, resolved):
            assert refresh(desk.runtime, session, desk.clock).outcome is RefreshOutcome.UNCHANGED
