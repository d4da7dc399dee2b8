"""HTTP simulator of the Intercom API subset the bridge uses (note replies, conversations,
contacts, /me), and of the notifications an Intercom app receives."""

from __future__ import annotations

import copy
import hashlib
import html
import json
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from ._server import (
    JsonHttpServer,
    RecordedRequest,
    Reply,
    Route,
    ScriptedReply,
    bearer_token,
    same_secret,
)
from .helpdesk import NumericTickets, normalise

CONVERSATION_PATH = r"/conversations/(?P<raw_id>[^/]+)"
DEMO_ACCESS_TOKEN = "ic-demo-access-token"  # noqa: S105 - the local demo's only
DEMO_CLIENT_SECRET = "demo-intercom-client-secret"  # noqa: S105 - the local demo's only
DEMO_APP_ID = "demoapp1"
ADMIN_ID = "991267242"  # the admin the access token belongs to, and notes are written as
ADMIN_EMAIL = "bridge-admin@example.com"
# Versions the simulator answers; Intercom refuses a version it does not know with 400.
KNOWN_VERSIONS = frozenset({"2.9", "2.10", "2.11", "2.12", "2.13", "2.14", "Unstable"})
# Intercom's per-app budget in a 10-second window (10,000 a minute), sent on every answer.
RATE_LIMIT = 1666
RATE_WINDOW_SECONDS = 10

_CODES = {
    400: "parameter_invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    429: "rate_limit_exceeded",
}


def contact_id_for(email: str, user_id: str) -> str:
    """A contact id in Intercom's form (24 hex digits), the same for the same person."""
    return hashlib.sha256(f"{email}\n{user_id}".encode()).hexdigest()[:24]


