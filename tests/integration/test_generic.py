"""The generic signed webhook end to end: moto, Bugpilot and the note receiver over real HTTP."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from capture_bridge import webhook as webhook_module
from capture_bridge.access import Access
from capture_bridge.helpdesks import NoteOutcome, helpdesk_spec
from capture_bridge.helpdesks.generic import GenericAdapter, GenericSettings, probe, sign
from capture_bridge.http import HttpClient
from capture_bridge.models import NoteState
from capture_bridge.notes import Note
from capture_bridge.settings import settings_from
from capture_bridge.webhook import receive_event
from local_runner.simulators import BugpilotSimulator, GenericSimulator
from local_runner.simulators.generic import NOTES_PATH
from tests.conftest import EVENTS, ROOT, Clock, load_event, runtime_with
from tests.helpdesk_desk import HelpdeskDesk, stored

KEY = b"generic-integration-signing-key!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
USER = "user-42"
TICKET = "CASE-1001"
RETRY_AFTER_SECONDS = 120
REDELIVERY_DELAYS = [timedelta(seconds=5), timedelta(minutes=35), timedelta(hours=2, minutes=35)]
STALE = timedelta(minutes=5, seconds=1)
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "[x](javascript:alert(1))",
    "[x|http://evil.example]",
]


def body_of(**fields: Any) -> bytes:
    """The README's documented body, with `fields` changed (None removes a field)."""
    body: dict[str, Any] = {
        "ticketId": TICKET,
        "userId": USER,
        "userEmail": "ada@example.com",
        "tags": "bugpilot_session vip",
    }
    body.update(fields)
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def signed(
    body: bytes, at: datetime, *, message_id: str = "msg_first", key: bytes = KEY
) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message_id, timestamp, body),
    }


@pytest.fixture
def receiver() -> Iterator[GenericSimulator]:
    with GenericSimulator(secret=SECRET) as simulator:
        yield simulator


Tool = HelpdeskDesk[GenericSimulator]


@pytest.fixture
def tool(
    env: dict[str, str], clock: Clock, receiver: GenericSimulator, bugpilot: BugpilotSimulator
) -> Tool:
    runtime = runtime_with(
        env, GENERIC_WEBHOOK_SECRET=SECRET, GENERIC_NOTE_URL=f"{receiver.url}{NOTES_PATH}"
    )
    bugpilot.connect_user(USER)
    return Tool(runtime, clock, receiver, bugpilot, env["TABLE_NAME"], proof=signed)


class TestDelivery:
    def test_a_signed_call_captures_once_and_the_ticket_gets_one_signed_note(
        self, tool: Tool
    ) -> None:
        # Given a valid delivery
        session_id = tool.accepted(body_of())
        # Then one session is stored and Bugpilot was asked once
        assert len(tool.bugpilot.requests("action")) == 1
        assert tool.bugpilot.requests("action")[0].json()["userId"] == USER
        # When the user's report exists and the resolver runs
        report = tool.complete_report()
        tool.run_when_due(session_id)
        # Then the receiver verified and kept exactly one note for the ticket, in the documented
        # form, with the marker and the report link, and sent nowhere else
        [note] = tool.simulator.notes(TICKET)
        assert note["type"] == "capture.note"
        assert note["sessionId"] == session_id
        assert note["status"] == "resolved"
        assert f"Capture session: {session_id}" in note["text"]
        assert report in note["text"]
        assert f'<a href="{report}">' in note["html"]
        assert note["links"] == {"report": report}
        assert note["webhook_id"] == f"note_{session_id}"
        assert [r.route for r in tool.simulator.requests()] == [NOTES_PATH]
        assert tool.note_state(session_id) is NoteState.POSTED

    def test_one_matching_signature_among_several_is_accepted(self, tool: Tool) -> None:
        body = body_of()
        headers = signed(body, tool.clock())
        old = signed(body, tool.clock(), key=b"the-sender-s-previous-key-000000")
        headers["webhook-signature"] = (
            f"{old['webhook-signature']} v1a,c2lnbmVk {headers['webhook-signature']}"
        )
        tool.accepted(body, headers)
        assert len(tool.bugpilot.requests("action")) == 1


