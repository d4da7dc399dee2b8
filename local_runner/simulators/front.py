"""HTTP simulator of the Front Core API subset the bridge uses (comments, contacts, me)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from ._server import (
    JsonHttpServer,
    RecordedRequest,
    Reply,
    Route,
    bearer_token,
    phrase,
    same_secret,
)

CONVERSATION_PATH = r"/conversations/(?P<conversation_id>[^/]+)"
DEMO_API_TOKEN = "front-demo-api-token"  # noqa: S105 - the local demo's only
DEMO_APP_SECRET = "demo-front-app-secret"  # noqa: S105 - the local demo's only
COMPANY_ID = "cmp_demo1"
# The bot teammate a token's comments are written as, when no author_id is given.
BOT_ID = "tea_bot1"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Front's documented rate-limit headers (Growth plan: 100 calls a minute).
RATE_LIMIT = 100
# The tags the bridge reads (Zendesk's), and the one asking for linked sessions only.
BUGPILOT_TAGS = ("bugpilot_session", "bugpilot_screenshot", "bugpilot_recording")
LINKS_TAG = "capture_links"
LAMBDATEST_LOGS = "https://automation.lambdatest.com/logs/?sessionID={id}"
NOTTE_SESSION = "https://console.notte.cc/sessions/{id}"


class FrontSimulator(JsonHttpServer):
    """Front conversations' comments and contacts over real HTTP, with scripted failures.

    Routes: "comment" (POST one), "comments" (list them), "contact" (read one) and "me".
    """

    helpdesk = "front"
    sender = "Front's app webhook"
    errors: ClassVar[Mapping[int, str]] = {
        401: "Invalid or missing token",
        404: "Not found",
        429: "Too many requests",
    }

    def __init__(
        self,
        *,
        api_token: str = DEMO_API_TOKEN,
        app_secret: str = DEMO_APP_SECRET,
        port: int = 0,
        known_conversations: set[str] | None = None,
    ) -> None:
        """`known_conversations` None means every `cnv_…` id exists."""
        super().__init__(
            port=port,
            routes=[
                Route("comment", "POST", f"{CONVERSATION_PATH}/comments", self._post),
                Route("comments", "GET", f"{CONVERSATION_PATH}/comments", self._list),
                Route("contact", "GET", r"/contacts/(?P<contact_id>[^/]+)", self._contact),
                Route("me", "GET", "/me", self._me),
            ],
        )
        self.api_token = api_token
        self.app_secret = app_secret
        self._known = None if known_conversations is None else set(known_conversations)
        self._comments: dict[str, list[dict[str, Any]]] = {}
        self._contacts: dict[str, dict[str, Any]] = {}
        self._next_id = 1
        self._events = 0
        self._id_lock = threading.Lock()

    # -- the demo's view (HelpdeskSimulator) -------------------------------------------------

    def bridge_settings(self) -> dict[str, str]:
        return {
            "FRONT_API_URL": self.url,
            "FRONT_API_TOKEN": self.api_token,
            "FRONT_APP_SECRET": self.app_secret,
        }

    def ticket_id(self, number: int) -> str:
        return f"cnv_{number}"

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        # Front's payload is fixed: the teammate adds one tag, and a session to capture can
        # only be linked in the conversation's subject. The requester is known by email.
        tag = next((tag for tag in tags.split() if tag in BUGPILOT_TAGS), LINKS_TAG)
        return self.tag_event(ticket_id, tag=tag, handle=email, subject=_subject(fields))

    def webhook_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def internal_notes(self, ticket_id: str) -> list[str]:
        # Every comment is internal in Front.
        return [str(comment["body"]) for comment in self.comments(ticket_id)]

    # -- what an app webhook sends -------------------------------------------------------------

    def tag_event(
        self,
        conversation_id: str,
        *,
        tag: str = "bugpilot_session",
        handle: str = "ada@example.com",
        contact_id: str = "crd_ada1",
        subject: str = "Checkout button does nothing",
        event_id: str | None = None,
        envelope: bool = True,
    ) -> bytes:
        """Front's `tag` event, in an app webhook's envelope (or bare, as a rule sends it)."""
        with self._id_lock:
            self._events += 1
            number = self._events
        event = {
            "_links": {"self": f"{self.url}/events/evt_{number}"},
            "id": event_id or f"evt_{number:x}{int(time.time())}",
            "type": "tag",
            "emitted_at": time.time(),
            "source": {"_meta": {"type": "teammate"}, "data": {"id": "tea_agent1"}},
            "target": {"_meta": {"type": "tag"}, "data": {"id": "tag_1", "name": tag}},
            "conversation": {
                "_links": {"self": f"{self.url}/conversations/{conversation_id}"},
                "id": conversation_id,
                "subject": subject,
                "status": "assigned",
                "recipient": {
                    "_links": {"related": {"contact": f"{self.url}/contacts/{contact_id}"}},
                    "handle": handle,
                    "role": "from",
                },
            },
        }
        if not envelope:
            return json.dumps(event).encode()
        body = {"type": "tag", "authorization": {"id": COMPANY_ID}, "payload": event}
        return json.dumps(body).encode()

    # -- test controls ---------------------------------------------------------------------

    def add_contact(self, contact_id: str, *handles: tuple[str, str]) -> None:
        """A contact with its `(source, handle)` pairs, e.g. `("phone", "+1555…")`."""
        with self._lock:
            self._contacts[contact_id] = {
                "_links": {"self": f"{self.url}/contacts/{contact_id}"},
                "id": contact_id,
                "name": "Ada Lovelace",
                "is_spammer": False,
                "handles": [{"handle": handle, "source": source} for source, handle in handles],
                "custom_fields": {},
            }

    def comments(self, conversation_id: str) -> list[dict[str, Any]]:
        """Copies of the conversation's comments, newest first (as Front lists them)."""
        with self._lock:
            return copy.deepcopy(self._comments.get(conversation_id, []))

    def add_comment(self, conversation_id: str, body: str) -> None:
        """A comment a teammate wrote."""
        with self._lock:
            self._insert(conversation_id, body, "tea_agent1")

    # -- HTTP ------------------------------------------------------------------------------

    def error(self, status: int, message: str | None = None) -> Reply:
        """Front's `{"_error": {status, title, message}}`; a 429 names its wait."""
        text = message or self.errors.get(status) or phrase(status)
        body = {"_error": {"status": status, "title": phrase(status), "message": text}}
        if status == 429:
            return Reply(429, body, {"x-ratelimit-limit": str(RATE_LIMIT)})
        return Reply(status, body)

    def not_found(self) -> Reply:
        return self.error(404, "Route not found")

    def authenticated(self, request: RecordedRequest) -> bool:
        """`Authorization: Bearer <API token>`."""
        return same_secret(bearer_token(request), self.api_token)

    def _exists(self, conversation_id: str) -> bool:
        valid = conversation_id.startswith("cnv_") and conversation_id[4:].isalnum()
        return valid and (self._known is None or conversation_id in self._known)

    def _insert(self, conversation_id: str, body: str, author: str) -> dict[str, Any]:
        comment = {
            "_links": {"self": f"{self.url}/comments/com_{self._next_id}"},
            "id": f"com_{self._next_id}",
            "author": {"id": author},
            "body": body,
            "posted_at": time.time(),
            "is_pinned": False,
        }
        self._next_id += 1
        # Front lists a conversation's comments newest first.
        self._comments.setdefault(conversation_id, []).insert(0, comment)
        return comment

    def _post(self, request: RecordedRequest, conversation_id: str) -> Reply:
        if not self._exists(conversation_id):
            return self.error(404, f"Unknown conversation {conversation_id}")
        payload = request.json()
        body = payload.get("body") if isinstance(payload, dict) else None
        if not isinstance(body, str) or not body.strip():
            return self.error(400, "body is required")
        with self._lock:
            comment = self._insert(conversation_id, body, BOT_ID)
        return Reply(201, copy.deepcopy(comment))

    def _list(self, request: RecordedRequest, conversation_id: str) -> Reply:
        if not self._exists(conversation_id):
            return self.error(404, f"Unknown conversation {conversation_id}")
        query = request.query
        try:
            limit = min(int(query.get("limit", str(DEFAULT_LIMIT))), MAX_LIMIT)
            start = int(query.get("page_token", "0"))
        except ValueError:
            return self.error(400, "limit and page_token must be numbers")
        comments = self.comments(conversation_id)
        page = comments[start : start + limit]
        following = None
        if start + limit < len(comments):
            following = f"{self.url}{request.route}?limit={limit}&page_token={start + limit}"
        return Reply(
            200,
            {
                "_pagination": {"next": following},
                "_links": {"self": f"{self.url}{request.path}"},
                "_results": page,
            },
        )

    def _contact(self, request: RecordedRequest, contact_id: str) -> Reply:
        with self._lock:
            contact = copy.deepcopy(self._contacts.get(contact_id))
        if contact is None:
            return self.error(404, f"Unknown contact {contact_id}")
        return Reply(200, contact)

    def _me(self, request: RecordedRequest) -> Reply:
        return Reply(
            200, {"_links": {"self": f"{self.url}/me"}, "id": COMPANY_ID, "name": "Demo Company"}
        )


def _subject(fields: Mapping[str, str]) -> str:
    """The conversation's subject, linking the sessions the demo names in capture fields."""
    parts = [fields.get("description") or "Checkout button does nothing"]
    if fields.get("lambdatest_session_id"):
        parts.append(LAMBDATEST_LOGS.format(id=fields["lambdatest_session_id"]))
    if fields.get("notte_session_id"):
        parts.append(NOTTE_SESSION.format(id=fields["notte_session_id"]))
    if fields.get("text"):
        parts.append(fields["text"])
    return " ".join(parts)
