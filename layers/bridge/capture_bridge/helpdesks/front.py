"""Front: signed application-webhook events in, internal comments out through the Core API.

An app's webhook posts Front's own event when a teammate tags a conversation; the tag names the
capture, as Zendesk's tags do. Front signs the time and the body (`X-Front-Signature`), and
before any event it checks the URL with a signed challenge, answered here. Comments on a
conversation are internal: the note is one, written as the API token's bot teammate.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

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
    requester_of,
    secure_url,
    send_note,
    single_header,
    text_field,
)
from capture_bridge.helpdesks.spec import HelpdeskSpec
from capture_bridge.http import HttpClient, TransportError
from capture_bridge.models import Delivery, TicketRequest, storable_text
from capture_bridge.notes import Note, markdown_escaped, marked_up
from capture_bridge.settings import Settings

NAME = "front"
# The key its webhooks are checked against (the doctor says what a missing one means).
WEBHOOK_SECRET_KEY = "FRONT_APP_SECRET"  # noqa: S105 - a key name, not a secret
DEFAULT_API_URL = "https://api2.frontapp.com"

SIGNATURE = HmacHeader("x-front-signature", "sha256", "base64")
TIMESTAMP_HEADER = "x-front-request-timestamp"
# Sent, signed like any event, when the app's webhook is saved: the answer must echo it.
CHALLENGE_HEADER = "x-front-challenge"
MAX_CHALLENGE_LENGTH = 256
# Front signs each request with its send time (ms); Front recommends refusing older than this.
MAX_SKEW = timedelta(minutes=5)
# The event's id stays the same across Front's retries, whose schedule it does not document:
# remembered a day.
DELIVERY_MEMORY = timedelta(days=1)
# A body without a readable event id is ignored or refused by `parse`, so stores nothing; its
# signature (time and body) stands for it. A copy older than MAX_SKEW is refused anyway.
SIGNATURE_MEMORY = timedelta(hours=1)

# The tags that ask for a capture: Zendesk's (capture.bugpilot.ACTION_TAGS), which Bugpilot reads
# from the ticket's tags; and `capture_links`, which asks only for the LambdaTest or Notte
# sessions the conversation's subject links (a fixed payload has no field to name them in).
BUGPILOT_TAGS = frozenset({"bugpilot_session", "bugpilot_screenshot", "bugpilot_recording"})
LINKS_TAG = "capture_links"
CAPTURE_TAGS = BUGPILOT_TAGS | {LINKS_TAG}
# A conversation's subject goes with the capture (its description, and text read for links).
MAX_SUBJECT_LENGTH = 1000

NOTE_TIMEOUT = (3.05, 5.0)
LOOKUP_TIMEOUT = (3.05, 5.0)
# Comments are read a page at a time (Front's `_pagination.next`); past this many pages an
# earlier note is "unknown", so the note is retried later rather than posted twice.
MAX_COMMENT_PAGES = 2

_CONVERSATION_ID = re.compile(r"^cnv_[A-Za-z0-9]{1,40}$")
_EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# An email handle, as Bugpilot's sessions API accepts one; a phone or social handle is not.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LABEL = "Front conversation {ticket_id}"
REQUESTER_FIELDS = (
    "conversation.recipient.handle (an email) or conversation.recipient._links.related.contact"
)


@dataclass(frozen=True)
class FrontSettings:
    """Front's own settings, all from the bridge secret."""

    api_url: str = DEFAULT_API_URL
    api_token: str = field(default="", repr=False)
    app_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> FrontSettings:
        """Read and validate; raises `ConfigurationError` naming an invalid setting."""
        return cls(
            api_url=secure_url("FRONT_API_URL", settings.text("FRONT_API_URL")) or DEFAULT_API_URL,
            api_token=settings.secret("FRONT_API_TOKEN"),
            # Stripped like every credential: a pasted newline would otherwise refuse everything.
            app_secret=settings.secret("FRONT_APP_SECRET"),
        )


def signed_message(timestamp: str, body: bytes) -> bytes:
    """What Front signs: the timestamp header's value, a colon, then the raw body."""
    return timestamp.encode() + b":" + body


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """`X-Front-Signature`: base64 of HMAC-SHA256(app secret, `{timestamp}:{body}`)."""
    return SIGNATURE.sign(secret, signed_message(timestamp, body))


def _sent_at(raw: str) -> datetime:
    text = raw.strip()
    # Epoch milliseconds; 15 digits is far past any real time, and keeps fromtimestamp in range.
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise Unauthenticated("unreadable X-Front-Request-Timestamp (epoch milliseconds)")
    return datetime.fromtimestamp(int(text) / 1000, UTC)


