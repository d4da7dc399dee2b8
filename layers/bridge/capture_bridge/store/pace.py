"""The note pace of each helpdesk account: one token bucket item, shared by every run and worker.

`pace#<helpdesk>` keeps the bucket as `full_at`, when it holds its capacity again (the arithmetic
is `capture_bridge.pacing`'s, not here). A take is one write: from a busy bucket, an atomic
update that moves `full_at` a token later if it is within the taker's wait, so takers racing for
one helpdesk never conflict; an idle one is set to a token from now if still idle. A refused
condition returns the item, which says which write is right, or that the next token is further
off than the taker may wait (nothing is taken). A tightening reads the item and writes it only
if unchanged.

Items written before `full_at` (`tokens`, `at`, `version`) are read as the same bucket and
rewritten in the new shape by the next take or tightening.
Loaded with the first note a resolver paces: no webhook's cold start pays for it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from capture_bridge.pacing import (
    Bucket,
    Pace,
    Take,
    bucket_at,
    full_at,
    next_token_of,
    refilled,
    take_bounds,
    tightened,
)
from capture_bridge.store.dynamodb import (
    CONDITION_CHECK_FAILED,
    Refusal,
    Table,
    TablePart,
    converted_errors,
    jittered,
)

# A take's writes: each failed one means the bucket changed between idle and busy, so the next
# one reads the other way; a tightening's conflicts are retried after pauses of 10-20, 20-40 ms.
PACE_ATTEMPTS = 8
PACE_CONFLICT_PAUSE_SECONDS = 0.01
# An item left unused this long is removed by the table's TTL (a full bucket reads the same).
PACE_MEMORY = timedelta(days=1)
# The old shape's fields, by placeholder: `at` is one of DynamoDB's reserved words.
_LEGACY = {"#tokens": "tokens", "#at": "at", "#version": "version"}


def pace_key(helpdesk: str) -> str:
    return f"pace#{helpdesk}"


def _number(value: float) -> dict[str, str]:
    # Nine decimals: a token's time (`step`) is added on each take, so its rounding adds up.
    return {"N": f"{value:.9f}"}


def _stored_full_at(item: dict[str, Any], pace: Pace) -> float | None:
    """The item's `full_at`, or that of a bucket stored before it (None: never used)."""
    if "full_at" in item:
        return float(item["full_at"])
    if "tokens" in item and "at" in item:
        return full_at(Bucket(float(item["tokens"]), float(item["at"])), pace)
    return None


def _unchanged(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A condition that `item` (as read) is still what the table holds, and its values."""
    if "full_at" in item:
        return "full_at = :seen", {":seen": {"N": str(Decimal(item["full_at"]))}}
    if "version" in item:
        return (
            "attribute_not_exists(full_at) AND #version = :seen",
            {":seen": {"N": str(int(item["version"]))}},
        )
    if item:
        return "attribute_not_exists(full_at) AND attribute_not_exists(#version)", {}
    return "attribute_not_exists(pk)", {}


class Paces(TablePart):
    """Token buckets in the sessions table, taken from with atomic conditional updates."""

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        # The last `full_at` this runtime saw, per helpdesk: whether the next take's first write
        # should be a busy bucket's (add a token's time) or an idle one's (set it). A wrong
        # guess costs one refused write, which returns the item and so the right one.
        self._last_full_at: dict[str, float] = {}

    def take_note_token(
        self, helpdesk: str, pace: Pace, *, now: datetime, max_wait: timedelta
    ) -> Take:
        """One token of `helpdesk`'s bucket, waiting for it at most `max_wait` (`pacing.take`).

        Still undecided after `PACE_ATTEMPTS` writes: not granted, the next token a moment later.
        Raises `StoreUnavailable` when DynamoDB cannot be used.
        """
        key = pace_key(helpdesk)
        bounds = take_bounds(pace, now, max_wait)
        stored = self._last_full_at.get(key)
        seen: dict[str, Any] | None = None  # the item, once a refused write has returned it
        for _ in range(PACE_ATTEMPTS):
            if seen is not None:
                stored = _stored_full_at(seen, pace)
                if stored is not None and stored > bounds.latest:
                    self._last_full_at[key] = stored
                    return Take(False, next_token_of(stored, pace))
            try:
                if seen and "full_at" not in seen:
                    # The old shape: rewritten as the bucket it was, a token later.
                    condition, values = _unchanged(seen)
                    after = max(stored or bounds.now, bounds.now) + bounds.step
                    self._update(key, now, "SET full_at = :after", condition, values, after=after)
                elif stored is not None and stored >= bounds.now:
                    after = self._update(
                        key,
                        now,
                        "SET full_at = full_at + :step",
                        "full_at BETWEEN :now AND :latest",
                        {
                            ":step": _number(bounds.step),
                            ":now": _number(bounds.now),
                            ":latest": _number(bounds.latest),
                        },
                    )
                else:
                    after = bounds.now + bounds.step
                    self._update(
                        key,
                        now,
                        "SET full_at = :after",
                        "attribute_not_exists(pk) OR full_at < :now",
                        {":now": _number(bounds.now)},
                        after=after,
                    )
            except Refusal as refusal:
                seen = refusal.item
                continue
            self._last_full_at[key] = after
            return Take(True, bounds.granted_at(pace, after))
        return Take(False, now + timedelta(seconds=1))

    def tighten_note_pace(
        self,
        helpdesk: str,
        pace: Pace,
        *,
        now: datetime,
        remaining: int,
        reset_seconds: float | None = None,
    ) -> None:
        """Cut `helpdesk`'s bucket to what its rate-limit headers allow (`pacing.tightened`)."""
        key = pace_key(helpdesk)
        for attempt in range(PACE_ATTEMPTS):
            if attempt:
                time.sleep(jittered(PACE_CONFLICT_PAUSE_SECONDS * 2**attempt))
            item = self._table.read(key, f"could not read the note pace of {helpdesk}")
            before = bucket_at(_stored_full_at(item, pace), pace, now)
            after = tightened(before, pace, now, remaining, reset_seconds)
            if before is not None and after.tokens >= refilled(before, pace, now).tokens:
                return
            condition, values = _unchanged(item)
            try:
                self._update(
                    key, now, "SET full_at = :after", condition, values, after=full_at(after, pace)
                )
            except Refusal:
                continue
            return

    def _update(
        self,
        key: str,
        now: datetime,
        assignment: str,
        condition: str,
        values: dict[str, Any],
        *,
        after: float | None = None,
    ) -> float:
        """Apply `assignment` if `condition` holds: the new `full_at`, or `Refusal` with the item.

        Every write drops an old-shape bucket's fields and keeps the item a day past its use.
        """
        values = {**values, ":expires": {"N": str(int((now + PACE_MEMORY).timestamp()))}}
        if after is not None:
            values[":after"] = _number(after)
        with converted_errors(
            f"could not write the note pace {key}", refusals={CONDITION_CHECK_FAILED}
        ):
            answer = self._table.client.update_item(
                TableName=self._table.name,
                Key={"pk": {"S": key}},
                UpdateExpression=f"{assignment}, expires_at = :expires REMOVE {', '.join(_LEGACY)}",
                ConditionExpression=condition,
                ExpressionAttributeNames=_LEGACY,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return float(answer["Attributes"]["full_at"]["N"])
