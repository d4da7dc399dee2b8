"""Tiny JSON-over-HTTP server base shared by the vendor API simulators."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self, cast
from urllib.parse import parse_qsl, unquote, urlsplit

_LOG = logging.getLogger(__name__)

# Bodies are read fully into memory; simulators never need more than this.
MAX_BODY_BYTES = 10 * 1024 * 1024


def epoch_ms() -> int:
    """Current time in epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received by a simulator."""

    method: str
    path: str  # as sent on the wire, query string included
    headers: dict[str, str]  # keys lower-cased
    body: bytes = b""

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (last value wins)."""
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class Reply:
    """What a simulator answers; `body` is JSON-serialised unless None."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class ScriptedReply:
    """A queued override for the next call of one route."""

    status: int
    error: str | None = None
    delay: float = 0.0
    retry_after: int | None = None
    # Seconds until the vendor's rate limit refills, for vendors that say so in headers.
    rate_limit_reset: int | None = None


@dataclass(frozen=True)
class Route:
    """One endpoint: `method` requests whose path (without query) fully matches `pattern`.

    The pattern's named groups reach `handler` URL-decoded, as keyword arguments. With `auth`
    the server's `authenticated` check answers 401 before the handler runs. `errors` are the
    route's own words for scripted failures (before the server's `errors`); they may name the
    pattern's groups, e.g. ``"Session {id} not found"``.
    """

    name: str
    method: str
    pattern: str
    handler: Callable[..., Reply]
    auth: bool = True
    errors: Mapping[int, str] = field(default_factory=dict)

    def match(self, request: RecordedRequest) -> dict[str, str] | None:
        """The decoded path parameters when `request` is for this route, else None."""
        found = re.fullmatch(self.pattern, request.route) if request.method == self.method else None
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


def phrase(status: int) -> str:
    """The HTTP reason phrase of `status` ("Bad Gateway"), or "HTTP <status>"."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def basic_credentials(request: RecordedRequest) -> bytes | None:
    """The decoded ``user:password`` of an HTTP Basic Authorization header, else None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def bearer_token(request: RecordedRequest) -> bytes | None:
    """The token of an ``Authorization: Bearer`` header (scheme case-insensitive), else None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" else None