class TestRefusals:
    @pytest.mark.parametrize(
        "forge",
        [
            pytest.param(lambda body, now: {"content-type": "application/json"}, id="unsigned"),
            pytest.param(lambda body, now: signed(body, now, key=b"wrong-key"), id="wrong-key"),
            pytest.param(lambda body, now: signed(body, now - STALE), id="stale"),
            pytest.param(lambda body, now: signed(body, now + STALE), id="future"),
            pytest.param(lambda body, now: signed(body + b" ", now), id="other-body"),
            pytest.param(
                lambda body, now: (
                    signed(body, now)
                    | {"webhook-signature": "v2," + signed(body, now)["webhook-signature"][3:]}
                ),
                id="v2-only",
            ),
        ],
    )
    def test_forged_unsigned_or_stale_calls_are_401_and_leave_no_trace(
        self, tool: Tool, forge: Any
    ) -> None:
        body = body_of()
        answer = tool.send(body, forge(body, tool.clock()))
        assert answer.status == 401, answer.body
        assert stored(tool.table) == 0
        assert tool.bugpilot.requests("action") == []

    def test_an_unconfigured_secret_is_401_naming_it_with_an_error_log(
        self, tool: Tool, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        errors: list[str] = []
        monkeypatch.setattr(
            webhook_module.logger,
            "error",
            lambda message, *args, **kwargs: errors.append(f"{message} {kwargs.get('extra')}"),
        )
        for secret in ("", "a-plain-shared-secret"):
            runtime = runtime_with(env, GENERIC_WEBHOOK_SECRET=secret)
            answer = tool.send(body_of(), runtime=runtime)
            assert answer.status == 401
            assert "GENERIC_WEBHOOK_SECRET" in answer.body["error"]
        assert "whsec_" in answer.body["error"]
        assert len(errors) == 2
        assert all("GENERIC_WEBHOOK_SECRET" in line for line in errors)
        assert stored(tool.table) == 0
        assert tool.bugpilot.requests("action") == []

    def test_an_invalid_note_url_is_a_configuration_error_not_an_acceptance(
        self, tool: Tool, env: dict[str, str]
    ) -> None:
        runtime = runtime_with(
            env, GENERIC_WEBHOOK_SECRET=SECRET, GENERIC_NOTE_URL="http://desk.example.com/n"
        )
        assert tool.send(body_of(), runtime=runtime).status == 503
        assert stored(tool.table) == 0


class TestRedelivery:
    @pytest.mark.parametrize("delay", REDELIVERY_DELAYS, ids=["5s", "35min", "2h35"])
    def test_a_retry_of_the_same_message_captures_and_notes_once(
        self, tool: Tool, delay: timedelta
    ) -> None:
        # Given an accepted delivery
        body = body_of()
        first = tool.send(body)
        assert first.status == 202
        # When the sender retries it on the standard's schedule: same id, re-signed later
        tool.clock.advance(seconds=delay.total_seconds())
        again = tool.send(body, signed(body, tool.clock()))
        # Then it is the same session, and Bugpilot was asked once
        assert again.status == 202
        assert again.body["duplicate"] is True
        assert again.body["session_id"] == first.body["session_id"]
        assert len(tool.bugpilot.requests("action")) == 1
        # And the ticket gets one note
        tool.complete_report()
        tool.run_when_due(first.body["session_id"])
        tool.send(body, signed(body, tool.clock()))
        tool.run_when_due(first.body["session_id"])
        assert len(tool.simulator.notes(TICKET)) == 1

    def test_a_new_message_for_a_finished_capture_is_a_new_one(self, tool: Tool) -> None:
        session_id = tool.accepted(body_of())
        tool.complete_report()
        tool.run_when_due(session_id)
        assert tool.accepted(body_of(), signed(body_of(), tool.clock(), message_id="msg_new"))
        assert len(tool.bugpilot.requests("action")) == 2


class TestNoteRetries:
    def test_a_rate_limited_note_is_retried_after_retry_after_and_lands_once(
        self, tool: Tool
    ) -> None:
        # Given a ready capture, and a receiver that answers the first note 429
        session_id = tool.accepted(body_of())
        tool.complete_report()
        tool.simulator.script("note", 429, retry_after=RETRY_AFTER_SECONDS)
        # When the resolver runs
        tool.run_when_due(session_id)
        # Then nothing is kept yet, and the next try waits for Retry-After
        assert tool.simulator.notes(TICKET) == []
        assert tool.note_state(session_id) is NoteState.PENDING
        session = tool.runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        assert session.next_check_at >= tool.clock() + timedelta(seconds=RETRY_AFTER_SECONDS)
        # When it runs again once due
        tool.run_when_due(session_id)
        # Then the note landed once, sent again under the same webhook-id
        assert len(tool.simulator.notes(TICKET)) == 1
        first, second = tool.simulator.requests("note")
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert tool.note_state(session_id) is NoteState.POSTED

    def test_a_note_sent_again_is_kept_once_by_a_deduplicating_receiver(
        self, receiver: GenericSimulator
    ) -> None:
        # Given the adapter pointed at the receiver
        settings = settings_from(
            {
                "TABLE_NAME": "t",
                "GENERIC_WEBHOOK_SECRET": SECRET,
                "GENERIC_NOTE_URL": f"{receiver.url}{NOTES_PATH}",
            }
        )
        adapter = GenericAdapter(GenericSettings.from_settings(settings), HttpClient())
        note = Note("Ready.\nCapture session: s-1", "<p>Ready.</p>", session_id="s-1")
        # When the same note is sent twice (an interrupted run sends it again)
        results = [adapter.post_note(TICKET, note).outcome for _ in range(2)]
        # Then both are acknowledged, and the receiver keeps it once
        assert results == [NoteOutcome.POSTED, NoteOutcome.POSTED]
        assert len(receiver.notes(TICKET)) == 1


class TestPayloads:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b"{not json", "body is not valid JSON"),
            (b'"a string"', "body must be a JSON object"),
            (body_of(ticketId=None), "ticketId is required"),
            (body_of(ticketId="CASE 1001"), "ticketId must be"),
            (body_of(ticketId={"id": 1}), "ticketId must be a string"),
            (body_of(userId=[1]), "userId must be a string"),
            (body_of(userId=None, userEmail=None), "userId or userEmail is required"),
            (body_of(userId="", userEmail=""), "userId or userEmail is required"),
            (body_of(tags=7.5), "tags must be"),
            (body_of(notteSessionId="not-a-uuid"), "notte_session_id must be"),
            (body_of(callbackUrl="https://attacker.example/"), "GENERIC_NOTE_URL"),
            (body_of(callback_url="https://attacker.example/"), "GENERIC_NOTE_URL"),
        ],
    )
    def test_malformed_payloads_are_400_naming_the_field_and_store_nothing(
        self, tool: Tool, body: bytes, field: str
    ) -> None:
        answer = tool.send(body)
        assert answer.status == 400
        assert field in answer.body["error"]
        assert stored(tool.table) == 0
        assert tool.bugpilot.requests("action") == []

    @pytest.mark.parametrize("hostile", HOSTILE)
    def test_markup_in_a_payload_never_becomes_live_markup_in_the_note(
        self, tool: Tool, hostile: str
    ) -> None:
        # Given a requester id that looks like HTML or a link (it is written into the note)
        tool.bugpilot.connect_user(hostile)
        session_id = tool.accepted(body_of(userId=hostile, description=hostile))
        tool.complete_report()
        # When the note is posted
        tool.run_when_due(session_id)
        # Then the receiver got it as text a Markdown renderer keeps as text (every `<` and `[`
        # escaped, so no tag or link), and as HTML with only the report as a link
        [note] = tool.simulator.notes(TICKET)
        report = tool.bugpilot.report_url(tool.bugpilot.tokens[-1])
        assert not re.search(r"(?<!\\)[<\[]", note["text"]), note["text"]
        assert re.sub(r"\\(.)", r"\1", note["text"]).count(hostile) == 1
        assert html.escape(hostile) in note["html"]
        assert re.findall(r"<([a-z]+)", note["html"]) == ["p", "p", "a", "p"]
        assert re.findall(r'href="([^"]*)"', note["html"]) == [report]
        assert note["links"] == {"report": report}


