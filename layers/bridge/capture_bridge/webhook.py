"""Capture requests from a helpdesk webhook: verify, store each, then start those that need it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from capture_bridge import metrics
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    NothingToCapture,
    PayloadTooLarge,
    SecretNotConfigured,
    StoreUnavailable,
    Unauthenticated,
    UnknownHelpdesk,
)
from capture_bridge.helpdesks import Headers, WebhookRequest
from capture_bridge.intake import Opened, open_captures
from capture_bridge.models import utc_now
from capture_bridge.observability import logger
from capture_bridge.runtime import Runtime, build_runtime, get_runtime
from capture_bridge.settings import reread_settings

# Genuine trigger bodies are a few hundred bytes; anything far larger is refused unread.
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class WebhookAnswer:
    """What the webhook answers: an HTTP status and a JSON object."""

    status: int
    body: dict[str, Any]


def raw_body(body: str | None, is_base64: bool) -> bytes:
    """The exact bytes the sender signed, undoing API Gateway's base64 wrapping."""
    if body is None:
        return b""
    if not is_base64:
        try:
            return body.encode()
        except UnicodeEncodeError:
            raise InvalidRequest("body is not valid UTF-8") from None
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("body is not valid base64") from None


def accept(
    runtime: Runtime,
    helpdesk_name: str,
    request: WebhookRequest,
    now: datetime,
    clock: Callable[[], datetime] = utc_now,
) -> list[Opened]:
    """Verify the request and store a session per capture it names, then start those that need it.

    The storing and starting are `intake.open_captures`, shared with the sessions API.
    """
    if len(request.body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is larger than {MAX_BODY_BYTES} bytes")
    helpdesk = runtime.helpdesk(helpdesk_name)
    delivery = helpdesk.verify(request, now)
    # Every capture is read and validated before anything is stored.
    requests = runtime.capture_requests(helpdesk.parse(request.body))
    return open_captures(runtime, requests, now=now, clock=clock, delivery=delivery)


def _refusal(status: int, message: str) -> WebhookAnswer:
    return WebhookAnswer(status, {"error": message})


def receive_event(
    event: Mapping[str, Any],
    *,
    runtime_factory: Callable[[], Runtime] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> WebhookAnswer:
    """Answer an API Gateway HTTP API (v2) event, reading the few fields a webhook needs."""
    context = event.get("requestContext") or {}
    helpdesk_name = str((event.get("pathParameters") or {}).get("helpdesk", ""))
    return receive(
        helpdesk_name,
        event.get("headers") or {},
        event.get("body"),
        is_base64=bool(event.get("isBase64Encoded")),
        method=str((context.get("http") or {}).get("method") or "POST"),
        path=str(event.get("rawPath") or ""),
        query_string=str(event.get("rawQueryString") or ""),
        runtime_factory=runtime_factory,
        clock=clock,
    )


def receive(
    helpdesk_name: str,
    headers: Mapping[str, str],
    body: str | None,
    *,
    is_base64: bool,
    method: str = "POST",
    path: str = "",
    query_string: str = "",
    runtime_factory: Callable[[], Runtime] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> WebhookAnswer:
    """Answer one webhook call; every domain error is mapped to its HTTP answer here.

    `path` defaults to the route's own, `/webhooks/<helpdesk>`.
    """
    try:
        return _answer(
            helpdesk_name,
            headers,
            body,
            is_base64=is_base64,
            shape=(method, path or f"/webhooks/{helpdesk_name}", query_string),
            runtime_factory=runtime_factory,
            clock=clock,
        )
    finally:
        metrics.flush()


def _answer(
    helpdesk_name: str,
    headers: Mapping[str, str],
    body: str | None,
    *,
    is_base64: bool,
    shape: tuple[str, str, str],
    runtime_factory: Callable[[], Runtime] | None,
    clock: Callable[[], datetime],
) -> WebhookAnswer:
    try:
        method, path, query_string = shape
        request = WebhookRequest(
            method=method.upper(),
            path=path,
            headers=Headers(headers),
            body=raw_body(body, is_base64),
            query_string=query_string,
        )
        try:
            runtime = (runtime_factory or get_runtime)()
            opened = accept(runtime, helpdesk_name, request, clock(), clock)
        except Unauthenticated:
            # The secret may have been filled in or rotated since the settings were cached (the
            # Zendesk test button right after setup): read once more, at most once per floor.
            fresh = reread_settings() if runtime_factory is None else None
            if fresh is None:
                raise
            logger.info("webhook refused with cached settings; verifying again with fresh ones")
            opened = accept(build_runtime(fresh), helpdesk_name, request, clock(), clock)
    except Unauthenticated as exc:
        metrics.webhook_refused(
            metrics.RefusalReason.UNAUTHORIZED,
            missing_secret=isinstance(exc, SecretNotConfigured),
        )
        logger.warning("webhook refused", extra={"reason": str(exc)})
        if isinstance(exc, SecretNotConfigured):
            # Every call is refused until someone puts the secret in: a configuration error.
            logger.error(
                "no webhook secret is configured: every webhook is refused",
                extra={"reason": str(exc)},
            )
        return _refusal(401, f"unauthenticated: {exc}")
    except NothingToCapture as exc:
        # Proven, and nothing asked for: a 2xx, so the sender neither retries nor disables it.
        logger.info("webhook call asks for no capture", extra={"reason": str(exc)})
        return WebhookAnswer(200, {"ignored": str(exc)})
    except UnknownHelpdesk as exc:
        return _refusal(404, str(exc))
    except PayloadTooLarge as exc:
        metrics.webhook_refused(metrics.RefusalReason.TOO_LARGE)
        return _refusal(413, str(exc))
    except InvalidRequest as exc:
        metrics.webhook_refused(metrics.RefusalReason.BAD_REQUEST)
        logger.warning("webhook refused as invalid", extra={"reason": str(exc)})
        return _refusal(400, str(exc))
    except ConfigurationError as exc:
        logger.error("the bridge is misconfigured", extra={"reason": str(exc)})
        return _refusal(503, "the capture bridge is not configured correctly; try again later")
    except StoreUnavailable:
        logger.exception("could not store the capture request")
        return _refusal(503, "could not store the capture request; try again later")
    first = opened[0]
    return WebhookAnswer(
        202,
        {
            "session_id": first.session.session_id,
            "status": first.session.status.value,
            "duplicate": not first.created,
            "sessions": [
                {
                    "session_id": item.session.session_id,
                    "provider": item.session.provider,
                    "status": item.session.status.value,
                    "duplicate": not item.created,
                }
                for item in opened
            ],
        },
    )
