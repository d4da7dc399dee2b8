"""Zendesk: signed trigger webhooks in, internal notes out through the Tickets API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from capture_bridge.access import Access, AccessCheck, not_configured, read, unset
from capture_bridge.errors import SecretNotConfigured, Unauthenticated
from capture_bridge.helpdesks import NoteOutcome, NoteResult, WebhookRequest
from capture_bridge.helpdesks.common import (
    RequesterInBody,
    read_json,
    rule_body,
    send_note,
    single_header,
)
from capture_bridge.helpdesks.spec import HelpdeskSpec
from capture_bridge.http import HttpClient
from capture_bridge.models import Delivery, TicketRequest
from capture_bridge.notes import Note
from capture_bridge.settings import Settings

NAME = "zendesk"
# The key its webhooks are checked against (the doctor says what a missing one means).
WEBHOOK_SECRET_KEY = "ZENDESK_WEBHOOK_SECRET"  # noqa: S105 - a key name, not a secret

SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"
# Zendesk signs each delivery with its send time; older ones are treated as replays.
MAX_SKEW = timedelta(minutes=5)
# How long a delivery is recognised by its signature: a copy older than MAX_SKEW is refused
# anyway, so an hour is ample.
DELIVERY_MEMORY = timedelta(hours=1)
# Zendesk signs every attempt afresh, so a retry has a new signature; what stays is the
# invocation's id (its API lists each invocation's attempts), which then names the delivery.
# Retries may follow an outage by hours: it is remembered a day.
INVOCATION_HEADER = "x-zendesk-webhook-invocation-id"
INVOCATION_MEMORY = timedelta(days=1)
_INVOCATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NOTE_TIMEOUT = (3.05, 10.0)
_TICKET_ID = re.compile(r"^[1-9][0-9]{0,19}$")


@dataclass(frozen=True)
class ZendeskSettings:
    """Zendesk's own settings."""

    subdomain: str = ""
    api_url: str = ""
    email: str = ""
    api_token: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ZendeskSettings:
        return cls(
            subdomain=settings.text("ZENDESK_SUBDOMAIN"),
            api_url=settings.url("ZENDESK_API_URL"),
            email=settings.text("ZENDESK_EMAIL"),
            api_token=settings.secret("ZENDESK_API_TOKEN"),
            # Stripped like every credential: a pasted newline would otherwise refuse everything.
            webhook_secret=settings.secret("ZENDESK_WEBHOOK_SECRET"),
        )

    @property
    def base_url(self) -> str:
        """`ZENDESK_API_URL` if set, else the subdomain's URL; empty when neither is configured."""
        if self.api_url:
            return self.api_url.rstrip("/")
        if self.subdomain:
            return f"https://{self.subdomain}.zendesk.com"
        return ""


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """Zendesk's signature: base64(HMAC-SHA256(secret, timestamp + body))."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _parse_timestamp(raw: str) -> datetime:
    text = raw.strip()
    if text.isdigit():
        # Epoch seconds, or milliseconds: 12 digits or more is after the year 5000 in seconds.
        number = int(text)
        return datetime.fromtimestamp(number / 1000 if len(text) >= 12 else number, UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ZendeskAdapter(RequesterInBody):
    """Zendesk Support, configured by the ZENDESK_* settings."""

    name = NAME

    def __init__(
        self,
        settings: ZendeskSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = NOTE_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Fail closed: no secret, no headers, a stale time or a wrong signature all refuse.

        Zendesk signs the body and the time only; method, path and query prove nothing here.
        """
        secret = self._settings.webhook_secret
        if not secret:
            raise SecretNotConfigured(
                "webhook signing secret is not configured (ZENDESK_WEBHOOK_SECRET)"
            )
        headers, body = request.headers, request.body
        signature = single_header(headers, SIGNATURE_HEADER)
        timestamp = single_header(headers, TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Unauthenticated("missing webhook signature headers")
        if not signature.isascii():
            # A base64 digest is ASCII; anything else (a lone surrogate even) is no signature.
            raise Unauthenticated("webhook signature does not match")
        try:
            sent_at = _parse_timestamp(timestamp)
        except (ValueError, OverflowError, OSError):
            raise Unauthenticated("unreadable webhook signature timestamp") from None
        if abs(now - sent_at) > MAX_SKEW:
            raise Unauthenticated("webhook signature timestamp is too old or in the future")
        expected = sign_webhook(secret, timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            raise Unauthenticated("webhook signature does not match")
        invocation = single_header(headers, INVOCATION_HEADER).strip()
        if _INVOCATION_ID.match(invocation):
            # Every attempt of one invocation, however late and however signed, is one delivery.
            subject = f"invocation\n{invocation}".encode()
            return Delivery(hashlib.sha256(subject).hexdigest(), INVOCATION_MEMORY)
        # Without it, the signature covers time and body: equal signatures mean the same call.
        return Delivery(hashlib.sha256(expected.encode()).hexdigest(), DELIVERY_MEMORY)

    def parse(self, body: bytes) -> TicketRequest:
        """Read the README's trigger body; every problem is a 400 naming the field."""
        return rule_body(
            body,
            helpdesk=self.name,
            ticket_id=_TICKET_ID,
            ticket_hint="a Zendesk ticket number",
            label="Zendesk ticket #{ticket_id}",
        )

    def _credentials(self) -> tuple[str, tuple[str, str]] | None:
        settings = self._settings
        if not (settings.base_url and settings.email and settings.api_token):
            return None
        return settings.base_url, (f"{settings.email}/token", settings.api_token)

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """`PUT /api/v2/tickets/{id}.json` with a private comment: an internal note.

        The note goes as `html_body`, escaped: Zendesk renders Markdown in `body`, where a
        payload's `[x](javascript:…)` would become a link.
        """
        credentials = self._credentials()
        if credentials is None:
            return NoteResult(
                NoteOutcome.REJECTED,
                "ZENDESK_SUBDOMAIN (or ZENDESK_API_URL), ZENDESK_EMAIL and ZENDESK_API_TOKEN "
                "must be set",
            )
        base_url, auth = credentials
        return send_note(
            self._http,
            "Zendesk",
            "PUT",
            f"{base_url}/api/v2/tickets/{ticket_id}.json",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            json_body={"ticket": {"comment": {"html_body": note.html, "public": False}}},
            auth=auth,
            timeout=self._timeout,
        )

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Look through the newest comments for `marker`, to learn whether a note already landed."""
        credentials = self._credentials()
        if credentials is None:
            return None
        base_url, auth = credentials
        payload = read_json(
            self._http,
            f"{base_url}/api/v2/tickets/{ticket_id}/comments.json?sort_order=desc&per_page=100",
            auth=auth,
            timeout=self._timeout,
        )
        if not isinstance(payload, dict):
            return None
        comments = payload.get("comments")
        if not isinstance(comments, list):
            return None
        return any(
            isinstance(comment, dict)
            and any(marker in str(comment.get(form, "")) for form in ("body", "html_body"))
            for comment in comments
        )


# Internal notes can be written by these roles only; an end user's token cannot write them.
NOTE_WRITING_ROLES = frozenset({"agent", "admin"})


def unconfigured(settings: Settings) -> list[str]:
    """What notes need and is not set: the API's address and the token's credentials."""
    own = ZendeskSettings.from_settings(settings)
    return unset(
        [
            ("ZENDESK_SUBDOMAIN (or ZENDESK_API_URL)", own.base_url),
            ("ZENDESK_EMAIL", own.email),
            ("ZENDESK_API_TOKEN", own.api_token),
        ]
    )


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /api/v2/users/me.json` with the stored token: who the bridge writes notes as.

    Zendesk answers that endpoint for anyone; a request it could not authenticate may come back
    200 with an anonymous user (no id), so the user's id and role are checked, not only the
    status.
    """
    own = ZendeskSettings.from_settings(settings)
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    response = read(
        NAME,
        "Zendesk",
        http,
        f"{own.base_url}/api/v2/users/me.json",
        headers={"Accept": "application/json"},
        auth=(f"{own.email}/token", own.api_token),
    )
    if isinstance(response, AccessCheck):
        return response
    payload = response.json()
    user = payload.get("user") if isinstance(payload, dict) else None
    if not isinstance(user, dict) or user.get("id") is None:
        return AccessCheck(
            NAME,
            Access.REJECTED,
            "Zendesk answered as an anonymous user: ZENDESK_EMAIL and ZENDESK_API_TOKEN "
            "were not accepted together",
        )
    role = str(user.get("role") or "")
    if role not in NOTE_WRITING_ROLES:
        return AccessCheck(
            NAME,
            Access.REJECTED,
            f"the token signs in a user with role {role or 'unknown'!r}; "
            "internal notes need an agent or admin",
        )
    return AccessCheck(NAME, Access.OK, f"signed in as {role} (user id {user['id']})")


def sign_request(
    values: Mapping[str, str], request: WebhookRequest, now: datetime
) -> dict[str, str]:
    """The headers Zendesk would send with `request` at `now`, signed with its webhook secret."""
    secret = values.get("ZENDESK_WEBHOOK_SECRET", "").strip()
    if not secret:
        raise SecretNotConfigured("set ZENDESK_WEBHOOK_SECRET")
    timestamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        SIGNATURE_HEADER: sign_webhook(secret, timestamp, request.body),
        TIMESTAMP_HEADER: timestamp,
    }


def adapter(settings: Settings, http: HttpClient) -> ZendeskAdapter:
    """Builds the adapter from the settings (the spec's `adapter`)."""
    return ZendeskAdapter(ZendeskSettings.from_settings(settings), http)


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=adapter,
    probe=probe,
    unconfigured=unconfigured,
    sign_request=sign_request,
    webhook_secret_key=WEBHOOK_SECRET_KEY,
    secret_keys=("ZENDESK_EMAIL", "ZENDESK_API_TOKEN", "ZENDESK_WEBHOOK_SECRET"),
    # The longest a note can take: the look for an earlier one, then the post, each at its timeouts.
    longest_note_seconds=2 * sum(NOTE_TIMEOUT),
    settings=("ZENDESK_SUBDOMAIN", "ZENDESK_API_URL"),
    optional_keys=("ZENDESK_NOTES_PER_MINUTE",),
    # Zendesk Team allows 200 calls a minute (its Update Ticket endpoint 100); a note costs two
    # when its earlier try is looked for: 80% of 200 / 2 (docs/helpdesks/zendesk.md).
    notes_per_minute=80,
)
