"""Jira Service Management Cloud: rule or signed admin webhooks in, internal comments out.

Two senders reach `/webhooks/jira`. An automation rule's "Send web request" posts the documented
rule body with the webhook secret in `Authorization`; an admin (system) webhook posts Jira's own
issue payload signed `X-Hub-Signature: sha256=<hex>`. Notes are internal comments through the
Jira Service Management API, written in Jira wiki markup with every payload character escaped.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from capture_bridge.access import Access, AccessCheck, not_configured, read, unset
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import NoteOutcome, NoteResult, WebhookRequest
from capture_bridge.helpdesks.common import (
    HmacHeader,
    RequesterInBody,
    check_shared_secret,
    json_object,
    read_json,
    secure_url,
    send_note,
    single_header,
    tags_field,
    text_field,
    ticket_request,
)
from capture_bridge.helpdesks.spec import HelpdeskSpec
from capture_bridge.http import HttpClient
from capture_bridge.models import Delivery, TicketRequest
from capture_bridge.notes import Note, marked_up
from capture_bridge.settings import Settings

NAME = "jira"
# The key its webhooks are checked against (the doctor says what a missing one means).
WEBHOOK_SECRET_KEY = "JIRA_WEBHOOK_SECRET"  # noqa: S105 - a key name, not a secret

SIGNATURE = HmacHeader("x-hub-signature", prefix="sha256=")
IDENTIFIER_HEADER = "x-atlassian-webhook-identifier"
# An admin webhook's body carries its send time (epoch ms), unsigned by any header: older than
# this, or further ahead than MAX_FUTURE, it is a replay (Jira retries for up to ~30 minutes).
MAX_AGE = timedelta(hours=1)
MAX_FUTURE = timedelta(minutes=5)
# Jira keeps an admin delivery's identifier across its retries; remembered past MAX_AGE, a
# redelivery is either recognised or refused as stale.
ADMIN_DELIVERY_MEMORY = timedelta(hours=2)
# An automation rule sends no delivery id: the same ticket and action within this window is taken
# for a redelivery of the same call.
AUTOMATION_DEDUPE_WINDOW = timedelta(hours=1)

NOTE_TIMEOUT = (3.05, 5.0)
# Internal comments are listed oldest first, `COMMENT_PAGE_SIZE` a page; past this many pages an
# earlier note is "unknown", so the note is retried later rather than posted twice.
COMMENT_PAGE_SIZE = 100
MAX_COMMENT_PAGES = 2

ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,9}-[1-9][0-9]{0,9}$")
ISSUE_KEY_HINT = "a Jira issue key (e.g. SUP-123)"
LABEL = "Jira issue {ticket_id}"

# Characters Jira's wiki renderer takes as markup and accepts a backslash before
# (BackslashEscapeRendererComponent): links `[..|..]`, macros `{html}`, images `!..!`,
# emphasis `*_+^~-?`, tables `|`, lists `#-*`, emoticons `( )`, mentions `@` and `%`.
_WIKI_SPECIAL = frozenset("-#*_+?^~|%{}[]()!@")
# A backslash has no escape of its own (two make a line break, and one would undo the escape
# that follows it), so it is shown as the look-alike U+29F5 REVERSE SOLIDUS OPERATOR.
_BACKSLASH_STANDIN = "\u29f5"
# Line-start blocks that no backslash reaches (`h1.` headings, `bq.` quotes): a zero-width space
# in front keeps them text.
_LINE_BLOCK = re.compile(r"^(\s*)(h[1-6]|bq)\.", re.IGNORECASE)
# Characters of a link that would end or split Jira's `[url]` form, percent-encoded.
_LINK_BREAKERS = {"[": "%5B", "]": "%5D", "|": "%7C", "{": "%7B", "}": "%7D", "!": "%21"}


@dataclass(frozen=True)
class JiraSettings:
    """Jira's own settings, all from the bridge secret."""

    api_url: str = ""
    email: str = ""
    api_token: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> JiraSettings:
        return cls(
            api_url=secure_url("JIRA_API_URL", settings.text("JIRA_API_URL")),
            email=settings.text("JIRA_EMAIL"),
            api_token=settings.secret("JIRA_API_TOKEN"),
            # Stripped like every credential: a pasted newline would otherwise refuse everything.
            webhook_secret=settings.secret("JIRA_WEBHOOK_SECRET"),
        )


