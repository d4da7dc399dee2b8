"""Intercom end to end: signed notifications, the resolver and admin notes against moto and the
simulators; the ping, contact look-ups, Intercom's redeliveries, its 429s, hostile payloads,
the events file and `sign-event`."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge.helpdesks.intercom import DELIVERY_MEMORY, sign_webhook
from capture_bridge.models import ErrorCode, NoteState, SessionStatus
from capture_bridge.notes import REQUESTER_REASONS
from capture_bridge.webhook import receive_event
from local_runner.simulators import BugpilotSimulator, IntercomSimulator
from local_runner.simulators.intercom import notification
from tests.conftest import EVENTS, ROOT, START, Clock, load_event, runtime_with
from tests.helpdesk_desk import HelpdeskDesk, stored

SECRET = "ic-integration-client-secret"
TOKEN = "ic-integration-access-token"
CONVERSATION = "1001"
USER = "user-42"
EMAIL = "ada@example.com"
RESET_SECONDS = 40
HTTP_OK = 200
HTTP_ACCEPTED = 202
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_TOO_MANY = 429
HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<a href='javascript:alert(1)'>x</a>",
    "[x](javascript:alert(1))",
)


def noted(
    command: str = "/capture",
    *,
    external_id: str = USER,
    email: str | None = None,
    contact_id: str = "6329bd9ffe4e2e91dac76188",
    notification_id: str = "notif_1",
    topic: str = "conversation.admin.noted",
    conversation: str = CONVERSATION,
) -> bytes:
    """The notification of an admin's note `command` (markup: escape it yourself)."""
    return notification(
        conversation,
        f"<p>{command}</p>",
        contact_id=contact_id,
        external_id=external_id,
        email=email,
        topic=topic,
        notification_id=notification_id,
    )


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature": sign_webhook(secret, body)}


@pytest.fixture
def intercom() -> Iterator[IntercomSimulator]:
    with IntercomSimulator(access_token=TOKEN, client_secret=SECRET) as simulator:
        yield simulator


@pytest.fixture
def ic_env(env: dict[str, str], intercom: IntercomSimulator) -> dict[str, str]:
    return env | intercom.bridge_settings()


Desk = HelpdeskDesk[IntercomSimulator]


@pytest.fixture
def desk(
    ic_env: dict[str, str], clock: Clock, intercom: IntercomSimulator, bugpilot: BugpilotSimulator
) -> Desk:
    bugpilot.connect_user(USER)
    bugpilot.connect_user(EMAIL)
    return Desk(
        runtime_with(ic_env),
        clock,
        intercom,
        bugpilot,
        ic_env["TABLE_NAME"],
        proof=lambda body, at: signed(body),
    )


def without_requester(desk: Desk, **changes: Any) -> bytes:
    """A note whose contact carries only its id: the bridge must look the email up."""
    contact = desk.simulator.add_contact(email=EMAIL)
    return noted(external_id="", contact_id=contact["id"], **changes)