class IntercomSimulator(JsonHttpServer):
    """Intercom conversations and contacts over real HTTP, with scriptable failures.

    Routes: "reply" (POST a note or reply), "conversation" (GET one with its parts),
    "contact" (GET one) and "me" (whose token it is).
    """

    helpdesk = "intercom"
    sender = "Intercom (an admin's /capture note)"
    errors: ClassVar[Mapping[int, str]] = {
        400: "Invalid parameters",
        401: "Access Token Invalid",
        403: "Forbidden",
        404: "Resource Not Found",
        429: "Rate limit exceeded",
    }

    def __init__(
        self,
        *,
        access_token: str = DEMO_ACCESS_TOKEN,
        client_secret: str = DEMO_CLIENT_SECRET,
        port: int = 0,
        known_conversations: set[str] | None = None,
    ) -> None:
        """`known_conversations` None means every numeric conversation id exists."""
        super().__init__(
            port=port,
            routes=[
                Route("reply", "POST", f"{CONVERSATION_PATH}/reply", self._reply),
                Route("conversation", "GET", CONVERSATION_PATH, self._conversation),
                Route("contact", "GET", r"/contacts/(?P<contact_id>[^/]+)", self._contact),
                Route("me", "GET", "/me", self._me),
            ],
        )
        self.access_token = access_token
        self.client_secret = client_secret
        self._conversations = NumericTickets(known_conversations)
        self._parts: dict[str, list[dict[str, Any]]] = {}
        self._contacts: dict[str, dict[str, Any]] = {}
        self._next_part = 900_000_001
        self._count_lock = threading.Lock()
        self._calls = 0

    # -- the demo's view (HelpdeskSimulator) -------------------------------------------------

    def bridge_settings(self) -> dict[str, str]:
        return {
            "INTERCOM_API_URL": self.url,
            "INTERCOM_ACCESS_TOKEN": self.access_token,
            "INTERCOM_ADMIN_ID": ADMIN_ID,
            "INTERCOM_CLIENT_SECRET": self.client_secret,
        }

    def ticket_id(self, number: int) -> str:
        return str(number)

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        """The `conversation.admin.noted` notification of an admin's `/capture` note.

        The command follows the action (or the `bugpilot_*` tag); the rest of its line is the
        description, or the link the capture fields name. The contact carries only its id and
        `external_id` (as Intercom's do): an empty one makes the bridge look the email up here.
        """
        contact = self.add_contact(email=email, external_id=user_id)
        line = " ".join(part for part in (_command(tags, fields), _rest(fields)) if part)
        return notification(
            ticket_id,
            f"<p>{html.escape(line, quote=False)}</p>",
            contact_id=contact["id"],
            external_id=user_id,
        )

    def webhook_headers(self) -> dict[str, str]:
        # Intercom's documented content type; its User-Agent is not documented, so none is claimed.
        return {"Content-Type": "application/json"}

    def internal_notes(self, ticket_id: str) -> list[str]:
        return [
            str(part["body"])
            for part in self.parts(ticket_id)
            if part.get("part_type") == "note" and part["author"]["id"] == ADMIN_ID
        ]

    # -- test controls ---------------------------------------------------------------------

    def parts(self, ticket_id: str | int) -> list[dict[str, Any]]:
        """Copies of the conversation's parts, oldest first."""
        with self._lock:
            return copy.deepcopy(self._parts.get(normalise(ticket_id), []))

    def add_part(
        self, ticket_id: str | int, text: str, *, part_type: str = "note", author: str = "7"
    ) -> None:
        """Put a part on the conversation as someone else wrote it (a reply, a note)."""
        self._store(normalise(ticket_id), f"<p>{html.escape(text)}</p>", part_type, author)

    def add_contact(
        self, *, email: str = "", external_id: str = "", contact_id: str = ""
    ) -> dict[str, Any]:
        """A contact (a user) the API knows; its id is made from the email unless given."""
        contact_id = contact_id or contact_id_for(email, external_id)
        contact: dict[str, Any] = {
            "type": "contact",
            "id": contact_id,
            "role": "user",
            "external_id": external_id or None,
            "email": email,
            "name": email.partition("@")[0],
        }
        with self._lock:
            self._contacts[contact_id] = contact
        return copy.deepcopy(contact)

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Route one request; a version Intercom does not know is refused before anything."""
        version = request.headers.get("intercom-version")
        if version is not None and version not in KNOWN_VERSIONS:
            return Reply(
                400,
                _error_list("intercom_version_invalid", f"Requested version {version} is invalid"),
            )
        reply = super().handle(request)
        with self._count_lock:
            self._calls += 1
            remaining = RATE_LIMIT - self._calls
        return Reply(
            reply.status, reply.body, {**_rate_headers(remaining), **reply.headers}, reply.delay
        )

    def error(self, status: int, message: str | None = None) -> Reply:
        """Intercom's `error.list`; a spent rate limit says when the window refills."""
        text = message or self.errors.get(status) or f"Simulated HTTP {status}"
        return Reply(status, _error_list(_CODES.get(status, "server_error"), text))

    def scripted_headers(self, entry: ScriptedReply) -> dict[str, str]:
        """`Retry-After` when scripted; `X-RateLimit-Reset` (epoch seconds) for the refill."""
        headers = super().scripted_headers(entry)
        if entry.rate_limit_reset is not None:
            headers |= _rate_headers(0, reset_in=entry.rate_limit_reset)
        return headers

    def internal_error(self) -> Reply:
        return self.error(500, "Internal server error")

    def authenticated(self, request: RecordedRequest) -> bool:
        """`Authorization: Bearer` with the app's access token."""
        return same_secret(bearer_token(request), self.access_token)

    def _me(self, request: RecordedRequest) -> Reply:
        return Reply(
            200,
            {
                "type": "admin",
                "id": ADMIN_ID,
                "email": ADMIN_EMAIL,
                "name": "Bridge Admin",
                "email_verified": True,
                "app": {"type": "app", "id_code": DEMO_APP_ID, "region": "US"},
            },
        )

    def _contact(self, request: RecordedRequest, contact_id: str) -> Reply:
        with self._lock:
            contact = copy.deepcopy(self._contacts.get(contact_id))
        if contact is None:
            return self.error(404, "User Not Found")
        return Reply(200, contact)

    def _reply(self, request: RecordedRequest, raw_id: str) -> Reply:
        if raw_id not in self._conversations:
            return self.error(404, "Resource Not Found")
        payload = request.json()
        if not isinstance(payload, dict):
            return self.error(400, "Request body must be a JSON object")
        if payload.get("message_type") not in ("comment", "note", "quick_reply"):
            return self.error(400, "message_type must be one of comment, note, quick_reply")
        if payload.get("type") != "admin":
            return self.error(400, "type must be admin for an admin reply")
        if str(payload.get("admin_id")) != ADMIN_ID:
            return self.error(404, "Admin Not Found")
        body = payload.get("body")
        if not isinstance(body, str) or not body.strip():
            return self.error(400, "body is required")
        self._store(normalise(raw_id), body, str(payload["message_type"]), ADMIN_ID)
        return self._conversation(request, raw_id)

    def _store(self, ticket_id: str, body: str, part_type: str, author: str) -> None:
        with self._lock:
            now = int(time.time())
            self._parts.setdefault(ticket_id, []).append(
                {
                    "type": "conversation_part",
                    "id": str(self._next_part),
                    "part_type": part_type,
                    "body": body,
                    "created_at": now,
                    "updated_at": now,
                    "notified_at": now,
                    "author": {"type": "admin", "id": author},
                    "attachments": [],
                    "redacted": False,
                }
            )
            self._next_part += 1

    def _conversation(self, request: RecordedRequest, raw_id: str) -> Reply:
        if raw_id not in self._conversations:
            return self.error(404, "Resource Not Found")
        parts = self.parts(raw_id)
        return Reply(
            200,
            {
                "type": "conversation",
                "id": normalise(raw_id),
                "state": "open",
                "conversation_parts": {
                    "type": "conversation_part.list",
                    "conversation_parts": parts,
                    "total_count": len(parts),
                },
            },
        )


