"""Freshdesk end to end: webhook, resolver and private note against moto and the simulators;
Freshdesk retries, rate limit, hostile payloads, the events file, `sign-event` and the demo."""

from __future__ import annotations

import base64
import html
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge.helpdesks.freshdesk import DEDUPE_WINDOW
from capture_bridge.models import NoteState
from capture_bridge.observability import logger
from capture_bridge.webhook import receive, receive_event
from local_runner.simulators import BugpilotSimulator, FreshdeskSimulator
from tests.conftest import EVENTS, ROOT, START, Clock, load_event, runtime_with
from tests.helpdesk_desk import HelpdeskDesk, stored

SECRET = "fd-integration-webhook-secret"
API_KEY = "fd-integration-api-key"
TICKET = "1001"
USER = "user-42"
RETRY_AFTER = 90
# Freshdesk retries a failed webhook 5, 30 and 60 minutes after the call before.
FRESHDESK_RETRIES = (timedelta(minutes=5), timedelta(minutes=30), timedelta(minutes=60))
# The retry the brief names: an hour and a bit after the first call.
HOUR_LATER_RETRY = timedelta(minutes=65)
WELL_AFTER_THE_WINDOW = timedelta(hours=3)
HTTP_UNAUTHORIZED = 401
HTTP_BAD_REQUEST = 400
HTTP_ACCEPTED = 202
HTTP_TOO_MANY = 429
HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "[x](javascript:alert(1))",
    "[x|http://evil.test]",
    "<a href='javascript:alert(1)'>x</a>",
)
# Two Bugpilot captures, a LambdaTest and a Notte session.
DEMO_CAPTURES = 4


def rule_body(**fields: Any) -> bytes:
    """The README's rule body as Freshdesk renders it, `fields` changed (None removes one)."""
    body: dict[str, Any] = {
        "ticket_id": TICKET,
        "requester_email": "ada@example.com",
        "requester_external_id": USER,
        "tags": "bugpilot_session, vip",
    }
    body.update(fields)
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Content-Type": "application/json", "Authorization": f"Basic {token}"}


@pytest.fixture
def freshdesk() -> Iterator[FreshdeskSimulator]:
    with FreshdeskSimulator(api_key=API_KEY, webhook_secret=SECRET) as simulator:
        yield simulator


@pytest.fixture
def fd_env(env: dict[str, str], freshdesk: FreshdeskSimulator) -> dict[str, str]:
    return env | freshdesk.bridge_settings()


Desk = HelpdeskDesk[FreshdeskSimulator]


@pytest.fixture
def desk(
    fd_env: dict[str, str], clock: Clock, freshdesk: FreshdeskSimulator, bugpilot: BugpilotSimulator
) -> Desk:
    bugpilot.connect_user(USER)
    return Desk(
        runtime_with(fd_env),
        clock,
        freshdesk,
        bugpilot,
        fd_env["TABLE_NAME"],
        proof=lambda body, at: bearer(),
    )


class TestOneNotePerCapture:
    @pytest.mark.parametrize(
        "proof", [bearer(), basic("freshdesk", SECRET)], ids=["bearer", "basic"]
    )
    def test_a_rule_delivery_gets_exactly_one_private_note_with_the_report(
        self, desk: Desk, proof: dict[str, str]
    ) -> None:
        # Given the rule's delivery with the shared secret
        session_id = desk.created(rule_body(), proof)
        # Then one session is stored and Bugpilot is asked once, for the requester
        assert desk.runtime.store.get(session_id) is not None
        assert len(desk.bugpilot.requests("action")) == 1
        assert desk.bugpilot.requests("action")[0].json()["userId"] == USER
        # When the user's report exists and the resolver runs
        report = desk.report_ready(session_id)
        # Then exactly one private note holds the marker and the report as a link
        [post] = desk.simulator.requests("note")
        assert post.route == f"/api/v2/tickets/{TICKET}/notes"
        assert post.json()["private"] is True
        [note] = desk.notes(TICKET)
        assert f"Capture session: {session_id}" in note
        assert f'<a href="{report}">' in note
        assert len(desk.simulator.notes(TICKET)) == 1
        assert desk.note_state(session_id) is NoteState.POSTED
        # And another resolver run later adds nothing
        desk.clock.advance(hours=1)
        desk.run()
        assert len(desk.simulator.notes(TICKET)) == 1


