"""Front's internal comments, contact look-ups and probe over real HTTP, against its simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from capture_bridge.access import Access
from capture_bridge.helpdesks import LookupOutcome, NoteOutcome
from capture_bridge.helpdesks.front import FrontAdapter, FrontSettings, probe
from capture_bridge.http import HttpClient
from capture_bridge.notes import Note, html_lines
from local_runner.simulators import FrontSimulator
from local_runner.simulators._server import JsonHttpServer, RecordedRequest, Reply
from tests.unit.test_front_adapter import API_TOKEN, SECRET, make_settings

CONVERSATION = "cnv_1001"
RETRY_AFTER = 17
SHORT_TIMEOUT = (1.0, 0.5)
SLOW_ANSWER_SECONDS = 1.5
HTTP_CREATED = 201
HTTP_NOT_FOUND = 404
HTTP_UNAUTHORIZED = 401
HTTP_TOO_MANY = 429


def adapter_for(url: str, **values: str) -> FrontAdapter:
    settings = FrontSettings.from_settings(make_settings(FRONT_API_URL=url, **values))
    return FrontAdapter(settings, HttpClient(), timeout=SHORT_TIMEOUT, lookup_timeout=SHORT_TIMEOUT)


def text_note(*lines: str, links: tuple[str, ...] = ()) -> Note:
    named = {f"link{number}": url for number, url in enumerate(links)}
    return Note("\n".join(lines), html_lines(lines, links), lines, named)


X_NOTE = text_note("x", "Capture session: s1")


class OddAnswers(JsonHttpServer):
    """Answers every call with one fixed reply, for answers the simulator never gives."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply

    def handle(self, request: RecordedRequest) -> Reply:
        return self.reply


@pytest.fixture
def front() -> Iterator[FrontSimulator]:
    with FrontSimulator(api_token=API_TOKEN, app_secret=SECRET) as simulator:
        yield simulator


class TestNotes:
    def test_posts_one_markdown_comment_with_the_bearer_token(self, front: FrontSimulator) -> None:
        # given a note of two lines
        # when it is posted
        result = adapter_for(front.url).post_note(CONVERSATION, X_NOTE)
        # then Front has one comment, sent with the API token as Bearer
        assert (result.outcome, result.status) == (NoteOutcome.POSTED, HTTP_CREATED)
        [call] = front.requests("comment")
        assert call.headers["authorization"] == f"Bearer {API_TOKEN}"
        assert call.json() == {"body": "x\n\nCapture session: s1"}
        assert front.internal_notes(CONVERSATION) == ["x\n\nCapture session: s1"]

    def test_payload_markup_stays_text_and_the_report_is_a_link(
        self, front: FrontSimulator
    ) -> None:
        report = "https://dash.bugpilot.io/report/r1"
        note = text_note(
            "Checkout [x](javascript:alert(1)) <script>alert(1)</script>",
            f"The capture is ready: {report}",
            links=(report,),
        )
        adapter_for(front.url).post_note(CONVERSATION, note)
        [body] = front.internal_notes(CONVERSATION)
        assert "\\[x\\](javascript:alert(1))" in body
        assert "\\<script\\>alert(1)\\</script\\>" in body
        assert "<script>" not in body and "[x](" not in body
        assert f"The capture is ready: {report}" in body

    def test_rate_limit_is_retryable_after_retry_after(self, front: FrontSimulator) -> None:
        front.script("comment", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        result = adapter_for(front.url).post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.retry_after_seconds) == (NoteOutcome.RETRYABLE, RETRY_AFTER)
        assert front.internal_notes(CONVERSATION) == []

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_errors_are_retryable(self, front: FrontSimulator, status: int) -> None:
        front.script("comment", status)
        assert adapter_for(front.url).post_note(CONVERSATION, X_NOTE).outcome is (
            NoteOutcome.RETRYABLE
        )

    def test_timeouts_are_retryable(self, front: FrontSimulator) -> None:
        front.script("comment", 200, delay=SLOW_ANSWER_SECONDS)
        assert adapter_for(front.url).post_note(CONVERSATION, X_NOTE).outcome is (
            NoteOutcome.RETRYABLE
        )

    def test_a_wrong_token_is_rejected(self, front: FrontSimulator) -> None:
        result = adapter_for(front.url, FRONT_API_TOKEN="wrong").post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, HTTP_UNAUTHORIZED)

    def test_a_missing_conversation_is_rejected(self) -> None:
        with FrontSimulator(api_token=API_TOKEN, known_conversations={"cnv_1"}) as front:
            result = adapter_for(front.url).post_note("cnv_2", X_NOTE)
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, HTTP_NOT_FOUND)

    def test_without_a_token_it_is_rejected_without_a_call(self, front: FrontSimulator) -> None:
        result = adapter_for(front.url, FRONT_API_TOKEN="").post_note(CONVERSATION, X_NOTE)
        assert result.outcome is NoteOutcome.REJECTED and "FRONT_API_TOKEN" in result.message
        assert front.requests() == []


