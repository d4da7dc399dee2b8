"""HTTP simulator of the Notte Sessions API (session status and session replay)."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from ._server import (
    JsonHttpServer,
    RecordedRequest,
    Reply,
    Route,
    ScriptedReply,
    bearer_token,
    phrase,
    same_secret,
)

SESSION_PATH = r"/sessions/(?P<session_id>[^/]+)"
STATUSES = frozenset({"active", "closed", "error", "timed_out"})
CLOSED_STATUSES = STATUSES - {"active"}
BROWSER_TYPES = frozenset({"chromium", "chrome", "firefox", "chrome-nightly", "chrome-turbo"})
IDLE_TIMEOUT_MINUTES = 3  # the documented default of POST /sessions/start
CONSOLE_URL = "https://console.notte.cc"
API_WS_URL = "wss://api.notte.cc"
REPLAY_BUCKET_URL = "https://notte-session-replays.s3.us-east-1.amazonaws.com"
PRESIGN_EXPIRES_SECONDS = 3600
HLS_SEGMENT_SECONDS = 10
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/138.0.0.0 Safari/537.36"
)
VIEWPORT = (1280, 1080)

# Rate-limit headers (docs.notte.cc/api-reference/rate-limits): Reset is a Unix timestamp.
RATE_LIMIT = 100
DEFAULT_RATE_LIMIT_RESET = 1  # seconds from now, when a scripted 429 names none

# Documented bodies (docs.notte.cc/api-reference/errors and /rate-limits).
AUTH_FAILED_MESSAGE = "Authentication failed. Please check your credentials."
RATE_LIMITED_MESSAGE = "Rate limit exceeded"
RATE_LIMITED_DETAIL = "Please wait before making more requests"
OVERLOADED_MESSAGE = "Cluster overloaded - Too many sessions"
INTERNAL_ERROR_MESSAGE = "Internal server error"


def session_not_found_message(session_id: str) -> str:
    """Message of the 404 for an unknown session id."""
    return f"Session {session_id} not found"


def replay_active_message(session_id: str) -> str:
    """Message of the replay 404 while the session runs (the SDK looks for "still active")."""
    return f"Session {session_id} is still active. Close the session first to generate the replay."


def replay_missing_message(session_id: str) -> str:
    """Message of the replay 404 for a closed session that has no recording."""
    return f"Replay not found for session {session_id}"


def error_body(status: int, message: str, detail: str | None = None) -> dict[str, Any]:
    """The Notte error envelope: ``{"status", "message"}`` plus ``"detail"`` when there is one.

    The docs show ``{"message", "detail"}``; the SDK also reads ``status`` from error bodies.
    """
    body: dict[str, Any] = {"status": status, "message": message}
    if detail is not None:
        body["detail"] = detail
    return body


def iso_time(moment: datetime) -> str:
    """UTC ISO 8601 with ``Z``, as Notte (pydantic) writes datetimes: ``2023-11-07T05:31:56Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_duration(span: timedelta) -> str:
    """ISO 8601 duration as pydantic writes a timedelta.

    E.g. ``PT1M35S``, ``PT41.286072S``, ``P1DT5S``, ``PT0S``.
    """
    if span < timedelta(0):
        raise ValueError("duration must be >= 0")
    days = span.days
    minutes, seconds = divmod(span.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"P{days}D" if days else "P"
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if span.microseconds:
        clock += f"{seconds}.{span.microseconds:06d}".rstrip("0") + "S"
    elif seconds:
        clock += f"{seconds}S"
    if clock:
        return f"{text}T{clock}"
    return text if days else "PT0S"


def _steps(count: int) -> list[dict[str, Any]]:
    """Synthetic session steps in the SDK's ``{"type", "value"}`` form."""
    actions: list[dict[str, Any]] = [{"type": "goto", "url": "https://example.com/"}]
    actions += [{"type": "click", "id": f"B{n}"} for n in range(1, count)]
    return [
        {
            "type": "execution_result",
            "value": {"action": action, "success": True, "message": f"{action['type']} done"},
        }
        for action in actions[:count]
    ]


@dataclass
class _Session:
    session_id: str
    status: str
    max_duration_minutes: int
    created_at: datetime
    steps: list[dict[str, Any]]
    browser_type: str
    error: str | None
    has_replay: bool
    viewer_token: str
    closed_at: datetime | None = None
    mp4_url: str = ""
    presigned_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class NotteSimulator(JsonHttpServer):
    """Notte Sessions API over real HTTP, with scriptable failures and recorded calls.

    Sessions are added with `add_session` and ended with `close_session`; the simulator
    never times sessions out by itself. ``GET /sessions/{id}`` answers the session status;
    ``GET /sessions/{id}/replay`` answers presigned replay URLs once the session is no
    longer active and only if it has a replay (else 404). Both need ``Authorization:
    Bearer <api_key>``. Routes: "status", "replay" and "list" (``GET /sessions``).
    """

    provider = "notte"
    errors: ClassVar[Mapping[int, str]] = {
        401: AUTH_FAILED_MESSAGE,
        422: "Validation error",
        429: RATE_LIMITED_MESSAGE,
        500: INTERNAL_ERROR_MESSAGE,
        529: OVERLOADED_MESSAGE,
    }

    def __init__(self, *, api_key: str = "sk-notte-demo", port: int = 0) -> None:
        super().__init__(
            port=port,
            routes=[
                Route(
                    "status",
                    "GET",
                    SESSION_PATH,
                    self._status,
                    errors={404: session_not_found_message("{session_id}")},
                ),
                Route(
                    "replay",
                    "GET",
                    f"{SESSION_PATH}/replay",
                    self._replay,
                    errors={404: replay_missing_message("{session_id}")},
                ),
                Route("list", "GET", "/sessions", self._list),
            ],
        )
        self.api_key = api_key
        self._sessions: dict[str, _Session] = {}
        self._signing_key = secrets.token_bytes(16)

    def bridge_settings(self) -> dict[str, str]:
        """The bridge's Notte settings, pointed at this simulator."""
        return {"NOTTE_API_URL": self.url, "NOTTE_API_KEY": self.api_key}

    # -- test controls ---------------------------------------------------------------------

    def add_session(
        self,
        session_id: str | None = None,
        *,
        status: str = "active",
        max_duration_minutes: int = 15,
        created_at: datetime | None = None,
        steps: int = 3,
        browser_type: str = "chromium",
        error: str | None = None,
        has_replay: bool = True,
    ) -> str:
        """Create a session (a uuid4 id when `session_id` is None); returns its id.

        A session added as closed, error or timed_out gets ``closed_at`` = now, capped at
        `created_at` + `max_duration_minutes`.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}")
        if browser_type not in BROWSER_TYPES:
            raise ValueError(f"browser_type must be one of {sorted(BROWSER_TYPES)}")
        if max_duration_minutes < 1:
            raise ValueError("max_duration_minutes must be >= 1")
        if steps < 0:
            raise ValueError("steps must be >= 0")
        if created_at is not None and created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        session_id = str(uuid.uuid4()) if session_id is None else session_id
        if not session_id or "/" in session_id:
            raise ValueError("session_id must be non-empty and contain no '/'")
        session = _Session(
            session_id=session_id,
            status="active",
            max_duration_minutes=max_duration_minutes,
            created_at=(created_at or datetime.now(UTC)).astimezone(UTC),
            steps=_steps(steps),
            browser_type=browser_type,
            error=error,
            has_replay=has_replay,
            viewer_token=secrets.token_urlsafe(24),
        )
        with self._lock:
            if session_id in self._sessions:
                raise ValueError(f"session already exists: {session_id!r}")
            if status != "active":
                self._close(session, status, error)
            else:
                self._presign(session)
            self._sessions[session_id] = session
        return session_id

    def close_session(
        self, session_id: str, *, status: str = "closed", error: str | None = None
    ) -> None:
        """End an active session now: sets ``closed_at`` and ``duration``, signs the replay.

        ``closed_at`` is capped at ``created_at + max_duration_minutes``; `error`, when
        given, becomes the session's ``error``.
        """
        if status not in CLOSED_STATUSES:
            raise ValueError(f"status must be one of {sorted(CLOSED_STATUSES)}")
        with self._lock:
            session = self._session(session_id)
            if session.status != "active":
                raise ValueError(f"session {session_id!r} is already {session.status}")
            self._close(session, status, error)

    def mp4_url(self, session_id: str) -> str:
        """The presigned ``mp4_url`` the replay endpoint returns for `session_id`.

        It is re-signed when the session closes; raises ValueError without a replay.
        """
        with self._lock:
            session = self._session(session_id)
            if not session.has_replay:
                raise ValueError(f"session {session_id!r} has no replay")
            return session.mp4_url

    def viewer_url(self, session_id: str) -> str:
        """The live ``viewer_url`` the status endpoint shows while `session_id` is active."""
        with self._lock:
            return self._viewer_url(self._session(session_id))

    def console_url(self, session_id: str) -> str:
        """The console page where a human finds the session (and its replay)."""
        return f"{CONSOLE_URL}/sessions/{quote(session_id, safe='')}"

    # -- recorded state --------------------------------------------------------------------

    @property
    def session_ids(self) -> list[str]:
        """Ids of the sessions added, in order."""
        with self._lock:
            return list(self._sessions)

    # -- HTTP ------------------------------------------------------------------------------

    def authenticated(self, request: RecordedRequest) -> bool:
        """``Authorization: Bearer <api_key>``."""
        return same_secret(bearer_token(request), self.api_key)

    def error(self, status: int, message: str | None = None) -> Reply:
        """Notte's envelope; a 429 adds the documented detail."""
        text = message or self.errors.get(status) or phrase(status)
        return Reply(
            status, error_body(status, text, RATE_LIMITED_DETAIL if status == 429 else None)
        )

    def scripted_headers(self, entry: ScriptedReply) -> dict[str, str]:
        """Retry-After (if any), and with every 429 or `rate_limit_reset` the rate-limit headers.

        ``X-RateLimit-Reset`` is now + `rate_limit_reset` seconds as a Unix timestamp.
        """
        headers = super().scripted_headers(entry)
        if entry.status == 429 or entry.rate_limit_reset is not None:
            wait = entry.rate_limit_reset
            headers["X-RateLimit-Limit"] = str(RATE_LIMIT)
            headers["X-RateLimit-Remaining"] = "0"
            reset = DEFAULT_RATE_LIMIT_RESET if wait is None else wait
            headers["X-RateLimit-Reset"] = str(math.ceil(time.time()) + reset)
        return headers

    def _status(self, request: RecordedRequest, session_id: str) -> Reply:
        now = datetime.now(UTC)
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return self.error(404, session_not_found_message(session_id))
            return Reply(200, self._status_body(session, now))

    def _list(self, request: RecordedRequest) -> Reply:
        """The SDK's list: ``only_active`` (default true), ``page`` and ``page_size``."""
        query = request.query
        only_active = query.get("only_active", "true").lower() != "false"
        try:
            page, page_size = int(query.get("page", 1)), int(query.get("page_size", 10))
        except ValueError:
            return self.error(422, "Validation error")
        if page < 1 or page_size < 1:
            return self.error(422, "Validation error")
        now = datetime.now(UTC)
        with self._lock:
            sessions = [
                session
                for session in reversed(self._sessions.values())
                if not only_active or session.status == "active"
            ]
            start = (page - 1) * page_size
            items = [self._status_body(s, now) for s in sessions[start : start + page_size]]
        body = {
            "items": items,
            "page": page,
            "page_size": page_size,
            "has_next": start + page_size < len(sessions),
            "has_previous": page > 1,
        }
        return Reply(200, body)

    def _replay(self, request: RecordedRequest, session_id: str) -> Reply:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return self.error(404, session_not_found_message(session_id))
            if session.status == "active":
                return self.error(404, replay_active_message(session_id))
            if not session.has_replay or session.closed_at is None:
                return self.error(404, replay_missing_message(session_id))
            duration = session.closed_at - session.created_at
            expires = session.presigned_at + timedelta(seconds=PRESIGN_EXPIRES_SECONDS)
            return Reply(
                200,
                {
                    "playlist_content": self._playlist(session, duration),
                    "mp4_url": session.mp4_url,
                    "expires_at": expires.isoformat(),
                    "video_start_ms": 0,
                    "video_duration_ms": duration // timedelta(milliseconds=1),
                },
            )

    def _status_body(self, session: _Session, now: datetime) -> dict[str, Any]:
        active = session.status == "active"
        closed_at = session.closed_at
        end = now if closed_at is None else closed_at
        duration = max(end - session.created_at, timedelta(0))
        traffic = 40_000 * len(session.steps)
        return {
            "session_id": session.session_id,
            "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
            "created_at": iso_time(session.created_at),
            "last_accessed_at": iso_time(max(end, session.created_at)),
            "status": session.status,
            "timeout_minutes": IDLE_TIMEOUT_MINUTES,
            "max_duration_minutes": session.max_duration_minutes,
            "closed_at": None if closed_at is None else iso_time(closed_at),
            "duration": iso_duration(duration),
            "steps": [dict(step) for step in session.steps],
            "error": session.error,
            "proxies": False,
            "browser_type": session.browser_type,
            "use_file_storage": False,
            "network_request_bytes": traffic // 8,
            "network_response_bytes": traffic,
            "user_agent": USER_AGENT,
            "viewport_width": VIEWPORT[0],
            "viewport_height": VIEWPORT[1],
            "headless": True,
            "solve_captchas": False,
            "cdp_url": self._cdp_url(session) if active else None,
            "viewer_url": self._viewer_url(session) if active else None,
            "web_bot_auth": False,
        }

    def _close(self, session: _Session, status: str, error: str | None) -> None:
        deadline = session.created_at + timedelta(minutes=session.max_duration_minutes)
        session.closed_at = max(min(datetime.now(UTC), deadline), session.created_at)
        session.status = status
        if error is not None:
            session.error = error
        self._presign(session)

    def _presign(self, session: _Session) -> None:
        """(Re-)sign the session's MP4 URL now, valid for PRESIGN_EXPIRES_SECONDS."""
        signed = datetime.now(UTC).replace(microsecond=0)
        session.presigned_at = signed
        session.mp4_url = self._presigned_url(session.session_id, "replay.mp4", signed)

    def _presigned_url(self, session_id: str, name: str, signed: datetime) -> str:
        stamp = signed.strftime("%Y%m%dT%H%M%SZ")
        key = f"sessions/{quote(session_id, safe='')}/{name}"
        signature = hmac.new(self._signing_key, f"{key}\n{stamp}".encode(), hashlib.sha256)
        credential = quote(f"ASIASIMULATORKEY/{stamp[:8]}/us-east-1/s3/aws4_request", safe="")
        return (
            f"{REPLAY_BUCKET_URL}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={credential}&X-Amz-Date={stamp}"
            f"&X-Amz-Expires={PRESIGN_EXPIRES_SECONDS}&X-Amz-SignedHeaders=host"
            f"&X-Amz-Signature={signature.hexdigest()}"
        )

    def _playlist(self, session: _Session, duration: timedelta) -> str:
        total = duration.total_seconds()
        count = max(1, math.ceil(total / HLS_SEGMENT_SECONDS))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{HLS_SEGMENT_SECONDS}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-PLAYLIST-TYPE:VOD",
        ]
        for index in range(count):
            length = min(HLS_SEGMENT_SECONDS, total - index * HLS_SEGMENT_SECONDS)
            lines.append(f"#EXTINF:{max(length, 0.0):.3f},")
            lines.append(
                self._presigned_url(
                    session.session_id, f"segment{index:05d}.ts", session.presigned_at
                )
            )
        lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _viewer_url(self, session: _Session) -> str:
        ws = f"{API_WS_URL}/sessions/{quote(session.session_id, safe='')}/debug/recording"
        return f"{CONSOLE_URL}/static/viewer?ws={ws}&jwt={session.viewer_token}"

    def _cdp_url(self, session: _Session) -> str:
        sid = quote(session.session_id, safe="")
        return f"{API_WS_URL}/sessions/{sid}/debug/cdp?token={session.viewer_token}"

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise KeyError(f"unknown session: {session_id!r}")
        return session
