"""HTTP simulator of the Bugpilot widget API (``/api/v1/action`` and session info)."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from ._server import JsonHttpServer, RecordedRequest, Reply, ScriptedReply, ScriptQueue, epoch_ms

USER_AGENT = "Bugpilot API Client/1.0"
ACTIONS = frozenset({"show-recording-ui", "upload-screenshot", "upload-session"})
ACTION_PATH = "/api/v1/action"
SESSION_INFO_PREFIX = "/api/v1/session-info/"
ACTION_ROUTE = re.compile(re.escape(ACTION_PATH))
SESSION_INFO_ROUTE = re.compile(rf"{SESSION_INFO_PREFIX}(?P<workspace>[^/]+)/(?P<token>[^/]+)")

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

# Codes used for scripted failures that name no error code.
_DEFAULT_CODES: dict[int, str] = {
    401: "INVALID_API_KEY",
    403: "NO_ACCESS",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
}
_ACTION_DEFAULT_CODES = {**_DEFAULT_CODES, 400: "MISSING_FIELDS"}
_SESSION_INFO_DEFAULT_CODES = {
    **_DEFAULT_CODES,
    400: "INVALID_SESSION_TOKEN",
    404: "REPORT_NOT_FOUND",
}


def error_body(code: str) -> dict[str, Any]:
    """The Bugpilot error envelope for `code`."""
    message = ERROR_MESSAGES.get(code, GENERIC_MESSAGE)
    return {"error": code, "error_message": message, "ts": epoch_ms()}


def _error(status: int, code: str) -> Reply:
    return Reply(status, error_body(code))


def _scripted_failure(entry: ScriptedReply, defaults: dict[int, str]) -> Reply:
    code = entry.error or defaults.get(
        entry.status, "INTERNAL_ERROR" if entry.status >= 500 else f"HTTP_{entry.status}"
    )
    return Reply(entry.status, error_body(code), entry.extra_headers(), entry.delay)


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


class BugpilotSimulator(JsonHttpServer):
    """Bugpilot widget API over real HTTP, with scriptable failures and recorded calls.

    A successful action creates a session token. Its report becomes ready after
    `reports_after_polls` session-info GETs answered 404 (0: ready at once; None: never,
    until `complete_report`).
    """

    def __init__(
        self,
        *,
        workspace_id: str = "ws-demo",
        api_key: str = "ws-demo-key",
        port: int = 0,
        reports_after_polls: int | None = 1,
        report_base_url: str = "https://dash.bugpilot.io/report/",
    ) -> None:
        super().__init__(port=port)
        if reports_after_polls is not None and reports_after_polls < 0:
            raise ValueError("reports_after_polls must be >= 0 or None")
        self.workspace_id = workspace_id
        self.api_key = api_key
        self.reports_after_polls = reports_after_polls
        self.report_base_url = report_base_url.rstrip("/") + "/"
        self._connected: set[str] = set()
        self._sessions: dict[str, _Session] = {}
        self._tokens: list[str] = []
        self._action_script = ScriptQueue()
        self._session_info_script = ScriptQueue()

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

    def script_action(
        self,
        status: int,
        error: str | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` action calls with `status`/`error` (FIFO).

        Status 200 without error only delays (`delay` seconds) the normal answer.
        """
        self._action_script.push(ScriptedReply(status, error, delay, retry_after), times)

    def script_session_info(
        self,
        status: int,
        error: str | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` session-info calls with `status`/`error` (FIFO).

        Scripted failures do not count as polls towards report readiness.
        """
        self._session_info_script.push(ScriptedReply(status, error, delay, retry_after), times)

    # -- recorded state --------------------------------------------------------------------

    @property
    def actions(self) -> list[RecordedRequest]:
        """Every POST to /api/v1/action, in arrival order."""
        return self.requests_to("POST", ACTION_ROUTE)

    @property
    def session_info_requests(self) -> list[RecordedRequest]:
        """Every GET to /api/v1/session-info/..., in arrival order."""
        return self.requests_to("GET", SESSION_INFO_ROUTE)

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

    def handle(self, request: RecordedRequest) -> Reply:
        """Route one request."""
        if request.method == "POST" and ACTION_ROUTE.fullmatch(request.route):
            return self._action_script.answer(
                lambda: self._action(request),
                lambda entry: _scripted_failure(entry, _ACTION_DEFAULT_CODES),
            )
        info = SESSION_INFO_ROUTE.fullmatch(request.route)
        if request.method == "GET" and info:
            workspace_id, token = unquote(info["workspace"]), unquote(info["token"])
            return self._session_info_script.answer(
                lambda: self._session_info(request, workspace_id, token),
                lambda entry: _scripted_failure(entry, _SESSION_INFO_DEFAULT_CODES),
            )
        return self.not_found()

    def not_found(self) -> Reply:
        """404 for unknown routes."""
        return _error(404, "NOT_FOUND")

    def internal_error(self) -> Reply:
        """500 when the simulator itself raised."""
        return _error(500, "INTERNAL_ERROR")

    def _action(self, request: RecordedRequest) -> Reply:
        key = request.headers.get("x-bugpilot-api-key", "")
        if not key or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return _error(401, "INVALID_API_KEY")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.headers.get("user-agent") != USER_AGENT or content_type != "application/json":
            return _error(400, "MISSING_FIELDS")
        body = request.json()
        if not isinstance(body, dict):
            return _error(400, "MISSING_FIELDS")
        fields = [body.get(name) for name in ("workspaceId", "userId", "action")]
        if not all(isinstance(value, str) and value for value in fields):
            return _error(400, "MISSING_FIELDS")
        workspace_id, user_id, action = (str(value) for value in fields)
        if action not in ACTIONS:
            return _error(400, "INVALID_ACTION")
        if workspace_id != self.workspace_id:
            return _error(403, "NO_ACCESS")
        with self._lock:
            if user_id not in self._connected:
                return _error(400, "USER_NOT_CONNECTED")
            token = secrets.token_urlsafe(24)
            self._sessions[token] = _Session(
                token=token,
                workspace_id=workspace_id,
                user_id=user_id,
                action=action,
                report_id=secrets.token_hex(12),
                ready=self.reports_after_polls == 0,
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
                return _error(400, "INVALID_SESSION_TOKEN")
            if not session.ready and not session.cancelled:
                due = self.reports_after_polls
                if due is not None and session.not_found_polls >= due:
                    session.ready = True
                else:
                    session.not_found_polls += 1
            if not session.ready:
                return _error(404, "REPORT_NOT_FOUND")
            report_url = self.report_base_url + session.report_id
        if "text/html" in request.headers.get("accept", "").lower():
            return Reply(302, None, {"Location": report_url})
        return Reply(200, {"ok": True, "reportUrl": report_url, "ts": epoch_ms()})

    def _session(self, token: str) -> _Session:
        session = self._sessions.get(token)
        if session is None:
            raise KeyError(f"unknown session token: {token!r}")
        return session
