"""HubSpot tickets end to end: signed event arrays, the requester looked up once, one note per
capture, against moto and the simulators; the events file and `sign-event`."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from capture_bridge.helpdesks import Headers, WebhookRequest
from capture_bridge.helpdesks.hubspot import MAX_AGE, MAX_FUTURE, sign_request
from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.webhook import WebhookAnswer, receive, receive_event
from local_runner.events import signed_event
from local_runner.simulators import BugpilotSimulator
from local_runner.simulators.hubspot import HubSpotSimulator
from tests.conftest import EVENTS, Clock, load_event, runtime_with
from tests.helpdesk_desk import HelpdeskDesk, stored

SECRET = "hubspot-integration-secret"
TOKEN = "pat-na1-hubspot-integration-token"
HOST = "abc123.execute-api.us-east-1.amazonaws.com"
TICKET = "1001"
USER = "ada@example.com"
RETRY_AFTER = 90
HOSTILE_EMAIL = '"<img src=x onerror=alert(1)>"@example.com'


@pytest.fixture
def hubspot() -> Iterator[HubSpotSimulator]:
    with HubSpotSimulator(access_token=TOKEN, client_secret=SECRET) as simulator:
        yield simulator


@pytest.fixture
def hubspot_env(env: dict[str, str], hubspot: HubSpotSimulator) -> dict[str, str]:
    # The simulator's settings without the demo's external id property: requesters are emails.
    settings = hubspot.bridge_settings()
    settings.pop("HUBSPOT_EXTERNAL_ID_PROPERTY")
    return env | settings


Desk = HelpdeskDesk[HubSpotSimulator]


@pytest.fixture
def desk(
    hubspot_env: dict[str, str],
    clock: Clock,
    hubspot: HubSpotSimulator,
    bugpilot: BugpilotSimulator,
) -> Desk:
    bugpilot.connect_user(USER)
    for ticket in (TICKET, "1002", "1003"):
        hubspot.add_contact(ticket, email=USER)
    return Desk(
        runtime_with(hubspot_env), clock, hubspot, bugpilot, hubspot_env["TABLE_NAME"], proof=proof
    )


def proof(body: bytes, at: datetime, *, query: str = "", secret: str = SECRET) -> dict[str, str]:
    """HubSpot's headers for `body` sent at `at` to the webhook on HOST (with `query`)."""
    request = WebhookRequest("POST", "/webhooks/hubspot", Headers({"host": HOST}), body, query)
    return sign_request({"HUBSPOT_CLIENT_SECRET": secret}, request, at)


def events(*found: dict[str, Any]) -> bytes:
    return json.dumps(list(found)).encode()


def trigger(ticket: str = TICKET, value: str = "upload-session", event_id: int = 501) -> bytes:
    return events(HubSpotSimulator.event(ticket, value, event_id=event_id))


def send_to(desk: Desk, body: bytes, query: str, headers: dict[str, str]) -> WebhookAnswer:
    return receive(
        "hubspot",
        headers,
        body.decode(),
        is_base64=False,
        query_string=query,
        runtime_factory=lambda: desk.runtime,
        clock=desk.clock,
    )