class TestOneNotePerCapture:
    def test_a_capture_note_gets_exactly_one_admin_note_with_the_report(self, desk: Desk) -> None:
        # given an admin's note `/capture screenshot …`, signed by Intercom
        session_id = desk.created(noted("/capture screenshot checkout button"))
        # then one session is stored and Bugpilot is asked once, for the contact's external id
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.description == "checkout button"
        [action] = desk.bugpilot.requests("action")
        assert (action.json()["userId"], action.json()["action"]) == (USER, "upload-screenshot")
        # when the user's report exists and the resolver runs
        report = desk.report_ready(session_id)
        # then exactly one admin note part holds the marker and the report as a link
        [post] = desk.simulator.requests("reply")
        assert post.route == f"/conversations/{CONVERSATION}/reply"
        assert {key: post.json()[key] for key in ("message_type", "type")} == {
            "message_type": "note",
            "type": "admin",
        }
        [note] = desk.notes(CONVERSATION)
        assert f"Capture session: {session_id}" in note
        assert f'<a href="{report}">' in note
        assert desk.note_state(session_id) is NoteState.POSTED
        # and another resolver run later adds nothing
        desk.clock.advance(hours=1)
        desk.run()
        assert len(desk.simulator.parts(CONVERSATION)) == 1

    def test_the_ping_is_answered_and_nothing_is_stored(self, desk: Desk) -> None:
        # given the ping Intercom sends when the webhook is saved, signed
        ping = json.dumps(
            {
                "type": "notification_event",
                "topic": "ping",
                "id": "notif_ping",
                "data": {"type": "notification_event_data", "item": {"type": "ping"}},
            }
        ).encode()
        # when it arrives
        answer = desk.send(ping)
        # then it is a 200 and nothing happens
        assert answer.status == HTTP_OK
        assert answer.body == {"ignored": "ping"}
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []

    @pytest.mark.parametrize(
        "body",
        [
            noted(topic="conversation.user.replied"),
            noted("just an internal remark"),
            noted("please /capture this"),
        ],
        ids=["other-topic", "other-note", "command-not-first"],
    )
    def test_other_topics_and_notes_are_200_and_store_nothing(
        self, desk: Desk, body: bytes
    ) -> None:
        answer = desk.send(body)
        assert answer.status == HTTP_OK
        assert "ignored" in answer.body
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []

    def test_the_bridges_own_note_coming_back_as_a_notification_asks_for_nothing(
        self, desk: Desk
    ) -> None:
        # given a capture noted on the conversation
        session_id = desk.created(noted())
        desk.report_ready(session_id)
        [note] = desk.notes(CONVERSATION)
        # when Intercom notifies the app of that note (an admin's note, like any other)
        answer = desk.send(notification(CONVERSATION, note, notification_id="notif_own"))
        # then it is no command: nothing more is captured
        assert answer.status == HTTP_OK
        assert len(desk.bugpilot.requests("action")) == 1

    def test_a_pasted_link_opens_that_capture_alone(self, desk: Desk) -> None:
        # given a note whose line links a Notte session (which exists)
        session = "33c3c8bf-9d6d-4dff-8248-142eaf347f59"
        link = f"https://console.notte.cc/sessions/{session}"
        answer = desk.send(noted(f'/capture repro <a href="{link}">{link}</a>'))
        # then one Notte capture is opened, and Bugpilot is not asked
        assert answer.status == HTTP_ACCEPTED, answer.body
        assert [item["provider"] for item in answer.body["sessions"]] == ["notte"]
        assert desk.bugpilot.requests("action") == []


