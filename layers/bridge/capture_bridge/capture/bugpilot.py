"""Bugpilot: `POST /api/v1/action` asks for a capture; Session Info tells when its report exists."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from capture_bridge.access import (
    PROBE_TIMEOUT,
    Access,
    AccessCheck,
    not_configured,
    status_check,
    unreachable,
    unset,
)
from capture_bridge.capture import (
    BRIDGE_ERROR,
    BRIDGE_ERROR_REASON,
    CallBudget,
    CaptureResult,
    Outcome,
    header_seconds,
    is_safe_link,
    text_field,
)
from capture_bridge.capture.spec import ApiField, ApiTarget, BodyField, ProviderSpec
from capture_bridge.errors import InvalidRequest
from capture_bridge.http import HttpClient, HttpResponse, TransportError
from capture_bridge.models import (
    CaptureRequest,
    CaptureSession,
    ErrorCode,
    SessionStatus,
    TicketRequest,
    http_error,
)
from capture_bridge.notes import requested_at
from capture_bridge.settings import Settings

NAME = "bugpilot"
DEFAULT_API_URL = "https://widget-api.bugpilot.io"

ACTIONS = ("upload-session", "upload-screenshot", "show-recording-ui")
# Captures the user does not see being taken; `show-recording-ui` puts a prompt in their face.
SILENT_ACTIONS = frozenset({"upload-session", "upload-screenshot"})
ACTION_LABELS = {
    "upload-session": "session recording (last minutes of activity)",
    "upload-screenshot": "screenshot",
    "show-recording-ui": "screen recording by the user",
}
# Ticket tags that ask for a capture, in precedence order when a ticket carries several.
ACTION_TAGS = {
    "bugpilot_screenshot": "upload-screenshot",
    "bugpilot_recording": "show-recording-ui",
    "bugpilot_session": "upload-session",
}
MAX_DESCRIPTION_LENGTH = 2000
MAX_ACTION_LENGTH = 60
# What the sessions API accepts for Bugpilot (openapi/sessions.yaml says the same).
MAX_API_USER_ID = 256
MAX_API_EMAIL = 254
API_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_API_ACTION = 64
MAX_API_DESCRIPTION = 1000
USER_AGENT = "Bugpilot API Client/1.0"
# The webhook's is short: Zendesk gives up after about ten seconds. The resolver waits longer, so
# that a slow Bugpilot's answer is read rather than left unconfirmed.
ACTION_TIMEOUTS = {CallBudget.INTERACTIVE: (3.05, 5.0), CallBudget.BACKGROUND: (3.05, 15.0)}
SESSION_INFO_TIMEOUT = (3.05, 8.0)

# Errors only an operator can fix; asking again would fail the same way.
CONFIGURATION_ERRORS = frozenset(
    {"INVALID_API_KEY", "NO_ACCESS", "MISSING_FIELDS", "INVALID_ACTION"}
)
FAILURE_REASONS = {
    "INVALID_API_KEY": (
        "Bugpilot rejected the API key (an administrator must check BUGPILOT_API_KEY)."
    ),
    ErrorCode.NO_ACCESS: "Bugpilot denied access to the workspace (check BUGPILOT_WORKSPACE_ID).",
    "MISSING_FIELDS": "Bugpilot said required fields were missing.",
    "INVALID_ACTION": "Bugpilot does not know this action.",
    ErrorCode.NOT_CONFIGURED: (
        "Bugpilot is not set up: the workspace id or API key is not configured "
        "(BUGPILOT_WORKSPACE_ID, BUGPILOT_API_KEY)."
    ),
    "INVALID_SESSION_TOKEN": "Bugpilot no longer knows this capture session.",
    ErrorCode.UNTRUSTED_SESSION_INFO_URL: "Bugpilot returned a link we do not trust.",
    ErrorCode.INTERRUPTED: (
        "the request was interrupted and we cannot tell whether Bugpilot received it; "
        "if a report shows up in Bugpilot, it belongs to this ticket."
    ),
    BRIDGE_ERROR: BRIDGE_ERROR_REASON,
}
UNCONFIRMED_NOTE = (
    "Bugpilot did not confirm the request; a report may still appear in the Bugpilot dashboard."
)
EARLIER_UNCONFIRMED_NOTE = (
    "Bugpilot did not confirm an earlier try; a report may still appear in the Bugpilot dashboard."
)


@dataclass(frozen=True)
class BugpilotSettings:
    """Bugpilot's own settings."""

    api_url: str = DEFAULT_API_URL
    workspace_id: str = ""
    api_key: str = field(default="", repr=False)
    default_action: str = "upload-session"

    @classmethod
    def from_settings(cls, settings: Settings) -> BugpilotSettings:
        return cls(
            api_url=settings.url("BUGPILOT_API_URL", DEFAULT_API_URL),
            workspace_id=settings.secret("BUGPILOT_WORKSPACE_ID"),
            api_key=settings.secret("BUGPILOT_API_KEY"),
            default_action=settings.choice("BUGPILOT_DEFAULT_ACTION", "upload-session", ACTIONS),
        )