class TestRefusals:
    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({"Content-Type": "application/json"}, "missing Authorization"),
            (bearer("wrong-secret"), "does not match"),
            (basic("freshdesk", "wrong-secret"), "does not match"),
            (basic(SECRET, ""), "missing Authorization"),
            ({"Authorization": SECRET}, "missing Authorization"),
            ({"X-Webhook-Secret": SECRET}, "missing Authorization"),
        ],
    )
    def test_unproven_deliveries_are_401_and_touch_nothing(
        self, desk: Desk, headers: dict[str, str], reason: str
    ) -> None:
        answer = desk.send(rule_body(), headers)
        assert answer.status == HTTP_UNAUTHORIZED
        assert reason in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []

    def test_without_a_webhook_secret_every_delivery_is_401_naming_the_key(
        self,
        fd_env: dict[str, str],
        clock: Clock,
        bugpilot: BugpilotSimulator,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given a bridge whose secret has no FRESHDESK_WEBHOOK_SECRET
        runtime = runtime_with(fd_env, FRESHDESK_WEBHOOK_SECRET="")
        errors: list[str] = []
        monkeypatch.setattr(
            logger,
            "error",
            lambda message, *args, **kwargs: errors.append(f"{message} {kwargs.get('extra')}"),
        )
        # When a delivery arrives, even one sending an empty secret
        answer = receive(
            "freshdesk",
            bearer(""),
            rule_body().decode(),
            is_base64=False,
            runtime_factory=lambda: runtime,
            clock=clock,
        )
        # Then it is refused naming the key, logged as an error, and nothing happens
        assert answer.status == HTTP_UNAUTHORIZED
        assert "FRESHDESK_WEBHOOK_SECRET" in answer.body["error"]
        assert any("FRESHDESK_WEBHOOK_SECRET" in line for line in errors), errors
        assert stored(fd_env["TABLE_NAME"]) == 0
        assert bugpilot.requests("action") == []

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (b'"1001"', "body must be a JSON object"),
            (b"[1001]", "body must be a JSON object"),
            (rule_body(ticket_id=None), "ticket_id is required"),
            (rule_body(ticket_id="1001; DROP"), "ticket_id must be a Freshdesk ticket number"),
            (rule_body(ticket_id="{{ticket.id}}"), "ticket_id must be a Freshdesk ticket number"),
            (rule_body(ticket_id=False), "ticket_id must be a string"),
            (rule_body(requester_external_id=["x"]), "requester_external_id must be a string"),
            (rule_body(tags={"a": 1}), "tags must be"),
            (
                rule_body(requester_email=None, requester_external_id=None),
                "requester_external_id or requester_email is required",
            ),
            (rule_body(action="format-disk"), "unknown action 'format-disk'"),
        ],
    )
    def test_malformed_bodies_are_400_naming_the_field(
        self, desk: Desk, body: bytes, message: str
    ) -> None:
        answer = desk.send(body)
        assert answer.status == HTTP_BAD_REQUEST
        assert message in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []


class TestFreshdeskRetries:
    def test_the_hour_later_retry_of_a_noted_capture_captures_and_notes_nothing_more(
        self, desk: Desk
    ) -> None:
        # Given a delivery whose capture has finished and whose note is on the ticket
        session_id = desk.created(rule_body())
        desk.report_ready(session_id)
        assert len(desk.notes(TICKET)) == 1
        # When Freshdesk delivers the same call again 65 minutes later
        desk.clock.now = START + HOUR_LATER_RETRY
        answer = desk.send(rule_body())
        # Then it is the same session, marked duplicate: no new capture, and still one note
        assert answer.status == HTTP_ACCEPTED
        assert (answer.body["session_id"], answer.body["duplicate"]) == (session_id, True)
        desk.run()
        assert len(desk.bugpilot.requests("action")) == 1
        assert len(desk.notes(TICKET)) == 1
        assert len(desk.simulator.requests("note")) == 1

    def test_every_retry_in_freshdesks_schedule_is_recognised(self, desk: Desk) -> None:
        # Given a delivery Freshdesk believes failed (its answer was lost)
        session_id = desk.created(rule_body())
        # When it retries at +5, +35 and +95 minutes, the capture still open or not
        for delay in FRESHDESK_RETRIES:
            desk.clock.advance(seconds=delay.total_seconds())
            answer = desk.send(rule_body())
            # Then each retry is the same session
            assert (answer.body["session_id"], answer.body["duplicate"]) == (session_id, True)
        assert len(desk.bugpilot.requests("action")) == 1

    def test_after_the_window_the_same_ticket_and_action_is_a_new_capture(self, desk: Desk) -> None:
        # Given a noted capture
        session_id = desk.created(rule_body())
        desk.report_ready(session_id)
        # When the same rule call comes three hours later (the agents asked again)
        assert WELL_AFTER_THE_WINDOW > DEDUPE_WINDOW
        desk.clock.now = START + WELL_AFTER_THE_WINDOW
        again = desk.created(rule_body())
        # Then it is a new capture
        assert again != session_id
        assert len(desk.bugpilot.requests("action")) == 2

    def test_another_capture_on_the_same_ticket_is_not_taken_for_a_retry(self, desk: Desk) -> None:
        # Given a capture asked for on the ticket
        first = desk.created(rule_body(action="upload-session"))
        # When the ticket asks for another action within the window
        desk.clock.advance(minutes=10)
        second = desk.created(rule_body(action="upload-screenshot"))
        # Then it is its own capture
        assert second != first
        assert len(desk.bugpilot.requests("action")) == 2


