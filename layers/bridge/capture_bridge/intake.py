"""Taking capture requests in, from a helpdesk webhook or the sessions API: store each, then start.

Both callers read their requests with the same provider functions (`Runtime.capture_requests`)
and hand them here, so a capture asked for over the API is stored, guarded, deduplicated, counted
and started exactly as one asked for by a webhook.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from capture_bridge import metrics
from capture_bridge.capture import CallBudget
from capture_bridge.capture_flow import (
    CLAIM_LEASE,
    advance,
    identify,
    needs_requester,
    releases_guard,
    report_step,
)
from capture_bridge.errors import InvalidRequest, StoreUnavailable
from capture_bridge.models import CaptureRequest, CaptureSession, Delivery
from capture_bridge.observability import logger, mask_email, session_fields
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import Idempotency
from capture_bridge.work_queue import WorkItem

# A call starts its captures itself only while it is young, so that every start it begins ends
# well inside the function's timeout (the webhook's is 15 s; Bugpilot's interactive start takes
# at most 8.05 s, tests/unit/test_requester_lookup.py): a start cut off by the timeout would be
# failed as interrupted. Captures left when the time is up (a call carrying many events, a slow
# requester look-up) are released due at once, and the resolver starts them in its next run.
INLINE_START_SECONDS = 5.0


class Opened(NamedTuple):
    """A capture session standing for one capture the request asked for."""

    session: CaptureSession
    created: bool


def open_captures(
    runtime: Runtime,
    requests: Sequence[CaptureRequest],
    *,
    now: datetime,
    clock: Callable[[], datetime],
    deliveries: Sequence[Delivery | None] = (),
    idempotency: Idempotency | None = None,
) -> list[Opened]:
    """Store a session per request, then start those that need it (this call holds them).

    `deliveries` are the webhook deliveries the requests came in, one per request. Every session
    is stored before any call goes out, so a crash or an outage never loses one. Captures that
    already exist (LambdaTest, Notte) are left due at once for the resolver, which keeps this
    call short. Raises `StoreUnavailable`, `InvalidRequest` or `IdempotencyConflict` after
    starting those already stored.
    """
    begun = time.monotonic()
    opened: list[Opened] = []
    failure: StoreUnavailable | InvalidRequest | None = None
    for index, request in enumerate(requests):
        delivery = deliveries[index] if index < len(deliveries) else None
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
        store = runtime.store
        try:
            # A webhook's call stays exactly what it was before the API (tests wrap the store).
            if idempotency is None:
                stored, created = store.create(session, delivery=delivery, now=now)
            else:
                stored, created = store.create(session, idempotency=idempotency, now=now)
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
    # Only now do calls go out: to start the new sessions this call holds, while it has the time.

    def in_time() -> bool:
        return time.monotonic() - begun < INLINE_START_SECONDS

    opened = [
        Opened(_start(runtime, item.session, clock, in_time), True)
        if item.created and item.session.claim_id
        else item
        for item in opened
    ]
    _remind(runtime, [item.session for item in opened if item.created], clock)
    if failure is not None:
        raise failure
    return opened


def _remind(
    runtime: Runtime, sessions: Sequence[CaptureSession], clock: Callable[[], datetime]
) -> None:
    """Send each new session still due to the work queue, delayed until it is due.

    After every write, so that a session is stored before its reminder exists; one that cannot be
    sent is the scheduled sweep's to send (`resolver.sweep`). A duplicate request sends nothing:
    its session's reminder went out with the first.
    """
    queue = runtime.queue
    if queue is None:
        return
    items = [
        WorkItem(session.session_id, session.next_check_at)
        for session in sessions
        if session.has_work and session.next_check_at is not None
    ]
    if items:
        queue.send(items, now=clock())


def _start(
    runtime: Runtime,
    session: CaptureSession,
    clock: Callable[[], datetime],
    in_time: Callable[[], bool],
) -> CaptureSession:
    """Make the session's first start and record its answer, releasing this call's claim.

    A requester the helpdesk named only by reference is looked up first (`_identified`). Each
    call goes out only while `in_time()`; else the session is released, due at once.
    """
    claim_id = session.claim_id or ""
    if not in_time():
        return _release(runtime, session, clock)
    try:
        step = _identified(runtime, session, clock)
    except StoreUnavailable:
        # Stored and claimed: the resolver looks the requester up again once the claim lapses.
        logger.exception("could not record the requester", extra=session_fields(session))
        return session
    if step is None:
        logger.warning("lost the claim on a new session", extra=session_fields(session))
        return session
    if not (step.status.is_final or needs_requester(step)):
        if not in_time():
            return _release(runtime, step, clock)
        provider = runtime.provider(session.provider, budget=CallBudget.INTERACTIVE)
        step = advance(step, provider, clock(), runtime.policy, interrupted=False)
    updated = replace(step, claim_id=None)
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


def _identified(
    runtime: Runtime, session: CaptureSession, clock: Callable[[], datetime]
) -> CaptureSession | None:
    """The session with its requester looked up when it needs one, else as it is.

    A requester found is saved at once, the claim kept, before the capture starts: so the
    helpdesk is asked once per capture, and a holder that dies after it is known to have died
    before the start. A look-up that failed comes back as the table says (retried later, or
    failed with its note owed), for the caller to save as any step. None: the claim was lost.
    """
    if not needs_requester(session):
        return session
    looked_up = identify(session, runtime.helpdesk(session.helpdesk), clock(), runtime.policy)
    if not looked_up.user_id:
        return looked_up
    saved = runtime.store.save(looked_up, held_claim=session.claim_id or "", release_guard=False)
    return looked_up if saved else None


def _release(
    runtime: Runtime, session: CaptureSession, clock: Callable[[], datetime]
) -> CaptureSession:
    """Give a session this call holds to the resolver without starting it: due at once."""
    released = replace(session, claim_id=None, next_check_at=clock())
    try:
        saved = runtime.store.save(released, held_claim=session.claim_id or "")
    except StoreUnavailable:
        logger.exception("could not release a new session", extra=session_fields(session))
        return session
    if not saved:
        logger.warning("lost the claim on a new session", extra=session_fields(session))
        return session
    logger.info("capture left for the resolver to start", extra=session_fields(released))
    return released
