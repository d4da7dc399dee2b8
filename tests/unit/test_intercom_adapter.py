"""Intercom adapter: the signature, the ping, the notification id, the `/capture` note, the
requester and its look-up, notes, waits and the marker check, all against a fake HTTP client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from capture_bridge.capture import requests_for
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    NothingToCapture,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import (
    Headers,
    LookupOutcome,
    NoteOutcome,
    WebhookRequest,
    get_adapter,
    helpdesk_spec,
)
from capture_bridge.helpdesks.intercom import (
    API_VERSION,
    DEFAULT_API_URL,
    DELIVERY_MEMORY,
    IntercomAdapter,
    IntercomSettings,
    capture_fields,
    plain_text,
    sign_request,
    sign_webhook,
)
from capture_bridge.http import HttpClient, HttpResponse, TransportError
from capture_bridge.models import CaptureRequest, TicketRequest
from capture_bridge.notes import Note, html_lines
from capture_bridge.settings import settings_from
from tests.conftest import START, load_event, webhook_request

SECRET = "ic-unit-client-secret"
TOKEN = "ic-unit-access-token"
ADMIN = "991267242"
API = "https://api.intercom.io"
CONVERSATION = "1001"
CONTACT = "6329bd9ffe4e2e91dac76188"
# What the fake clock says it is (epoch seconds), to count X-RateLimit-Reset from.
NOW_EPOCH = 1_795_608_000
RETRY_AFTER = 17


@dataclass
class FakeHttp:
    """Answers each call with the next scripted answer (or raises it); records every call."""

    answers: list[HttpResponse | TransportError] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        self.calls.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, TransportError):
            raise answer
        return answer


def answer(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> HttpResponse:
    raw = b"" if body is None else json.dumps(body).encode()
    return HttpResponse(status, dict(headers or {}), raw)


def adapter_for(http: FakeHttp | None = None, **values: str) -> IntercomAdapter:
    base = {
        "TABLE_NAME": "t",
        "INTERCOM_CLIENT_SECRET": SECRET,
        "INTERCOM_ACCESS_TOKEN": TOKEN,
        "INTERCOM_ADMIN_ID": ADMIN,
    }
    settings = IntercomSettings.from_settings(settings_from(base | values))
    fake: Any = http or FakeHttp()
    return IntercomAdapter(settings, fake, clock=lambda: float(NOW_EPOCH))


def notification(
    note: str | None = "<p>/capture</p>",
    *,
    topic: str = "conversation.admin.noted",
    contact: dict[str, Any] | None = None,
    parts: Any = None,
    notification_id: str = "notif_1",
    **item: Any,
) -> bytes:
    """A notification of an admin's note (`note` None: no note part), `item` keys changed."""
    person = {"type": "contact", "id": CONTACT, "external_id": "user-42"}
    if parts is None:
        parts = [] if note is None else [{"part_type": "note", "body": note, "created_at": 10}]
    body_item: dict[str, Any] = {
        "type": "conversation",
        "id": CONVERSATION,
        "contacts": {"type": "contact.list", "contacts": [person if contact is None else contact]},
        "conversation_parts": {"type": "conversation_part.list", "conversation_parts": parts},
    }
    body_item.update(item)
    payload = {
        "type": "notification_event",
        "id": notification_id,
        "topic": topic,
        "data": {"type": "notification_event_data", "item": body_item},
    }
    return json.dumps(payload).encode()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature": sign_webhook(secret, body)}


def read(body: bytes) -> TicketRequest:
    return adapter_for().parse(body)


def captures(body: bytes) -> list[CaptureRequest]:
    """The captures a body asks for, read as the webhook reads them: adapter, then providers."""
    settings = settings_from({"TABLE_NAME": "t", "BUGPILOT_API_KEY": "k"})
    return requests_for(read(body), settings, HttpClient())


def text_note(*lines: str, links: tuple[str, ...] = ()) -> Note:
    named = {f"link{number}": url for number, url in enumerate(links)}
    return Note("\n".join(lines), html_lines(lines, links), lines, named)


