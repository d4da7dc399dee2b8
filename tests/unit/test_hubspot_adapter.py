"""HubSpot adapter: the v3 signature over method, URI, body and time; the event array; settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from capture_bridge.capture import requests_for
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import Headers, WebhookRequest, get_adapter
from capture_bridge.helpdesks.hubspot import (
    DEFAULT_API_URL,
    EVENT_MEMORY,
    MAX_AGE,
    MAX_FUTURE,
    HubSpotAdapter,
    HubSpotSettings,
    event_delivery,
    sign_request,
    signed_uri,
)
from capture_bridge.http import HttpClient
from capture_bridge.models import TicketRequest
from capture_bridge.settings import Settings, settings_from
from local_runner.simulators.hubspot import HubSpotSimulator
from tests.conftest import START

SECRET = "hubspot-test-client-secret"
TOKEN = "pat-na1-hubspot-test-token"
HOST = "abc123.execute-api.us-east-1.amazonaws.com"
MARKER = "Capture session: 0b9a1c2e-4f5d-4e6a-9b7c-8d9e0f1a2b3c"
# Fast timeouts: a scripted delay longer than the read timeout is a timeout.
FAST = (1.0, 0.5)
SLOWER_THAN_FAST = 1.5


def make_settings(**values: str) -> Settings:
    return settings_from({"TABLE_NAME": "t", "HUBSPOT_CLIENT_SECRET": SECRET} | values)


def adapter_for(hubspot: HubSpotSimulator | None = None, /, **values: str) -> HubSpotAdapter:
    if hubspot is not None:
        values = {"HUBSPOT_API_URL": hubspot.url, "HUBSPOT_ACCESS_TOKEN": TOKEN} | values
    return HubSpotAdapter(
        HubSpotSettings.from_settings(make_settings(**values)), HttpClient(), timeout=FAST
    )


def event(ticket: Any = 1001, value: str = "upload-session", **changes: Any) -> dict[str, Any]:
    """One of HubSpot's events, with `changes` (None removes a field)."""
    found = HubSpotSimulator.event(1001, value)
    found["eventId"] = changes.pop("eventId", 501)
    found["objectId"] = ticket
    found.update(changes)
    return {key: value for key, value in found.items() if value is not None}


def body_of(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events) or [event()]).encode()


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's documented v3 recipe, written out independently of the adapter."""
    message = f"{method}{uri}{body.decode()}{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def call(
    body: bytes,
    *,
    at: datetime = START,
    uri: str = f"https://{HOST}/webhooks/hubspot",
    path: str = "/webhooks/hubspot",
    query: str = "",
    secret: str = SECRET,
    headers: dict[str, str] | None = None,
) -> WebhookRequest:
    """A call as HubSpot makes it: signed over `uri`, sent to `path?query` on `HOST`."""
    timestamp = str(int(at.timestamp() * 1000))
    sent = {
        "Host": HOST,
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": hubspot_signature(secret, "POST", uri, body, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
        # The older signature HubSpot sends beside v3; it decides nothing.
        "X-HubSpot-Signature": hashlib.sha256(f"{secret}{body.decode()}".encode()).hexdigest(),
        "X-HubSpot-Signature-Version": "v1",
    }
    sent.update(headers or {})
    merged = {name: value for name, value in sent.items() if value != "-"}
    return WebhookRequest("POST", path, Headers(merged), body, query)


def tickets(body: bytes, **values: str) -> list[TicketRequest]:
    return adapter_for(**values).parse(body)