class TestOneNotePerCapture:
    def test_a_delivery_gets_one_capture_and_one_note_with_the_requester_looked_up_once(
        self, desk: Desk
    ) -> None:
        # given HubSpot's call for an agent setting the trigger property on the ticket
        session_id = desk.created(trigger())
        # then Bugpilot is asked once, for the ticket's contact, looked up with two reads
        [action] = desk.bugpilot.requests("action")
        assert action.json()["userId"] == USER
        assert action.json()["action"] == "upload-session"
        # when the report exists and the resolver runs
        report = desk.report_ready(session_id)
        desk.clock.advance(hours=1)
        desk.run()
        # then exactly one note is on the ticket, with the marker and the report as a link
        [note] = desk.notes(TICKET)
        assert f"Capture session: {session_id}" in note
        assert f'<a href="{report}">' in note
        [post] = desk.simulator.requests("post")
        [association] = post.json()["associations"]
        assert association["to"] == {"id": TICKET}
        assert desk.note_state(session_id) is NoteState.POSTED
        # and the requester was fetched once for the whole capture
        assert len(desk.simulator.requests("ticket_contacts")) == 1
        assert len(desk.simulator.requests("contact")) == 1

    def test_a_signature_over_a_url_with_a_query_string_is_accepted(self, desk: Desk) -> None:
        # given a Target URL with a query string (a percent-encoded ':' in it), signed with it
        body = trigger()
        query = "portal=62515&tag=a%3Ab"
        answer = send_to(desk, body, query, proof(body, desk.clock(), query=query))
        # then it is accepted; the same headers with the query left out are not
        assert answer.status == 202, answer.body
        other = send_to(desk, trigger(event_id=777), "", proof(body, desk.clock(), query=query))
        assert other.status == 401

    def test_two_triggering_events_on_two_tickets_are_two_captures_and_two_notes(
        self, desk: Desk
    ) -> None:
        # given one call with two events asking for captures on two tickets, and another event
        body = events(
            HubSpotSimulator.event(TICKET, "upload-session", event_id=501),
            HubSpotSimulator.event(TICKET, "2", event_id=503, property_name="hs_pipeline_stage"),
            HubSpotSimulator.event("1002", "upload-screenshot", event_id=502),
        )
        answer = desk.send(body)
        # then two sessions are made, one per triggering event
        assert answer.status == 202, answer.body
        sessions = answer.body["sessions"]
        assert [item["duplicate"] for item in sessions] == [False, False]
        actions = [request.json()["action"] for request in desk.bugpilot.requests("action")]
        assert actions == ["upload-session", "upload-screenshot"]
        # when both reports exist, each ticket gets exactly its one note
        for token in desk.bugpilot.tokens:
            desk.bugpilot.complete_report(token)
        desk.clock.advance(hours=1)
        desk.run()
        assert len(desk.notes(TICKET)) == 1
        assert len(desk.notes("1002")) == 1

    def test_a_ticket_without_a_contact_gets_one_note_saying_why(
        self, desk: Desk, hubspot: HubSpotSimulator
    ) -> None:
        # given a ticket with no associated contact
        session_id = desk.created(trigger("1009"))
        # then nothing is asked of Bugpilot, and the session fails with one explaining note
        assert desk.bugpilot.requests("action") == []
        desk.run()
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.status is SessionStatus.FAILED
        [note] = desk.notes("1009")
        assert "could not tell who the requester is" in note
        assert len(hubspot.requests("ticket_contacts")) == 1


class TestRedelivery:
    def test_a_redelivered_array_captures_and_notes_nothing_more(self, desk: Desk) -> None:
        # given two events on two tickets, captured and noted
        body = events(
            HubSpotSimulator.event(TICKET, "upload-session", event_id=601),
            HubSpotSimulator.event("1002", "upload-session", event_id=602),
        )
        first = desk.send(body)
        ids = [item["session_id"] for item in first.body["sessions"]]
        for token in desk.bugpilot.tokens:
            desk.bugpilot.complete_report(token)
        desk.clock.advance(minutes=10)
        desk.run()
        assert [len(desk.notes(t)) for t in (TICKET, "1002")] == [1, 1]
        # when HubSpot retries with one of them again, next to a new event, signed anew
        desk.clock.advance(hours=2)
        again = events(
            HubSpotSimulator.event("1002", "upload-session", event_id=602, attempt=1),
            HubSpotSimulator.event("1003", "upload-session", event_id=603),
        )
        answer = desk.send(again)
        # then the repeated event is the same session, and only the new one is captured
        assert answer.status == 202
        repeated, new = answer.body["sessions"]
        assert (repeated["session_id"], repeated["duplicate"]) == (ids[1], True)
        assert new["duplicate"] is False
        assert len(desk.bugpilot.requests("action")) == 3
        desk.run()
        assert [len(desk.notes(t)) for t in (TICKET, "1002")] == [1, 1]
        # and each requester was looked up once per capture
        assert len(desk.simulator.requests("ticket_contacts")) == 3


