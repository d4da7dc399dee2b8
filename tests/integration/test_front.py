"""Front end to end: app webhook, resolver and internal comment against moto and the simulators;
the challenge, Front's retries, the contact look-up, the rate limit, hostile payloads and the
events file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from capture_bridge.helpdesks.front import DELIVERY_MEMORY, sign_webhook
from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.notes import markdown_escaped
from capture_bridge.observability import logger
from capture_bridge.webhook import receive, receive_event
from local_runner.simulators import BugpilotSimulator, FrontSimulator
from tests.conftest import EVENTS, ROOT, Clock, load_event, runtime_with
from tests.helpdesk_desk import HelpdeskDesk, stored

SECRET = "front-integration-app-secret"
API_TOKEN = "front-integration-api-token"
CONVERSATION = "cnv_55c8c149"
EMAIL = "ada@example.com"
PHONE = "+15555550123"
RETRY_AFTER = 90
HTTP_OK = 200
HTTP_ACCEPTED = 202
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_TOO_MANY = 429
# Markup a recipient's email handle can carry (no spaces): the note names the requester.
HOSTILE = (
    "<script>alert(1)</script>@evil.test",
    '"><img/src=x/onerror=alert(1)>@evil.test',
    "[x](javascript:alert(1))@evil.test",
    "![x](https://evil.test/pixel.png)@evil.test",
    "<a/href='javascript:alert(1)'>x</a>@evil.test",
    "`code`@evil.test",
)


def proof(body: bytes, at: datetime, secret: str = SECRET) -> dict[str, str]:
    """The headers Front's app webhook sends with `body` at `at`."""
    timestamp = str(int(at.timestamp() * 1000))
    return {
        "Content-Type": "application/json",
        "X-Front-Signature": sign_webhook(secret, timestamp, body),
        "X-Front-Request-Timestamp": timestamp,
    }


@pytest.fixture
def front() -> Iterator[FrontSimulator]:
    with FrontSimulator(api_token=API_TOKEN, app_secret=SECRET) as simulator:
        simulator.add_contact("crd_ada1", ("phone", PHONE), ("email", EMAIL))
        yield simulator


@pytest.fixture
def front_env(env: dict[str, str], front: FrontSimulator) -> dict[str, str]:
    return env | front.bridge_settings()


Desk = HelpdeskDesk[FrontSimulator]


@pytest.fixture
def desk(
    front_env: dict[str, str], clock: Clock, front: FrontSimulator, bugpilot: BugpilotSimulator
) -> Desk:
    bugpilot.connect_user(EMAIL)
    return Desk(runtime_with(front_env), clock, front, bugpilot, front_env["TABLE_NAME"], proof)


def tag_event(desk: Desk, **changes: Any) -> bytes:
    return desk.simulator.tag_event(CONVERSATION, **{"event_id": "evt_1a2b3c", **changes})


class TestChallenge:
    def test_a_signed_challenge_is_echoed_and_stores_nothing(self, desk: Desk) -> None:
        # Given Front's validation call, sent when the app's webhook is saved
        body = json.dumps({"type": "sync", "authorization": {"id": "cmp_demo1"}}).encode()
        headers = proof(body, desk.clock()) | {"X-Front-Challenge": "a6f1c0de9b"}
        # When it arrives
        answer = desk.send(body, headers)
        # Then the challenge is echoed, and nothing is stored or asked
        assert (answer.status, answer.body) == (HTTP_OK, {"challenge": "a6f1c0de9b"})
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests() == []

    @pytest.mark.parametrize("secret", [None, "someone-elses-secret"], ids=["unsigned", "forged"])
    def test_an_unproven_challenge_is_401(self, desk: Desk, secret: str | None) -> None:
        body = b'{"type": "sync"}'
        headers = {} if secret is None else proof(body, desk.clock(), secret)
        answer = desk.send(body, headers | {"X-Front-Challenge": "a6f1c0de9b"})
        assert answer.status == HTTP_UNAUTHORIZED
        assert "a6f1c0de9b" not in json.dumps(answer.body)
        assert stored(desk.table) == 0


