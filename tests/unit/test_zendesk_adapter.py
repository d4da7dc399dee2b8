"""Zendesk adapter: signature scheme, trigger body parsing, internal notes over real HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from capture_bridge.capture import requests_for
from capture_bridge.errors import InvalidRequest, Unauthenticated
from capture_bridge.helpdesks import NoteOutcome, get_adapter
from capture_bridge.helpdesks.zendesk import ZendeskAdapter, ZendeskSettings, sign_webhook
from capture_bridge.http import HttpClient
from capture_bridge.models import CaptureRequest, Delivery
from capture_bridge.notes import Note, html_lines
from capture_bridge.settings import Settings, settings_from
from local_runner.simulators import ZendeskSimulator
from tests.conftest import START, WEBHOOK_SECRET, signed_headers, trigger_body, webhook_request


def make_settings(**values: str) -> Settings:
    base = {"TABLE_NAME": "t", "ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET}
    return settings_from(base | values)


def adapter_for(zendesk: ZendeskSimulator | None = None, **values: str) -> ZendeskAdapter:
    if zendesk is not None:
        values = {
            "ZENDESK_API_URL": zendesk.url,
            "ZENDESK_EMAIL": "agent@example.com",
            "ZENDESK_API_TOKEN": "zd-test-token",
        } | values
    settings = ZendeskSettings.from_settings(make_settings(**values))
    return ZendeskAdapter(settings, HttpClient(), timeout=(1.0, 0.5))


def verify(
    adapter: ZendeskAdapter, headers: dict[str, str], body: bytes, now: datetime
) -> Delivery:
    """`verify` on a POST to /webhooks/zendesk with `headers` and `body`."""
    return adapter.verify(webhook_request(headers, body), now)


def text_note(text: str) -> Note:
    """A note whose text form is `text` (Zendesk posts the text form)."""
    return Note(text, f"<p>{text}</p>")


X_NOTE = text_note("x")


def read(body: bytes, **values: str) -> CaptureRequest:
    """The one capture a body asks for, read as the webhook reads it: adapter, then providers."""
    [request] = requests_for(
        adapter_for(**values).parse(body), make_settings(**values), HttpClient()
    )
    return request


class TestSignature:
    def test_matches_an_independently_computed_vector(self) -> None:
        # Given: the vector computed with `openssl dgst -sha256 -hmac ... -binary | base64`
        expected = "3eVqMCHYw+W1F5J3r60tLLk/srNheuEkeAtNl1MbDAg="
        # When / Then
        assert (
            sign_webhook(WEBHOOK_SECRET, "2026-11-25T12:00:00Z", b'{"ticket_id": "1001"}')
            == expected
        )

    def test_the_attempts_of_one_invocation_are_one_delivery_remembered_a_day(self) -> None:
        # given two attempts of one invocation, each signed at its own time, and another one
        adapter = adapter_for()
        body = trigger_body()
        later = START + timedelta(minutes=20)

        def attempt(at: datetime, invocation: str) -> Delivery:
            headers = signed_headers(body, at) | {"X-Zendesk-Webhook-Invocation-Id": invocation}
            return verify(adapter, headers, body, at)

        first, retry = attempt(START, "8350205582"), attempt(later, "8350205582")
        # then the attempts share a fingerprint, remembered for a day; another invocation differs
        assert first == retry
        assert first.remember_for == timedelta(days=1)
        assert attempt(START, "8350205583").fingerprint != first.fingerprint
        # and an id that is no invocation id is ignored: the signature names the delivery
        odd = attempt(START, "x" * 65)
        assert odd.fingerprint not in (first.fingerprint, attempt(later, "x" * 65).fingerprint)

    def test_valid_signature_returns_a_stable_delivery_fingerprint(self) -> None:
        adapter = adapter_for()
        body = trigger_body()
        headers = signed_headers(body, START)
        first = verify(adapter, headers, body, START)
        assert first == verify(adapter, headers, body, START + timedelta(minutes=4))
        assert first != verify(
            adapter, signed_headers(body, START + timedelta(seconds=1)), body, START
        )

    def test_header_names_are_case_insensitive(self) -> None:
        body = trigger_body()
        headers = {key.title(): value for key, value in signed_headers(body, START).items()}
        verify(adapter_for(), headers, body, START)

    @pytest.mark.parametrize(
        "stamp",
        [
            str(int(START.timestamp())),
            str(int(START.timestamp() * 1000)),
            "2026-11-25T12:00:00.000Z",
            "2026-11-25T12:00:00+00:00",
            "2026-11-25T13:00:00+01:00",
        ],
    )
    def test_timestamp_forms_seen_in_the_wild_are_accepted(self, stamp: str) -> None:
        body = trigger_body()
        headers = {
            "x-zendesk-webhook-signature": sign_webhook(WEBHOOK_SECRET, stamp, body),
            "x-zendesk-webhook-signature-timestamp": stamp,
        }
        verify(adapter_for(), headers, body, START)

    @pytest.mark.parametrize(
        ("mutate", "reason"),
        [
            (lambda h, b: ({}, b), "missing"),
            (
                lambda h, b: (
                    {
                        "x-zendesk-webhook-signature-timestamp": h[
                            "x-zendesk-webhook-signature-timestamp"
                        ]
                    },
                    b,
                ),
                "missing",
            ),
            (lambda h, b: (h | {"x-zendesk-webhook-signature": "AAAA"}, b), "does not match"),
            (lambda h, b: (h, b + b" "), "does not match"),
            (
                lambda h, b: (h | {"x-zendesk-webhook-signature-timestamp": "yesterday"}, b),
                "unreadable",
            ),
            (
                lambda h, b: (
                    h | {"x-zendesk-webhook-signature-timestamp": "99999999999999999999"},
                    b,
                ),
                "unreadable",
            ),
        ],
    )
    def test_forged_requests_are_refused(self, mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
        body = trigger_body()
        headers, sent = mutate(signed_headers(body, START), body)
        with pytest.raises(Unauthenticated, match=reason):
            verify(adapter_for(), headers, sent, START)

    @pytest.mark.parametrize("skew", [timedelta(minutes=5, seconds=1), -timedelta(minutes=6)])
    def test_stale_or_future_timestamps_are_refused(self, skew: timedelta) -> None:
        body = trigger_body()
        with pytest.raises(Unauthenticated, match="too old or in the future"):
            verify(adapter_for(), signed_headers(body, START - skew), body, START)

    def test_without_a_configured_secret_everything_is_refused(self) -> None:
        body = trigger_body()
        adapter = adapter_for(ZENDESK_WEBHOOK_SECRET="")
        with pytest.raises(Unauthenticated, match="not configured"):
            verify(adapter, signed_headers(body, START, secret=""), body, START)

    def test_two_spellings_of_a_header_that_disagree_are_refused(self) -> None:
        # Given the genuine signature and a forged one under another spelling, in either order
        body = trigger_body()
        genuine = signed_headers(body, START)
        forged = {"X-Zendesk-Webhook-Signature": "Zm9yZ2Vk"}
        for headers in (genuine | forged, forged | genuine):
            # Then neither wins: the delivery proves nothing
            with pytest.raises(Unauthenticated, match="conflicting"):
                verify(adapter_for(), headers, body, START)

    def test_a_signature_no_ascii_can_carry_is_refused_not_a_crash(self) -> None:
        body = trigger_body()
        headers = signed_headers(body, START) | {"x-zendesk-webhook-signature": "\ud800"}
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(adapter_for(), headers, body, START)

    def test_a_pasted_secret_loses_its_surrounding_whitespace_like_every_other(self) -> None:
        # Given the secret pasted into the settings with a trailing newline
        adapter = adapter_for(ZENDESK_WEBHOOK_SECRET=f"  {WEBHOOK_SECRET}\n")
        body = trigger_body()
        # When Zendesk signs with the secret it shows, then the delivery is accepted
        assert verify(adapter, signed_headers(body, START), body, START)

    @pytest.mark.parametrize("blank", [" ", "\n", "\t \r\n"])
    def test_a_whitespace_only_secret_is_not_configured(self, blank: str) -> None:
        body = trigger_body()
        adapter = adapter_for(ZENDESK_WEBHOOK_SECRET=blank)
        with pytest.raises(Unauthenticated, match="not configured"):
            verify(adapter, signed_headers(body, START, secret=blank), body, START)


class TestParse:
    def test_reads_the_readme_trigger_body(self) -> None:
        ticket = adapter_for().parse(trigger_body())
        assert (ticket.ticket_id, ticket.requester, ticket.label) == (
            "1001",
            "user-42",
            "Zendesk ticket #1001",
        )
        assert ticket.tags == ("bugpilot_session", "vip")
        request = read(trigger_body())
        assert request.helpdesk == "zendesk"
        assert request.provider == "bugpilot"
        assert request.ticket_id == "1001"
        assert request.user_id == "user-42"
        assert request.action == "upload-session"
        assert request.description == "Requested from Zendesk ticket #1001"

    def test_email_is_the_user_when_external_id_is_blank(self) -> None:
        request = read(trigger_body(requester_external_id="  "))
        assert request.user_id == "ada@example.com"

    @pytest.mark.parametrize(
        ("fields", "action"),
        [
            ({"tags": "vip bugpilot_screenshot"}, "upload-screenshot"),
            ({"tags": "bugpilot_recording"}, "show-recording-ui"),
            ({"tags": ["bugpilot_session"]}, "upload-session"),
            ({"tags": "bugpilot_recording", "action": "upload-screenshot"}, "upload-screenshot"),
            ({"tags": "vip", "action": ""}, "show-recording-ui"),
            ({"tags": None}, "show-recording-ui"),
        ],
    )
    def test_action_comes_from_field_then_tags_then_default(
        self, fields: dict[str, object], action: str
    ) -> None:
        assert (
            read(trigger_body(**fields), BUGPILOT_DEFAULT_ACTION="show-recording-ui").action
            == action
        )

    def test_ticket_id_may_be_a_number_and_description_is_kept(self) -> None:
        request = read(trigger_body(ticket_id=77, description="Checkout broken"))
        assert (request.ticket_id, request.description) == ("77", "Checkout broken")

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
            (b'{"ticket_id": ' + b"9" * 5000 + b"}", "not valid JSON"),
            (trigger_body(ticket_id=None), "ticket_id is required"),
            (trigger_body(ticket_id=""), "ticket_id is required"),
            (trigger_body(ticket_id="12/../../users"), "ticket number"),
            (trigger_body(ticket_id=True), "ticket_id must be a string"),
            (trigger_body(ticket_id={"id": 1}), "ticket_id must be a string"),
            (
                trigger_body(requester_external_id=None, requester_email=""),
                "external id or email is required to identify the Bugpilot user",
            ),
            (trigger_body(action="delete-everything"), "unknown action 'delete-everything'"),
            (trigger_body(tags=42), "tags must be"),
            (trigger_body(tags=["ok", 3]), "tags must be"),
            (trigger_body(requester_email="x" * 400, requester_external_id=None), "longer than"),
            (trigger_body(description="d" * 2001), "longer than 2000"),
        ],
    )
    def test_bad_bodies_name_the_problem(self, body: bytes, message: str) -> None:
        with pytest.raises(InvalidRequest, match=message):
            read(body)

    def test_a_bad_email_is_refused_even_beside_an_external_id(self) -> None:
        body = trigger_body(requester_external_id="user-42", requester_email=["x"])
        with pytest.raises(InvalidRequest, match="requester_email must be a string"):
            adapter_for().parse(body)

    def test_unknown_action_lists_the_allowed_values(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            read(trigger_body(action="nope"))
        assert "upload-session, upload-screenshot, show-recording-ui" in str(caught.value)


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


def test_registry_finds_zendesk_and_names_the_supported_ones() -> None:
    from capture_bridge.errors import UnknownHelpdesk

    settings = make_settings()
    assert get_adapter("zendesk", settings, HttpClient()).name == "zendesk"
    with pytest.raises(UnknownHelpdesk, match=r"supported: .*zendesk"):
        get_adapter("kayako", settings, HttpClient())


def test_trigger_body_fixture_matches_the_event_file() -> None:
    from tests.conftest import load_event

    assert json.loads(load_event("webhook_zendesk")["body"]) == json.loads(trigger_body())
