"""A local stand-in for an API Gateway HTTP API that invokes handlers with payload format 2.0.

The event mirrors what API Gateway sends (the shape of ``sam local generate-event apigateway
http-api-proxy``), and the handler's answer is turned into an HTTP response by the same rules
API Gateway applies, so that handler code sees locally what it will see in AWS.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from local_runner.template import LOCAL_ACCOUNT_ID, FunctionDef, HttpRoute

logger = logging.getLogger(__name__)

#: HTTP APIs refuse request payloads above 10 MB.
MAX_BODY_BYTES = 10 * 1024 * 1024
LOCAL_API_ID = "local"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PARAM_RE = re.compile(r"^\{([^{}+]+)(\+?)\}$")

#: Invokes a function with an event and returns the handler's result (or raises).
Invoker = Callable[[FunctionDef, dict[str, Any]], Any]


@dataclass(frozen=True)
class HttpResponse:
    """What goes back to the HTTP client."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def json_response(status: int, payload: Any) -> HttpResponse:
    """A JSON response, as API Gateway builds for its own errors."""
    return HttpResponse(
        status, [("content-type", "application/json")], json.dumps(payload).encode("utf-8")
    )


def not_found() -> HttpResponse:
    """API Gateway's answer when no route matches (the method included)."""
    return json_response(404, {"message": "Not Found"})


def internal_error() -> HttpResponse:
    """API Gateway's answer when the function fails or returns something unusable."""
    return json_response(500, {"message": "Internal Server Error"})


@dataclass(frozen=True)
class RouteMatch:
    """A route chosen for a request, with the function and the path parameters."""

    route: HttpRoute
    function: FunctionDef
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    function: FunctionDef
    pattern: re.Pattern[str] | None  # None for $default, which matches every path
    parameter_names: tuple[str, ...]
    priority: tuple[int, ...]


def _compile(route: HttpRoute, function: FunctionDef) -> _CompiledRoute:
    """Turn ``/a/{b}/{c+}`` into a regular expression and a priority for matching order."""
    if route.path == "$default":
        return _CompiledRoute(route, function, None, (), (2, 0, 0, 0, route.method == "ANY"))
    parts: list[str] = []
    names: list[str] = []
    literals = greedy = 0
    segments = route.path.strip("/").split("/") if route.path.strip("/") else []
    for segment in segments:
        match = _PARAM_RE.match(segment)
        if match is None:
            parts.append(re.escape(segment))
            literals += 1
        elif match.group(2):  # {name+} takes the rest of the path, slashes included
            parts.append("(.+)")
            names.append(match.group(1))
            greedy = 1
        else:
            parts.append("([^/]+)")
            names.append(match.group(1))
    pattern = re.compile("^/" + "/".join(parts) + "$")
    # API Gateway prefers the most specific route: no greedy parameter, more literal segments,
    # more segments, and a route for the exact method over ANY.
    priority = (int(greedy), 0, -literals, -len(segments), route.method == "ANY")
    return _CompiledRoute(route, function, pattern, tuple(names), priority)


class Router:
    """Matches requests against the template's HttpApi routes."""

    def __init__(self, routes: Iterable[tuple[HttpRoute, FunctionDef]]):
        self._routes = sorted(
            (_compile(route, function) for route, function in routes), key=lambda r: r.priority
        )

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        """The best route for ``method`` and ``raw_path``, or None (API Gateway's 404)."""
        method = method.upper()
        for compiled in self._routes:
            if compiled.route.method not in ("ANY", method):
                continue
            if compiled.pattern is None:
                return RouteMatch(compiled.route, compiled.function, {})
            found = compiled.pattern.match(raw_path)
            if found:
                values = [unquote(value) for value in found.groups()]
                return RouteMatch(
                    compiled.route,
                    compiled.function,
                    dict(zip(compiled.parameter_names, values, strict=True)),
                )
        return None


def _request_time(now: datetime) -> str:
    """``12/Mar/2020:19:03:58 +0000``, independent of the locale."""
    return (
        f"{now.day:02d}/{_MONTHS[now.month - 1]}/{now.year}:"
        f"{now.hour:02d}:{now.minute:02d}:{now.second:02d} +0000"
    )