class TestSignature:
    def test_a_signed_fresh_call_is_accepted(self) -> None:
        # given a call signed as HubSpot documents it, at this moment
        delivery = adapter_for().verify(call(body_of()), START)
        # then it is proven; each event has its own delivery, the call's is remembered a day
        assert delivery.remember_for == EVENT_MEMORY

    def test_a_url_with_a_query_string_is_signed_with_it(self) -> None:
        # given a Target URL with a query string, signed with it in the URI
        body = body_of()
        query = "portal=62515&source=hubspot"
        signed = call(body, uri=f"https://{HOST}/webhooks/hubspot?{query}", query=query)
        # then it verifies
        adapter_for().verify(signed, START)
        # and the same signature does not hold for the path alone, nor a reordered query
        with pytest.raises(Unauthenticated):
            adapter_for().verify(
                call(body, uri=f"https://{HOST}/webhooks/hubspot?{query}", query=""), START
            )
        with pytest.raises(Unauthenticated):
            adapter_for().verify(
                call(
                    body,
                    uri=f"https://{HOST}/webhooks/hubspot?{query}",
                    query="source=hubspot&portal=62515",
                ),
                START,
            )

    def test_the_escapes_hubspot_lists_are_decoded_before_it_signs(self) -> None:
        # given a query sent with %3A, %2F and %40 (decoded in what HubSpot signs) and %20 (kept)
        query = "next=https%3A%2F%2Fapp.example%2Fx&by=ops%40acme&note=a%20b"
        decoded = "next=https://app.example/x&by=ops@acme&note=a%20b"
        body = body_of()
        # then the call HubSpot signed over the decoded URI verifies
        signed = call(body, uri=f"https://{HOST}/webhooks/hubspot?{decoded}", query=query)
        adapter_for().verify(signed, START)
        # and one signed over the URI as sent (those escapes not decoded) does not
        raw = call(body, uri=f"https://{HOST}/webhooks/hubspot?{query}", query=query)
        with pytest.raises(Unauthenticated):
            adapter_for().verify(raw, START)

    def test_the_listed_escapes_are_decoded_in_either_case_and_no_others(self) -> None:
        request = WebhookRequest(
            "POST", "/webhooks/hubspot", Headers({"Host": HOST}), query_string="a=%3a%3B%2C%7E%25"
        )
        assert signed_uri(request) == f"https://{HOST}/webhooks/hubspot?a=:;,%7E%25"

    def test_the_host_it_was_sent_to_is_signed(self) -> None:
        # given a call signed for another host (a replay to another deployment)
        body = body_of()
        other = call(body, uri="https://other.example/webhooks/hubspot")
        with pytest.raises(Unauthenticated, match="does not match"):
            adapter_for().verify(other, START)

    @pytest.mark.parametrize(
        "headers",
        [
            {"X-HubSpot-Signature-v3": "-"},
            {"X-HubSpot-Signature-v3": "-", "X-HubSpot-Signature-Version": "v2"},
        ],
        ids=["v1 only", "v2 only"],
    )
    def test_a_call_with_only_the_older_signature_is_refused(self, headers: dict[str, str]) -> None:
        # given a call carrying a valid older signature but no v3 (which alone carries time)
        request = call(body_of(), headers=headers)
        # then it is refused, however right the older one is
        with pytest.raises(Unauthenticated, match="X-HubSpot-Signature-v3"):
            adapter_for().verify(request, START)

    @pytest.mark.parametrize(
        ("secret", "headers"),
        [
            ("another-apps-secret", {}),
            (SECRET, {"X-HubSpot-Signature-v3": base64.b64encode(b"\0" * 32).decode()}),
            (SECRET, {"X-HubSpot-Signature-v3": "not base64 at all"}),
            (SECRET, {"X-HubSpot-Request-Timestamp": "-"}),
            (SECRET, {"X-HubSpot-Request-Timestamp": "yesterday"}),
        ],
        ids=["wrong secret", "forged", "garbage", "no timestamp", "unreadable timestamp"],
    )
    def test_unproven_calls_are_refused(self, secret: str, headers: dict[str, str]) -> None:
        with pytest.raises(Unauthenticated):
            adapter_for().verify(call(body_of(), secret=secret, headers=headers), START)

    def test_a_tampered_body_is_refused(self) -> None:
        signed = call(body_of())
        tampered = WebhookRequest(
            signed.method, signed.path, signed.headers, body_of(event(1002)), ""
        )
        with pytest.raises(Unauthenticated, match="does not match"):
            adapter_for().verify(tampered, START)

    @pytest.mark.parametrize(
        "sent_at",
        [
            START - MAX_AGE - timedelta(seconds=1),
            START + MAX_FUTURE + timedelta(seconds=1),
        ],
        ids=["stale", "future"],
    )
    def test_a_timestamp_out_of_the_window_is_refused(self, sent_at: datetime) -> None:
        # given a correctly signed call whose signed timestamp is out of the 5-minute window
        with pytest.raises(Unauthenticated, match="too old or in the future"):
            adapter_for().verify(call(body_of(), at=sent_at), START)

    def test_the_edges_of_the_window_are_accepted(self) -> None:
        adapter_for().verify(call(body_of(), at=START - MAX_AGE), START)
        adapter_for().verify(call(body_of(), at=START + MAX_FUTURE), START)

    def test_conflicting_signature_headers_are_refused(self) -> None:
        signed = call(body_of())
        pairs = [*signed.headers.items(), ("x-hubspot-signature-v3", "AAAA")]
        doubled = WebhookRequest("POST", signed.path, Headers(pairs), signed.body, "")
        with pytest.raises(Unauthenticated, match="conflicting"):
            adapter_for().verify(doubled, START)

    def test_without_the_client_secret_every_call_is_refused_naming_it(self) -> None:
        adapter = HubSpotAdapter(
            HubSpotSettings.from_settings(settings_from({"TABLE_NAME": "t"})), HttpClient()
        )
        with pytest.raises(SecretNotConfigured, match="HUBSPOT_CLIENT_SECRET"):
            adapter.verify(call(body_of()), START)


