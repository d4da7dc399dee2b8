"""HubSpot (tickets): an app's signed ticket.propertyChange webhooks in, notes on the ticket out.

HubSpot posts a fixed body: a JSON array of events, each naming only the ticket. An agent asks
for a capture by setting the ticket's trigger property (`HUBSPOT_TRIGGER_PROPERTY`); each such
event is one capture, remembered by its `eventId`. The requester is the ticket's first associated
contact, looked up once per capture; the note is a CRM note associated with the ticket.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from capture_bridge.access import Access, AccessCheck, not_configured, read, unset
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import (
    LookupOutcome,
    NoteOutcome,
    NoteResult,
    RequesterLookup,
    WebhookRequest,
)
from capture_bridge.helpdesks.common import (
    HmacHeader,
    lookup_json,
    note_answer,
    requester_of,
    retry_after,
    secure_url,
    single_header,
    text_field,
)
from capture_bridge.helpdesks.spec import HelpdeskSpec
from capture_bridge.http import HttpClient, HttpResponse, TransportError
from capture_bridge.models import Delivery, TicketRequest
from capture_bridge.notes import Note
from capture_bridge.settings import Settings

NAME = "hubspot"
# The key its webhooks are checked against (the doctor says what a missing one means).
WEBHOOK_SECRET_KEY = "HUBSPOT_CLIENT_SECRET"  # noqa: S105 - a key name, not a secret
DEFAULT_API_URL = "https://api.hubapi.com"
TRIGGER_SETTING = "HUBSPOT_TRIGGER_PROPERTY"
DEFAULT_TRIGGER_PROPERTY = "capture_request"
# Optional: the contact property holding the id the app gives Bugpilot.identify(); without it
# the requester is the contact's email.
EXTERNAL_ID_KEY = "HUBSPOT_EXTERNAL_ID_PROPERTY"

# Version 3 only: v1 and v2 (`X-HubSpot-Signature`, still sent beside it) sign no time, so a
# captured call stripped of v3 would pass them for ever.
SIGNATURE = HmacHeader("x-hubspot-signature-v3", "sha256", "base64")
TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
# HubSpot says to refuse a timestamp older than 5 minutes; as far ahead is a clock gone wrong.
MAX_AGE = timedelta(minutes=5)
MAX_FUTURE = timedelta(minutes=5)
# What a request without a Host header (the demo's, the tests') is signed as sent to.
UNNAMED_HOST = "localhost"
# HubSpot decodes these in the URI before it signs (its "validating requests" page), whichever
# way the sender wrote them; every other escape stays as sent.
_DECODED_IN_URI = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_URI_ESCAPE = re.compile("|".join(_DECODED_IN_URI), re.IGNORECASE)

SUBSCRIPTION = "ticket.propertyChange"
# The property's values asking for a Bugpilot capture, as the action they name.
ACTIONS = ("upload-session", "upload-screenshot", "show-recording-ui")
# A value holding a web link (a LambdaTest or Notte session's) is given to the capture sources
# as text, as a rule body's `text` is.
_WEB_LINK = re.compile(r"https?://", re.IGNORECASE)
# HubSpot retries a failed delivery for about a day at most (10 tries, backing off); each event's
# id stays the same across them.
EVENT_MEMORY = timedelta(days=1)

# HubSpot's record ids (tickets, contacts, notes): numbers. Checked before one goes into a path.
_TICKET_ID = re.compile(r"^[1-9][0-9]{0,19}$")
# A property's internal name: lower-case letters, digits and underscores, from a letter.
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
LABEL = "HubSpot ticket {ticket_id}"

NOTE_TIMEOUT = (3.05, 5.0)
# HubSpot's own association type "note to ticket".
NOTE_TO_TICKET = 228
# The notes associated with a ticket are read in one page, then their bodies in one batch (the
# batch read's limit): a ticket with more is "unknown", so a note is retried, never doubled.
NOTE_PAGE_SIZE = 100
# A 429 without Retry-After waits the rate-limit window HubSpot names, else its usual one.
INTERVAL_HEADER = "X-HubSpot-RateLimit-Interval-Milliseconds"
DEFAULT_RATE_LIMIT_WAIT = 10


def property_name(key: str, raw: str) -> str:
    """A property's internal name checked (empty stays empty); a `ConfigurationError` else."""
    name = raw.strip()
    if name and not _PROPERTY_NAME.match(name):
        raise ConfigurationError(
            f"{key} must be a property's internal name (lower-case letters, digits and "
            f"underscores), got {name[:80]!r}"
        )
    return name


