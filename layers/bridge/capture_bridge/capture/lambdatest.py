"""LambdaTest: automated test sessions, read by id from the Automation API once they have finished.

A ticket names a session (`lambdatest_session_id`, or a link in `text`); there is nothing to
start. `GET /automation/api/v1/sessions/{id}` says whether it still runs; once it has finished,
`GET …/video` gives the playable video, and the note lists the test's facts and every log link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from capture_bridge.access import Access, AccessCheck, not_configured, read, unset
from capture_bridge.capture import (
    BRIDGE_ERROR,
    BRIDGE_ERROR_REASON,
    CallBudget,
    CaptureResult,
    Outcome,
    failed_answer,
    is_safe_link,
    unreachable,
)
from capture_bridge.capture.spec import BodyField, ExistingSessions, NamedSessions, ProviderSpec
from capture_bridge.http import HttpClient, HttpResponse, TransportError
from capture_bridge.models import CaptureSession, ErrorCode, SessionStatus
from capture_bridge.notes import format_seconds, labelled_lines, requested_at
from capture_bridge.settings import Settings

NAME = "lambdatest"
DEFAULT_API_URL = "https://api.lambdatest.com"
SHARE_EXPIRY_DAYS = ("3", "7", "10", "30")
TIMEOUT = (3.05, 8.0)

# Session ids are WebDriver ids (32 hex digits) or LambdaTest test ids (`XXXXX-XXXXX-…`).
_SESSION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
NAMED = NamedSessions(
    provider=NAME,
    action="test-session",
    field="lambdatest_session_id",
    id_pattern=_SESSION_ID,
    id_hint="a LambdaTest session id: letters, digits and '-', at most 64 characters",
    # The dashboard's logs page and the API name a session by its session id.
    links=(
        re.compile(
            r"https://(?:eu-)?automation\.lambdatest\.com/logs/?\?(?:[^\s#]*&)?"
            r"sessionID=([A-Za-z0-9-]{1,64})(?![A-Za-z0-9-])"
        ),
        re.compile(
            r"https://(?:eu-)?api\.lambdatest\.com/automation/api/v1/sessions/"
            r"([A-Za-z0-9-]{1,64})(?![A-Za-z0-9-])"
        ),
    ),
)
# LambdaTest's own tools treat these as not finished; every other value is an end state.
IN_PROGRESS = frozenset({"running", "queued", "initiated", "created", "pqueued"})

LINK_LABELS = {
    "video": "Video",
    "screenshots": "Screenshots",
    "console_logs": "Console log",
    "network_logs": "Network log",
    "command_logs": "Command log",
    "selenium_logs": "Selenium log",
}
DETAIL_LABELS = {
    "test": "Test",
    "build": "Build",
    "status": "Status",
    "remark": "Remark",
    "browser": "Browser",
    "platform": "Platform",
    "duration": "Duration",
}
_SESSION_LINK_FIELDS = {
    "screenshots": "screenshot_url",
    "console_logs": "console_logs_url",
    "network_logs": "network_logs_url",
    "command_logs": "command_logs_url",
    "selenium_logs": "selenium_logs_url",
}


@dataclass(frozen=True)
class LambdaTestSettings:
    """LambdaTest's own settings."""

    api_url: str = DEFAULT_API_URL
    username: str = ""
    access_key: str = field(default="", repr=False)
    share_expiry_days: int = 7

    @classmethod
    def from_settings(cls, settings: Settings) -> LambdaTestSettings:
        return cls(
            api_url=settings.url("LAMBDATEST_API_URL", DEFAULT_API_URL),
            username=settings.text("LAMBDATEST_USERNAME"),
            access_key=settings.secret("LAMBDATEST_ACCESS_KEY"),
            share_expiry_days=int(
                settings.choice("LAMBDATEST_SHARE_EXPIRY_DAYS", "7", SHARE_EXPIRY_DAYS)
            ),
        )


