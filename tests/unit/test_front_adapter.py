"""Front adapter: the signed time and body, the challenge, the delivery id, the tag event (in an
app's envelope or bare), the requester's handle or contact link, settings, the note's Markdown."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge.capture import requests_for
from capture_bridge.capture.bugpilot import ACTION_TAGS
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
    WebhookRequest,
    get_adapter,
    helpdesk_spec,
)
from capture_bridge.helpdesks.front import (
    BUGPILOT_TAGS,
    DEFAULT_API_URL,
    DELIVERY_MEMORY,
    LOOKUP_TIMEOUT,
    MAX_COMMENT_PAGES,
    NOTE_TIMEOUT,
    FrontAdapter,
    FrontSettings,
    markdown_note,
    sign_request,
    sign_webhook,
)
from capture_bridge.http import HttpClient
from capture_bridge.models import CaptureRequest, Delivery
from capture_bridge.notes import Note, html_lines
from capture_bridge.settings import Settings, settings_from
from tests.conftest import START, load_event, webhook_request

SECRET = "front-unit-app-secret"
API_TOKEN = "front-unit-api-token"
API_URL = "https://api2.frontapp.com"
CONVERSATION = "cnv_55c8c149"
CONTACT_LINK = f"{API_URL}/contacts/crd_ada1"
SKEW = timedelta(minutes=5)


def make_settings(**values: str) -> Settings:
    base = {"TABLE_NAME": "t", "FRONT_APP_SECRET": SECRET, "FRONT_API_TOKEN": API_TOKEN}
    return settings_from(base | values)


def adapter_for(**values: str) -> FrontAdapter:
    return FrontAdapter(FrontSettings.from_settings(make_settings(**values)), HttpClient())


def tag_event(
    *,
    tag: str = "bugpilot_session",
    handle: str = "ada@example.com",
    contact: str = CONTACT_LINK,
    subject: str = "Checkout button does nothing",
    event_id: str = "evt_1a2b3c",
    envelope: bool = True,
    **changes: Any,
) -> bytes:
    """Front's `tag` event, in an app's envelope unless `envelope` is False; `changes` replace
    top-level fields of the event (None removes one)."""
    event: dict[str, Any] = {
        "id": event_id,
        "type": "tag",
        "emitted_at": 1764998400.123,
        "target": {"_meta": {"type": "tag"}, "data": {"id": "tag_1", "name": tag}},
        "conversation": {
            "id": CONVERSATION,
            "subject": subject,
            "recipient": {
                "_links": {"related": {"contact": contact}},
                "handle": handle,
                "role": "from",
            },
        },
    }
    event.update(changes)
    event = {key: value for key, value in event.items() if value is not None}
    if not envelope:
        return json.dumps(event).encode()
    return json.dumps({"type": "tag", "authorization": {"id": "cmp_1"}, "payload": event}).encode()


def signed(body: bytes, at: Any = START, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(at.timestamp() * 1000))
    return {
        "Content-Type": "application/json",
        "X-Front-Signature": sign_webhook(secret, timestamp, body),
        "X-Front-Request-Timestamp": timestamp,
    }


def verify(body: bytes, headers: dict[str, str], **values: str) -> Delivery:
    return adapter_for(**values).verify(webhook_request(headers, body, helpdesk="front"), START)


def read(body: bytes) -> list[CaptureRequest]:
    """The captures a body asks for, read as the webhook reads them: adapter, then providers."""
    return requests_for(adapter_for().parse(body), make_settings(), HttpClient())


class TestSignature:
    def test_a_body_signed_with_its_time_is_accepted(self) -> None:
        # given a tag event signed now
        body = tag_event()
        # when it is verified, then it is one delivery, remembered a day
        assert verify(body, signed(body)).remember_for == DELIVERY_MEMORY

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"X-Front-Signature": "c2lnbmF0dXJl"},
            {"X-Front-Request-Timestamp": "1764998400000"},
        ],
        ids=["unsigned", "no-timestamp", "no-signature"],
    )
    def test_a_call_without_both_headers_is_refused(self, headers: dict[str, str]) -> None:
        with pytest.raises(Unauthenticated, match="missing X-Front-Signature"):
            verify(tag_event(), headers)

    def test_a_forged_signature_is_refused(self) -> None:
        body = tag_event()
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(body, signed(body, secret="someone-elses-secret"))

    def test_a_body_changed_after_signing_is_refused(self) -> None:
        headers = signed(tag_event())
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(tag_event(tag="bugpilot_recording"), headers)

    def test_the_signature_covers_the_time(self) -> None:
        # given a signature over one time sent with another
        body = tag_event()
        headers = signed(body) | {"X-Front-Request-Timestamp": str(START.timestamp() * 1000 + 1)}
        with pytest.raises(Unauthenticated):
            verify(body, headers)

    @pytest.mark.parametrize(
        "offset", [-(SKEW + timedelta(seconds=1)), SKEW + timedelta(seconds=1)]
    )
    def test_a_stale_or_future_time_is_refused(self, offset: timedelta) -> None:
        body = tag_event()
        with pytest.raises(Unauthenticated, match="too old or in the future"):
            verify(body, signed(body, at=START + offset))

    @pytest.mark.parametrize("offset", [-SKEW, SKEW])
    def test_five_minutes_either_way_is_still_fresh(self, offset: timedelta) -> None:
        body = tag_event()
        assert verify(body, signed(body, at=START + offset))

    @pytest.mark.parametrize("stamp", ["yesterday", "1764998400.5", "-1", "9" * 30, "١٢٣"])
    def test_an_unreadable_timestamp_is_refused(self, stamp: str) -> None:
        body = tag_event()
        with pytest.raises(Unauthenticated):
            verify(body, signed(body) | {"X-Front-Request-Timestamp": stamp})

    def test_two_signatures_that_disagree_are_refused(self) -> None:
        body = tag_event()
        headers = Headers([*signed(body).items(), ("x-front-signature", "b3RoZXI=")])
        request = WebhookRequest("POST", "/webhooks/front", headers, body)
        with pytest.raises(Unauthenticated, match="conflicting"):
            adapter_for().verify(request, START)

    def test_without_a_configured_secret_everything_is_refused_naming_the_key(self) -> None:
        body = tag_event()
        with pytest.raises(SecretNotConfigured, match="FRONT_APP_SECRET"):
            verify(body, signed(body), FRONT_APP_SECRET="")


class TestChallenge:
    def test_a_signed_challenge_is_echoed_and_asks_for_nothing(self) -> None:
        # given Front's validation call when the app's webhook is saved
        body = json.dumps({"type": "sync", "authorization": {"id": "cmp_1"}}).encode()
        headers = signed(body) | {"x-front-challenge": "8a1f0c3e9b"}
        # when it is verified, then it is answered with the challenge
        with pytest.raises(NothingToCapture) as answered:
            verify(body, headers)
        assert answered.value.answer == {"challenge": "8a1f0c3e9b"}

    @pytest.mark.parametrize("secret", [None, "someone-elses-secret"], ids=["unsigned", "forged"])
    def test_an_unproven_challenge_is_refused(self, secret: str | None) -> None:
        body = b'{"type": "sync"}'
        proof = {} if secret is None else signed(body, secret=secret)
        with pytest.raises(Unauthenticated):
            verify(body, proof | {"x-front-challenge": "8a1f0c3e9b"})

    @pytest.mark.parametrize("challenge", ["", "x" * 257, "a\u0000b"])
    def test_a_challenge_that_is_no_random_string_is_a_bad_request(self, challenge: str) -> None:
        body = b'{"type": "sync"}'
        with pytest.raises(InvalidRequest, match="x-front-challenge"):
            verify(body, signed(body) | {"x-front-challenge": challenge})


class TestDelivery:
    def test_front_retries_of_one_event_are_one_delivery(self) -> None:
        # given the same event sent twice, each time signed afresh
        first = verify(tag_event(), signed(tag_event()))
        body = tag_event(subject="Checkout button does nothing (edited)")
        again = adapter_for().verify(
            webhook_request(signed(body, at=START + SKEW), body, helpdesk="front"), START + SKEW
        )
        # then both are one delivery
        assert again.fingerprint == first.fingerprint

    def test_the_bare_event_and_the_envelope_share_the_id(self) -> None:
        bare = tag_event(envelope=False)
        assert (
            verify(bare, signed(bare)).fingerprint
            == verify(tag_event(), signed(tag_event())).fingerprint
        )

    def test_another_event_is_another_delivery(self) -> None:
        other = tag_event(event_id="evt_9z8y7x")
        assert verify(other, signed(other)) != verify(tag_event(), signed(tag_event()))

    def test_without_an_event_id_the_signature_stands_for_the_call(self) -> None:
        body = tag_event(id=None)
        delivery = verify(body, signed(body))
        assert delivery.remember_for < DELIVERY_MEMORY


class TestTagEvent:
    @pytest.mark.parametrize("envelope", [True, False], ids=["app-envelope", "bare-event"])
    def test_a_capture_tag_asks_for_its_bugpilot_capture(self, envelope: bool) -> None:
        # given a teammate tags a conversation bugpilot_screenshot
        body = tag_event(tag="bugpilot_screenshot", envelope=envelope)
        # when it is read
        [capture] = read(body)
        # then Bugpilot takes a screenshot of the recipient, the subject describing it
        assert (capture.provider, capture.action) == ("bugpilot", "upload-screenshot")
        assert (capture.ticket_id, capture.user_id) == (CONVERSATION, "ada@example.com")
        assert capture.description == "Checkout button does nothing"

    def test_the_tags_are_zendesks(self) -> None:
        assert set(ACTION_TAGS) == BUGPILOT_TAGS

    @pytest.mark.parametrize("tag", ["vip", "BUGPILOT_SESSION", "bugpilot"])
    def test_any_other_tag_asks_for_nothing(self, tag: str) -> None:
        with pytest.raises(NothingToCapture, match="asks for no capture"):
            adapter_for().parse(tag_event(tag=tag))

    @pytest.mark.parametrize("kind", ["untag", "inbound", "comment", "assign"])
    def test_any_other_event_asks_for_nothing(self, kind: str) -> None:
        body = json.dumps({"type": kind, "payload": {"id": "evt_1", "type": kind}}).encode()
        with pytest.raises(NothingToCapture):
            adapter_for().parse(body)

    def test_the_sync_call_asks_for_nothing(self) -> None:
        with pytest.raises(NothingToCapture):
            adapter_for().parse(b'{"type": "sync", "authorization": {"id": "cmp_1"}}')

    def test_capture_links_asks_only_for_the_sessions_the_subject_links(self) -> None:
        link = "https://automation.lambdatest.com/logs/?sessionID=bc02fd99593f14e37850745d66197f89"
        [capture] = read(tag_event(tag="capture_links", subject=f"Failed run {link}"))
        assert (capture.provider, capture.reference) == (
            "lambdatest",
            "bc02fd99593f14e37850745d66197f89",
        )

    def test_capture_links_on_a_subject_linking_nothing_asks_for_nothing(self) -> None:
        with pytest.raises(NothingToCapture, match="links no"):
            adapter_for().parse(tag_event(tag="capture_links", subject="Checkout broken"))

    def test_a_handle_that_is_no_email_leaves_the_contact_to_look_up(self) -> None:
        # given a conversation from a phone number
        ticket = adapter_for().parse(tag_event(handle="+15555550123"))
        # then the requester is looked up by the contact's link, once stored
        assert (ticket.requester, ticket.requester_ref) == ("", CONTACT_LINK)

    def test_an_email_handle_needs_no_look_up(self) -> None:
        ticket = adapter_for().parse(tag_event())
        assert (ticket.requester, ticket.requester_ref) == ("ada@example.com", "")

    def test_neither_handle_nor_contact_is_a_bad_request_naming_both(self) -> None:
        with pytest.raises(InvalidRequest, match=r"conversation\.recipient\.handle"):
            read(tag_event(handle="+15555550123", contact=""))

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b"[]", "body must be a JSON object"),
            (b"{", "body is not valid JSON"),
            (b'{"type": "tag", "payload": []}', "payload must be an object"),
            (tag_event(target=[]), "payload.target must be an object"),
            (tag_event(target={"data": {"name": 7.5}}), "payload.target.data.name"),
            (tag_event(target={"data": {}}), "payload.target.data.name is required"),
            (tag_event(id=None), "payload.id is required"),
            (tag_event(id="evt 1; drop"), "payload.id must be a Front event id"),
            (tag_event(conversation=None), "payload.conversation.id must be"),
            (tag_event(conversation={"id": "../me"}), "payload.conversation.id must be"),
            (
                tag_event(conversation={"id": CONVERSATION, "recipient": "ada"}),
                "payload.conversation.recipient must be an object",
            ),
            (
                tag_event(conversation={"id": CONVERSATION, "subject": ["x"]}),
                "payload.conversation.subject must be a string",
            ),
            (tag_event(envelope=False, target=[]), "target must be an object"),
        ],
    )
    def test_malformed_events_are_refused_naming_the_field(self, body: bytes, field: str) -> None:
        with pytest.raises(InvalidRequest, match=field.replace(".", r"\.")):
            adapter_for().parse(body)


class TestRequesterLookUp:
    @pytest.mark.parametrize(
        "link",
        [
            "https://attacker.example/contacts/crd_1",
            "http://api2.frontapp.com/contacts/crd_1",
            "https://api2.frontapp.com:8443/contacts/crd_1",
            "https://token@api2.frontapp.com/contacts/crd_1",
            "https://api2.frontapp.com.attacker.example/contacts/crd_1",
            "not a url",
        ],
    )
    def test_a_contact_link_off_the_api_host_is_never_followed(self, link: str) -> None:
        # given an HTTP client that fails the test if any call is made
        class NoCalls(HttpClient):
            def request(self, *args: Any, **kwargs: Any) -> Any:
                raise AssertionError("the token must not leave for another host")

        adapter = FrontAdapter(FrontSettings.from_settings(make_settings()), NoCalls())
        # when the requester is looked up by that link, then nobody is found and nothing sent
        assert adapter.find_requester(link).outcome is LookupOutcome.NOT_FOUND


class TestNoteMarkdown:
    def test_payload_markup_is_escaped_and_the_sessions_links_stay_whole(self) -> None:
        report = "https://dash.bugpilot.io/report/r1?a=1&b=[2]"
        lines = (
            "Asked for [x](javascript:alert(1)) <img src=x onerror=alert(1)> `code`",
            f"The capture is ready: {report}",
            "Capture session: s1",
        )
        note = Note("\n".join(lines), html_lines(lines, (report,)), lines, {"report": report})
        body = markdown_note(note)
        assert "\\[x\\](javascript:alert(1))" in body
        assert "\\<img src=x onerror=alert(1)\\>" in body
        assert "\\`code\\`" in body
        assert report in body
        # one paragraph per line, and the marker as it is
        assert body.split("\n\n")[-1] == "Capture session: s1"


class TestSettings:
    def test_the_api_url_defaults_to_fronts_host(self) -> None:
        assert FrontSettings.from_settings(make_settings()).api_url == DEFAULT_API_URL

    def test_the_api_url_may_be_overridden(self) -> None:
        settings = FrontSettings.from_settings(make_settings(FRONT_API_URL="http://127.0.0.1:9/"))
        assert settings.api_url == "http://127.0.0.1:9"

    @pytest.mark.parametrize("url", ["http://api2.frontapp.com", "ftp://x", "https://x/?q=1"])
    def test_an_api_url_the_token_must_not_travel_to_is_refused(self, url: str) -> None:
        with pytest.raises(ConfigurationError, match="FRONT_API_URL"):
            FrontSettings.from_settings(make_settings(FRONT_API_URL=url))

    def test_credentials_stay_out_of_the_settings_repr(self) -> None:
        shown = repr(FrontSettings.from_settings(make_settings()))
        assert SECRET not in shown and API_TOKEN not in shown


class TestSpec:
    def test_signs_as_front_does_and_the_adapter_accepts_it(self) -> None:
        body = tag_event()
        request = webhook_request({}, body, helpdesk="front")
        headers = sign_request({"FRONT_APP_SECRET": SECRET}, request, START)
        assert verify(body, headers)

    @pytest.mark.parametrize("values", [{}, {"FRONT_APP_SECRET": " "}])
    def test_without_a_secret_it_names_the_key(self, values: dict[str, str]) -> None:
        with pytest.raises(SecretNotConfigured, match="FRONT_APP_SECRET"):
            sign_request(values, webhook_request({}, b"{}", helpdesk="front"), START)

    def test_declares_what_the_bridge_reads_from_it(self) -> None:
        spec = helpdesk_spec("front")
        assert spec.webhook_secret_key == "FRONT_APP_SECRET"
        assert spec.secret_keys == ("FRONT_APP_SECRET", "FRONT_API_TOKEN")
        assert spec.optional_keys == ("FRONT_API_URL", "FRONT_NOTES_PER_MINUTE")
        assert spec.longest_note_seconds == (MAX_COMMENT_PAGES + 1) * sum(NOTE_TIMEOUT)
        assert spec.longest_lookup_seconds == sum(LOOKUP_TIMEOUT)

    def test_the_registry_builds_the_adapter(self) -> None:
        assert isinstance(get_adapter("front", make_settings(), HttpClient()), FrontAdapter)

    def test_the_event_file_is_a_tag_event_the_adapter_reads(self) -> None:
        event = load_event("webhook_front")
        ticket = adapter_for().parse(event["body"].encode())
        assert ticket.ticket_id.startswith("cnv_")
        assert ticket.tags == ("bugpilot_session",)