class TestParse:
    def test_two_triggering_events_on_two_tickets_are_two_captures(self) -> None:
        # given an array with two events setting the trigger property, on two tickets
        body = body_of(
            event(1001, "upload-session", eventId=501),
            event("1002", "show-recording-ui", eventId=502),
        )
        first, second = tickets(body)
        # then each is one ticket, asking for its action, remembered by its own eventId a day
        assert (first.ticket_id, first.fields) == ("1001", {"action": "upload-session"})
        assert (second.ticket_id, second.fields) == ("1002", {"action": "show-recording-ui"})
        assert first.delivery == event_delivery("501")
        assert second.delivery == event_delivery("502")
        assert first.delivery is not None and first.delivery.remember_for == timedelta(days=1)
        # and the payload names no requester: each is looked up by its ticket, once stored
        assert (first.requester, first.requester_ref) == ("", "1001")
        assert first.label == "HubSpot ticket 1001"
        assert first.names_requester

    def test_an_event_id_is_the_same_delivery_as_a_number_or_a_string(self) -> None:
        [as_number] = tickets(body_of(event(eventId=501)))
        [as_text] = tickets(body_of(event(eventId="501")))
        assert as_number.delivery == as_text.delivery

    @pytest.mark.parametrize(
        "other",
        [
            event(subscriptionType="ticket.creation"),
            event(subscriptionType="contact.propertyChange"),
            event(propertyName="hs_pipeline_stage", propertyValue="upload-session"),
            event(value=""),
            event(value="no thanks"),
            event(value="UPLOAD-SESSION"),
        ],
        ids=["creation", "contact", "other property", "cleared", "other value", "other case"],
    )
    def test_other_events_are_passed_over(self, other: dict[str, Any]) -> None:
        # given the one triggering event among another
        found = tickets(body_of(other, event(1003, "upload-screenshot")))
        # then only it asks for a capture
        assert [(t.ticket_id, t.fields["action"]) for t in found] == [("1003", "upload-screenshot")]

    def test_an_array_with_no_triggering_event_asks_for_nothing(self) -> None:
        assert tickets(body_of(event(propertyName="subject"))) == []
        assert tickets(b"[]") == []

    def test_the_trigger_property_is_a_setting(self) -> None:
        body = body_of(event(propertyName="bug_capture"), event(1002, eventId=9))
        found = tickets(body, HUBSPOT_TRIGGER_PROPERTY="bug_capture")
        assert [t.ticket_id for t in found] == ["1001"]

    def test_a_value_holding_a_session_link_goes_to_the_capture_sources_as_text(self) -> None:
        link = (
            "Reproduced in https://console.notte.cc/sessions/33c3c8bf-9d6d-4dff-8248-142eaf347f59"
        )
        [ticket] = tickets(body_of(event(value=link)))
        assert ticket.fields == {"text": link}
        [capture] = requests_for(ticket, make_settings(NOTTE_API_KEY="k"), HttpClient())
        assert (capture.provider, capture.reference) == (
            "notte",
            "33c3c8bf-9d6d-4dff-8248-142eaf347f59",
        )

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b"{not json", "body is not valid JSON"),
            (b'{"eventId": 1}', "body must be a JSON array"),
            (b"[1]", "[0] must be an event object"),
            (body_of(event(), event(subscriptionType=7)), "[1].subscriptionType"),
            (body_of(event(propertyName=["capture_request"])), "[0].propertyName"),
            (body_of(event(value={"x": 1})), "[0].propertyValue"),  # type: ignore[arg-type]
            (body_of(event(eventId=None)), "[0].eventId is required"),
            (body_of(event(eventId=True)), "[0].eventId"),
            (body_of(event(ticket=None)), "[0].objectId must be a HubSpot ticket id"),
            (body_of(event(ticket="12a")), "[0].objectId must be a HubSpot ticket id"),
            (body_of(event(ticket=0)), "[0].objectId must be a HubSpot ticket id"),
        ],
    )
    def test_malformed_bodies_are_refused_naming_the_field(self, body: bytes, field: str) -> None:
        with pytest.raises(InvalidRequest) as refused:
            tickets(body)
        assert field in str(refused.value)

    def test_markup_in_a_value_is_only_text(self) -> None:
        # given a value with markup and a link: it is the capture's text, never parsed as HTML
        hostile = '<img src=x onerror=alert(1)> https://evil.test/"><script>'
        [ticket] = tickets(body_of(event(value=hostile)))
        assert ticket.fields == {"text": hostile}