def session_ids_in(text: str) -> list[str]:
    """LambdaTest session ids named by links in free text, in order, once each."""
    return NAMED.ids_in(text)


def _duration(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        return ""
    return format_seconds(int(raw))


def _text(data: dict[str, object], name: str) -> str:
    value = data.get(name)
    return str(value).strip() if isinstance(value, str | int | float) else ""


class LambdaTestProvider(ExistingSessions):
    """The LambdaTest Automation API (`/automation/api/v1`), Basic auth with the access key."""

    name = NAME
    named = NAMED

    def __init__(
        self,
        settings: LambdaTestSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout

    # -- the capture -----------------------------------------------------------------------

    def check(self, session: CaptureSession) -> CaptureResult:
        """Read the session; once it has finished, its video and links."""
        settings = self._settings
        if not settings.username or not settings.access_key:
            return CaptureResult(
                Outcome.REJECTED,
                error_code=ErrorCode.NOT_CONFIGURED,
                message="LAMBDATEST_USERNAME and LAMBDATEST_ACCESS_KEY must be set",
            )
        session_id = session.reference or ""
        if not _SESSION_ID.match(session_id):
            return CaptureResult(Outcome.INVALID, error_code=ErrorCode.INVALID_SESSION_ID)
        base = f"{settings.api_url}/automation/api/v1/sessions/{quote(session_id, safe='')}"
        answer = self._get(f"{base}?shareExpiryLimit={settings.share_expiry_days}")
        if isinstance(answer, CaptureResult):
            return answer
        payload = answer.json()
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            return CaptureResult(Outcome.RETRYABLE, error_code=ErrorCode.UNEXPECTED_RESPONSE)
        if _text(data, "status_ind").lower() in IN_PROGRESS:
            return CaptureResult(Outcome.NOT_READY, error_code=ErrorCode.SESSION_RUNNING)
        video = self._get(f"{base}/video")
        if isinstance(video, CaptureResult):
            if video.error_code != ErrorCode.NOT_FOUND:
                return video
            video_payload: object = None
        else:
            video_payload = video.json()
        return CaptureResult(
            Outcome.READY,
            links=self._links(data, video_payload),
            details=self._details(data),
        )

    def _get(self, url: str) -> HttpResponse | CaptureResult:
        """The 200 answer to a GET, or the outcome any other answer comes to."""
        settings = self._settings
        try:
            response = self._http.request(
                "GET",
                url,
                headers={"Accept": "application/json"},
                auth=(settings.username, settings.access_key),
                timeout=self._timeout,
            )
        except TransportError as exc:
            return unreachable(exc)
        return response if response.status == 200 else failed_answer(response, "LambdaTest")

    def _links(self, data: dict[str, object], video: object) -> dict[str, str]:
        links: dict[str, str] = {}
        if isinstance(video, dict):
            playable = video.get("view_video_url") or video.get("url")
            if is_safe_link(playable):
                links["video"] = str(playable)
        if "video" not in links and is_safe_link(data.get("video_url")):
            links["video"] = str(data["video_url"])
        for name, source in _SESSION_LINK_FIELDS.items():
            if is_safe_link(data.get(source)):
                links[name] = str(data[source])
        if is_safe_link(data.get("public_url")):
            links["share"] = str(data["public_url"])
        return links

    def _details(self, data: dict[str, object]) -> dict[str, str]:
        browser = " ".join(filter(None, (_text(data, "browser"), _text(data, "browser_version"))))
        details = {
            "test": _text(data, "name"),
            "build": _text(data, "build_name"),
            "status": _text(data, "status_ind"),
            "remark": _text(data, "remark"),
            "browser": browser,
            "platform": _text(data, "platform"),
            "duration": _duration(data.get("duration")),
        }
        if is_safe_link(data.get("public_url")):
            expires = datetime.now(UTC).date() + timedelta(days=self._settings.share_expiry_days)
            details["share_expires"] = expires.isoformat()
        return {name: value for name, value in details.items() if value}

    # -- the note --------------------------------------------------------------------------

    def render_note(self, session: CaptureSession) -> list[str]:
        """The test's facts and links, or why they could not be read."""
        session_id = session.reference or session.action
        header = (
            f"LambdaTest test session {session_id} (named on the ticket {requested_at(session)})."
        )
        if session.status is SessionStatus.RESOLVED:
            lines = [header, *labelled_lines(DETAIL_LABELS, session.details)]
            lines += labelled_lines(LINK_LABELS, session.links)
            if session.links.get("share"):
                expires = session.details.get("share_expires")
                until = f" (expires {expires})" if expires else ""
                lines.append(f"- Public share link{until}: {session.links['share']}")
            return lines
        if session.status is SessionStatus.TIMED_OUT:
            return [
                header,
                "The session was still running when the bridge stopped waiting for it. "
                "Open it in LambdaTest, or name it on the ticket again once it has finished.",
            ]
        return [header, f"The session could not be read: {self._reason(session)}"]

    @staticmethod
    def _reason(session: CaptureSession) -> str:
        code = session.error or ErrorCode.UNKNOWN
        reasons: dict[str, str] = {
            ErrorCode.NOT_CONFIGURED: (
                "LambdaTest is not set up in the capture bridge (an administrator must set "
                "LAMBDATEST_USERNAME and LAMBDATEST_ACCESS_KEY)."
            ),
            ErrorCode.INVALID_CREDENTIALS: (
                "LambdaTest rejected the credentials (an administrator must check "
                "LAMBDATEST_USERNAME and LAMBDATEST_ACCESS_KEY)."
            ),
            ErrorCode.NO_ACCESS: (
                "LambdaTest denied access to this session for the configured account."
            ),
            ErrorCode.NOT_FOUND: f"LambdaTest has no session {session.reference}.",
            BRIDGE_ERROR: BRIDGE_ERROR_REASON,
        }
        return reasons.get(code, f"LambdaTest kept failing ({code}).")


def unconfigured(settings: Settings) -> list[str]:
    """What reading sessions needs and is not set: the username (a parameter) and access key."""
    own = LambdaTestSettings.from_settings(settings)
    return unset([("LAMBDATEST_USERNAME", own.username), ("LAMBDATEST_ACCESS_KEY", own.access_key)])


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /automation/api/v1/sessions?limit=1`: lists at most one session, changes nothing."""
    own = LambdaTestSettings.from_settings(settings)
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    answer = read(
        NAME,
        "LambdaTest",
        http,
        f"{own.api_url}/automation/api/v1/sessions?limit=1",
        headers={"Accept": "application/json"},
        auth=(own.username, own.access_key),
    )
    if isinstance(answer, AccessCheck):
        return answer
    return AccessCheck(NAME, Access.OK, "the session list could be read with these credentials")


def provider(settings: Settings, http: HttpClient, budget: CallBudget) -> LambdaTestProvider:
    """Entry point used by `capture.get_provider`: checks only (the resolver, the API refresh)."""
    return LambdaTestProvider(LambdaTestSettings.from_settings(settings), http)


SPEC = ProviderSpec(
    name=NAME,
    provider=provider,
    probe=probe,
    unconfigured=unconfigured,
    # The session, then its video, each at its timeouts.
    longest_step_seconds=2 * sum(TIMEOUT),
    settings=("LAMBDATEST_USERNAME", "LAMBDATEST_API_URL", "LAMBDATEST_SHARE_EXPIRY_DAYS"),
    secret_keys=("LAMBDATEST_ACCESS_KEY",),
    body_fields=(BodyField(NAMED.field, "lambdatestSessionId"),),
    api_fields=(NAMED.api_field(),),
    # The public share link lapses after LAMBDATEST_SHARE_EXPIRY_DAYS: a finished session's links
    # are read again (`check` asks for a fresh share link) by the sessions API's refresh.
    links_expire=True,
    named=NAMED,
)