class TestEarlierNote:
    def test_finds_the_marker_once_the_note_is_there(self, front: FrontSimulator) -> None:
        adapter = adapter_for(front.url)
        assert adapter.has_note(CONVERSATION, "Capture session: s1") is False
        adapter.post_note(CONVERSATION, X_NOTE)
        assert adapter.has_note(CONVERSATION, "Capture session: s1") is True

    def test_reads_on_to_the_next_page(self, front: FrontSimulator) -> None:
        # given our note, then more than a page of teammates' comments after it
        adapter_for(front.url).post_note(CONVERSATION, X_NOTE)
        for number in range(60):
            front.add_comment(CONVERSATION, f"comment {number}")
        # then the look follows Front's next link to it
        assert adapter_for(front.url).has_note(CONVERSATION, "Capture session: s1") is True
        assert len(front.requests("comments")) == 2

    def test_more_comments_than_it_reads_is_unknown(self, front: FrontSimulator) -> None:
        for number in range(120):
            front.add_comment(CONVERSATION, f"comment {number}")
        assert adapter_for(front.url).has_note(CONVERSATION, "Capture session: s1") is None

    @pytest.mark.parametrize("status", [401, 404, 429, 500])
    def test_an_error_answer_is_unknown(self, front: FrontSimulator, status: int) -> None:
        front.script("comments", status)
        assert adapter_for(front.url).has_note(CONVERSATION, "Capture session: s1") is None

    def test_a_timeout_is_unknown(self, front: FrontSimulator) -> None:
        front.script("comments", 200, delay=SLOW_ANSWER_SECONDS)
        assert adapter_for(front.url).has_note(CONVERSATION, "Capture session: s1") is None

    @pytest.mark.parametrize(
        "body",
        [
            [],
            {"_results": "x"},
            {"_results": [], "_pagination": {"next": "https://attacker.example/next"}},
        ],
        ids=["a-list", "no-results", "next-page-elsewhere"],
    )
    def test_an_answer_it_cannot_follow_is_unknown(self, body: Any) -> None:
        with OddAnswers(Reply(200, body)) as odd:
            assert adapter_for(odd.url).has_note(CONVERSATION, "Capture session: s1") is None
            assert len(odd.requests()) == 1


