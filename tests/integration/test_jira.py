"""Jira Service Management end to end: webhook, resolver and internal comment, against moto and
the simulators; the events files, `sign-event` and the demo."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from capture_bridge.helpdesks.jira import (
    AUTOMATION_DEDUPE_WINDOW,
    MAX_AGE,
    escape_wiki,
    sign_webhook,
)
from capture_bridge.models import NoteState
from capture_bridge.webhook import receive, receive_event
from local_runner.events import signed_event
from local_runner.simulators import BugpilotSimulator
from local_runner.simulators.jira import JiraSimulator
from tests.conftest import EVENTS, ROOT, START, Clock, load_event, runtime_with
from tests.helpdesk_desk import HelpdeskDesk, stored

SECRET = "jira-integration-secret"
EMAIL = "agent@example.com"
TOKEN = "jira-integration-token"
TICKET = "SUP-1001"
USER = "ada@example.com"
RETRY_AFTER = 90
# Jira retries an admin webhook for up to about 30 minutes.
JIRA_RETRY_DELAY = timedelta(minutes=20)
# Characters Jira's renderer reads as markup unless a backslash precedes them.
WIKI_SPECIAL = "-#*_+?^~|%{}[]()!@"
HOSTILE = (
    "[click|javascript:alert(1)]",
    "[x|http://evil.test]",
    "{html}<script>alert(1)</script>{html}",
    "!http://evil.test/x.png!",
    '"><img src=x onerror=alert(1)>',
    "[x](javascript:alert(1))",
)
# Two Bugpilot captures, a LambdaTest and a Notte session.
DEMO_CAPTURES = 4


def rule_body(**fields: Any) -> bytes:
    """The README's automation rule body, with `fields` changed (None removes a field)."""
    body: dict[str, Any] = {
        "ticket_id": TICKET,
        "requester_email": USER,
        "tags": "bugpilot_session, vip",
    }
    body.update(fields)
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}


def signed(body: bytes, identifier: str = "delivery-1", secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature": sign_webhook(secret, body),
        "X-Atlassian-Webhook-Identifier": identifier,
    }


def live_markup(body: str, links: tuple[str, ...]) -> list[str]:
    """Markup Jira's renderer would act on, once the session's own `[link]`s are taken out."""
    for link in links:
        body = body.replace(f"[{link}]", "")
    return re.findall(r"(?<!\\)[" + re.escape(WIKI_SPECIAL) + "]", body)


@pytest.fixture
def jira() -> Iterator[JiraSimulator]:
    with JiraSimulator(email=EMAIL, api_token=TOKEN, webhook_secret=SECRET) as simulator:
        yield simulator


@pytest.fixture
def jira_env(env: dict[str, str], jira: JiraSimulator) -> dict[str, str]:
    return env | jira.bridge_settings()


Desk = HelpdeskDesk[JiraSimulator]


@pytest.fixture
def desk(
    jira_env: dict[str, str], clock: Clock, jira: JiraSimulator, bugpilot: BugpilotSimulator
) -> Desk:
    bugpilot.connect_user(USER)
    return Desk(
        runtime_with(jira_env), clock, jira, bugpilot, jira_env["TABLE_NAME"], proof=_no_proof
    )


def _no_proof(body: bytes, at: datetime) -> dict[str, str]:
    # Every Jira test says which of the two proofs it sends.
    raise AssertionError("pass the headers: an automation secret or an admin signature")