class TestSignature:
    def test_a_body_signed_with_the_client_secret_is_one_notification_remembered_two_days(
        self,
    ) -> None:
        # given a notification signed as Intercom signs it
        body = notification()
        # when it is verified
        delivery = adapter_for().verify(webhook_request(signed(body), body), START)
        # then it is known by its notification id, for two days
        assert delivery.remember_for == DELIVERY_MEMORY
        again = adapter_for().verify(webhook_request(signed(body), body), START)
        assert again == delivery

    def test_a_redelivery_of_the_same_id_is_the_same_delivery_and_another_id_is_not(self) -> None:
        first = notification(notification_id="notif_1")
        # a retry carries the same id, its other fields (delivery_attempts) may change
        retry = json.loads(first)
        retry["delivery_attempts"] = 2
        retry_body = json.dumps(retry).encode()
        other = notification(notification_id="notif_2")
        adapter = adapter_for()
        deliveries = [
            adapter.verify(webhook_request(signed(body), body), START)
            for body in (first, retry_body, other)
        ]
        assert deliveries[0] == deliveries[1]
        assert deliveries[0].fingerprint != deliveries[2].fingerprint

    def test_the_hex_digest_is_read_in_either_case(self) -> None:
        body = notification()
        header = "sha1=" + sign_webhook(SECRET, body).removeprefix("sha1=").upper()
        adapter_for().verify(webhook_request({"X-Hub-Signature": header}, body), START)

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({}, "missing X-Hub-Signature"),
            ({"X-Hub-Signature": "sha1=" + "0" * 40}, "does not match"),
            ({"X-Hub-Signature": "sha256=" + "0" * 64}, "must be sha1="),
            ({"X-Hub-Signature": "not-a-signature"}, "must be sha1="),
            ({"Authorization": f"Bearer {SECRET}"}, "missing X-Hub-Signature"),
        ],
    )
    def test_unsigned_or_forged_calls_are_refused(
        self, headers: dict[str, str], reason: str
    ) -> None:
        body = notification()
        with pytest.raises(Unauthenticated, match=reason):
            adapter_for().verify(webhook_request(headers, body), START)

    def test_a_signature_made_with_another_secret_or_over_another_body_is_refused(self) -> None:
        body = notification()
        with pytest.raises(Unauthenticated):
            adapter_for().verify(webhook_request(signed(body, "other-secret"), body), START)
        tampered = body.replace(b"user-42", b"user-43")
        with pytest.raises(Unauthenticated):
            adapter_for().verify(webhook_request(signed(body), tampered), START)

    def test_conflicting_signature_headers_are_refused(self) -> None:
        body = notification()
        headers = [
            ("X-Hub-Signature", sign_webhook(SECRET, body)),
            ("x-hub-signature", "sha1=" + "0" * 40),
        ]
        request = WebhookRequest("POST", "/webhooks/intercom", Headers(headers), body)
        with pytest.raises(Unauthenticated, match="conflicting"):
            adapter_for().verify(request, START)

    def test_without_the_client_secret_every_call_is_refused_naming_the_key(self) -> None:
        body = notification()
        with pytest.raises(SecretNotConfigured, match="INTERCOM_CLIENT_SECRET"):
            adapter_for(INTERCOM_CLIENT_SECRET="").verify(
                webhook_request(signed(body), body), START
            )

    def test_a_signed_ping_asks_for_nothing(self) -> None:
        # given the ping Intercom sends when the webhook is saved
        body = json.dumps(
            {
                "type": "notification_event",
                "topic": "ping",
                "id": "notif_ping",
                "data": {"type": "notification_event_data", "item": {"type": "ping"}},
            }
        ).encode()
        # then it is proven, and answered as asking for nothing
        with pytest.raises(NothingToCapture, match="ping"):
            adapter_for().verify(webhook_request(signed(body), body), START)
        # while an unsigned one is still refused
        with pytest.raises(Unauthenticated):
            adapter_for().verify(webhook_request({}, body), START)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (b"[]", "body must be a JSON object"),
            (
                json.dumps({"topic": "conversation.admin.noted"}).encode(),
                r"id \(the notification id\) is required",
            ),
            (json.dumps({"id": {"x": 1}}).encode(), "id must be a string"),
        ],
    )
    def test_a_signed_body_without_a_notification_id_is_400(
        self, body: bytes, message: str
    ) -> None:
        with pytest.raises(InvalidRequest, match=message):
            adapter_for().verify(webhook_request(signed(body), body), START)


