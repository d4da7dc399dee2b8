"""Generic (Standard Webhooks) adapter: signing, verification, the camelCase body, signed notes.

Pure rules only: no DynamoDB and no sockets (notes go to a recording `HttpClient`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from capture_bridge.access import Access
from capture_bridge.capture import requests_for
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import (
    Headers,
    NoteOutcome,
    WebhookRequest,
    get_adapter,
    helpdesk_spec,
)
from capture_bridge.helpdesks.generic import (
    DELIVERY_MEMORY,
    MAX_SIGNATURES,
    NOTE_TIMEOUT,
    GenericAdapter,
    GenericSettings,
    decode_secret,
    note_body,
    note_message_id,
    probe,
    sign,
    sign_request,
)
from capture_bridge.http import DEFAULT_TIMEOUT, HttpClient, HttpResponse, TransportError
from capture_bridge.models import CaptureRequest, TicketRequest
from capture_bridge.notes import Note
from capture_bridge.settings import Settings, settings_from
from tests.conftest import START, webhook_request

KEY = b"generic-unit-test-signing-key-32"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOTE_URL = "https://desk.example.com/capture-notes"
MESSAGE_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
SKEW = timedelta(minutes=5)
ONE_SECOND = timedelta(seconds=1)
SESSION_ID = "9f1c2a3b-4d5e-4f60-8a7b-1c2d3e4f5a6b"
REPORT = "https://app.bugpilot.io/reports/r-1"
RETRY_AFTER_SECONDS = 42
LONGEST_TICKET_ID = 128


def make_settings(**values: str) -> Settings:
    base = {"TABLE_NAME": "t", "GENERIC_WEBHOOK_SECRET": SECRET, "GENERIC_NOTE_URL": NOTE_URL}
    return settings_from(base | values)


class RecordingHttp(HttpClient):
    """An `HttpClient` that sends nothing: it keeps each call and gives a scripted answer."""

    def __init__(self, answer: HttpResponse | TransportError | None = None) -> None:
        self.answer = answer or HttpResponse(200)
        self.calls: list[dict[str, Any]] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> HttpResponse:
        self.calls.append(
            {
                "method": method,
                "url": url,
                "headers": dict(headers or {}),
                "json_body": json_body,
                "body": body,
                "auth": auth,
                "timeout": timeout,
            }
        )
        if isinstance(self.answer, TransportError):
            raise self.answer
        return self.answer


def adapter_for(
    http: HttpClient | None = None, clock: Callable[[], datetime] = lambda: START, **values: str
) -> GenericAdapter:
    settings = GenericSettings.from_settings(make_settings(**values))
    return GenericAdapter(settings, http or RecordingHttp(), clock=clock)


def body_of(**fields: Any) -> bytes:
    """The README's documented body, with `fields` changed (None removes a field)."""
    body: dict[str, Any] = {
        "ticketId": "CASE-1001",
        "userId": "user-42",
        "userEmail": "ada@example.com",
        "tags": "bugpilot_session vip",
    }
    body.update(fields)
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def headers_for(
    body: bytes,
    at: datetime,
    *,
    message_id: str = MESSAGE_ID,
    key: bytes = KEY,
    signature: str | None = None,
) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature or sign(key, message_id, timestamp, body),
    }


def verify(headers: dict[str, str], body: bytes, now: datetime = START, **values: str) -> str:
    """The delivery fingerprint `verify` gives a POST to /webhooks/generic."""
    request = webhook_request(headers, body, helpdesk="generic")
    adapter = GenericAdapter(
        GenericSettings.from_settings(make_settings(**values)), RecordingHttp()
    )
    return adapter.verify(request, now).fingerprint


def parse(body: bytes) -> TicketRequest:
    return adapter_for().parse(body)


def captures(body: bytes) -> list[CaptureRequest]:
    """The captures a body asks for, read as the webhook reads it: adapter, then providers."""
    return requests_for(parse(body), make_settings(), RecordingHttp())


def a_note(text: str = f"The capture is ready: {REPORT}") -> Note:
    lines = (text, f"Capture session: {SESSION_ID}")
    return Note(
        "\n".join(lines),
        "".join(f"<p>{line}</p>" for line in lines),
        lines,
        {"report": REPORT},
        SESSION_ID,
        "resolved",
    )


