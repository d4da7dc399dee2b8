"""The HTTP edge both functions share: the event read, errors mapped to answers, fresh settings.

Hand-written rather than Powertools' event handler, whose import would cost each cold start
1.4-1.8x `import boto3, requests` (`../shared/reference/style.md`; `make bench`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from capture_bridge.errors import (
    BridgeError,
    ConfigurationError,
    HelpdeskNotConfigured,
    IdempotencyConflict,
    InvalidRequest,
    NothingToCapture,
    PayloadTooLarge,
    StoreUnavailable,
    Unauthenticated,
    UnknownHelpdesk,
    UnknownProvider,
)
from capture_bridge.helpdesks import Headers
from capture_bridge.observability import logger
from capture_bridge.runtime import Runtime, build_runtime, get_runtime
from capture_bridge.settings import reread_settings

if TYPE_CHECKING:
    from capture_bridge.models import CaptureSession

T = TypeVar("T")


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an API Gateway HTTP API (payload 2.0) event the bridge reads."""

    method: str
    # The path as sent, and the route it matched (`/sessions/{sessionId}`; the path when none).
    path: str
    route: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    # The raw query string, without the `?`, and its parameters (API Gateway joins repeats).
    query_string: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Headers = field(default_factory=Headers)
    raw_body: str | None = None
    is_base64: bool = False
    # API Gateway verified the caller's SigV4 signature (a route with the AWS_IAM authorizer).
    iam_verified: bool = False

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> HttpRequest:
        context = event.get("requestContext") or {}
        http = context.get("http") or {}
        route_key = str(event.get("routeKey") or "")
        path = str(event.get("rawPath") or http.get("path") or "")
        authorizer = context.get("authorizer") or {}
        raw = event.get("body")
        return cls(
            method=str(http.get("method") or "").upper(),
            path=path,
            route=route_key.split(" ", 1)[1] if " " in route_key else path,
            path_params=_strings(event.get("pathParameters")),
            query_string=str(event.get("rawQueryString") or ""),
            query=_strings(event.get("queryStringParameters")),
            headers=Headers(_strings(event.get("headers"))),
            raw_body=raw if isinstance(raw, str) else None,
            is_base64=bool(event.get("isBase64Encoded")),
            iam_verified=isinstance(authorizer, dict) and bool(authorizer.get("iam")),
        )

    def body(self) -> bytes:
        """The exact bytes the caller sent (and signed), undoing API Gateway's base64.

        Raises `InvalidRequest` for base64 that does not decode, or text no bytes can carry.
        """
        if not self.raw_body:
            return b""
        if self.is_base64:
            try:
                return base64.b64decode(self.raw_body, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest("body is not valid base64") from None
        try:
            return self.raw_body.encode()
        except UnicodeEncodeError:
            raise InvalidRequest("body is not valid UTF-8") from None


def _strings(values: object) -> dict[str, str]:
    if not isinstance(values, Mapping):
        return {}
    return {str(name): str(value) for name, value in values.items()}


@dataclass(frozen=True)
class JsonAnswer:
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


# A NamedTuple, not a dataclass: immutable all the same, and a fifth of the import cost (every
# handler builds these types at its cold start; tests/unit/test_architecture.py lists them).
class Refusal(NamedTuple):
    """What an error comes to over HTTP: a status and what the caller is told."""

    status: int
    # None: the error's own text, which names what was wrong.
    message: str | None = None

    def text(self, exc: BaseException) -> str:
        return str(exc) if self.message is None else self.message


# Every error the bridge raises on purpose, by the answer it gets; the first row that matches
# wins (a subclass before its base). A 5xx only means a dependency cannot be used right now.
REFUSALS: tuple[tuple[type[BridgeError], Refusal], ...] = (
    (NothingToCapture, Refusal(200)),
    (Unauthenticated, Refusal(401)),
    (UnknownHelpdesk, Refusal(404)),
    (PayloadTooLarge, Refusal(413)),
    (IdempotencyConflict, Refusal(409, "this Idempotency-Key was used with another body")),
    (InvalidRequest, Refusal(400)),
    (HelpdeskNotConfigured, Refusal(400)),
    (UnknownProvider, Refusal(400)),
    (
        ConfigurationError,
        Refusal(503, "the capture bridge is not configured correctly; try again later"),
    ),
    (StoreUnavailable, Refusal(503, "the session store is unavailable; try again later")),
)


def refusal_of(
    exc: BridgeError, overrides: Mapping[type[BridgeError], Refusal] | None = None
) -> Refusal:
    """The answer an error gets (an API may say some in its own words), logged as an operator
    needs to see it."""
    # A missing secret (every call refused) is logged by each API in its own words.
    if isinstance(exc, ConfigurationError):
        logger.error("the bridge is misconfigured", extra={"reason": str(exc)})
    elif isinstance(exc, StoreUnavailable):
        logger.exception("the session store is unavailable")
    for kind, refusal in (*(overrides or {}).items(), *REFUSALS):
        if isinstance(exc, kind):
            return refusal
    # Every BridgeError has its row (a test holds it); an unforeseen one must not be a 200.
    return Refusal(500, "internal error")


def with_fresh_settings(
    runtime_factory: Callable[[], Runtime] | None, attempt: Callable[[Runtime], T]
) -> T:
    """`attempt(runtime)`; refused as unauthenticated, once more with settings read afresh.

    The secret may have been filled in or rotated since the settings were cached (Zendesk's test
    button right after set-up, a token just rotated): they are read again at most once per
    floor (`reread_settings`). A caller's own runtime (tests, the local runner) is never re-read.
    """
    try:
        return attempt((runtime_factory or get_runtime)())
    except Unauthenticated:
        fresh = reread_settings() if runtime_factory is None else None
        if fresh is None:
            raise
        logger.info("refused with cached settings; trying again with fresh ones")
        return attempt(build_runtime(fresh))