class TestOneNotePerCapture:
    def test_a_tag_event_gets_exactly_one_internal_comment_with_the_report(
        self, desk: Desk
    ) -> None:
        # Given a teammate tags the conversation bugpilot_session; Front's app webhook calls
        session_id = desk.created(tag_event(desk))
        # Then one session is stored, and Bugpilot is asked once for the recipient
        assert desk.runtime.store.get(session_id) is not None
        [action] = desk.bugpilot.requests("action")
        assert action.json()["userId"] == EMAIL
        assert desk.simulator.requests("contact") == []
        # When the report exists and the resolver runs
        report = desk.report_ready(session_id)
        # Then exactly one comment holds the marker and the report
        [post] = desk.simulator.requests("comment")
        assert post.route == f"/conversations/{CONVERSATION}/comments"
        assert post.headers["authorization"] == f"Bearer {API_TOKEN}"
        [note] = desk.notes(CONVERSATION)
        assert f"Capture session: {session_id}" in note
        assert report in note
        assert desk.note_state(session_id) is NoteState.POSTED
        # And a later resolver run adds nothing
        desk.clock.advance(hours=1)
        desk.run()
        assert len(desk.notes(CONVERSATION)) == 1

    def test_the_bare_event_of_a_rule_is_read_too(self, desk: Desk) -> None:
        session_id = desk.created(tag_event(desk, envelope=False))
        desk.report_ready(session_id)
        assert len(desk.notes(CONVERSATION)) == 1

    @pytest.mark.parametrize(
        "body",
        [
            b'{"type": "sync", "authorization": {"id": "cmp_demo1"}}',
            b'{"type": "inbound", "payload": {"id": "evt_2", "type": "inbound"}}',
        ],
        ids=["sync", "inbound"],
    )
    def test_other_events_are_200_and_store_nothing(self, desk: Desk, body: bytes) -> None:
        answer = desk.send(body)
        assert answer.status == HTTP_OK and "ignored" in answer.body
        assert stored(desk.table) == 0

    @pytest.mark.parametrize("tag", ["vip", "urgent", "Bugpilot_Session"])
    def test_other_tags_are_200_and_store_nothing(self, desk: Desk, tag: str) -> None:
        answer = desk.send(tag_event(desk, tag=tag))
        assert answer.status == HTTP_OK and "ignored" in answer.body
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests() == []


class TestRequesterLookUp:
    def test_a_phone_handle_is_resolved_by_one_contact_look_up(self, desk: Desk) -> None:
        # Given a conversation whose recipient is a phone number
        body = tag_event(desk, handle=PHONE)
        # When Front delivers it, and again (a retry)
        session_id = desk.created(body)
        desk.clock.advance(minutes=1)
        again = desk.send(tag_event(desk, handle=PHONE))
        # Then the contact was fetched once, and Bugpilot asked once for its email
        assert (again.body["session_id"], again.body["duplicate"]) == (session_id, True)
        [lookup] = desk.simulator.requests("contact")
        assert lookup.route == "/contacts/crd_ada1"
        [action] = desk.bugpilot.requests("action")
        assert action.json()["userId"] == EMAIL
        # And the note lands once
        desk.report_ready(session_id)
        desk.run()
        assert len(desk.notes(CONVERSATION)) == 1
        assert len(desk.simulator.requests("contact")) == 1

    def test_a_contact_link_on_another_host_is_never_followed(
        self, desk: Desk, front_env: dict[str, str]
    ) -> None:
        # Given an event whose contact link points at another server (with a contact there)
        with FrontSimulator(api_token=API_TOKEN) as elsewhere:
            elsewhere.add_contact("crd_ada1", ("email", EMAIL))
            body = desk.simulator.tag_event(CONVERSATION, handle=PHONE, event_id="evt_x1")
            body = body.replace(desk.simulator.url.encode(), elsewhere.url.encode())
            # When it is delivered and the resolver runs
            session_id = desk.created(body)
            desk.run_when_due(session_id)
            # Then nothing went to that server, no capture was asked for
            assert elsewhere.requests() == []
        assert desk.bugpilot.requests("action") == []
        # And the conversation gets one note saying why
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.status is SessionStatus.FAILED
        [note] = desk.notes(CONVERSATION)
        assert "no contact with an external id or an email" in note

    def test_a_rate_limited_look_up_is_tried_again_and_the_capture_happens_once(
        self, desk: Desk
    ) -> None:
        # Given Front answers the contact look-up 429 once
        desk.simulator.script("contact", HTTP_TOO_MANY, retry_after=5)
        session_id = desk.created(tag_event(desk, handle=PHONE))
        assert desk.bugpilot.requests("action") == []
        # When the resolver runs once it is due (the look-up), and again (the start)
        desk.clock.advance(seconds=10)
        desk.run_when_due(session_id)
        desk.run_when_due(session_id)
        # Then the contact was read again, once, and the capture asked for once
        assert len(desk.simulator.requests("contact")) == 2
        assert len(desk.bugpilot.requests("action")) == 1


