"""HTTP simulator of the HubSpot CRM API subset the bridge uses (tickets, contacts, notes)."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from ._server import (
    JsonHttpServer,
    RecordedRequest,
    Reply,
    Route,
    ScriptedReply,
    bearer_token,
    epoch_ms,
    phrase,
    same_secret,
)

DEMO_CLIENT_SECRET = "demo-hubspot-client-secret"  # noqa: S105 - the local demo's only
DEMO_ACCESS_TOKEN = "pat-na1-demo-hubspot-token"  # noqa: S105 - demo credential of a local fake
TRIGGER_PROPERTY = "capture_request"
# The contact property the demo keeps the app's user id in (HUBSPOT_EXTERNAL_ID_PROPERTY).
EXTERNAL_ID_PROPERTY = "app_user_id"
NOTE_TO_TICKET = 228
TICKET_TO_CONTACT = 16
TICKET_TO_NOTE = 227
# HubSpot's burst window (the 429's X-HubSpot-RateLimit-Interval-Milliseconds).
RATE_LIMIT_INTERVAL_MS = 10_000
MAX_ASSOCIATION_PAGE = 500
MAX_BATCH_READ = 100
# Bugpilot action tags as the demo passes them, as the trigger property's values.
TAG_VALUES = {
    "bugpilot_screenshot": "upload-screenshot",
    "bugpilot_recording": "show-recording-ui",
    "bugpilot_session": "upload-session",
}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


class HubSpotSimulator(JsonHttpServer):
    """HubSpot tickets, contacts and notes over real HTTP, with scripted failures.

    Routes: "ticket_contacts" and "ticket_notes" (v4 association lists), "contact", "post"
    (create a note), "batch_read" (notes' bodies) and "tickets" (the probe's list).
    """

    helpdesk = "hubspot"
    sender = "HubSpot's app webhook"
    errors: ClassVar[Mapping[int, str]] = {
        401: (
            "Authentication credentials not found. This API supports OAuth 2.0 authentication "
            "and you can find more details at https://developers.hubspot.com/docs/methods/auth/"
            "oauth-overview"
        ),
        403: "This app hasn't been granted all required scopes to make this call.",
        404: "resource not found",
        429: "You have reached your secondly limit.",
    }
    unknown_route = "resource not found"

    def __init__(
        self,
        *,
        access_token: str = DEMO_ACCESS_TOKEN,
        client_secret: str = DEMO_CLIENT_SECRET,
        port: int = 0,
    ) -> None:
        tickets = r"/crm/v4/objects/tickets/(?P<ticket>[^/]+)/associations"
        super().__init__(
            port=port,
            routes=[
                Route("ticket_contacts", "GET", tickets + "/contacts", self._ticket_contacts),
                Route("ticket_notes", "GET", tickets + "/notes", self._ticket_notes),
                Route(
                    "contact", "GET", r"/crm/v3/objects/contacts/(?P<contact>[^/]+)", self._contact
                ),
                Route("post", "POST", r"/crm/v3/objects/notes", self._post),
                Route("batch_read", "POST", r"/crm/v3/objects/notes/batch/read", self._batch),
                Route("tickets", "GET", r"/crm/v3/objects/tickets", self._tickets),
            ],
        )
        self.access_token = access_token
        self.client_secret = client_secret
        # Sent with every 429; None leaves the header out.
        self.rate_limit_interval_ms: int | None = RATE_LIMIT_INTERVAL_MS
        self._state = threading.Lock()
        self._ticket_contacts_of: dict[str, list[str]] = {}
        self._contacts: dict[str, dict[str, str]] = {}
        self._notes: dict[str, dict[str, Any]] = {}
        self._ticket_note_ids: dict[str, list[str]] = {}
        self._next_id = 90_001

    # -- the demo's view (HelpdeskSimulator) -------------------------------------------------

    def bridge_settings(self) -> dict[str, str]:
        return {
            "HUBSPOT_API_URL": self.url,
            "HUBSPOT_ACCESS_TOKEN": self.access_token,
            "HUBSPOT_CLIENT_SECRET": self.client_secret,
            "HUBSPOT_EXTERNAL_ID_PROPERTY": EXTERNAL_ID_PROPERTY,
        }

    def ticket_id(self, number: int) -> str:
        return str(number)

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        """HubSpot's event for an agent setting the trigger property; the contact is added.

        HubSpot's body names only the ticket: the requester is the ticket's contact, which the
        bridge looks up. What the demo asks for becomes the property's value: an action, or
        the text holding a session's link.
        """
        self.add_contact(ticket_id, email=email, external_id=user_id)
        return json.dumps([self.event(ticket_id, self.trigger_value(tags, fields))]).encode()

    def webhook_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "User-Agent": "HubSpot Connect 2.0"}

    def internal_notes(self, ticket_id: str) -> list[str]:
        return [str(note["properties"]["hs_note_body"]) for note in self.notes(ticket_id)]

    # -- what HubSpot sends ------------------------------------------------------------------

    @staticmethod
    def trigger_value(tags: str, fields: Mapping[str, str]) -> str:
        """The trigger property's value standing for the demo's tags and fields."""
        if fields.get("action"):
            return fields["action"]
        session = fields.get("lambdatest_session_id")
        if session:
            return f"https://automation.lambdatest.com/logs/?sessionID={session}"
        if fields.get("text"):
            return fields["text"]
        named = [TAG_VALUES[tag] for tag in tags.split() if tag in TAG_VALUES]
        return named[0] if named else "upload-session"

    @staticmethod
    def event(
        ticket_id: str | int,
        value: str,
        *,
        event_id: int | None = None,
        property_name: str = TRIGGER_PROPERTY,
        subscription: str = "ticket.propertyChange",
        attempt: int = 0,
    ) -> dict[str, Any]:
        """One event of HubSpot's array, as its webhooks send it."""
        return {
            "eventId": event_id if event_id is not None else uuid.uuid4().int % 10**10,
            "subscriptionId": 2847561,
            "portalId": 62515,
            "appId": 1160452,
            "occurredAt": epoch_ms(),
            "subscriptionType": subscription,
            "attemptNumber": attempt,
            "objectId": int(ticket_id),
            "propertyName": property_name,
            "propertyValue": value,
            "changeSource": "CRM_UI",
            "sourceId": "userId:1234567",
        }

    # -- test controls ---------------------------------------------------------------------

    def add_contact(self, ticket_id: str, *, email: str = "", external_id: str = "") -> str:
        """A contact associated with the ticket (after any it has); its id."""
        with self._state:
            contact_id = str(self._next_id)
            self._next_id += 1
            properties = {"email": email, "hs_object_id": contact_id}
            if external_id:
                properties[EXTERNAL_ID_PROPERTY] = external_id
            self._contacts[contact_id] = properties
            self._ticket_contacts_of.setdefault(str(ticket_id), []).append(contact_id)
            return contact_id

    def notes(self, ticket_id: str) -> list[dict[str, Any]]:
        """Copies of the notes associated with the ticket, oldest first."""
        with self._state:
            ids = self._ticket_note_ids.get(str(ticket_id), [])
            return [copy.deepcopy(self._notes[note_id]) for note_id in ids]

    def add_note(self, ticket_id: str, body: str) -> str:
        """A note someone else wrote on the ticket; its id."""
        with self._state:
            return self._store_note({"hs_note_body": body, "hs_timestamp": _stamp()}, ticket_id)

    # -- HTTP ------------------------------------------------------------------------------

    def error(self, status: int, message: str | None = None) -> Reply:
        """HubSpot's error body; a 429 says which limit and, when set, its window."""
        text = message or self.errors.get(status) or phrase(status)
        body: dict[str, Any] = {
            "status": "error",
            "message": text,
            "correlationId": str(uuid.uuid4()),
            "category": "RATE_LIMITS"
            if status == 429
            else phrase(status).upper().replace(" ", "_"),
        }
        if status != 429:
            return Reply(status, body)
        body |= {"errorType": "RATE_LIMIT", "policyName": "SECONDLY"}
        headers = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "0"}
        if self.rate_limit_interval_ms is not None:
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(self.rate_limit_interval_ms)
        return Reply(429, body, headers)

    def scripted_headers(self, entry: ScriptedReply) -> dict[str, str]:
        return {} if entry.retry_after is None else {"Retry-After": str(entry.retry_after)}

    def authenticated(self, request: RecordedRequest) -> bool:
        """A private app's access token, as a Bearer token."""
        return same_secret(bearer_token(request), self.access_token)

    def _store_note(self, properties: dict[str, Any], ticket_id: str) -> str:
        note_id = str(self._next_id)
        self._next_id += 1
        stamp = _stamp()
        self._notes[note_id] = {
            "id": note_id,
            "properties": {**properties, "hs_object_id": note_id},
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }
        self._ticket_note_ids.setdefault(str(ticket_id), []).append(note_id)
        return note_id

    def _association_page(self, request: RecordedRequest, ids: list[str], type_id: int) -> Reply:
        try:
            limit = min(int(request.query.get("limit", str(MAX_ASSOCIATION_PAGE))), 500)
            after = int(request.query.get("after", "0"))
        except ValueError:
            return self.error(400, "limit and after must be numbers")
        page = ids[after : after + limit]
        body: dict[str, Any] = {
            "results": [
                {
                    "toObjectId": int(object_id),
                    "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                    ],
                }
                for object_id in page
            ]
        }
        if after + limit < len(ids):
            body["paging"] = {"next": {"after": str(after + limit), "link": None}}
        return Reply(200, body)

    def _ticket_contacts(self, request: RecordedRequest, ticket: str) -> Reply:
        with self._state:
            ids = list(self._ticket_contacts_of.get(ticket, []))
        return self._association_page(request, ids, TICKET_TO_CONTACT)

    def _ticket_notes(self, request: RecordedRequest, ticket: str) -> Reply:
        with self._state:
            ids = list(self._ticket_note_ids.get(ticket, []))
        return self._association_page(request, ids, TICKET_TO_NOTE)

    def _contact(self, request: RecordedRequest, contact: str) -> Reply:
        with self._state:
            properties = self._contacts.get(contact)
        if properties is None:
            return self.error(404)
        wanted = [name for name in request.query.get("properties", "").split(",") if name]
        shown = {name: properties.get(name) for name in (wanted or ["email"])}
        return Reply(
            200,
            {
                "id": contact,
                "properties": {**shown, "hs_object_id": contact},
                "createdAt": _stamp(),
                "updatedAt": _stamp(),
                "archived": False,
            },
        )

    def _post(self, request: RecordedRequest) -> Reply:
        payload = request.json()
        properties = payload.get("properties") if isinstance(payload, dict) else None
        if not isinstance(properties, dict) or not properties.get("hs_timestamp"):
            return self.error(400, "Property values were not valid: hs_timestamp is required")
        body = properties.get("hs_note_body")
        if not isinstance(body, str) or len(body) > 65_536:
            return self.error(400, "Property values were not valid: hs_note_body")
        tickets = []
        for association in payload.get("associations") or []:
            types = association.get("types") if isinstance(association, dict) else None
            target = association.get("to") if isinstance(association, dict) else None
            expected = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]
            if types != expected or not isinstance(target, dict):
                return self.error(400, "invalid association type for note to ticket")
            tickets.append(str(target.get("id")))
        with self._state:
            note_id = self._store_note(dict(properties), tickets[0] if tickets else "")
            for ticket in tickets[1:]:
                self._ticket_note_ids.setdefault(ticket, []).append(note_id)
            note = copy.deepcopy(self._notes[note_id])
        return Reply(201, note)

    def _batch(self, request: RecordedRequest) -> Reply:
        payload = request.json()
        inputs = payload.get("inputs") if isinstance(payload, dict) else None
        if not isinstance(inputs, list) or len(inputs) > MAX_BATCH_READ:
            return self.error(400, f"inputs must be a list of at most {MAX_BATCH_READ} ids")
        wanted = payload.get("properties") or []
        with self._state:
            found = [
                self._notes[str(item.get("id"))]
                for item in inputs
                if isinstance(item, dict) and str(item.get("id")) in self._notes
            ]
            results = [
                {
                    "id": note["id"],
                    "properties": {
                        name: note["properties"].get(name) for name in [*wanted, "hs_object_id"]
                    },
                    "createdAt": note["createdAt"],
                    "updatedAt": note["updatedAt"],
                    "archived": False,
                }
                for note in found
            ]
        status = 200 if len(results) == len(inputs) else 207
        now = _stamp()
        return Reply(
            status,
            {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now},
        )

    def _tickets(self, request: RecordedRequest) -> Reply:
        with self._state:
            ids = sorted(set(self._ticket_contacts_of) | set(self._ticket_note_ids))
        return Reply(
            200,
            {"results": [{"id": ticket, "properties": {"subject": "Demo"}} for ticket in ids[:1]]},
        )
