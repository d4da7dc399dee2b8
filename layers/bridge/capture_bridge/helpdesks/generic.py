"""Generic signed webhook: Standard Webhooks calls in, signed note callbacks out.

For any tool that is not a supported helpdesk (a CRM, an in-house desk, a chat bot). Calls are
signed as https://www.standardwebhooks.com/ defines: `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, with the key given as
`whsec_<base64>`. Notes go back, signed the same way, to the one configured `GENERIC_NOTE_URL`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from capture_bridge.access import Access, AccessCheck, not_configured, unset
from capture_bridge.capture import body_field_names
from capture_bridge.errors import (
    InvalidRequest,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import NoteOutcome, NoteResult, WebhookRequest
from capture_bridge.helpdesks.common import (
    RequesterInBody,
    json_object,
    secure_url,
    send_note,
    single_header,
    tags_field,
)
from capture_bridge.helpdesks.common import text_field as body_text
from capture_bridge.helpdesks.spec import HelpdeskSpec
from capture_bridge.http import HttpClient
from capture_bridge.models import Delivery, TicketRequest, field_text, utc_now
from capture_bridge.notes import Note, safe_text
from capture_bridge.settings import Settings

NAME = "generic"
WEBHOOK_SECRET_KEY = "GENERIC_WEBHOOK_SECRET"  # noqa: S105 - a key name, not a secret
NOTE_URL_KEY = "GENERIC_NOTE_URL"

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the standard's prefix, not a secret
SIGNATURE_VERSION = "v1"
# The standard's replay window: a timestamp further than this from now, either way, is refused.
MAX_SKEW = timedelta(minutes=5)
# Senders re-sign every retry with a fresh timestamp and the same `webhook-id`, on a schedule the
# standard's example spreads over three days (the last of ten attempts 75.5 h after the first).
# The window alone would let a late retry in as new, so the id is remembered that long.
DELIVERY_MEMORY = timedelta(days=4)
# Bounds on what a sender may put in the headers; genuine ids are short (`msg_<random>`).
MAX_ID_LENGTH = 256
MAX_SIGNATURES = 16
_MESSAGE_ID = re.compile(r"[!-~]{1,256}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
NOTE_TIMEOUT = (3.05, 10.0)
NOTE_EVENT_TYPE = "capture.note"
RECEIVER = "the note receiver"

MAX_TICKET_ID_LENGTH = 128
_TICKET_ID = re.compile(r"[A-Za-z0-9._:#/-]{1,128}")
TICKET_HINT = "1 to 128 characters: letters, digits and . _ : # / -"
# The body's own fields; every other one goes to the capture providers, in snake_case.
BODY_FIELDS = frozenset({"ticketId", "userId", "userEmail", "tags"})
# Keys (any casing, with or without separators) that would let a payload choose where notes go.
_REFUSED_KEYS = frozenset({"callbackurl", "callback", "noteurl", "replyurl", "returnurl"})


def decode_secret(raw: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; `SecretNotConfigured` naming the key otherwise.

    The webhook answers that with 401 and an ERROR log, so an operator learns the form to paste.
    """
    text = raw.strip()
    if not text:
        raise SecretNotConfigured(
            f"webhook signing secret is not configured ({WEBHOOK_SECRET_KEY})"
        )
    encoded = text.removeprefix(SECRET_PREFIX) if text.startswith(SECRET_PREFIX) else ""
    try:
        # Senders print the key with or without its base64 padding; both mean the same bytes.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise SecretNotConfigured(
            f"{WEBHOOK_SECRET_KEY} must be {SECRET_PREFIX} followed by the base64 key, "
            "as the sending tool shows it"
        )
    return key


