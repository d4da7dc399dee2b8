"""Freshdesk: automation-rule webhooks proven by a shared secret in, private notes out."""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from capture_bridge.access import Access, AccessCheck, not_configured, read, unset
from capture_bridge.errors import ConfigurationError, InvalidRequest, SecretNotConfigured
from capture_bridge.helpdesks import NoteOutcome, NoteResult, WebhookRequest
from capture_bridge.helpdesks.common import (
    RequesterInBody,
    check_shared_secret,
    json_object,
    read_json,
    rule_body,
    secure_url,
    send_note,
)
from capture_bridge.helpdesks.spec import HelpdeskSpec
from capture_bridge.http import HttpClient
from capture_bridge.models import Delivery, TicketRequest
from capture_bridge.notes import Note
from capture_bridge.settings import Settings

NAME = "freshdesk"
# The key its webhooks are checked against (the doctor says what a missing one means).
WEBHOOK_SECRET_KEY = "FRESHDESK_WEBHOOK_SECRET"  # noqa: S105 - a key name, not a secret

# Freshdesk signs nothing and sends no delivery id; it retries a failed webhook after 5, 30 and
# 60 minutes (about 95 minutes in all). The same ticket asking for the same thing within this
# window is taken for one of those retries.
DEDUPE_WINDOW = timedelta(hours=2)
# The body's fields that say who asks, not what is asked for: left out of the fingerprint.
_REQUESTER_FIELDS = frozenset({"requester_email", "requester_external_id"})

NOTE_TIMEOUT = (3.05, 5.0)
# Conversations are listed oldest first (no sort order to ask for), at most 100 a page; past
# this many pages an earlier note is "unknown", so the note is retried rather than posted twice.
CONVERSATION_PAGE_SIZE = 100
MAX_CONVERSATION_PAGES = 2

_TICKET_ID = re.compile(r"^[1-9][0-9]{0,19}$")
LABEL = "Freshdesk ticket #{ticket_id}"
# The account name of <name>.freshdesk.com: one DNS label, lower case.
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Freshdesk ignores the password of an API key's Basic credentials; its docs use "X".
API_KEY_PASSWORD = "X"  # noqa: S105 - Freshdesk's documented placeholder, not a secret


def domain_name(raw: str) -> str:
    """`FRESHDESK_DOMAIN` checked: the plain account name ("acme" of acme.freshdesk.com)."""
    domain = raw.strip()
    if domain and not _DOMAIN.match(domain):
        raise ConfigurationError(
            "FRESHDESK_DOMAIN must be the account name of <name>.freshdesk.com (lower-case "
            f"letters, digits and hyphens), got {domain[:80]!r}"
        )
    return domain


@dataclass(frozen=True)
class FreshdeskSettings:
    """Freshdesk's own settings, all from the bridge secret."""

    domain: str = ""
    api_url: str = ""
    api_key: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> FreshdeskSettings:
        """Read and validate; raises `ConfigurationError` naming an invalid setting."""
        return cls(
            domain=domain_name(settings.text("FRESHDESK_DOMAIN")),
            api_url=secure_url("FRESHDESK_API_URL", settings.text("FRESHDESK_API_URL")),
            api_key=settings.secret("FRESHDESK_API_KEY"),
            # Stripped like every credential: a pasted newline would otherwise refuse everything.
            webhook_secret=settings.secret("FRESHDESK_WEBHOOK_SECRET"),
        )

    @property
    def base_url(self) -> str:
        """`FRESHDESK_API_URL` if set, else the domain's URL; empty when neither is configured."""
        if self.api_url:
            return self.api_url
        if self.domain:
            return f"https://{self.domain}.freshdesk.com"
        return ""