class TestRequesterLookUp:
    def test_the_contact_is_looked_up_once_across_redelivery_and_resolver_runs(
        self, desk: Desk
    ) -> None:
        # given a note whose contact has no external id or email in the payload
        body = without_requester(desk)
        # when it arrives, is redelivered, and the resolver runs until the note is posted
        session_id = desk.created(body)
        desk.clock.advance(minutes=1)
        again = desk.send(body)
        desk.report_ready(session_id)
        desk.clock.advance(hours=1)
        desk.run()
        # then Intercom was asked for the contact once, and Bugpilot got its email
        assert (again.body["session_id"], again.body["duplicate"]) == (session_id, True)
        [lookup] = desk.simulator.requests("contact")
        assert lookup.headers["intercom-version"] == "2.11"
        assert lookup.headers["authorization"] == f"Bearer {TOKEN}"
        [action] = desk.bugpilot.requests("action")
        assert action.json()["userId"] == EMAIL
        assert len(desk.notes(CONVERSATION)) == 1

    @pytest.mark.parametrize(
        ("status", "error"),
        [(404, ErrorCode.REQUESTER_NOT_FOUND), (401, ErrorCode.REQUESTER_LOOKUP_REJECTED)],
    )
    def test_a_contact_intercom_will_not_give_is_a_stored_session_whose_note_explains(
        self, desk: Desk, status: int, error: ErrorCode
    ) -> None:
        # given Intercom answers the contact look-up with 404 or 401
        body = without_requester(desk)
        desk.simulator.script("contact", status)
        # when the note arrives
        session_id = desk.created(body)
        # then the request is stored, failed, nothing started, and its note says why
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.status is SessionStatus.FAILED
        assert session.error == error
        assert desk.bugpilot.requests("action") == []
        desk.run_when_due(session_id)
        [note] = desk.notes(CONVERSATION)
        assert html.escape(REQUESTER_REASONS[error]) in note
        assert f"Capture session: {session_id}" in note
        assert len(desk.simulator.requests("contact")) == 1

    @pytest.mark.parametrize(
        ("status", "error"),
        [(404, ErrorCode.REQUESTER_NOT_FOUND), (401, ErrorCode.REQUESTER_LOOKUP_REJECTED)],
    )
    def test_a_contact_refused_on_the_resolvers_look_up_fails_with_a_note_saying_why(
        self, desk: Desk, status: int, error: ErrorCode
    ) -> None:
        # given Intercom down when the note arrives, then answering the look-up 404 or 401
        body = without_requester(desk)
        desk.simulator.script("contact", 503)
        desk.simulator.script("contact", status)
        session_id = desk.created(body)
        # when the resolver asks again
        desk.run_when_due(session_id)
        # then the request is failed without a capture, and its one note says why
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.status is SessionStatus.FAILED
        assert session.error == error
        assert desk.bugpilot.requests("action") == []
        [note] = desk.notes(CONVERSATION)
        assert html.escape(REQUESTER_REASONS[error]) in note
        assert f"Capture session: {session_id}" in note
        desk.clock.advance(hours=1)
        desk.run()
        assert len(desk.simulator.requests("contact")) == 2
        assert len(desk.notes(CONVERSATION)) == 1

    def test_while_intercom_is_down_the_look_up_is_retried_until_it_answers(
        self, desk: Desk
    ) -> None:
        # given Intercom failing the first look-up, and rate limiting the second
        body = without_requester(desk)
        desk.simulator.script("contact", 503)
        desk.simulator.script("contact", HTTP_TOO_MANY, rate_limit_reset=RESET_SECONDS)
        # when the note arrives, then the request is stored and waits
        session_id = desk.created(body)
        assert desk.bugpilot.requests("action") == []
        desk.run_when_due(session_id)
        assert desk.bugpilot.requests("action") == []
        # when the resolver runs once Intercom answers (the look-up is a step of its own, the
        # start the next)
        desk.run_when_due(session_id)
        desk.run_when_due(session_id)
        # then the capture starts for the contact's email, and the note lands once
        [action] = desk.bugpilot.requests("action")
        assert action.json()["userId"] == EMAIL
        assert len(desk.simulator.requests("contact")) == 3
        desk.report_ready(session_id)
        assert len(desk.notes(CONVERSATION)) == 1