def _digest(key: bytes, message_id: str, timestamp: int | str, body: bytes) -> bytes:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(key: bytes, message_id: str, timestamp: int | str, body: bytes) -> str:
    """The standard's signature: `v1,` and base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    digest = _digest(key, message_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def _presented(header: str) -> list[bytes]:
    """The v1 signatures of a `webhook-signature` header, decoded; other versions are skipped."""
    entries = header.split()
    if len(entries) > MAX_SIGNATURES:
        raise Unauthenticated(f"more than {MAX_SIGNATURES} webhook signatures")
    found = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _refused(key: str) -> bool:
    return re.sub(r"[^a-z0-9]", "", key.lower()) in _REFUSED_KEYS


def note_url(raw: str) -> str:
    """`GENERIC_NOTE_URL` checked: https, or http to this machine only; else ConfigurationError."""
    return secure_url(NOTE_URL_KEY, raw, base=False)


@dataclass(frozen=True)
class GenericSettings:
    """The generic webhook's own settings, all read from the bridge secret."""

    # Kept as given: its form is checked where it is used, so that a wrong one is a 401.
    webhook_secret: str = field(default="", repr=False)
    note_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> GenericSettings:
        return cls(
            webhook_secret=settings.secret(WEBHOOK_SECRET_KEY),
            note_url=note_url(settings.text(NOTE_URL_KEY)),
        )


def _ticket_id(payload: Mapping[str, Any]) -> str:
    ticket = field_text(payload, "ticketId", MAX_TICKET_ID_LENGTH)
    if not ticket:
        raise InvalidRequest("ticketId is required")
    if not _TICKET_ID.fullmatch(ticket):
        raise InvalidRequest(f"ticketId must be {TICKET_HINT}")
    return ticket