class TestOneNotePerCapture:
    def test_an_automation_rule_delivery_gets_one_internal_comment_with_the_report(
        self, desk: Desk
    ) -> None:
        # given the rule's delivery with the secret as a bearer token
        session_id = desk.accepted(rule_body(), bearer())
        # then one session is stored and Bugpilot is asked once, for the reporter
        assert len(desk.bugpilot.requests("action")) == 1
        assert desk.bugpilot.requests("action")[0].json()["userId"] == USER
        # when the user's report exists and the resolver runs
        report = desk.report_ready(session_id)
        # then exactly one internal comment holds the marker and the report link, and no more
        [note] = desk.notes(TICKET)
        assert escape_wiki(f"Capture session: {session_id}") in note
        assert f"[{report}]" in note
        [comment] = desk.simulator.comments(TICKET)
        assert comment["public"] is False
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.note_state is NoteState.POSTED

    def test_an_admin_webhook_delivery_gets_one_internal_comment(self, desk: Desk) -> None:
        # given Jira's own issue payload, signed, with the reporter's email
        body = desk.simulator.admin_webhook_body(TICKET, email=USER, sent_at=desk.clock())
        session_id = desk.accepted(body, signed(body))
        assert len(desk.bugpilot.requests("action")) == 1
        # when the report exists, then exactly one internal comment has its link
        report = desk.report_ready(session_id)
        [note] = desk.notes(TICKET)
        assert f"[{report}]" in note


class TestRefusals:
    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({}, "missing X-Hub-Signature or Authorization"),
            (bearer("wrong"), "does not match"),
            ({"X-Hub-Signature": "sha256=" + "0" * 64}, "does not match"),
            ({"X-Hub-Signature": "0" * 64}, "sha256=<hex>"),
        ],
    )
    def test_unproven_deliveries_are_401_and_touch_nothing(
        self, desk: Desk, headers: dict[str, str], reason: str
    ) -> None:
        answer = desk.send(desk.simulator.admin_webhook_body(TICKET, sent_at=desk.clock()), headers)
        assert answer.status == 401
        assert reason in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []

    def test_a_signature_with_another_secret_is_401(self, desk: Desk) -> None:
        body = desk.simulator.admin_webhook_body(TICKET, sent_at=desk.clock())
        answer = desk.send(body, signed(body, secret="someone-elses"))
        assert answer.status == 401
        assert stored(desk.table) == 0

    def test_a_captured_admin_delivery_replayed_later_is_stale(self, desk: Desk) -> None:
        # given a genuine signed delivery, sent more than MAX_AGE ago
        body = desk.simulator.admin_webhook_body(TICKET, sent_at=desk.clock() - MAX_AGE * 2)
        # when it is replayed now, then it is refused and nothing is stored or asked
        answer = desk.send(body, signed(body))
        assert answer.status == 401
        assert "too old" in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []

    def test_without_a_webhook_secret_every_delivery_is_401_naming_the_key(
        self, jira_env: dict[str, str], clock: Clock, bugpilot: BugpilotSimulator
    ) -> None:
        runtime = runtime_with(jira_env, JIRA_WEBHOOK_SECRET="")
        answer = receive(
            "jira",
            bearer(""),
            rule_body().decode(),
            is_base64=False,
            runtime_factory=lambda: runtime,
            clock=clock,
        )
        assert answer.status == 401
        assert "JIRA_WEBHOOK_SECRET" in answer.body["error"]
        assert stored(jira_env["TABLE_NAME"]) == 0
        assert bugpilot.requests("action") == []

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (b'"SUP-1"', "body must be a JSON object"),
            (rule_body(ticket_id=None), "ticket_id is required"),
            (rule_body(ticket_id="SUP-1 OR 1=1"), "ticket_id must be a Jira issue key"),
            (rule_body(tags={"a": 1}), "tags must be"),
            (
                rule_body(requester_email=None),
                "requester_external_id or requester_email is required",
            ),
            (rule_body(action="format-disk"), "unknown action 'format-disk'"),
        ],
    )
    def test_malformed_rule_bodies_are_400_naming_the_field(
        self, desk: Desk, body: bytes, message: str
    ) -> None:
        answer = desk.send(body, bearer())
        assert answer.status == 400
        assert message in answer.body["error"]
        assert stored(desk.table) == 0

    @pytest.mark.parametrize(
        ("issue", "message"),
        [
            ({"fields": {}}, "issue.key is required"),
            ({"key": "SUP-1", "fields": {"labels": "bugpilot_session"}}, "issue.fields.labels"),
            ({"key": "SUP-1", "fields": {"reporter": []}}, "issue.fields.reporter must be"),
        ],
    )
    def test_malformed_admin_payloads_are_400_naming_the_field(
        self, desk: Desk, issue: dict[str, Any], message: str
    ) -> None:
        payload = json.loads(desk.simulator.admin_webhook_body(TICKET, sent_at=desk.clock()))
        body = json.dumps(payload | {"issue": issue}).encode()
        answer = desk.send(body, signed(body))
        assert answer.status == 400
        assert message in answer.body["error"]
        assert stored(desk.table) == 0

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (b"[1, 2]", "body must be a JSON object"),
            (b'{"webhookEvent": "jira:issue_updated"}', "timestamp (epoch milliseconds)"),
        ],
    )
    def test_a_proven_sender_with_a_bad_body_is_400_naming_the_body(
        self, desk: Desk, body: bytes, message: str
    ) -> None:
        # given a body signed with the right secret, so the sender is proven, that is no payload
        # when it arrives
        answer = desk.send(body, signed(body))
        # then the body is named as the problem (400), not the proof (401); nothing is stored
        assert answer.status == 400, answer.body
        assert message in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []


class TestRedelivery:
    def test_an_admin_retry_20_minutes_later_captures_and_notes_nothing_more(
        self, desk: Desk
    ) -> None:
        # given an admin delivery whose capture has been noted
        body = desk.simulator.admin_webhook_body(TICKET, sent_at=desk.clock())
        session_id = desk.accepted(body, signed(body, identifier="hook-7"))
        desk.report_ready(session_id)
        assert len(desk.notes(TICKET)) == 1
        # when Jira delivers it again 20 minutes later, marked as a retry
        desk.clock.now = START + JIRA_RETRY_DELAY
        retry = signed(body, identifier="hook-7") | {"X-Atlassian-Webhook-Retry": "1"}
        answer = desk.send(body, retry)
        # then it stands for the same session: no second capture, and no second note
        assert answer.status == 202
        assert (answer.body["session_id"], answer.body["duplicate"]) == (session_id, True)
        desk.run()
        assert len(desk.bugpilot.requests("action")) == 1
        assert len(desk.notes(TICKET)) == 1

    def test_an_automation_redelivery_within_the_hour_is_the_same_capture(self, desk: Desk) -> None:
        # given a rule delivery whose capture has been noted
        session_id = desk.accepted(rule_body(action="upload-session"), bearer())
        desk.report_ready(session_id)
        # when the same rule call comes again within the window
        desk.clock.now = START + AUTOMATION_DEDUPE_WINDOW - timedelta(minutes=1)
        answer = desk.send(rule_body(action="upload-session"), bearer())
        # then nothing new is captured or noted
        assert (answer.status, answer.body["duplicate"]) == (202, True)
        desk.run()
        assert len(desk.bugpilot.requests("action")) == 1
        assert len(desk.notes(TICKET)) == 1

    def test_after_the_window_the_same_rule_call_is_a_new_request(self, desk: Desk) -> None:
        # given a noted capture, and the same rule call after the window
        session_id = desk.accepted(rule_body(action="upload-session"), bearer())
        desk.report_ready(session_id)
        desk.clock.now = START + AUTOMATION_DEDUPE_WINDOW + timedelta(minutes=1)
        # then it asks for a capture again (the agents asked again)
        again = desk.accepted(rule_body(action="upload-session"), bearer())
        assert again != session_id
        assert len(desk.bugpilot.requests("action")) == 2


class TestRateLimits:
    def test_a_rate_limited_note_is_retried_after_retry_after_and_lands_once(
        self, desk: Desk
    ) -> None:
        # given Jira answers the first comment with 429 and Retry-After
        session_id = desk.accepted(rule_body(), bearer())
        desk.simulator.script("post", 429, retry_after=RETRY_AFTER)
        before = desk.clock()
        desk.report_ready(session_id)
        # then no note yet, and the next try waits at least Retry-After
        assert desk.notes(TICKET) == []
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        assert session.next_check_at >= before + timedelta(seconds=RETRY_AFTER)
        # when the resolver runs again once it is due, the note lands exactly once
        desk.run_when_due(session_id)
        desk.clock.advance(hours=1)
        desk.run()
        assert len(desk.notes(TICKET)) == 1
        assert len(desk.simulator.requests("post")) == 2
        # and before posting again it looked for an earlier one, as after any failed try
        assert len(desk.simulator.requests("list")) == 1


