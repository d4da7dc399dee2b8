"""HTTP simulator of the Help Scout Mailbox API v2 subset the bridge uses: the client-credentials
token, conversation notes and threads, customers and users/me."""

from __future__ import annotations

import copy
import html
import json
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from ._server import JsonHttpServer, RecordedRequest, Reply, Route, ScriptedReply, bearer_token
from .helpdesk import NumericTickets, normalise, utc_stamp

CONVERSATION_PATH = r"/v2/conversations/(?P<raw_id>[^/]+)"
DEMO_APP_ID = "hs-demo-app-id"
DEMO_APP_SECRET = "hs-demo-app-secret"  # noqa: S105 - the local demo's only
DEMO_WEBHOOK_SECRET = "demo-helpscout-webhook-secret"  # noqa: S105 - the local demo's only
# Help Scout's client-credentials tokens last two days.
TOKEN_LIFETIME_SECONDS = 172_800
# Threads a page, as Help Scout pages its lists.
THREADS_PER_PAGE = 25
USER_ID = 4
USER_EMAIL = "bridge-agent@example.com"
# The first id the simulator gives customers it makes up for the demo's conversations.
FIRST_CUSTOMER_ID = 238_604
# The tag asking for the sessions a conversation links, and the links the demo names them by.
LINKS_TAG = "capture_links"
LAMBDATEST_LOGS = "https://automation.lambdatest.com/logs/?sessionID={id}"
NOTTE_SESSION = "https://console.notte.cc/sessions/{id}"


