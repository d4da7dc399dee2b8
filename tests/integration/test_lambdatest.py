"""LambdaTest test sessions end to end: webhook, resolver and note, against the simulators."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from capture_bridge.capture import Outcome
from capture_bridge.capture.lambdatest import LambdaTestProvider, LambdaTestSettings, session_ids_in
from capture_bridge.errors import StoreUnavailable
from capture_bridge.http import HttpClient
from capture_bridge.models import CaptureRequest, CaptureSession, SessionStatus
from capture_bridge.resolver import RunOutcome
from local_runner.simulators import LambdaTestSimulator
from tests.conftest import (
    START,
    Desk,
    Webhook,
    load_event,
    runtime_with,
    signed_headers,
    trigger_body,
)

SESSION = "bc02fd99593f14e37850745d66197f89"
OTHER_SESSION = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
TICKET = "1001"
SHARE_DAYS = 7


def lambdatest_body(**fields: Any) -> bytes:
    """A trigger body that names only a LambdaTest session."""
    return trigger_body(tags="qa", lambdatest_session_id=SESSION, **fields)


class TestFinishedSession:
    def test_running_session_gets_no_note_until_it_finishes_then_exactly_one(
        self, desk: Desk
    ) -> None:
        # Given a ticket naming a LambdaTest session that is still running
        desk.lambdatest.add_session(SESSION, status="running")
        body = desk.send(lambdatest_body())
        [opened] = body["sessions"]
        assert (opened["provider"], opened["status"]) == ("lambdatest", "pending")
        # The webhook itself calls nobody: the session exists already
        assert desk.lambdatest.requests() == []
        assert desk.bugpilot.requests("action") == []
        # When the resolver reads it while it runs, then there is no note yet
        assert desk.run() == {RunOutcome.WAITING: 1}
        assert desk.notes() == []
        # When the test finishes
        desk.lambdatest.finish_session(SESSION, status="failed", remark="Cart total wrong")
        assert desk.run_when_due(opened["session_id"]) == {RunOutcome.NOTED: 1}
        # Then exactly one internal note carries every fact and link
        [note] = desk.notes()
        assert desk.zendesk.comments(TICKET)[0]["public"] is False
        for fact in (
            "- Test: checkout flow",
            "- Build: nightly-build",
            "- Status: failed",
            "- Remark: Cart total wrong",
            "- Browser: chrome 120.0",
            "- Platform: win10",
            "- Duration: 1 min 35 s",
            f"- Video: {desk.lambdatest.view_video_url(SESSION)}",
            f"Capture session: {opened['session_id']}",
        ):
            assert fact in note
        for log in ("Screenshots", "Console log", "Network log", "Command log", "Selenium log"):
            assert f"- {log}: http" in note
        expires = (datetime.now(UTC).date() + timedelta(days=SHARE_DAYS)).isoformat()
        assert f"- Public share link (expires {expires}): https://automation" in note
        session = desk.session(opened["session_id"])
        assert session.status is SessionStatus.RESOLVED
        assert set(session.links) >= {"video", "screenshots", "console_logs", "share"}
        # And the share link was asked for with the configured expiry
        assert desk.lambdatest.requests("session")[-1].query == {
            "shareExpiryLimit": str(SHARE_DAYS)
        }
        # And a later run posts nothing more
        desk.clock.advance(hours=1)
        assert desk.run() == {}
        assert len(desk.notes()) == 1

    def test_a_session_without_a_video_still_gets_its_note(self, desk: Desk) -> None:
        desk.lambdatest.add_session(SESSION, status="completed", has_video=False)
        desk.send(lambdatest_body())
        assert desk.run() == {RunOutcome.NOTED: 1}
        assert "- Video:" not in desk.notes()[0]
        assert "- Status: completed" in desk.notes()[0]


class TestFailures:
    def test_unknown_session_fails_with_a_note_naming_it(self, desk: Desk) -> None:
        desk.send(lambdatest_body())
        assert desk.run() == {RunOutcome.NOTED: 1}
        assert f"LambdaTest has no session {SESSION}." in desk.notes()[0]

    def test_bad_credentials_are_a_configuration_error(
        self, desk: Desk, env: dict[str, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        desk.lambdatest.add_session(SESSION, status="completed")
        wrong = runtime_with(env, LAMBDATEST_ACCESS_KEY="revoked")
        desk.send(lambdatest_body(), wrong)
        with caplog.at_level(logging.ERROR):
            assert desk.run(wrong) == {RunOutcome.NOTED: 1}
        assert "configuration error" in caplog.text
        assert "LambdaTest rejected the credentials" in desk.notes()[0]

    def test_not_configured_is_accepted_and_ends_with_a_note_without_any_call(
        self, desk: Desk, env: dict[str, str]
    ) -> None:
        unconfigured = runtime_with(env, LAMBDATEST_USERNAME="", LAMBDATEST_ACCESS_KEY="")
        body = desk.send(lambdatest_body(), unconfigured)
        assert body["sessions"][0]["provider"] == "lambdatest"
        assert desk.run(unconfigured) == {RunOutcome.NOTED: 1}
        assert "LambdaTest is not set up in the capture bridge" in desk.notes()[0]
        assert desk.lambdatest.requests() == []

    def test_rate_limits_and_outages_are_retried_and_nothing_is_lost(self, desk: Desk) -> None:
        # Given a finished session behind a rate limit, then an outage, then a slow answer
        retry_after = 120
        desk.lambdatest.add_session(SESSION, status="passed")
        desk.lambdatest.script("session", 429, retry_after=retry_after)
        desk.lambdatest.script("session", 503)
        session_id = desk.send(lambdatest_body())["session_id"]
        # When the resolver meets the 429, it waits exactly as long as LambdaTest asked
        desk.run()
        assert desk.session(session_id).next_check_at == desk.clock() + timedelta(
            seconds=retry_after
        )
        # Then the outage is retried with backoff, and the note arrives once it is over
        assert desk.run_when_due(session_id) == {RunOutcome.WAITING: 1}
        assert desk.run_when_due(session_id) == {RunOutcome.NOTED: 1}
        assert len(desk.notes()) == 1
        assert len(desk.lambdatest.requests("session")) == 3

    def test_a_session_that_never_finishes_times_out_with_a_note(self, desk: Desk) -> None:
        # Given a ticket naming a session that runs for longer than the bridge waits
        desk.lambdatest.add_session(SESSION, status="running")
        session_id = desk.send(lambdatest_body())["session_id"]
        # When the resolver keeps finding it running until the deadline
        while desk.session(session_id).next_check_at is not None:
            desk.run_when_due(session_id)
        # Then it ends timed out, with one note saying so
        assert desk.session(session_id).status is SessionStatus.TIMED_OUT
        [note] = desk.notes()
        assert "still running when the bridge stopped waiting" in note


class TestTicketsNamingSessions:
    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"lambdatest_session_id": "abc/../../users"}, "lambdatest_session_id must be"),
            ({"lambdatest_session_id": "a" * 65}, "lambdatest_session_id"),
            ({"lambdatest_session_id": "abc def"}, "lambdatest_session_id must be"),
            ({"lambdatest_session_id": ["x"]}, "lambdatest_session_id must be a string"),
        ],
    )
    def test_a_malformed_id_is_refused_and_nothing_is_stored_or_sent(
        self, desk: Desk, table: str, fields: dict[str, Any], message: str
    ) -> None:
        body = trigger_body(tags="qa", **fields)
        answer = Webhook(desk.runtime, desk.clock).send(body)
        assert answer.status == 400
        assert message in answer.body["error"]
        assert desk.runtime.store.client.scan(TableName=table)["Count"] == 0
        assert desk.lambdatest.requests() == []
        assert desk.bugpilot.requests("action") == []

    def test_links_to_other_hosts_are_ignored(self, desk: Desk) -> None:
        text = (
            f"see https://evil.example/automation/api/v1/sessions/{SESSION} and "
            f"https://automation.lambdatest.com.evil.example/logs/?sessionID={OTHER_SESSION}"
        )
        desk.bugpilot.connect_user("user-42")
        body = desk.send(trigger_body(tags="qa", text=text))
        # The body names no capture source it may follow, so it is the default Bugpilot capture
        assert [s["provider"] for s in body["sessions"]] == ["bugpilot"]
        desk.run()
        assert desk.lambdatest.requests() == []

    def test_text_links_and_the_field_naming_one_session_give_one_note(self, desk: Desk) -> None:
        desk.lambdatest.add_session(SESSION, status="passed")
        text = f"Failed run: https://automation.lambdatest.com/logs/?sessionID={SESSION}"
        body = desk.send(lambdatest_body(text=text))
        assert len(body["sessions"]) == 1
        desk.run()
        assert len(desk.notes()) == 1

    def test_different_sessions_give_one_note_each(self, desk: Desk) -> None:
        desk.lambdatest.add_session(SESSION, status="passed")
        desk.lambdatest.add_session(OTHER_SESSION, status="failed")
        text = f"also https://api.lambdatest.com/automation/api/v1/sessions/{OTHER_SESSION}"
        body = desk.send(lambdatest_body(text=text))
        assert {s["provider"] for s in body["sessions"]} == {"lambdatest"}
        assert desk.run() == {RunOutcome.NOTED: 2}
        notes = desk.notes()
        assert len(notes) == 2
        assert any(SESSION in note for note in notes) and any(OTHER_SESSION in n for n in notes)

    def test_beside_a_bugpilot_request_each_is_its_own_session(self, desk: Desk) -> None:
        desk.bugpilot.connect_user("user-42")
        desk.lambdatest.add_session(SESSION, status="passed")
        body = desk.send(lambdatest_body(action="upload-screenshot"))
        assert [s["provider"] for s in body["sessions"]] == ["bugpilot", "lambdatest"]
        assert len(desk.bugpilot.requests("action")) == 1

    def test_redelivery_opens_no_second_session_and_gives_no_second_note(self, desk: Desk) -> None:
        desk.lambdatest.add_session(SESSION, status="passed")
        body = lambdatest_body()
        headers = signed_headers(body, desk.clock())
        first = Webhook(desk.runtime, desk.clock).send(body, headers)
        desk.run()
        desk.clock.advance(seconds=30)
        again = Webhook(desk.runtime, desk.clock).send(body, headers)
        assert again.body["session_id"] == first.body["session_id"]
        assert again.body["duplicate"] is True
        desk.run()
        assert len(desk.notes()) == 1

    def test_the_events_file_names_a_lambdatest_session(self) -> None:
        body = json.loads(load_event("webhook_zendesk_lambdatest")["body"])
        assert body["lambdatest_session_id"] == SESSION
        assert session_ids_in(body["text"]) == [SESSION]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        (f"https://automation.lambdatest.com/logs/?sessionID={SESSION}", [SESSION]),
        (f"https://automation.lambdatest.com/logs?build=1&sessionID={SESSION}#x", [SESSION]),
        (f"https://eu-api.lambdatest.com/automation/api/v1/sessions/{SESSION}/video", [SESSION]),
        (f"http://automation.lambdatest.com/logs/?sessionID={SESSION}", []),
        (f"https://automation.lambdatest.com/test?testID={SESSION}", []),
        (f"https://automation.lambdatest.com/logs/?sessionID={SESSION}%2F..", [SESSION]),
        ("no links at all", []),
    ],
)
def test_link_forms_recognised_in_ticket_text(text: str, ids: list[str]) -> None:
    assert session_ids_in(text) == ids


@pytest.mark.parametrize("status", ["running", "queued", "initiated", "created", "pqueued"])
def test_in_progress_states_are_not_ready(lambdatest: LambdaTestSimulator, status: str) -> None:
    lambdatest.add_session(SESSION, status=status)
    provider = LambdaTestProvider(
        LambdaTestSettings(
            api_url=lambdatest.url, username=lambdatest.username, access_key=lambdatest.access_key
        ),
        HttpClient(),
    )
    result = provider.check(_pending(SESSION))
    assert result.outcome is Outcome.NOT_READY
    assert lambdatest.requests("video") == []


def _pending(reference: str) -> CaptureSession:
    request = CaptureRequest(
        helpdesk="zendesk",
        ticket_id=TICKET,
        provider="lambdatest",
        action="test-session",
        subject=reference,
        reference=reference,
    )
    return CaptureSession.open(
        request, now=START, max_wait=timedelta(minutes=30), claim_id=None, next_check_at=START
    )


def test_a_store_outage_midway_starts_what_is_stored_and_the_retry_stores_the_rest(
    desk: Desk,
) -> None:
    # Given a ticket naming a Bugpilot capture and a LambdaTest session, and a store that
    # fails on the second write
    desk.bugpilot.connect_user("user-42")
    desk.lambdatest.add_session(SESSION, status="passed")
    store = desk.runtime.store
    real_create = store.create
    calls: list[str] = []

    def create_then_fail(session: CaptureSession, **kwargs: Any) -> Any:
        calls.append(session.provider)
        if len(calls) == 2:
            raise StoreUnavailable("simulated outage")
        return real_create(session, **kwargs)

    object.__setattr__(store, "create", create_then_fail)
    body = lambdatest_body(action="upload-screenshot")
    headers = signed_headers(body, desk.clock())
    # When Zendesk delivers it, the answer is 503 so that Zendesk retries
    first = Webhook(desk.runtime, desk.clock).send(body, headers)
    assert first.status == 503
    # Then the capture already stored was started, exactly once
    assert len(desk.bugpilot.requests("action")) == 1
    # When Zendesk retries the same delivery with the store back
    object.__setattr__(store, "create", real_create)
    again = Webhook(desk.runtime, desk.clock).send(body, headers)
    # Then the stored one is recognised, the missing one is stored, nothing is started twice
    assert again.status == 202
    assert [(s["provider"], s["duplicate"]) for s in again.body["sessions"]] == [
        ("bugpilot", True),
        ("lambdatest", False),
    ]
    assert len(desk.bugpilot.requests("action")) == 1
