"""Capture requests from a helpdesk webhook: verify, store each, then start those that need it."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from capture_bridge import metrics
from capture_bridge.capture import CallBudget
from capture_bridge.capture_flow import CLAIM_LEASE, advance, releases_guard, report_step
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    PayloadTooLarge,
    SecretNotConfigured,
    StoreUnavailable,
    Unauthenticated,
    UnknownHelpdesk,
)
from capture_bridge.models import CaptureSession, utc_now
from capture_bridge.observability import logger, mask_email, session_fields
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


@dataclass(frozen=True)
class Opened:
    """A capture session standing for one capture the request asked for."""

    session: CaptureSession
    created: bool


def accept(
    runtime: Runtime,
    helpdesk_name: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    clock: Callable[[], datetime] = utc_now,
) -> list[Opened]:
    """Verify the request and store a session per capture it names, then start those that need it.

    Every session is stored before any call goes out, so a crash or an outage never loses one.
    Captures that already exist (LambdaTest, Notte) are left due at once for the resolver, which
    keeps this call short.
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is larger than {MAX_BODY_BYTES} bytes")
    helpdesk = runtime.helpdesk(helpdesk_name)
    delivery_id = helpdesk.verify(headers, body, now)
    # Every capture is read and validated before anything is stored.
    requests = runtime.capture_requests(helpdesk.parse(body))
    opened: list[Opened] = []
    failure: StoreUnavailable | InvalidRequest | None = None
    for request in requests:
        # A capture still to start is held by this call until it records the answer; the
        # resolver only steps in once the lease lapses, which means this call died.
        claim_id = uuid.uuid4().hex if request.reference is None else None
        session = CaptureSession.open(
            request,
            now=now,
            max_wait=runtime.settings.capture_max_wait,
            claim_id=claim_id,
            next_check_at=now + CLAIM_LEASE if claim_id else now,
        )
        try:
            stored, created = runtime.store.create(session, delivery_id=delivery_id, now=now)
        except (StoreUnavailable, InvalidRequest) as exc:
            # Those stored already are started below, never left claimed and idle; the sender's
            # retry stores the rest.
            failure = exc
            break
        opened.append(Opened(stored, created))
        if created:
            metrics.capture_requested(stored)
        logger.info(
            "capture request stored" if created else "duplicate capture request",
            extra=session_fields(stored, user=mask_email(stored.user_id)),
        )
    # Only now do calls go out: to start the new sessions this call holds.
    opened = [
        Opened(_start(runtime, item.session, clock), True)
        if item.created and item.session.claim_id
        else item
        for item in opened
    ]
    if failure is not None:
        raise failure
    return opened


def _start(
    runtime: Runtime, session: CaptureSession, clock: Callable[[], datetime]
) -> CaptureSession:
    """Make the session's first start and record its answer, releasing this call's claim."""
    claim_id = session.claim_id or ""
    provider = runtime.provider(session.provider, budget=CallBudget.INTERACTIVE)
    updated = replace(
        advance(session, provider, clock(), runtime.policy, interrupted=False), claim_id=None
    )
    try:
        saved = runtime.store.save(
            updated, held_claim=claim_id, release_guard=releases_guard(session, updated)
        )
    except StoreUnavailable:
        # The request itself is stored; the resolver settles it once the claim lapses.
        logger.exception("could not record the capture answer", extra=session_fields(updated))
        return session
    if not saved:
        logger.warning("lost the claim on a new session", extra=session_fields(updated))
        return updated
    report_step(session, updated)
    logger.info("capture requested", extra=session_fields(updated, error_code=updated.error))
    return updated


def _refusal(status: int, message: str) -> WebhookAnswer:
    return WebhookAnswer(status, {"error": message})


def receive(
    helpdesk_name: str,
    headers: Mapping[str, str],
    body: str | None,
    *,
    is_base64: bool,
    runtime_factory: Callable[[], Runtime] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> WebhookAnswer:
    """Answer one webhook call; every domain error is mapped to its HTTP answer here."""
    try:
        return _answer(
            helpdesk_name,
            headers,
            body,
            is_base64=is_base64,
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
    runtime_factory: Callable[[], Runtime] | None,
    clock: Callable[[], datetime],
) -> WebhookAnswer:
    try:
        raw = raw_body(body, is_base64)
        try:
            runtime = (runtime_factory or get_runtime)()
            opened = accept(runtime, helpdesk_name, headers, raw, clock(), clock)
        except Unauthenticated:
            # The secret may have been filled in or rotated since the settings were cached (the
            # Zendesk test button right after setup): read once more, at most once per floor.
            fresh = reread_settings() if runtime_factory is None else None
            if fresh is None:
                raise
            logger.info("webhook refused with cached settings; verifying again with fresh ones")
            opened = accept(build_runtime(fresh), helpdesk_name, headers, raw, clock(), clock)
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
