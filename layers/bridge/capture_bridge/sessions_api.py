"""The sessions API over HTTP (`openapi/sessions.yaml`): routes, validation, auth and answers.

A hand-written route table and validation: Powertools' event handler and validation would cost
the cold start 1.4-1.8x `import boto3, requests`, against the 1.25x every handler keeps to
(bench/import_cost.py). Every input gets a JSON answer with a `detail`; a 5xx only means
DynamoDB, the secret or a capture source cannot be used.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from capture_bridge import metrics
from capture_bridge.capture import (
    DEFAULT_PROVIDER,
    ApiField,
    ApiTarget,
    provider_spec,
    provider_specs,
    supported_providers,
)
from capture_bridge.errors import (
    ConfigurationError,
    IdempotencyConflict,
    InvalidCursor,
    InvalidRequest,
    SecretNotConfigured,
    StoreUnavailable,
    Unauthenticated,
    UnknownProvider,
)
from capture_bridge.helpdesks import supported_helpdesks
from capture_bridge.models import CaptureSession, SessionStatus, format_time, ticket_key, utc_now
from capture_bridge.observability import logger, session_fields
from capture_bridge.runtime import Runtime, build_runtime, get_runtime
from capture_bridge.session_store import SessionIndex, SessionQuery
from capture_bridge.sessions import (
    CancelOutcome,
    NewSession,
    RefreshOutcome,
    cancel,
    create,
    refresh,
)
from capture_bridge.settings import Settings, reread_settings

# The API's own settings: how callers are authorised (a template parameter) and, in the secret,
# the bearer token.
SETTINGS = ("SESSIONS_API_AUTH",)
SECRET_KEYS = ("SESSIONS_API_TOKEN",)
MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 2048
MAX_IDEMPOTENCY_KEY = 255
MAX_TICKET_ID = 64
COLLECTION = "/sessions"
ONE_SESSION = "/sessions/{sessionId}"
# Seconds a caller waits before trying a cancel again that met a busy session.
BUSY_RETRY_AFTER = "5"

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_STATUSES = tuple(status.value for status in SessionStatus)
# The fields of every create body; the rest are the provider's own (`ProviderSpec.api_fields`).
_COMMON_FIELDS = ("helpdesk", "ticketId", "provider")


class AuthMode(StrEnum):
    """`SESSIONS_API_AUTH`: who authorises callers (the template parameter `SessionsApiAuth`)."""

    # API Gateway's AWS_IAM authorizer (SigV4); the bearer token, if set, is an alternative.
    IAM = "iam"
    # No authorizer: the bearer token is the only proof, and without one every call is refused.
    TOKEN = "token"  # noqa: S105 - a mode's name, no secret


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str


class BadInput(Exception):
    """Field-level 400."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(error.msg for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, JSON body and extra headers; `session` is for the log line."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    session: CaptureSession | None = None

    def as_response(self) -> dict[str, Any]:
        """The HTTP API payload 2.0 response."""
        return {
            "statusCode": self.status,
            "headers": {"Content-Type": "application/json", **self.headers},
            "body": json.dumps(self.body),
        }


def _detail(status: int, detail: str, **headers: str) -> Answer:
    return Answer(status, {"detail": detail}, headers)