def sign_webhook(secret: str, body: bytes) -> str:
    """An admin webhook's signature header value: `sha256=` and hex HMAC-SHA256 of the body."""
    return SIGNATURE.sign(secret, body)


def _is_admin_payload(payload: Mapping[str, Any]) -> bool:
    # Jira's own issue payload; the rule body never has `webhookEvent`.
    return "webhookEvent" in payload


def _sent_at(body: bytes) -> datetime:
    """The `timestamp` (epoch ms) of a signed admin body.

    Read only once the signature has proven the sender: a body that is not JSON, or has no
    readable timestamp, is a bad body (`InvalidRequest`, a 400), not an unproven one.
    """
    stamp = json_object(body).get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise InvalidRequest("timestamp (epoch milliseconds) is required in a signed webhook body")
    try:
        return datetime.fromtimestamp(stamp / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidRequest("timestamp must be epoch milliseconds") from None


def escape_wiki(text: str) -> str:
    """Payload text as Jira wiki markup that renders it literally, on the line it started on.

    Backslash escapes (not `{noformat}`): they keep the note's text inline and readable, and a
    payload cannot close them as it could close a `{noformat}` block.
    """
    pieces = []
    for char in text:
        if char in _WIKI_SPECIAL:
            pieces.append("\\" + char)
        elif char == "\\":
            pieces.append(_BACKSLASH_STANDIN)
        elif char in "\r\n" or not char.isprintable():
            # A line break in a payload would start a line of its own (a heading, a quote).
            pieces.append(" ")
        else:
            pieces.append(char)
    return "".join(pieces)


def wiki_link(url: str) -> str:
    """One of the session's own web links, as Jira's `[url]` link."""
    return "[" + "".join(_LINK_BREAKERS.get(char, char) for char in url) + "]"


def wiki_note(note: Note) -> str:
    """The note as a Jira comment body: payload text inert, the session's links clickable."""
    lines = note.lines or tuple(note.text.splitlines())
    rendered = marked_up(lines, note.links.values(), escape_wiki, wiki_link)
    return "\n".join(_LINE_BLOCK.sub("\\1\u200b\\2.", line) for line in rendered)


class JiraAdapter(RequesterInBody):
    """Jira Service Management Cloud, configured by the JIRA_* keys of the bridge secret."""

    name = NAME

    def __init__(
        self,
        settings: JiraSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = NOTE_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Fail closed. A signature decides when present; else the secret in `Authorization`."""
        secret = self._settings.webhook_secret
        if not secret:
            raise SecretNotConfigured("webhook secret is not configured (JIRA_WEBHOOK_SECRET)")
        headers = request.headers
        signature = single_header(headers, SIGNATURE.header).strip()
        if signature:
            return self._verify_signed(request, signature, secret, now)
        if not single_header(headers, "authorization").strip():
            raise Unauthenticated("missing X-Hub-Signature or Authorization header")
        check_shared_secret(headers, secret)
        # No delivery id from a rule: the same ticket and action is the same call for a while.
        ticket = self.parse(request.body)
        action = ticket.fields.get("action")
        subject = f"rule\n{ticket.ticket_id}\n{action if isinstance(action, str) else ''}"
        return Delivery(hashlib.sha256(subject.encode()).hexdigest(), AUTOMATION_DEDUPE_WINDOW)

    def _verify_signed(
        self, request: WebhookRequest, signature: str, secret: str, now: datetime
    ) -> Delivery:
        expected = SIGNATURE.verify(signature, secret, request.body)
        sent_at = _sent_at(request.body)
        if sent_at < now - MAX_AGE or sent_at > now + MAX_FUTURE:
            raise Unauthenticated("webhook timestamp is too old or in the future")
        identifier = single_header(request.headers, IDENTIFIER_HEADER).strip()
        # Jira keeps the identifier across retries; without one, the signed body stands for it.
        subject = f"id\n{identifier}" if identifier else f"sig\n{expected}"
        return Delivery(hashlib.sha256(subject.encode()).hexdigest(), ADMIN_DELIVERY_MEMORY)

    def parse(self, body: bytes) -> TicketRequest:
        """The rule body, or an admin webhook's issue payload; a 400 naming the field otherwise."""
        payload = json_object(body)
        if not _is_admin_payload(payload):
            return ticket_request(
                payload, helpdesk=self.name, ticket_id=ISSUE_KEY, hint=ISSUE_KEY_HINT, label=LABEL
            )
        return _admin_ticket(payload)

    def _credentials(self) -> tuple[str, tuple[str, str]] | None:
        settings = self._settings
        if not (settings.api_url and settings.email and settings.api_token):
            return None
        return settings.api_url, (settings.email, settings.api_token)

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """`POST /rest/servicedeskapi/request/{key}/comment` with `public: false`: internal."""
        credentials = self._credentials()
        if credentials is None:
            return NoteResult(
                NoteOutcome.REJECTED, "JIRA_API_URL, JIRA_EMAIL and JIRA_API_TOKEN must be set"
            )
        base_url, auth = credentials
        return send_note(
            self._http,
            "Jira",
            "POST",
            f"{base_url}/rest/servicedeskapi/request/{ticket_id}/comment",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            json_body={"body": wiki_note(note), "public": False},
            auth=auth,
            timeout=self._timeout,
        )

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether an internal comment holds `marker` (as posted: escaped); None when unknown."""
        credentials = self._credentials()
        if credentials is None:
            return None
        base_url, auth = credentials
        forms = {marker, escape_wiki(marker)}
        start = 0
        for _ in range(MAX_COMMENT_PAGES):
            page = self._comment_page(base_url, auth, ticket_id, start)
            if page is None:
                return None
            bodies, last, size = page
            if any(form in body for body in bodies for form in forms):
                return True
            if last:
                return False
            if size <= 0:
                return None
            start += size
        # More comments than we read: unknown, so that the note is never posted twice.
        return None

    def _comment_page(
        self, base_url: str, auth: tuple[str, str], ticket_id: str, start: int
    ) -> tuple[list[str], bool, int] | None:
        """One page of internal comments: their bodies, whether it is the last, its size."""
        payload = read_json(
            self._http,
            f"{base_url}/rest/servicedeskapi/request/{ticket_id}/comment"
            f"?public=false&internal=true&start={start}&limit={COMMENT_PAGE_SIZE}",
            auth=auth,
            timeout=self._timeout,
        )
        if not isinstance(payload, dict):
            return None
        values, last = payload.get("values"), payload.get("isLastPage")
        if not isinstance(values, list) or not isinstance(last, bool):
            return None
        bodies = [str(item.get("body", "")) for item in values if isinstance(item, dict)]
        return bodies, last, len(values)


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be an object")
    return value


def _admin_ticket(payload: Mapping[str, Any]) -> TicketRequest:
    """An admin webhook's issue payload read: key, reporter's email, labels, summary."""
    if not isinstance(payload.get("webhookEvent"), str):
        raise InvalidRequest("webhookEvent must be a string")
    issue = payload.get("issue")
    if issue is None:
        raise InvalidRequest("issue is required")
    issue = _object(issue, "issue")
    key = _named(issue, "key", "issue.key")
    if not key:
        raise InvalidRequest("issue.key is required")
    if not ISSUE_KEY.match(key):
        raise InvalidRequest(f"issue.key must be {ISSUE_KEY_HINT}")
    fields = _object(issue.get("fields"), "issue.fields")
    reporter = _object(fields.get("reporter"), "issue.fields.reporter")
    labels = fields.get("labels")
    if labels is not None and not (
        isinstance(labels, list) and all(isinstance(label, str) for label in labels)
    ):
        raise InvalidRequest("issue.fields.labels must be a list of strings")
    summary = _named(fields, "summary", "issue.fields.summary")
    # Bugpilot knows users by the id the app gives identify(): the email, never the accountId.
    # Hidden by the reporter's profile settings, it is empty and Bugpilot's 400 names it.
    email = _named(reporter, "emailAddress", "issue.fields.reporter.emailAddress")
    return TicketRequest(
        helpdesk=NAME,
        ticket_id=key,
        requester=email,
        label=LABEL.format(ticket_id=key),
        # The summary is what the requester reported: it goes with the capture as its text.
        fields={"description": summary} if summary else {},
        tags=tags_field({"labels": labels}, "labels"),
        # Hidden by the reporter's profile settings, it is empty: the 400 names where it was looked.
        requester_fields="issue.fields.reporter.emailAddress",
    )


def _named(payload: Mapping[str, Any], key: str, name: str) -> str:
    """A text field of the admin payload, with its 400 naming the field by its full path."""
    return text_field({name: payload.get(key)}, name)


def unconfigured(settings: Settings) -> list[str]:
    """What notes need and is not set: the site and the account's API token."""
    own = JiraSettings.from_settings(settings)
    return unset(
        [
            ("JIRA_API_URL", own.api_url),
            ("JIRA_EMAIL", own.email),
            ("JIRA_API_TOKEN", own.api_token),
        ]
    )


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /rest/api/3/myself` with the stored token: whose it is, and whether it is active."""
    try:
        own = JiraSettings.from_settings(settings)
    except ConfigurationError as exc:
        return AccessCheck(NAME, Access.FAILED, str(exc))
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    response = read(
        NAME,
        "Jira",
        http,
        f"{own.api_url}/rest/api/3/myself",
        headers={"Accept": "application/json"},
        auth=(own.email, own.api_token),
    )
    if isinstance(response, AccessCheck):
        return response
    user = response.json()
    if not isinstance(user, dict) or not user.get("accountId"):
        return AccessCheck(NAME, Access.FAILED, "Jira answered without an account id")
    if user.get("active") is False:
        return AccessCheck(
            NAME, Access.REJECTED, f"the token's account {user['accountId']} is deactivated"
        )
    who = str(user.get("emailAddress") or user["accountId"])
    return AccessCheck(NAME, Access.OK, f"signed in as {who}")


def sign_request(
    values: Mapping[str, str], request: WebhookRequest, now: datetime
) -> dict[str, str]:
    """Headers Jira would send: signed for an admin-webhook body, else the rule's secret.

    An admin body is signed as it is: its own `timestamp` must be fresh for the bridge to take it.
    """
    secret = values.get(WEBHOOK_SECRET_KEY, "").strip()
    if not secret:
        raise SecretNotConfigured(f"set {WEBHOOK_SECRET_KEY}")
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        payload = None
    if isinstance(payload, dict) and _is_admin_payload(payload):
        identifier = single_header(request.headers, IDENTIFIER_HEADER).strip()
        return {
            "X-Hub-Signature": sign_webhook(secret, request.body),
            "X-Atlassian-Webhook-Identifier": identifier or str(uuid.uuid4()),
        }
    return {"Authorization": f"Bearer {secret}"}


def fresh_body(body: bytes, now: datetime) -> bytes:
    """An admin-webhook body with its `timestamp` set to `now`, for `sign-event`; others as is."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body
    if not (isinstance(payload, dict) and _is_admin_payload(payload)):
        return body
    payload["timestamp"] = int(now.timestamp() * 1000)
    return json.dumps(payload).encode()


def adapter(settings: Settings, http: HttpClient) -> JiraAdapter:
    """Builds the adapter from the settings (the spec's `adapter`)."""
    return JiraAdapter(JiraSettings.from_settings(settings), http)


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=adapter,
    probe=probe,
    unconfigured=unconfigured,
    sign_request=sign_request,
    webhook_secret_key=WEBHOOK_SECRET_KEY,
    secret_keys=("JIRA_API_URL", "JIRA_EMAIL", "JIRA_API_TOKEN", "JIRA_WEBHOOK_SECRET"),
    # The longest a note can take: the look for an earlier one (every page), then the post.
    longest_note_seconds=(MAX_COMMENT_PAGES + 1) * sum(NOTE_TIMEOUT),
    fresh_body=fresh_body,
    optional_keys=("JIRA_NOTES_PER_MINUTE",),
    # Jira Cloud publishes no fixed limit (cost-based): one note a second, tightened by its
    # X-RateLimit-Remaining (docs/helpdesks/jira.md).
    notes_per_minute=60,
)