def notification(
    conversation_id: str,
    note_html: str,
    *,
    contact_id: str = "6329bd9ffe4e2e91dac76188",
    external_id: str = "",
    email: str | None = None,
    topic: str = "conversation.admin.noted",
    notification_id: str | None = None,
) -> bytes:
    """A notification as Intercom posts it, its conversation carrying one admin note part."""
    now = int(time.time())
    contact: dict[str, Any] = {"type": "contact", "id": contact_id, "external_id": external_id}
    if email is not None:
        contact["email"] = email
    item = {
        "type": "conversation",
        "id": conversation_id,
        "created_at": now,
        "updated_at": now,
        "state": "open",
        "contacts": {"type": "contact.list", "contacts": [contact]},
        "conversation_parts": {
            "type": "conversation_part.list",
            "conversation_parts": [
                {
                    "type": "conversation_part",
                    "id": str(now),
                    "part_type": "note",
                    "body": note_html,
                    "created_at": now,
                    "updated_at": now,
                    "notified_at": now,
                    "author": {"type": "admin", "id": "7", "name": "Agent"},
                    "attachments": [],
                    "redacted": False,
                }
            ],
            "total_count": 1,
        },
    }
    payload = {
        "type": "notification_event",
        "app_id": DEMO_APP_ID,
        "data": {"type": "notification_event_data", "item": item},
        "links": {},
        "id": notification_id or f"notif_{uuid.uuid4()}",
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": now,
        "created_at": now,
    }
    return json.dumps(payload).encode()


def _command(tags: str, fields: Mapping[str, str]) -> str:
    action = fields.get("action", "")
    names = tags.split()
    if action == "upload-screenshot" or (not action and "bugpilot_screenshot" in names):
        return "/capture screenshot"
    if action == "show-recording-ui" or (not action and "bugpilot_recording" in names):
        return "/capture recording"
    return "/capture"


def _rest(fields: Mapping[str, str]) -> str:
    """The rest of the command's line: the text (with its links), else a LambdaTest link."""
    if fields.get("text"):
        return fields["text"]
    session = fields.get("lambdatest_session_id")
    if session:
        return f"https://automation.lambdatest.com/logs/?sessionID={session}"
    return fields.get("description", "")


def _error_list(code: str, message: str) -> dict[str, Any]:
    return {
        "type": "error.list",
        "request_id": uuid.uuid4().hex[:20],
        "errors": [{"code": code, "message": message}],
    }


def _rate_headers(remaining: int, *, reset_in: int = RATE_WINDOW_SECONDS) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(RATE_LIMIT),
        "X-RateLimit-Remaining": str(max(remaining, 0)),
        "X-RateLimit-Reset": str(int(time.time()) + reset_in),
    }
