"""HTTP simulator of the Freshdesk API subset the bridge uses (notes, conversations, agents/me)."""

from __future__ import annotations

import copy
import html
import json
import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from ._server import JsonHttpServer, RecordedRequest, Reply, Route, basic_credentials, same_secret
from .helpdesk import NumericTickets, normalise, utc_stamp

TICKET_PATH = r"/api/v2/tickets/(?P<raw_id>[^/]+)"
DEMO_API_KEY = "fd-demo-api-key"
DEMO_WEBHOOK_SECRET = "demo-webhook-secret"  # noqa: S105 - the local demo's only
DEMO_DOMAIN = "demo"
AGENT_ID = 43_000_000_001  # the agent the API key belongs to
AGENT_EMAIL = "bridge-agent@example.com"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
# Freshdesk's account-wide limit per minute (Growth plan), sent as X-Ratelimit-Total.
RATE_LIMIT_TOTAL = 200

# Freshdesk's error codes by status; its message comes from `FreshdeskSimulator.errors`.
_CODES = {401: "invalid_credentials", 404: "access_denied"}


def _validation_failed(field_name: str, message: str, code: str = "invalid_value") -> Reply:
    return Reply(
        400,
        {
            "description": "Validation failed",
            "errors": [{"field": field_name, "message": message, "code": code}],
        },
    )


def _rate_headers(remaining: int) -> dict[str, str]:
    return {
        "X-Ratelimit-Total": str(RATE_LIMIT_TOTAL),
        "X-Ratelimit-Remaining": str(max(remaining, 0)),
        "X-Ratelimit-Used-CurrentRequest": "1",
    }


