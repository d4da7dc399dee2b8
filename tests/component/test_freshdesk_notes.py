"""Freshdesk's private notes, look-ups and probe over real HTTP, against its simulator."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from capture_bridge.access import Access
from capture_bridge.helpdesks import (
    NoteOutcome,
)
from capture_bridge.helpdesks.freshdesk import (
    CONVERSATION_PAGE_SIZE,
    MAX_CONVERSATION_PAGES,
    probe,
)
from capture_bridge.http import HttpClient
from local_runner.simulators import FreshdeskSimulator
from local_runner.simulators._server import Reply
from tests.unit.test_freshdesk_adapter import (
    API_KEY,
    HTTP_BAD_REQUEST,
    HTTP_CREATED,
    HTTP_NOT_FOUND,
    HTTP_TOO_MANY,
    HTTP_UNAUTHORIZED,
    RETRY_AFTER,
    SECRET,
    SLOW_ANSWER_SECONDS,
    TICKET,
    X_NOTE,
    OddAnswers,
    adapter_for,
    make_settings,
    rule_body,
    text_note,
)


@pytest.fixture
def desk() -> Iterator[FreshdeskSimulator]:
    with FreshdeskSimulator(api_key=API_KEY, webhook_secret=SECRET) as simulator:
        yield simulator


class TestNotes:
    def test_posts_a_private_html_note_with_the_api_key_as_basic_user(
        self, desk: FreshdeskSimulator
    ) -> None:
        # When a note is posted
        result = adapter_for(desk).post_note(TICKET, text_note("hello agents"))
        # Then it is one private note, its body the note's HTML, as Freshdesk's API takes it
        assert (result.outcome, result.status) == (NoteOutcome.POSTED, HTTP_CREATED)
        [post] = desk.requests("note")
        assert post.route == "/api/v2/tickets/1001/notes"
        assert post.json() == {"body": "<p>hello agents</p>", "private": True}
        expected = base64.b64encode(f"{API_KEY}:X".encode()).decode()
        assert post.headers["authorization"] == f"Basic {expected}"
        assert desk.internal_notes(TICKET) == ["<p>hello agents</p>"]
        [note] = desk.notes(TICKET)
        assert note["body_text"] == "hello agents"

    def test_payload_markup_stays_text_and_the_report_is_a_link(
        self, desk: FreshdeskSimulator
    ) -> None:
        # Given a note whose lines carry a payload's would-be markup, and the session's own link
        report = "https://dash.bugpilot.io/report/abc"
        note = text_note(
            'Said: <script>alert(1)</script> "><img src=x onerror=alert(1)>',
            "[x](javascript:alert(1))",
            f"Report: {report}",
            links=(report,),
        )
        # When it is posted
        adapter_for(desk).post_note(TICKET, note)
        # Then Freshdesk received no markup of the payload's; only the report is an anchor
        [post] = desk.requests("note")
        sent = post.json()["body"]
        assert "<script>" not in sent and "<img" not in sent
        assert "&lt;script&gt;" in sent and "&lt;img src=x onerror=alert(1)&gt;" in sent
        assert sent.count("<a ") == 1
        assert f'<a href="{report}">' in sent

    def test_rate_limit_is_retryable_with_retry_after(self, desk: FreshdeskSimulator) -> None:
        desk.script("note", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        result = adapter_for(desk).post_note(TICKET, X_NOTE)
        assert (result.outcome, result.retry_after_seconds, result.status) == (
            NoteOutcome.RETRYABLE,
            RETRY_AFTER,
            HTTP_TOO_MANY,
        )
        assert desk.notes(TICKET) == []

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_errors_are_retryable(self, desk: FreshdeskSimulator, status: int) -> None:
        desk.script("note", status)
        assert adapter_for(desk).post_note(TICKET, X_NOTE).outcome is NoteOutcome.RETRYABLE

    def test_timeouts_are_retryable(self, desk: FreshdeskSimulator) -> None:
        desk.script("note", 200, delay=SLOW_ANSWER_SECONDS)
        assert adapter_for(desk).post_note(TICKET, X_NOTE).outcome is NoteOutcome.RETRYABLE

    def test_a_wrong_api_key_is_rejected(self, desk: FreshdeskSimulator) -> None:
        result = adapter_for(desk, FRESHDESK_API_KEY="wrong").post_note(TICKET, X_NOTE)
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, HTTP_UNAUTHORIZED)
        assert desk.notes(TICKET) == []

    def test_a_missing_ticket_is_rejected(self) -> None:
        with FreshdeskSimulator(api_key=API_KEY, known_tickets={"1"}) as desk:
            result = adapter_for(desk).post_note("2", X_NOTE)
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, HTTP_NOT_FOUND)

    def test_unconfigured_credentials_are_rejected_without_a_call(self) -> None:
        result = adapter_for().post_note(TICKET, X_NOTE)
        assert result.outcome is NoteOutcome.REJECTED
        assert "FRESHDESK_API_KEY" in result.message


class TestHasNote:
    def test_finds_the_marker_once_the_note_is_there(self, desk: FreshdeskSimulator) -> None:
        adapter = adapter_for(desk)
        assert adapter.has_note(TICKET, "Capture session: s-1") is False
        adapter.post_note(TICKET, text_note("text", "Capture session: s-1"))
        assert adapter.has_note(TICKET, "Capture session: s-1") is True
        assert adapter.has_note(TICKET, "Capture session: s-2") is False
        assert desk.requests("conversations")[-1].query == {
            "page": "1",
            "per_page": str(CONVERSATION_PAGE_SIZE),
        }

    def test_reads_on_to_the_newest_page(self, desk: FreshdeskSimulator) -> None:
        # Given a ticket whose conversations fill a page before our note arrives
        for number in range(CONVERSATION_PAGE_SIZE):
            desk.add_conversation(TICKET, f"reply {number}")
        adapter = adapter_for(desk)
        adapter.post_note(TICKET, text_note("Capture session: s-1"))
        # Then the note is found on the second page
        assert adapter.has_note(TICKET, "Capture session: s-1") is True
        assert [read.query["page"] for read in desk.requests("conversations")] == ["1", "2"]

    def test_a_full_last_page_is_read_past_to_learn_it_is_the_last(
        self, desk: FreshdeskSimulator
    ) -> None:
        for number in range(CONVERSATION_PAGE_SIZE):
            desk.add_conversation(TICKET, f"reply {number}")
        assert adapter_for(desk).has_note(TICKET, "Capture session: s-1") is False
        assert len(desk.requests("conversations")) == 2

    def test_more_conversations_than_it_reads_is_unknown(self, desk: FreshdeskSimulator) -> None:
        # Given more conversations than the pages it may read, none with the marker
        for number in range(MAX_CONVERSATION_PAGES * CONVERSATION_PAGE_SIZE + 1):
            desk.add_conversation(TICKET, f"reply {number}")
        # Then whether the note is there is unknown: it is never posted on a guess
        assert adapter_for(desk).has_note(TICKET, "Capture session: s-1") is None
        assert len(desk.requests("conversations")) == MAX_CONVERSATION_PAGES

    def test_a_marker_in_a_public_reply_counts_too(self, desk: FreshdeskSimulator) -> None:
        # An agent who pasted the note in a reply: posting it again would be the duplicate
        desk.add_conversation(TICKET, "FYI Capture session: s-1", private=False)
        assert adapter_for(desk).has_note(TICKET, "Capture session: s-1") is True

    @pytest.mark.parametrize("status", [401, 404, 429, 500])
    def test_an_error_answer_is_unknown(self, desk: FreshdeskSimulator, status: int) -> None:
        desk.script("conversations", status)
        assert adapter_for(desk).has_note(TICKET, "m") is None

    def test_a_timeout_is_unknown(self, desk: FreshdeskSimulator) -> None:
        desk.script("conversations", 200, delay=SLOW_ANSWER_SECONDS)
        assert adapter_for(desk).has_note(TICKET, "m") is None

    def test_a_failure_on_a_later_page_is_unknown(self, desk: FreshdeskSimulator) -> None:
        for number in range(CONVERSATION_PAGE_SIZE):
            desk.add_conversation(TICKET, f"reply {number}")
        adapter = adapter_for(desk)
        adapter.has_note(TICKET, "warm-up")  # both pages answered normally
        desk.script("conversations", 200)  # page 1 normal ...
        desk.script("conversations", 503)  # ... page 2 failing
        assert adapter.has_note(TICKET, "m") is None

    @pytest.mark.parametrize("body", [{"conversations": []}, None, "x"])
    def test_an_answer_that_is_not_a_list_is_unknown(self, body: Any) -> None:
        with OddAnswers(Reply(200, body)) as server:
            adapter = adapter_for(FRESHDESK_API_URL=server.url, FRESHDESK_API_KEY=API_KEY)
            assert adapter.has_note(TICKET, "m") is None

    def test_unconfigured_credentials_are_unknown(self) -> None:
        assert adapter_for().has_note(TICKET, "m") is None


class TestProbe:
    def test_names_the_agent_the_key_belongs_to(self, desk: FreshdeskSimulator) -> None:
        check = probe(make_settings(**desk.bridge_settings()), HttpClient())
        assert check.access is Access.OK
        assert "bridge-agent@example.com" in check.detail
        [call] = desk.requests("me")
        assert call.route == "/api/v2/agents/me"

    def test_a_wrong_key_is_rejected(self, desk: FreshdeskSimulator) -> None:
        values = desk.bridge_settings() | {"FRESHDESK_API_KEY": "wrong"}
        assert probe(make_settings(**values), HttpClient()).access is Access.REJECTED

    def test_rate_limiting_is_reported_as_such(self, desk: FreshdeskSimulator) -> None:
        desk.script("me", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        check = probe(make_settings(**desk.bridge_settings()), HttpClient())
        assert check.access is Access.RATE_LIMITED

    def test_an_answer_without_an_agent_is_rejected(self) -> None:
        with OddAnswers(Reply(200, {"message": "not an agent"})) as server:
            values = {"FRESHDESK_API_URL": server.url, "FRESHDESK_API_KEY": API_KEY}
            check = probe(make_settings(**values), HttpClient())
        assert check.access is Access.REJECTED
        assert "agent" in check.detail

    def test_unconfigured_names_what_is_missing_without_a_call(self) -> None:
        check = probe(make_settings(FRESHDESK_WEBHOOK_SECRET=""), HttpClient())
        assert check.access is Access.NOT_CONFIGURED
        assert "FRESHDESK_DOMAIN" in check.detail and "FRESHDESK_API_KEY" in check.detail


class TestSimulator:
    def call(
        self, desk: FreshdeskSimulator, method: str, path: str, **request: Any
    ) -> tuple[int, Any, dict[str, str]]:
        answer = HttpClient().request(method, f"{desk.url}{path}", timeout=(1.0, 2.0), **request)
        return answer.status, answer.json(), dict(answer.headers)

    def test_refuses_calls_without_the_api_key(self, desk: FreshdeskSimulator) -> None:
        for auth in (None, ("wrong", "X"), (SECRET, API_KEY)):
            status, body, _ = self.call(
                desk, "POST", "/api/v2/tickets/1/notes", json_body={"body": "x"}, auth=auth
            )
            assert (status, body["code"]) == (HTTP_UNAUTHORIZED, "invalid_credentials")
        assert desk.notes("1") == []

    def test_any_password_goes_with_the_api_key(self, desk: FreshdeskSimulator) -> None:
        status, body, _ = self.call(
            desk, "POST", "/api/v2/tickets/1/notes", json_body={"body": "x"}, auth=(API_KEY, "y")
        )
        assert status == HTTP_CREATED
        assert body["private"] is True  # Freshdesk's default

    def test_unknown_tickets_are_404(self) -> None:
        with FreshdeskSimulator(api_key=API_KEY, known_tickets={"7"}) as desk:
            auth = (API_KEY, "X")
            status, _, _ = self.call(desk, "GET", "/api/v2/tickets/8/conversations", auth=auth)
            assert status == HTTP_NOT_FOUND
            status, _, _ = self.call(desk, "GET", "/api/v2/tickets/7/conversations", auth=auth)
            assert status == 200

    def test_a_scripted_429_carries_retry_after_and_rate_headers(
        self, desk: FreshdeskSimulator
    ) -> None:
        desk.script("note", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        status, _, headers = self.call(
            desk, "POST", "/api/v2/tickets/1/notes", json_body={"body": "x"}, auth=(API_KEY, "X")
        )
        assert status == HTTP_TOO_MANY
        assert headers["Retry-After"] == str(RETRY_AFTER)
        assert headers["X-Ratelimit-Remaining"] == "0"
        assert "X-Ratelimit-Total" in headers

    def test_lists_conversations_a_page_at_a_time_with_a_next_link(
        self, desk: FreshdeskSimulator
    ) -> None:
        for number in range(3):
            desk.add_conversation("1", f"reply {number}")
        auth = (API_KEY, "X")
        path = "/api/v2/tickets/1/conversations"
        status, first, headers = self.call(desk, "GET", f"{path}?page=1&per_page=2", auth=auth)
        assert status == 200
        assert [item["body_text"] for item in first] == ["reply 0", "reply 1"]
        assert 'rel="next"' in headers["link"]
        _, last, headers = self.call(desk, "GET", f"{path}?page=2&per_page=2", auth=auth)
        assert [item["body_text"] for item in last] == ["reply 2"]
        assert "link" not in headers
        status, _, _ = self.call(desk, "GET", f"{path}?per_page=101", auth=auth)
        assert status == HTTP_BAD_REQUEST

    def test_refuses_a_blank_note(self, desk: FreshdeskSimulator) -> None:
        status, body, _ = self.call(
            desk, "POST", "/api/v2/tickets/1/notes", json_body={"body": " "}, auth=(API_KEY, "X")
        )
        assert status == HTTP_BAD_REQUEST
        assert body["errors"][0]["field"] == "body"

    def test_public_notes_are_not_internal(self, desk: FreshdeskSimulator) -> None:
        desk.add_conversation("1", "a reply")
        desk.add_conversation("1", "agents only", private=True)
        assert desk.internal_notes("1") == ["<div>agents only</div>"]

    def test_the_rule_body_it_makes_is_the_readme_body(self) -> None:
        made = FreshdeskSimulator().webhook_body(
            TICKET,
            user_id="user-42",
            email="ada@example.com",
            tags="bugpilot_session vip",
            fields={},
        )
        assert json.loads(made) == json.loads(rule_body())