def build_event(
    *,
    match: RouteMatch,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build an API Gateway HTTP API payload (format version 2.0) for one request."""
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        # Repeated headers arrive comma-joined, as API Gateway passes them on.
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    # API Gateway moves cookies out of the headers into their own list.
    cookie_header = merged.pop("cookie", "")
    cookies = [part.strip() for part in cookie_header.split(";") if part.strip()]
    host = merged.get("host", "localhost")
    domain_name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    # What API Gateway adds in front of the function (it terminates TLS; locally it is http).
    merged.setdefault("x-forwarded-for", source_ip)
    merged.setdefault("x-forwarded-port", host.rsplit(":", 1)[1] if ":" in host else "80")
    merged.setdefault("x-forwarded-proto", "http")
    merged.setdefault(
        "x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}"
    )

    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": LOCAL_ACCOUNT_ID,
        "apiId": LOCAL_API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": match.route.route_key,
        "stage": "$default",
        "time": _request_time(now),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    is_base64 = False
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            is_base64 = True
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    event["isBase64Encoded"] = is_base64
    return event


def to_http_response(result: Any) -> HttpResponse:
    """Apply API Gateway's payload 2.0 response rules to a handler's return value.

    A dict with ``statusCode`` is taken as is; anything else is a 200 JSON answer whose body is
    the returned string or the JSON of the returned value. Raises ``ValueError`` for a result
    API Gateway would reject (it then answers 500).
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        body = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], body.encode("utf-8"))
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"statusCode is not a number: {result['statusCode']!r}") from error
    if not 100 <= status <= 599:
        raise ValueError(f"statusCode out of range: {status}")
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    raw_body = result.get("body")
    if raw_body is None:
        body_bytes = b""
    elif result.get("isBase64Encoded"):
        body_bytes = base64.b64decode(str(raw_body))
    elif isinstance(raw_body, str):
        body_bytes = raw_body.encode("utf-8")
    else:
        raise ValueError(f"body must be a string, got {type(raw_body).__name__}")
    return HttpResponse(status, headers, body_bytes)


class ApiGateway:
    """Routes requests, builds events, invokes functions and shapes the answers."""

    def __init__(
        self,
        routes: Iterable[tuple[HttpRoute, FunctionDef]],
        invoke: Invoker,
        documents: Mapping[str, bytes] | None = None,
    ):
        self.router = Router(routes)
        self._invoke = invoke
        # Static JSON served on GET before any route (the OpenAPI document); not API Gateway's.
        self._documents = dict(documents or {})

    def handle(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> HttpResponse:
        """Answer one request (``target`` is the request line's path with its query)."""
        raw_path, _, raw_query = target.partition("?")
        request_id = str(uuid.uuid4())
        match = self.router.match(method, raw_path)
        document = self._documents.get(raw_path) if method.upper() in ("GET", "HEAD") else None
        if document is not None:
            response = HttpResponse(200, [("content-type", "application/json")], document)
        elif match is None:
            response = not_found()
        else:
            event = build_event(
                match=match,
                method=method,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=headers,
                body=body,
                source_ip=source_ip,
                request_id=request_id,
            )
            try:
                response = to_http_response(self._invoke(match.function, event))
            except Exception:
                # As in AWS: the client gets a bare 500, the traceback goes to the function's log.
                logger.exception("%s failed on %s %s", match.function.logical_id, method, raw_path)
                response = internal_error()
        response.headers.append(("apigw-requestid", request_id))
        return response


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep the process alive

    def __init__(self, address: tuple[str, int], gateway: ApiGateway):
        self.gateway = gateway
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway offers

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds the API Gateway limit."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # skip trailers
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        if body is None:
            self.close_connection = True  # the unread body makes the connection unusable
            response = json_response(413, {"message": "Request Entity Too Large"})
        else:
            response = self.server.gateway.handle(
                self.command, self.path, self.headers.items(), body, self.client_address[0]
            )
        # Logged before answering, so the line is there by the time the client has its answer.
        logger.info(
            "%s %s -> %d (%.0f ms)",
            self.command,
            self.path.split("?")[0],
            response.status,
            (time.monotonic() - started) * 1000,
        )
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def __getattr__(self, name: str) -> Callable[[], None]:
        """`do_<METHOD>` for every method, TRACE and made-up ones included.

        http.server answers a method without a `do_` of its own with an HTML 501; API Gateway
        passes any method to an ANY route, and the function answers it (the sessions API with
        its JSON 405), so every method goes to `_handle` and the router decides.
        """
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No stdlib access log: ``_handle`` logs one line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        """Protocol errors (bad request lines...) go to the debug log, not to stderr."""
        logger.debug(format, *args)


class ApiGatewayServer:
    """Serves an :class:`ApiGateway` over HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, gateway: ApiGateway, *, host: str = "127.0.0.1", port: int = 3000):
        self._gateway = gateway
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self._address[0]}:{self.port}"

    def start(self) -> ApiGatewayServer:
        """Bind and serve in a daemon thread."""
        self._server = _Server(self._address, self._gateway)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="local-apigw",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