@dataclass(frozen=True)
class HubSpotSettings:
    """HubSpot's own settings: the trigger property from the environment, the rest secret."""

    api_url: str = DEFAULT_API_URL
    trigger_property: str = DEFAULT_TRIGGER_PROPERTY
    external_id_property: str = ""
    access_token: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> HubSpotSettings:
        """Read and validate; raises `ConfigurationError` naming an invalid setting."""
        api_url = secure_url("HUBSPOT_API_URL", settings.text("HUBSPOT_API_URL"))
        trigger = settings.text(TRIGGER_SETTING, DEFAULT_TRIGGER_PROPERTY)
        return cls(
            api_url=api_url or DEFAULT_API_URL,
            trigger_property=property_name(TRIGGER_SETTING, trigger),
            external_id_property=property_name(EXTERNAL_ID_KEY, settings.text(EXTERNAL_ID_KEY)),
            access_token=settings.secret("HUBSPOT_ACCESS_TOKEN"),
            # Stripped like every credential: a pasted newline would otherwise refuse everything.
            client_secret=settings.secret(WEBHOOK_SECRET_KEY),
        )


def signed_uri(request: WebhookRequest) -> str:
    """The URI HubSpot signed: `https://{Host}{path}{?query}` as called, its listed escapes decoded.

    API Gateway terminates TLS, so the scheme is https whatever reaches the function.
    """
    host = single_header(request.headers, "host").strip() or UNNAMED_HOST
    uri = f"https://{host}{request.path}" + (
        f"?{request.query_string}" if request.query_string else ""
    )
    return _URI_ESCAPE.sub(lambda found: _DECODED_IN_URI[found.group(0).upper()], uri)


def signed_message(request: WebhookRequest, timestamp: str) -> bytes:
    """What version 3 signs: method, URI, raw body and the timestamp header, concatenated."""
    head = f"{request.method.upper()}{signed_uri(request)}".encode()
    return head + request.body + timestamp.encode()


def _sent_at(raw: str) -> datetime:
    """The request timestamp (epoch milliseconds); an unreadable one proves nothing."""
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise Unauthenticated(f"{TIMESTAMP_HEADER} must be epoch milliseconds")
    return datetime.fromtimestamp(int(text) / 1000, UTC)


def event_delivery(event_id: str) -> Delivery:
    """One event's delivery: HubSpot keeps its `eventId` across retries."""
    return Delivery(hashlib.sha256(f"event\n{event_id}".encode()).hexdigest(), EVENT_MEMORY)


def rate_limit_wait(response: HttpResponse) -> int:
    """Seconds to wait after a 429: Retry-After, else the named window, else HubSpot's 10 s."""
    seconds = retry_after(response.header("Retry-After"))
    if seconds is not None:
        return seconds
    window = retry_after(response.header(INTERVAL_HEADER))
    return math.ceil(window / 1000) if window else DEFAULT_RATE_LIMIT_WAIT


def _named(event: Mapping[str, Any], key: str, index: int) -> str:
    """A text field of event `index`, with its 400 naming it as `[index].key`."""
    name = f"[{index}].{key}"
    return text_field({name: event.get(key)}, name)


