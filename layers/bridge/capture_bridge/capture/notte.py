"""Notte: cloud browser sessions, read by id; once closed, their replay video.

A ticket names a session (`notte_session_id`, or a link in `text`); there is nothing to start.
`GET /sessions/{id}` says whether it is still active (then the session's own
`max_duration_minutes` bounds the wait); once it has ended, `GET /sessions/{id}/replay` gives a
presigned MP4 and when that link expires.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from capture_bridge.access import Access, AccessCheck, not_configured, read, unset
from capture_bridge.capture import (
    BRIDGE_ERROR,
    BRIDGE_ERROR_REASON,
    CallBudget,
    CaptureResult,
    Outcome,
    failed_answer,
    header_seconds,
    is_safe_link,
    unreachable,
)
from capture_bridge.capture.spec import BodyField, ExistingSessions, NamedSessions, ProviderSpec
from capture_bridge.http import HttpClient, HttpResponse, TransportError
from capture_bridge.models import CaptureSession, ErrorCode, SessionStatus, http_error
from capture_bridge.notes import format_seconds, labelled_lines, requested_at
from capture_bridge.settings import Settings

NAME = "notte"
DEFAULT_API_URL = "https://api.notte.cc"
TIMEOUT = (3.05, 8.0)
# Past its own maximum duration a session is closed by Notte; this leaves time to see it so.
DEADLINE_MARGIN = timedelta(minutes=10)
# Notte's SDK waits this long after a 529 (cluster overloaded).
OVERLOADED_WAIT_SECONDS = 30

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SESSION_ID = re.compile(rf"^{_UUID}$")
NAMED = NamedSessions(
    provider=NAME,
    action="browser-session",
    field="notte_session_id",
    id_pattern=_SESSION_ID,
    id_hint="a Notte session id (a UUID)",
    links=(
        re.compile(
            rf"https://(?:console\.notte\.cc|api\.notte\.cc)/sessions/({_UUID})(?![0-9A-Za-z-])"
        ),
    ),
    lowercase=True,
)
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
ENDED = frozenset({"closed", "error", "timed_out"})

DETAIL_LABELS = {
    "status": "Status",
    "error": "Error",
    "duration": "Duration",
    "steps": "Steps",
    "browser": "Browser",
    "closed_at": "Closed at",
}


@dataclass(frozen=True)
class NotteSettings:
    """Notte's own settings."""

    api_url: str = DEFAULT_API_URL
    api_key: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> NotteSettings:
        return cls(
            api_url=settings.url("NOTTE_API_URL", DEFAULT_API_URL),
            api_key=settings.secret("NOTTE_API_KEY"),
        )


def session_ids_in(text: str) -> list[str]:
    """Notte session ids named by links in free text, in order, once each."""
    return NAMED.ids_in(text)