class TestCaptureCommand:
    @pytest.mark.parametrize(
        ("text", "action", "description"),
        [
            ("/capture", "upload-session", ""),
            ("/capture checkout is broken", "upload-session", "checkout is broken"),
            ("/capture screenshot", "upload-screenshot", ""),
            ("/capture Screenshot the cart page", "upload-screenshot", "the cart page"),
            ("/capture recording since login", "show-recording-ui", "since login"),
            ("  /CAPTURE   recording  ", "show-recording-ui", ""),
            ("/capture screenshots of it", "upload-session", "screenshots of it"),
            ("/capture\nsecond line", "upload-session", ""),
        ],
    )
    def test_the_first_line_names_the_action_and_the_rest_describes_it(
        self, text: str, action: str, description: str
    ) -> None:
        fields = capture_fields(text)
        assert fields is not None
        assert fields.get("action") == action
        assert fields.get("description", "") == description
        assert fields.get("text", "") == description

    @pytest.mark.parametrize(
        "text", ["", "please /capture", "/captured it", "/capturescreenshot", "capture", "/cap"]
    )
    def test_anything_else_is_no_command(self, text: str) -> None:
        assert capture_fields(text) is None

    def test_a_bare_command_with_a_link_leaves_the_choice_to_the_link(self) -> None:
        fields = capture_fields("/capture https://console.notte.cc/sessions/abc")
        assert fields == {
            "description": "https://console.notte.cc/sessions/abc",
            "text": "https://console.notte.cc/sessions/abc",
        }

    def test_html_is_stripped_before_reading(self) -> None:
        markup = (
            '<p><b>/capture</b> screenshot <a href="https://x.test">cart</a> &amp; more</p><p>x'
        )
        assert plain_text(markup).splitlines()[0] == "/capture screenshot cart & more"


