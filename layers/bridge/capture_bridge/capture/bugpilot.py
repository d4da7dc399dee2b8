"""Bugpilot: `POST /api/v1/action` asks for a capture; Session Info tells when its report exists."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from capture_bridge.capture import ActionOutcome, ActionResult, ReportOutcome, ReportResult
from capture_bridge.http import HttpClient, HttpResponse, TransportError

ACTIONS = ("upload-session", "upload-screenshot", "show-recording-ui")
USER_AGENT = "Bugpilot API Client/1.0"
# Kept short: the webhook waits for this call and Zendesk gives up after about ten seconds.
ACTION_TIMEOUT = (3.05, 5.0)
SESSION_INFO_TIMEOUT = (3.05, 8.0)

# Errors only an operator can fix; asking again would fail the same way.
CONFIGURATION_ERRORS = frozenset(
    {"INVALID_API_KEY", "NO_ACCESS", "MISSING_FIELDS", "INVALID_ACTION"}
)
_SAFE_URL = re.compile(r"^https?://[^\s<>\"'\x00-\x1f]{1,2040}$")


def _retry_after(response: HttpResponse) -> int | None:
    raw = response.header("Retry-After")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


def _error_of(response: HttpResponse) -> tuple[str | None, str]:
    payload = response.json()
    if not isinstance(payload, dict):
        return None, ""
    code = payload.get("error")
    message = payload.get("error_message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else "",
    )


def is_safe_link(url: object) -> bool:
    """A plain http(s) URL that can go into a note as it is."""
    return isinstance(url, str) and _SAFE_URL.match(url) is not None


class BugpilotProvider:
    """The Bugpilot widget API, as documented in its Actions and Session Info references."""

    name = "bugpilot"

    def __init__(
        self,
        *,
        api_url: str,
        workspace_id: str,
        api_key: str,
        http: HttpClient,
        action_timeout: tuple[float, float] = ACTION_TIMEOUT,
        session_info_timeout: tuple[float, float] = SESSION_INFO_TIMEOUT,
    ) -> None:
        self._action_timeout = action_timeout
        self._session_info_timeout = session_info_timeout
        self._api_url = api_url.rstrip("/")
        self._workspace_id = workspace_id
        self._api_key = api_key
        self._http = http

    def request_capture(self, *, user_id: str, action: str, description: str) -> ActionResult:
        """Ask the user's browser to capture; map every documented answer to an outcome."""
        if not self._workspace_id or not self._api_key:
            return ActionResult(
                ActionOutcome.REJECTED,
                error_code="NOT_CONFIGURED",
                message="BUGPILOT_WORKSPACE_ID and BUGPILOT_API_KEY must be set",
            )
        body = {"workspaceId": self._workspace_id, "userId": user_id, "action": action}
        if description:
            body["userProvidedDescription"] = description
        try:
            response = self._http.request(
                "POST",
                f"{self._api_url}/api/v1/action",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    "X-Bugpilot-Api-Key": self._api_key,
                },
                json_body=body,
                timeout=self._action_timeout,
            )
        except TransportError as exc:
            return ActionResult(ActionOutcome.RETRYABLE, error_code="UNREACHABLE", message=str(exc))
        return self._action_result(response)

    def _action_result(self, response: HttpResponse) -> ActionResult:
        code, message = _error_of(response)
        if response.status == 200 and code is None:
            payload = response.json()
            url = payload.get("sessionInfoUrl") if isinstance(payload, dict) else None
            if isinstance(url, str) and url:
                return ActionResult(ActionOutcome.ACCEPTED, session_info_url=url)
            # Accepted without a way to follow it up: asking again could capture twice.
            return ActionResult(
                ActionOutcome.REJECTED,
                error_code="UNEXPECTED_RESPONSE",
                message="Bugpilot accepted the action but returned no sessionInfoUrl",
            )
        if code == "USER_NOT_CONNECTED":
            return ActionResult(ActionOutcome.USER_OFFLINE, error_code=code, message=message)
        if code in CONFIGURATION_ERRORS:
            return ActionResult(ActionOutcome.REJECTED, error_code=code, message=message)
        if response.status == 429 or response.status >= 500 or code == "INTERNAL_ERROR":
            return ActionResult(
                ActionOutcome.RETRYABLE,
                error_code=code or f"HTTP_{response.status}",
                message=message,
                retry_after_seconds=_retry_after(response),
            )
        fallback = {401: "INVALID_API_KEY", 403: "NO_ACCESS"}.get(response.status)
        return ActionResult(
            ActionOutcome.REJECTED,
            error_code=code or fallback or f"HTTP_{response.status}",
            message=message or f"Bugpilot answered HTTP {response.status}",
        )

    def is_trusted_session_info_url(self, url: str) -> bool:
        """Only our own workspace's Session Info on the configured host is ever fetched."""
        ours = urlsplit(self._api_url)
        theirs = urlsplit(url)
        prefix = f"/api/v1/session-info/{self._workspace_id}/"
        return (
            bool(self._workspace_id)
            and (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)
            and theirs.username is None
            and not theirs.query
            and not theirs.fragment
            and theirs.path.startswith(prefix)
            and "/" not in theirs.path[len(prefix) :]
            and len(theirs.path) > len(prefix)
        )

    def fetch_report(self, session_info_url: str) -> ReportResult:
        """Ask Session Info for the report; never follow a URL off the configured Bugpilot host."""
        if not self.is_trusted_session_info_url(session_info_url):
            return ReportResult(
                ReportOutcome.INVALID,
                error_code="UNTRUSTED_SESSION_INFO_URL",
                message="the session info URL is not on the configured Bugpilot API host",
            )
        try:
            response = self._http.request(
                "GET",
                session_info_url,
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=self._session_info_timeout,
            )
        except TransportError as exc:
            return ReportResult(ReportOutcome.RETRYABLE, error_code="UNREACHABLE", message=str(exc))
        return self._report_result(response)

    @staticmethod
    def _report_result(response: HttpResponse) -> ReportResult:
        code, message = _error_of(response)
        if response.status in (200, 302):
            payload = response.json()
            link = (
                payload.get("reportUrl") if isinstance(payload, dict) else None
            ) or response.header("Location")
            if is_safe_link(link):
                return ReportResult(ReportOutcome.READY, report_url=link)
            return ReportResult(
                ReportOutcome.RETRYABLE,
                error_code="UNEXPECTED_RESPONSE",
                message="Session Info answered without a usable reportUrl",
            )
        if response.status == 404:
            return ReportResult(ReportOutcome.NOT_READY, error_code=code or "REPORT_NOT_FOUND")
        if response.status == 429 or response.status >= 500:
            return ReportResult(
                ReportOutcome.RETRYABLE,
                error_code=code or f"HTTP_{response.status}",
                message=message,
                retry_after_seconds=_retry_after(response),
            )
        return ReportResult(
            ReportOutcome.INVALID,
            error_code=code or f"HTTP_{response.status}",
            message=message or f"Session Info answered HTTP {response.status}",
        )
