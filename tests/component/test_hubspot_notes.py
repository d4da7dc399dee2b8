"""HubSpot's notes, requester look-ups and probe over real HTTP, against its simulator."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from capture_bridge.access import Access
from capture_bridge.helpdesks import LookupOutcome, NoteOutcome, get_adapter
from capture_bridge.helpdesks.hubspot import DEFAULT_RATE_LIMIT_WAIT, NOTE_PAGE_SIZE, probe
from capture_bridge.http import HttpClient
from capture_bridge.models import CaptureRequest, CaptureSession, SessionStatus
from capture_bridge.notes import Note, note_of
from local_runner.simulators.hubspot import HubSpotSimulator
from tests.conftest import START
from tests.unit.test_hubspot_adapter import (
    MARKER,
    SECRET,
    SLOWER_THAN_FAST,
    TOKEN,
    adapter_for,
    make_settings,
)

TICKET = "1001"
RETRY_AFTER = 17
REPORT = "https://dash.bugpilot.io/report/abc_def-1"
HOSTILE = '<img src=x onerror=alert(1)><a href="javascript:alert(1)">x</a>'


@pytest.fixture
def hubspot() -> Iterator[HubSpotSimulator]:
    with HubSpotSimulator(access_token=TOKEN, client_secret=SECRET) as simulator:
        yield simulator


def finished_session(description: str = "") -> CaptureSession:
    request = CaptureRequest(
        "hubspot", TICKET, "bugpilot", "upload-session", "upload-session", description=description
    )
    opened = CaptureSession.open(
        request, now=START, max_wait=timedelta(minutes=30), claim_id=None, next_check_at=START
    )
    return opened.finish(SessionStatus.RESOLVED, now=START, links={"report": REPORT})


class TestNotes:
    def test_posts_one_note_associated_with_the_ticket(self, hubspot: HubSpotSimulator) -> None:
        # given a finished capture's note
        note = note_of(["The capture is ready:", REPORT], finished_session())
        # when it is posted
        result = adapter_for(hubspot).post_note(TICKET, note)
        # then it is one CRM note, its HTML body associated with the ticket as HubSpot defines
        assert (result.outcome, result.status) == (NoteOutcome.POSTED, 201)
        [post] = hubspot.requests("post")
        assert post.headers["authorization"] == f"Bearer {TOKEN}"
        sent = post.json()
        assert sent["properties"]["hs_note_body"] == note.html
        stamp = datetime.strptime(sent["properties"]["hs_timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs(stamp.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
        assert sent["associations"] == [
            {
                "to": {"id": TICKET},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}],
            }
        ]
        assert hubspot.internal_notes(TICKET) == [note.html]
        assert f'<a href="{REPORT}">' in note.html

    def test_markup_from_a_payload_is_escaped(self, hubspot: HubSpotSimulator) -> None:
        note = note_of([f"Description: {HOSTILE}"], finished_session(HOSTILE))
        adapter_for(hubspot).post_note(TICKET, note)
        [body] = hubspot.internal_notes(TICKET)
        assert "<img" not in body and 'href="javascript' not in body
        assert html.escape(HOSTILE) in body

    def test_a_rate_limit_waits_retry_after(self, hubspot: HubSpotSimulator) -> None:
        hubspot.script("post", 429, retry_after=RETRY_AFTER)
        result = adapter_for(hubspot).post_note(TICKET, Note("x", "<p>x</p>", ("x",)))
        assert (result.outcome, result.retry_after_seconds) == (NoteOutcome.RETRYABLE, RETRY_AFTER)
        assert hubspot.internal_notes(TICKET) == []

    @pytest.mark.parametrize(
        ("interval_ms", "wait"), [(10_000, 10), (2_500, 3), (None, DEFAULT_RATE_LIMIT_WAIT)]
    )
    def test_a_rate_limit_without_retry_after_waits_the_named_window(
        self, hubspot: HubSpotSimulator, interval_ms: int | None, wait: int
    ) -> None:
        # given HubSpot's 429 with its rate-limit window (or without one) and no Retry-After
        hubspot.rate_limit_interval_ms = interval_ms
        hubspot.script("post", 429)
        result = adapter_for(hubspot).post_note(TICKET, Note("x", "<p>x</p>", ("x",)))
        # then the note waits that window, else HubSpot's usual 10 seconds
        assert (result.outcome, result.retry_after_seconds) == (NoteOutcome.RETRYABLE, wait)

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_errors_are_retryable(self, hubspot: HubSpotSimulator, status: int) -> None:
        hubspot.script("post", status)
        result = adapter_for(hubspot).post_note(TICKET, Note("x", "<p>x</p>", ("x",)))
        assert (result.outcome, result.status) == (NoteOutcome.RETRYABLE, status)

    def test_timeouts_are_retryable(self, hubspot: HubSpotSimulator) -> None:
        hubspot.script("post", 200, delay=SLOWER_THAN_FAST)
        outcome = adapter_for(hubspot).post_note(TICKET, Note("x", "<p>x</p>")).outcome
        assert outcome is NoteOutcome.RETRYABLE

    def test_a_wrong_token_is_rejected(self, hubspot: HubSpotSimulator) -> None:
        wrong = adapter_for(hubspot, HUBSPOT_ACCESS_TOKEN="wrong").post_note(TICKET, Note("x", ""))
        assert (wrong.outcome, wrong.status) == (NoteOutcome.REJECTED, 401)

    def test_without_a_token_it_is_rejected_without_a_call(self, hubspot: HubSpotSimulator) -> None:
        result = adapter_for(HUBSPOT_API_URL=hubspot.url).post_note(TICKET, Note("x", ""))
        assert result.outcome is NoteOutcome.REJECTED
        assert "HUBSPOT_ACCESS_TOKEN" in result.message
        assert hubspot.requests() == []

    def test_a_ticket_id_that_is_no_hubspot_id_goes_into_no_url(
        self, hubspot: HubSpotSimulator
    ) -> None:
        # given a ticket named through the sessions API with something that is not a record id
        adapter = adapter_for(hubspot)
        odd = "../contacts/1"
        # then nothing is sent: the note is refused, the look-ups say so
        assert adapter.post_note(odd, Note("x", "<p>x</p>")).outcome is NoteOutcome.REJECTED
        assert adapter.has_note(odd, MARKER) is None
        assert adapter.find_requester(odd).outcome is LookupOutcome.NOT_FOUND
        assert hubspot.requests() == []


class TestHasNote:
    def test_finds_the_marker_in_the_tickets_notes(self, hubspot: HubSpotSimulator) -> None:
        # given a ticket with someone else's note, then ours
        adapter = adapter_for(hubspot)
        hubspot.add_note(TICKET, "<p>Called the customer</p>")
        assert adapter.has_note(TICKET, MARKER) is False
        adapter.post_note(TICKET, Note("", f"<p>{MARKER}</p>", (MARKER,)))
        # then it is found: the ticket's note associations, then their bodies in one batch
        assert adapter.has_note(TICKET, MARKER) is True
        batch = hubspot.requests("batch_read")[-1].json()
        assert batch["properties"] == ["hs_note_body"]
        assert len(batch["inputs"]) == 2

    def test_another_tickets_note_does_not_count(self, hubspot: HubSpotSimulator) -> None:
        hubspot.add_note("1002", MARKER)
        assert adapter_for(hubspot).has_note(TICKET, MARKER) is False
        # and a ticket without notes needs no batch read
        assert hubspot.requests("batch_read") == []

    def test_more_notes_than_one_batch_is_unknown(self, hubspot: HubSpotSimulator) -> None:
        for number in range(NOTE_PAGE_SIZE + 1):
            hubspot.add_note(TICKET, f"note {number}")
        assert adapter_for(hubspot).has_note(TICKET, MARKER) is None

    @pytest.mark.parametrize("route", ["ticket_notes", "batch_read"])
    def test_a_failing_or_slow_read_is_unknown(self, hubspot: HubSpotSimulator, route: str) -> None:
        hubspot.add_note(TICKET, "<p>other</p>")
        hubspot.script(route, 500)
        assert adapter_for(hubspot).has_note(TICKET, MARKER) is None
        hubspot.script(route, 200, delay=SLOWER_THAN_FAST)
        assert adapter_for(hubspot).has_note(TICKET, MARKER) is None
        assert adapter_for().has_note(TICKET, MARKER) is None


class TestFindRequester:
    def test_the_tickets_first_contact_is_the_requester(self, hubspot: HubSpotSimulator) -> None:
        # given a ticket with two contacts
        hubspot.add_contact(TICKET, email="ada@example.com")
        hubspot.add_contact(TICKET, email="grace@example.com")
        # when its requester is looked up
        found = adapter_for(hubspot).find_requester(TICKET)
        # then it is the first contact's email, read with two calls
        assert (found.outcome, found.user) == (LookupOutcome.FOUND, "ada@example.com")
        [associations] = hubspot.requests("ticket_contacts")
        assert associations.route == f"/crm/v4/objects/tickets/{TICKET}/associations/contacts"
        [contact] = hubspot.requests("contact")
        assert contact.query["properties"] == "email"
        assert contact.headers["authorization"] == f"Bearer {TOKEN}"

    def test_an_external_id_property_wins_over_the_email(self, hubspot: HubSpotSimulator) -> None:
        hubspot.add_contact(TICKET, email="ada@example.com", external_id="user-42")
        adapter = adapter_for(hubspot, HUBSPOT_EXTERNAL_ID_PROPERTY="app_user_id")
        assert adapter.find_requester(TICKET).user == "user-42"
        assert hubspot.requests("contact")[0].query["properties"] == "email,app_user_id"
        # and without one the email stands
        hubspot.add_contact("1002", email="grace@example.com")
        assert adapter.find_requester("1002").user == "grace@example.com"

    def test_no_contact_or_no_email_is_not_found(self, hubspot: HubSpotSimulator) -> None:
        assert adapter_for(hubspot).find_requester(TICKET).outcome is LookupOutcome.NOT_FOUND
        hubspot.add_contact("1002", email="")
        missing = adapter_for(hubspot).find_requester("1002")
        assert (missing.outcome, "has no email" in missing.message) == (
            LookupOutcome.NOT_FOUND,
            True,
        )

    def test_rate_limits_and_failures_are_retryable(self, hubspot: HubSpotSimulator) -> None:
        hubspot.add_contact(TICKET, email="ada@example.com")
        hubspot.script("ticket_contacts", 429)
        limited = adapter_for(hubspot).find_requester(TICKET)
        assert (limited.outcome, limited.retry_after_seconds) == (LookupOutcome.RETRYABLE, 10)
        hubspot.script("contact", 503)
        assert adapter_for(hubspot).find_requester(TICKET).outcome is LookupOutcome.RETRYABLE
        hubspot.script("contact", 200, delay=SLOWER_THAN_FAST)
        assert adapter_for(hubspot).find_requester(TICKET).outcome is LookupOutcome.RETRYABLE

    def test_a_refused_token_is_rejected(self, hubspot: HubSpotSimulator) -> None:
        wrong = adapter_for(hubspot, HUBSPOT_ACCESS_TOKEN="wrong").find_requester(TICKET)
        assert wrong.outcome is LookupOutcome.REJECTED
        assert adapter_for().find_requester(TICKET).outcome is LookupOutcome.REJECTED


class TestProbe:
    def test_a_token_that_reads_tickets_is_ok(self, hubspot: HubSpotSimulator) -> None:
        check = probe(make_settings(**hubspot.bridge_settings()), HttpClient())
        assert check.access is Access.OK
        assert len(hubspot.requests("tickets")) == 1

    def test_wrong_tokens_rate_limits_and_missing_keys_are_reported(
        self, hubspot: HubSpotSimulator
    ) -> None:
        wrong = make_settings(**hubspot.bridge_settings() | {"HUBSPOT_ACCESS_TOKEN": "wrong"})
        assert probe(wrong, HttpClient()).access is Access.REJECTED
        hubspot.script("tickets", 429)
        limited = probe(make_settings(**hubspot.bridge_settings()), HttpClient())
        assert limited.access is Access.RATE_LIMITED
        missing = probe(make_settings(), HttpClient())
        assert (missing.access, "HUBSPOT_ACCESS_TOKEN" in missing.detail) == (
            Access.NOT_CONFIGURED,
            True,
        )
        invalid = probe(make_settings(HUBSPOT_TRIGGER_PROPERTY="Bad Name"), HttpClient())
        assert invalid.access is Access.FAILED


class TestSimulator:
    def test_refuses_a_wrong_token_and_a_wrong_association(self, hubspot: HubSpotSimulator) -> None:
        url = f"{hubspot.url}/crm/v3/objects/notes"
        note = {
            "properties": {"hs_timestamp": "2026-01-01T00:00:00.000Z", "hs_note_body": "b"},
            "associations": [
                {
                    "to": {"id": TICKET},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
                }
            ],
        }
        wrong = requests.post(url, json=note, headers={"Authorization": "Bearer no"}, timeout=5)
        assert wrong.status_code == 401
        bad = requests.post(url, json=note, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert bad.status_code == 400
        assert hubspot.internal_notes(TICKET) == []

    def test_a_rate_limit_names_its_window(self, hubspot: HubSpotSimulator) -> None:
        hubspot.script("tickets", 429)
        limited = requests.get(
            f"{hubspot.url}/crm/v3/objects/tickets",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert limited.status_code == 429
        assert limited.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert limited.json()["policyName"] == "SECONDLY"

    def test_demo_defaults_work(self) -> None:
        with HubSpotSimulator() as hubspot:
            settings = make_settings(**hubspot.bridge_settings())
            adapter = get_adapter("hubspot", settings, HttpClient())
            note = note_of(["hello"], finished_session())
            assert adapter.post_note("7", note).outcome is NoteOutcome.POSTED
            assert len(hubspot.internal_notes("7")) == 1