class TestSigningPrimitive:
    def test_matches_an_independently_computed_vector(self) -> None:
        # Given the vector computed with openssl:
        #   printf %s 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
        #   openssl dgst -sha256 -mac HMAC -macopt hexkey:<decoded key> -binary | base64
        key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        # When the same message is signed, then the signature is the vector's, with its version
        signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
        assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    @pytest.mark.parametrize("padded", [True, False])
    def test_whsec_secret_decodes_with_or_without_padding(self, padded: bool) -> None:
        # Given a 31-byte key, whose base64 ends in one "=" of padding
        encoded = base64.b64encode(b"k" * 31).decode()
        assert encoded.endswith("=")
        text = encoded if padded else encoded.rstrip("=")
        # Then both forms, and surrounding whitespace, give the key's bytes
        assert decode_secret(f" whsec_{text}\n") == b"k" * 31

    @pytest.mark.parametrize(
        "raw",
        ["plain-shared-secret", base64.b64encode(KEY).decode(), "whsec_", "whsec_not base64!"],
    )
    def test_a_secret_not_in_whsec_form_is_not_configured_naming_key_and_form(
        self, raw: str
    ) -> None:
        with pytest.raises(SecretNotConfigured) as refused:
            decode_secret(raw)
        assert "GENERIC_WEBHOOK_SECRET" in str(refused.value)
        assert "whsec_" in str(refused.value)

    def test_an_empty_secret_is_not_configured_naming_the_key(self) -> None:
        with pytest.raises(SecretNotConfigured, match="GENERIC_WEBHOOK_SECRET"):
            decode_secret("  ")

    def test_sign_request_keeps_a_given_id_and_otherwise_makes_a_fresh_one(self) -> None:
        body = body_of()
        values = {"GENERIC_WEBHOOK_SECRET": SECRET}
        # Given a request that carries a webhook-id already (a retry), and two that do not
        kept = sign_request(values, webhook_request(headers_for(body, START), body), START)
        fresh = [sign_request(values, WebhookRequest("POST", "/", body=body), START)]
        fresh.append(sign_request(values, WebhookRequest("POST", "/", body=body), START))
        # Then the given id is kept, the others are new msg_ ids, and each one verifies
        assert kept["webhook-id"] == MESSAGE_ID
        assert fresh[0]["webhook-id"].startswith("msg_")
        assert fresh[0]["webhook-id"] != fresh[1]["webhook-id"]
        for headers in (kept, *fresh):
            assert headers["webhook-timestamp"] == str(int(START.timestamp()))
            verify(headers, body)

    def test_sign_request_without_a_secret_says_what_to_set(self) -> None:
        with pytest.raises(SecretNotConfigured, match="set GENERIC_WEBHOOK_SECRET"):
            sign_request({}, WebhookRequest("POST", "/", body=b"{}"), START)


