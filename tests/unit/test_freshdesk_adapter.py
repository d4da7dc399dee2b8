"""Freshdesk adapter: the shared-secret check, the delivery fingerprint, the rule body, settings,
private notes and the look for an earlier note over real HTTP, the probe and the simulator."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge.capture import requests_for
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import (
    Headers,
    WebhookRequest,
    freshdesk,
    get_adapter,
    helpdesk_spec,
)
from capture_bridge.helpdesks.freshdesk import (
    DEDUPE_WINDOW,
    MAX_CONVERSATION_PAGES,
    NOTE_TIMEOUT,
    FreshdeskAdapter,
    FreshdeskSettings,
    delivery_fingerprint,
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
                "requester_external_id or requester_email is required",
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
        spec = helpdesk_spec("freshdesk")
        assert spec is freshdesk.SPEC
        assert spec.settings == ()
        assert spec.webhook_secret_key in spec.secret_keys
        assert spec.optional_keys == ("FRESHDESK_API_URL", "FRESHDESK_NOTES_PER_MINUTE")

    def test_the_longest_note_covers_every_page_and_the_post(self) -> None:
        assert (MAX_CONVERSATION_PAGES + 1) * sum(
            NOTE_TIMEOUT
        ) <= freshdesk.SPEC.longest_note_seconds

    def test_the_registry_builds_the_adapter(self) -> None:
        assert get_adapter("freshdesk", make_settings(), HttpClient()).name == "freshdesk"

    def test_the_event_file_carries_the_readme_rule_body(self) -> None:
        event = load_event("webhook_freshdesk")
        assert json.loads(event["body"]) == json.loads(rule_body())
        assert event["pathParameters"] == {"helpdesk": "freshdesk"}