class TestSimulator:
    def test_it_refuses_an_unsigned_or_stale_note(self, receiver: GenericSimulator) -> None:
        import requests

        url = f"{receiver.url}{NOTES_PATH}"
        body = json.dumps({"type": "capture.note", "ticketId": TICKET}).encode()
        now = datetime.now().astimezone()
        assert requests.post(url, data=body, timeout=5).status_code == 401
        stale = signed(body, now - STALE, message_id="note_x")
        assert requests.post(url, data=body, headers=stale, timeout=5).status_code == 401
        assert receiver.notes(TICKET) == []

    def test_it_answers_404_for_an_unknown_ticket_or_path(self) -> None:
        import requests

        with GenericSimulator(secret=SECRET, known_tickets={"CASE-1"}) as receiver:
            body = json.dumps(
                {
                    "type": "capture.note",
                    "ticketId": "CASE-2",
                    "sessionId": "s",
                    "status": "resolved",
                    "text": "t",
                    "html": "<p>t</p>",
                    "links": {},
                }
            ).encode()
            headers = signed(body, datetime.now().astimezone(), message_id="note_s")
            url = f"{receiver.url}{NOTES_PATH}"
            assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 404
            assert requests.post(f"{receiver.url}/other", timeout=5).status_code == 404

    def test_scripted_failures_answer_first_with_retry_after(
        self, receiver: GenericSimulator
    ) -> None:
        import requests

        receiver.script("note", 429, retry_after=RETRY_AFTER_SECONDS)
        receiver.script("note", 500)
        url = f"{receiver.url}{NOTES_PATH}"
        limited = requests.post(url, data=b"{}", timeout=5)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert requests.post(url, data=b"{}", timeout=5).status_code == 500
        assert requests.post(url, data=b"{}", timeout=5).status_code == 401

    def test_it_serves_the_demo_with_its_own_defaults(self) -> None:
        receiver = GenericSimulator()
        body = receiver.webhook_body(
            receiver.ticket_id(7),
            user_id="",
            email="qa@example.com",
            tags="qa",
            fields={"lambdatest_session_id": "abc"},
        )
        assert json.loads(body) == {
            "ticketId": "CASE-7",
            "userId": "",
            "userEmail": "qa@example.com",
            "tags": "qa",
            "lambdatestSessionId": "abc",
        }
        assert receiver.secret.startswith("whsec_")