class TestVerify:
    def test_the_delivery_is_the_webhook_id_kept_across_re_signed_retries(self) -> None:
        # Given a delivery, and the sender's retry 30 minutes later: same id, new time
        body = body_of()
        first = verify(headers_for(body, START), body)
        later = START + timedelta(minutes=30)
        retry = verify(headers_for(body, later), body, now=later)
        # Then both are the same delivery, and another id is another one
        assert first == retry
        assert first != verify(headers_for(body, START, message_id="msg_other"), body)

    def test_the_delivery_is_remembered_past_the_standards_retry_schedule(self) -> None:
        body = body_of()
        request = webhook_request(headers_for(body, START), body, helpdesk="generic")
        # The standard's example schedule makes its last attempt 75.5 h after the first
        assert adapter_for().verify(request, START).remember_for == DELIVERY_MEMORY
        assert timedelta(hours=75, minutes=35) < DELIVERY_MEMORY

    def test_header_names_are_case_insensitive(self) -> None:
        body = body_of()
        headers = {name.upper(): value for name, value in headers_for(body, START).items()}
        verify(headers, body)

    def test_one_matching_signature_among_several_is_enough(self) -> None:
        # Given a sender rotating its key: the old key's v1, a v1a, and then the current one
        body = body_of()
        timestamp = int(START.timestamp())
        old = sign(b"the-previous-key-of-the-sender!!", MESSAGE_ID, timestamp, body)
        current = sign(KEY, MESSAGE_ID, timestamp, body)
        signature = f"{old} v1a,aG5PM2Y5VDhZdHU5SHdYcg== v1,not-base64!! {current}"
        # Then it verifies
        verify(headers_for(body, START, signature=signature), body)

    @pytest.mark.parametrize("version", ["v2", "v1a", "V1", "v0"])
    def test_a_signature_of_another_version_is_ignored(self, version: str) -> None:
        # Given the right digest, but under a version the bridge does not check
        body = body_of()
        digest = sign(KEY, MESSAGE_ID, int(START.timestamp()), body).partition(",")[2]
        headers = headers_for(body, START, signature=f"{version},{digest}")
        # Then it is refused as if unsigned
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(headers, body)

    @pytest.mark.parametrize(
        "mutate",
        [
            pytest.param(lambda h, b: (h | {"webhook-signature": "v1,AAAA"}, b), id="wrong-sig"),
            pytest.param(lambda h, b: (h, b + b" "), id="body-changed"),
            pytest.param(lambda h, b: (h | {"webhook-id": "msg_other"}, b), id="id-changed"),
            pytest.param(
                lambda h, b: (h | {"webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
                id="time-changed",
            ),
            pytest.param(lambda h, b: (h | {"webhook-signature": "v1,Zm9v\udc80"}, b), id="odd"),
        ],
    )
    def test_forged_calls_are_refused(
        self, mutate: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]
    ) -> None:
        body = body_of()
        headers, sent = mutate(headers_for(body, START), body)
        with pytest.raises(Unauthenticated):
            verify(headers, sent)

    def test_a_call_signed_with_another_key_is_refused(self) -> None:
        body = body_of()
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(headers_for(body, START, key=b"someone-else-s-key"), body)

    @pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    def test_a_missing_header_is_refused(self, missing: str) -> None:
        body = body_of()
        headers = {k: v for k, v in headers_for(body, START).items() if k != missing}
        with pytest.raises(Unauthenticated, match="missing"):
            verify(headers, body)

    @pytest.mark.parametrize(
        "timestamp", ["1795608000.5", "-1795608000", "soon", "\uff11\uff17\uff19\uff15"]
    )
    def test_an_unreadable_timestamp_is_refused(self, timestamp: str) -> None:
        body = body_of()
        headers = headers_for(body, START) | {"webhook-timestamp": timestamp}
        with pytest.raises(Unauthenticated, match="timestamp"):
            verify(headers, body)

    @pytest.mark.parametrize("skew", [SKEW + ONE_SECOND, -(SKEW + ONE_SECOND)])
    def test_stale_or_future_calls_are_refused(self, skew: timedelta) -> None:
        body = body_of()
        with pytest.raises(Unauthenticated, match="too old or in the future"):
            verify(headers_for(body, START + skew), body)

    @pytest.mark.parametrize("skew", [SKEW, -SKEW])
    def test_calls_at_the_edge_of_the_window_are_accepted(self, skew: timedelta) -> None:
        body = body_of()
        verify(headers_for(body, START + skew), body)

    def test_two_spellings_of_a_header_that_disagree_are_refused(self) -> None:
        body = body_of()
        pairs = [*headers_for(body, START).items(), ("Webhook-Id", "msg_other")]
        request = WebhookRequest("POST", "/webhooks/generic", Headers(pairs), body)
        with pytest.raises(Unauthenticated, match="conflicting"):
            adapter_for().verify(request, START)

    def test_too_many_signatures_are_refused_unread(self) -> None:
        body = body_of()
        signature = " ".join(["v1,AAAA"] * (MAX_SIGNATURES + 1))
        with pytest.raises(Unauthenticated, match="more than"):
            verify(headers_for(body, START, signature=signature), body)

    def test_a_message_id_with_spaces_or_of_absurd_length_is_refused(self) -> None:
        body = body_of()
        for message_id in ("msg one", "m" * 257):
            with pytest.raises(Unauthenticated, match="webhook-id"):
                verify(headers_for(body, START, message_id=message_id), body)

    def test_without_a_secret_everything_is_refused_naming_the_key(self) -> None:
        body = body_of()
        with pytest.raises(SecretNotConfigured, match="GENERIC_WEBHOOK_SECRET"):
            verify(headers_for(body, START), body, GENERIC_WEBHOOK_SECRET="")

    def test_a_secret_in_the_wrong_form_refuses_naming_the_key_and_the_form(self) -> None:
        body = body_of()
        with pytest.raises(SecretNotConfigured, match="GENERIC_WEBHOOK_SECRET must be whsec_"):
            verify(headers_for(body, START), body, GENERIC_WEBHOOK_SECRET="shared-secret")


class TestParse:
    def test_reads_the_documented_body(self) -> None:
        ticket = parse(body_of(description="Checkout fails", action="upload-screenshot"))
        assert ticket.helpdesk == "generic"
        assert ticket.ticket_id == "CASE-1001"
        assert ticket.requester == "user-42"
        assert ticket.label == "ticket CASE-1001"
        assert ticket.tags == ("bugpilot_session", "vip")
        assert ticket.fields == {"description": "Checkout fails", "action": "upload-screenshot"}

    def test_the_email_is_the_user_when_the_user_id_is_blank(self) -> None:
        assert parse(body_of(userId="")).requester == "ada@example.com"
        assert parse(body_of(userId=None)).requester == "ada@example.com"

    def test_tags_may_be_a_list(self) -> None:
        assert parse(body_of(tags=["bugpilot_screenshot", "vip"])).tags == (
            "bugpilot_screenshot",
            "vip",
        )

    @pytest.mark.parametrize(
        ("camel", "snake"),
        [
            ("lambdatestSessionId", "lambdatest_session_id"),
            ("notteSessionId", "notte_session_id"),
            ("text", "text"),
            ("action", "action"),
            ("description", "description"),
            ("lambdatest_session_id", "lambdatest_session_id"),
        ],
    )
    def test_camel_case_fields_reach_the_providers_in_snake_case(
        self, camel: str, snake: str
    ) -> None:
        assert parse(body_of(**{camel: "value"})).fields == {snake: "value"}

    @pytest.mark.parametrize("name", ["customerURLPath", "already_snake", "priority"])
    def test_fields_no_capture_source_reads_are_left_unread(self, name: str) -> None:
        # Given a body with a field no capture source's spec declares
        # When it is read, then it reaches no provider (and is no error)
        assert parse(body_of(**{name: "value"})).fields == {}

    def test_each_capture_source_field_asks_its_provider(self) -> None:
        # Given one body naming every capture source in camelCase
        notte_id = "33c3c8bf-9d6d-4dff-8248-142eaf347f59"
        lambdatest_id = "bc02fd99593f14e37850745d66197f89"
        body = body_of(
            action="upload-screenshot",
            description="Seen on checkout",
            lambdatestSessionId=lambdatest_id,
            text=f"Reproduced in https://console.notte.cc/sessions/{notte_id}",
        )
        # When the providers read it
        found = {request.provider: request for request in captures(body)}
        # Then each one finds its own capture
        assert found["bugpilot"].action == "upload-screenshot"
        assert found["bugpilot"].description == "Seen on checkout"
        assert found["lambdatest"].reference == lambdatest_id
        assert found["notte"].reference == notte_id
        assert [r.reference for r in captures(body_of(tags=None, notteSessionId=notte_id))] == [
            notte_id
        ]

    def test_the_default_description_names_the_ticket(self) -> None:
        [request] = captures(body_of())
        assert request.description == "Requested from ticket CASE-1001"

    @pytest.mark.parametrize(
        "ticket_id",
        ["CASE-1001", "1001", "org/desk:ticket#42", "a.b_c-d", "x" * LONGEST_TICKET_ID, 1001],
    )
    def test_ticket_ids_of_the_allowed_characters_are_accepted(self, ticket_id: str | int) -> None:
        assert parse(body_of(ticketId=ticket_id)).ticket_id == str(ticket_id)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", "body is not valid JSON"),
            (b"[1, 2]", "body must be a JSON object"),
            (body_of(ticketId=None), "ticketId is required"),
            (body_of(ticketId=""), "ticketId is required"),
            (body_of(ticketId="CASE 1001"), "ticketId must be 1 to 128 characters"),
            (body_of(ticketId="<script>"), "ticketId must be 1 to 128 characters"),
            (body_of(ticketId="ticket\u00e9"), "ticketId must be 1 to 128 characters"),
            (body_of(ticketId="x" * 129), "ticketId is longer than 128 characters"),
            (body_of(ticketId=["1001"]), "ticketId must be a string"),
            (body_of(ticketId=True), "ticketId must be a string"),
            (body_of(userId={"id": 1}), "userId must be a string"),
            (body_of(userEmail=["a@b.c"]), "userEmail must be a string"),
            (body_of(tags={"a": 1}), "tags must be a string"),
            (body_of(lambdatestSessionId="bad id!"), "lambdatest_session_id must be"),
            (body_of(action="format-disk"), "unknown action 'format-disk'"),
        ],
    )
    def test_bad_bodies_name_the_problem(self, body: bytes, message: str) -> None:
        with pytest.raises(InvalidRequest, match=message):
            captures(body)

    @pytest.mark.parametrize(
        "key", ["callbackUrl", "callback_url", "CALLBACK-URL", "callbackURL", "noteUrl"]
    )
    def test_a_payload_cannot_choose_where_notes_go(self, key: str) -> None:
        with pytest.raises(InvalidRequest, match=f"{key} is not accepted.*GENERIC_NOTE_URL"):
            parse(body_of(**{key: "https://attacker.example/collect"}))

    def test_two_spellings_of_one_field_are_refused_naming_both(self) -> None:
        body = body_of(notteSessionId="a", notte_session_id="b")
        with pytest.raises(InvalidRequest, match="notteSessionId and notte_session_id"):
            parse(body)


