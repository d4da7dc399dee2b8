"""HTTP simulator of the Zendesk Tickets API subset the bridge uses (comments)."""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ._server import JsonHttpServer, RecordedRequest, Reply, ScriptedReply, ScriptQueue

UPDATE_PATH = re.compile(r"^/api/v2/tickets/(?P<id>[^/]+)\.json$")
COMMENTS_PATH = re.compile(r"^/api/v2/tickets/(?P<id>[^/]+)/comments\.json$")
# Show Self: who the credentials belong to (anyone may call it, see `_me`).
ME_PATH = re.compile(r"^/api/v2/users/me\.json$")
COMMENT_LIMIT = 5000
DEMO_WEBHOOK_SECRET = "demo-webhook-secret"  # noqa: S105 - the local demo's only
AUTHOR_ID = 1_000_001  # the API user the token belongs to

_AUTH_FAILED: dict[str, Any] = {"error": "Couldn't authenticate you"}
_NOT_FOUND: dict[str, Any] = {"error": "RecordNotFound", "description": "Not found"}
_SCRIPTED_ERRORS: dict[int, str] = {
    400: "BadRequest",
    403: "Forbidden",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(description: str, error: str = "BlankValue") -> Reply:
    return Reply(
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {"base": [{"description": description, "error": error}]},
        },
    )


def _scripted_failure(entry: ScriptedReply) -> Reply:
    if entry.status == 401:
        body: dict[str, Any] = dict(_AUTH_FAILED)
    elif entry.status == 404:
        body = dict(_NOT_FOUND)
    elif entry.status == 422:
        body = _invalid("Simulated validation error", "Invalid").body
    else:
        body = {"error": _SCRIPTED_ERRORS.get(entry.status, f"HTTP{entry.status}")}
    return Reply(entry.status, body, entry.extra_headers(), entry.delay)


class ZendeskSimulator(JsonHttpServer):
    """Zendesk ticket comments over real HTTP, with scriptable failures and recorded calls."""

    helpdesk = "zendesk"
    sender = "Zendesk"

    def __init__(
        self,
        *,
        email: str = "agent@example.com",
        api_token: str = "zd-demo-token",  # noqa: S107 - demo credential of a local fake
        port: int = 0,
        known_tickets: set[str] | None = None,
        comment_limit: int = COMMENT_LIMIT,
    ) -> None:
        """`known_tickets` None means every numeric ticket id exists."""
        super().__init__(port=port)
        self.email = email
        self.api_token = api_token
        self.comment_limit = comment_limit
        self._known = None if known_tickets is None else {_normalise(t) for t in known_tickets}
        self._comments: dict[str, list[dict[str, Any]]] = {}
        self._next_id = 40_000_000_001
        self._update_script = ScriptQueue()
        self._comments_script = ScriptQueue()
        self._me_script = ScriptQueue()
        # The role of the user the API token belongs to; "end-user" makes notes impossible.
        self.api_user_role = "admin"

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
            return copy.deepcopy(self._comments.get(_normalise(ticket_id), []))

    def script_update(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` ticket updates with `status` (FIFO).

        Status 200 only delays the normal answer. Retry-After is sent only when given.
        """
        self._update_script.push(ScriptedReply(status, None, delay, retry_after), times)

    def script_comments(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` comment listings with `status` (FIFO)."""
        self._comments_script.push(ScriptedReply(status, None, delay, retry_after), times)

    def script_me(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` Show Self calls (``/api/v2/users/me.json``) with `status`."""
        self._me_script.push(ScriptedReply(status, None, delay, retry_after), times)

    # -- recorded state --------------------------------------------------------------------

    @property
    def me_reads(self) -> list[RecordedRequest]:
        """Every GET to /api/v2/users/me.json, in arrival order."""
        return self.requests_to("GET", ME_PATH)

    @property
    def updates(self) -> list[RecordedRequest]:
        """Every PUT to /api/v2/tickets/{id}.json, in arrival order."""
        return self.requests_to("PUT", UPDATE_PATH)

    @property
    def comment_reads(self) -> list[RecordedRequest]:
        """Every GET to /api/v2/tickets/{id}/comments.json, in arrival order."""
        return self.requests_to("GET", COMMENTS_PATH)

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Route one request."""
        update = UPDATE_PATH.fullmatch(request.route)
        if update and request.method == "PUT":
            return self._update_script.answer(
                lambda: self._update(request, update["id"]), _scripted_failure
            )
        listing = COMMENTS_PATH.fullmatch(request.route)
        if listing and request.method == "GET":
            return self._comments_script.answer(
                lambda: self._list(request, listing["id"]), _scripted_failure
            )
        if ME_PATH.fullmatch(request.route) and request.method == "GET":
            return self._me_script.answer(lambda: self._me(request), _scripted_failure)
        return self.not_found()

    def not_found(self) -> Reply:
        """404 for unknown routes."""
        return Reply(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def internal_error(self) -> Reply:
        """500 when the simulator itself raised."""
        return Reply(500, {"error": "InternalServerError"})

    def _authenticated(self, request: RecordedRequest) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            credentials = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.email}/token:{self.api_token}".encode()
        return hmac.compare_digest(credentials, expected)

    def _me(self, request: RecordedRequest) -> Reply:
        """Show Self: wrong credentials are refused; no credentials at all give the anonymous user.

        Zendesk allows the endpoint for anyone, so an unauthenticated call is not an error: it
        describes an anonymous end user without an id.
        """
        if "authorization" not in request.headers:
            return Reply(200, {"user": {"id": None, "name": "Anonymous user", "role": "end-user"}})
        if not self._authenticated(request):
            return Reply(401, _AUTH_FAILED, {"WWW-Authenticate": 'Basic realm="Web Password"'})
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

    def _ticket_exists(self, ticket_id: str) -> bool:
        if not _is_number(ticket_id):
            return False
        return self._known is None or _normalise(ticket_id) in self._known

    def _update(self, request: RecordedRequest, raw_id: str) -> Reply:
        if not self._authenticated(request):
            return Reply(401, _AUTH_FAILED, {"WWW-Authenticate": 'Basic realm="Web Password"'})
        if not self._ticket_exists(raw_id):
            return Reply(404, _NOT_FOUND)
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
        ticket_id = _normalise(raw_id)
        with self._lock:
            thread = self._comments.setdefault(ticket_id, [])
            if len(thread) >= self.comment_limit:
                return _invalid(
                    f"Ticket has reached the limit of {self.comment_limit} comments",
                    "TooManyComments",
                )
            created_at = _now()
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
        if not self._authenticated(request):
            return Reply(401, _AUTH_FAILED, {"WWW-Authenticate": 'Basic realm="Web Password"'})
        if not self._ticket_exists(raw_id):
            return Reply(404, _NOT_FOUND)
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


def _normalise(ticket_id: str | int) -> str:
    text = str(ticket_id).strip()
    return str(int(text)) if _is_number(text) else text


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
