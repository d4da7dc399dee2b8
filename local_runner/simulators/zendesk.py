"""HTTP simulator of the Zendesk Tickets API subset the bridge uses (comments)."""

from __future__ import annotations

import copy
import html
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ._server import (
    JsonHttpServer,
    RecordedRequest,
    Reply,
    Route,
    basic_credentials,
    phrase,
    same_secret,
)
from .helpdesk import NumericTickets, normalise, utc_stamp

TICKET_PATH = r"/api/v2/tickets/(?P<raw_id>[^/]+)"
COMMENT_LIMIT = 5000
DEMO_WEBHOOK_SECRET = "demo-webhook-secret"  # noqa: S105 - the local demo's only
AUTHOR_ID = 1_000_001  # the API user the token belongs to
WWW_AUTHENTICATE = 'Basic realm="Web Password"'


def _invalid(description: str, error: str = "BlankValue") -> Reply:
    return Reply(
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {"base": [{"description": description, "error": error}]},
        },
    )


class ZendeskSimulator(JsonHttpServer):
    """Zendesk ticket comments over real HTTP, with scriptable failures and recorded calls.

    Routes: "update" (PUT a ticket), "comments" (list them) and "me" (Show Self).
    """

    helpdesk = "zendesk"
    sender = "Zendesk"
    errors: ClassVar[Mapping[int, str]] = {
        401: "Couldn't authenticate you",
        404: "RecordNotFound",
        422: "Simulated validation error",
    }
    unknown_route = "InvalidEndpoint"

    def __init__(
        self,
        *,
        email: str = "agent@example.com",
        api_token: str = "zd-demo-token",  # noqa: S107 - demo credential of a local fake
        port: int = 0,
        known_tickets: set[str] | None = None,
        comment_limit: int = COMMENT_LIMIT,
        per_minute_limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`known_tickets` None means every numeric ticket id exists.

        `per_minute_limit` enforces an account's plan limit as Zendesk does: more calls than that
        in any 60 seconds (of `clock`, in seconds) are answered 429 with `Retry-After`, and every
        answer says `X-Rate-Limit` and `X-Rate-Limit-Remaining`.
        """
        super().__init__(
            port=port,
            routes=[
                Route("update", "PUT", rf"{TICKET_PATH}\.json", self._update),
                Route("comments", "GET", rf"{TICKET_PATH}/comments\.json", self._list),
                # Show Self: who the credentials belong to (anyone may call it, see `_me`).
                Route("me", "GET", r"/api/v2/users/me\.json", self._me, auth=False),
            ],
        )
        self.email = email
        self.api_token = api_token
        self.comment_limit = comment_limit
        self._tickets = NumericTickets(known_tickets)
        self._comments: dict[str, list[dict[str, Any]]] = {}
        self._next_id = 40_000_000_001
        # The role of the user the API token belongs to; "end-user" makes notes impossible.
        self.api_user_role = "admin"
        self.per_minute_limit = per_minute_limit
        self.clock = clock
        self._calls: deque[float] = deque()
        # Calls answered 429 by the per-minute limit.
        self.throttled = 0

    def handle(self, request: RecordedRequest) -> Reply:
        """Every call counts against the per-minute limit, when one is set."""
        limit = self.per_minute_limit
        if limit is None:
            return super().handle(request)
        now = self.clock()
        with self._lock:
            while self._calls and self._calls[0] <= now - 60:
                self._calls.popleft()
            if len(self._calls) >= limit:
                self.throttled += 1
                wait = max(1, math.ceil(self._calls[0] + 60 - now))
                headers = {
                    "Retry-After": str(wait),
                    "X-Rate-Limit": str(limit),
                    "X-Rate-Limit-Remaining": "0",
                }
                return Reply(429, {"error": "APIRateLimitExceeded"}, headers)
            self._calls.append(now)
            left = limit - len(self._calls)
        reply = super().handle(request)
        headers = {**reply.headers, "X-Rate-Limit": str(limit), "X-Rate-Limit-Remaining": str(left)}
        return Reply(reply.status, reply.body, headers, reply.delay)

    # -- the demo's view (HelpdeskSimulator) -------------------------------------------------

    def bridge_settings(self) -> dict[str, str]:
        return {
            "ZENDESK_API_URL": self.url,
            "ZENDESK_SUBDOMAIN": "demo",
            "ZENDESK_EMAIL": self.email,
            "ZENDESK_API_TOKEN": self.api_token,
            "ZENDESK_WEBHOOK_SECRET": DEMO_WEBHOOK_SECRET,
        }

    def ticket_id(self, number: int) -> str:
        return str(number)

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        # The README's trigger body.
        payload = {
            "ticket_id": ticket_id,
            "requester_email": email,
            "requester_external_id": user_id,
            "tags": tags,
            **fields,
        }
        return json.dumps(payload).encode()

    def webhook_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "User-Agent": "Zendesk Webhook"}

    def internal_notes(self, ticket_id: str) -> list[str]:
        return [
            str(comment.get("body", ""))
            for comment in self.comments(ticket_id)
            if comment.get("public") is False
        ]

    # -- test controls ---------------------------------------------------------------------

    def comments(self, ticket_id: str | int) -> list[dict[str, Any]]:
        """Copies of the ticket's comments, oldest first."""
        with self._lock:
            return copy.deepcopy(self._comments.get(normalise(ticket_id), []))

    # -- HTTP ------------------------------------------------------------------------------

    def error(self, status: int, message: str | None = None) -> Reply:
        """Zendesk's ``{"error": ...}`` (the status phrase in CamelCase unless named)."""
        text = message or self.errors.get(status) or phrase(status).replace(" ", "")
        if status == 422:
            return _invalid(text, "Invalid")
        body = {"error": text, "description": "Not found"} if status == 404 else {"error": text}
        return Reply(status, body, {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else {})

    def authenticated(self, request: RecordedRequest) -> bool:
        """HTTP Basic ``email/token:api_token``."""
        return same_secret(basic_credentials(request), f"{self.email}/token:{self.api_token}")

    def _me(self, request: RecordedRequest) -> Reply:
        """Show Self: wrong credentials are refused; no credentials at all give the anonymous user.

        Zendesk allows the endpoint for anyone, so an unauthenticated call is not an error: it
        describes an anonymous end user without an id.
        """
        if "authorization" not in request.headers:
            return Reply(200, {"user": {"id": None, "name": "Anonymous user", "role": "end-user"}})
        if not self.authenticated(request):
            return self.error(401)
        user = {
            "id": AUTHOR_ID,
            "url": f"{self.url}/api/v2/users/{AUTHOR_ID}.json",
            "name": "Bridge Agent",
            "email": self.email,
            "role": self.api_user_role,
            "active": True,
            "verified": True,
        }
        return Reply(200, {"user": user})

    def _update(self, request: RecordedRequest, raw_id: str) -> Reply:
        if raw_id not in self._tickets:
            return self.error(404)
        body = request.json()
        ticket = body.get("ticket") if isinstance(body, dict) else None
        comment = ticket.get("comment") if isinstance(ticket, dict) else None
        if not isinstance(comment, dict):
            return _invalid("Comment: body cannot be blank")
        # `html_body` is taken as HTML (Zendesk keeps it and shows its text as `body`); `body` is
        # taken as written (Zendesk would also render Markdown in it).
        html_body = comment.get("html_body")
        text = comment.get("body") if html_body is None else _plain(html_body)
        if not isinstance(text, str) or not text.strip():
            return _invalid("Comment: body cannot be blank")
        public = comment.get("public", True)
        if not isinstance(public, bool):
            return _invalid("Comment: public must be true or false", "InvalidValue")
        ticket_id = normalise(raw_id)
        with self._lock:
            thread = self._comments.setdefault(ticket_id, [])
            if len(thread) >= self.comment_limit:
                return _invalid(
                    f"Ticket has reached the limit of {self.comment_limit} comments",
                    "TooManyComments",
                )
            created_at = utc_stamp()
            comment_id, audit_id = self._next_id, self._next_id + 1
            self._next_id += 2
            thread.append(
                {
                    "id": comment_id,
                    "type": "Comment",
                    "author_id": AUTHOR_ID,
                    "body": text,
                    "html_body": html_body if isinstance(html_body, str) else _html(text),
                    "plain_body": text,
                    "public": public,
                    "attachments": [],
                    "audit_id": audit_id,
                    "created_at": created_at,
                }
            )
            count = len(thread)
        return Reply(
            200,
            {
                "ticket": {
                    "id": int(ticket_id),
                    "url": f"{self.url}/api/v2/tickets/{ticket_id}.json",
                    "status": "open",
                    "updated_at": created_at,
                    "comment_count": count,
                },
                "audit": {
                    "id": audit_id,
                    "ticket_id": int(ticket_id),
                    "author_id": AUTHOR_ID,
                    "created_at": created_at,
                    "events": [
                        {
                            "id": comment_id,
                            "type": "Comment",
                            "author_id": AUTHOR_ID,
                            "body": text,
                            "public": public,
                        }
                    ],
                },
            },
        )

    def _list(self, request: RecordedRequest, raw_id: str) -> Reply:
        if raw_id not in self._tickets:
            return self.error(404)
        sort_order = request.query.get("sort_order", "asc")
        if sort_order not in ("asc", "desc"):
            return Reply(400, {"error": "InvalidValue", "description": "sort_order: asc or desc"})
        comments = self.comments(raw_id)
        if sort_order == "desc":
            comments.reverse()
        body = {"comments": comments, "next_page": None, "previous_page": None}
        return Reply(200, {**body, "count": len(comments)})


def _plain(markup: Any) -> str | None:
    """The text of an HTML comment, as Zendesk shows it in `body`: tags dropped, one line each."""
    if not isinstance(markup, str):
        return None
    lines = re.sub(r"<[^>]*>", "", markup.replace("</p>", "\n")).splitlines()
    return "\n".join(html.unescape(line) for line in lines if line.strip())


def _html(text: str) -> str:
    return "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines())