class TestPostNote:
    def test_posts_the_note_as_signed_json_to_the_configured_url(self) -> None:
        # Given a receiver that accepts
        http = RecordingHttp(HttpResponse(204))
        # When a note is posted
        result = adapter_for(http).post_note("CASE-1001", a_note())
        # Then it went once, as the documented JSON, with the standard's headers
        assert result.outcome is NoteOutcome.POSTED
        [call] = http.calls
        assert (call["method"], call["url"]) == ("POST", NOTE_URL)
        assert call["timeout"] == NOTE_TIMEOUT
        assert call["json_body"] is None
        assert json.loads(call["body"]) == {
            "type": "capture.note",
            "ticketId": "CASE-1001",
            "sessionId": SESSION_ID,
            "status": "resolved",
            "text": a_note().text,
            "html": a_note().html,
            "links": {"report": REPORT},
        }
        headers = call["headers"]
        assert headers["webhook-id"] == f"note_{SESSION_ID}"
        assert headers["webhook-timestamp"] == str(int(START.timestamp()))
        # And the receiver can verify it with the shared secret over the bytes sent
        request = webhook_request(headers, call["body"], helpdesk="generic")
        adapter_for().verify(request, START)

    def test_markdown_links_and_html_in_a_payload_stay_text_in_the_text_form(self) -> None:
        # Given a note quoting a requester id that is HTML and a Markdown link
        hostile = "<img src=x onerror=alert(1)>[click](https://evil.example)"
        note = a_note(f"Bugpilot capture for user {hostile}: {REPORT}")
        http = RecordingHttp(HttpResponse(204))
        # When it is posted
        adapter_for(http).post_note("CASE-1001", note)
        # Then the text form carries neither a tag nor a Markdown link a receiver would render
        text = json.loads(http.calls[0]["body"])["text"]
        assert not re.search(r"(?<!\\)[<\[]", text), text
        assert "\\<img src=x onerror=alert(1)\\>\\[click\\](https://evil.example)" in text
        # And the session's own link is left whole, so receivers can still make it a link
        assert f": {REPORT}" in text
        # And the HTML form is the note's, escaped as every helpdesk's is
        assert json.loads(http.calls[0]["body"])["html"] == note.html

    def test_non_ascii_and_markup_survive_the_signed_bytes(self) -> None:
        # Given text no JSON encoder may mangle: non-ASCII, markup, a line separator
        payload = {"text": "Café <b>\u2028 😀", "links": {"r": "https://x.test/?a=1&b=2"}}
        # When it is made the note's body, then it reads back as the same value
        assert json.loads(note_body(payload)) == payload

    def test_a_re_send_carries_the_same_id_and_a_fresh_timestamp(self) -> None:
        # Given a clock that moves between two sends of the same session's note
        moments = iter([START, START + timedelta(minutes=2)])
        http = RecordingHttp()
        adapter = adapter_for(http, clock=lambda: next(moments))
        # When the note is sent twice
        adapter.post_note("CASE-1001", a_note())
        adapter.post_note("CASE-1001", a_note())
        # Then the receiver can tell it is one message sent twice
        first, second = (call["headers"] for call in http.calls)
        assert first["webhook-id"] == second["webhook-id"] == note_message_id(a_note())
        assert first["webhook-timestamp"] != second["webhook-timestamp"]
        assert first["webhook-signature"] != second["webhook-signature"]

    def test_rate_limit_is_retryable_after_retry_after(self) -> None:
        answer = HttpResponse(429, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        result = adapter_for(RecordingHttp(answer)).post_note("CASE-1001", a_note())
        assert result.outcome is NoteOutcome.RETRYABLE
        assert result.retry_after_seconds == RETRY_AFTER_SECONDS
        assert "the note receiver answered HTTP 429" in result.message

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, NoteOutcome.POSTED),
            (202, NoteOutcome.POSTED),
            (500, NoteOutcome.RETRYABLE),
            (503, NoteOutcome.RETRYABLE),
            (400, NoteOutcome.REJECTED),
            (401, NoteOutcome.REJECTED),
            (404, NoteOutcome.REJECTED),
        ],
    )
    def test_answers_map_to_outcomes(self, status: int, outcome: NoteOutcome) -> None:
        result = adapter_for(RecordingHttp(HttpResponse(status))).post_note("T-1", a_note())
        assert (result.outcome, result.status) == (outcome, status)

    def test_no_answer_is_retryable(self) -> None:
        http = RecordingHttp(TransportError("read timeout", maybe_delivered=True))
        assert adapter_for(http).post_note("T-1", a_note()).outcome is NoteOutcome.RETRYABLE

    def test_without_a_note_url_it_is_rejected_naming_it_and_nothing_is_sent(self) -> None:
        http = RecordingHttp()
        result = adapter_for(http, GENERIC_NOTE_URL="").post_note("T-1", a_note())
        assert result.outcome is NoteOutcome.REJECTED
        assert "GENERIC_NOTE_URL" in result.message
        assert http.calls == []

    def test_without_a_usable_secret_it_is_rejected_naming_it(self) -> None:
        http = RecordingHttp()
        result = adapter_for(http, GENERIC_WEBHOOK_SECRET="plain").post_note("T-1", a_note())
        assert result.outcome is NoteOutcome.REJECTED
        assert "GENERIC_WEBHOOK_SECRET" in result.message
        assert http.calls == []

    def test_a_note_without_a_session_id_still_gets_a_stable_id(self) -> None:
        note = Note("text", "<p>text</p>")
        assert note_message_id(note) == note_message_id(note)
        assert note_message_id(note) != note_message_id(Note("other", "<p>other</p>"))

    def test_has_note_is_false_without_a_call(self) -> None:
        http = RecordingHttp()
        assert adapter_for(http).has_note("T-1", f"Capture session: {SESSION_ID}") is False
        assert http.calls == []