def markdown_note(note: Note) -> str:
    """The note as a Front comment body (Markdown): payload text inert, the session's links whole.

    One paragraph per line, so that Markdown does not run the note's lines together.
    """
    lines = note.lines or tuple(note.text.splitlines())
    return "\n\n".join(marked_up(lines, note.links.values(), markdown_escaped, str))


class FrontAdapter:
    """Front, configured by the FRONT_* keys of the bridge secret."""

    name = NAME

    def __init__(
        self,
        settings: FrontSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = NOTE_TIMEOUT,
        lookup_timeout: tuple[float, float] = LOOKUP_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout
        self._lookup_timeout = lookup_timeout

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Fail closed: no secret, no headers, a stale or future time or a wrong signature refuse.

        A proven challenge is answered (`{"challenge": …}`) and stores nothing.
        """
        secret = self._settings.app_secret
        if not secret:
            raise SecretNotConfigured("app signing secret is not configured (FRONT_APP_SECRET)")
        headers, body = request.headers, request.body
        signature = single_header(headers, SIGNATURE.header)
        timestamp = single_header(headers, TIMESTAMP_HEADER).strip()
        if not signature.strip() or not timestamp:
            raise Unauthenticated("missing X-Front-Signature or X-Front-Request-Timestamp header")
        try:
            sent_at = _sent_at(timestamp)
        except (ValueError, OverflowError, OSError):
            raise Unauthenticated("unreadable X-Front-Request-Timestamp") from None
        if abs(now - sent_at) > MAX_SKEW:
            raise Unauthenticated("webhook timestamp is too old or in the future")
        expected = SIGNATURE.verify(signature, secret, signed_message(timestamp, body))
        if CHALLENGE_HEADER in headers:
            raise NothingToCapture(
                "Front's webhook validation", answer={"challenge": _challenge(request)}
            )
        event_id = _event_id(body)
        # Front keeps the event's id across its retries; without one, equal signatures are a copy.
        if event_id:
            subject, memory = f"event\n{event_id}", DELIVERY_MEMORY
        else:
            subject, memory = f"sig\n{expected}", SIGNATURE_MEMORY
        return Delivery(hashlib.sha256(subject.encode()).hexdigest(), memory)

    def parse(self, body: bytes) -> TicketRequest:
        """Read the tag event; every problem is a 400 naming the field.

        An app's webhook wraps the event (`{"type", "authorization", "payload": event}`); a bare
        event (Front's event resource, as its rules and Events API give it) is read too.
        """
        payload = json_object(body)
        event, prefix = _event(payload)
        # The envelope names the event's type too; the event's own wins when both do.
        kind = _named(event, "type", f"{prefix}type") or _named(payload, "type", "type")
        if kind != "tag":
            raise NothingToCapture(f"a Front {kind or 'untyped'} event asks for no capture")
        target = _object(event.get("target"), f"{prefix}target")
        data = _object(target.get("data"), f"{prefix}target.data")
        tag = _named(data, "name", f"{prefix}target.data.name")
        if not tag:
            raise InvalidRequest(f"{prefix}target.data.name is required")
        if tag not in CAPTURE_TAGS:
            raise NothingToCapture(f"the tag {tag[:40]!r} asks for no capture")
        # The delivery id (`verify` reads it the same way): a call without one stores nothing.
        event_id = _named(event, "id", f"{prefix}id")
        if not event_id:
            raise InvalidRequest(f"{prefix}id is required")
        if not _EVENT_ID.match(event_id):
            raise InvalidRequest(f"{prefix}id must be a Front event id (letters, digits, _ and -)")
        conversation = _object(event.get("conversation"), f"{prefix}conversation")
        conversation_id = _named(conversation, "id", f"{prefix}conversation.id")
        if not _CONVERSATION_ID.match(conversation_id):
            raise InvalidRequest(f"{prefix}conversation.id must be a Front conversation id (cnv_…)")
        email, contact = _recipient(conversation, f"{prefix}conversation.recipient")
        subject = _subject(conversation, f"{prefix}conversation.subject")
        if tag == LINKS_TAG and not _links_a_session(subject):
            # Else the ticket would name no capture, and get Bugpilot's default one.
            raise NothingToCapture(
                "the conversation's subject links no LambdaTest or Notte session"
            )
        fields: dict[str, Any] = {"description": subject, "text": subject} if subject else {}
        return TicketRequest(
            helpdesk=NAME,
            ticket_id=conversation_id,
            requester=email,
            label=LABEL.format(ticket_id=conversation_id),
            fields=fields,
            tags=(tag,) if tag in BUGPILOT_TAGS else (),
            requester_fields=REQUESTER_FIELDS,
            # A phone or social handle: the contact's email handle is looked up once stored.
            requester_ref="" if email else contact,
        )

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._settings.api_token}",
            "Accept": "application/json",
        }

    def find_requester(self, reference: str) -> RequesterLookup:
        """The contact at `reference` (its link in the event), by its first email handle.

        Followed only on FRONT_API_URL's own scheme, host and port: the token never goes
        anywhere a payload points.
        """
        if not self._settings.api_token:
            return RequesterLookup(LookupOutcome.REJECTED, message="FRONT_API_TOKEN is not set")
        if not _same_origin(reference, self._settings.api_url):
            return RequesterLookup(
                LookupOutcome.NOT_FOUND,
                message="the contact link is not on FRONT_API_URL's host; not followed",
            )
        payload = lookup_json(
            self._http, "Front", reference, headers=self._headers(), timeout=self._lookup_timeout
        )
        if isinstance(payload, RequesterLookup):
            return payload
        user = requester_of(None, _email_handle(payload))
        if not user:
            return RequesterLookup(LookupOutcome.NOT_FOUND, message="the contact has no email")
        return RequesterLookup(LookupOutcome.FOUND, user=user)

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """`POST /conversations/{id}/comments`: a comment, which Front keeps internal.

        Front renders a comment's body as Markdown: every payload character that could open a
        link, an image, HTML or code is escaped; only the session's own links stay links.
        """
        if not self._settings.api_token:
            return NoteResult(NoteOutcome.REJECTED, "FRONT_API_TOKEN must be set")
        return send_note(
            self._http,
            "Front",
            "POST",
            f"{self._settings.api_url}/conversations/{ticket_id}/comments",
            headers={**self._headers(), "Content-Type": "application/json"},
            json_body={"body": markdown_note(note)},
            timeout=self._timeout,
        )

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether a comment on the conversation holds `marker`; None when that is unknown."""
        if not self._settings.api_token:
            return None
        forms = {marker, markdown_escaped(marker)}
        url: str | None = f"{self._settings.api_url}/conversations/{ticket_id}/comments"
        for _ in range(MAX_COMMENT_PAGES):
            if url is None:
                return False
            page = self._comment_page(url)
            if page is None:
                return None
            bodies, url = page
            if any(form in body for body in bodies for form in forms):
                return True
        # More comments than we read: unknown, so that the note is never posted twice.
        return False if url is None else None

    def _comment_page(self, url: str) -> tuple[list[str], str | None] | None:
        """One page of comments: their bodies and the next page's URL (None: the last)."""
        try:
            response = self._http.request(
                "GET", url, headers=self._headers(), timeout=self._timeout
            )
        except TransportError:
            return None
        payload = response.json() if response.status == 200 else None
        results = payload.get("_results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            return None
        bodies = [str(item.get("body", "")) for item in results if isinstance(item, dict)]
        pagination = payload.get("_pagination") if isinstance(payload, dict) else None
        following = pagination.get("next") if isinstance(pagination, dict) else None
        if not following:
            return bodies, None
        # A next page elsewhere than the API would take the token there: unknown instead.
        if not isinstance(following, str) or not _same_origin(following, self._settings.api_url):
            return None
        return bodies, following


def _event(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The event and the prefix naming its fields: an app's envelope's `payload`, else the body."""
    if "payload" not in payload:
        return payload, ""
    if not isinstance(payload["payload"], dict):
        raise InvalidRequest("payload must be an object")
    return payload["payload"], "payload."


def _event_id(body: bytes) -> str:
    """The event's id when the body has a well-formed one; else empty (`parse` judges the body)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    if isinstance(payload, dict) and isinstance(payload.get("payload"), dict):
        payload = payload["payload"]
    event_id = payload.get("id") if isinstance(payload, dict) else None
    return event_id if isinstance(event_id, str) and _EVENT_ID.match(event_id) else ""


def _challenge(request: WebhookRequest) -> str:
    """The challenge to echo: Front's random string, refused when it could be anything else."""
    challenge = single_header(request.headers, CHALLENGE_HEADER).strip()
    if not challenge or len(challenge) > MAX_CHALLENGE_LENGTH or not challenge.isprintable():
        raise InvalidRequest(f"x-front-challenge must be 1 to {MAX_CHALLENGE_LENGTH} characters")
    return challenge


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be an object")
    return value


def _named(payload: Mapping[str, Any], key: str, name: str) -> str:
    """A text field of the event, with its 400 naming the field by its full path."""
    return text_field({name: payload.get(key)}, name)


def _recipient(conversation: Mapping[str, Any], name: str) -> tuple[str, str]:
    """The recipient's handle when it is an email, and the link to their contact."""
    recipient = _object(conversation.get("recipient"), name)
    handle = _named(recipient, "handle", f"{name}.handle")
    links = _object(recipient.get("_links"), f"{name}._links")
    related = _object(links.get("related"), f"{name}._links.related")
    contact = _named(related, "contact", f"{name}._links.related.contact")
    return (handle if _EMAIL.match(handle) else ""), contact


def _subject(conversation: Mapping[str, Any], name: str) -> str:
    """The conversation's subject, cut to a bounded length (Front's payload is not ours to fit)."""
    subject = conversation.get("subject")
    if subject is None:
        return ""
    if not isinstance(subject, str):
        raise InvalidRequest(f"{name} must be a string")
    return storable_text(name, subject.strip()[:MAX_SUBJECT_LENGTH])


def _links_a_session(text: str) -> bool:
    """Whether `text` links a session some capture source reads from a ticket's text."""
    # Imported only for this tag: it loads the capture sources' modules.
    from capture_bridge.capture import provider_specs

    return any(spec.named.ids_in(text) for spec in provider_specs() if spec.named is not None)


def _email_handle(contact: Any) -> str:
    """A contact's first email handle (`handles[]` with `source: "email"`), else empty."""
    handles = contact.get("handles") if isinstance(contact, dict) else None
    if not isinstance(handles, list):
        return ""
    for item in handles:
        if isinstance(item, dict) and item.get("source") == "email":
            handle = item.get("handle")
            if isinstance(handle, str) and _EMAIL.match(handle.strip()):
                return handle.strip()
    return ""


def _same_origin(url: str, base: str) -> bool:
    """Whether `url` is an http(s) URL on `base`'s scheme, host and port."""
    try:
        given, own = urlsplit(url), urlsplit(base)
        return (
            given.scheme == own.scheme
            and given.hostname == own.hostname
            and given.port == own.port
            and not given.username
            and not given.password
        )
    except ValueError:
        return False


def unconfigured(settings: Settings) -> list[str]:
    """What notes need and is not set: the API token."""
    own = FrontSettings.from_settings(settings)
    return unset([("FRONT_API_TOKEN", own.api_token)])


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /me` with the stored token: the company it belongs to."""
    try:
        own = FrontSettings.from_settings(settings)
    except ConfigurationError as exc:
        return AccessCheck(NAME, Access.FAILED, str(exc))
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    response = read(
        NAME,
        "Front",
        http,
        f"{own.api_url}/me",
        headers={"Authorization": f"Bearer {own.api_token}", "Accept": "application/json"},
    )
    if isinstance(response, AccessCheck):
        return response
    payload = response.json()
    company = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(company, str) or not company:
        return AccessCheck(NAME, Access.FAILED, "Front answered without a company id")
    name = payload.get("name") if isinstance(payload, dict) else None
    who = f"{name} ({company})" if isinstance(name, str) and name else company
    return AccessCheck(NAME, Access.OK, f"token of company {who}")


def sign_request(
    values: Mapping[str, str], request: WebhookRequest, now: datetime
) -> dict[str, str]:
    """The headers Front would send with `request` at `now`, signed with the app's secret."""
    secret = values.get(WEBHOOK_SECRET_KEY, "").strip()
    if not secret:
        raise SecretNotConfigured(f"set {WEBHOOK_SECRET_KEY}")
    timestamp = str(int(now.timestamp() * 1000))
    return {
        "X-Front-Signature": sign_webhook(secret, timestamp, request.body),
        "X-Front-Request-Timestamp": timestamp,
    }


def adapter(settings: Settings, http: HttpClient) -> FrontAdapter:
    """Builds the adapter from the settings (the spec's `adapter`)."""
    return FrontAdapter(FrontSettings.from_settings(settings), http)


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=adapter,
    probe=probe,
    unconfigured=unconfigured,
    sign_request=sign_request,
    webhook_secret_key=WEBHOOK_SECRET_KEY,
    secret_keys=("FRONT_APP_SECRET", "FRONT_API_TOKEN"),
    # The longest a note can take: the look for an earlier one (every page), then the post.
    longest_note_seconds=(MAX_COMMENT_PAGES + 1) * sum(NOTE_TIMEOUT),
    longest_lookup_seconds=sum(LOOKUP_TIMEOUT),
    optional_keys=("FRONT_API_URL", "FRONT_NOTES_PER_MINUTE"),
    # Front Starter allows 50 calls a minute; a note costs up to three when its earlier try is
    # looked for (two pages): 80% of 50 / 3 (docs/helpdesks/front.md).
    notes_per_minute=13,
)