class TestRefusals:
    @pytest.mark.parametrize(
        ("make_headers", "reason"),
        [
            (lambda body, at: {"Content-Type": "application/json"}, "missing X-Front-Signature"),
            (lambda body, at: proof(body, at, "wrong-secret"), "does not match"),
            (lambda body, at: proof(body, at - timedelta(minutes=6)), "too old"),
            (lambda body, at: proof(body, at + timedelta(minutes=6)), "in the future"),
            (lambda body, at: proof(b"{}", at), "does not match"),
        ],
        ids=["unsigned", "forged", "stale", "future", "other-body"],
    )
    def test_unproven_deliveries_are_401_and_touch_nothing(
        self, desk: Desk, make_headers: Any, reason: str
    ) -> None:
        body = tag_event(desk)
        answer = desk.send(body, make_headers(body, desk.clock()))
        assert answer.status == HTTP_UNAUTHORIZED
        assert reason in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests() == []
        assert desk.simulator.requests() == []

    def test_without_an_app_secret_every_delivery_is_401_naming_the_key(
        self,
        front_env: dict[str, str],
        clock: Clock,
        front: FrontSimulator,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        runtime = runtime_with(front_env, FRONT_APP_SECRET="")
        errors: list[str] = []
        monkeypatch.setattr(
            logger,
            "error",
            lambda message, *args, **kwargs: errors.append(f"{message} {kwargs.get('extra')}"),
        )
        body = front.tag_event(CONVERSATION)
        answer = receive(
            "front",
            proof(body, clock(), ""),
            body.decode(),
            is_base64=False,
            runtime_factory=lambda: runtime,
            clock=clock,
        )
        assert answer.status == HTTP_UNAUTHORIZED
        assert "FRONT_APP_SECRET" in answer.body["error"]
        assert any("FRONT_APP_SECRET" in line for line in errors), errors
        assert stored(front_env["TABLE_NAME"]) == 0

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"target": "bugpilot_session"}, "payload.target must be an object"),
            ({"target": {"data": {"name": ["x"]}}}, "payload.target.data.name must be a string"),
            ({"id": None}, "payload.id is required"),
            ({"conversation": {"id": "42"}}, "payload.conversation.id must be"),
            (
                {"conversation": {"id": CONVERSATION, "recipient": {"handle": PHONE}}},
                "conversation.recipient.handle (an email) or",
            ),
            (
                {"conversation": {"id": CONVERSATION, "recipient": {"_links": []}}},
                "payload.conversation.recipient._links must be an object",
            ),
        ],
    )
    def test_malformed_events_are_400_naming_the_field(
        self, desk: Desk, changes: dict[str, Any], message: str
    ) -> None:
        event = json.loads(tag_event(desk))
        event["payload"].update(changes)
        event["payload"] = {k: v for k, v in event["payload"].items() if v is not None}
        answer = desk.send(json.dumps(event).encode())
        assert answer.status == HTTP_BAD_REQUEST
        assert message in answer.body["error"]
        assert stored(desk.table) == 0

    @pytest.mark.parametrize("body", [b"{not json", b"[1]", b'{"payload": "x"}'])
    def test_unreadable_bodies_are_400(self, desk: Desk, body: bytes) -> None:
        answer = desk.send(body)
        assert answer.status == HTTP_BAD_REQUEST
        assert stored(desk.table) == 0


class TestFrontRetries:
    def test_a_redelivered_event_captures_and_notes_nothing_more(self, desk: Desk) -> None:
        # Given an event whose capture is noted
        session_id = desk.created(tag_event(desk))
        desk.report_ready(session_id)
        # When Front delivers the same event again hours later, signed afresh
        desk.clock.advance(hours=6)
        answer = desk.send(tag_event(desk))
        # Then it is the same session, and still one capture and one note
        assert (answer.body["session_id"], answer.body["duplicate"]) == (session_id, True)
        desk.run()
        assert len(desk.bugpilot.requests("action")) == 1
        assert len(desk.simulator.requests("comment")) == 1

    def test_a_new_tagging_after_a_day_is_a_new_capture(self, desk: Desk) -> None:
        first = desk.created(tag_event(desk))
        desk.report_ready(first)
        desk.clock.advance(seconds=(DELIVERY_MEMORY + timedelta(hours=1)).total_seconds())
        second = desk.created(tag_event(desk, event_id="evt_9z8y7x"))
        assert second != first