def _not_found(session_id: str) -> Answer:
    return _detail(404, f"Session {session_id} not found")


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP API event the routes read."""

    method: str
    route: str
    path: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    # None when API Gateway's base64 could not be decoded; only POST reads a body.
    body: bytes | None
    # API Gateway verified the caller's SigV4 signature (the route's AWS_IAM authorizer).
    iam_verified: bool


def _request(event: Mapping[str, Any]) -> Request:
    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    route_key = str(event.get("routeKey") or "")
    route = route_key.split(" ", 1)[1] if " " in route_key else str(event.get("rawPath") or "")
    raw = event.get("body")
    body: bytes | None = b""
    if isinstance(raw, str) and raw and event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            body = None
    elif isinstance(raw, str):
        # Kept byte for byte; a lone surrogate then fails JSON decoding as invalid UTF-8.
        body = raw.encode("utf-8", "surrogatepass")
    authorizer = context.get("authorizer") or {}
    return Request(
        method=str(http.get("method") or "").upper(),
        route=route,
        path={str(k): str(v) for k, v in (event.get("pathParameters") or {}).items()},
        query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
        headers={str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()},
        body=body,
        iam_verified=isinstance(authorizer, dict) and bool(authorizer.get("iam")),
    )


# -- authorisation ---------------------------------------------------------------------------------


def authorize(settings: Settings, request: Request) -> None:
    """Raise `Unauthenticated` unless the caller proved itself; see `AuthMode`.

    A configured token is always enforced (so the local runner and tests exercise it), except
    for a call API Gateway has verified by IAM: an IAM stack keeps working if a token lingers
    in its secret. Without a token, an IAM stack relies on its authorizer and a token stack
    refuses everything: it is never open.
    """
    token = settings.secret("SESSIONS_API_TOKEN")
    mode = settings.text("SESSIONS_API_AUTH", AuthMode.TOKEN.value).lower()
    if mode == AuthMode.IAM and (request.iam_verified or not token):
        return
    if not token:
        raise SecretNotConfigured("no SESSIONS_API_TOKEN is configured: every call is refused")
    scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
    expected = token.encode("utf-8", "surrogatepass")
    offered = given.strip().encode("utf-8", "surrogatepass")
    # Compared in constant time, and always compared, so timing tells nothing about the token.
    matches = hmac.compare_digest(offered, expected)
    if scheme.lower() != "bearer" or not matches:
        raise Unauthenticated("a valid bearer token is required")


# -- validation ------------------------------------------------------------------------------------


class Fields:
    """Reads the fields of one part of a request (`body`, `query`), collecting every problem."""

    def __init__(self, values: Mapping[str, Any], where: str) -> None:
        self.values = values
        self.where = where
        self.errors: list[FieldError] = []

    def error(self, name: str, msg: str) -> None:
        self.errors.append(FieldError((self.where, name[:64]), msg))

    def text(
        self,
        name: str,
        *,
        limit: int,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        """A string field, checked; on a problem it is recorded and "" returned."""
        value = self.values.get(name)
        if value is None:
            if required:
                self.error(name, "field required")
            return ""
        if not isinstance(value, str):
            self.error(name, "must be a string")
            return ""
        problem = None
        if not value.strip() or len(value) > limit:
            problem = f"must be 1 to {limit} characters"
        elif not value.isprintable():
            # Lone surrogates (which DynamoDB refuses) and control characters end here.
            problem = "must be printable text"
        elif pattern is not None and not pattern.match(value):
            problem = f"must match {pattern.pattern}"
        if problem:
            self.error(name, problem)
            return ""
        return value

    def check(self) -> None:
        if self.errors:
            raise BadInput(self.errors)


def new_session(body: bytes) -> NewSession:
    """The POST body as a `NewSession`; `BadInput` listing every problem."""
    try:
        payload = json.loads(body) if body else None
    except (ValueError, RecursionError):
        raise BadInput([FieldError(("body",), "body must be a JSON object")]) from None
    if not isinstance(payload, dict):
        raise BadInput([FieldError(("body",), "body must be a JSON object")])
    fields = Fields(payload, "body")
    helpdesk = fields.text("helpdesk", required=True, limit=32, pattern=_NAME)
    if helpdesk and helpdesk not in supported_helpdesks():
        fields.error("helpdesk", f"unknown helpdesk; supported: {', '.join(supported_helpdesks())}")
    ticket_id = fields.text("ticketId", required=True, limit=MAX_TICKET_ID)
    provider = fields.text("provider", limit=32, pattern=_NAME) or DEFAULT_PROVIDER
    if provider not in supported_providers():
        fields.error("provider", f"unknown provider; supported: {', '.join(supported_providers())}")
        fields.check()
    spec = provider_spec(provider)
    own = {field.name for field in spec.api_fields}
    for name in payload:
        if name in _COMMON_FIELDS or name in own:
            continue
        known = name in _provider_field_names()
        fields.error(str(name), f"not used by provider {provider}" if known else "unknown field")
    values = dict.fromkeys(ApiTarget, "")
    for api_field in spec.api_fields:
        # The first field given wins a target (Bugpilot: the external id before the email).
        value = _read_api_field(fields, api_field)
        values[api_field.target] = values[api_field.target] or value
    if spec.api_one_of and not any(name in payload for name in spec.api_one_of):
        fields.error(spec.api_one_of[0], f"{' or '.join(spec.api_one_of)} is required")
    fields.check()
    return NewSession(
        helpdesk,
        ticket_id,
        provider,
        requester=values[ApiTarget.REQUESTER],
        action=values[ApiTarget.ACTION],
        description=values[ApiTarget.DESCRIPTION],
        external_session_id=values[ApiTarget.EXTERNAL_SESSION_ID],
    )


def _provider_field_names() -> frozenset[str]:
    """Every field some provider reads: another provider's is "not used", not "unknown"."""
    return frozenset(field.name for spec in provider_specs() for field in spec.api_fields)


def _read_api_field(fields: Fields, api_field: ApiField) -> str:
    """One provider field of the create body, checked as its spec says."""
    value = fields.text(
        api_field.name,
        limit=api_field.max_length,
        required=api_field.required,
        pattern=api_field.pattern,
    )
    if value and api_field.choices and value not in api_field.choices:
        fields.error(api_field.name, f"must be one of {', '.join(api_field.choices)}")
    return value