class TestParse:
    def test_a_capture_note_is_one_bugpilot_capture_for_the_contacts_external_id(self) -> None:
        ticket = read(notification("<p>/capture screenshot checkout button</p>"))
        assert (ticket.helpdesk, ticket.ticket_id, ticket.requester) == (
            "intercom",
            CONVERSATION,
            "user-42",
        )
        assert ticket.label == "Intercom conversation #1001"
        assert ticket.requester_ref == ""
        [capture] = captures(notification("<p>/capture screenshot checkout button</p>"))
        assert (capture.provider, capture.action, capture.user_id) == (
            "bugpilot",
            "upload-screenshot",
            "user-42",
        )
        assert capture.description == "checkout button"

    def test_without_an_external_id_the_email_is_the_requester(self) -> None:
        contact = {"type": "contact", "id": CONTACT, "external_id": None, "email": "a@x.test"}
        assert read(notification(contact=contact)).requester == "a@x.test"

    def test_a_contact_named_by_id_alone_is_looked_up_later(self) -> None:
        contact = {"type": "contact", "id": CONTACT, "external_id": ""}
        ticket = read(notification(contact=contact))
        assert (ticket.requester, ticket.requester_ref) == ("", CONTACT)
        # and the providers take it: the webhook hands them the reference (Runtime)
        [capture] = captures(notification(contact=contact))
        assert (capture.provider, capture.user_id) == ("bugpilot", "")

    def test_the_newest_note_part_decides(self) -> None:
        parts = [
            {"part_type": "note", "body": "<p>not a command</p>", "created_at": 20},
            {"part_type": "note", "body": "<p>/capture recording</p>", "created_at": 30},
            {"part_type": "comment", "body": "<p>/capture screenshot</p>", "created_at": 40},
            {"part_type": "note", "body": "<p>older</p>", "created_at": 5},
        ]
        ticket = read(notification(parts=parts))
        assert ticket.fields["action"] == "show-recording-ui"

    def test_lists_are_taken_bare_as_well_as_wrapped(self) -> None:
        body = json.loads(notification())
        item = body["data"]["item"]
        item["contacts"] = item["contacts"]["contacts"]
        item["conversation_parts"] = item["conversation_parts"]["conversation_parts"]
        assert read(json.dumps(body).encode()).requester == "user-42"

    def test_links_on_the_line_open_those_captures_alone(self) -> None:
        lambdatest = (
            "https://automation.lambdatest.com/logs/?sessionID=bc02fd99593f14e37850745d66197f89"
        )
        notte = "https://console.notte.cc/sessions/33c3c8bf-9d6d-4dff-8248-142eaf347f59"
        note = f'<p>/capture see <a href="{lambdatest}">{lambdatest}</a> and {notte}</p>'
        found = {(capture.provider, capture.subject) for capture in captures(notification(note))}
        assert found == {
            ("lambdatest", "bc02fd99593f14e37850745d66197f89"),
            ("notte", "33c3c8bf-9d6d-4dff-8248-142eaf347f59"),
        }
        # and a named action still asks Bugpilot too
        both = captures(notification(f"<p>/capture screenshot {notte}</p>"))
        assert {capture.provider for capture in both} == {"bugpilot", "notte"}

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (notification(topic="conversation.user.replied"), "asks for no capture"),
            (notification(topic="contact.user.created"), "asks for no capture"),
            (notification(None), "no note"),
            (notification("<p>just a note</p>"), "not a /capture command"),
            (notification("<p>please /capture</p>"), "not a /capture command"),
            (notification(None, parts=[{"part_type": "comment", "body": "/capture"}]), "no note"),
        ],
    )
    def test_other_topics_and_notes_ask_for_nothing(self, body: bytes, reason: str) -> None:
        with pytest.raises(NothingToCapture, match=reason):
            read(body)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (json.dumps({"id": "n"}).encode(), "topic is required"),
            (json.dumps({"topic": ["x"]}).encode(), "topic must be a string"),
            (
                json.dumps({"topic": "conversation.admin.noted", "data": []}).encode(),
                "data must be an object",
            ),
            (
                json.dumps({"topic": "conversation.admin.noted", "data": {}}).encode(),
                "data.item must be an object",
            ),
            (notification(id=None), "data.item.id is required"),
            (notification(id="../admins"), "data.item.id must be an Intercom conversation id"),
            (notification(id=True), "data.item.id must be a string"),
            (notification(conversation_parts="x"), "data.item.conversation_parts"),
            (notification(None, parts=["x"]), r"conversation_parts\[0\] must be an object"),
            (notification(None, parts=[{"part_type": "note", "body": 5}]), r"\[\].body must be"),
            (notification(contacts=7), "data.item.contacts must be a list"),
            (notification(contact="x"), r"contacts\[0\] must be an object"),  # type: ignore[arg-type]
            (
                notification(contact={"id": CONTACT, "external_id": {"a": 1}}),
                r"contacts\[0\].external_id must be a string",
            ),
            (
                notification(contact={"id": "../../me", "external_id": ""}),
                r"contacts\[0\].id must be an Intercom contact id",
            ),
        ],
    )
    def test_malformed_notifications_are_400_naming_the_field(
        self, body: bytes, message: str
    ) -> None:
        with pytest.raises(InvalidRequest, match=message):
            read(body)

    def test_a_note_without_any_contact_is_400_naming_where_the_requester_is_read(self) -> None:
        body = notification(contacts={"type": "contact.list", "contacts": []})
        with pytest.raises(InvalidRequest, match=r"data\.item\.contacts\.contacts"):
            captures(body)


