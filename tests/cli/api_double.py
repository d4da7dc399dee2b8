"""A TEST DOUBLE of the sessions API, for the CLI's tests only (the real function is elsewhere).

It is a small in-memory imitation of openapi/sessions.yaml on 127.0.0.1: it stores sessions,
pages with opaque cursors, honours idempotency keys, cancels, and answers 400/404/409 in the
document's shapes. It records every request, and a test can script the next answers (a 401, a
503, a slow answer). Every exchange it has is checked against the document (tests/cli/contract).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests import openapi_contract as contract

CREATED_AT = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
FINAL = {"resolved", "failed", "timed_out", "cancelled"}
NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
DEFAULT_LIMIT = 20


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Recorded:
    """One request the double received, and what it answered."""

    method: str
    raw_path: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int = 0
    answer: Any = None
    checked: bool = True  # False: a scripted answer playing API Gateway, outside the contract

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    """An answer given instead of the double's own, once."""

    status: int
    body: Any
    delay: float = 0.0
    from_gateway: bool = False


@dataclass
class SessionsApiDouble:
    """The test double's state: sessions (oldest first), keys, and what was asked of it."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    scripted: list[Scripted] = field(default_factory=list)
    # Statuses a session moves through, one per GET of it (what the resolver would do).
    progress: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[str, tuple[Any, str]] = field(default_factory=dict)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- setting up ---------------------------------------------------------------------------

    def add(self, **fields: Any) -> dict[str, Any]:
        """Store a session (fields override the defaults); each is a second newer."""
        created = CREATED_AT + timedelta(seconds=len(self.sessions))
        session: dict[str, Any] = {
            "sessionId": str(uuid.uuid4()),
            "status": "pending",
            "helpdesk": "zendesk",
            "ticketId": "1001",
            "provider": "bugpilot",
            "action": "upload-session",
            "data": {"links": {}, "details": {}, "error": None},
            "attempts": 1,
            "noteState": None,
            "createdAt": iso(created),
            "updatedAt": iso(created),
            "closedAt": None,
        }
        session.update(fields)
        if session["status"] in FINAL and session["closedAt"] is None:
            session["closedAt"] = session["updatedAt"]
        self.sessions[session["sessionId"]] = session
        return session

    def answer_next(self, status: int, body: Any, *, delay: float = 0.0) -> None:
        """The next request gets this answer (checked against the document)."""
        self.scripted.append(Scripted(status, body, delay))

    def gateway_answers_next(self, status: int, body: Any) -> None:
        """The next request gets an API Gateway answer (e.g. IAM's 403), not the function's."""
        self.scripted.append(Scripted(status, body, from_gateway=True))

    # --- running ------------------------------------------------------------------------------

    def start(self) -> SessionsApiDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    raw_path=self.path,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                status, answer, headers = double.handle(recorded)
                raw = isinstance(answer, bytes)  # a page that is not the API's JSON
                payload = answer if raw else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if raw else "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: stopping the server waits for one.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            scripted = self.scripted.pop(0) if self.scripted else None
        if scripted is not None:
            request.status, request.answer = scripted.status, scripted.body
            request.checked = not scripted.from_gateway
            time.sleep(scripted.delay)
            return scripted.status, scripted.body, {}
        with self._lock:
            status, answer, headers = self._route(request)
            # A copy: the stored session changes later, the answer as sent must not.
            request.status, request.answer = status, copy.deepcopy(answer)
        return status, request.answer, headers

    def exchanges(self) -> Iterator[Recorded]:
        """The requests answered by the function's rules (what the contract covers)."""
        return (request for request in self.requests if request.checked)

    # --- the API's rules, as the document states them ---------------------------------------

    def _route(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        if request.path == "/sessions":
            if request.method == "POST":
                return self._create(request)
            if request.method == "GET":
                return self._list(request)
        elif request.path.startswith("/sessions/") and request.path.count("/") == 2:
            session_id = unquote(request.path.rsplit("/", 1)[1])
            session = self.sessions.get(session_id)
            if request.method in ("GET", "DELETE") and session is None:
                return 404, {"detail": f"Session {session_id} not found"}, {}
            if request.method == "GET" and session is not None:
                return self._get(session)
            if request.method == "DELETE" and session is not None:
                return self._cancel(session)
        return 405, {"detail": "Method not allowed"}, {}

    def _create(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        body = request.json
        errors = []
        if not NAME.match(str(body.get("helpdesk", ""))):
            errors.append({"loc": ["body", "helpdesk"], "msg": "must be a helpdesk name"})
        if not 1 <= len(str(body.get("ticketId", ""))) <= 64:
            errors.append({"loc": ["body", "ticketId"], "msg": "must be 1 to 64 characters"})
        provider = body.get("provider", "bugpilot")
        if provider == "bugpilot" and not (body.get("userId") or body.get("userEmail")):
            errors.append({"loc": ["body", "userId"], "msg": "userId or userEmail is required"})
        if provider != "bugpilot" and not body.get("externalSessionId"):
            errors.append({"loc": ["body", "externalSessionId"], "msg": "is required"})
        if errors:
            return 400, {"detail": errors}, {}
        key = request.headers.get("idempotency-key", "")
        if key in self.keys:
            earlier_body, session_id = self.keys[key]
            if earlier_body != body:
                return 409, {"detail": "Idempotency-Key was used with another body"}, {}
            return 200, self.sessions[session_id], {}
        # As the API answers when the source took the request at once: asked once, pending.
        session = self.add(
            helpdesk=body["helpdesk"],
            ticketId=body["ticketId"],
            provider=provider,
            action=body.get("action", "upload-session" if provider == "bugpilot" else "report"),
        )
        if key:
            self.keys[key] = (body, session["sessionId"])
        return 201, session, {"Location": f"/sessions/{session['sessionId']}"}

    def _list(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        query = {name: values[-1] for name, values in request.query.items()}
        limit = int(query.get("limit", DEFAULT_LIMIT))
        if "status" in query:
            selected = [s for s in self.sessions.values() if s["status"] == query["status"]]
            selected = [s for s in selected if s["createdAt"] >= query.get("since", "")]
            scope = f"status={query['status']}&since={query.get('since', '')}"
        else:
            selected = [
                s
                for s in self.sessions.values()
                if (s["helpdesk"], s["ticketId"]) == (query.get("helpdesk"), query.get("ticketId"))
            ]
            scope = f"ticket={query.get('helpdesk')}/{query.get('ticketId')}"
        selected.reverse()  # newest first
        start = 0
        if "cursor" in query:
            try:
                cursor_scope, offset = base64.urlsafe_b64decode(query["cursor"]).decode().split("|")
                start = int(offset)
            except ValueError:
                cursor_scope = ""
            if cursor_scope != scope:
                return 400, {"detail": [{"loc": ["query", "cursor"], "msg": "not valid"}]}, {}
        page = selected[start : start + limit]
        more = start + limit < len(selected)
        cursor = base64.urlsafe_b64encode(f"{scope}|{start + limit}".encode()).decode()
        return 200, {"sessions": page, "nextCursor": cursor if more else None}, {}

    def _get(self, session: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        upcoming = self.progress.get(session["sessionId"])
        if upcoming:
            status = upcoming.pop(0)
            updated = datetime.fromisoformat(session["updatedAt"]) + timedelta(seconds=30)
            # Checks are not captures: `attempts` counts only the times the source was asked.
            session.update(status=status, updatedAt=iso(updated))
            if status in FINAL:
                session["closedAt"] = session["updatedAt"]
                session["noteState"] = None if status == "cancelled" else "pending"
            if status == "resolved":
                session["data"]["links"] = {"report": "https://dash.bugpilot.io/report/r-1"}
            if status == "failed":
                session["data"]["error"] = "the user was not connected"
        return 200, session, {}

    def _cancel(self, session: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if session["status"] in FINAL:
            detail = f"Session {session['sessionId']} has already finished ({session['status']})"
            return 409, {"detail": detail}, {}
        updated = iso(datetime.fromisoformat(session["updatedAt"]) + timedelta(seconds=1))
        session.update(status="cancelled", updatedAt=updated, closedAt=updated, noteState=None)
        return 200, session, {}


def check_against_contract(double: SessionsApiDouble) -> None:
    """Every request the CLI sent, and every answer the double gave, obey the document."""
    for exchange in double.exchanges():
        if exchange.status not in (400, 413):  # bad input is refused on purpose
            contract.check_request(
                exchange.method, exchange.path, exchange.query, exchange.headers, exchange.body
            )
        contract.check_answer(exchange.method, exchange.path, exchange.status, exchange.answer)