class TestHostilePayloads:
    @pytest.mark.parametrize("hostile", HOSTILE)
    def test_payload_markup_never_becomes_live_in_the_posted_comment(
        self, desk: Desk, hostile: str
    ) -> None:
        # given a requester id (which the note names) and description carrying markup
        desk.bugpilot.connect_user(hostile)
        body = rule_body(requester_external_id=hostile, description=hostile)
        session_id = desk.accepted(body, bearer())
        # when the note is posted
        report = desk.report_ready(session_id)
        # then what Jira received renders none of it as markup, while the report is a link
        [post] = desk.simulator.requests("post")
        sent = post.json()["body"]
        assert escape_wiki(hostile) in sent
        assert live_markup(sent, (report,)) == []
        assert f"[{report}]" in sent


class TestEventsFiles:
    def test_the_rule_event_signed_by_the_cli_is_accepted_by_the_handler(
        self,
        jira_env: dict[str, str],
        bugpilot: BugpilotSimulator,
        lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from capture_bridge.settings import reset_settings_cache
        from webhook_handler import lambda_handler

        # given the rule's event signed by `sign-event` with the bridge's secret
        bugpilot.connect_user(USER)
        result = _sign_event_cli(EVENTS / "webhook_jira.json", jira_env["JIRA_WEBHOOK_SECRET"])
        assert result.returncode == 0, result.stderr
        event = json.loads(result.stdout)
        assert event["headers"]["Authorization"] == f"Bearer {SECRET}"
        for key, value in jira_env.items():
            monkeypatch.setenv(key, value)
        reset_settings_cache()
        # when the Lambda handler gets it, base64-wrapped as API Gateway may send it
        event["body"] = base64.b64encode(event["body"].encode()).decode()
        event["isBase64Encoded"] = True
        response = lambda_handler(event, lambda_context)
        # then it is accepted
        assert response["statusCode"] == 202, response["body"]
        assert len(bugpilot.requests("action")) == 1

    def test_the_admin_event_signed_now_is_accepted_now(
        self, desk: Desk, jira_env: dict[str, str]
    ) -> None:
        # given the admin event, whose body says when Jira sent it (long ago)
        event = load_event("webhook_jira_admin")
        now = desk.clock()
        # when it is signed afresh, which makes the body's own time current too
        fresh = signed_event(event, jira_env, now=now)
        # then its delivery id is kept, its time is now, and it is accepted
        assert (
            fresh["headers"]["X-Atlassian-Webhook-Identifier"]
            == (event["headers"]["x-atlassian-webhook-identifier"])
        )
        assert json.loads(fresh["body"])["timestamp"] == int(now.timestamp() * 1000)
        answer = receive_event(fresh, runtime_factory=lambda: desk.runtime, clock=desk.clock)
        assert answer.status == 202, answer.body
        assert len(desk.bugpilot.requests("action")) == 1

    def test_a_signed_admin_event_replayed_long_after_its_time_is_refused(
        self, desk: Desk, jira_env: dict[str, str]
    ) -> None:
        # given the admin event signed at a moment
        signed_at = desk.clock()
        fresh = signed_event(load_event("webhook_jira_admin"), jira_env, now=signed_at)
        # when it is replayed well after its time
        answer = receive_event(
            fresh, runtime_factory=lambda: desk.runtime, clock=lambda: signed_at + MAX_AGE * 2
        )
        # then it is stale, and nothing is started
        assert answer.status == 401
        assert "too old" in answer.body["error"]
        assert desk.bugpilot.requests("action") == []

    def test_both_events_are_addressed_to_jira_and_readable(self) -> None:
        for name in ("webhook_jira", "webhook_jira_admin"):
            event = load_event(name)
            assert event["pathParameters"]["helpdesk"] == "jira"
            assert event["rawPath"] == "/webhooks/jira"
            assert json.loads(event["body"])


def _sign_event_cli(path: Any, secret: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "local_runner", "sign-event", str(path), "--helpdesk", "jira"],
        cwd=ROOT,
        env={"JIRA_WEBHOOK_SECRET": secret, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
