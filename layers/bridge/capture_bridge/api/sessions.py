"""The sessions API's routes (`openapi/sessions.yaml`): who may call, and what each answers.

On the shared edge (`api.edge`): a hand-written route table, the checks of what callers send in
`api.sessions_input`. Every input gets a JSON answer with a `detail`; a 5xx only means
DynamoDB, the secret or a capture source cannot be used.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from capture_bridge import metrics
from capture_bridge.api.edge import HttpRequest, JsonAnswer, refusal_of, with_fresh_settings
from capture_bridge.api.sessions_input import (
    BadInput,
    FieldError,
    boolean,
    idempotency_key,
    new_session,
    only,
    session_query,
)
from capture_bridge.capture import provider_spec
from capture_bridge.errors import (
    BridgeError,
    HelpdeskNotConfigured,
    InvalidCursor,
    InvalidRequest,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.models import CaptureSession, format_time, utc_now
from capture_bridge.observability import logger, session_fields
from capture_bridge.runtime import Runtime
from capture_bridge.settings import Settings

# The API's own settings: how callers are authorised (a template parameter) and, in the secret,
# the bearer token.
SETTINGS = ("SESSIONS_API_AUTH",)
SECRET_KEYS = ("SESSIONS_API_TOKEN",)
MAX_BODY_BYTES = 64 * 1024
COLLECTION = "/sessions"
ONE_SESSION = "/sessions/{sessionId}"
# Seconds a caller waits before trying a cancel again that met a busy session.
BUSY_RETRY_AFTER = "5"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# An answer's body and headers, which the routes and the error table give.
Answer = JsonAnswer


class AuthMode(StrEnum):
    """`SESSIONS_API_AUTH`: who authorises callers (the template parameter `SessionsApiAuth`)."""

    # API Gateway's AWS_IAM authorizer (SigV4); the bearer token, if set, is an alternative.
    IAM = "iam"
    # No authorizer: the bearer token is the only proof, and without one every call is refused.
    TOKEN = "token"  # noqa: S105 - a mode's name, no secret


def _detail(status: int, detail: str, **headers: str) -> Answer:
    return Answer(status, {"detail": detail}, headers)


def _not_found(session_id: str) -> Answer:
    return _detail(404, f"Session {session_id} not found")


# -- authorisation ---------------------------------------------------------------------------------


def authorize(settings: Settings, request: HttpRequest) -> None:
    """Raise `Unauthenticated` unless the caller proved itself; see `AuthMode`.

    An IAM stack takes a call API Gateway has verified by IAM (its event says so); any other
    call, on any stack, needs the bearer token. So without a token the API is never open: not
    on a token stack, and not where no IAM authorizer stands in front (the local runner).
    """
    token = settings.secret("SESSIONS_API_TOKEN")
    mode = settings.text("SESSIONS_API_AUTH", AuthMode.TOKEN.value).lower()
    if mode == AuthMode.IAM and request.iam_verified:
        return
    if not token:
        raise SecretNotConfigured(
            "no SESSIONS_API_TOKEN is configured: every call without IAM is refused"
            if mode == AuthMode.IAM
            else "no SESSIONS_API_TOKEN is configured: every call is refused"
        )
    scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
    expected = token.encode("utf-8", "surrogatepass")
    offered = given.strip().encode("utf-8", "surrogatepass")
    # Compared in constant time, and always compared, so timing tells nothing about the token.
    matches = hmac.compare_digest(offered, expected)
    if scheme.lower() != "bearer" or not matches:
        raise Unauthenticated("a valid bearer token is required")


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


# A NamedTuple, not a dataclass, as `api.edge.Refusal`: immutable all the same, and a fraction of
# the cost at every cold start.
class Call(NamedTuple):
    """What a route works with."""

    request: HttpRequest
    runtime: Runtime
    clock: Callable[[], datetime]
    pause: Callable[[float], None]


def create_session(call: Call) -> Answer:
    body = call.request.body()
    if len(body) > MAX_BODY_BYTES:
        return _detail(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    only(call.request.query, frozenset())
    key = idempotency_key(call.request.headers)
    new = new_session(body)
    # Imported here, as in the routes below: the commands, and the intake and flow rules they
    # need, load with the first call that writes; the reads never need them (cold start).
    from capture_bridge.session_commands import create

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
    only(call.request.query, frozenset({"refresh"}))
    wanted = boolean(call.request.query, "refresh")
    session_id = call.request.path_params.get("sessionId", "")
    session = call.runtime.store.get(session_id.lower()) if _UUID.match(session_id) else None
    if session is None:
        return _not_found(session_id)
    if wanted:
        from capture_bridge.session_commands import RefreshOutcome, refresh

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
    session_id = call.request.path_params.get("sessionId", "")
    if not _UUID.match(session_id):
        return _not_found(session_id)
    from capture_bridge.session_commands import CancelOutcome, cancel

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
    request = HttpRequest.from_event(event)
    methods = ROUTES.get(request.route)
    if methods is None:
        return _detail(404, "Not Found")
    route = methods.get(request.method)
    if route is None:
        allowed = ", ".join(sorted(methods))
        return _detail(405, f"Method {request.method[:16]} not allowed", Allow=allowed)
    try:
        runtime = with_fresh_settings(runtime_factory, lambda given: _authorized(given, request))
        return route(Call(request, runtime, clock, pause))
    except BadInput as bad:
        return _bad_input(bad.errors)
    except BridgeError as exc:
        return _refused(exc)


def _authorized(runtime: Runtime, request: HttpRequest) -> Runtime:
    authorize(runtime.settings, request)
    return runtime


def _bad_input(errors: list[FieldError]) -> Answer:
    return Answer(400, {"detail": [{"loc": list(error.loc), "msg": error.msg} for error in errors]})


def _refused(exc: BridgeError) -> Answer:
    """The edge's answer to an error, in this API's shape (`detail`, a list for a 400)."""
    refusal = refusal_of(exc)
    text = refusal.text(exc)
    if isinstance(exc, SecretNotConfigured):
        logger.error("the sessions API has no token configured", extra={"reason": str(exc)})
    if isinstance(exc, Unauthenticated):
        return _detail(401, f"unauthenticated: {text}", **{"WWW-Authenticate": "Bearer"})
    if refusal.status == 400:
        where = ("query", "cursor") if isinstance(exc, InvalidCursor) else ("body",)
        if isinstance(exc, HelpdeskNotConfigured):
            where = ("body", "helpdesk")
        return _bad_input([FieldError(where, text)])
    return _detail(refusal.status, text)