class TestRefusals:
    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"X-HubSpot-Signature-v3": "AAAA" * 11}, "does not match"),
            ({"secret": "another-apps-secret"}, "does not match"),
            ({"sent_at": -MAX_AGE - timedelta(seconds=5)}, "too old or in the future"),
            ({"sent_at": MAX_FUTURE + timedelta(seconds=5)}, "too old or in the future"),
            ({"only_v1": True}, "missing X-HubSpot-Signature-v3"),
            ({"X-HubSpot-Request-Timestamp": ""}, "missing X-HubSpot-Request-Timestamp"),
        ],
        ids=["forged", "wrong secret", "stale", "future", "v1 only", "no timestamp"],
    )
    def test_unproven_deliveries_are_401_and_touch_nothing(
        self, desk: Desk, change: dict[str, Any], reason: str
    ) -> None:
        body = trigger()
        at = desk.clock() + change.pop("sent_at", timedelta(0))
        headers = proof(body, at, secret=change.pop("secret", SECRET))
        if change.pop("only_v1", False):
            # the older signature alone, as HubSpot also sends it: right, but timeless
            headers.pop("X-HubSpot-Signature-v3")
            headers["X-HubSpot-Signature-Version"] = "v1"
            headers["X-HubSpot-Signature"] = "0" * 64
        headers |= change
        answer = desk.send(body, headers)
        assert answer.status == 401
        assert reason in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []
        assert desk.simulator.requests() == []

    def test_a_captured_call_replayed_later_is_stale(self, desk: Desk) -> None:
        # given a genuine call, replayed six minutes after HubSpot signed it
        body = trigger()
        headers = proof(body, desk.clock())
        desk.clock.advance(minutes=6)
        answer = desk.send(body, headers)
        assert answer.status == 401
        assert stored(desk.table) == 0

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (b'{"eventId": 1}', "body must be a JSON array of events"),
            (b'["x"]', "[0] must be an event object"),
            (
                events(HubSpotSimulator.event("1001", "upload-session") | {"objectId": "1; drop"}),
                "[0].objectId must be a HubSpot ticket id",
            ),
            (
                events(HubSpotSimulator.event("1001", "upload-session") | {"eventId": None}),
                "[0].eventId is required",
            ),
        ],
    )
    def test_malformed_bodies_are_400_naming_the_field(
        self, desk: Desk, body: bytes, message: str
    ) -> None:
        answer = desk.send(body)
        assert answer.status == 400, answer.body
        assert message in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []

    @pytest.mark.parametrize(
        "body",
        [
            b"[]",
            events(HubSpotSimulator.event("1001", "2", property_name="hs_pipeline_stage")),
            events(HubSpotSimulator.event("1001", "", event_id=9)),
            events(
                HubSpotSimulator.event("1001", "upload-session", subscription="ticket.creation")
            ),
        ],
        ids=["empty", "other property", "cleared", "other subscription"],
    )
    def test_a_call_asking_for_nothing_is_200_and_stores_nothing(
        self, desk: Desk, body: bytes
    ) -> None:
        answer = desk.send(body)
        assert answer.status == 200
        assert "ignored" in answer.body
        assert stored(desk.table) == 0