class TestRefusals:
    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({"Content-Type": "application/json"}, "missing X-Hub-Signature"),
            (signed(noted(), "wrong-secret"), "does not match"),
            ({"X-Hub-Signature": "sha1=" + "0" * 40}, "does not match"),
            ({"X-Hub-Signature": sign_webhook(SECRET, b"{}")}, "does not match"),
            ({"Authorization": f"Bearer {SECRET}"}, "missing X-Hub-Signature"),
        ],
        ids=["unsigned", "wrong-secret", "forged", "other-body", "bearer"],
    )
    def test_unproven_deliveries_are_401_and_touch_nothing(
        self, desk: Desk, headers: dict[str, str], reason: str
    ) -> None:
        answer = desk.send(noted(), headers)
        assert answer.status == HTTP_UNAUTHORIZED
        assert reason in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []
        assert desk.simulator.requests() == []

    def test_an_unsigned_ping_is_refused_too(self, desk: Desk) -> None:
        ping = json.dumps({"type": "notification_event", "topic": "ping", "id": "n"}).encode()
        assert desk.send(ping, {}).status == HTTP_UNAUTHORIZED

    def test_a_replay_of_a_captured_notification_days_later_does_nothing_new(
        self, desk: Desk
    ) -> None:
        # Intercom signs no time: within the memory a replay is a duplicate; the note says so
        session_id = desk.created(noted())
        desk.clock.now = START + DELIVERY_MEMORY - timedelta(minutes=1)
        answer = desk.send(noted())
        assert (answer.body["session_id"], answer.body["duplicate"]) == (session_id, True)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (b"[]", "body must be a JSON object"),
            (json.dumps({"topic": "conversation.admin.noted"}).encode(), "id (the notification"),
            (json.dumps({"id": "n1"}).encode(), "topic is required"),
            (noted(conversation="1001/../../me"), "data.item.id must be"),
            (noted(contact_id="../me", external_id=""), "contacts[0].id must be"),
            (noted("/capture " + "\ud800"), "not valid UTF-8"),
        ],
        ids=["not-json", "array", "no-id", "no-topic", "bad-conversation", "bad-contact", "utf"],
    )
    def test_malformed_notifications_are_400_naming_the_field(
        self, desk: Desk, body: bytes, message: str
    ) -> None:
        answer = desk.send(body)
        assert answer.status == HTTP_BAD_REQUEST, answer.body
        assert message in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []

    def test_a_note_whose_conversation_names_no_contact_is_400(self, desk: Desk) -> None:
        payload = json.loads(noted())
        payload["data"]["item"]["contacts"]["contacts"] = []
        answer = desk.send(json.dumps(payload).encode())
        assert answer.status == HTTP_BAD_REQUEST
        assert "data.item.contacts.contacts[0]" in answer.body["error"]
        assert stored(desk.table) == 0


class TestIntercomRedeliveries:
    @pytest.mark.parametrize("later", [timedelta(minutes=1), timedelta(days=1)], ids=str)
    def test_a_redelivered_notification_captures_and_notes_nothing_more(
        self, desk: Desk, later: timedelta
    ) -> None:
        # given a notification whose capture has finished and whose note is on the conversation
        session_id = desk.created(noted())
        desk.report_ready(session_id)
        assert len(desk.notes(CONVERSATION)) == 1
        # when Intercom delivers the same notification (same id, next attempt) again later
        retry = json.loads(noted())
        retry["delivery_attempts"] = 2
        desk.clock.now = START + later
        answer = desk.send(json.dumps(retry).encode())
        # then it is the same session, marked duplicate: no new capture, and still one note
        assert answer.status == HTTP_ACCEPTED
        assert (answer.body["session_id"], answer.body["duplicate"]) == (session_id, True)
        desk.run()
        assert len(desk.bugpilot.requests("action")) == 1
        assert len(desk.simulator.requests("reply")) == 1
        assert len(desk.notes(CONVERSATION)) == 1

    def test_another_note_asking_again_is_a_new_capture(self, desk: Desk) -> None:
        first = desk.created(noted())
        desk.report_ready(first)
        desk.clock.advance(minutes=10)
        second = desk.created(noted(notification_id="notif_2"))
        assert second != first
        assert len(desk.bugpilot.requests("action")) == 2


