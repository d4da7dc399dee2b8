"""A stand-in helpdesk for the seam's own tests: payloads that name a contact, not the requester.

Registered under `lookupdesk` by the `lookupdesk` fixture (never in production's registry). Its
body is `{"events": [{"id", "ticket", "action", "contact"?, "requester"?}]}`, or
`{"challenge": "..."}` for a handshake; it proves a call with the `X-Test-Secret` header. What it
looks up, and every look-up and note it was asked for, live on a `Directory` the test holds.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from capture_bridge.access import Access, AccessCheck
from capture_bridge.errors import InvalidRequest, NothingToCapture, Unauthenticated
from capture_bridge.helpdesks import (
    LookupOutcome,
    NoteOutcome,
    NoteResult,
    RequesterLookup,
    WebhookRequest,
)
from capture_bridge.helpdesks.spec import HelpdeskSpec
from capture_bridge.http import HttpClient
from capture_bridge.models import Delivery, TicketRequest
from capture_bridge.notes import Note
from capture_bridge.settings import Settings

NAME = "lookupdesk"
SECRET = "lookup-secret"
EVENT_MEMORY = timedelta(days=1)


@dataclass
class Directory:
    """The helpdesk's contacts and what it was asked: scripted answers first, then the contacts."""

    contacts: dict[str, str] = field(default_factory=dict)
    scripted: list[RequesterLookup] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    notes: list[tuple[str, Note]] = field(default_factory=list)

    def answer(self, reference: str) -> RequesterLookup:
        self.lookups.append(reference)
        if self.scripted:
            return self.scripted.pop(0)
        user = self.contacts.get(reference)
        if user is None:
            return RequesterLookup(LookupOutcome.NOT_FOUND, message="no such contact")
        return RequesterLookup(LookupOutcome.FOUND, user=user)


# The test's directory; the fixture installs a fresh one for each test.
DIRECTORY = [Directory()]


class LookupAdapter:
    name = NAME

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        given = request.headers.get("X-Test-Secret", "")
        if not hmac.compare_digest(given.encode(), SECRET.encode()):
            raise Unauthenticated("X-Test-Secret does not match")
        payload = json.loads(request.body)
        if isinstance(payload, dict) and "challenge" in payload:
            raise NothingToCapture("handshake", answer={"challenge": str(payload["challenge"])})
        return Delivery(f"call#{hash(request.body)}", EVENT_MEMORY)

    def parse(self, body: bytes) -> list[TicketRequest]:
        events = json.loads(body).get("events")
        if not isinstance(events, list):
            raise InvalidRequest("events must be a list")
        return [self._ticket(event) for event in events if isinstance(event, dict)]

    def _ticket(self, event: Mapping[str, Any]) -> TicketRequest:
        return TicketRequest(
            helpdesk=NAME,
            ticket_id=str(event["ticket"]),
            requester=str(event.get("requester", "")),
            requester_ref=str(event.get("contact", "")),
            label=f"Lookup ticket {event['ticket']}",
            fields={"action": str(event.get("action", "upload-session"))},
            delivery=Delivery(str(event["id"]), EVENT_MEMORY),
        )

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        DIRECTORY[0].notes.append((ticket_id, note))
        return NoteResult(NoteOutcome.POSTED, status=201)

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        return any(
            marker in note.text for ticket, note in DIRECTORY[0].notes if ticket == ticket_id
        )

    def find_requester(self, reference: str) -> RequesterLookup:
        return DIRECTORY[0].answer(reference)


def _adapter(settings: Settings, http: HttpClient) -> LookupAdapter:
    return LookupAdapter()


def _probe(settings: Settings, http: HttpClient) -> AccessCheck:
    return AccessCheck(NAME, Access.NOT_CALLED, "a test stand-in")


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=_adapter,
    probe=_probe,
    unconfigured=lambda settings: [],
    sign_request=lambda values, request, now: {"X-Test-Secret": SECRET},
    webhook_secret_key="LOOKUP_SECRET",
    secret_keys=(),
    longest_note_seconds=1.0,
    longest_lookup_seconds=1.0,
)
