"""HTTP simulator of the LambdaTest Automation API (session details and session video)."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from ._server import (
    JsonHttpServer,
    RecordedRequest,
    Reply,
    Route,
    basic_credentials,
    phrase,
    same_secret,
)

API_PREFIX = "/automation/api/v1"
SESSIONS_PREFIX = f"{API_PREFIX}/sessions/"
SHARE_EXPIRY_LIMITS = frozenset({"3", "7", "10", "30"})
LOG_KINDS = ("console", "network", "command", "selenium")
USER_ID = 250_563  # the account the simulated credentials belong to
FIRST_BUILD_ID = 1001
DASHBOARD_URL = "https://automation.lambdatest.com"
CDN_URL = "https://videos.lambdatest.example"  # fake media host; never fetched

# The documented 401 body (OpenAPI `AccessDenied`) is a bare JSON string, not an object.
ACCESS_DENIED = "HTTP Basic: Access denied."
WWW_AUTHENTICATE = 'Basic realm="Application"'
SESSION_NOT_FOUND_MESSAGE = "Either resource not found or already deleted"
SESSION_FOUND_MESSAGE = "Retrieve session was successful"
LIST_FOUND_MESSAGE = "Retrieve sessions list was successful"
DEFAULT_LIST_LIMIT = 10
VIDEO_FOUND_MESSAGE = "Retrieve video url was successful"
INVALID_SHARE_EXPIRY_MESSAGE = "Invalid shareExpiryLimit: allowed values are 3, 7, 10 and 30"
NOT_FOUND_MESSAGE = "Not Found"

_TEST_ID_ALPHABET = string.ascii_uppercase + string.digits


def fail_body(message: str) -> dict[str, Any]:
    """The LambdaTest error envelope: ``{"message": ..., "status": "fail"}``."""
    return {"message": message, "status": "fail"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _new_test_id() -> str:
    groups = ("".join(secrets.choice(_TEST_ID_ALPHABET) for _ in range(5)) for _ in range(4))
    return "-".join(groups)


@dataclass
class _Session:
    session_id: str
    test_id: str
    build_id: int
    build_name: str
    name: str
    status: str
    remark: str
    browser: str
    browser_version: str
    platform: str
    duration: int
    shareable: bool
    has_video: bool
    create_timestamp: str
    start_timestamp: str
    end_timestamp: str | None = None
    video_token: str = field(default_factory=lambda: secrets.token_hex(16))
    share_ids: dict[str, str] = field(default_factory=dict)


class LambdaTestSimulator(JsonHttpServer):
    """LambdaTest Automation API over real HTTP, with scriptable failures and recorded calls.

    Serves ``GET /automation/api/v1/sessions/{session_id}`` (optional ``shareExpiryLimit``)
    and ``GET /automation/api/v1/sessions/{session_id}/video``, both behind HTTP Basic
    ``username:access_key``. Sessions exist only once `add_session` registers them, keyed by
    their WebDriver session id; every other route answers 404. Routes: "session", "video" and
    "list" (``GET /automation/api/v1/sessions``).
    """

    provider = "lambdatest"
    errors: ClassVar[Mapping[int, str]] = {
        401: ACCESS_DENIED,
        404: SESSION_NOT_FOUND_MESSAGE,
    }
    unknown_route = NOT_FOUND_MESSAGE

    def __init__(
        self,
        *,
        username: str = "lt-demo",
        access_key: str = "lt-demo-key",
        port: int = 0,
    ) -> None:
        session = rf"{SESSIONS_PREFIX}(?P<session_id>[^/]+)"
        super().__init__(
            port=port,
            routes=[
                Route("session", "GET", session, self._session_details),
                Route("video", "GET", rf"{session}/video", self._video),
                Route("list", "GET", rf"{API_PREFIX}/sessions", self._list),
            ],
        )
        self.username = username
        self.access_key = access_key
        self._sessions: dict[str, _Session] = {}
        self._build_ids: dict[str, int] = {}

    def bridge_settings(self) -> dict[str, str]:
        """The bridge's LambdaTest settings, pointed at this simulator."""
        return {
            "LAMBDATEST_API_URL": self.url,
            "LAMBDATEST_USERNAME": self.username,
            "LAMBDATEST_ACCESS_KEY": self.access_key,
        }

    # -- test controls ---------------------------------------------------------------------

    def add_session(
        self,
        session_id: str,
        *,
        status: str = "running",
        name: str = "checkout flow",
        build_name: str = "nightly-build",
        remark: str = "",
        browser: str = "chrome",
        browser_version: str = "120.0",
        platform: str = "win10",
        duration: int = 0,
        shareable: bool = True,
        has_video: bool = True,
    ) -> None:
        """Register a session answering as `status_ind` = `status` (any string is accepted).

        `shareable` decides whether ``shareExpiryLimit`` yields a ``public_url``; `has_video`
        whether the video endpoint answers 200 (else 404).
        """
        if not session_id:
            raise ValueError("session_id must not be empty")
        now = _now()
        with self._lock:
            if session_id in self._sessions:
                raise ValueError(f"session already exists: {session_id!r}")
            build_id = self._build_ids.setdefault(build_name, FIRST_BUILD_ID + len(self._build_ids))
            self._sessions[session_id] = _Session(
                session_id=session_id,
                test_id=_new_test_id(),
                build_id=build_id,
                build_name=build_name,
                name=name,
                status=status,
                remark=remark,
                browser=browser,
                browser_version=browser_version,
                platform=platform,
                duration=duration,
                shareable=shareable,
                has_video=has_video,
                create_timestamp=now,
                start_timestamp=now,
            )

    def finish_session(
        self,
        session_id: str,
        *,
        status: str = "failed",
        remark: str = "Assertion failed: cart total",
        duration: int = 95,
    ) -> None:
        """End `session_id` now: set its final status, remark, duration and end_timestamp."""
        with self._lock:
            session = self._session(session_id)
            session.status, session.remark, session.duration = status, remark, duration
            session.end_timestamp = _now()

    def video_url(self, session_id: str) -> str:
        """The mp4 URL the video endpoint returns for `session_id`."""
        with self._lock:
            return f"{CDN_URL}/{self._session(session_id).test_id}/video.mp4"

    def view_video_url(self, session_id: str) -> str:
        """The ``view_video_url`` the video endpoint returns for `session_id`."""
        with self._lock:
            session = self._session(session_id)
            return self._view_video_url(session)

    def test_id(self, session_id: str) -> str:
        """The dashboard test id (``XXXXX-XXXXX-XXXXX-XXXXX``) of `session_id`."""
        with self._lock:
            return self._session(session_id).test_id

    def session_path(self, session_id: str) -> str:
        """The path of the session-detail endpoint of `session_id`."""
        return f"{SESSIONS_PREFIX}{quote(session_id, safe='')}"

    # -- HTTP ------------------------------------------------------------------------------

    def authenticated(self, request: RecordedRequest) -> bool:
        """HTTP Basic ``username:access_key``."""
        return same_secret(basic_credentials(request), f"{self.username}:{self.access_key}")

    def error(self, status: int, message: str | None = None) -> Reply:
        """``{"message", "status": "fail"}``; the 401 is the bare documented string."""
        text = message or self.errors.get(status) or phrase(status)
        if status != 401:
            return Reply(status, fail_body(text))
        body = text if text == ACCESS_DENIED else fail_body(text)
        return Reply(401, body, {"WWW-Authenticate": WWW_AUTHENTICATE})

    def _session_details(self, request: RecordedRequest, session_id: str) -> Reply:
        query = request.query
        limit = query.get("shareExpiryLimit")
        if limit is not None and limit not in SHARE_EXPIRY_LIMITS:
            return self.error(400, INVALID_SHARE_EXPIRY_MESSAGE)
        base = self.url + SESSIONS_PREFIX + quote(session_id, safe="")
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return self.error(404, SESSION_NOT_FOUND_MESSAGE)
            data: dict[str, Any] = {
                "test_id": session.test_id,
                "build_id": session.build_id,
                "name": session.name,
                "user_id": USER_ID,
                "username": self.username,
                "duration": session.duration,
                "platform": session.platform,
                "browser": session.browser,
                "browser_version": session.browser_version,
                "device": "",
                "status_ind": session.status,
                "session_id": session.session_id,
                "build_name": session.build_name,
                "create_timestamp": session.create_timestamp,
                "start_timestamp": session.start_timestamp,
                "end_timestamp": session.end_timestamp,
                "remark": session.remark,
                **{f"{kind}_logs_url": f"{base}/log/{kind}" for kind in LOG_KINDS},
                "screenshot_url": f"{CDN_URL}/{session.test_id}/screenshots.zip",
                "video_url": (
                    f"{CDN_URL}/{session.test_id}/video.mp4" if session.has_video else ""
                ),
                "customData": {},
            }
            if limit is not None and session.shareable:
                share_id = session.share_ids.setdefault(limit, secrets.token_hex(16))
                data["public_url"] = f"{DASHBOARD_URL}/share?shareId={share_id}"
        return Reply(200, {"data": data, "message": SESSION_FOUND_MESSAGE, "status": "success"})

    def _list(self, request: RecordedRequest) -> Reply:
        """The session list, newest first, paged by ``limit`` and ``offset``."""
        try:
            limit = int(request.query.get("limit", DEFAULT_LIST_LIMIT))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            return self.error(400, "limit and offset must be whole numbers")
        if limit < 1 or offset < 0:
            return self.error(400, "limit must be positive and offset not negative")
        with self._lock:
            sessions = list(reversed(self._sessions.values()))
            page = [
                {
                    "session_id": session.session_id,
                    "test_id": session.test_id,
                    "build_id": session.build_id,
                    "name": session.name,
                    "status_ind": session.status,
                    "create_timestamp": session.create_timestamp,
                }
                for session in sessions[offset : offset + limit]
            ]
        meta = {"result_set": {"count": len(page), "limit": limit, "offset": offset}}
        body = {
            "Meta": {**meta, "total": len(sessions)},
            "data": page,
            "message": LIST_FOUND_MESSAGE,
            "status": "success",
        }
        return Reply(200, body)

    def _video(self, request: RecordedRequest, session_id: str) -> Reply:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or not session.has_video:
                return self.error(404, SESSION_NOT_FOUND_MESSAGE)
            body = {
                "message": VIDEO_FOUND_MESSAGE,
                "status": "success",
                "url": f"{CDN_URL}/{session.test_id}/video.mp4",
                "view_video_url": self._view_video_url(session),
            }
        return Reply(200, body)

    def _view_video_url(self, session: _Session) -> str:
        return f"{DASHBOARD_URL}/public/video?testID={session.test_id}&token={session.video_token}"

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise KeyError(f"unknown session: {session_id!r}")
        return session