class TestNotes:
    def test_a_note_is_an_admin_note_with_the_notes_html(self) -> None:
        http = FakeHttp([answer(200, {"type": "conversation", "id": CONVERSATION})])
        result = adapter_for(http).post_note(CONVERSATION, text_note("<b>hi</b>"))
        assert result.outcome is NoteOutcome.POSTED
        [call] = http.calls
        assert (call["method"], call["url"]) == ("POST", f"{API}/conversations/1001/reply")
        assert call["json_body"] == {
            "message_type": "note",
            "type": "admin",
            "admin_id": ADMIN,
            "body": "<p>&lt;b&gt;hi&lt;/b&gt;</p>",
        }
        assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert call["headers"]["Intercom-Version"] == API_VERSION
        assert call["timeout"]

    @pytest.mark.parametrize(
        ("headers", "wait"),
        [
            ({"Retry-After": str(RETRY_AFTER)}, RETRY_AFTER),
            ({"X-RateLimit-Reset": str(NOW_EPOCH + 8)}, 8),
            ({"X-RateLimit-Reset": str(NOW_EPOCH - 5)}, 1),
            ({"X-RateLimit-Reset": "soon"}, None),
            ({}, None),
        ],
    )
    def test_a_429_waits_retry_after_else_until_the_reset_moment(
        self, headers: dict[str, str], wait: int | None
    ) -> None:
        http = FakeHttp([answer(429, {"type": "error.list"}, headers)])
        result = adapter_for(http).post_note(CONVERSATION, text_note("x"))
        assert (result.outcome, result.status) == (NoteOutcome.RETRYABLE, 429)
        assert result.retry_after_seconds == wait

    def test_a_5xx_is_retried_without_reading_the_reset_of_the_rate_window(self) -> None:
        http = FakeHttp([answer(503, None, {"X-RateLimit-Reset": str(NOW_EPOCH + 8)})])
        result = adapter_for(http).post_note(CONVERSATION, text_note("x"))
        assert (result.outcome, result.retry_after_seconds) == (NoteOutcome.RETRYABLE, None)

    @pytest.mark.parametrize("status", [400, 401, 403, 404])
    def test_refusals_are_rejected(self, status: int) -> None:
        http = FakeHttp([answer(status, {"type": "error.list"})])
        result = adapter_for(http).post_note(CONVERSATION, text_note("x"))
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, status)

    def test_no_answer_is_retryable(self) -> None:
        http = FakeHttp([TransportError("timed out", maybe_delivered=True)])
        result = adapter_for(http).post_note(CONVERSATION, text_note("x"))
        assert result.outcome is NoteOutcome.RETRYABLE

    def test_without_token_or_admin_nothing_is_sent(self) -> None:
        http = FakeHttp()
        result = adapter_for(http, INTERCOM_ADMIN_ID="").post_note(CONVERSATION, text_note("x"))
        assert result.outcome is NoteOutcome.REJECTED
        assert "INTERCOM_ADMIN_ID" in result.message
        assert http.calls == []


class TestHasNote:
    MARKER = "Capture session: s-1"

    def conversation(self, *bodies: str, total: int | None = None) -> HttpResponse:
        parts = [{"part_type": "note", "body": body} for body in bodies]
        listing: dict[str, Any] = {"type": "conversation_part.list", "conversation_parts": parts}
        listing["total_count"] = len(parts) if total is None else total
        return answer(200, {"type": "conversation", "conversation_parts": listing})

    def test_the_marker_in_a_part_is_found(self) -> None:
        http = FakeHttp([self.conversation("<p>x</p>", f"<p>{self.MARKER}</p>")])
        assert adapter_for(http).has_note(CONVERSATION, self.MARKER) is True
        [call] = http.calls
        assert (call["method"], call["url"]) == ("GET", f"{API}/conversations/1001")

    def test_without_the_marker_it_is_not_there(self) -> None:
        http = FakeHttp([self.conversation("<p>x</p>")])
        assert adapter_for(http).has_note(CONVERSATION, self.MARKER) is False

    @pytest.mark.parametrize(
        "reply",
        [
            answer(500),
            answer(429),
            answer(200, ["not", "a", "conversation"]),
            answer(200, {"conversation_parts": "x"}),
            TransportError("down", maybe_delivered=False),
        ],
    )
    def test_when_intercom_cannot_say_it_is_unknown(
        self, reply: HttpResponse | TransportError
    ) -> None:
        assert adapter_for(FakeHttp([reply])).has_note(CONVERSATION, self.MARKER) is None

    def test_parts_left_out_of_a_long_conversation_make_it_unknown(self) -> None:
        http = FakeHttp([self.conversation("<p>x</p>", total=600)])
        assert adapter_for(http).has_note(CONVERSATION, self.MARKER) is None