class TestRequester:
    def test_the_contacts_first_email_handle_is_the_requester(self, front: FrontSimulator) -> None:
        front.add_contact(
            "crd_ada1",
            ("phone", "+15555550123"),
            ("email", "ada@example.com"),
            ("email", "ada.l@example.com"),
        )
        found = adapter_for(front.url).find_requester(f"{front.url}/contacts/crd_ada1")
        assert (found.outcome, found.user) == (LookupOutcome.FOUND, "ada@example.com")
        [call] = front.requests("contact")
        assert call.headers["authorization"] == f"Bearer {API_TOKEN}"

    def test_a_contact_without_an_email_is_not_found(self, front: FrontSimulator) -> None:
        front.add_contact("crd_ada1", ("phone", "+15555550123"))
        found = adapter_for(front.url).find_requester(f"{front.url}/contacts/crd_ada1")
        assert found.outcome is LookupOutcome.NOT_FOUND

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (404, LookupOutcome.NOT_FOUND),
            (401, LookupOutcome.REJECTED),
            (403, LookupOutcome.REJECTED),
            (429, LookupOutcome.RETRYABLE),
            (503, LookupOutcome.RETRYABLE),
        ],
    )
    def test_what_a_failed_look_up_means(
        self, front: FrontSimulator, status: int, outcome: LookupOutcome
    ) -> None:
        front.script("contact", status, retry_after=RETRY_AFTER)
        found = adapter_for(front.url).find_requester(f"{front.url}/contacts/crd_ada1")
        assert found.outcome is outcome
        if status == HTTP_TOO_MANY:
            assert found.retry_after_seconds == RETRY_AFTER

    def test_a_link_to_another_port_of_the_same_host_is_not_followed(
        self, front: FrontSimulator
    ) -> None:
        with FrontSimulator(api_token=API_TOKEN) as elsewhere:
            elsewhere.add_contact("crd_ada1", ("email", "ada@example.com"))
            found = adapter_for(front.url).find_requester(f"{elsewhere.url}/contacts/crd_ada1")
            assert found.outcome is LookupOutcome.NOT_FOUND
            assert elsewhere.requests() == []


class TestProbe:
    def test_names_the_company_the_token_belongs_to(self, front: FrontSimulator) -> None:
        check = probe(make_settings(FRONT_API_URL=front.url), HttpClient())
        assert check.access is Access.OK and "cmp_demo1" in check.detail

    def test_a_wrong_token_is_rejected(self, front: FrontSimulator) -> None:
        settings = make_settings(FRONT_API_URL=front.url, FRONT_API_TOKEN="wrong")
        assert probe(settings, HttpClient()).access is Access.REJECTED

    def test_without_a_token_nothing_is_called(self, front: FrontSimulator) -> None:
        check = probe(make_settings(FRONT_API_URL=front.url, FRONT_API_TOKEN=""), HttpClient())
        assert check.access is Access.NOT_CONFIGURED
        assert front.requests() == []


class TestSimulator:
    def test_refuses_calls_without_the_token(self, front: FrontSimulator) -> None:
        answer = HttpClient().request("GET", f"{front.url}/me", timeout=SHORT_TIMEOUT)
        assert answer.status == HTTP_UNAUTHORIZED
        assert json.loads(answer.body)["_error"]["status"] == HTTP_UNAUTHORIZED

    def test_a_scripted_429_carries_retry_after(self, front: FrontSimulator) -> None:
        front.script("comment", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        answer = HttpClient().request(
            "POST",
            f"{front.url}/conversations/{CONVERSATION}/comments",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            json_body={"body": "x"},
            timeout=SHORT_TIMEOUT,
        )
        assert answer.status == HTTP_TOO_MANY
        assert answer.header("Retry-After") == str(RETRY_AFTER)

    def test_the_demo_body_is_a_signed_tag_event_the_adapter_reads(
        self, front: FrontSimulator
    ) -> None:
        body = front.webhook_body(
            "cnv_1003",
            user_id="",
            email="qa@example.com",
            tags="qa",
            fields={"lambdatest_session_id": "bc02fd99593f14e37850745d66197f89"},
        )
        ticket = adapter_for(front.url).parse(body)
        assert ticket.ticket_id == "cnv_1003" and ticket.tags == ()
        assert "sessionID=bc02fd99593f14e37850745d66197f89" in ticket.fields["text"]