def same_secret(given: bytes | str | None, expected: str) -> bool:
    """Whether a non-empty `given` equals `expected`, compared in constant time."""
    given = given.encode() if isinstance(given, str) else given
    return given is not None and given != b"" and hmac.compare_digest(given, expected.encode())


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep stop() fast: never wait for handler threads (e.g. ones sleeping on a scripted delay).
    block_on_close = False
    # socketserver's default backlog of 5 makes concurrent clients wait ~1 s for a SYN retry.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: JsonHttpServer) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) which can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    server_version = "SimulatorHTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging."""

    def _dispatch(self) -> None:
        app = cast(_HttpServer, self.server).app
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self._send(Reply(413, {"error": "PAYLOAD_TOO_LARGE"}))
            return
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            reply = app._handle(request)
        except Exception:
            _LOG.exception("%s failed on %s %s", type(app).__name__, self.command, self.path)
            reply = app.internal_error()
        if reply.delay > 0 and app._stopping.wait(reply.delay):
            return  # server is stopping; drop the connection instead of answering
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if reply.body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # client gave up (typically a deliberate client-side timeout)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class JsonHttpServer:
    """Base of the simulators: a threaded HTTP server on 127.0.0.1 answering JSON.

    A simulator declares its `routes`; each route can be scripted (`script`) and its calls read
    back (`requests`). Its vendor's error shape, words and auth check are the hooks `error`,
    `errors` and `authenticated`, so no simulator writes its own 401/404/500 or script plumbing.
    """

    # The vendor's words for each status (a code or a message), when nothing more precise is
    # given; `unknown_route` is what a path no route serves answers with its 404.
    errors: ClassVar[Mapping[int, str]] = {}
    unknown_route: ClassVar[str | None] = None

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, routes: Sequence[Route] = ()
    ) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[RecordedRequest] = []
        self._routes = {route.name: route for route in routes}
        self._scripts: dict[str, deque[ScriptedReply]] = {route.name: deque() for route in routes}

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (only while running)."""
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        server = self._server
        if server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(server.server_address[1])

    @property
    def running(self) -> bool:
        """Whether the server is currently serving."""
        return self._server is not None

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping.clear()
        server = _HttpServer((self._host, self._port), self)
        thread = threading.Thread(
            target=server.serve_forever,
            # shutdown() waits up to one poll interval; keep stop() near-instant.
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}-http",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting and recording -------------------------------------------------------------

    def script(
        self,
        name: str,
        status: int,
        error: str | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
        retry_after: int | None = None,
        rate_limit_reset: int | None = None,
    ) -> None:
        """Answer the next `times` calls of route `name` with `status` (FIFO), before any check.

        `error` is the vendor's error code or message (default: its words for `status`).
        Status 200 without error only delays the normal answer by `delay` seconds. The headers
        `retry_after` and `rate_limit_reset` (seconds) imply are sent only when given.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if min(delay, retry_after or 0, rate_limit_reset or 0) < 0:
            raise ValueError("delay, retry_after and rate_limit_reset must be >= 0")
        if not (status == 200 and error is None) and not 400 <= status <= 599:
            raise ValueError("status must be 200 (delay only, no error) or 400..599")
        entry = ScriptedReply(status, error, delay, retry_after, rate_limit_reset)
        with self._lock:
            self._scripts[self._route(name).name].extend([entry] * times)

    def requests(self, name: str | None = None) -> list[RecordedRequest]:
        """The requests received, in arrival order: all, or those for route `name`."""
        with self._lock:
            recorded = list(self._requests)
        if name is None:
            return recorded
        route = self._route(name)
        return [request for request in recorded if route.match(request) is not None]

    def _route(self, name: str) -> Route:
        try:
            return self._routes[name]
        except KeyError:
            known = ", ".join(self._routes) or "none"
            raise KeyError(
                f"{type(self).__name__} has no route {name!r} (it has {known})"
            ) from None

    def _handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
        return self.handle(request)

    # -- to override -----------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Answer one request: by the route it matches, its script first; else `not_found`."""
        for route in self._routes.values():
            params = route.match(request)
            if params is not None:
                return self._answer(route, request, params)
        return self.not_found()

    def _answer(self, route: Route, request: RecordedRequest, params: dict[str, str]) -> Reply:
        with self._lock:
            queue = self._scripts[route.name]
            entry = queue.popleft() if queue else None
        if entry is not None and entry.status >= 400:  # a failure; a 200 only delays
            own = route.errors.get(entry.status)
            reply = self.error(entry.status, entry.error or (own and own.format(**params)))
        elif route.auth and not self.authenticated(request):
            reply = self.error(401)
        else:
            reply = route.handler(request, **params)
        if entry is None:
            return reply
        headers = {**reply.headers, **self.scripted_headers(entry)}
        return replace(reply, headers=headers, delay=entry.delay)

    def authenticated(self, request: RecordedRequest) -> bool:
        """Whether `request` carries the vendor's credentials (for routes with `auth`)."""
        return True

    def error(self, status: int, message: str | None = None) -> Reply:
        """The vendor's error answer: `message`, else its `errors` word, in its error body."""
        return Reply(status, {"error": message or self.errors.get(status) or phrase(status)})

    def scripted_headers(self, entry: ScriptedReply) -> dict[str, str]:
        """Headers a scripted entry adds to the answer (Retry-After when it names one)."""
        return {} if entry.retry_after is None else {"Retry-After": str(entry.retry_after)}

    def not_found(self) -> Reply:
        """Answer for a path or method no route serves."""
        return self.error(404, self.unknown_route)

    def internal_error(self) -> Reply:
        """Answer when the simulator itself raised."""
        return self.error(500)