class TestNoteDelivery:
    def test_a_rate_limited_note_waits_for_the_reset_and_lands_once(self, desk: Desk) -> None:
        # given Intercom answers the first note with 429 and X-RateLimit-Reset only
        session_id = desk.created(noted())
        desk.simulator.script("reply", HTTP_TOO_MANY, rate_limit_reset=RESET_SECONDS)
        before = desk.clock()
        desk.report_ready(session_id)
        # then there is no note yet, and the next try waits until the reset
        assert desk.notes(CONVERSATION) == []
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        assert session.next_check_at >= before + timedelta(seconds=RESET_SECONDS - 2)
        # when the resolver runs once it is due, and again later
        desk.run_when_due(session_id)
        desk.clock.advance(hours=1)
        desk.run()
        # then the note landed exactly once, after a look for an earlier one
        assert len(desk.notes(CONVERSATION)) == 1
        assert len(desk.simulator.requests("reply")) == 2
        assert len(desk.simulator.requests("conversation")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED

    def test_a_note_that_landed_although_its_answer_failed_is_not_posted_again(
        self, desk: Desk
    ) -> None:
        # given a note answered 503, though Intercom did store it
        session_id = desk.created(noted())
        desk.simulator.script("reply", 503)
        desk.report_ready(session_id)
        desk.simulator.add_part(CONVERSATION, f"Capture session: {session_id}")
        # when the resolver tries again, then it finds the note and posts nothing more
        desk.run_when_due(session_id)
        assert len(desk.simulator.requests("reply")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED

    def test_while_intercom_cannot_say_whether_the_note_landed_nothing_is_posted(
        self, desk: Desk
    ) -> None:
        session_id = desk.created(noted())
        desk.simulator.script("reply", 503)
        desk.report_ready(session_id)
        desk.simulator.script("conversation", 500)
        desk.run_when_due(session_id)
        assert len(desk.simulator.requests("reply")) == 1
        desk.run_when_due(session_id)
        assert len(desk.notes(CONVERSATION)) == 1
        assert len(desk.simulator.requests("reply")) == 2


class TestHostilePayloads:
    @pytest.mark.parametrize("hostile", HOSTILE)
    def test_payload_markup_never_becomes_live_in_the_posted_note(
        self, desk: Desk, hostile: str
    ) -> None:
        # given a requester id (which the note names) and a description carrying markup, as
        # Intercom sends a note's HTML: the agent's text escaped
        desk.bugpilot.connect_user(hostile)
        body = noted(f"/capture {html.escape(hostile)}", external_id=hostile)
        session_id = desk.created(body)
        # when the note is posted
        report = desk.report_ready(session_id)
        # then what Intercom received shows it as escaped text; the report is the only link
        [post] = desk.simulator.requests("reply")
        sent = post.json()["body"]
        assert html.escape(hostile) in sent
        assert "<script" not in sent and "<img" not in sent
        assert "javascript:" not in sent.replace(html.escape(hostile), "")
        assert sent.count("<a ") == 1
        assert f'<a href="{report}">' in sent


class TestEventsFile:
    def test_the_event_signed_by_the_cli_is_accepted_by_the_handler(
        self,
        ic_env: dict[str, str],
        bugpilot: BugpilotSimulator,
        lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from capture_bridge.settings import reset_settings_cache
        from webhook_handler import lambda_handler

        # given the sample event re-signed by `sign-event` with the bridge's client secret
        bugpilot.connect_user(USER)
        result = _sign_event_cli(SECRET)
        assert result.returncode == 0, result.stderr
        event = json.loads(result.stdout)
        body = event["body"].encode()
        assert event["headers"]["X-Hub-Signature"] == sign_webhook(SECRET, body)
        for key, value in ic_env.items():
            monkeypatch.setenv(key, value)
        reset_settings_cache()
        # when the Lambda handler gets it
        response = lambda_handler(event, lambda_context)
        # then it is accepted, and Bugpilot asked once
        assert response["statusCode"] == HTTP_ACCEPTED, response["body"]
        assert len(bugpilot.requests("action")) == 1

    def test_the_event_as_stored_is_signed_with_a_placeholder_and_refused(self, desk: Desk) -> None:
        answer = receive_event(
            load_event("webhook_intercom"), runtime_factory=lambda: desk.runtime, clock=desk.clock
        )
        assert answer.status == HTTP_UNAUTHORIZED
        assert stored(desk.table) == 0

    def test_without_a_secret_sign_event_names_the_key(self) -> None:
        result = _sign_event_cli("")
        assert result.returncode == 2
        assert "INTERCOM_CLIENT_SECRET" in result.stderr


def _sign_event_cli(secret: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin"} | ({"INTERCOM_CLIENT_SECRET": secret} if secret else {})
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "local_runner",
            "sign-event",
            str(EVENTS / "webhook_intercom.json"),
            "--helpdesk",
            "intercom",
            "--env-file",
            "/nonexistent/.env",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
