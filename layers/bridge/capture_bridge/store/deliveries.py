"""Creating a session once: per delivery, per Idempotency-Key, and per open capture.

The session, its open-capture guard and the pointer remembering its delivery are written in one
transaction, each only if free. A cancelled transaction says why, item by item: an item that
exists names the session standing for the request; a rival's commit still in progress is waited
out; an item DynamoDB refuses is the caller's error.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from capture_bridge.errors import IdempotencyConflict, InvalidRequest, StoreUnavailable
from capture_bridge.models import CaptureSession, Delivery
from capture_bridge.observability import logger
from capture_bridge.store.codec import (
    Idempotency,
    Pointer,
    delivery_pointer,
    from_item,
    guard_key,
    session_key,
    to_item,
)
from capture_bridge.store.dynamodb import (
    CONDITION_FAILED,
    VALIDATION_ERROR,
    TablePart,
    busy,
    dump,
    jittered,
    reason_codes,
)

# Guards normally go with their session's end; this only cleans up after the unexpected.
GUARD_GRACE = timedelta(days=1)
# Creating a session meets the commits of identical deliveries sent at once, which can take a
# second under load: it waits for them with growing jittered pauses (50-100 ms, doubling, up to
# 0.4-0.8 s), reading the delivery consistently after each one, so that a rival's commit that
# landed answers the request as a duplicate. All of it within a budget that leaves the webhook's
# answer well inside the ~10 s a helpdesk waits (the Lambda's timeout is 15 s).
CREATE_ATTEMPTS = 10
CREATE_FIRST_PAUSE_SECONDS = 0.05
CREATE_LONGEST_PAUSE_SECONDS = 0.8
CREATE_BUDGET_SECONDS = 6.0


def _creation_pause(attempt: int, deadline: float) -> bool:
    """Wait before creating again after `attempt`; False when that would overrun `deadline`."""
    pause = jittered(min(CREATE_FIRST_PAUSE_SECONDS * 2**attempt, CREATE_LONGEST_PAUSE_SECONDS))
    if time.monotonic() + pause > deadline:
        return False
    time.sleep(pause)
    return True


class Deliveries(TablePart):
    """New sessions, each stored once for the delivery, key or open capture it answers."""

    def create(
        self,
        session: CaptureSession,
        *,
        now: datetime,
        delivery: Delivery | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[CaptureSession, bool]:
        """Store a new session unless this delivery or an open capture for it exists already.

        The delivery is a webhook's (`delivery`, remembered per capture for as long as its
        helpdesk's adapter said) or an API call's (`idempotency`, remembered a day with its
        body's fingerprint); with neither, only the open-capture guard deduplicates. Returns the
        session that stands for the request and whether it is the caller's own. Reads DynamoDB's
        reasons for a cancelled transaction: an item that exists names the session standing for
        the request (the caller's own when a re-sent transaction had committed); a conflict with
        a transaction still committing is waited out, the delivery read again consistently after
        each pause, within `CREATE_BUDGET_SECONDS`; an item DynamoDB refuses as invalid is the
        caller's error. Raises `StoreUnavailable` only when DynamoDB cannot be used,
        `InvalidRequest` when it refuses the item, `IdempotencyConflict` when the key was stored
        with another body's fingerprint.
        """
        now_epoch = int(now.timestamp())
        pointer = delivery_pointer(session, now, delivery, idempotency)
        pointer_keys = (*((pointer.key,) if pointer else ()), guard_key(session))
        fingerprint = idempotency.fingerprint if idempotency else None
        items = self._creation_items(session, pointer, now)
        deadline = time.monotonic() + CREATE_BUDGET_SECONDS
        for attempt in range(CREATE_ATTEMPTS):
            if attempt:
                if not _creation_pause(attempt, deadline):
                    break
                # A rival's commit that landed meanwhile answers the request: reading it costs
                # nothing, where another transaction would keep the items busy for the others.
                standing = self._standing_for(session, pointer_keys, now_epoch, fingerprint)
                if standing is not None:
                    return standing
            cancelled = self._table.transact(items, "could not store the capture request")
            if cancelled is None:
                return session, True
            reasons = reason_codes(cancelled)
            if VALIDATION_ERROR in reasons:
                logger.error(
                    "DynamoDB refused a capture request as invalid", extra={"reasons": reasons}
                )
                raise InvalidRequest("the capture request cannot be stored")
            if CONDITION_FAILED in reasons:
                # Whichever pointer exists names the session standing for this request.
                standing = self._standing_for(session, pointer_keys, now_epoch, fingerprint)
                if standing is not None:
                    return standing
            elif not busy(reasons):
                raise StoreUnavailable(f"the capture request was cancelled: {', '.join(reasons)}")
        # Still busy: the transaction we conflicted with may have committed by now.
        standing = self._standing_for(session, pointer_keys, now_epoch, fingerprint)
        if standing is not None:
            return standing
        raise StoreUnavailable(
            "the capture request kept conflicting with writes that never settled"
        )

    def _creation_items(
        self, session: CaptureSession, pointer: Pointer | None, now: datetime
    ) -> list[dict[str, Any]]:
        """The session, its open-capture guard and its delivery pointer, each only if free."""
        free = "attribute_not_exists(pk) OR expires_at < :now"
        now_value = {":now": {"N": str(int(now.timestamp()))}}
        pointers = [Pointer(guard_key(session), session.deadline_at + GUARD_GRACE)]
        if pointer is not None:
            pointers.append(pointer)
        session_put = {
            "TableName": self._table.name,
            "Item": dump(to_item(session)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        pointer_puts = [
            {
                "TableName": self._table.name,
                "Item": dump(each.item(session.session_id)),
                "ConditionExpression": free,
                "ExpressionAttributeValues": now_value,
            }
            for each in pointers
        ]
        return [{"Put": put} for put in (session_put, *pointer_puts)]

    def _standing_for(
        self,
        session: CaptureSession,
        pointer_keys: tuple[str, ...],
        now_epoch: int,
        fingerprint: str | None = None,
    ) -> tuple[CaptureSession, bool] | None:
        """The stored session a live pointer names, and whether it is `session` itself.

        A transaction re-sent after it committed (by botocore, a proxy or a retry of ours) fails
        its own conditions: the pointers then name the caller's session, which is not a duplicate.
        A pointer stored with another body's fingerprint raises `IdempotencyConflict`.
        """
        for key in pointer_keys:
            pointer = self._table.read(key)
            if not pointer or int(pointer.get("expires_at", 0)) < now_epoch:
                continue
            stored_print = pointer.get("fingerprint")
            if fingerprint is not None and stored_print is not None and stored_print != fingerprint:
                raise IdempotencyConflict("the idempotency key was used with another body")
            existing = self._table.read(session_key(str(pointer["session_id"])))
            if existing:
                stored = from_item(existing)
                return stored, stored.session_id == session.session_id
        return None
