"""Zendesk's internal notes over real HTTP, against its simulator."""

from __future__ import annotations

import pytest

from capture_bridge.helpdesks import NoteOutcome
from capture_bridge.helpdesks.zendesk import ZendeskSettings
from capture_bridge.notes import Note, html_lines
from local_runner.simulators import ZendeskSimulator
from tests.unit.test_zendesk_adapter import X_NOTE, adapter_for, make_settings, text_note


class TestNotes:
    def test_posts_a_private_comment_as_html_with_basic_token_auth(
        self, zendesk: ZendeskSimulator
    ) -> None:
        # when a note is posted
        result = adapter_for(zendesk).post_note("1001", text_note("hello agents"))
        # then it is one private comment, sent as `html_body` (never `body`, where Zendesk would
        # render Markdown), whose text Zendesk shows as the note's text
        assert result.outcome is NoteOutcome.POSTED
        [comment] = zendesk.comments("1001")
        assert comment["body"] == "hello agents"
        assert comment["public"] is False
        [update] = zendesk.requests("update")
        assert update.method == "PUT"
        assert update.route == "/api/v2/tickets/1001.json"
        assert update.json() == {
            "ticket": {"comment": {"html_body": "<p>hello agents</p>", "public": False}}
        }

    def test_markdown_and_html_in_a_payload_stay_text_in_the_posted_note(
        self, zendesk: ZendeskSimulator
    ) -> None:
        # given a note whose lines carry a payload's would-be markup, and the session's own link
        report = "https://dash.bugpilot.io/report/abc"
        lines = ("Said: [click](javascript:alert(1)) <script>x</script>", f"Report: {report}")
        note = Note("\n".join(lines), html_lines(lines, [report]), lines, {"report": report})
        # when it is posted
        adapter_for(zendesk).post_note("1001", note)
        # then what Zendesk received renders no markup of the payload's, and the link is a link
        [update] = zendesk.requests("update")
        sent = update.json()["ticket"]["comment"]
        assert "body" not in sent
        assert "<script>" not in sent["html_body"]
        assert "&lt;script&gt;" in sent["html_body"]
        assert f'<a href="{report}">' in sent["html_body"]
        assert '<a href="javascript' not in sent["html_body"]

    def test_rate_limit_is_retryable_with_retry_after(self, zendesk: ZendeskSimulator) -> None:
        zendesk.script("update", 429, retry_after=17)
        result = adapter_for(zendesk).post_note("1001", X_NOTE)
        assert (result.outcome, result.retry_after_seconds) == (NoteOutcome.RETRYABLE, 17)
        assert zendesk.comments("1001") == []

    @pytest.mark.parametrize("status", [500, 503])
    def test_server_errors_are_retryable(self, zendesk: ZendeskSimulator, status: int) -> None:
        zendesk.script("update", status)
        assert adapter_for(zendesk).post_note("1001", X_NOTE).outcome is NoteOutcome.RETRYABLE

    def test_timeouts_are_retryable(self, zendesk: ZendeskSimulator) -> None:
        zendesk.script("update", 200, delay=1.5)
        assert adapter_for(zendesk).post_note("1001", X_NOTE).outcome is NoteOutcome.RETRYABLE

    def test_wrong_credentials_are_rejected(self, zendesk: ZendeskSimulator) -> None:
        adapter = adapter_for(zendesk, ZENDESK_API_TOKEN="wrong")
        result = adapter.post_note("1001", X_NOTE)
        assert result.outcome is NoteOutcome.REJECTED
        assert "401" in result.message

    def test_missing_ticket_is_rejected(self) -> None:
        with ZendeskSimulator(api_token="zd-test-token", known_tickets={"1"}) as zendesk:
            assert adapter_for(zendesk).post_note("2", X_NOTE).outcome is NoteOutcome.REJECTED

    def test_unconfigured_credentials_are_rejected_without_a_call(self) -> None:
        result = adapter_for().post_note("1001", X_NOTE)
        assert result.outcome is NoteOutcome.REJECTED
        assert "ZENDESK_EMAIL" in result.message

    def test_subdomain_gives_the_zendesk_url(self) -> None:
        settings = ZendeskSettings.from_settings(make_settings(ZENDESK_SUBDOMAIN="acme"))
        assert settings.base_url == "https://acme.zendesk.com"
        overridden = make_settings(
            ZENDESK_SUBDOMAIN="acme", ZENDESK_API_URL="https://help.acme.test/"
        )
        assert ZendeskSettings.from_settings(overridden).base_url == "https://help.acme.test"

    def test_has_note_finds_the_marker(self, zendesk: ZendeskSimulator) -> None:
        adapter = adapter_for(zendesk)
        assert adapter.has_note("1001", "marker-1") is False
        adapter.post_note("1001", text_note("text\nmarker-1"))
        assert adapter.has_note("1001", "marker-1") is True
        assert zendesk.requests("comments")[-1].query.get("sort_order") == "desc"

    def test_has_note_is_unknown_when_zendesk_fails(self, zendesk: ZendeskSimulator) -> None:
        zendesk.script("comments", 500)
        assert adapter_for(zendesk).has_note("1001", "m") is None
        assert adapter_for().has_note("1001", "m") is None

    def test_has_note_is_unknown_on_timeouts_and_odd_answers(
        self, zendesk: ZendeskSimulator
    ) -> None:
        zendesk.script("comments", 200, delay=1.5)
        assert adapter_for(zendesk).has_note("1001", "m") is None