def test_probe_says_the_receiver_is_configured_but_not_called(
    receiver: GenericSimulator,
) -> None:
    settings = settings_from(
        {
            "TABLE_NAME": "t",
            "GENERIC_WEBHOOK_SECRET": SECRET,
            "GENERIC_NOTE_URL": f"{receiver.url}{NOTES_PATH}",
        }
    )
    check = helpdesk_spec("generic").probe(settings, HttpClient())
    assert check == probe(settings, HttpClient())
    assert check.access is Access.NOT_CALLED
    assert receiver.requests() == []


def run_sign_event(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "local_runner", "sign-event", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestEventFile:
    def test_the_stored_event_is_stale_until_signed_again(self, tool: Tool) -> None:
        event = load_event("webhook_generic")
        answer = receive_event(event, runtime_factory=lambda: tool.runtime, clock=tool.clock)
        assert answer.status == 401

    def test_sign_event_gives_an_event_the_handler_accepts(self, tool: Tool) -> None:
        # Given the events file signed afresh by the command line, with the bridge's secret
        result = run_sign_event(
            str(EVENTS / "webhook_generic.json"),
            "--helpdesk",
            "generic",
            env={"GENERIC_WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0, result.stderr
        event = json.loads(result.stdout)
        # Then it keeps its message id, and the webhook accepts it now
        assert (
            event["headers"]["webhook-id"] == load_event("webhook_generic")["headers"]["webhook-id"]
        )
        tool.clock.now = datetime.now().astimezone()
        answer = receive_event(event, runtime_factory=lambda: tool.runtime, clock=tool.clock)
        assert answer.status == 202, answer.body
        assert len(tool.bugpilot.requests("action")) == 1

    def test_sign_event_without_the_secret_names_it(self) -> None:
        result = run_sign_event(
            str(EVENTS / "webhook_generic.json"),
            "--env-file",
            "/nonexistent/.env",
            env={"PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 2
        assert "GENERIC_WEBHOOK_SECRET" in result.stderr