class TestSettings:
    @pytest.mark.parametrize(
        "url",
        [NOTE_URL, "http://127.0.0.1:8080/notes", "http://localhost/notes", "http://[::1]:9/n"],
    )
    def test_https_or_loopback_http_note_urls_are_accepted(self, url: str) -> None:
        assert GenericSettings.from_settings(make_settings(GENERIC_NOTE_URL=url)).note_url == url

    @pytest.mark.parametrize(
        "url",
        [
            "http://desk.example.com/notes",
            "ftp://desk.example.com/notes",
            "desk.example.com/notes",
            "https:///notes",
            "https://desk.example.com/a b",
            "http://127.0.0.1.evil.example/notes",
        ],
    )
    def test_other_note_urls_are_a_configuration_error_naming_the_key(self, url: str) -> None:
        with pytest.raises(ConfigurationError, match="GENERIC_NOTE_URL"):
            GenericSettings.from_settings(make_settings(GENERIC_NOTE_URL=url))

    def test_credentials_stay_out_of_the_repr(self) -> None:
        assert SECRET not in repr(GenericSettings.from_settings(make_settings()))

    def test_the_registry_builds_it_from_the_secret_keys_alone(self) -> None:
        spec = helpdesk_spec("generic")
        assert spec.settings == ()
        assert spec.secret_keys == ("GENERIC_WEBHOOK_SECRET", "GENERIC_NOTE_URL")
        assert sum(NOTE_TIMEOUT) <= spec.longest_note_seconds
        assert isinstance(get_adapter("generic", make_settings(), RecordingHttp()), GenericAdapter)


class TestProbe:
    def test_unset_keys_are_named(self) -> None:
        check = probe(
            make_settings(GENERIC_WEBHOOK_SECRET="", GENERIC_NOTE_URL=""), RecordingHttp()
        )
        assert check.access is Access.NOT_CONFIGURED
        assert "GENERIC_WEBHOOK_SECRET" in check.detail
        assert "GENERIC_NOTE_URL" in check.detail

    def test_a_secret_in_the_wrong_form_is_a_problem(self) -> None:
        check = probe(make_settings(GENERIC_WEBHOOK_SECRET="plain"), RecordingHttp())
        assert check.is_problem
        assert "whsec_" in check.detail

    def test_a_configured_receiver_is_not_called_and_says_so(self) -> None:
        http = RecordingHttp()
        check = probe(make_settings(), http)
        assert check.access is Access.NOT_CALLED
        assert not check.is_problem
        assert "not called" in check.detail
        assert http.calls == []