def _only(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(name for name in query if name not in allowed)
    if unknown:
        raise BadInput([FieldError(("query", name[:64]), "unknown parameter") for name in unknown])


def _boolean(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name, "false").strip().lower()
    if raw not in ("true", "false"):
        raise BadInput([FieldError(("query", name), "must be true or false")])
    return raw == "true"


def _since(raw: str, fields: Fields) -> datetime | None:
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        fields.error("since", "must be an ISO 8601 date-time with a time zone")
        return None
    moment = moment.astimezone(UTC)
    # Stored times are whole seconds: a floor inside a second starts at the next one.
    whole = moment.replace(microsecond=0)
    return whole + timedelta(seconds=1) if moment.microsecond else whole


_LIST_PARAMETERS = frozenset({"helpdesk", "ticketId", "status", "since", "limit", "cursor"})


def session_query(query: Mapping[str, str]) -> tuple[SessionQuery, int, str | None]:
    """The listing, page size and cursor a GET /sessions asks for; `BadInput` otherwise."""
    _only(query, _LIST_PARAMETERS)
    fields = Fields(query, "query")
    helpdesk = fields.text("helpdesk", limit=32, pattern=_NAME)
    ticket_id = fields.text("ticketId", limit=MAX_TICKET_ID)
    status = fields.text("status", limit=32)
    if status and status not in _STATUSES:
        fields.error("status", f"must be one of {', '.join(_STATUSES)}")
    by_ticket = "helpdesk" in query or "ticketId" in query
    if by_ticket == ("status" in query):
        fields.errors.append(FieldError(("query",), "give either helpdesk and ticketId, or status"))
    elif by_ticket:
        for name in ("helpdesk", "ticketId"):
            if name not in query:
                fields.error(name, "field required")
    limit = DEFAULT_LIMIT
    if "limit" in query:
        digits = query["limit"].strip()
        limit = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 3 else 0
        if not 1 <= limit <= MAX_LIMIT:
            fields.error("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    cursor = query.get("cursor")
    if cursor is not None and not 1 <= len(cursor) <= MAX_CURSOR_LENGTH:
        fields.error("cursor", "is not a valid cursor")
    since = _since(query["since"], fields) if "since" in query else None
    fields.check()
    if by_ticket:
        listing = SessionQuery(SessionIndex.BY_TICKET, ticket_key(helpdesk, ticket_id), since)
    else:
        listing = SessionQuery(SessionIndex.BY_STATUS, status, since)
    return listing, limit, cursor


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise BadInput(
            [FieldError(("header", "Idempotency-Key"), "must be 1 to 255 printable characters")]
        )
    return key


# -- the resource ----------------------------------------------------------------------------------


def session_json(session: CaptureSession) -> dict[str, Any]:
    """The `Session` of openapi/sessions.yaml."""
    return {
        "sessionId": session.session_id,
        "status": session.status.value,
        "helpdesk": session.helpdesk,
        "ticketId": session.ticket_id,
        "provider": session.provider,
        "action": session.action,
        "data": {
            "links": dict(session.links),
            "details": dict(session.details),
            "error": session.error,
        },
        "attempts": session.attempts,
        "noteState": session.note_state.value if session.note_state else None,
        "createdAt": format_time(session.created_at),
        "updatedAt": format_time(session.updated_at),
        "closedAt": format_time(session.closed_at) if session.closed_at else None,
    }


def _session_answer(status: int, session: CaptureSession, **headers: str) -> Answer:
    return Answer(status, session_json(session), headers, session)


# -- routes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """What a route works with."""

    request: Request
    runtime: Runtime
    clock: Callable[[], datetime]
    pause: Callable[[float], None]


def create_session(call: Call) -> Answer:
    body = call.request.body
    if body is None:
        raise BadInput([FieldError(("body",), "body is not valid base64")])
    if len(body) > MAX_BODY_BYTES:
        return _detail(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    _only(call.request.query, frozenset())
    key = idempotency_key(call.request.headers)
    new = new_session(body)
    try:
        opened = create(call.runtime, new, idempotency_key=key, clock=call.clock)
    except InvalidRequest as exc:
        # A provider's own check of the request (the form of an external session id), said
        # with the API's name for the field the provider knows by its webhook name.
        named = provider_spec(new.provider).named
        if named is None:
            raise BadInput([FieldError(("body",), str(exc))]) from None
        message = str(exc).replace(named.field, "externalSessionId")
        raise BadInput([FieldError(("body", "externalSessionId"), message)]) from None
    session = opened.session
    if opened.created:
        location = f"{COLLECTION}/{session.session_id}"
        return _session_answer(201, session, Location=location)
    return _session_answer(200, session)


def show_session(call: Call) -> Answer:
    _only(call.request.query, frozenset({"refresh"}))
    wanted = _boolean(call.request.query, "refresh")
    session_id = call.request.path.get("sessionId", "")
    session = call.runtime.store.get(session_id.lower()) if _UUID.match(session_id) else None
    if session is None:
        return _not_found(session_id)
    if wanted:
        result = refresh(call.runtime, session, call.clock)
        if result.outcome is RefreshOutcome.UNAVAILABLE:
            return _detail(503, "the capture source could not give fresh links; try again later")
        session = result.session
    return _session_answer(200, session)


def list_sessions(call: Call) -> Answer:
    listing, limit, cursor = session_query(call.request.query)
    page = call.runtime.store.list_sessions(listing, limit=limit, cursor=cursor)
    return Answer(
        200, {"sessions": [session_json(s) for s in page.sessions], "nextCursor": page.cursor}
    )


def cancel_session(call: Call) -> Answer:
    # The document gives DELETE no 400: its query, if any, is not read.
    session_id = call.request.path.get("sessionId", "")
    if not _UUID.match(session_id):
        return _not_found(session_id)
    result = cancel(call.runtime.store, session_id.lower(), call.clock, call.pause)
    if result.outcome is CancelOutcome.NOT_FOUND or result.session is None:
        return _not_found(session_id)
    session = result.session
    if result.outcome is CancelOutcome.CANCELLED:
        return _session_answer(200, session)
    if result.outcome is CancelOutcome.FINISHED:
        return Answer(
            409, {"detail": f"Session {session_id} has already finished ({session.status})"}
        )
    # Busy: the resolver (or the call that created it) is working on it right now.
    return _detail(
        409,
        f"Session {session_id} is being worked on (its capture is starting or being checked, "
        "or its note posted); try again in a few seconds",
        **{"Retry-After": BUSY_RETRY_AFTER},
    )


Route = Callable[[Call], Answer]
ROUTES: dict[str, dict[str, Route]] = {
    COLLECTION: {"POST": create_session, "GET": list_sessions},
    ONE_SESSION: {"GET": show_session, "DELETE": cancel_session},
}


def handle(
    event: Mapping[str, Any],
    *,
    runtime_factory: Callable[[], Runtime] | None = None,
    clock: Callable[[], datetime] = utc_now,
    pause: Callable[[float], None] = time.sleep,
) -> Answer:
    """Answer one call; every domain error is mapped to its HTTP answer here."""
    try:
        answer = _answer(event, runtime_factory, clock, pause)
    finally:
        metrics.flush()
    where = {"status_code": answer.status}
    extra = session_fields(answer.session, **where) if answer.session else where
    logger.info("sessions API answered", extra=extra)
    return answer


def _answer(
    event: Mapping[str, Any],
    runtime_factory: Callable[[], Runtime] | None,
    clock: Callable[[], datetime],
    pause: Callable[[float], None],
) -> Answer:
    try:
        request = _request(event)
        methods = ROUTES.get(request.route)
        if methods is None:
            return _detail(404, "Not Found")
        route = methods.get(request.method)
        if route is None:
            allowed = ", ".join(sorted(methods))
            return _detail(405, f"Method {request.method[:16]} not allowed", Allow=allowed)
        runtime = (runtime_factory or get_runtime)()
        try:
            authorize(runtime.settings, request)
        except Unauthenticated:
            # A token just rotated in the secret: read it once more, at most once per floor.
            fresh = reread_settings() if runtime_factory is None else None
            if fresh is None:
                raise
            runtime = build_runtime(fresh)
            authorize(runtime.settings, request)
        return route(Call(request, runtime, clock, pause))
    except BadInput as bad:
        detail = [{"loc": list(error.loc), "msg": error.msg} for error in bad.errors]
        return Answer(400, {"detail": detail})
    except Unauthenticated as exc:
        if isinstance(exc, SecretNotConfigured):
            logger.error("the sessions API has no token configured", extra={"reason": str(exc)})
        return _detail(401, f"unauthenticated: {exc}", **{"WWW-Authenticate": "Bearer"})
    except InvalidCursor as exc:
        return Answer(400, {"detail": [{"loc": ["query", "cursor"], "msg": str(exc)}]})
    except IdempotencyConflict:
        return _detail(409, "this Idempotency-Key was used with another body")
    except (InvalidRequest, UnknownProvider) as exc:
        return Answer(400, {"detail": [{"loc": ["body"], "msg": str(exc)}]})
    except ConfigurationError as exc:
        logger.error("the bridge is misconfigured", extra={"reason": str(exc)})
        return _detail(503, "the capture bridge is not configured correctly; try again later")
    except StoreUnavailable:
        logger.exception("the session store is unavailable")
        return _detail(503, "the session store is unavailable; try again later")
