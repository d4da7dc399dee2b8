"""Intercom: an app's signed notifications in (an admin's `/capture` note), admin notes out."""

from __future__ import annotations

import hashlib
import html
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from capture_bridge.access import Access, AccessCheck, not_configured, read, unset
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    NothingToCapture,
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
    json_object,
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
from capture_bridge.models import Delivery, TicketRequest, storable_text
from capture_bridge.notes import Note
from capture_bridge.settings import Settings

NAME = "intercom"
# The key its notifications are checked against: the app's client secret signs them.
WEBHOOK_SECRET_KEY = "INTERCOM_CLIENT_SECRET"  # noqa: S105 - a key name, not a secret
# US workspaces; EU and AU ones set INTERCOM_API_URL to https://api.eu.intercom.io or
# https://api.au.intercom.io.
DEFAULT_API_URL = "https://api.intercom.io"
# The REST API version every call asks for: the shapes read here are this version's.
API_VERSION = "2.11"

# `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>`, keyed by the app's client secret.
SIGNATURE = HmacHeader("x-hub-signature", algorithm="sha1", encoding="hex", prefix="sha1=")
# Intercom signs no time, so a notification is known by its `id`, kept across its retries;
# remembered long enough for any of them (and for a replay of a captured call to do nothing).
DELIVERY_MEMORY = timedelta(days=2)

PING_TOPIC = "ping"
NOTED_TOPIC = "conversation.admin.noted"
# What follows `/capture` on a note's first line: the Bugpilot action it asks for.
COMMAND_ACTIONS = {"screenshot": "upload-screenshot", "recording": "show-recording-ui"}
BARE_ACTION = "upload-session"
_COMMAND = re.compile(r"^/capture(?:\s+(screenshot|recording)(?![^\s]))?(?:\s+(.*))?$", re.I)
# A link on the command's line names its capture (a LambdaTest or Notte session): a bare
# `/capture` then leaves the choice to the capture sources instead of also asking Bugpilot.
_LINK = re.compile(r"https?://", re.I)
# The rest of the line goes on as the capture's description and as the text sources search.
MAX_DESCRIPTION = 1000
MAX_TEXT = 10_000
# HTML of a note part: line-ending tags become line breaks, every other tag goes.
_LINE_BREAKS = re.compile(r"<br\s*/?>|</(?:p|div|li|h[1-6]|pre|blockquote)\s*>", re.I)
_TAGS = re.compile(r"<[^>]*>")

NOTE_TIMEOUT = (3.05, 5.0)
LOOKUP_TIMEOUT = (3.05, 5.0)
# Conversation ids are digits; contact ids are hex-like words. Both go into URL paths.
_CONVERSATION_ID = re.compile(r"^[0-9]{1,30}$")
_CONTACT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LABEL = "Intercom conversation #{ticket_id}"
CONTACT_FIELDS = "data.item.contacts.contacts[0].external_id, .email or .id"


@dataclass(frozen=True)
class IntercomSettings:
    """Intercom's own settings, all from the bridge secret."""

    api_url: str = DEFAULT_API_URL
    admin_id: str = ""
    access_token: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> IntercomSettings:
        """Read and validate; raises `ConfigurationError` naming an invalid setting."""
        api_url = secure_url("INTERCOM_API_URL", settings.text("INTERCOM_API_URL"))
        return cls(
            api_url=api_url or DEFAULT_API_URL,
            admin_id=settings.text("INTERCOM_ADMIN_ID"),
            access_token=settings.secret("INTERCOM_ACCESS_TOKEN"),
            # Stripped like every credential: a pasted newline would otherwise refuse everything.
            client_secret=settings.secret("INTERCOM_CLIENT_SECRET"),
        )


def sign_webhook(secret: str, body: bytes) -> str:
    """A notification's signature header value: `sha1=` and hex HMAC-SHA1 of the body."""
    return SIGNATURE.sign(secret, body)


def plain_text(markup: str) -> str:
    """A note part's HTML as the agent typed it: tags dropped, entities read, one line each."""
    text = _TAGS.sub("", _LINE_BREAKS.sub("\n", markup))
    return html.unescape(text).replace("\xa0", " ")