class HelpScoutSimulator(JsonHttpServer):
    """Help Scout conversation notes over real HTTP, with expiring tokens and scripted failures.

    Routes: "token" (the OAuth client-credentials grant), "note" (POST one), "threads" (list a
    conversation's, newest first), "customer" (one, with its emails) and "me" (whose app it is).
    Tokens last `token_lifetime` seconds; `revoke_tokens` makes every issued one invalid.
    """

    helpdesk = "helpscout"
    sender = "Help Scout's webhook"
    errors: ClassVar[Mapping[int, str]] = {
        400: "Bad request",
        401: "Unauthorized",
        404: "Resource not found",
        429: "Too many requests",
    }

    def __init__(
        self,
        *,
        app_id: str = DEMO_APP_ID,
        app_secret: str = DEMO_APP_SECRET,
        webhook_secret: str = DEMO_WEBHOOK_SECRET,
        port: int = 0,
        known_conversations: set[str] | None = None,
        token_lifetime: int = TOKEN_LIFETIME_SECONDS,
    ) -> None:
        """`known_conversations` None means every numeric conversation id exists."""
        super().__init__(
            port=port,
            routes=[
                Route("token", "POST", "/v2/oauth2/token", self._token, auth=False),
                Route("note", "POST", f"{CONVERSATION_PATH}/notes", self._create_note),
                Route("threads", "GET", f"{CONVERSATION_PATH}/threads", self._list),
                Route("customer", "GET", r"/v2/customers/(?P<raw_id>[^/]+)", self._customer),
                Route("me", "GET", "/v2/users/me", self._me),
            ],
        )
        self.app_id = app_id
        self.app_secret = app_secret
        self.webhook_secret = webhook_secret
        # Seconds each token issued from now on lasts (its `expires_in`).
        self.token_lifetime = token_lifetime
        self._conversations = NumericTickets(known_conversations)
        self._threads: dict[str, list[dict[str, Any]]] = {}
        self._customers: dict[str, list[str]] = {}
        # Issued tokens and when each expires (monotonic seconds).
        self._tokens: dict[str, float] = {}
        self._next_id = 1_000_000
        self._next_customer = FIRST_CUSTOMER_ID
        self._token_lock = threading.Lock()

    # -- the demo's view (HelpdeskSimulator) -------------------------------------------------

    def bridge_settings(self) -> dict[str, str]:
        return {
            "HELPSCOUT_API_URL": self.url,
            "HELPSCOUT_APP_ID": self.app_id,
            "HELPSCOUT_APP_SECRET": self.app_secret,
            "HELPSCOUT_WEBHOOK_SECRET": self.webhook_secret,
        }

    def ticket_id(self, number: int) -> str:
        return str(number)

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        # The v2 conversation object Help Scout posts on `convo.tags`, abridged. Its customer is
        # named by id only, so the bridge looks the email up (`GET /v2/customers/{id}`); Help
        # Scout knows customers by email, and the demo's app identifies its user by that id.
        # The payload is fixed: a session to capture can only be linked in the subject, and the
        # agent asks for it with the capture_links tag.
        customer_id = self.add_customer(user_id or email)
        subject, links = _subject(fields)
        names = tags.split()
        if links and LINKS_TAG not in names:
            names.append(LINKS_TAG)
        conversation: dict[str, Any] = {
            "id": int(ticket_id),
            "number": int(ticket_id),
            "type": "email",
            "status": "active",
            "state": "published",
            "subject": subject,
            "mailboxId": 13,
            "tags": [
                {"id": 9150 + index, "color": "#929499", "tag": tag}
                for index, tag in enumerate(names)
            ],
            "primaryCustomer": {"id": customer_id, "type": "customer"},
            "createdAt": utc_stamp(),
        }
        return json.dumps(conversation).encode()

    def webhook_headers(self) -> dict[str, str]:
        # Its proof and event name are added by the caller (`sign_request`).
        return {"Content-Type": "application/json"}

    def internal_notes(self, ticket_id: str) -> list[str]:
        threads = self.threads(ticket_id)
        return [str(thread["body"]) for thread in threads if thread["type"] == "note"]

    # -- test controls ---------------------------------------------------------------------

    @property
    def token_requests(self) -> int:
        """How many token requests were made (granted or not)."""
        return len(self.requests("token"))

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (401), as after a revocation."""
        with self._token_lock:
            self._tokens.clear()

    def expire_tokens(self) -> None:
        """Every token issued so far has expired (401), whatever its lifetime said."""
        with self._token_lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def add_customer(self, *emails: str) -> int:
        """A customer with `emails` (none: a customer without email); their id."""
        with self._lock:
            customer_id = self._next_customer
            self._next_customer += 1
            self._customers[str(customer_id)] = [email for email in emails if email]
            return customer_id

    def threads(self, conversation_id: str | int) -> list[dict[str, Any]]:
        """Copies of the conversation's threads, oldest first."""
        with self._lock:
            return copy.deepcopy(self._threads.get(normalise(conversation_id), []))

    def add_thread(self, conversation_id: str | int, text: str, *, kind: str = "customer") -> None:
        """Put a thread on the conversation as someone else wrote it (a reply, a note)."""
        self._store(normalise(conversation_id), f"<p>{html.escape(text)}</p>", kind)

    # -- HTTP ------------------------------------------------------------------------------

    def error(self, status: int, message: str | None = None) -> Reply:
        """Help Scout's error body: a message and a log reference."""
        text = message or self.errors.get(status) or f"Simulated HTTP {status}"
        return Reply(status, {"message": text, "logRef": secrets.token_hex(6)})

    def scripted_headers(self, entry: ScriptedReply) -> dict[str, str]:
        """Help Scout says how long to wait in `X-RateLimit-Retry-After` (seconds)."""
        if entry.retry_after is None:
            return {}
        return {"X-RateLimit-Retry-After": str(entry.retry_after)}

    def authenticated(self, request: RecordedRequest) -> bool:
        """A Bearer token this simulator issued, neither expired nor revoked."""
        token = bearer_token(request)
        if not token:
            return False
        with self._token_lock:
            expires_at = self._tokens.get(token.decode(errors="replace"))
        return expires_at is not None and time.monotonic() < expires_at

    def _token(self, request: RecordedRequest) -> Reply:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return Reply(400, {"error": "invalid_request"})
        form = dict(parse_qsl(request.body.decode(errors="replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return Reply(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (self.app_id, self.app_secret):
            return Reply(401, {"error": "invalid_client"})
        token = secrets.token_urlsafe(24)
        with self._token_lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return Reply(
            200, {"token_type": "bearer", "access_token": token, "expires_in": self.token_lifetime}
        )

    def _me(self, request: RecordedRequest) -> Reply:
        return Reply(
            200,
            {"id": USER_ID, "firstName": "Bridge", "lastName": "Agent", "email": USER_EMAIL},
        )

    def _customer(self, request: RecordedRequest, raw_id: str) -> Reply:
        with self._lock:
            emails = self._customers.get(raw_id)
        if emails is None:
            return self.error(404)
        entries = [
            {"id": index + 1, "value": email, "type": "work"} for index, email in enumerate(emails)
        ]
        return Reply(
            200,
            {
                "id": int(raw_id),
                "firstName": "Ada",
                "lastName": "Lovelace",
                "_embedded": {"emails": entries, "phones": [], "chats": []},
            },
        )

    def _create_note(self, request: RecordedRequest, raw_id: str) -> Reply:
        if raw_id not in self._conversations:
            return self.error(404)
        payload = request.json()
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            return self.error(400, "text: may not be empty")
        thread = self._store(normalise(raw_id), text, "note")
        # 201 without a body; the new thread's id in `Resource-ID`.
        return Reply(201, None, {"Resource-ID": str(thread["id"])})

    def _store(self, conversation_id: str, body: str, kind: str) -> dict[str, Any]:
        with self._lock:
            thread = {
                "id": self._next_id,
                "type": kind,
                "status": "active",
                "state": "published",
                "body": body,
                "createdBy": {"id": USER_ID, "type": "user", "email": USER_EMAIL},
                "createdAt": utc_stamp(),
            }
            self._next_id += 1
            self._threads.setdefault(conversation_id, []).append(thread)
            return copy.deepcopy(thread)

    def _list(self, request: RecordedRequest, raw_id: str) -> Reply:
        if raw_id not in self._conversations:
            return self.error(404)
        raw_page = request.query.get("page", "1")
        if not (raw_page.isascii() and raw_page.isdigit()) or int(raw_page) < 1:
            return self.error(400, "page: must be a positive number")
        page = int(raw_page)
        newest_first = list(reversed(self.threads(raw_id)))
        start = (page - 1) * THREADS_PER_PAGE
        total = len(newest_first)
        return Reply(
            200,
            {
                "_embedded": {"threads": newest_first[start : start + THREADS_PER_PAGE]},
                "page": {
                    "size": THREADS_PER_PAGE,
                    "totalElements": total,
                    "totalPages": max(1, -(-total // THREADS_PER_PAGE)),
                    "number": page,
                },
            },
        )


def _subject(fields: Mapping[str, str]) -> tuple[str, bool]:
    """The conversation's subject, linking the sessions the demo names in capture fields, and
    whether it was given any (a session id or a text)."""
    parts = [fields.get("description") or "The app misbehaves"]
    if fields.get("lambdatest_session_id"):
        parts.append(LAMBDATEST_LOGS.format(id=fields["lambdatest_session_id"]))
    if fields.get("notte_session_id"):
        parts.append(NOTTE_SESSION.format(id=fields["notte_session_id"]))
    if fields.get("text"):
        parts.append(fields["text"])
    return " ".join(parts), len(parts) > 1