class TestNoteDelivery:
    def test_a_rate_limited_note_is_retried_after_retry_after_and_lands_once(
        self, desk: Desk
    ) -> None:
        # Given Front answers the first comment 429 with Retry-After
        session_id = desk.created(tag_event(desk))
        desk.simulator.script("comment", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        before = desk.clock()
        desk.report_ready(session_id)
        assert desk.notes(CONVERSATION) == []
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        assert session.next_check_at >= before + timedelta(seconds=RETRY_AFTER)
        # When the resolver runs once it is due, and again later
        desk.run_when_due(session_id)
        desk.clock.advance(hours=1)
        desk.run()
        # Then the comment landed once, after a look for an earlier one
        assert len(desk.notes(CONVERSATION)) == 1
        assert len(desk.simulator.requests("comment")) == 2
        assert len(desk.simulator.requests("comments")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED

    def test_a_comment_that_landed_although_its_answer_failed_is_not_posted_again(
        self, desk: Desk
    ) -> None:
        session_id = desk.created(tag_event(desk))
        desk.simulator.script("comment", 503)
        desk.report_ready(session_id)
        desk.simulator.add_comment(CONVERSATION, f"Capture session: {session_id}")
        desk.run_when_due(session_id)
        assert len(desk.simulator.requests("comment")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED


class TestHostilePayloads:
    @pytest.mark.parametrize("hostile", HOSTILE)
    def test_payload_markup_never_becomes_live_in_the_posted_comment(
        self, desk: Desk, hostile: str
    ) -> None:
        # Given a recipient whose handle (the requester the note names) and subject carry markup
        desk.bugpilot.connect_user(hostile)
        session_id = desk.created(tag_event(desk, handle=hostile, subject=f"Broken {hostile}"))
        # When the comment is posted
        report = desk.report_ready(session_id)
        # Then Front received it escaped: no piece can open a link, an image, HTML or code
        [post] = desk.simulator.requests("comment")
        sent = post.json()["body"]
        assert markdown_escaped(hostile) in sent
        unescaped = [
            i for i, char in enumerate(sent) if char in "[]<>`" and sent[i - 1 : i] != "\\"
        ]
        assert unescaped == [], sent
        # and the report stays whole
        assert report in sent


class TestEventsFile:
    def test_the_event_signed_by_the_cli_is_accepted_by_the_handler(
        self,
        front_env: dict[str, str],
        bugpilot: BugpilotSimulator,
        lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from capture_bridge.settings import reset_settings_cache
        from webhook_handler import lambda_handler

        # Given the sample event re-signed now by `sign-event` with the bridge's secret
        bugpilot.connect_user(EMAIL)
        result = _sign_event_cli(front_env["FRONT_APP_SECRET"])
        assert result.returncode == 0, result.stderr
        event = json.loads(result.stdout)
        for key, value in front_env.items():
            monkeypatch.setenv(key, value)
        reset_settings_cache()
        # When the Lambda handler gets it, then it is accepted and Bugpilot asked once
        response = lambda_handler(event, lambda_context)
        assert response["statusCode"] == HTTP_ACCEPTED, response["body"]
        assert len(bugpilot.requests("action")) == 1

    def test_the_event_as_stored_is_refused(self, desk: Desk) -> None:
        answer = receive_event(
            load_event("webhook_front"), runtime_factory=lambda: desk.runtime, clock=desk.clock
        )
        assert answer.status == HTTP_UNAUTHORIZED
        assert stored(desk.table) == 0

    def test_without_a_secret_sign_event_names_the_key(self) -> None:
        result = _sign_event_cli("")
        assert result.returncode == 2
        assert "FRONT_APP_SECRET" in result.stderr


def _sign_event_cli(secret: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin"} | ({"FRONT_APP_SECRET": secret} if secret else {})
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "local_runner",
            "sign-event",
            str(EVENTS / "webhook_front.json"),
            "--helpdesk",
            "front",
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
