"""Freshdesk adapter: the shared-secret check, the delivery fingerprint, the rule body, settings,
private notes and the look for an earlier note over real HTTP, the probe and the simulator."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
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
    freshdesk,
    get_adapter,
    helpdesk_module,
)
from capture_bridge.helpdesks.freshdesk import (
    CONVERSATION_PAGE_SIZE,
    DEDUPE_WINDOW,
    MAX_CONVERSATION_PAGES,
    NOTE_TIMEOUT,
    FreshdeskAdapter,
    FreshdeskSettings,
    delivery_fingerprint,
    probe,
    sign_request,
)
from capture_bridge.http import HttpClient
from capture_bridge.models import CaptureRequest, Delivery
from capture_bridge.notes import Note, html_lines
from capture_bridge.settings import Settings, settings_from
from local_runner.simulators import FreshdeskSimulator
from local_runner.simulators._server import JsonHttpServer, RecordedRequest, Reply
from tests.conftest import START, load_event, webhook_request

SECRET = "fd-unit-webhook-secret"
API_KEY = "fd-unit-api-key"
TICKET = "1001"
# Freshdesk retries a failed webhook 5, 30 and 60 minutes after the call before.
FRESHDESK_RETRIES = (timedelta(minutes=5), timedelta(minutes=30), timedelta(minutes=60))
# A client read timeout shorter than the simulator's scripted delay: the call times out.
SHORT_TIMEOUT = (1.0, 0.5)
SLOW_ANSWER_SECONDS = 1.5
RETRY_AFTER = 17
HTTP_CREATED = 201
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_NOT_FOUND = 404
HTTP_TOO_MANY = 429


def make_settings(**values: str) -> Settings:
    base = {"TABLE_NAME": "t", "FRESHDESK_WEBHOOK_SECRET": SECRET}
    return settings_from(base | values)


def adapter_for(simulator: FreshdeskSimulator | None = None, **values: str) -> FreshdeskAdapter:
    if simulator is not None:
        values = {
            "FRESHDESK_DOMAIN": "acme",
            "FRESHDESK_API_URL": simulator.url,
            "FRESHDESK_API_KEY": API_KEY,
        } | values
    settings = FreshdeskSettings.from_settings(make_settings(**values))
    return FreshdeskAdapter(settings, HttpClient(), timeout=SHORT_TIMEOUT)


def rule_body(**fields: Any) -> bytes:
    """The README's rule body as Freshdesk renders it, `fields` changed (None removes one)."""
    body: dict[str, Any] = {
        "ticket_id": TICKET,
        "requester_email": "ada@example.com",
        "requester_external_id": "user-42",
        "tags": "bugpilot_session, vip",
    }
    body.update(fields)
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Content-Type": "application/json", "Authorization": f"Basic {token}"}


def verify(adapter: FreshdeskAdapter, headers: dict[str, str], body: bytes) -> Delivery:
    return adapter.verify(webhook_request(headers, body, helpdesk="freshdesk"), START)


def read(body: bytes, **values: str) -> CaptureRequest:
    """The one capture a body asks for, read as the webhook reads it: adapter, then providers."""
    [request] = requests_for(
        adapter_for(None, **values).parse(body), make_settings(**values), HttpClient()
    )
    return request


def text_note(*lines: str, links: tuple[str, ...] = ()) -> Note:
    """A note of `lines` in both forms, with `links` as the session's own links."""
    named = {f"link{number}": url for number, url in enumerate(links)}
    return Note("\n".join(lines), html_lines(lines, links), lines, named)


X_NOTE = text_note("x")


@pytest.fixture
def desk() -> Iterator[FreshdeskSimulator]:
    with FreshdeskSimulator(api_key=API_KEY, webhook_secret=SECRET) as simulator:
        yield simulator