class HubSpotAdapter:
    """HubSpot tickets, configured by the HUBSPOT_* keys and the trigger property setting."""

    name = NAME

    def __init__(
        self,
        settings: HubSpotSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = NOTE_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Fail closed: the v3 signature over method, URI, body and a fresh timestamp, or a 401."""
        secret = self._settings.client_secret
        if not secret:
            raise SecretNotConfigured(f"webhook secret is not configured ({WEBHOOK_SECRET_KEY})")
        signature = single_header(request.headers, SIGNATURE.header).strip()
        if not signature:
            # An older X-HubSpot-Signature alone is refused: it carries no time (see SIGNATURE).
            raise Unauthenticated("missing X-HubSpot-Signature-v3 header")
        timestamp = single_header(request.headers, TIMESTAMP_HEADER).strip()
        if not timestamp:
            raise Unauthenticated("missing X-HubSpot-Request-Timestamp header")
        sent_at = _sent_at(timestamp)
        expected = SIGNATURE.verify(signature, secret, signed_message(request, timestamp))
        if sent_at < now - MAX_AGE or sent_at > now + MAX_FUTURE:
            raise Unauthenticated("webhook timestamp is too old or in the future")
        # Each event carries its own delivery; this one stands for the call as a whole.
        return Delivery(hashlib.sha256(f"sig\n{expected}".encode()).hexdigest(), EVENT_MEMORY)

    def parse(self, body: bytes) -> list[TicketRequest]:
        """Every event of the array that sets the trigger property to a capture: one ticket each.

        Other events (other subscriptions, properties or values) are passed over; an array
        with none gives an empty list, which the webhook answers as asking for nothing.
        """
        try:
            events = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidRequest("body is not valid JSON") from None
        if not isinstance(events, list):
            raise InvalidRequest("body must be a JSON array of events")
        tickets = [self._ticket(event, index) for index, event in enumerate(events)]
        return [ticket for ticket in tickets if ticket is not None]

    def _ticket(self, event: Any, index: int) -> TicketRequest | None:
        if not isinstance(event, dict):
            raise InvalidRequest(f"[{index}] must be an event object")
        subscription = event.get("subscriptionType")
        if not isinstance(subscription, str):
            raise InvalidRequest(f"[{index}].subscriptionType must be a string")
        if subscription != SUBSCRIPTION:
            return None
        if _named(event, "propertyName", index) != self._settings.trigger_property:
            return None
        value = _named(event, "propertyValue", index)
        if value in ACTIONS:
            fields: dict[str, Any] = {"action": value}
        elif _WEB_LINK.search(value):
            fields = {"text": value}
        else:
            # Cleared, or a value that asks for nothing.
            return None
        event_id = _named(event, "eventId", index)
        if not event_id:
            raise InvalidRequest(f"[{index}].eventId is required")
        ticket = _named(event, "objectId", index)
        if not _TICKET_ID.match(ticket):
            raise InvalidRequest(f"[{index}].objectId must be a HubSpot ticket id")
        return TicketRequest(
            helpdesk=NAME,
            ticket_id=ticket,
            requester="",
            label=LABEL.format(ticket_id=ticket),
            fields=fields,
            requester_fields="the ticket's associated contact",
            # The payload names no one: the ticket's contact is looked up once it is stored.
            requester_ref=ticket,
            delivery=event_delivery(event_id),
        )

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._settings.access_token}",
            "Accept": "application/json",
        }

    def find_requester(self, reference: str) -> RequesterLookup:
        """The ticket's first associated contact: its external id property if set, else email."""
        if not self._settings.access_token:
            return RequesterLookup(
                LookupOutcome.REJECTED, message="HUBSPOT_ACCESS_TOKEN is not set"
            )
        if not _TICKET_ID.match(reference):
            return RequesterLookup(LookupOutcome.NOT_FOUND, message="not a HubSpot ticket id")
        base = self._settings.api_url
        associations = self._lookup(
            f"{base}/crm/v4/objects/tickets/{reference}/associations/contacts?limit=1"
        )
        if isinstance(associations, RequesterLookup):
            return associations
        contact_id = _first_associated(associations)
        if contact_id is None:
            return RequesterLookup(
                LookupOutcome.NOT_FOUND, message="the ticket has no associated contact"
            )
        wanted = ",".join(filter(None, ("email", self._settings.external_id_property)))
        contact = self._lookup(f"{base}/crm/v3/objects/contacts/{contact_id}?properties={wanted}")
        if isinstance(contact, RequesterLookup):
            return contact
        properties = contact.get("properties") if isinstance(contact, dict) else None
        properties = properties if isinstance(properties, dict) else {}
        external_id = self._settings.external_id_property
        user = requester_of(
            properties.get(external_id) if external_id else None, properties.get("email")
        )
        if not user:
            return RequesterLookup(
                LookupOutcome.NOT_FOUND, message=f"contact {contact_id} has no email"
            )
        return RequesterLookup(LookupOutcome.FOUND, user=user)

    def _lookup(self, url: str) -> Any | RequesterLookup:
        """A look-up's GET: the JSON of a 200, else what the failure means (HubSpot's waits)."""
        return lookup_json(
            self._http,
            "HubSpot",
            url,
            headers=self._headers(),
            timeout=self._timeout,
            wait=lambda response: rate_limit_wait(response) if response.status == 429 else None,
        )

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """`POST /crm/v3/objects/notes`, associated with the ticket: a note only agents see.

        HubSpot takes `hs_note_body` as HTML: the note's HTML form, where every character of a
        payload is escaped and only the session's own web links are anchors.
        """
        if not self._settings.access_token:
            return NoteResult(NoteOutcome.REJECTED, "HUBSPOT_ACCESS_TOKEN must be set")
        if not _TICKET_ID.match(ticket_id):
            # A ticket named through the sessions API: HubSpot's ids are numbers.
            return NoteResult(
                NoteOutcome.REJECTED, f"{ticket_id[:40]!r} is not a HubSpot ticket id"
            )
        now = datetime.now(UTC)
        body = {
            "properties": {
                "hs_timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{now.microsecond // 1000:03d}Z",
                "hs_note_body": note.html,
            },
            "associations": [
                {
                    "to": {"id": ticket_id},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": NOTE_TO_TICKET,
                        }
                    ],
                }
            ],
        }
        try:
            response = self._http.request(
                "POST",
                f"{self._settings.api_url}/crm/v3/objects/notes",
                headers={**self._headers(), "Content-Type": "application/json"},
                json_body=body,
                timeout=self._timeout,
            )
        except TransportError as exc:
            return NoteResult(NoteOutcome.RETRYABLE, str(exc))
        result = note_answer(
            "HubSpot", response.status, response.header("Retry-After"), headers=response.headers
        )
        if response.status == 429:
            return replace(result, retry_after_seconds=rate_limit_wait(response))
        return result

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether a note on the ticket holds `marker`; None when that is unknown.

        The ticket's notes are its associations (one page), their bodies one batch read.
        """
        if not self._settings.access_token or not _TICKET_ID.match(ticket_id):
            return None
        base = self._settings.api_url
        associations = _read(
            self._http,
            "GET",
            f"{base}/crm/v4/objects/tickets/{ticket_id}/associations/notes?limit={NOTE_PAGE_SIZE}",
            headers=self._headers(),
            timeout=self._timeout,
        )
        note_ids = _associated_ids(associations)
        if note_ids is None:
            return None
        if not note_ids:
            return False
        notes = _read(
            self._http,
            "POST",
            f"{base}/crm/v3/objects/notes/batch/read",
            headers={**self._headers(), "Content-Type": "application/json"},
            json_body={
                "properties": ["hs_note_body"],
                "inputs": [{"id": note_id} for note_id in note_ids],
            },
            timeout=self._timeout,
        )
        bodies = _note_bodies(notes)
        if bodies is None:
            return None
        # The text as posted, and escaped as HubSpot may keep it.
        forms = {marker, html.escape(marker)}
        if any(form in body for body in bodies for form in forms):
            return True
        # Some asked for were not read (a 207): unknown.
        return False if len(bodies) == len(note_ids) else None


def _read(http: HttpClient, method: str, url: str, **request: Any) -> Any:
    """A read's JSON: the parsed answer of a 200 or 207, else None (no answer, an error)."""
    try:
        response = http.request(method, url, **request)
    except TransportError:
        return None
    return response.json() if response.status in (200, 207) else None