class TestNoteDelivery:
    def test_a_rate_limited_note_is_retried_after_retry_after_and_lands_once(
        self, desk: Desk
    ) -> None:
        # Given Freshdesk answers the first note with 429 and Retry-After
        session_id = desk.created(rule_body())
        desk.simulator.script("note", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        before = desk.clock()
        desk.report_ready(session_id)
        # Then there is no note yet, and the next try waits at least Retry-After
        assert desk.notes(TICKET) == []
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        assert session.next_check_at >= before + timedelta(seconds=RETRY_AFTER)
        # When the resolver runs once it is due, and again later
        desk.run_when_due(session_id)
        desk.clock.advance(hours=1)
        desk.run()
        # Then the note landed exactly once, after a look for an earlier one
        assert len(desk.notes(TICKET)) == 1
        assert len(desk.simulator.requests("note")) == 2
        assert len(desk.simulator.requests("conversations")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED

    def test_a_note_that_landed_although_its_answer_failed_is_not_posted_again(
        self, desk: Desk
    ) -> None:
        # Given a note post answered 503, though Freshdesk did store it
        session_id = desk.created(rule_body())
        desk.simulator.script("note", 503)
        desk.report_ready(session_id)
        desk.simulator.add_conversation(TICKET, f"Capture session: {session_id}", private=True)
        # When the resolver tries again
        desk.run_when_due(session_id)
        # Then it finds the note and posts nothing more
        assert len(desk.simulator.requests("note")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED

    def test_while_freshdesk_cannot_say_whether_the_note_landed_nothing_is_posted(
        self, desk: Desk
    ) -> None:
        # Given a failed first post, and the conversations listing failing too
        session_id = desk.created(rule_body())
        desk.simulator.script("note", 503)
        desk.report_ready(session_id)
        desk.simulator.script("conversations", 500)
        # When the resolver tries again, then it posts nothing while that is unknown
        desk.run_when_due(session_id)
        assert len(desk.simulator.requests("note")) == 1
        # And once the listing answers, the note lands once
        desk.run_when_due(session_id)
        assert len(desk.notes(TICKET)) == 1
        assert len(desk.simulator.requests("note")) == 2


class TestHostilePayloads:
    @pytest.mark.parametrize("hostile", HOSTILE)
    def test_payload_markup_never_becomes_live_in_the_posted_note(
        self, desk: Desk, hostile: str
    ) -> None:
        # Given a requester id (which the note names) and a description carrying markup
        desk.bugpilot.connect_user(hostile)
        body = rule_body(requester_external_id=hostile, description=hostile)
        session_id = desk.created(body)
        # When the note is posted
        report = desk.report_ready(session_id)
        # Then what Freshdesk received shows it as escaped text; the report is the only link
        [post] = desk.simulator.requests("note")
        sent = post.json()["body"]
        assert html.escape(hostile) in sent
        assert "<script" not in sent and "<img" not in sent
        assert "javascript:" not in sent.replace(html.escape(hostile), "")
        assert sent.count("<a ") == 1
        assert f'<a href="{report}">' in sent


class TestEventsFile:
    def test_the_event_signed_by_the_cli_is_accepted_by_the_handler(
        self,
        fd_env: dict[str, str],
        bugpilot: BugpilotSimulator,
        lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from capture_bridge.settings import reset_settings_cache
        from webhook_handler import lambda_handler

        # Given the sample event re-proved by `sign-event` with the bridge's secret
        bugpilot.connect_user(USER)
        result = _sign_event_cli(fd_env["FRESHDESK_WEBHOOK_SECRET"])
        assert result.returncode == 0, result.stderr
        event = json.loads(result.stdout)
        assert event["headers"]["Authorization"] == f"Bearer {SECRET}"
        for key, value in fd_env.items():
            monkeypatch.setenv(key, value)
        reset_settings_cache()
        # When the Lambda handler gets it
        response = lambda_handler(event, lambda_context)
        # Then it is accepted, and Bugpilot asked once
        assert response["statusCode"] == HTTP_ACCEPTED, response["body"]
        assert len(bugpilot.requests("action")) == 1

    def test_the_event_as_stored_carries_a_placeholder_secret_that_is_refused(
        self, desk: Desk
    ) -> None:
        answer = receive_event(
            load_event("webhook_freshdesk"),
            runtime_factory=lambda: desk.runtime,
            clock=desk.clock,
        )
        assert answer.status == HTTP_UNAUTHORIZED
        assert stored(desk.table) == 0

    def test_without_a_secret_sign_event_names_the_key(self) -> None:
        result = _sign_event_cli("")
        assert result.returncode == 2
        assert "FRESHDESK_WEBHOOK_SECRET" in result.stderr


def _sign_event_cli(secret: str) -> subprocess.CompletedProcess[str]:
    path = EVENTS / "webhook_freshdesk.json"
    environment = {"PATH": "/usr/bin:/bin"} | (
        {"FRESHDESK_WEBHOOK_SECRET": secret} if secret else {}
    )
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "local_runner",
            "sign-event",
            str(path),
            "--helpdesk",
            "freshdesk",
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