class OddAnswers(JsonHttpServer):
    """Answers every call with one fixed reply, for answers the simulator never gives."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply

    def handle(self, request: RecordedRequest) -> Reply:
        return self.reply


class TestSharedSecret:
    def test_the_secret_as_a_bearer_token_is_accepted(self) -> None:
        delivery = verify(adapter_for(), bearer(), rule_body())
        assert delivery.remember_for == DEDUPE_WINDOW

    def test_the_secret_as_the_basic_password_is_accepted_whatever_the_user_name(self) -> None:
        # Given the rule's "Requires authentication" fields: any user name, the secret as password
        for user in ("freshdesk", "", "bridge"):
            verify(adapter_for(), basic(user, SECRET), rule_body())

    def test_header_name_and_scheme_are_case_insensitive(self) -> None:
        verify(adapter_for(), {"AUTHORIZATION": f"bearer {SECRET}"}, rule_body())

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({}, "missing Authorization"),
            ({"Authorization": ""}, "missing Authorization"),
            ({"Authorization": "Token " + SECRET}, "missing Authorization"),
            (bearer("wrong"), "does not match"),
            (bearer(SECRET + "x"), "does not match"),
            (bearer(SECRET[:-1]), "does not match"),
            (basic(SECRET, "wrong"), "does not match"),
            ({"Authorization": "Basic !!!"}, "unreadable Basic"),
            (bearer("\ud800"), "does not match"),
        ],
    )
    def test_forged_or_unproven_calls_are_refused(
        self, headers: dict[str, str], reason: str
    ) -> None:
        with pytest.raises(Unauthenticated, match=reason):
            verify(adapter_for(), headers, rule_body())

    def test_two_authorization_headers_that_disagree_are_refused(self) -> None:
        # Given the genuine secret and a forged one under another spelling
        headers = [("Authorization", f"Bearer {SECRET}"), ("authorization", "Bearer forged")]
        request = WebhookRequest(
            "POST", "/webhooks/freshdesk", headers=Headers(headers), body=rule_body()
        )
        # Then neither wins
        with pytest.raises(Unauthenticated, match="conflicting"):
            adapter_for().verify(request, START)

    @pytest.mark.parametrize("blank", ["", " ", "\n"])
    def test_without_a_configured_secret_everything_is_refused_naming_the_key(
        self, blank: str
    ) -> None:
        adapter = adapter_for(FRESHDESK_WEBHOOK_SECRET=blank)
        with pytest.raises(SecretNotConfigured, match="FRESHDESK_WEBHOOK_SECRET"):
            verify(adapter, bearer(blank), rule_body())

    def test_a_pasted_secret_loses_its_surrounding_whitespace(self) -> None:
        adapter = adapter_for(FRESHDESK_WEBHOOK_SECRET=f"  {SECRET}\n")
        assert verify(adapter, bearer(), rule_body())

    def test_the_secret_is_checked_before_the_body_is_read(self) -> None:
        # Given a body no parser accepts, without the secret: refused as unproven, not as invalid
        with pytest.raises(Unauthenticated):
            verify(adapter_for(), {}, b"not json")


class TestDeliveryFingerprint:
    def test_the_window_outlasts_every_freshdesk_retry(self) -> None:
        assert sum(FRESHDESK_RETRIES, timedelta()) < DEDUPE_WINDOW

    def test_a_retry_of_the_same_call_has_the_same_fingerprint(self) -> None:
        first = verify(adapter_for(), bearer(), rule_body())
        # Freshdesk's retry may carry the credentials in the other form the rule allows
        again = verify(adapter_for(), basic("x", SECRET), rule_body())
        assert first == again

    @pytest.mark.parametrize(
        "same",
        [
            rule_body(ticket_id=int(TICKET)),
            rule_body(ticket_id=f" {TICKET} "),
            json.dumps(dict(reversed(json.loads(rule_body()).items()))).encode(),
            rule_body(requester_email="someone@example.com"),
            rule_body(requester_external_id=None),
        ],
    )
    def test_the_ticket_and_what_it_asks_for_make_the_fingerprint(self, same: bytes) -> None:
        assert delivery_fingerprint(same) == delivery_fingerprint(rule_body())

    @pytest.mark.parametrize(
        "other",
        [
            rule_body(ticket_id="1002"),
            rule_body(action="upload-screenshot"),
            rule_body(tags="bugpilot_screenshot"),
            rule_body(lambdatest_session_id="bc02fd99593f14e37850745d66197f89"),
            rule_body(description="Checkout broken"),
        ],
    )
    def test_another_ticket_or_another_capture_is_another_call(self, other: bytes) -> None:
        assert delivery_fingerprint(other) != delivery_fingerprint(rule_body())

    @pytest.mark.parametrize(
        "unreadable", [b"not json", b"[1]", b"\xff", rule_body(ticket_id=[1]), b"{}"]
    )
    def test_an_unreadable_body_is_fingerprinted_as_it_is_and_never_raises(
        self, unreadable: bytes
    ) -> None:
        fingerprint = delivery_fingerprint(unreadable)
        assert fingerprint == delivery_fingerprint(unreadable)
        assert fingerprint != delivery_fingerprint(unreadable + b" ")


class TestParse:
    def test_reads_the_readme_rule_body(self) -> None:
        ticket = adapter_for().parse(rule_body())
        assert (ticket.helpdesk, ticket.ticket_id, ticket.requester, ticket.label) == (
            "freshdesk",
            TICKET,
            "user-42",
            "Freshdesk ticket #1001",
        )
        # {{ticket.tags}} renders comma-separated
        assert ticket.tags == ("bugpilot_session", "vip")
        request = read(rule_body())
        assert (request.provider, request.action, request.user_id) == (
            "bugpilot",
            "upload-session",
            "user-42",
        )
        assert request.description == "Requested from Freshdesk ticket #1001"

    def test_a_blank_external_id_leaves_the_email(self) -> None:
        # {{ticket.contact.unique_external_id}} renders empty for a contact without one
        assert read(rule_body(requester_external_id="")).user_id == "ada@example.com"

    def test_the_ticket_id_may_be_a_json_number(self) -> None:
        assert adapter_for().parse(rule_body(ticket_id=int(TICKET))).ticket_id == TICKET

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b'"1001"', "must be a JSON object"),
            (b"[]", "must be a JSON object"),
            (rule_body(ticket_id=None), "ticket_id is required"),
            (rule_body(ticket_id=""), "ticket_id is required"),
            (rule_body(ticket_id="0"), "a Freshdesk ticket number"),
            (rule_body(ticket_id="-5"), "a Freshdesk ticket number"),
            (rule_body(ticket_id="12/../../agents"), "a Freshdesk ticket number"),
            (rule_body(ticket_id="{{ticket.id}}"), "a Freshdesk ticket number"),
            (rule_body(ticket_id=True), "ticket_id must be a string"),
            (rule_body(ticket_id=[1001]), "ticket_id must be a string"),
            (rule_body(requester_email={"a": 1}), "requester_email must be a string"),
            (rule_body(tags=7), "tags must be"),
            (
                rule_body(requester_external_id=None, requester_email=""),
                "external id or email is required",
            ),
            (rule_body(action="drop-tables"), "unknown action 'drop-tables'"),
        ],
    )
    def test_bad_bodies_are_refused_naming_the_field(self, body: bytes, message: str) -> None:
        with pytest.raises(InvalidRequest, match=message):
            read(body)


class TestSettings:
    def test_the_domain_gives_the_freshdesk_url(self) -> None:
        settings = FreshdeskSettings.from_settings(make_settings(FRESHDESK_DOMAIN="acme"))
        assert settings.base_url == "https://acme.freshdesk.com"

    def test_the_api_url_overrides_the_domain(self) -> None:
        values = {"FRESHDESK_DOMAIN": "acme", "FRESHDESK_API_URL": "https://help.acme.test/"}
        settings = FreshdeskSettings.from_settings(make_settings(**values))
        assert settings.base_url == "https://help.acme.test"

    def test_nothing_set_is_not_an_error_but_no_url(self) -> None:
        assert FreshdeskSettings.from_settings(make_settings()).base_url == ""

    @pytest.mark.parametrize(
        "domain", ["Acme", "acme.freshdesk.com", "https://acme.freshdesk.com", "ac me", "-acme"]
    )
    def test_a_domain_that_is_not_a_plain_name_is_a_configuration_error(self, domain: str) -> None:
        with pytest.raises(ConfigurationError, match="FRESHDESK_DOMAIN"):
            adapter_for(FRESHDESK_DOMAIN=domain)

    @pytest.mark.parametrize(
        "url", ["http://acme.freshdesk.com", "ftp://x.test", "https://", "https://a.test/?q=1"]
    )
    def test_an_api_url_the_key_must_not_travel_to_is_a_configuration_error(self, url: str) -> None:
        with pytest.raises(ConfigurationError, match="FRESHDESK_API_URL"):
            adapter_for(FRESHDESK_API_URL=url)

    def test_credentials_stay_out_of_the_settings_repr(self) -> None:
        settings = FreshdeskSettings.from_settings(make_settings(FRESHDESK_API_KEY=API_KEY))
        assert API_KEY not in repr(settings)
        assert SECRET not in repr(settings)


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


class TestSignRequest:
    def test_signs_as_the_rule_sends_and_the_adapter_accepts_it(self) -> None:
        request = WebhookRequest("POST", "/webhooks/freshdesk", body=rule_body())
        headers = sign_request({"FRESHDESK_WEBHOOK_SECRET": SECRET}, request, START)
        assert headers == {"Authorization": f"Bearer {SECRET}"}
        verify(adapter_for(), headers, rule_body())

    @pytest.mark.parametrize("values", [{}, {"FRESHDESK_WEBHOOK_SECRET": "  "}])
    def test_without_a_secret_it_names_the_key(self, values: dict[str, str]) -> None:
        request = WebhookRequest("POST", "/webhooks/freshdesk", body=rule_body())
        with pytest.raises(SecretNotConfigured, match="FRESHDESK_WEBHOOK_SECRET"):
            sign_request(values, request, START)


class TestModule:
    def test_declares_what_the_bridge_reads_from_it(self) -> None:
        module = helpdesk_module("freshdesk")
        assert module is freshdesk
        assert module.SETTINGS == ()
        assert module.WEBHOOK_SECRET_KEY in module.SECRET_KEYS
        assert module.OPTIONAL_KEYS == ("FRESHDESK_API_URL",)

    def test_the_longest_note_covers_every_page_and_the_post(self) -> None:
        assert (MAX_CONVERSATION_PAGES + 1) * sum(NOTE_TIMEOUT) <= freshdesk.LONGEST_NOTE_SECONDS

    def test_the_registry_builds_the_adapter(self) -> None:
        assert get_adapter("freshdesk", make_settings(), HttpClient()).name == "freshdesk"

    def test_the_event_file_carries_the_readme_rule_body(self) -> None:
        event = load_event("webhook_freshdesk")
        assert json.loads(event["body"]) == json.loads(rule_body())
        assert event["pathParameters"] == {"helpdesk": "freshdesk"}


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
