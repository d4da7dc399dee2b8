"""The note pace of each helpdesk account: one token bucket item, shared by every run and worker.

`pace#<helpdesk>` holds the bucket (`tokens`, `at`) and a `version`; a take or a tightening reads
it consistently, computes the next bucket (`capture_bridge.pacing`: the arithmetic is there, not
here) and writes it only if the version is still the one read, trying again on a conflict.
Loaded with the first note a resolver paces: no webhook's cold start pays for it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from capture_bridge.pacing import Bucket, Pace, Take, refilled, take, tightened
from capture_bridge.store.dynamodb import (
    CONDITION_CHECK_FAILED,
    Refusal,
    TablePart,
    converted_errors,
    jittered,
)

# Takers racing for one bucket: each conflict means another took a token, so the next read
# sees it. Pauses of 10-20, 20-40, ... ms.
PACE_ATTEMPTS = 8
PACE_CONFLICT_PAUSE_SECONDS = 0.01
# An item left unused this long is removed by the table's TTL (a full bucket reads the same).
PACE_MEMORY = timedelta(days=1)


def pace_key(helpdesk: str) -> str:
    return f"pace#{helpdesk}"


def _bucket(item: dict[str, Any]) -> Bucket | None:
    if "tokens" not in item or "at" not in item:
        return None
    return Bucket(float(item["tokens"]), float(item["at"]))


class Paces(TablePart):
    """Token buckets in the sessions table, taken from with conditional writes."""

    def take_note_token(
        self, helpdesk: str, pace: Pace, *, now: datetime, max_wait: timedelta
    ) -> Take:
        """One token of `helpdesk`'s bucket, waiting for it at most `max_wait` (`pacing.take`).

        Still contended after `PACE_ATTEMPTS`: not granted, the next token a moment later.
        Raises `StoreUnavailable` when DynamoDB cannot be used.
        """
        key = pace_key(helpdesk)
        for attempt in range(PACE_ATTEMPTS):
            if attempt:
                time.sleep(jittered(PACE_CONFLICT_PAUSE_SECONDS * 2**attempt))
            item = self._table.read(key, f"could not read the note pace of {helpdesk}")
            after, answer = take(_bucket(item), pace, now, max_wait)
            if not answer.granted or self._swap(key, item, after, now):
                return answer
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
            before = _bucket(item)
            after = tightened(before, pace, now, remaining, reset_seconds)
            unchanged = before is not None and after.tokens >= refilled(before, pace, now).tokens
            if unchanged or self._swap(key, item, after, now):
                return

    def _swap(self, key: str, seen: dict[str, Any], bucket: Bucket, now: datetime) -> bool:
        """Write `bucket` if the item is still as `seen`; False when another writer came first."""
        version = int(seen.get("version", 0))
        condition = "version = :seen" if seen else "attribute_not_exists(pk)"
        values: dict[str, Any] = {":seen": {"N": str(version)}} if seen else {}
        try:
            with converted_errors(
                f"could not write the note pace {key}", refusals={CONDITION_CHECK_FAILED}
            ):
                self._table.client.put_item(
                    TableName=self._table.name,
                    Item={
                        "pk": {"S": key},
                        "tokens": {"N": f"{bucket.tokens:.6f}"},
                        "at": {"N": f"{bucket.at:.6f}"},
                        "version": {"N": str(version + 1)},
                        "expires_at": {"N": str(int((now + PACE_MEMORY).timestamp()))},
                    },
                    ConditionExpression=condition,
                    **({"ExpressionAttributeValues": values} if values else {}),
                )
        except Refusal:
            return False
        return True
