"""Intercom's admin notes, marker checks, contact look-ups and probe over real HTTP, against its
simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from capture_bridge.access import Access
from capture_bridge.helpdesks import LookupOutcome, NoteOutcome
from capture_bridge.helpdesks.intercom import IntercomAdapter, IntercomSettings, probe
from capture_bridge.http import HttpClient
from capture_bridge.settings import settings_from
from local_runner.simulators import IntercomSimulator
from local_runner.simulators.intercom import ADMIN_ID
from tests.unit.test_intercom_adapter import CONVERSATION, TOKEN, text_note

SHORT_TIMEOUT = (1.0, 0.5)
SLOW_ANSWER_SECONDS = 1.5
RESET_SECONDS = 30
HTTP_OK = 200
HTTP_TOO_MANY = 429


@pytest.fixture
def desk() -> Iterator[IntercomSimulator]:
    with IntercomSimulator(access_token=TOKEN) as simulator:
        yield simulator


def adapter_for(desk: IntercomSimulator, **values: str) -> IntercomAdapter:
    settings = settings_from({"TABLE_NAME": "t", **desk.bridge_settings(), **values})
    return IntercomAdapter(
        IntercomSettings.from_settings(settings),
        HttpClient(),
        timeout=SHORT_TIMEOUT,
        lookup_timeout=SHORT_TIMEOUT,
    )


class TestNotes:
    def test_a_note_is_an_admin_note_part_agents_see(self, desk: IntercomSimulator) -> None:
        # when a note is posted
        result = adapter_for(desk).post_note(CONVERSATION, text_note("hello agents"))
        # then the conversation has one note part by the configured admin, in HTML
        assert (result.outcome, result.status) == (NoteOutcome.POSTED, HTTP_OK)
        [post] = desk.requests("reply")
        assert post.route == "/conversations/1001/reply"
        assert post.headers["intercom-version"] == "2.11"
        assert post.json()["message_type"] == "note"
        assert desk.internal_notes(CONVERSATION) == ["<p>hello agents</p>"]
        [part] = desk.parts(CONVERSATION)
        assert (part["part_type"], part["author"]["id"]) == ("note", ADMIN_ID)

    def test_payload_markup_stays_text_and_the_report_is_a_link(
        self, desk: IntercomSimulator
    ) -> None:
        report = "https://dash.bugpilot.io/report/abc"
        note = text_note(
            'Said: <script>alert(1)</script> "><img src=x onerror=alert(1)>',
            f"Report: {report}",
            links=(report,),
        )
        adapter_for(desk).post_note(CONVERSATION, note)
        [sent] = desk.internal_notes(CONVERSATION)
        assert "<script" not in sent and "<img" not in sent
        assert "&lt;script&gt;" in sent
        assert sent.count("<a ") == 1 and f'<a href="{report}">' in sent

    def test_a_rate_limited_note_says_how_long_until_the_window_refills(
        self, desk: IntercomSimulator
    ) -> None:
        # given Intercom's 429 with only X-RateLimit-Reset (a moment, in epoch seconds)
        desk.script("reply", HTTP_TOO_MANY, rate_limit_reset=RESET_SECONDS)
        # when a note is posted
        result = adapter_for(desk).post_note(CONVERSATION, text_note("x"))
        # then it is retried after the reset, counted from now
        assert (result.outcome, result.status) == (NoteOutcome.RETRYABLE, HTTP_TOO_MANY)
        assert result.retry_after_seconds is not None
        assert RESET_SECONDS - 2 <= result.retry_after_seconds <= RESET_SECONDS
        assert desk.internal_notes(CONVERSATION) == []

    def test_retry_after_wins_when_intercom_sends_it(self, desk: IntercomSimulator) -> None:
        desk.script("reply", HTTP_TOO_MANY, retry_after=7, rate_limit_reset=RESET_SECONDS)
        result = adapter_for(desk).post_note(CONVERSATION, text_note("x"))
        assert result.retry_after_seconds == 7

    def test_a_wrong_token_or_admin_is_rejected(self, desk: IntercomSimulator) -> None:
        wrong_token = adapter_for(desk, INTERCOM_ACCESS_TOKEN="nope")
        assert wrong_token.post_note(CONVERSATION, text_note("x")).outcome is NoteOutcome.REJECTED
        wrong_admin = adapter_for(desk, INTERCOM_ADMIN_ID="1")
        assert wrong_admin.post_note(CONVERSATION, text_note("x")).outcome is NoteOutcome.REJECTED
        assert desk.internal_notes(CONVERSATION) == []

    def test_a_slow_answer_is_retryable(self, desk: IntercomSimulator) -> None:
        desk.script("reply", 200, delay=SLOW_ANSWER_SECONDS)
        result = adapter_for(desk).post_note(CONVERSATION, text_note("x"))
        assert result.outcome is NoteOutcome.RETRYABLE


class TestHasNote:
    def test_finds_its_marker_among_the_parts_and_nothing_else(
        self, desk: IntercomSimulator
    ) -> None:
        adapter = adapter_for(desk)
        desk.add_part(CONVERSATION, "a reply", part_type="comment")
        assert adapter.has_note(CONVERSATION, "Capture session: s-1") is False
        adapter.post_note(CONVERSATION, text_note("Capture session: s-1"))
        assert adapter.has_note(CONVERSATION, "Capture session: s-1") is True
        assert adapter.has_note(CONVERSATION, "Capture session: s-2") is False
        [read] = desk.requests("conversation")[:1]
        assert read.route == "/conversations/1001"

    def test_unknown_while_intercom_fails(self, desk: IntercomSimulator) -> None:
        desk.script("conversation", 500)
        assert adapter_for(desk).has_note(CONVERSATION, "Capture session: s-1") is None


class TestFindRequester:
    def test_reads_the_contacts_external_id_else_email(self, desk: IntercomSimulator) -> None:
        with_id = desk.add_contact(email="ada@example.com", external_id="user-42")
        email_only = desk.add_contact(email="grace@example.com")
        adapter = adapter_for(desk)
        assert adapter.find_requester(with_id["id"]).user == "user-42"
        assert adapter.find_requester(email_only["id"]).user == "grace@example.com"
        [first, _] = desk.requests("contact")
        assert first.headers["authorization"] == f"Bearer {TOKEN}"
        assert first.headers["intercom-version"] == "2.11"

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (404, LookupOutcome.NOT_FOUND),
            (401, LookupOutcome.REJECTED),
            (429, LookupOutcome.RETRYABLE),
            (503, LookupOutcome.RETRYABLE),
        ],
    )
    def test_failures_map_to_outcomes(
        self, desk: IntercomSimulator, status: int, outcome: LookupOutcome
    ) -> None:
        contact = desk.add_contact(email="ada@example.com")
        desk.script("contact", status)
        assert adapter_for(desk).find_requester(contact["id"]).outcome is outcome

    def test_an_unknown_contact_is_not_found(self, desk: IntercomSimulator) -> None:
        lookup = adapter_for(desk).find_requester("0123456789abcdef01234567")
        assert lookup.outcome is LookupOutcome.NOT_FOUND


class TestProbe:
    def test_names_the_tokens_admin(self, desk: IntercomSimulator) -> None:
        settings = settings_from({"TABLE_NAME": "t", **desk.bridge_settings()})
        check = probe(settings, HttpClient())
        assert check.access is Access.OK, check
        assert ADMIN_ID in check.detail

    def test_a_refused_token_is_rejected(self, desk: IntercomSimulator) -> None:
        values = {**desk.bridge_settings(), "INTERCOM_ACCESS_TOKEN": "nope"}
        check = probe(settings_from({"TABLE_NAME": "t", **values}), HttpClient())
        assert check.access is Access.REJECTED

    def test_unset_keys_are_named(self) -> None:
        check = probe(settings_from({"TABLE_NAME": "t"}), HttpClient())
        assert "INTERCOM_ACCESS_TOKEN" in check.detail
