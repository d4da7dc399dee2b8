"""HTTP simulator of the Jira Service Management API subset the bridge uses (request comments)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
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

COMMENT_PATH = r"/rest/servicedeskapi/request/(?P<key>[^/]+)/comment"
ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,9}-[1-9][0-9]{0,9}$")
DEMO_WEBHOOK_SECRET = "demo-jira-webhook-secret"  # noqa: S105 - the local demo's only
ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"  # the account the API token belongs to
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# Jira's rate-limit answers say when the budget refills, besides Retry-After.
RATE_LIMIT_RESET_SECONDS = 60


def _created() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "iso8601": now.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "jira": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "friendly": "Today " + now.strftime("%I:%M %p"),
        "epochMillis": int(now.timestamp() * 1000),
    }


class JiraSimulator(JsonHttpServer):
    """Jira Service Management request comments over real HTTP, with scripted failures.

    Routes: "post" and "list" (a request's comments) and "myself" (whose token it is).
    """

    helpdesk = "jira"
    sender = "Jira's automation rule"
    errors: ClassVar[Mapping[int, str]] = {
        401: "Client must be authenticated to access this resource.",
        403: "You do not have permission to add comments to this request.",
        404: "Request does not exist",
        429: "Rate limit exceeded.",
    }
    unknown_route = "Not found"

    def __init__(
        self,
        *,
        email: str = "agent@example.com",
        api_token: str = "jira-demo-token",  # noqa: S107 - demo credential of a local fake
        webhook_secret: str = DEMO_WEBHOOK_SECRET,
        port: int = 0,
        known_issues: set[str] | None = None,
    ) -> None:
        """`known_issues` None means every well-formed issue key exists."""
        super().__init__(
            port=port,
            routes=[
                Route("post", "POST", COMMENT_PATH, self._post),
                Route("list", "GET", COMMENT_PATH, self._list),
                Route("myself", "GET", "/rest/api/3/myself", self._myself),
            ],
        )
        self.email = email
        self.api_token = api_token
        self.webhook_secret = webhook_secret
        self._known = None if known_issues is None else set(known_issues)
        self._comments: dict[str, list[dict[str, Any]]] = {}
        self._next_id = 10_001
        # Whether the token's account is active; a deactivated one can write nothing.
        self.account_active = True

    # -- the demo's view (HelpdeskSimulator) -------------------------------------------------

    def bridge_settings(self) -> dict[str, str]:
        return {
            "JIRA_API_URL": self.url,
            "JIRA_EMAIL": self.email,
            "JIRA_API_TOKEN": self.api_token,
            "JIRA_WEBHOOK_SECRET": self.webhook_secret,
        }

    def ticket_id(self, number: int) -> str:
        return f"SUP-{number}"

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        # The README's automation rule body; the external id is the optional custom field line.
        payload: dict[str, Any] = {"ticket_id": ticket_id, "requester_email": email}
        if user_id:
            payload["requester_external_id"] = user_id
        # `{{issue.labels}}` renders a list joined by ", ".
        payload["tags"] = ", ".join(tags.split())
        return json.dumps({**payload, **fields}).encode()

    def webhook_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "User-Agent": "Automation for Jira"}

    def internal_notes(self, ticket_id: str) -> list[str]:
        return [
            str(comment["body"])
            for comment in self.comments(ticket_id)
            if comment.get("public") is False
        ]

    # -- what an admin webhook sends ---------------------------------------------------------

    def admin_webhook_body(
        self,
        ticket_id: str,
        *,
        email: str | None = "ada@example.com",
        labels: Sequence[str] = ("bugpilot_session",),
        summary: str = "Checkout button does nothing",
        sent_at: datetime | None = None,
        event: str = "jira:issue_updated",
    ) -> bytes:
        """Jira's issue payload, as an admin webhook posts it (`email` None: hidden)."""
        moment = sent_at or datetime.now(UTC)
        reporter: dict[str, Any] = {
            "accountId": "712020:2a3c9f0e-demo",
            "displayName": "Ada Lovelace",
            "accountType": "customer",
        }
        if email is not None:
            reporter["emailAddress"] = email
        payload = {
            "timestamp": int(moment.timestamp() * 1000),
            "webhookEvent": event,
            "issue_event_type_name": "issue_updated",
            "issue": {
                "id": "10042",
                "self": f"https://demo.atlassian.net/rest/api/2/issue/{ticket_id}",
                "key": ticket_id,
                "fields": {"summary": summary, "labels": list(labels), "reporter": reporter},
            },
        }
        return json.dumps(payload).encode()

    # -- test controls ---------------------------------------------------------------------

    def comments(self, ticket_id: str) -> list[dict[str, Any]]:
        """Copies of the issue's comments, oldest first."""
        with self._lock:
            return copy.deepcopy(self._comments.get(ticket_id, []))

    def add_comment(self, ticket_id: str, body: str, *, public: bool = True) -> None:
        """A comment someone else wrote (an agent, the customer)."""
        with self._lock:
            self._append(ticket_id, body, public)

    # -- HTTP ------------------------------------------------------------------------------

    def error(self, status: int, message: str | None = None) -> Reply:
        """Jira Service Management's error body; a 429 says when the budget refills."""
        text = message or self.errors.get(status) or phrase(status).capitalize()
        body = {"errorMessage": text, "i18nErrorMessage": {"i18nKey": "", "parameters": []}}
        if status != 429:
            return Reply(status, body)
        reset = datetime.now(UTC) + timedelta(seconds=RATE_LIMIT_RESET_SECONDS)
        reason = {"RateLimit-Reason": "jira-quota-based"}
        return Reply(429, body, {"X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"), **reason})

    def authenticated(self, request: RecordedRequest) -> bool:
        """HTTP Basic ``email:api_token``."""
        return same_secret(basic_credentials(request), f"{self.email}:{self.api_token}")

    def _exists(self, key: str) -> bool:
        return bool(ISSUE_KEY.match(key)) and (self._known is None or key in self._known)

    def _myself(self, request: RecordedRequest) -> Reply:
        return Reply(
            200,
            {
                "self": f"{self.url}/rest/api/3/user?accountId={ACCOUNT_ID}",
                "accountId": ACCOUNT_ID,
                "accountType": "atlassian",
                "emailAddress": self.email,
                "displayName": "Bridge Agent",
                "active": self.account_active,
                "timeZone": "UTC",
            },
        )

    def _append(self, key: str, body: str, public: bool) -> dict[str, Any]:
        comment = {
            "id": str(self._next_id),
            "body": body,
            "public": public,
            "author": {"accountId": ACCOUNT_ID, "emailAddress": self.email},
            "created": _created(),
        }
        self._next_id += 1
        self._comments.setdefault(key, []).append(comment)
        return comment

    def _post(self, request: RecordedRequest, key: str) -> Reply:
        if not self._exists(key):
            return self.error(404)
        payload = request.json()
        body = payload.get("body") if isinstance(payload, dict) else None
        public = payload.get("public", True) if isinstance(payload, dict) else True
        if not isinstance(body, str) or not body.strip():
            return self.error(400, "Comment body must not be empty")
        if not isinstance(public, bool):
            return self.error(400, "public must be true or false")
        with self._lock:
            comment = self._append(key, body, public)
        return Reply(201, {**comment, "_links": {"self": f"{self.url}{request.route}"}})

    def _list(self, request: RecordedRequest, key: str) -> Reply:
        if not self._exists(key):
            return self.error(404)
        query = request.query
        try:
            start = int(query.get("start", "0"))
            limit = min(int(query.get("limit", str(DEFAULT_PAGE_SIZE))), MAX_PAGE_SIZE)
        except ValueError:
            return self.error(400, "start and limit must be numbers")
        if start < 0 or limit < 1:
            return self.error(400, "start and limit must be positive")
        wanted = {
            visibility
            for visibility, flag in ((True, "public"), (False, "internal"))
            if query.get(flag, "true") != "false"
        }
        selected = [c for c in self.comments(key) if c["public"] in wanted]
        page = selected[start : start + limit]
        return Reply(
            200,
            {
                "size": len(page),
                "start": start,
                "limit": limit,
                "isLastPage": start + limit >= len(selected),
                "values": page,
                "_links": {"base": self.url, "self": f"{self.url}{request.path}"},
            },
        )
