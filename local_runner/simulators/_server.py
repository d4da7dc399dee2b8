"""Tiny JSON-over-HTTP server base shared by the vendor API simulators."""

from __future__ import annotations

import json
import logging
import re
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qsl, urlsplit

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
    """A queued override for the next call of one endpoint."""

    status: int
    error: str | None = None
    delay: float = 0.0
    retry_after: int | None = None

    @property
    def is_failure(self) -> bool:
        """True when this entry replaces the answer instead of only delaying it."""
        return self.status >= 400

    def extra_headers(self) -> dict[str, str]:
        """Headers the scripted entry adds to the answer."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(self.retry_after)}

    def applied_to(self, reply: Reply) -> Reply:
        """The normal answer, delayed and with this entry's headers added."""
        return replace(reply, headers={**reply.headers, **self.extra_headers()}, delay=self.delay)


class ScriptQueue:
    """Thread-safe FIFO of scripted replies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[ScriptedReply] = deque()

    def push(self, entry: ScriptedReply, times: int = 1) -> None:
        """Queue `entry` for the next `times` calls."""
        if times < 1:
            raise ValueError("times must be >= 1")
        if entry.delay < 0:
            raise ValueError("delay must be >= 0")
        if not (entry.status == 200 and entry.error is None) and not 400 <= entry.status <= 599:
            raise ValueError("status must be 200 (delay only, no error) or 400..599")
        with self._lock:
            self._entries.extend([entry] * times)

    def pop(self) -> ScriptedReply | None:
        """Take the oldest entry, if any."""
        with self._lock:
            return self._entries.popleft() if self._entries else None

    def answer(
        self, normal: Callable[[], Reply], failure: Callable[[ScriptedReply], Reply]
    ) -> Reply:
        """The next scripted failure if one is queued, else the normal answer (maybe delayed)."""
        entry = self.pop()
        if entry is None:
            return normal()
        if entry.is_failure:
            return failure(entry)
        return entry.applied_to(normal())

    def clear(self) -> None:
        """Drop every queued entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


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

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

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


class JsonHttpServer:
    """Base of the simulators: a threaded HTTP server on 127.0.0.1 answering JSON."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[RecordedRequest] = []

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (only while running)."""
        server = self._server
        if server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return f"http://{self._host}:{server.server_address[1]}"

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

    # -- recording -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, on any path, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, route: re.Pattern[str]) -> list[RecordedRequest]:
        """The recorded requests with `method` whose path (without query) matches `route`."""
        return [r for r in self.requests if r.method == method and route.fullmatch(r.route)]

    def _handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
        return self.handle(request)

    # -- to override -----------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        """Answer one request; subclasses route here."""
        return self.not_found()

    def not_found(self) -> Reply:
        """Answer for an unknown route."""
        return Reply(404, {"error": "NOT_FOUND"})

    def internal_error(self) -> Reply:
        """Answer when the simulator itself raised."""
        return Reply(500, {"error": "INTERNAL_ERROR"})