def _provider_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the capture sources read, under their rule-body names; the rest are unread.

    Each source's spec names its fields in both spellings (`capture.body_field_names`).
    """
    names = body_field_names()
    fields: dict[str, Any] = {}
    named_by: dict[str, str] = {}
    for key, value in payload.items():
        name = names.get(key)
        if key in BODY_FIELDS or name is None:
            continue
        if name in named_by:
            # `notteSessionId` and `notte_session_id` together: which one was meant is unknown.
            raise InvalidRequest(f"{named_by[name]} and {key} name the same field")
        named_by[name] = key
        fields[name] = value
    return fields


class GenericAdapter(RequesterInBody):
    """A tool speaking Standard Webhooks, configured by the GENERIC_* keys of the secret."""

    name = NAME

    def __init__(
        self,
        settings: GenericSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = NOTE_TIMEOUT,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout
        # The receiver checks a note's timestamp against its own clock: the real time.
        self._clock = clock

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Fail closed: no secret, a missing header, a stale time or no matching v1 signature.

        The signature covers the id, the time and the body; method, path and query prove nothing.
        """
        key = decode_secret(self._settings.webhook_secret)
        headers = request.headers
        message_id = single_header(headers, ID_HEADER).strip()
        timestamp = single_header(headers, TIMESTAMP_HEADER).strip()
        signature = single_header(headers, SIGNATURE_HEADER)
        if not message_id or not timestamp or not signature.strip():
            raise Unauthenticated("missing webhook-id, webhook-timestamp or webhook-signature")
        if not _MESSAGE_ID.fullmatch(message_id):
            raise Unauthenticated("unreadable webhook-id")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise Unauthenticated("unreadable webhook-timestamp (epoch seconds)")
        if abs(now.timestamp() - int(timestamp)) > MAX_SKEW.total_seconds():
            raise Unauthenticated("webhook-timestamp is too old or in the future")
        expected = _digest(key, message_id, timestamp, request.body)
        # Every presented signature is compared in full, in constant time; any match accepts.
        matches = [hmac.compare_digest(expected, given) for given in _presented(signature)]
        if not any(matches):
            raise Unauthenticated("webhook signature does not match")
        # The standard's idempotency key: a sender's retries keep it, whatever their timestamp.
        return Delivery(hashlib.sha256(message_id.encode()).hexdigest(), DELIVERY_MEMORY)

    def parse(self, body: bytes) -> TicketRequest:
        """Read the documented camelCase body; every problem is a 400 naming the field."""
        payload = json_object(body)
        for key in payload:
            if _refused(key):
                raise InvalidRequest(
                    f"{key} is not accepted: notes go to the configured {NOTE_URL_KEY}"
                )
        ticket = _ticket_id(payload)
        # Both read, so that a bad one is refused even when the other would do.
        user_id = body_text(payload, "userId")
        email = body_text(payload, "userEmail")
        return TicketRequest(
            helpdesk=self.name,
            ticket_id=ticket,
            requester=user_id or email,
            label=f"ticket {ticket}",
            fields=_provider_fields(payload),
            tags=tags_field(payload, "tags"),
            requester_fields="userId or userEmail",
        )

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """`POST` the note as JSON to `GENERIC_NOTE_URL`, signed like the calls that come in.

        `webhook-id` is the same on every send of one session's note, so that the receiver,
        deduplicating on it as the standard asks, keeps a note sent again only once.
        """
        url = self._settings.note_url
        if not url:
            return NoteResult(NoteOutcome.REJECTED, f"{NOTE_URL_KEY} must be set")
        try:
            key = decode_secret(self._settings.webhook_secret)
        except SecretNotConfigured as exc:
            return NoteResult(NoteOutcome.REJECTED, str(exc))
        payload = {
            "type": NOTE_EVENT_TYPE,
            "ticketId": ticket_id,
            "sessionId": note.session_id,
            "status": note.status,
            # Receivers (chat tools, CRMs) often render text as Markdown.
            "text": safe_text(note),
            "html": note.html,
            "links": dict(note.links),
        }
        timestamp = int(self._clock().timestamp())
        message_id = note_message_id(note)
        body = note_body(payload)
        return send_note(
            self._http,
            RECEIVER,
            "POST",
            url,
            headers={
                "Content-Type": "application/json",
                ID_HEADER: message_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(key, message_id, timestamp, body),
            },
            body=body,
            timeout=self._timeout,
        )

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Always False: there is nothing to look in, and sending the note again is safe.

        The receiver is any endpoint; the bridge cannot read what it kept. A note sent again
        carries the same `webhook-id` (`note_<session id>`), and receivers must de-duplicate on
        it (the standard's idempotency key), so the ticket still gets it once.
        """
        return False


def note_message_id(note: Note) -> str:
    """The `webhook-id` of a note: fixed per session, so every re-send is recognisably the same."""
    subject = note.session_id or hashlib.sha256(note.text.encode()).hexdigest()[:32]
    return f"note_{subject}"


def note_body(payload: Mapping[str, Any]) -> bytes:
    """The note's JSON as sent: these very bytes are signed and put on the wire."""
    return json.dumps(payload, allow_nan=False).encode("utf-8")


def unconfigured(settings: Settings) -> list[str]:
    """What notes need and is not set: where they go, and the key that signs them."""
    own = GenericSettings.from_settings(settings)
    return unset([(WEBHOOK_SECRET_KEY, own.webhook_secret), (NOTE_URL_KEY, own.note_url)])


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """No call: a receiver has no read-only endpoint, so only the settings' form is checked."""
    own = GenericSettings.from_settings(settings)
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    try:
        decode_secret(own.webhook_secret)
    except SecretNotConfigured as exc:
        return AccessCheck(NAME, Access.REJECTED, f"{exc}; every webhook is refused")
    return AccessCheck(
        NAME,
        Access.NOT_CALLED,
        f"configured; {NOTE_URL_KEY} is not called (a receiver has no read-only call), so the "
        "first note proves it",
    )


def sign_request(
    values: Mapping[str, str], request: WebhookRequest, now: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers a sender would add to `request` at `now`.

    A `webhook-id` the request has already is kept (a retry of the same message); otherwise a
    fresh `msg_<random>` is made.
    """
    raw = values.get(WEBHOOK_SECRET_KEY, "").strip()
    if not raw:
        raise SecretNotConfigured(f"set {WEBHOOK_SECRET_KEY}")
    key = decode_secret(raw)
    message_id = single_header(request.headers, ID_HEADER).strip()
    message_id = message_id or f"msg_{secrets.token_hex(12)}"
    timestamp = int(now.timestamp())
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(key, message_id, timestamp, request.body),
    }


def adapter(settings: Settings, http: HttpClient) -> GenericAdapter:
    """Builds the adapter from the settings (the spec's `adapter`)."""
    return GenericAdapter(GenericSettings.from_settings(settings), http)


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=adapter,
    probe=probe,
    unconfigured=unconfigured,
    sign_request=sign_request,
    webhook_secret_key=WEBHOOK_SECRET_KEY,
    secret_keys=("GENERIC_WEBHOOK_SECRET", "GENERIC_NOTE_URL"),
    # The longest a note can take: one post at its timeouts (`has_note` makes no call).
    longest_note_seconds=sum(NOTE_TIMEOUT),
    optional_keys=("GENERIC_NOTES_PER_MINUTE",),
    # The receiver is yours and no vendor limits it: five notes a second unless set
    # (docs/helpdesks/generic.md).
    notes_per_minute=300,
)