def _time(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def _duration(raw: object) -> str:
    match = _DURATION.match(raw) if isinstance(raw, str) else None
    if match is None:
        return ""
    parts = {key: float(value) for key, value in match.groupdict().items() if value}
    seconds = sum(parts.get(unit, 0.0) * size for unit, size in _UNIT_SECONDS.items())
    return format_seconds(int(seconds))


class NotteProvider(ExistingSessions):
    """The Notte Sessions API, Bearer auth with the API key."""

    name = NAME
    named = NAMED

    def __init__(
        self, settings: NotteSettings, http: HttpClient, *, timeout: tuple[float, float] = TIMEOUT
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout

    # -- the capture -----------------------------------------------------------------------

    def check(self, session: CaptureSession) -> CaptureResult:
        """Read the session; once it has ended, its replay."""
        if not self._settings.api_key:
            return CaptureResult(
                Outcome.REJECTED,
                error_code=ErrorCode.NOT_CONFIGURED,
                message="NOTTE_API_KEY must be set",
            )
        session_id = session.reference or ""
        if not _SESSION_ID.match(session_id):
            return CaptureResult(Outcome.INVALID, error_code=ErrorCode.INVALID_SESSION_ID)
        base = f"{self._settings.api_url}/sessions/{quote(session_id, safe='')}"
        answer = self._get(base)
        if isinstance(answer, CaptureResult):
            return answer
        data = answer.json()
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            return CaptureResult(Outcome.RETRYABLE, error_code=ErrorCode.UNEXPECTED_RESPONSE)
        status = str(data["status"])
        if status not in ENDED:
            return CaptureResult(
                Outcome.NOT_READY,
                error_code=ErrorCode.SESSION_ACTIVE,
                deadline_at=self._deadline(data),
            )
        replay = self._get(f"{base}/replay")
        links: dict[str, str] = {}
        details = self._details(data)
        if isinstance(replay, CaptureResult):
            if replay.error_code != ErrorCode.NOT_FOUND:
                return replay
        else:
            payload = replay.json()
            mp4 = payload.get("mp4_url") if isinstance(payload, dict) else None
            if is_safe_link(mp4):
                links["replay"] = str(mp4)
                expires = _time(payload.get("expires_at"))
                if expires is not None:
                    details["replay_expires"] = expires.strftime("%Y-%m-%d %H:%M UTC")
        return CaptureResult(Outcome.READY, links=links, details=details)

    @staticmethod
    def _deadline(data: dict[str, object]) -> datetime | None:
        created = _time(data.get("created_at"))
        minutes = data.get("max_duration_minutes")
        if created is None or isinstance(minutes, bool) or not isinstance(minutes, int):
            return None
        return created + timedelta(minutes=max(minutes, 0)) + DEADLINE_MARGIN

    def _get(self, url: str) -> HttpResponse | CaptureResult:
        """The 200 answer to a GET, or the outcome any other answer comes to."""
        try:
            response = self._http.request(
                "GET",
                url,
                headers={
                    "Accept": "application/json",
                    "Authorization": f"Bearer {self._settings.api_key}",
                },
                timeout=self._timeout,
            )
        except TransportError as exc:
            return unreachable(exc)
        if response.status == 200:
            return response
        if response.status == 429:
            return CaptureResult(
                Outcome.RETRYABLE,
                error_code=http_error(429),
                retry_after_seconds=_reset_in(response),
            )
        if response.status == 529:
            wait = max(header_seconds(response) or 0, OVERLOADED_WAIT_SECONDS)
            return CaptureResult(
                Outcome.RETRYABLE, error_code=ErrorCode.OVERLOADED, retry_after_seconds=wait
            )
        return failed_answer(response, "Notte")

    @staticmethod
    def _details(data: dict[str, object]) -> dict[str, str]:
        steps = data.get("steps")
        closed = _time(data.get("closed_at"))
        error = data.get("error")
        details = {
            "status": str(data.get("status", "")),
            "error": error.strip()[:500] if isinstance(error, str) else "",
            "duration": _duration(data.get("duration")),
            "steps": str(len(steps)) if isinstance(steps, list) else "",
            "browser": str(data.get("browser_type") or ""),
            "closed_at": closed.strftime("%Y-%m-%d %H:%M UTC") if closed else "",
        }
        return {name: value for name, value in details.items() if value}

    # -- the note --------------------------------------------------------------------------

    def render_note(self, session: CaptureSession) -> list[str]:
        """The session's facts and replay link, or why they could not be read."""
        header = (
            f"Notte browser session {session.reference} "
            f"(named on the ticket {requested_at(session)})."
        )
        if session.status is SessionStatus.RESOLVED:
            lines = [header]
            status = session.details.get("status", "")
            if status in ("error", "timed_out"):
                error = session.details.get("error", "no error text given")
                lines.append(f"The session ended with status {status}: {error}")
            lines += labelled_lines(DETAIL_LABELS, session.details)
            if session.links.get("replay"):
                expires = session.details.get("replay_expires")
                until = f" (link expires {expires})" if expires else ""
                lines.append(f"- Replay video{until}: {session.links['replay']}")
            else:
                lines.append("- Replay video: none available")
            return lines
        if session.status is SessionStatus.TIMED_OUT:
            return [
                header,
                "The session was still active when the bridge stopped waiting for it "
                "(past its maximum duration). Check it in the Notte console.",
            ]
        return [header, f"The session could not be read: {self._reason(session)}"]

    @staticmethod
    def _reason(session: CaptureSession) -> str:
        code = session.error or ErrorCode.UNKNOWN
        reasons: dict[str, str] = {
            ErrorCode.NOT_CONFIGURED: (
                "Notte is not set up in the capture bridge (an administrator must set "
                "NOTTE_API_KEY)."
            ),
            ErrorCode.INVALID_CREDENTIALS: (
                "Notte rejected the API key (an administrator must check NOTTE_API_KEY)."
            ),
            ErrorCode.NO_ACCESS: "Notte denied access to this session for the configured API key.",
            ErrorCode.NOT_FOUND: f"Notte has no session {session.reference}.",
            BRIDGE_ERROR: BRIDGE_ERROR_REASON,
        }
        return reasons.get(code, f"Notte kept failing ({code}).")


def _reset_in(response: HttpResponse) -> int | None:
    """Seconds until `X-RateLimit-Reset` (an epoch time), else `Retry-After`."""
    reset = header_seconds(response, "X-RateLimit-Reset")
    if reset is not None:
        return max(reset - int(time.time()), 1)
    return header_seconds(response)


def unconfigured(settings: Settings) -> list[str]:
    """What reading sessions needs and is not set: the API key."""
    return unset([("NOTTE_API_KEY", NotteSettings.from_settings(settings).api_key)])


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """`GET /sessions?only_active=false&page=1&page_size=1`: lists one session, changes nothing."""
    own = NotteSettings.from_settings(settings)
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    answer = read(
        NAME,
        "Notte",
        http,
        f"{own.api_url}/sessions?only_active=false&page=1&page_size=1",
        headers={"Accept": "application/json", "Authorization": f"Bearer {own.api_key}"},
    )
    if isinstance(answer, AccessCheck):
        return answer
    return AccessCheck(NAME, Access.OK, "the session list could be read with this API key")


def provider(settings: Settings, http: HttpClient, budget: CallBudget) -> NotteProvider:
    """Entry point used by `capture.get_provider`: checks only (the resolver, the API refresh)."""
    return NotteProvider(NotteSettings.from_settings(settings), http)


SPEC = ProviderSpec(
    name=NAME,
    provider=provider,
    probe=probe,
    unconfigured=unconfigured,
    # The session, then its replay, each at its timeouts.
    longest_step_seconds=2 * sum(TIMEOUT),
    settings=("NOTTE_API_URL",),
    secret_keys=("NOTTE_API_KEY",),
    body_fields=(BodyField(NAMED.field, "notteSessionId"),),
    api_fields=(NAMED.api_field(),),
    # The replay is a presigned URL that expires: the sessions API's refresh reads a fresh one
    # through `check`.
    links_expire=True,
    named=NAMED,
)