def _first_associated(payload: Any) -> str | None:
    """The first associated object's id of a v4 association list, or None."""
    ids = _associated_ids(payload, complete=False)
    return ids[0] if ids else None


def _associated_ids(payload: Any, *, complete: bool = True) -> list[str] | None:
    """The ids of a v4 association list; None when unreadable (or, `complete`, not all)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        return None
    if complete and isinstance(payload.get("paging"), dict) and payload["paging"].get("next"):
        return None
    ids = []
    for item in payload["results"]:
        found = item.get("toObjectId") if isinstance(item, dict) else None
        if isinstance(found, str | int) and not isinstance(found, bool):
            if not _TICKET_ID.match(str(found)):
                # Not a record id: nothing read from it could be trusted.
                return None
            ids.append(str(found))
    return ids


def _note_bodies(payload: Any) -> list[str] | None:
    """The `hs_note_body` of each note a batch read returned, or None when unreadable."""
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        return None
    bodies = []
    for item in results:
        properties = item.get("properties") if isinstance(item, dict) else None
        if isinstance(properties, dict):
            bodies.append(str(properties.get("hs_note_body") or ""))
    return bodies


def unconfigured(settings: Settings) -> list[str]:
    """What notes need and is not set: the app's access token (the API has its default)."""
    return unset([("HUBSPOT_ACCESS_TOKEN", HubSpotSettings.from_settings(settings).access_token)])


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /crm/v3/objects/tickets?limit=1` with the stored token: whether it reads tickets."""
    try:
        own = HubSpotSettings.from_settings(settings)
    except ConfigurationError as exc:
        return AccessCheck(NAME, Access.FAILED, str(exc))
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    response = read(
        NAME,
        "HubSpot",
        http,
        f"{own.api_url}/crm/v3/objects/tickets?limit=1",
        headers={"Authorization": f"Bearer {own.access_token}", "Accept": "application/json"},
    )
    if isinstance(response, AccessCheck):
        return response
    payload = response.json()
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        return AccessCheck(NAME, Access.FAILED, "HubSpot answered without a list of tickets")
    return AccessCheck(NAME, Access.OK, "the access token reads tickets")


def sign_request(
    values: Mapping[str, str], request: WebhookRequest, now: datetime
) -> dict[str, str]:
    """The headers HubSpot sends: the v3 signature, its timestamp, and the host it signed for.

    A request without a Host header is signed for `UNNAMED_HOST`, which the headers then name.
    """
    secret = values.get(WEBHOOK_SECRET_KEY, "").strip()
    if not secret:
        raise SecretNotConfigured(f"set {WEBHOOK_SECRET_KEY}")
    timestamp = str(int(now.timestamp() * 1000))
    host = single_header(request.headers, "host").strip() or UNNAMED_HOST
    return {
        "Host": host,
        "X-HubSpot-Signature-v3": SIGNATURE.sign(secret, signed_message(request, timestamp)),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def adapter(settings: Settings, http: HttpClient) -> HubSpotAdapter:
    """Builds the adapter from the settings (the spec's `adapter`)."""
    return HubSpotAdapter(HubSpotSettings.from_settings(settings), http)


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=adapter,
    probe=probe,
    unconfigured=unconfigured,
    sign_request=sign_request,
    webhook_secret_key=WEBHOOK_SECRET_KEY,
    secret_keys=(WEBHOOK_SECRET_KEY, "HUBSPOT_ACCESS_TOKEN"),
    # The look for an earlier note (its associations, then their bodies), then the post.
    longest_note_seconds=3 * sum(NOTE_TIMEOUT),
    # The ticket's contacts, then the contact.
    longest_lookup_seconds=2 * sum(NOTE_TIMEOUT),
    settings=(TRIGGER_SETTING,),
    optional_keys=("HUBSPOT_API_URL", EXTERNAL_ID_KEY, "HUBSPOT_NOTES_PER_MINUTE"),
    # HubSpot Free and Starter allow 100 calls per 10 seconds (600 a minute); a note costs three
    # when its earlier try is looked for: 80% of 600 / 3 (docs/helpdesks/hubspot.md).
    notes_per_minute=160,
)