class TestFindRequester:
    def test_the_contacts_external_id_else_its_email(self) -> None:
        http = FakeHttp(
            [
                answer(200, {"type": "contact", "id": CONTACT, "external_id": "u-1"}),
                answer(
                    200, {"type": "contact", "id": CONTACT, "external_id": None, "email": "e@x"}
                ),
            ]
        )
        adapter = adapter_for(http)
        assert adapter.find_requester(CONTACT) == (LookupOutcome.FOUND, "u-1", "", None)
        assert adapter.find_requester(CONTACT).user == "e@x"
        call = http.calls[0]
        assert call["url"] == f"{API}/contacts/{CONTACT}"
        assert call["headers"]["Intercom-Version"] == "2.11"
        assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"

    @pytest.mark.parametrize(
        ("reply", "outcome", "wait"),
        [
            (answer(200, {"type": "contact", "id": CONTACT}), LookupOutcome.NOT_FOUND, None),
            (answer(404, {"type": "error.list"}), LookupOutcome.NOT_FOUND, None),
            (answer(401, {"type": "error.list"}), LookupOutcome.REJECTED, None),
            (answer(403, {"type": "error.list"}), LookupOutcome.REJECTED, None),
            (
                answer(429, None, {"X-RateLimit-Reset": str(NOW_EPOCH + 9)}),
                LookupOutcome.RETRYABLE,
                9,
            ),
            (answer(503, None, {"Retry-After": "4"}), LookupOutcome.RETRYABLE, 4),
            (answer(200), LookupOutcome.RETRYABLE, None),
            (TransportError("down", maybe_delivered=False), LookupOutcome.RETRYABLE, None),
        ],
    )
    def test_failures_say_what_they_mean(
        self, reply: HttpResponse | TransportError, outcome: LookupOutcome, wait: int | None
    ) -> None:
        lookup = adapter_for(FakeHttp([reply])).find_requester(CONTACT)
        assert (lookup.outcome, lookup.retry_after_seconds) == (outcome, wait)
        assert lookup.user == ""

    def test_a_reference_that_is_no_contact_id_is_never_sent(self) -> None:
        http = FakeHttp()
        assert adapter_for(http).find_requester("../me").outcome is LookupOutcome.NOT_FOUND
        assert http.calls == []


class TestSettings:
    def test_the_public_host_is_the_default_and_regional_hosts_are_taken(self) -> None:
        assert adapter_for()._settings.api_url == DEFAULT_API_URL
        eu = adapter_for(INTERCOM_API_URL="https://api.eu.intercom.io/")
        assert eu._settings.api_url == "https://api.eu.intercom.io"

    def test_an_insecure_api_url_is_refused_naming_the_key(self) -> None:
        with pytest.raises(ConfigurationError, match="INTERCOM_API_URL"):
            adapter_for(INTERCOM_API_URL="http://api.intercom.io")

    def test_the_spec_declares_its_keys_and_budgets(self) -> None:
        spec = helpdesk_spec("intercom")
        assert spec.webhook_secret_key == "INTERCOM_CLIENT_SECRET"
        assert spec.secret_keys == (
            "INTERCOM_CLIENT_SECRET",
            "INTERCOM_ACCESS_TOKEN",
            "INTERCOM_ADMIN_ID",
        )
        assert spec.optional_keys == ("INTERCOM_API_URL", "INTERCOM_NOTES_PER_MINUTE")
        assert spec.longest_lookup_seconds > 0
        settings = settings_from({"TABLE_NAME": "t"})
        assert spec.unconfigured(settings) == ["INTERCOM_ACCESS_TOKEN", "INTERCOM_ADMIN_ID"]
        assert isinstance(get_adapter("intercom", settings, HttpClient()), IntercomAdapter)

    def test_sign_request_signs_the_body_and_names_a_missing_secret(self) -> None:
        body = notification()
        request = webhook_request({}, body, helpdesk="intercom")
        headers = sign_request({"INTERCOM_CLIENT_SECRET": SECRET}, request, START)
        assert headers == {"X-Hub-Signature": sign_webhook(SECRET, body)}
        adapter_for().verify(webhook_request(headers, body), START)
        with pytest.raises(SecretNotConfigured, match="INTERCOM_CLIENT_SECRET"):
            sign_request({}, request, START)

    def test_the_sample_event_reads_as_one_capture(self) -> None:
        event = load_event("webhook_intercom")
        ticket = read(event["body"].encode())
        assert (ticket.ticket_id, ticket.requester) == (CONVERSATION, "user-42")
        assert ticket.fields["description"] == "checkout button does nothing"