class TestRateLimits:
    def test_a_rate_limited_note_is_retried_after_its_wait_and_lands_once(self, desk: Desk) -> None:
        # given HubSpot answers the first note with 429 and Retry-After
        session_id = desk.created(trigger())
        desk.simulator.script("post", 429, retry_after=RETRY_AFTER)
        before = desk.clock()
        desk.report_ready(session_id)
        # then no note yet, and the next try waits at least Retry-After
        assert desk.notes(TICKET) == []
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        assert session.next_check_at >= before + timedelta(seconds=RETRY_AFTER)
        # when the resolver runs again once it is due, the note lands exactly once
        desk.run_when_due(session_id)
        desk.clock.advance(hours=1)
        desk.run()
        assert len(desk.notes(TICKET)) == 1
        assert len(desk.simulator.requests("post")) == 2
        # and before posting again it read the ticket's notes for the marker
        assert len(desk.simulator.requests("ticket_notes")) == 1

    def test_a_429_without_retry_after_waits_hubspots_window(self, desk: Desk) -> None:
        session_id = desk.created(trigger())
        desk.simulator.script("post", 429)
        before = desk.clock()
        desk.report_ready(session_id)
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        assert session.next_check_at >= before + timedelta(seconds=10)
        desk.run_when_due(session_id)
        assert len(desk.notes(TICKET)) == 1

    def test_a_note_that_landed_although_its_answer_failed_is_not_posted_again(
        self, desk: Desk
    ) -> None:
        # given a note post answered 503, though HubSpot did store it
        session_id = desk.created(trigger())
        desk.simulator.script("post", 503)
        desk.report_ready(session_id)
        desk.simulator.add_note(TICKET, f"<p>Capture session: {session_id}</p>")
        # when the resolver tries again, then it finds the note and posts nothing more
        desk.run_when_due(session_id)
        assert len(desk.simulator.requests("post")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED

    def test_while_hubspot_cannot_say_whether_the_note_landed_nothing_is_posted(
        self, desk: Desk
    ) -> None:
        # given a failed first post, and the ticket's notes unreadable too
        session_id = desk.created(trigger())
        desk.simulator.script("post", 503)
        desk.report_ready(session_id)
        desk.simulator.script("ticket_notes", 500)
        # when the resolver tries again, then it posts nothing while that is unknown
        desk.run_when_due(session_id)
        assert len(desk.simulator.requests("post")) == 1
        # and once the notes can be read, the note lands once
        desk.run_when_due(session_id)
        assert len(desk.notes(TICKET)) == 1
        assert len(desk.simulator.requests("post")) == 2


class TestHostilePayloads:
    def test_markup_in_the_contacts_email_never_becomes_live_in_the_note(
        self, desk: Desk, hubspot: HubSpotSimulator
    ) -> None:
        # given a ticket whose contact's email (named in the note) carries markup
        hubspot.add_contact("1007", email=HOSTILE_EMAIL)
        desk.bugpilot.connect_user(HOSTILE_EMAIL)
        session_id = desk.created(trigger("1007"))
        desk.report_ready(session_id)
        # then the note shows it as text: escaped, no tag of it in what HubSpot received
        [note] = desk.notes("1007")
        assert "<img" not in note
        assert html.escape(HOSTILE_EMAIL) in note


class TestEventsFile:
    def test_the_signed_example_event_is_accepted(
        self, desk: Desk, hubspot_env: dict[str, str]
    ) -> None:
        # given the example event signed now, as `sign-event` does
        event = signed_event(load_event("webhook_hubspot"), hubspot_env, now=desk.clock())
        answer = receive_event(event, runtime_factory=lambda: desk.runtime, clock=desk.clock)
        # then its one triggering event (of two) is one capture on ticket 1001
        assert answer.status == 202, answer.body
        assert len(answer.body["sessions"]) == 1
        # and the stored copy, as signed when the example was made, is stale ten minutes on
        desk.clock.advance(minutes=10)
        stale = receive_event(
            load_event("webhook_hubspot"),
            runtime_factory=lambda: desk.runtime,
            clock=desk.clock,
        )
        assert stale.status == 401

    def test_the_event_names_the_host_the_local_runner_serves(self) -> None:
        event = json.loads((EVENTS / "webhook_hubspot.json").read_text())
        assert event["headers"]["host"] == "127.0.0.1:3000"
