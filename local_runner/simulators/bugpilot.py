"""HTTP simulator of the Bugpilot widget API (``/api/v1/action`` and session info)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from ._server import JsonHttpServer, RecordedRequest, Reply, Route, epoch_ms, same_secret

USER_AGENT = "Bugpilot API Client/1.0"
ACTIONS = frozenset({"show-recording-ui", "upload-screenshot", "upload-session"})
ACTION_PATH = "/api/v1/action"
SESSION_INFO_PREFIX = "/api/v1/session-info/"

ERROR_MESSAGES: dict[str, str] = {
    "INVALID_API_KEY": "Please verify that provided api key is valid",
    "MISSING_FIELDS": "Required fields are missing",
    "INVALID_ACTION": "Please verify that provided action is valid",
    "USER_NOT_CONNECTED": "The user is not connected to Bugpilot",
    "NO_ACCESS": "You don't have access to this resource",
    "INTERNAL_ERROR": "The request cannot be processed due to an internal error",
    "INVALID_SESSION_TOKEN": "Invalid workspace or session token",
    "REPORT_NOT_FOUND": (
        "The report identified by the session token was not found. Probably the report was "
        "deleted, not correctly saved from the client, or canceled by the user."
    ),
    "NOT_FOUND": "The requested resource was not found",
}
GENERIC_MESSAGE = "Simulated error"


def error_body(code: str) -> dict[str, Any]:
    """The Bugpilot error envelope for `code`."""
    message = ERROR_MESSAGES.get(code, GENERIC_MESSAGE)
    return {"error": code, "error_message": message, "ts": epoch_ms()}


@dataclass
class _Session:
    token: str
    workspace_id: str
    user_id: str
    action: str
    report_id: str
    not_found_polls: int = 0
    ready: bool = False
    cancelled: bool = False
    created: float = 0.0


class BugpilotSimulator(JsonHttpServer):
    """Bugpilot widget API over real HTTP, with scriptable failures and recorded calls.

    A successful action creates a session token. Its report becomes ready after
    `reports_after_polls` session-info GETs answered 404 (0: ready at once; None: never,
    until `complete_report`). With `auto_complete_seconds` set (off by default, so tests keep
    their control), a report is also ready that long after its action, as when the user sends
    it (what `make panel` runs). Routes: "action" and "session_info".
    """

    provider = "bugpilot"
    # Codes of the failures that name none (scripted ones, the 401 of a wrong key).
    errors: ClassVar[Mapping[int, str]] = {
        401: "INVALID_API_KEY",
        403: "NO_ACCESS",
        404: "NOT_FOUND",
        429: "TOO_MANY_REQUESTS",
    }

    def __init__(
        self,
        *,
        workspace_id: str = "ws-demo",
        api_key: str = "ws-demo-key",
        port: int = 0,
        reports_after_polls: int | None = 1,
        report_base_url: str = "https://dash.bugpilot.io/report/",
        auto_complete_seconds: float | None = None,
    ) -> None:
        super().__init__(
            port=port,
            routes=[
                Route("action", "POST", ACTION_PATH, self._action, errors={400: "MISSING_FIELDS"}),
                Route(
                    "session_info",
                    "GET",
                    rf"{SESSION_INFO_PREFIX}(?P<workspace_id>[^/]+)/(?P<token>[^/]+)",
                    self._session_info,
                    auth=False,
                    errors={400: "INVALID_SESSION_TOKEN", 404: "REPORT_NOT_FOUND"},
                ),
            ],
        )
        if reports_after_polls is not None and reports_after_polls < 0:
            raise ValueError("reports_after_polls must be >= 0 or None")
        self.workspace_id = workspace_id
        self.api_key = api_key
        if auto_complete_seconds is not None and auto_complete_seconds < 0:
            raise ValueError("auto_complete_seconds must be >= 0 or None")
        self.reports_after_polls = reports_after_polls
        self.auto_complete_seconds = auto_complete_seconds
        self.report_base_url = report_base_url.rstrip("/") + "/"
        self._connected: set[str] = set()
        self._sessions: dict[str, _Session] = {}
        self._tokens: list[str] = []

    def bridge_settings(self) -> dict[str, str]:
        """The bridge's Bugpilot settings, pointed at this simulator."""
        return {
            "BUGPILOT_API_URL": self.url,
            "BUGPILOT_WORKSPACE_ID": self.workspace_id,
            "BUGPILOT_API_KEY": self.api_key,
        }

    # -- test controls ---------------------------------------------------------------------

    def connect_user(self, user_id: str) -> None:
        """Mark `user_id` as online (its widget is connected)."""
        with self._lock:
            self._connected.add(user_id)

    def disconnect_user(self, user_id: str) -> None:
        """Mark `user_id` as offline."""
        with self._lock:
            self._connected.discard(user_id)

    def complete_report(self, token: str) -> str:
        """Make the report of `token` ready now (even if cancelled); returns its reportUrl."""
        with self._lock:
            session = self._session(token)
            session.ready, session.cancelled = True, False
            return self.report_base_url + session.report_id

    def cancel_report(self, token: str) -> None:
        """Make session-info for `token` answer 404 forever (the user cancelled)."""
        with self._lock:
            session = self._session(token)
            session.ready, session.cancelled = False, True

    def report_url(self, token: str) -> str:
        """The reportUrl `token` has (or will have) once ready."""
        with self._lock:
            return self.report_base_url + self._session(token).report_id

    def session_info_url(self, workspace_id: str, token: str) -> str:
        """The session-info URL of `token` on this simulator."""
        return f"{self.url}{SESSION_INFO_PREFIX}{quote(workspace_id, safe='')}/{token}"

    @property
    def tokens(self) -> list[str]:
        """Session tokens issued, in order."""
        with self._lock:
            return list(self._tokens)

    @property
    def connected_users(self) -> set[str]:
        """Users currently online."""
        with self._lock:
            return set(self._connected)

    # -- HTTP ------------------------------------------------------------------------------

    def authenticated(self, request: RecordedRequest) -> bool:
        """The workspace's API key in ``X-Bugpilot-Api-Key``."""
        return same_secret(request.headers.get("x-bugpilot-api-key"), self.api_key)

    def error(self, status: int, message: str | None = None) -> Reply:
        """Bugpilot's envelope; `message` is its error code."""
        fallback = "INTERNAL_ERROR" if status >= 500 else f"HTTP_{status}"
        return Reply(status, error_body(message or self.errors.get(status) or fallback))

    def _action(self, request: RecordedRequest) -> Reply:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.headers.get("user-agent") != USER_AGENT or content_type != "application/json":
            return self.error(400, "MISSING_FIELDS")
        body = request.json()
        if not isinstance(body, dict):
            return self.error(400, "MISSING_FIELDS")
        fields = [body.get(name) for name in ("workspaceId", "userId", "action")]
        if not all(isinstance(value, str) and value for value in fields):
            return self.error(400, "MISSING_FIELDS")
        workspace_id, user_id, action = (str(value) for value in fields)
        if action not in ACTIONS:
            return self.error(400, "INVALID_ACTION")
        if workspace_id != self.workspace_id:
            return self.error(403, "NO_ACCESS")
        with self._lock:
            if user_id not in self._connected:
                return self.error(400, "USER_NOT_CONNECTED")
            token = secrets.token_urlsafe(24)
            self._sessions[token] = _Session(
                token=token,
                workspace_id=workspace_id,
                user_id=user_id,
                action=action,
                report_id=secrets.token_hex(12),
                ready=self.reports_after_polls == 0,
                created=time.monotonic(),
            )
            self._tokens.append(token)
        return Reply(
            200,
            {
                "ok": True,
                "message": "The request has been sent to the client",
                "ts": epoch_ms(),
                "sessionInfoUrl": self.session_info_url(workspace_id, token),
            },
        )

    def _session_info(self, request: RecordedRequest, workspace_id: str, token: str) -> Reply:
        with self._lock:
            session = self._sessions.get(token)
            if session is None or session.workspace_id != workspace_id:
                return self.error(400, "INVALID_SESSION_TOKEN")
            if not session.ready and not session.cancelled:
                due = self.reports_after_polls
                if (due is not None and session.not_found_polls >= due) or self._auto_due(session):
                    session.ready = True
                else:
                    session.not_found_polls += 1
            if not session.ready:
                return self.error(404, "REPORT_NOT_FOUND")
            report_url = self.report_base_url + session.report_id
        if "text/html" in request.headers.get("accept", "").lower():
            return Reply(302, None, {"Location": report_url})
        return Reply(200, {"ok": True, "reportUrl": report_url, "ts": epoch_ms()})

    def _auto_due(self, session: _Session) -> bool:
        """Whether `auto_complete_seconds` have passed since the session's action."""
        wait = self.auto_complete_seconds
        return wait is not None and time.monotonic() - session.created >= wait

    def _session(self, token: str) -> _Session:
        session = self._sessions.get(token)
        if session is None:
            raise KeyError(f"unknown session token: {token!r}")
        return session