def wait_seconds(response: HttpResponse, now: float) -> int | None:
    """How long Intercom asks us to wait: `Retry-After`, else on a 429 `X-RateLimit-Reset`.

    The reset (on every answer) is a moment in epoch seconds, not a duration: it is counted
    from `now`, at least a second. It says when the budget refills, so only a 429 waits for it.
    """
    seconds = retry_after(response.header("Retry-After"))
    if seconds is not None or response.status != 429:
        return seconds
    reset = (response.header("X-RateLimit-Reset") or "").strip()
    if not (reset.isdigit() and len(reset) <= 12):
        return None
    return max(1, math.ceil(int(reset) - now))


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be an object")
    return value


def _listed(value: Any, name: str, key: str) -> list[Any]:
    """A list Intercom wraps as `{"type": "….list", key: [...]}`; a bare list is taken too."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get(key, [])
    if not isinstance(value, list):
        raise InvalidRequest(f"{name} must be a list (or an object with {key!r}, a list)")
    return value


def _newest_note(parts: list[Any], name: str) -> dict[str, Any] | None:
    """The note part created last (the later one on a tie or without times)."""
    newest: tuple[int, int, dict[str, Any]] | None = None
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise InvalidRequest(f"{name}[{index}] must be an object")
        if part.get("part_type") != "note":
            continue
        created = part.get("created_at")
        stamp = created if isinstance(created, int) and not isinstance(created, bool) else 0
        if newest is None or (stamp, index) >= newest[:2]:
            newest = (stamp, index, part)
    return None if newest is None else newest[2]


def capture_fields(note_text: str) -> dict[str, str] | None:
    """What a note asks for when its first line is a `/capture` command; None otherwise."""
    first = note_text.strip().split("\n", 1)[0].strip()
    found = _COMMAND.match(first)
    if found is None:
        return None
    command, rest = (found.group(1) or "").lower(), (found.group(2) or "").strip()
    fields: dict[str, str] = {}
    if command:
        fields["action"] = COMMAND_ACTIONS[command]
    elif not _LINK.search(rest):
        fields["action"] = BARE_ACTION
    if rest:
        fields["description"] = rest[:MAX_DESCRIPTION]
        fields["text"] = rest[:MAX_TEXT]
    return fields


def _requester(item: Mapping[str, Any]) -> tuple[str, str]:
    """The first contact as (user, reference to look them up by when the payload has no user)."""
    contacts = _listed(item.get("contacts"), "data.item.contacts", "contacts")
    if not contacts:
        return "", ""
    contact = _object(contacts[0], "data.item.contacts.contacts[0]")
    for key in ("external_id", "email"):
        value = contact.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise InvalidRequest(f"data.item.contacts.contacts[0].{key} must be a string")
    user = storable_text(
        "data.item.contacts.contacts[0]",
        requester_of(contact.get("external_id"), contact.get("email")),
    )
    if user:
        return user, ""
    reference = text_field({"id": contact.get("id")}, "id")
    if reference and not _CONTACT_ID.match(reference):
        raise InvalidRequest("data.item.contacts.contacts[0].id must be an Intercom contact id")
    return "", reference


def read_notification(body: bytes) -> TicketRequest:
    """A verified notification read; `NothingToCapture` unless it is a `/capture` note."""
    payload = json_object(body)
    topic = text_field(payload, "topic")
    if not topic:
        raise InvalidRequest("topic is required")
    if topic != NOTED_TOPIC:
        raise NothingToCapture(f"topic {topic[:60]!r} asks for no capture")
    data = _object(payload.get("data"), "data")
    item = _object(data.get("item"), "data.item")
    conversation = text_field({"data.item.id": item.get("id")}, "data.item.id")
    if not conversation:
        raise InvalidRequest("data.item.id is required")
    if not _CONVERSATION_ID.match(conversation):
        raise InvalidRequest("data.item.id must be an Intercom conversation id (digits)")
    parts_name = "data.item.conversation_parts.conversation_parts"
    parts = _listed(item.get("conversation_parts"), parts_name, "conversation_parts")
    note = _newest_note(parts, parts_name)
    if note is None:
        raise NothingToCapture("the notification carries no note")
    markup = note.get("body")
    if markup is not None and not isinstance(markup, str):
        raise InvalidRequest(f"{parts_name}[].body must be a string")
    fields = capture_fields(plain_text(markup or ""))
    if fields is None:
        raise NothingToCapture("the note is not a /capture command")
    user, reference = _requester(item)
    return TicketRequest(
        helpdesk=NAME,
        ticket_id=conversation,
        requester=user,
        label=LABEL.format(ticket_id=conversation),
        fields={name: storable_text(name, value) for name, value in fields.items()},
        requester_fields=CONTACT_FIELDS,
        requester_ref=reference,
    )


class IntercomAdapter:
    """Intercom, configured by the INTERCOM_* keys of the bridge secret."""

    name = NAME

    def __init__(
        self,
        settings: IntercomSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = NOTE_TIMEOUT,
        lookup_timeout: tuple[float, float] = LOOKUP_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout
        self._lookup_timeout = lookup_timeout
        # Epoch seconds, to turn X-RateLimit-Reset (a moment) into a wait.
        self._clock = clock

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Fail closed: the body's HMAC-SHA1 under the client secret, compared in constant time.

        Intercom signs no time, so nothing is stale; its notification `id` stays the same on
        every retry and is remembered for `DELIVERY_MEMORY`. A signed `ping` asks for nothing.
        """
        secret = self._settings.client_secret
        if not secret:
            raise SecretNotConfigured("webhook secret is not configured (INTERCOM_CLIENT_SECRET)")
        signature = single_header(request.headers, SIGNATURE.header).strip()
        if not signature:
            raise Unauthenticated("missing X-Hub-Signature header")
        SIGNATURE.verify(signature, secret, request.body)
        payload = json_object(request.body)
        if payload.get("topic") == PING_TOPIC:
            raise NothingToCapture("ping")
        notification = text_field(payload, "id")
        if not notification:
            raise InvalidRequest("id (the notification id) is required")
        subject = f"notification\n{notification}"
        return Delivery(hashlib.sha256(subject.encode()).hexdigest(), DELIVERY_MEMORY)

    def parse(self, body: bytes) -> TicketRequest:
        """A `conversation.admin.noted` notification whose newest note starts with `/capture`."""
        return read_notification(body)

    def _headers(self) -> dict[str, str] | None:
        settings = self._settings
        if not settings.access_token:
            return None
        return {
            "Authorization": f"Bearer {settings.access_token}",
            "Intercom-Version": API_VERSION,
            "Accept": "application/json",
        }

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """`POST /conversations/{id}/reply` as an admin `note`: agents see it, the contact never.

        Intercom takes a note's body as HTML: the note's HTML form, where every character of a
        payload is escaped and only the session's own web links are anchors.
        """
        headers = self._headers()
        admin_id = self._settings.admin_id
        if headers is None or not admin_id:
            return NoteResult(
                NoteOutcome.REJECTED, "INTERCOM_ACCESS_TOKEN and INTERCOM_ADMIN_ID must be set"
            )
        reply = {"message_type": "note", "type": "admin", "admin_id": admin_id, "body": note.html}
        try:
            response = self._http.request(
                "POST",
                f"{self._settings.api_url}/conversations/{ticket_id}/reply",
                headers={**headers, "Content-Type": "application/json"},
                json_body=reply,
                timeout=self._timeout,
            )
        except TransportError as exc:
            return NoteResult(NoteOutcome.RETRYABLE, str(exc))
        result = note_answer("Intercom", response.status, None, headers=response.headers)
        if result.outcome is not NoteOutcome.RETRYABLE:
            return result
        return NoteResult(
            result.outcome, result.message, wait_seconds(response, self._clock()), result.status
        )

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether a part of the conversation holds `marker` (as posted: escaped); None when
        unknown, including when Intercom left parts out (it returns at most 500)."""
        headers = self._headers()
        if headers is None:
            return None
        try:
            response = self._http.request(
                "GET",
                f"{self._settings.api_url}/conversations/{ticket_id}",
                headers=headers,
                timeout=self._timeout,
            )
        except TransportError:
            return None
        payload = response.json() if response.status == 200 else None
        if not isinstance(payload, dict):
            return None
        listing = payload.get("conversation_parts")
        try:
            parts = _listed(listing, "conversation_parts", "conversation_parts")
        except InvalidRequest:
            return None
        bodies = [str(part.get("body") or "") for part in parts if isinstance(part, dict)]
        forms = {marker, html.escape(marker)}
        if any(form in body for body in bodies for form in forms):
            return True
        total = listing.get("total_count") if isinstance(listing, dict) else None
        if isinstance(total, int) and not isinstance(total, bool) and total > len(parts):
            return None
        return False

    def find_requester(self, reference: str) -> RequesterLookup:
        """`GET /contacts/{id}`: its `external_id` when set, else its `email`."""
        headers = self._headers()
        if headers is None:
            return RequesterLookup(
                LookupOutcome.REJECTED, message="INTERCOM_ACCESS_TOKEN must be set"
            )
        if not _CONTACT_ID.match(reference):
            return RequesterLookup(LookupOutcome.NOT_FOUND, message="not an Intercom contact id")
        contact = lookup_json(
            self._http,
            "Intercom",
            f"{self._settings.api_url}/contacts/{reference}",
            headers=headers,
            timeout=self._lookup_timeout,
            wait=lambda response: wait_seconds(response, self._clock()),
        )
        if isinstance(contact, RequesterLookup):
            return contact
        if not isinstance(contact, dict):
            return RequesterLookup(
                LookupOutcome.RETRYABLE, message="Intercom answered with no contact"
            )
        user = requester_of(contact.get("external_id"), contact.get("email"))
        if not user:
            return RequesterLookup(
                LookupOutcome.NOT_FOUND,
                message=f"Intercom contact {reference} has neither an external_id nor an email",
            )
        return RequesterLookup(LookupOutcome.FOUND, user=user)


def unconfigured(settings: Settings) -> list[str]:
    """What notes need and is not set: the app's access token and the admin notes are by."""
    own = IntercomSettings.from_settings(settings)
    return unset([("INTERCOM_ACCESS_TOKEN", own.access_token), ("INTERCOM_ADMIN_ID", own.admin_id)])


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /me` with the stored token: the admin it belongs to, and that the workspace answers."""
    try:
        own = IntercomSettings.from_settings(settings)
    except ConfigurationError as exc:
        return AccessCheck(NAME, Access.FAILED, str(exc))
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    response = read(
        NAME,
        "Intercom",
        http,
        f"{own.api_url}/me",
        headers={
            "Authorization": f"Bearer {own.access_token}",
            "Intercom-Version": API_VERSION,
            "Accept": "application/json",
        },
    )
    if isinstance(response, AccessCheck):
        return response
    admin = response.json()
    admin_id = admin.get("id") if isinstance(admin, dict) else None
    if not isinstance(admin_id, str | int) or isinstance(admin_id, bool):
        return AccessCheck(NAME, Access.FAILED, "Intercom answered /me without an admin id")
    email = admin.get("email") if isinstance(admin, dict) else None
    who = f"{email} (admin {admin_id})" if isinstance(email, str) and email else f"admin {admin_id}"
    return AccessCheck(NAME, Access.OK, f"token of {who}; notes are written as {own.admin_id}")


def sign_request(
    values: Mapping[str, str], request: WebhookRequest, now: datetime
) -> dict[str, str]:
    """The header Intercom puts on every notification: the body signed with the client secret."""
    secret = values.get(WEBHOOK_SECRET_KEY, "").strip()
    if not secret:
        raise SecretNotConfigured(f"set {WEBHOOK_SECRET_KEY}")
    return {"X-Hub-Signature": sign_webhook(secret, request.body)}


def adapter(settings: Settings, http: HttpClient) -> IntercomAdapter:
    """Builds the adapter from the settings (the spec's `adapter`)."""
    return IntercomAdapter(IntercomSettings.from_settings(settings), http)


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=adapter,
    probe=probe,
    unconfigured=unconfigured,
    sign_request=sign_request,
    webhook_secret_key=WEBHOOK_SECRET_KEY,
    secret_keys=("INTERCOM_CLIENT_SECRET", "INTERCOM_ACCESS_TOKEN", "INTERCOM_ADMIN_ID"),
    # The longest a note can take: the look for an earlier one, then the post.
    longest_note_seconds=2 * sum(NOTE_TIMEOUT),
    # One contact read.
    longest_lookup_seconds=sum(LOOKUP_TIMEOUT),
    optional_keys=("INTERCOM_API_URL", "INTERCOM_NOTES_PER_MINUTE"),
    # Intercom allows a private app 10,000 calls a minute; a note costs two when its earlier try
    # is looked for: 80% of 10,000 / 2 (docs/helpdesks/intercom.md).
    notes_per_minute=4000,
)
