"""Capture requests from a helpdesk webhook: verify, store each, then start those that need it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from capture_bridge import metrics
from capture_bridge.api.edge import (
    HttpRequest,
    JsonAnswer,
    Refusal,
    refusal_of,
    with_fresh_settings,
)
from capture_bridge.errors import (
    BridgeError,
    NothingToCapture,
    PayloadTooLarge,
    SecretNotConfigured,
    StoreUnavailable,
    Unauthenticated,
)
from capture_bridge.helpdesks import Headers, WebhookRequest
from capture_bridge.intake import Opened, open_captures
from capture_bridge.models import utc_now
from capture_bridge.observability import logger
from capture_bridge.runtime import Runtime

# Genuine trigger bodies are a few hundred bytes; anything far larger is refused unread.
MAX_BODY_BYTES = 64 * 1024
# The webhook's own words for a store it cannot write to (the helpdesk retries on a 503).
_OWN_WORDS: Mapping[type[BridgeError], Refusal] = {
    StoreUnavailable: Refusal(503, "could not store the capture request; try again later"),
}
# What each refusal counts as in the `WebhookRefused` metric.
_REFUSAL_REASONS = {
    401: metrics.RefusalReason.UNAUTHORIZED,
    400: metrics.RefusalReason.BAD_REQUEST,
    413: metrics.RefusalReason.TOO_LARGE,
}


class WebhookAnswer(NamedTuple):
    """What the webhook answers: an HTTP status and a JSON object."""

    status: int
    body: dict[str, Any]

    def as_response(self) -> dict[str, Any]:
        """The HTTP API payload 2.0 response, as the edge writes every answer."""
        return JsonAnswer(self.status, self.body).as_response()


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
    parsed = helpdesk.parse(request.body)
    tickets = parsed if isinstance(parsed, list) else [parsed]
    if not tickets:
        raise NothingToCapture("the call carries no event asking for a capture")
    # Every capture is read and validated before anything is stored; each is remembered with
    # its own event's delivery when the call carries several (HubSpot).
    requests, deliveries = [], []
    for ticket in tickets:
        for capture in runtime.capture_requests(ticket):
            requests.append(capture)
            deliveries.append(ticket.delivery or delivery)
    return open_captures(runtime, requests, now=now, clock=clock, deliveries=deliveries)


def receive_event(
    event: Mapping[str, Any],
    *,
    runtime_factory: Callable[[], Runtime] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> WebhookAnswer:
    """Answer an API Gateway HTTP API (v2) event for `POST /webhooks/{helpdesk}`."""
    request = HttpRequest.from_event(event)
    return _answer(
        request.path_params.get("helpdesk", ""),
        request,
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
    """Answer one webhook call given by its parts; `path` defaults to `/webhooks/<helpdesk>`."""
    path = path or f"/webhooks/{helpdesk_name}"
    request = HttpRequest(
        method=method.upper(),
        path=path,
        route=path,
        query_string=query_string,
        headers=Headers(headers),
        raw_body=body,
        is_base64=is_base64,
    )
    return _answer(helpdesk_name, request, runtime_factory=runtime_factory, clock=clock)


def _answer(
    helpdesk_name: str,
    http: HttpRequest,
    *,
    runtime_factory: Callable[[], Runtime] | None,
    clock: Callable[[], datetime],
) -> WebhookAnswer:
    """One call answered; every error gets its answer from the edge's table."""
    try:
        request = WebhookRequest(
            method=http.method or "POST",
            path=http.path or f"/webhooks/{helpdesk_name}",
            headers=http.headers,
            body=http.body(),
            query_string=http.query_string,
        )
        opened = with_fresh_settings(
            runtime_factory,
            lambda runtime: accept(runtime, helpdesk_name, request, clock(), clock),
        )
    except BridgeError as exc:
        return _refused(exc)
    finally:
        metrics.flush()
    return _accepted(opened)


def _refused(exc: BridgeError) -> WebhookAnswer:
    refusal = refusal_of(exc, _OWN_WORDS)
    if isinstance(exc, NothingToCapture):
        # Proven, and nothing asked for: a 2xx, so the sender neither retries nor disables it.
        logger.info("webhook call asks for no capture", extra={"reason": str(exc)})
        return WebhookAnswer(200, dict(exc.answer) if exc.answer else {"ignored": str(exc)})
    reason = _REFUSAL_REASONS.get(refusal.status)
    if reason is not None:
        metrics.webhook_refused(reason, missing_secret=isinstance(exc, SecretNotConfigured))
        logger.warning("webhook refused", extra={"reason": str(exc)})
    if isinstance(exc, SecretNotConfigured):
        # Every call is refused until someone puts the secret in: a configuration error.
        logger.error(
            "no webhook secret is configured: every webhook is refused",
            extra={"reason": str(exc)},
        )
    text = refusal.text(exc)
    if isinstance(exc, Unauthenticated):
        text = f"unauthenticated: {text}"
    return WebhookAnswer(refusal.status, {"error": text})


def _accepted(opened: list[Opened]) -> WebhookAnswer:
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