class FreshdeskSimulator(JsonHttpServer):
    """Freshdesk ticket notes over real HTTP, with scriptable failures and recorded calls.

    Routes: "note" (POST one), "conversations" (list them) and "me" (whose API key it is).
    """

    helpdesk = "freshdesk"
    sender = "Freshdesk's automation rule"
    errors: ClassVar[Mapping[int, str]] = {
        401: "You have to be logged in to perform this action.",
        404: "Record not found",
        429: "You have exceeded the limit of requests per minute",
    }

    def __init__(
        self,
        *,
        api_key: str = DEMO_API_KEY,
        webhook_secret: str = DEMO_WEBHOOK_SECRET,
        port: int = 0,
        known_tickets: set[str] | None = None,
    ) -> None:
        """`known_tickets` None means every numeric ticket id exists."""
        super().__init__(
            port=port,
            routes=[
                Route("note", "POST", f"{TICKET_PATH}/notes", self._create_note),
                Route("conversations", "GET", f"{TICKET_PATH}/conversations", self._list),
                Route("me", "GET", "/api/v2/agents/me", self._me),
            ],
        )
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self._tickets = NumericTickets(known_tickets)
        self._notes: dict[str, list[dict[str, Any]]] = {}
        self._next_id = 44_000_000_001
        self._calls = 0
        self._count_lock = threading.Lock()

    # -- the demo's view (HelpdeskSimulator) -------------------------------------------------

    def bridge_settings(self) -> dict[str, str]:
        return {
            "FRESHDESK_DOMAIN": DEMO_DOMAIN,
            "FRESHDESK_API_URL": self.url,
            "FRESHDESK_API_KEY": self.api_key,
            "FRESHDESK_WEBHOOK_SECRET": self.webhook_secret,
        }

    def ticket_id(self, number: int) -> str:
        return str(number)

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        # The README's rule body, as Freshdesk renders its placeholders (`{{ticket.tags}}` is a
        # comma-separated string).
        payload: dict[str, Any] = {
            "ticket_id": ticket_id,
            "requester_email": email,
            "requester_external_id": user_id,
            "tags": ", ".join(tags.split()),
            **fields,
        }
        return json.dumps(payload).encode()

    def webhook_headers(self) -> dict[str, str]:
        # Only what the rule is told to send: its proof is added by the caller. Freshdesk's own
        # User-Agent is not documented, so none is claimed here.
        return {"Content-Type": "application/json"}

    def internal_notes(self, ticket_id: str) -> list[str]:
        return [str(note["body"]) for note in self.notes(ticket_id) if note.get("private") is True]

    # -- test controls ---------------------------------------------------------------------

    def notes(self, ticket_id: str | int) -> list[dict[str, Any]]:
        """Copies of the ticket's notes (its conversations), oldest first."""
        with self._lock:
            return copy.deepcopy(self._notes.get(normalise(ticket_id), []))

    def add_conversation(self, ticket_id: str | int, text: str, *, private: bool = False) -> None:
        """Put a conversation on the ticket as someone else wrote it (a reply, a note)."""
        self._store(normalise(ticket_id), f"<div>{html.escape(text)}</div>", private)

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Route one request; every answer carries Freshdesk's rate-limit headers."""
        reply = super().handle(request)
        with self._count_lock:
            self._calls += 1
            remaining = RATE_LIMIT_TOTAL - self._calls
        return Reply(
            reply.status, reply.body, {**_rate_headers(remaining), **reply.headers}, reply.delay
        )

    def error(self, status: int, message: str | None = None) -> Reply:
        """Freshdesk's ``{"code", "message"}``; a spent rate limit says only its message."""
        text = message or self.errors.get(status) or f"Simulated HTTP {status}"
        if status == 429:
            return Reply(429, {"message": text}, _rate_headers(0))
        return Reply(status, {"code": _CODES.get(status, "internal_error"), "message": text})

    def not_found(self) -> Reply:
        """404 for unknown routes."""
        return Reply(404, {"code": "invalid_endpoint", "message": "Not found"})

    def internal_error(self) -> Reply:
        """500 when the simulator itself raised."""
        return self.error(500, "Internal server error")

    def authenticated(self, request: RecordedRequest) -> bool:
        """Basic credentials with the API key as the user name; Freshdesk ignores the password."""
        credentials = basic_credentials(request)
        return credentials is not None and same_secret(credentials.partition(b":")[0], self.api_key)

    def _me(self, request: RecordedRequest) -> Reply:
        agent = {
            "id": AGENT_ID,
            "available": True,
            "occasional": False,
            "ticket_scope": 1,
            "type": "support_agent",
            "created_at": "2026-01-05T09:00:00Z",
            "updated_at": "2026-01-05T09:00:00Z",
            "contact": {"active": True, "email": AGENT_EMAIL, "name": "Bridge Agent"},
        }
        return Reply(200, agent)

    def _create_note(self, request: RecordedRequest, raw_id: str) -> Reply:
        if raw_id not in self._tickets:
            return self.error(404)
        payload = request.json()
        if not isinstance(payload, dict):
            return _validation_failed("body", "It should be a JSON object", "invalid_json")
        body = payload.get("body")
        if not isinstance(body, str) or not body.strip():
            return _validation_failed("body", "It should not be blank", "missing_field")
        private = payload.get("private", True)
        if not isinstance(private, bool):
            return _validation_failed("private", "It should be a/an Boolean", "datatype_mismatch")
        note = self._store(normalise(raw_id), body, private)
        return Reply(201, note)

    def _store(self, ticket_id: str, body: str, private: bool) -> dict[str, Any]:
        with self._lock:
            created_at = utc_stamp()
            note = {
                "id": self._next_id,
                "ticket_id": int(ticket_id),
                "user_id": AGENT_ID,
                "body": body,
                "body_text": _plain(body),
                "private": private,
                "incoming": False,
                "source": 2,
                "attachments": [],
                "created_at": created_at,
                "updated_at": created_at,
            }
            self._next_id += 1
            self._notes.setdefault(ticket_id, []).append(note)
            return copy.deepcopy(note)

    def _list(self, request: RecordedRequest, raw_id: str) -> Reply:
        if raw_id not in self._tickets:
            return self.error(404)
        query = request.query
        page = _positive(query.get("page", "1"))
        per_page = _positive(query.get("per_page", str(DEFAULT_PER_PAGE)))
        if page is None:
            return _validation_failed("page", "It should be a Positive Integer")
        if per_page is None or per_page > MAX_PER_PAGE:
            return _validation_failed(
                "per_page", f"It should be a Positive Integer less than or equal to {MAX_PER_PAGE}"
            )
        conversations = self.notes(raw_id)
        start = (page - 1) * per_page
        chunk = conversations[start : start + per_page]
        headers = {}
        if start + per_page < len(conversations):
            # Freshdesk points at the next page in `link` while there is one.
            next_url = f"{self.url}{request.route}?page={page + 1}&per_page={per_page}"
            headers["link"] = f'<{next_url}>; rel="next"'
        return Reply(200, chunk, headers)


def _plain(markup: str) -> str:
    """The text of an HTML body, as Freshdesk derives `body_text`: tags dropped, one line each."""
    text = re.sub(r"<br\s*/?>|</p>|</div>", "\n", markup)
    lines = re.sub(r"<[^>]*>", "", text).splitlines()
    return "\n".join(html.unescape(line).strip() for line in lines if line.strip())


def _positive(raw: str) -> int | None:
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        return None
    number = int(text)
    return number if number > 0 else None
