"""Help Scout adapter: the body's signature, the event, the delivery fingerprint, the conversation
object, the token's life (with a stand-in HTTP client), settings and signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
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
    helpscout,
)
from capture_bridge.helpdesks.helpscout import (
    CALL_TIMEOUT,
    DEDUPE_WINDOW,
    RENEW_BEFORE_SECONDS,
    THREAD_PAGES,
    HelpScoutAdapter,
    HelpScoutSettings,
    TokenKeeper,
    delivery_fingerprint,
    sign_request,
)
from capture_bridge.http import HttpClient, HttpResponse, TransportError
from capture_bridge.models import CaptureRequest, Delivery
from capture_bridge.notes import Note, html_lines
from capture_bridge.settings import Settings, settings_from
from tests.conftest import START, load_event, webhook_request

SECRET = "hs-unit-webhook-secret"
APP_ID = "hs-unit-app-id"
APP_SECRET = "hs-unit-app-secret"
CONVERSATION = "1001"
CUSTOMER_ID = 238604
EMAIL = "ada@example.com"
TOKEN_LIFETIME = 172_800
HTTP_CREATED = 201
LAMBDATEST_SESSION = "bc02fd99593f14e37850745d66197f89"
LAMBDATEST_LINK = f"https://automation.lambdatest.com/logs/?sessionID={LAMBDATEST_SESSION}"
NOTTE_SESSION = "33c3c8bf-9d6d-4dff-8248-142eaf347f59"
NOTTE_LINK = f"https://console.notte.cc/sessions/{NOTTE_SESSION}"


def make_settings(**values: str) -> Settings:
    base = {"TABLE_NAME": "t", "HELPSCOUT_WEBHOOK_SECRET": SECRET}
    return settings_from(base | values)


def conversation(**fields: Any) -> dict[str, Any]:
    """The v2 conversation object Help Scout posts on `convo.tags`, `fields` changed (None
    removes one)."""
    body: dict[str, Any] = {
        "id": int(CONVERSATION),
        "number": 12,
        "type": "email",
        "status": "active",
        "subject": "Checkout freezes",
        "mailboxId": 13,
        "tags": [
            {"id": 9150, "color": "#929499", "tag": "bugpilot_session"},
            {"id": 9151, "color": "#929499", "tag": "vip"},
        ],
        "primaryCustomer": {
            "id": CUSTOMER_ID,
            "type": "customer",
            "first": "Ada",
            "last": "Lovelace",
            "email": EMAIL,
        },
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


def tags_body(**fields: Any) -> bytes:
    return json.dumps(conversation(**fields)).encode()


def signed(body: bytes, secret: str = SECRET, event: str = "convo.tags") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
    return {
        "Content-Type": "application/json",
        "X-HelpScout-Signature": base64.b64encode(digest).decode(),
        "X-HelpScout-Event": event,
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeHttp(HttpClient):
    """Answers by route without a socket: the token endpoint issues numbered tokens, and each
    other call is answered from `answers` (first match of method and path prefix)."""

    def __init__(self, answers: Mapping[str, list[HttpResponse]] | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, str], bytes | None, Any]] = []
        self.answers = {key: list(value) for key, value in (answers or {}).items()}
        self.token_status = 200
        self.lifetime: Any = TOKEN_LIFETIME
        self._issued = 0
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = (1.0, 1.0),
    ) -> HttpResponse:
        with self._lock:
            self.calls.append((method, url, dict(headers or {}), body, json_body))
            if url.endswith("/v2/oauth2/token"):
                if self.token_status != 200:
                    return HttpResponse(self.token_status, {}, b'{"error":"invalid_client"}')
                self._issued += 1
                answer = {"access_token": f"token-{self._issued}", "expires_in": self.lifetime}
                return HttpResponse(200, {}, json.dumps(answer).encode())
            for prefix, queue in self.answers.items():
                if f"{method} {url}".startswith(prefix) and queue:
                    return queue.pop(0) if len(queue) > 1 else queue[0]
        return HttpResponse(201)

    def tokens_requested(self) -> int:
        return sum(1 for call in self.calls if call[1].endswith("/v2/oauth2/token"))

    def bearers(self) -> list[str]:
        return [call[2]["Authorization"] for call in self.calls if "Authorization" in call[2]]


def adapter_for(
    http: HttpClient | None = None, clock: FakeClock | None = None, **values: str
) -> HelpScoutAdapter:
    values = {
        "HELPSCOUT_API_URL": "https://api.helpscout.test",
        "HELPSCOUT_APP_ID": APP_ID,
        "HELPSCOUT_APP_SECRET": APP_SECRET,
    } | values
    settings = HelpScoutSettings.from_settings(make_settings(**values))
    return HelpScoutAdapter(settings, http or FakeHttp(), clock=clock or FakeClock())


def verify(headers: dict[str, str], body: bytes, **values: str) -> Delivery:
    adapter = adapter_for(None, None, **values)
    return adapter.verify(webhook_request(headers, body, helpdesk="helpscout"), START)


def read(body: bytes) -> CaptureRequest:
    """The one capture a body asks for, read as the webhook reads it: adapter, then providers."""
    [request] = requests_for(adapter_for().parse(body), make_settings(), HttpClient())
    return request


def captures(body: bytes) -> list[CaptureRequest]:
    """Every capture a body asks for, read as the webhook reads them."""
    return requests_for(adapter_for().parse(body), make_settings(), HttpClient())


def text_note(*lines: str, links: tuple[str, ...] = ()) -> Note:
    named = {f"link{number}": url for number, url in enumerate(links)}
    return Note("\n".join(lines), html_lines(lines, links), lines, named)


X_NOTE = text_note("x")


class TestSignature:
    def test_a_body_signed_with_the_secret_is_accepted(self) -> None:
        delivery = verify(signed(tags_body()), tags_body())
        assert delivery.remember_for == DEDUPE_WINDOW

    def test_header_names_are_case_insensitive(self) -> None:
        headers = {key.lower(): value for key, value in signed(tags_body()).items()}
        verify(headers, tags_body())

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({"X-HelpScout-Event": "convo.tags"}, "missing X-HelpScout-Signature"),
            (signed(tags_body(), "wrong-secret"), "does not match"),
            (signed(tags_body(subject="other")), "does not match"),
            ({**signed(tags_body()), "X-HelpScout-Signature": "\ud800"}, "must be"),
            (
                {
                    **signed(tags_body()),
                    "X-HelpScout-Signature": signed(tags_body())["X-HelpScout-Signature"].lower(),
                },
                "does not match",
            ),
        ],
    )
    def test_forged_or_unsigned_calls_are_refused(
        self, headers: dict[str, str], reason: str
    ) -> None:
        with pytest.raises(Unauthenticated, match=reason):
            verify(headers, tags_body())

    def test_two_signature_headers_that_disagree_are_refused(self) -> None:
        good = signed(tags_body())["X-HelpScout-Signature"]
        pairs = [("X-HelpScout-Signature", good), ("x-helpscout-signature", "forged")]
        request = WebhookRequest(
            "POST", "/webhooks/helpscout", headers=Headers(pairs), body=tags_body()
        )
        with pytest.raises(Unauthenticated, match="conflicting"):
            adapter_for().verify(request, START)

    @pytest.mark.parametrize("blank", ["", " ", "\n"])
    def test_without_a_configured_secret_everything_is_refused_naming_the_key(
        self, blank: str
    ) -> None:
        with pytest.raises(SecretNotConfigured, match="HELPSCOUT_WEBHOOK_SECRET"):
            verify(signed(tags_body(), blank or "x"), tags_body(), HELPSCOUT_WEBHOOK_SECRET=blank)

    def test_the_signature_is_checked_before_the_body_or_the_event_is_read(self) -> None:
        with pytest.raises(Unauthenticated):
            verify({"X-HelpScout-Event": "convo.deleted"}, b"not json")


class TestEvents:
    @pytest.mark.parametrize(
        "event", ["convo.created", "convo.note.created", "customer.created", "", "convo.tags "[:4]]
    )
    def test_a_proven_event_other_than_convo_tags_asks_for_nothing(self, event: str) -> None:
        with pytest.raises(NothingToCapture, match="asks for no capture"):
            verify(signed(tags_body(), event=event), tags_body())

    def test_a_conversation_without_a_capture_tag_asks_for_nothing(self) -> None:
        body = tags_body(tags=[{"id": 1, "tag": "vip"}, {"id": 2, "tag": "bugpilot"}])
        verify(signed(body), body)
        with pytest.raises(NothingToCapture, match=r"no bugpilot_\* or capture_links tag"):
            adapter_for().parse(body)

    def test_a_conversation_without_tags_asks_for_nothing(self) -> None:
        with pytest.raises(NothingToCapture):
            adapter_for().parse(tags_body(tags=[]))


class TestDeliveryFingerprint:
    @pytest.mark.parametrize(
        "same",
        [
            tags_body(status="pending"),
            tags_body(subject="Something else"),
            tags_body(preview="A later reply"),
            tags_body(tags=["vip", "bugpilot_session", "billing"]),
            tags_body(id=CONVERSATION),
            tags_body(primaryCustomer={"id": 1, "email": "other@example.com"}),
        ],
    )
    def test_the_conversation_and_its_capture_tags_make_the_fingerprint(self, same: bytes) -> None:
        assert delivery_fingerprint(same) == delivery_fingerprint(tags_body())

    @pytest.mark.parametrize(
        "other",
        [
            tags_body(id=1002),
            tags_body(tags=["bugpilot_screenshot"]),
            tags_body(tags=["bugpilot_session", "bugpilot_recording"]),
            tags_body(tags=["bugpilot_session", "capture_links"], subject=LAMBDATEST_LINK),
        ],
    )
    def test_another_conversation_or_another_ask_is_another_call(self, other: bytes) -> None:
        assert delivery_fingerprint(other) != delivery_fingerprint(tags_body())

    @pytest.mark.parametrize("unreadable", [b"not json", b"[1]", b"\xff", b"{}", tags_body(id=[1])])
    def test_an_unreadable_body_is_fingerprinted_as_it_is_and_never_raises(
        self, unreadable: bytes
    ) -> None:
        assert delivery_fingerprint(unreadable) == delivery_fingerprint(unreadable)
        assert delivery_fingerprint(unreadable) != delivery_fingerprint(unreadable + b" ")


class TestParse:
    def test_reads_the_conversation_object(self) -> None:
        ticket = adapter_for().parse(tags_body())
        assert (ticket.helpdesk, ticket.ticket_id, ticket.requester, ticket.label) == (
            "helpscout",
            CONVERSATION,
            EMAIL,
            "Help Scout conversation #12",
        )
        assert ticket.tags == ("bugpilot_session", "vip")
        assert ticket.requester_ref == ""
        request = read(tags_body())
        assert (request.provider, request.action, request.user_id) == (
            "bugpilot",
            "upload-session",
            EMAIL,
        )
        assert request.description == "Checkout freezes"

    @pytest.mark.parametrize(
        "tags",
        [
            ["bugpilot_screenshot", "vip"],
            [{"tag": "bugpilot_screenshot"}],
            [{"id": 1, "name": "bugpilot_screenshot"}],
            [{"id": 1, "tag": None, "name": "bugpilot_screenshot"}],
            [" bugpilot_screenshot "],
        ],
        ids=["strings", "tag objects", "name objects", "null tag and a name", "padded"],
    )
    def test_tags_may_be_names_or_objects_with_tag_or_name(self, tags: list[Any]) -> None:
        assert read(tags_body(tags=tags)).action == "upload-screenshot"

    def test_several_capture_tags_give_one_capture_in_zendesks_precedence(self) -> None:
        body = tags_body(tags=["bugpilot_session", "bugpilot_recording"])
        assert read(body).action == "show-recording-ui"

    def test_a_customer_without_email_is_looked_up_by_id(self) -> None:
        ticket = adapter_for().parse(tags_body(primaryCustomer={"id": CUSTOMER_ID}))
        assert (ticket.requester, ticket.requester_ref) == ("", str(CUSTOMER_ID))
        assert read(tags_body(primaryCustomer={"id": CUSTOMER_ID, "email": ""})).user_id == ""

    def test_without_a_number_the_label_names_the_id(self) -> None:
        assert adapter_for().parse(tags_body(number=None)).label == (
            "Help Scout conversation #1001"
        )

    def test_a_long_subject_is_cut_not_refused(self) -> None:
        ticket = adapter_for().parse(tags_body(subject="x" * 5000))
        assert len(ticket.fields["description"]) == helpscout.MAX_SUBJECT_LENGTH

    def test_the_subject_and_preview_are_the_captures_text(self) -> None:
        # given a conversation with a subject and a preview of its newest thread
        ticket = adapter_for().parse(tags_body(subject=" Checkout freezes ", preview="It hangs"))
        # then the subject is the description, and both are the text read for links
        assert ticket.fields == {
            "description": "Checkout freezes",
            "text": "Checkout freezes\nIt hangs",
        }

    def test_a_long_subject_and_preview_are_cut_not_refused(self) -> None:
        # given a subject and a preview far longer than the bounds
        ticket = adapter_for().parse(tags_body(subject="x" * 5000, preview="y" * 5000))
        # then each is cut to its bound
        subject, preview = ticket.fields["text"].split("\n")
        assert (len(subject), len(preview)) == (
            helpscout.MAX_SUBJECT_LENGTH,
            helpscout.MAX_PREVIEW_LENGTH,
        )

    def test_without_subject_or_preview_there_is_no_text(self) -> None:
        assert adapter_for().parse(tags_body(subject=None, preview=None)).fields == {}
        assert adapter_for().parse(tags_body(subject="  ")).fields == {}

    @pytest.mark.parametrize("where", ["subject", "preview"])
    def test_capture_links_asks_only_for_the_lambdatest_session_linked(self, where: str) -> None:
        # given a conversation tagged capture_links alone, its subject or preview linking a
        # LambdaTest session
        body = tags_body(tags=["capture_links", "vip"], **{where: f"Failed run {LAMBDATEST_LINK}"})
        # when the webhook reads it
        [capture] = captures(body)
        # then that session is the one capture: no Bugpilot capture is asked for
        assert (capture.provider, capture.reference) == ("lambdatest", LAMBDATEST_SESSION)

    def test_capture_links_asks_for_a_linked_notte_session(self) -> None:
        # given a conversation tagged capture_links whose subject links a Notte session
        body = tags_body(tags=["capture_links"], subject=f"Reproduced in {NOTTE_LINK}")
        # then that Notte session is the one capture
        [capture] = captures(body)
        assert (capture.provider, capture.reference) == ("notte", NOTTE_SESSION)

    def test_capture_links_with_both_links_asks_for_both(self) -> None:
        body = tags_body(tags=["capture_links"], subject=LAMBDATEST_LINK, preview=NOTTE_LINK)
        assert [capture.provider for capture in captures(body)] == ["lambdatest", "notte"]

    @pytest.mark.parametrize(
        "text",
        [
            {"subject": "Checkout broken"},
            {"subject": None, "preview": None},
            {"subject": "https://automation.lambdatest.com.evil.example/logs/?sessionID=abc"},
        ],
        ids=["plain subject", "no text", "look-alike host"],
    )
    def test_capture_links_on_a_conversation_linking_nothing_asks_for_nothing(
        self, text: dict[str, Any]
    ) -> None:
        # given a conversation tagged capture_links alone whose text links no session
        body = tags_body(tags=["capture_links"], **text)
        # then it asks for nothing (rather than for Bugpilot's default capture)
        with pytest.raises(NothingToCapture, match="link no LambdaTest or Notte session"):
            adapter_for().parse(body)
        # and its fingerprint is that of the body, like any body that stores nothing
        assert delivery_fingerprint(body) == delivery_fingerprint(body)

    def test_a_bugpilot_tag_with_a_linked_session_asks_for_both(self) -> None:
        # given a conversation tagged bugpilot_session whose subject links a LambdaTest session
        body = tags_body(subject=f"See {LAMBDATEST_LINK}")
        # then the Bugpilot capture and the linked session are both asked for
        assert [capture.provider for capture in captures(body)] == ["bugpilot", "lambdatest"]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", "not valid JSON"),
            (b"[]", "must be a JSON object"),
            (tags_body(id=None), "id .*is required"),
            (tags_body(id=0), "a Help Scout conversation id"),
            (tags_body(id="12/../../users"), "a Help Scout conversation id"),
            (tags_body(id=True), "id must be a string"),
            (tags_body(tags="bugpilot_session"), "tags must be a list"),
            (tags_body(tags=[7]), "tags must be a list"),
            (tags_body(tags=[{"id": 1}]), "tags must be a list"),
            (tags_body(primaryCustomer="ada@example.com"), "primaryCustomer must be an object"),
            (tags_body(primaryCustomer={"email": ["x"]}), "primaryCustomer.email must be"),
            (tags_body(primaryCustomer={"id": "x/../1"}), "primaryCustomer.id must be"),
            (tags_body(number=[1]), "number must be a string"),
            (tags_body(subject=["x"]), "subject must be a string"),
            (tags_body(subject=7), "subject must be a string"),
            (tags_body(preview={"text": "x"}), "preview must be a string"),
            (tags_body(preview=False), "preview must be a string"),
            (tags_body(subject="\ud800"), "subject is not valid UTF-8"),
            (tags_body(primaryCustomer=None), "primaryCustomer.email .*is required"),
            (tags_body(primaryCustomer={"first": "Ada"}), "primaryCustomer.email .*is required"),
        ],
    )
    def test_bad_bodies_are_refused_naming_the_field(self, body: bytes, message: str) -> None:
        with pytest.raises(InvalidRequest, match=message):
            read(body)


class TestToken:
    def test_one_token_serves_many_calls(self) -> None:
        http = FakeHttp()
        adapter = adapter_for(http)
        for _ in range(5):
            assert adapter.post_note(CONVERSATION, X_NOTE).outcome is NoteOutcome.POSTED
        assert http.tokens_requested() == 1
        assert set(http.bearers()) == {"Bearer token-1"}

    def test_the_token_request_is_the_documented_form(self) -> None:
        http = FakeHttp()
        adapter_for(http).post_note(CONVERSATION, X_NOTE)
        method, url, headers, body, _ = http.calls[0]
        assert (method, url) == ("POST", "https://api.helpscout.test/v2/oauth2/token")
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert (
            body
            == (
                f"grant_type=client_credentials&client_id={APP_ID}&client_secret={APP_SECRET}"
            ).encode()
        )

    def test_it_is_renewed_shortly_before_it_expires(self) -> None:
        # Given a token that lasts two days
        http, clock = FakeHttp(), FakeClock()
        adapter = adapter_for(http, clock)
        adapter.post_note(CONVERSATION, X_NOTE)
        # When a call comes just before the renewal point, then the token is kept
        clock.now += TOKEN_LIFETIME - RENEW_BEFORE_SECONDS - 1
        adapter.post_note(CONVERSATION, X_NOTE)
        assert http.tokens_requested() == 1
        # And once within minutes of its expiry, a new one is asked for first
        clock.now += 2
        adapter.post_note(CONVERSATION, X_NOTE)
        assert http.tokens_requested() == 2
        assert http.bearers()[-1] == "Bearer token-2"

    def test_a_401_renews_the_token_and_the_note_is_posted_with_the_new_one(self) -> None:
        # Given Help Scout refusing the token in hand (revoked) once
        http = FakeHttp(
            {
                "POST https://api.helpscout.test/v2/conversations": [
                    HttpResponse(401),
                    HttpResponse(201),
                ]
            }
        )
        result = adapter_for(http).post_note(CONVERSATION, X_NOTE)
        # Then one new token, and the note is posted with it: a 401 was not a delivery
        assert (result.outcome, result.status) == (NoteOutcome.POSTED, HTTP_CREATED)
        assert http.tokens_requested() == 2
        assert http.bearers() == ["Bearer token-1", "Bearer token-2"]

    def test_a_401_to_the_new_token_too_is_rejected_without_a_third_token(self) -> None:
        http = FakeHttp({"POST https://api.helpscout.test/v2/conversations": [HttpResponse(401)]})
        result = adapter_for(http).post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, 401)
        assert http.tokens_requested() == 2

    def test_threads_refused_at_once_share_one_new_token(self) -> None:
        # Given a keeper whose token Help Scout refuses, and many threads hitting that at once
        http = FakeHttp()
        keeper = TokenKeeper(
            HelpScoutSettings("https://api.helpscout.test", APP_ID, APP_SECRET, SECRET),
            http,
            timeout=CALL_TIMEOUT,
        )
        refused = keeper.token()
        assert refused == "token-1"
        results: list[object] = []
        workers = [
            threading.Thread(target=lambda: results.append(keeper.renew_after_refusal("token-1")))
            for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        # Then one new token was asked for, and all got it
        assert http.tokens_requested() == 2
        assert results == ["token-2"] * 8

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [(400, NoteOutcome.REJECTED), (401, NoteOutcome.REJECTED), (503, NoteOutcome.RETRYABLE)],
    )
    def test_a_refused_token_request_sends_no_note(self, status: int, outcome: NoteOutcome) -> None:
        http = FakeHttp()
        http.token_status = status
        result = adapter_for(http).post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.status) == (outcome, status)
        assert "HELPSCOUT_APP_ID" in result.message
        assert [call[1] for call in http.calls] == ["https://api.helpscout.test/v2/oauth2/token"]

    @pytest.mark.parametrize("lifetime", [None, "172800", 0, True])
    def test_a_token_without_a_readable_lifetime_is_used_once(self, lifetime: Any) -> None:
        http = FakeHttp()
        http.lifetime = lifetime
        adapter = adapter_for(http)
        adapter.post_note(CONVERSATION, X_NOTE)
        adapter.post_note(CONVERSATION, X_NOTE)
        assert http.tokens_requested() == 2

    def test_no_token_is_asked_for_without_the_app_credentials(self) -> None:
        http = FakeHttp()
        adapter = adapter_for(http, HELPSCOUT_APP_SECRET="")
        result = adapter.post_note(CONVERSATION, X_NOTE)
        assert result.outcome is NoteOutcome.REJECTED
        assert "HELPSCOUT_APP_SECRET" in result.message
        assert adapter.has_note(CONVERSATION, "m") is None
        assert adapter.find_requester(str(CUSTOMER_ID)).outcome is LookupOutcome.REJECTED
        assert http.calls == []


class TestNoteAnswers:
    def test_a_rate_limit_waits_as_x_ratelimit_retry_after_says(self) -> None:
        answer = HttpResponse(429, {"X-RateLimit-Retry-After": "17"})
        http = FakeHttp({"POST https://api.helpscout.test/v2/conversations": [answer]})
        result = adapter_for(http).post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.retry_after_seconds, result.status) == (
            NoteOutcome.RETRYABLE,
            17,
            429,
        )

    def test_a_lost_answer_is_retryable(self) -> None:
        class Lost(FakeHttp):
            def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
                if url.endswith("/notes"):
                    raise TransportError("read timeout", maybe_delivered=True)
                return super().request(method, url, **kwargs)

        assert adapter_for(Lost()).post_note(CONVERSATION, X_NOTE).outcome is NoteOutcome.RETRYABLE

    def test_the_note_is_the_escaped_html_as_text(self) -> None:
        http = FakeHttp()
        note = text_note("<script>alert(1)</script>")
        adapter_for(http).post_note(CONVERSATION, note)
        method, url, _, _, json_body = http.calls[-1]
        assert (method, url) == ("POST", "https://api.helpscout.test/v2/conversations/1001/notes")
        assert json_body == {"text": "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"}


class TestSettings:
    def test_the_api_url_defaults_to_help_scouts(self) -> None:
        assert HelpScoutSettings.from_settings(make_settings()).api_url == (
            "https://api.helpscout.net"
        )

    @pytest.mark.parametrize("url", ["http://api.helpscout.net", "https://a.test/?q=1", "ftp://x"])
    def test_an_api_url_the_token_must_not_travel_to_is_a_configuration_error(
        self, url: str
    ) -> None:
        with pytest.raises(ConfigurationError, match="HELPSCOUT_API_URL"):
            adapter_for(HELPSCOUT_API_URL=url)

    def test_credentials_stay_out_of_the_settings_repr(self) -> None:
        settings = HelpScoutSettings.from_settings(make_settings(HELPSCOUT_APP_SECRET=APP_SECRET))
        assert APP_SECRET not in repr(settings)
        assert SECRET not in repr(settings)


class TestSignRequest:
    def test_signs_as_help_scout_does_and_the_adapter_accepts_it(self) -> None:
        request = WebhookRequest("POST", "/webhooks/helpscout", body=tags_body())
        headers = sign_request({"HELPSCOUT_WEBHOOK_SECRET": SECRET}, request, START)
        assert headers == {
            "X-HelpScout-Signature": signed(tags_body())["X-HelpScout-Signature"],
            "X-HelpScout-Event": "convo.tags",
        }
        verify(headers, tags_body())

    def test_keeps_the_event_the_request_names(self) -> None:
        request = WebhookRequest(
            "POST",
            "/webhooks/helpscout",
            headers=Headers({"X-HelpScout-Event": "convo.created"}),
            body=tags_body(),
        )
        headers = sign_request({"HELPSCOUT_WEBHOOK_SECRET": SECRET}, request, START)
        assert headers["X-HelpScout-Event"] == "convo.created"

    def test_without_a_secret_it_names_the_key(self) -> None:
        request = WebhookRequest("POST", "/webhooks/helpscout", body=tags_body())
        with pytest.raises(SecretNotConfigured, match="HELPSCOUT_WEBHOOK_SECRET"):
            sign_request({}, request, START)


class TestModule:
    def test_declares_what_the_bridge_reads_from_it(self) -> None:
        spec = helpdesk_spec("helpscout")
        assert spec is helpscout.SPEC
        assert spec.settings == ()
        assert spec.secret_keys == (
            "HELPSCOUT_WEBHOOK_SECRET",
            "HELPSCOUT_APP_ID",
            "HELPSCOUT_APP_SECRET",
        )
        assert spec.optional_keys == ("HELPSCOUT_API_URL", "HELPSCOUT_NOTES_PER_MINUTE")

    def test_the_longest_note_covers_two_tokens_the_threads_and_two_posts(self) -> None:
        assert (2 + THREAD_PAGES + 2) * sum(CALL_TIMEOUT) <= helpscout.SPEC.longest_note_seconds

    def test_the_longest_lookup_covers_two_tokens_and_two_reads(self) -> None:
        assert 4 * sum(CALL_TIMEOUT) <= helpscout.SPEC.longest_lookup_seconds

    def test_the_registry_builds_the_adapter(self) -> None:
        assert get_adapter("helpscout", make_settings(), HttpClient()).name == "helpscout"

    def test_the_event_file_is_a_signed_convo_tags_delivery(self) -> None:
        event = load_event("webhook_helpscout")
        assert event["pathParameters"] == {"helpdesk": "helpscout"}
        assert event["headers"]["x-helpscout-event"] == "convo.tags"
        body = event["body"].encode()
        headers = signed(body, "example-helpscout-webhook-secret")
        assert event["headers"]["x-helpscout-signature"] == headers["X-HelpScout-Signature"]
        assert read(body).user_id == EMAIL


class TestOddAnswers:
    def test_a_token_answer_without_a_token_sends_nothing_and_is_retryable(self) -> None:
        class NoToken(FakeHttp):
            def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
                if url.endswith("/v2/oauth2/token"):
                    self.calls.append((method, url, {}, None, None))
                    return HttpResponse(200, {}, b'{"token_type": "bearer"}')
                return super().request(method, url, **kwargs)

        http = NoToken()
        result = adapter_for(http).post_note(CONVERSATION, X_NOTE)
        assert result.outcome is NoteOutcome.RETRYABLE
        assert len(http.calls) == 1

    def test_a_customer_answer_that_is_not_json_is_retryable(self) -> None:
        http = FakeHttp({"GET https://api.helpscout.test/v2/customers": [HttpResponse(200)]})
        found = adapter_for(http).find_requester(str(CUSTOMER_ID))
        assert found.outcome is LookupOutcome.RETRYABLE

    def test_an_unanswered_look_up_is_retryable(self) -> None:
        class Down(FakeHttp):
            def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
                raise TransportError("connection failed", maybe_delivered=False)

        found = adapter_for(Down()).find_requester(str(CUSTOMER_ID))
        assert found.outcome is LookupOutcome.RETRYABLE

    @pytest.mark.parametrize("status", [401, 403])
    def test_a_refused_look_up_is_rejected(self, status: int) -> None:
        http = FakeHttp({"GET https://api.helpscout.test/v2/customers": [HttpResponse(status)]})
        assert adapter_for(http).find_requester("7").outcome is LookupOutcome.REJECTED


class TestOddPayloads:
    def test_a_conversation_without_tags_field_asks_for_nothing(self) -> None:
        with pytest.raises(NothingToCapture):
            adapter_for().parse(tags_body(tags=None))

    def test_an_overlong_tag_is_refused_naming_tags(self) -> None:
        with pytest.raises(InvalidRequest, match="tags must be at most"):
            adapter_for().parse(tags_body(tags=["bugpilot_session", "x" * 400]))

    def test_a_subject_that_is_not_text_is_refused_naming_it(self) -> None:
        # given a subject that is not a string
        # then the body is refused as a 400 naming the field, not read without it
        with pytest.raises(InvalidRequest, match="subject must be a string"):
            adapter_for().parse(tags_body(subject=["x"]))


class TestProbe:
    def test_an_invalid_api_url_fails_naming_it_without_a_call(self) -> None:
        check = helpscout.probe(make_settings(HELPSCOUT_API_URL="http://x.test"), FakeHttp())
        assert check.access.name == "FAILED"
        assert "HELPSCOUT_API_URL" in check.detail

    def test_an_unreachable_help_scout_is_said_so(self) -> None:
        class Down(FakeHttp):
            def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
                raise TransportError("connection failed", maybe_delivered=False)

        values = {"HELPSCOUT_APP_ID": APP_ID, "HELPSCOUT_APP_SECRET": APP_SECRET}
        check = helpscout.probe(make_settings(**values), Down())
        assert check.access.name == "UNREACHABLE"

    def test_an_answer_without_a_user_fails(self) -> None:
        http = FakeHttp({"GET https://api.helpscout.net/v2/users/me": [HttpResponse(200)]})
        values = {"HELPSCOUT_APP_ID": APP_ID, "HELPSCOUT_APP_SECRET": APP_SECRET}
        check = helpscout.probe(make_settings(**values), http)
        assert check.access.name == "FAILED"
