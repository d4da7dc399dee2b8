"""HTTP simulator of the LambdaTest Automation API (session details and session video)."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote

from ._server import JsonHttpServer, RecordedRequest, Reply, ScriptedReply, ScriptQueue

API_PREFIX = "/automation/api/v1"
SESSIONS_PREFIX = f"{API_PREFIX}/sessions/"
LIST_ROUTE = re.compile(rf"{API_PREFIX}/sessions")
SESSION_ROUTE = re.compile(rf"{SESSIONS_PREFIX}(?P<id>[^/]+)")
VIDEO_ROUTE = re.compile(rf"{SESSIONS_PREFIX}(?P<id>[^/]+)/video")
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


def _fail(status: int, message: str) -> Reply:
    return Reply(status, fail_body(message))


def _access_denied() -> Reply:
    return Reply(401, ACCESS_DENIED, {"WWW-Authenticate": WWW_AUTHENTICATE})


def _scripted_failure(entry: ScriptedReply) -> Reply:
    headers = entry.extra_headers()
    if entry.status == 401:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    if entry.status == 401 and entry.error is None:
        body: Any = ACCESS_DENIED
    elif entry.status == 404 and entry.error is None:
        body = fail_body(SESSION_NOT_FOUND_MESSAGE)
    else:
        body = fail_body(entry.error or _phrase(entry.status))
    return Reply(entry.status, body, headers, entry.delay)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


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
    their WebDriver session id; every other route answers 404.
    """

    def __init__(
        self,
        *,
        username: str = "lt-demo",
        access_key: str = "lt-demo-key",
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.username = username
        self.access_key = access_key
        self._list_script = ScriptQueue()
        self._sessions: dict[str, _Session] = {}
        self._build_ids: dict[str, int] = {}
        self._session_script = ScriptQueue()
        self._video_script = ScriptQueue()

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

    def script_session(
        self,
        status: int,
        error: str | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` session-detail calls with `status` (FIFO).

        `error` is the ``message`` of the ``{"message", "status": "fail"}`` body. Status 200
        without error only delays (`delay` seconds) the normal answer.
        """
        self._session_script.push(ScriptedReply(status, error, delay, retry_after), times)

    def script_video(
        self,
        status: int,
        error: str | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` video calls with `status` (FIFO), like `script_session`."""
        self._video_script.push(ScriptedReply(status, error, delay, retry_after), times)

    def script_list(
        self,
        status: int,
        error: str | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` session-list calls with `status` (FIFO)."""
        self._list_script.push(ScriptedReply(status, error, delay, retry_after), times)

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

    # -- recorded state --------------------------------------------------------------------

    @property
    def session_requests(self) -> list[RecordedRequest]:
        """Every GET /automation/api/v1/sessions/{id}, in arrival order."""
        return self.requests_to("GET", SESSION_ROUTE)

    @property
    def list_requests(self) -> list[RecordedRequest]:
        """Every GET /automation/api/v1/sessions (the list), in arrival order."""
        return self.requests_to("GET", LIST_ROUTE)

    @property
    def video_requests(self) -> list[RecordedRequest]:
        """Every GET /automation/api/v1/sessions/{id}/video, in arrival order."""
        return self.requests_to("GET", VIDEO_ROUTE)

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Route one request."""
        if request.method != "GET":
            return self.not_found()
        if LIST_ROUTE.fullmatch(request.route):
            return self._list_script.answer(lambda: self._list(request), _scripted_failure)
        if details := SESSION_ROUTE.fullmatch(request.route):
            session_id = unquote(details["id"])
            return self._session_script.answer(
                lambda: self._session_details(request, session_id), _scripted_failure
            )
        if video := VIDEO_ROUTE.fullmatch(request.route):
            session_id = unquote(video["id"])
            return self._video_script.answer(
                lambda: self._video(request, session_id), _scripted_failure
            )
        return self.not_found()

    def not_found(self) -> Reply:
        """404 for unknown routes."""
        return _fail(404, NOT_FOUND_MESSAGE)

    def internal_error(self) -> Reply:
        """500 when the simulator itself raised."""
        return _fail(500, _phrase(500))

    def _authenticated(self, request: RecordedRequest) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            credentials = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.username}:{self.access_key}".encode()
        return hmac.compare_digest(credentials, expected)

    def _session_details(self, request: RecordedRequest, session_id: str) -> Reply:
        if not self._authenticated(request):
            return _access_denied()
        query = request.query
        limit = query.get("shareExpiryLimit")
        if limit is not None and limit not in SHARE_EXPIRY_LIMITS:
            return _fail(400, INVALID_SHARE_EXPIRY_MESSAGE)
        base = self.url + SESSIONS_PREFIX + quote(session_id, safe="")
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return _fail(404, SESSION_NOT_FOUND_MESSAGE)
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
        if not self._authenticated(request):
            return _access_denied()
        try:
            limit = int(request.query.get("limit", DEFAULT_LIST_LIMIT))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            return _fail(400, "limit and offset must be whole numbers")
        if limit < 1 or offset < 0:
            return _fail(400, "limit must be positive and offset not negative")
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
        if not self._authenticated(request):
            return _access_denied()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or not session.has_video:
                return _fail(404, SESSION_NOT_FOUND_MESSAGE)
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