class TestSettings:
    def test_defaults(self) -> None:
        own = HubSpotSettings.from_settings(make_settings())
        assert (own.api_url, own.trigger_property) == (DEFAULT_API_URL, "capture_request")
        assert own.external_id_property == ""

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("HUBSPOT_TRIGGER_PROPERTY", "Capture Request"),
            ("HUBSPOT_EXTERNAL_ID_PROPERTY", "user-id"),
            ("HUBSPOT_API_URL", "http://api.hubapi.com"),
        ],
    )
    def test_invalid_settings_name_the_key(self, key: str, value: str) -> None:
        with pytest.raises(ConfigurationError, match=key):
            HubSpotSettings.from_settings(make_settings(**{key: value}))

    def test_credentials_never_show_in_a_repr(self) -> None:
        own = HubSpotSettings.from_settings(make_settings(HUBSPOT_ACCESS_TOKEN=TOKEN))
        assert SECRET not in repr(own) and TOKEN not in repr(own)

    def test_the_registry_builds_it(self) -> None:
        assert get_adapter("hubspot", make_settings(), HttpClient()).name == "hubspot"


class TestSignRequest:
    def test_what_it_signs_the_adapter_accepts(self) -> None:
        # given the local runner's signer, for a call to a query-string URL on a host
        body = body_of()
        request = WebhookRequest(
            "POST", "/webhooks/hubspot", Headers({"host": HOST}), body, "portal=1%3A2"
        )
        headers = sign_request({"HUBSPOT_CLIENT_SECRET": SECRET}, request, START)
        # then it is HubSpot's own recipe, and the adapter accepts it
        timestamp = headers["X-HubSpot-Request-Timestamp"]
        uri = f"https://{HOST}/webhooks/hubspot?portal=1:2"
        expected = hubspot_signature(SECRET, "POST", uri, body, timestamp)
        assert headers["X-HubSpot-Signature-v3"] == expected
        signed = WebhookRequest("POST", request.path, Headers(headers), body, request.query_string)
        adapter_for().verify(signed, START)

    def test_a_call_without_a_host_is_signed_for_the_host_it_names(self) -> None:
        headers = sign_request(
            {"HUBSPOT_CLIENT_SECRET": SECRET}, WebhookRequest("POST", "/webhooks/hubspot"), START
        )
        adapter_for().verify(
            WebhookRequest("POST", "/webhooks/hubspot", Headers(headers), b""), START
        )
        assert headers["Host"] == "localhost"

    def test_without_the_secret_it_names_the_key(self) -> None:
        with pytest.raises(SecretNotConfigured, match="HUBSPOT_CLIENT_SECRET"):
            sign_request({}, WebhookRequest("POST", "/webhooks/hubspot"), START)
