"""Notte browser sessions end to end: webhook, resolver and note, against the simulators."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge.capture.notte import DEADLINE_MARGIN, OVERLOADED_WAIT_SECONDS, session_ids_in
from capture_bridge.models import SessionStatus
from capture_bridge.resolver import RunOutcome
from tests.conftest import (
    START,
    Desk,
    Webhook,
    load_event,
    runtime_with,
    signed_headers,
    trigger_body,
)

SESSION = "33c3c8bf-9d6d-4dff-8248-142eaf347f59"
OTHER_SESSION = "0f6e2f4c-3a1b-4c5d-8e9f-a0b1c2d3e4f5"
TICKET = "1001"
MAX_DURATION_MINUTES = 60
STEPS = 4


def notte_body(**fields: Any) -> bytes:
    """A trigger body that names only a Notte session."""
    return trigger_body(tags="qa", notte_session_id=SESSION, **fields)


class TestEndedSession:
    def test_active_session_gets_no_note_until_it_closes_then_exactly_one(self, desk: Desk) -> None:
        # Given a ticket naming a Notte session that is still active
        desk.notte.add_session(
            SESSION, max_duration_minutes=MAX_DURATION_MINUTES, created_at=START, steps=STEPS
        )
        body = desk.send(notte_body())
        [opened] = body["sessions"]
        assert (opened["provider"], opened["status"]) == ("notte", "pending")
        assert desk.notte.requests() == []
        # When the resolver reads it while active, then there is no note, and the wait is
        # bounded by the session's own maximum duration rather than the bridge's default
        assert desk.run() == {RunOutcome.WAITING: 1}
        assert desk.notes() == []
        deadline = START + timedelta(minutes=MAX_DURATION_MINUTES) + DEADLINE_MARGIN
        assert desk.session(opened["session_id"]).deadline_at == deadline
        # When it closes
        desk.notte.close_session(SESSION)
        assert desk.run_when_due(opened["session_id"]) == {RunOutcome.NOTED: 1}
        # Then exactly one internal note gives its facts and the replay with its expiry
        [note] = desk.notes()
        for fact in (
            f"Notte browser session {SESSION}",
            "- Status: closed",
            "- Duration: ",
            f"- Steps: {STEPS}",
            "- Browser: chromium",
            "- Closed at: ",
            "- Replay video (link expires 20",
            desk.notte.mp4_url(SESSION),
            f"Capture session: {opened['session_id']}",
        ):
            assert fact in note
        assert desk.session(opened["session_id"]).status is SessionStatus.RESOLVED
        desk.clock.advance(hours=2)
        assert desk.run() == {}
        assert len(desk.notes()) == 1

    @pytest.mark.parametrize("status", ["error", "timed_out"])
    def test_a_session_that_ended_badly_says_so_with_its_error(
        self, desk: Desk, status: str
    ) -> None:
        desk.notte.add_session(SESSION, created_at=START)
        desk.notte.close_session(SESSION, status=status, error="Page crashed on checkout")
        desk.send(notte_body())
        assert desk.run() == {RunOutcome.NOTED: 1}
        assert f"ended with status {status}: Page crashed on checkout" in desk.notes()[0]

    def test_a_session_without_a_replay_still_gets_its_note(self, desk: Desk) -> None:
        desk.notte.add_session(SESSION, status="closed", created_at=START, has_replay=False)
        desk.send(notte_body())
        desk.run()
        assert "- Replay video: none available" in desk.notes()[0]

    def test_a_session_active_past_its_maximum_times_out_with_a_note(self, desk: Desk) -> None:
        desk.notte.add_session(SESSION, max_duration_minutes=5, created_at=START)
        session_id = desk.send(notte_body())["session_id"]
        while desk.session(session_id).next_check_at is not None:
            desk.run_when_due(session_id)
        assert desk.session(session_id).status is SessionStatus.TIMED_OUT
        assert (
            desk.session(session_id).deadline_at == START + timedelta(minutes=5) + DEADLINE_MARGIN
        )
        [note] = desk.notes()
        assert "still active when the bridge stopped waiting" in note


class TestFailures:
    def test_unknown_session_fails_with_a_note_naming_it(self, desk: Desk) -> None:
        desk.send(notte_body())
        assert desk.run() == {RunOutcome.NOTED: 1}
        assert f"Notte has no session {SESSION}." in desk.notes()[0]

    def test_bad_credentials_are_a_configuration_error(
        self, desk: Desk, env: dict[str, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        desk.notte.add_session(SESSION, status="closed", created_at=START)
        wrong = runtime_with(env, NOTTE_API_KEY="sk-revoked")
        desk.send(notte_body(), wrong)
        with caplog.at_level(logging.ERROR):
            assert desk.run(wrong) == {RunOutcome.NOTED: 1}
        assert "configuration error" in caplog.text
        assert "Notte rejected the API key" in desk.notes()[0]

    def test_not_configured_is_accepted_and_ends_with_a_note_without_any_call(
        self, desk: Desk, env: dict[str, str]
    ) -> None:
        unconfigured = runtime_with(env, NOTTE_API_KEY="")
        desk.send(notte_body(), unconfigured)
        assert desk.run(unconfigured) == {RunOutcome.NOTED: 1}
        assert "Notte is not set up in the capture bridge" in desk.notes()[0]
        assert desk.notte.requests() == []

    def test_rate_limit_waits_for_its_reset_and_overload_backs_off_30_s(self, desk: Desk) -> None:
        # Given a closed session behind a rate limit, then an overloaded cluster
        reset_in = 90
        desk.notte.add_session(SESSION, status="closed", created_at=START)
        desk.notte.script("status", 429, rate_limit_reset=reset_in)
        desk.notte.script("status", 529)
        session_id = desk.send(notte_body())["session_id"]
        # When the resolver meets the 429, it waits until X-RateLimit-Reset
        desk.run()
        waited = desk.session(session_id).next_check_at - desk.clock()  # type: ignore[operator]
        assert timedelta(seconds=reset_in - 5) <= waited <= timedelta(seconds=reset_in + 1)
        # When it meets the 529, it backs off at least 30 s
        desk.run_when_due(session_id)
        waited = desk.session(session_id).next_check_at - desk.clock()  # type: ignore[operator]
        assert waited >= timedelta(seconds=OVERLOADED_WAIT_SECONDS)
        # Then the request is not lost: the note comes once Notte answers
        assert desk.run_when_due(session_id) == {RunOutcome.NOTED: 1}
        assert len(desk.notes()) == 1

    def test_outages_and_timeouts_are_retried(self, desk: Desk) -> None:
        desk.notte.add_session(SESSION, status="closed", created_at=START)
        desk.notte.script("status", 502, times=2)
        desk.notte.script("replay", 500)
        session_id = desk.send(notte_body())["session_id"]
        outcomes = [desk.run_when_due(session_id) for _ in range(4)]
        assert outcomes[-1] == {RunOutcome.NOTED: 1}
        assert len(desk.notes()) == 1


class TestTicketsNamingSessions:
    @pytest.mark.parametrize(
        "bad",
        [
            "not-a-uuid",
            "33c3c8bf-9d6d-4dff-8248-142eaf347f5",
            "../sessions/33c3c8bf-9d6d-4dff-8248-142eaf347f59",
            "33c3c8bf9d6d4dff8248142eaf347f59",
        ],
    )
    def test_a_malformed_id_is_refused_and_nothing_is_stored_or_sent(
        self, desk: Desk, table: str, bad: str
    ) -> None:
        answer = Webhook(desk.runtime, desk.clock).send(
            trigger_body(tags="qa", notte_session_id=bad)
        )
        assert answer.status == 400
        assert "notte_session_id must be a Notte session id" in answer.body["error"]
        assert desk.runtime.store.client.scan(TableName=table)["Count"] == 0
        assert desk.notte.requests() == []
        assert desk.bugpilot.requests("action") == []

    def test_links_to_other_hosts_are_ignored(self, desk: Desk) -> None:
        desk.bugpilot.connect_user("user-42")
        text = f"https://console.notte.cc.evil.example/sessions/{SESSION} http://api.notte.cc/sessions/{SESSION}"
        body = desk.send(trigger_body(tags="qa", text=text))
        assert [s["provider"] for s in body["sessions"]] == ["bugpilot"]
        desk.run()
        assert desk.notte.requests() == []

    def test_the_field_and_a_link_to_the_same_session_give_one_note(self, desk: Desk) -> None:
        desk.notte.add_session(SESSION, status="closed", created_at=START)
        text = f"https://console.notte.cc/sessions/{SESSION.upper()}"
        assert len(desk.send(notte_body(text=text))["sessions"]) == 1
        desk.run()
        assert len(desk.notes()) == 1

    def test_different_sessions_give_one_note_each(self, desk: Desk) -> None:
        desk.notte.add_session(SESSION, status="closed", created_at=START)
        desk.notte.add_session(OTHER_SESSION, status="closed", created_at=START)
        body = desk.send(notte_body(text=f"https://api.notte.cc/sessions/{OTHER_SESSION}"))
        assert len(body["sessions"]) == 2
        assert desk.run() == {RunOutcome.NOTED: 2}

    def test_redelivery_opens_no_second_session_and_gives_no_second_note(self, desk: Desk) -> None:
        desk.notte.add_session(SESSION, status="closed", created_at=START)
        body = notte_body()
        headers = signed_headers(body, desk.clock())
        first = Webhook(desk.runtime, desk.clock).send(body, headers)
        desk.run()
        again = Webhook(desk.runtime, desk.clock).send(body, headers)
        assert (again.body["session_id"], again.body["duplicate"]) == (
            first.body["session_id"],
            True,
        )
        desk.run()
        assert len(desk.notes()) == 1

    def test_the_events_file_names_a_notte_session(self) -> None:
        body = json.loads(load_event("webhook_zendesk_notte")["body"])
        assert body["notte_session_id"] == SESSION
        assert session_ids_in(body["text"]) == [SESSION]


def test_reset_header_is_read_as_an_epoch_time() -> None:
    from capture_bridge.capture.notte import _reset_in
    from capture_bridge.http import HttpResponse

    soon = HttpResponse(429, {"X-RateLimit-Reset": str(int(time.time()) + 42)})
    assert 40 <= (_reset_in(soon) or 0) <= 42
    assert _reset_in(HttpResponse(429, {"X-RateLimit-Reset": "0"})) == 1
    assert _reset_in(HttpResponse(429, {"Retry-After": "7"})) == 7