def delivery_fingerprint(body: bytes) -> str:
    """The same for every retry of a rule's call: the ticket and what it asks for.

    Freshdesk sends no delivery id, so the ticket id and every field naming the capture (action,
    tags, provider sessions, description) stand for the call; who asks is left out. A body that
    cannot be read is fingerprinted as it is: `parse` refuses it with a 400 anyway.
    """
    try:
        payload = json_object(body)
    except InvalidRequest:
        payload = None
    ticket = payload.get("ticket_id") if payload is not None else None
    if payload is None or isinstance(ticket, bool) or not isinstance(ticket, str | int):
        return hashlib.sha256(b"body\n" + body).hexdigest()
    asks = {key: value for key, value in payload.items() if key not in _REQUESTER_FIELDS}
    asks["ticket_id"] = str(ticket).strip()
    try:
        # Canonical: key order and number spelling (1001 or "1001") do not make another call.
        subject = json.dumps(asks, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        return hashlib.sha256(b"body\n" + body).hexdigest()
    return hashlib.sha256(b"rule\n" + subject.encode()).hexdigest()


class FreshdeskAdapter(RequesterInBody):
    """Freshdesk, configured by the FRESHDESK_* keys of the bridge secret."""

    name = NAME

    def __init__(
        self,
        settings: FreshdeskSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = NOTE_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Fail closed: no secret configured, none sent, or a wrong one all refuse.

        Freshdesk signs nothing and sends no time, so the proof is the shared secret the rule
        sends in `Authorization` (Bearer, or the Basic password), compared in constant time.
        """
        secret = self._settings.webhook_secret
        if not secret:
            raise SecretNotConfigured("webhook secret is not configured (FRESHDESK_WEBHOOK_SECRET)")
        check_shared_secret(request.headers, secret)
        return Delivery(delivery_fingerprint(request.body), DEDUPE_WINDOW)

    def parse(self, body: bytes) -> TicketRequest:
        """Read the README's rule body; every problem is a 400 naming the field."""
        return rule_body(
            body,
            helpdesk=self.name,
            ticket_id=_TICKET_ID,
            ticket_hint="a Freshdesk ticket number",
            label=LABEL,
        )

    def _credentials(self) -> tuple[str, tuple[str, str]] | None:
        settings = self._settings
        if not (settings.base_url and settings.api_key):
            return None
        return settings.base_url, (settings.api_key, API_KEY_PASSWORD)

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """`POST /api/v2/tickets/{id}/notes` with `private: true`: an agent-only note.

        Freshdesk takes the note's body as HTML: the note's HTML form, where every character of
        a payload is escaped and only the session's own web links are anchors.
        """
        credentials = self._credentials()
        if credentials is None:
            return NoteResult(
                NoteOutcome.REJECTED,
                "FRESHDESK_DOMAIN (or FRESHDESK_API_URL) and FRESHDESK_API_KEY must be set",
            )
        base_url, auth = credentials
        return send_note(
            self._http,
            "Freshdesk",
            "POST",
            f"{base_url}/api/v2/tickets/{ticket_id}/notes",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            json_body={"body": note.html, "private": True},
            auth=auth,
            timeout=self._timeout,
        )

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether a conversation of the ticket holds `marker`; None when that is unknown.

        Conversations come oldest first, so the newest (where a note of ours would be) are on
        the last page: every page is read, up to `MAX_CONVERSATION_PAGES`.
        """
        credentials = self._credentials()
        if credentials is None:
            return None
        base_url, auth = credentials
        # The text form as Freshdesk derives it, and the HTML form as posted (escaped).
        forms = {marker, html.escape(marker)}
        for page in range(1, MAX_CONVERSATION_PAGES + 1):
            bodies = self._conversation_page(base_url, auth, ticket_id, page)
            if bodies is None:
                return None
            if any(form in body for body in bodies for form in forms):
                return True
            if len(bodies) < CONVERSATION_PAGE_SIZE:
                return False
        # More conversations than we read: unknown, so that the note is never posted twice.
        return None

    def _conversation_page(
        self, base_url: str, auth: tuple[str, str], ticket_id: str, page: int
    ) -> list[str] | None:
        """The texts of one page of conversations (each its `body_text` and `body`), or None."""
        payload = read_json(
            self._http,
            f"{base_url}/api/v2/tickets/{ticket_id}/conversations"
            f"?page={page}&per_page={CONVERSATION_PAGE_SIZE}",
            auth=auth,
            timeout=self._timeout,
        )
        if not isinstance(payload, list):
            return None
        return [_conversation_text(item) for item in payload]


def _conversation_text(item: Any) -> str:
    if not isinstance(item, dict):
        return ""
    return "\n".join(str(item.get(form) or "") for form in ("body_text", "body"))


def unconfigured(settings: Settings) -> list[str]:
    """What notes need and is not set: the account's address and the agent's API key."""
    own = FreshdeskSettings.from_settings(settings)
    return unset(
        [
            ("FRESHDESK_DOMAIN (or FRESHDESK_API_URL)", own.base_url),
            ("FRESHDESK_API_KEY", own.api_key),
        ]
    )


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /api/v2/agents/me` with the stored API key: the agent the bridge writes notes as."""
    own = FreshdeskSettings.from_settings(settings)
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    response = read(
        NAME,
        "Freshdesk",
        http,
        f"{own.base_url}/api/v2/agents/me",
        headers={"Accept": "application/json"},
        auth=(own.api_key, API_KEY_PASSWORD),
    )
    if isinstance(response, AccessCheck):
        return response
    payload = response.json()
    agent_id = payload.get("id") if isinstance(payload, dict) else None
    if agent_id is None or isinstance(agent_id, bool):
        return AccessCheck(
            NAME,
            Access.REJECTED,
            "Freshdesk did not answer with an agent: FRESHDESK_API_KEY must be an agent's key",
        )
    contact = payload.get("contact") if isinstance(payload, dict) else None
    email = contact.get("email") if isinstance(contact, dict) else None
    who = f"agent {email}" if isinstance(email, str) and email else "an agent"
    return AccessCheck(NAME, Access.OK, f"signed in as {who} (agent id {agent_id})")


def sign_request(
    values: Mapping[str, str], request: WebhookRequest, now: datetime
) -> dict[str, str]:
    """The header Freshdesk's rule sends with every call: the shared secret as a Bearer token."""
    secret = values.get("FRESHDESK_WEBHOOK_SECRET", "").strip()
    if not secret:
        raise SecretNotConfigured("set FRESHDESK_WEBHOOK_SECRET")
    return {"Authorization": f"Bearer {secret}"}


def adapter(settings: Settings, http: HttpClient) -> FreshdeskAdapter:
    """Builds the adapter from the settings (the spec's `adapter`)."""
    return FreshdeskAdapter(FreshdeskSettings.from_settings(settings), http)


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=adapter,
    probe=probe,
    unconfigured=unconfigured,
    sign_request=sign_request,
    webhook_secret_key=WEBHOOK_SECRET_KEY,
    secret_keys=("FRESHDESK_DOMAIN", "FRESHDESK_API_KEY", "FRESHDESK_WEBHOOK_SECRET"),
    # The longest a note can take: the look for an earlier one (every page), then the post.
    longest_note_seconds=(MAX_CONVERSATION_PAGES + 1) * sum(NOTE_TIMEOUT),
    optional_keys=("FRESHDESK_API_URL", "FRESHDESK_NOTES_PER_MINUTE"),
    # Freshdesk Growth allows 200 calls a minute; a note costs up to three when its earlier try
    # is looked for (two pages): 80% of 200 / 3 (docs/helpdesks/freshdesk.md).
    notes_per_minute=53,
)