def choose_action(explicit: str | None, tags: Iterable[str], default: str) -> str:
    """The `action` field if given, else the first action tag, else the default."""
    if explicit:
        if explicit not in ACTIONS:
            raise InvalidRequest(f"unknown action {explicit!r}; allowed: {', '.join(ACTIONS)}")
        return explicit
    tag_set = set(tags)
    # Fixed precedence, so that a ticket carrying several tags always gives the same action.
    for tag, action in ACTION_TAGS.items():
        if tag in tag_set:
            return action
    return default


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


class BugpilotProvider:
    """The Bugpilot widget API, as documented in its Actions and Session Info references."""

    name = NAME

    def __init__(
        self,
        settings: BugpilotSettings,
        http: HttpClient,
        *,
        action_timeout: tuple[float, float] = ACTION_TIMEOUTS[CallBudget.BACKGROUND],
        session_info_timeout: tuple[float, float] = SESSION_INFO_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._action_timeout = action_timeout
        self._session_info_timeout = session_info_timeout
        self._api_url = settings.api_url.rstrip("/")
        self._workspace_id = settings.workspace_id
        self._api_key = settings.api_key
        self._http = http

    # -- what a ticket asks of Bugpilot ------------------------------------------------------

    def requests_from(self, ticket: TicketRequest) -> list[CaptureRequest]:
        """A capture when the body names an action or the ticket carries a `bugpilot_*` tag."""
        explicit = text_field(ticket, "action", MAX_ACTION_LENGTH)
        if not explicit and not set(ticket.tags) & set(ACTION_TAGS):
            return []
        return [self._request(ticket, choose_action(explicit, ticket.tags, ""))]

    def default_request(self, ticket: TicketRequest) -> CaptureRequest:
        """The default action, for a ticket that names no capture at all."""
        return self._request(ticket, self._settings.default_action)

    def _request(self, ticket: TicketRequest, action: str) -> CaptureRequest:
        if not ticket.names_requester:
            raise InvalidRequest(
                f"{ticket.requester_fields} is required to identify the Bugpilot user"
            )
        description = text_field(ticket, "description", MAX_DESCRIPTION_LENGTH)
        return CaptureRequest(
            helpdesk=ticket.helpdesk,
            ticket_id=ticket.ticket_id,
            provider=self.name,
            action=action,
            subject=action,
            user_id=ticket.requester,
            description=description or f"Requested from {ticket.label}",
        )

    # -- the capture -------------------------------------------------------------------------

    def start(self, session: CaptureSession) -> CaptureResult:
        """Send the session's capture action to the user's browser."""
        return self.request_capture(
            user_id=session.user_id, action=session.action, description=session.description
        )

    def check(self, session: CaptureSession) -> CaptureResult:
        """Ask Session Info whether the report exists."""
        if not session.reference:
            return CaptureResult(Outcome.INVALID, error_code=ErrorCode.UNEXPECTED_RESPONSE)
        return self.fetch_report(session.reference)

    def render_note(self, session: CaptureSession) -> list[str]:
        """What was asked of whom, then the report link or what went wrong."""
        label = ACTION_LABELS.get(session.action, session.action)
        header = (
            f"Bugpilot {label} ({session.action}) requested {requested_at(session)} "
            f"for user {session.user_id}."
        )
        if session.status is SessionStatus.RESOLVED:
            return [header, f"The capture is ready: {session.links.get('report', '')}"]
        if session.status is SessionStatus.TIMED_OUT:
            if session.error == "USER_NOT_CONNECTED":
                return [
                    header,
                    "No capture was taken: the user was not online in the app while we kept "
                    "asking. Ask them to open the app, then request the capture again.",
                ]
            return [
                header,
                "No report arrived in time: the user may have cancelled the recording or closed "
                "the page. Request the capture again if you still need it.",
            ]
        code = session.error or ErrorCode.UNKNOWN
        if code == ErrorCode.UNCONFIRMED:
            return [header, f"{UNCONFIRMED_NOTE} Request the capture again if none does."]
        reason = FAILURE_REASONS.get(code, f"Bugpilot kept failing ({code}).")
        lines = [
            header,
            f"The capture could not be completed: {reason} Request it again once this is fixed.",
        ]
        if session.unconfirmed:
            # An earlier try went unanswered: it may have captured all the same.
            lines.append(EARLIER_UNCONFIRMED_NOTE)
        return lines

    def request_capture(self, *, user_id: str, action: str, description: str) -> CaptureResult:
        """Ask the user's browser to capture; map every documented answer to an outcome."""
        if not self._workspace_id or not self._api_key:
            return CaptureResult(
                Outcome.REJECTED,
                error_code=ErrorCode.NOT_CONFIGURED,
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
            if exc.maybe_delivered:
                return _unconfirmed(action, str(exc))
            return CaptureResult(
                Outcome.RETRYABLE, error_code=ErrorCode.UNREACHABLE, message=str(exc)
            )
        return self._action_result(response, action)

    def _action_result(self, response: HttpResponse, action: str) -> CaptureResult:
        code, message = _error_of(response)
        if response.status == 504 and code is None:
            # A gateway gave up waiting for Bugpilot, which may have carried the action out.
            return _unconfirmed(action, "Bugpilot's gateway timed out (HTTP 504)")
        if response.status == 200 and code is None:
            payload = response.json()
            url = payload.get("sessionInfoUrl") if isinstance(payload, dict) else None
            if isinstance(url, str) and url:
                return CaptureResult(Outcome.STARTED, reference=url)
            # Accepted without a way to follow it up: asking again could capture twice.
            return CaptureResult(
                Outcome.REJECTED,
                error_code=ErrorCode.UNEXPECTED_RESPONSE,
                message="Bugpilot accepted the action but returned no sessionInfoUrl",
            )
        if code == "USER_NOT_CONNECTED":
            return CaptureResult(Outcome.USER_OFFLINE, error_code=code, message=message)
        if code in CONFIGURATION_ERRORS:
            return CaptureResult(Outcome.REJECTED, error_code=code, message=message)
        if response.status == 429 or response.status >= 500 or code == "INTERNAL_ERROR":
            return CaptureResult(
                Outcome.RETRYABLE,
                error_code=code or http_error(response.status),
                message=message,
                retry_after_seconds=header_seconds(response),
            )
        fallback = {401: "INVALID_API_KEY", 403: "NO_ACCESS"}.get(response.status)
        return CaptureResult(
            Outcome.REJECTED,
            error_code=code or fallback or http_error(response.status),
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

    def fetch_report(self, session_info_url: str) -> CaptureResult:
        """Ask Session Info for the report; never follow a URL off the configured Bugpilot host."""
        if not self.is_trusted_session_info_url(session_info_url):
            return CaptureResult(
                Outcome.INVALID,
                error_code=ErrorCode.UNTRUSTED_SESSION_INFO_URL,
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
            return CaptureResult(
                Outcome.RETRYABLE, error_code=ErrorCode.UNREACHABLE, message=str(exc)
            )
        return self._report_result(response)

    @staticmethod
    def _report_result(response: HttpResponse) -> CaptureResult:
        code, message = _error_of(response)
        if response.status in (200, 302):
            payload = response.json()
            link = (
                payload.get("reportUrl") if isinstance(payload, dict) else None
            ) or response.header("Location")
            if isinstance(link, str) and is_safe_link(link):
                return CaptureResult(Outcome.READY, links={"report": link})
            return CaptureResult(
                Outcome.RETRYABLE,
                error_code=ErrorCode.UNEXPECTED_RESPONSE,
                message="Session Info answered without a usable reportUrl",
            )
        if response.status == 404:
            return CaptureResult(Outcome.NOT_READY, error_code=code or ErrorCode.REPORT_NOT_FOUND)
        if response.status == 429 or response.status >= 500:
            return CaptureResult(
                Outcome.RETRYABLE,
                error_code=code or http_error(response.status),
                message=message,
                retry_after_seconds=header_seconds(response),
            )
        return CaptureResult(
            Outcome.INVALID,
            error_code=code or http_error(response.status),
            message=message or f"Session Info answered HTTP {response.status}",
        )


def _unconfirmed(action: str, message: str) -> CaptureResult:
    """An action that may have been carried out; only a silent one may ever be sent again."""
    return CaptureResult(
        Outcome.UNCONFIRMED,
        error_code=ErrorCode.UNCONFIRMED,
        message=message,
        repeatable=action in SILENT_ACTIONS,
    )


# A session token no action ever returned: Session Info can only answer that it does not know it.
PROBE_TOKEN = "capture-bridge-access-probe"  # noqa: S105 - a made-up token, no secret
_UNVERIFIABLE = (
    "Bugpilot's API answered, but it has no read-only call that takes the API key: "
    "BUGPILOT_API_KEY and BUGPILOT_WORKSPACE_ID are only proven by the first capture "
    "(an INVALID_API_KEY or NO_ACCESS then fails it with a note saying so)"
)


def unconfigured(settings: Settings) -> list[str]:
    """What captures need and is not set: the workspace and its API key."""
    own = BugpilotSettings.from_settings(settings)
    return unset([("BUGPILOT_WORKSPACE_ID", own.workspace_id), ("BUGPILOT_API_KEY", own.api_key)])


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /api/v1/session-info/{workspace}/{made-up token}`: proves the API host answers.

    The documented API has two calls: actions (which capture, so never used to probe) and
    Session Info, which takes no key and answers 400 `INVALID_SESSION_TOKEN` for a wrong
    workspace and an unknown token alike. So only reachability can be proven without a capture.
    """
    own = BugpilotSettings.from_settings(settings)
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    url = (
        f"{own.api_url.rstrip('/')}/api/v1/session-info/"
        f"{quote(own.workspace_id, safe='')}/{PROBE_TOKEN}"
    )
    try:
        response = http.request(
            "GET",
            url,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=PROBE_TIMEOUT,
        )
    except TransportError as exc:
        return unreachable(NAME, exc)
    code, _ = _error_of(response)
    if (response.status, code) in ((400, "INVALID_SESSION_TOKEN"), (404, "REPORT_NOT_FOUND")):
        return AccessCheck(NAME, Access.UNVERIFIED, _UNVERIFIABLE)
    finding = status_check(NAME, "Bugpilot", response)
    if finding is not None:
        return finding
    return AccessCheck(
        NAME, Access.FAILED, f"Bugpilot answered HTTP {response.status} for a made-up session"
    )


def provider(settings: Settings, http: HttpClient, budget: CallBudget) -> BugpilotProvider:
    """Builds the provider for a call budget (the spec's `provider`)."""
    return BugpilotProvider(
        BugpilotSettings.from_settings(settings), http, action_timeout=ACTION_TIMEOUTS[budget]
    )


SPEC = ProviderSpec(
    name=NAME,
    provider=provider,
    probe=probe,
    unconfigured=unconfigured,
    # One call, at its timeouts: the action, or Session Info.
    longest_step_seconds=max(
        sum(ACTION_TIMEOUTS[CallBudget.BACKGROUND]), sum(SESSION_INFO_TIMEOUT)
    ),
    settings=("BUGPILOT_API_URL", "BUGPILOT_DEFAULT_ACTION"),
    secret_keys=("BUGPILOT_WORKSPACE_ID", "BUGPILOT_API_KEY"),
    body_fields=(BodyField("action", "action"), BodyField("description", "description")),
    api_fields=(
        ApiField("userId", ApiTarget.REQUESTER, MAX_API_USER_ID),
        ApiField("userEmail", ApiTarget.REQUESTER, MAX_API_EMAIL, pattern=API_EMAIL),
        ApiField("action", ApiTarget.ACTION, MAX_API_ACTION, choices=ACTIONS),
        ApiField("description", ApiTarget.DESCRIPTION, MAX_API_DESCRIPTION),
    ),
    # Bugpilot captures in a user's browser: the API must say whose.
    api_one_of=("userId", "userEmail"),
    actions=ACTIONS,
)
