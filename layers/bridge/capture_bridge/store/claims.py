"""Claims, and the writes made under them or in spite of them: saves, faults, cancels, links.

Whoever works on a session first claims it: a conditional update that sets `claim_id` and pushes
`next_check_at` one lease ahead, so that overlapping resolver runs never work on it together.
A claim still set when the next one is taken means its holder died mid-way (`interrupted`).
Every write here is conditional, and reads the item a failed condition returns: our own retried
call that had gone through is told from a lost claim or race without a second read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from capture_bridge.errors import StoreUnavailable
from capture_bridge.models import CaptureSession, SessionStatus, format_time
from capture_bridge.store.codec import from_item, guard_key, session_key, to_item
from capture_bridge.store.dynamodb import (
    CONDITION_CHECK_FAILED,
    Refusal,
    TablePart,
    busy,
    converted_errors,
    dump,
    dump_value,
    jittered,
    load,
    reason_codes,
)

# A save or a cancel that DynamoDB answers "busy" (a transaction on one of its items still
# committing, or throttled) tries again briefly: pauses of 20-40, 40-80 and 80-160 ms, as
# transactions usually commit within milliseconds.
SAVE_ATTEMPTS = 4
CONFLICT_PAUSE_SECONDS = 0.02


class CancelWrite(NamedTuple):
    """What a conditional cancel found: committed, or the session as it stood (None: missing)."""

    committed: bool
    stored: CaptureSession | None = None


class Claim(NamedTuple):
    """A session now held by the caller, and whether a previous holder died before finishing."""

    session: CaptureSession
    interrupted: bool


def _guard_release(session: CaptureSession, table: str) -> dict[str, Any]:
    """Deleting the session's guard, unless it guards another session by now."""
    return {
        "TableName": table,
        "Key": {"pk": {"S": guard_key(session)}},
        "ConditionExpression": "attribute_not_exists(pk) OR session_id = :sid",
        "ExpressionAttributeValues": {":sid": {"S": session.session_id}},
    }


class Claims(TablePart):
    """Claims on sessions and the conditional writes on them."""

    def _update(self, failure: str, **update: Any) -> bool:
        """One conditional update: False when its condition failed."""
        try:
            with converted_errors(failure, refusals={CONDITION_CHECK_FAILED}):
                self._table.client.update_item(TableName=self._table.name, **update)
        except Refusal:
            return False
        return True

    def _transact_patiently(
        self, items: list[dict[str, Any]], failure: str
    ) -> list[dict[str, Any]] | None:
        """`Table.transact`, tried again briefly while DynamoDB reports the items busy.

        Raises `StoreUnavailable` when they stay busy; else returns the reasons it was cancelled.
        """
        for attempt in range(SAVE_ATTEMPTS):
            if attempt:
                # Growing, so that a rival's commit has time to land.
                time.sleep(jittered(CONFLICT_PAUSE_SECONDS * 2**attempt))
            cancelled = self._table.transact(items, failure)
            if cancelled is None or not busy(reason_codes(cancelled)):
                return cancelled
        raise StoreUnavailable(f"{failure}: its items stayed busy")

    def claim(self, session_id: str, *, now: datetime, lease: timedelta) -> Claim | None:
        """Take a due session for `lease`; None when it is not due or someone else holds it."""
        token = uuid.uuid4().hex
        try:
            with converted_errors(
                f"could not claim session {session_id}", refusals={CONDITION_CHECK_FAILED}
            ):
                answer = self._table.client.update_item(
                    TableName=self._table.name,
                    Key={"pk": {"S": session_key(session_id)}},
                    UpdateExpression=(
                        "SET previous_claim = if_not_exists(claim_id, :none), claim_id = :token, "
                        "next_check_at = :lease_end"
                    ),
                    # A cancelled session has no `due_bucket`; its status is checked as well, so
                    # that no claim (and so no note) can ever follow a cancel.
                    ConditionExpression=(
                        "attribute_exists(due_bucket) AND next_check_at <= :now "
                        "AND #status <> :cancelled"
                    ),
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":none": {"S": ""},
                        ":token": {"S": token},
                        ":lease_end": {"S": format_time(now + lease)},
                        ":now": {"S": format_time(now)},
                        ":cancelled": {"S": SessionStatus.CANCELLED.value},
                    },
                    ReturnValues="ALL_NEW",
                    # A failed condition shows the item, so telling a lost race from our own
                    # retried call needs no second read.
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            item = load(answer["Attributes"])
        except Refusal as refusal:
            # A retried call whose first attempt went through fails its own condition.
            item = refusal.item
            if item.get("claim_id") != token:
                return None
        return Claim(session=from_item(item), interrupted=bool(item.get("previous_claim")))

    def record_fault(self, session: CaptureSession, *, held_claim: str) -> bool:
        """Write the session's fault count and text if `held_claim` still holds it; else False.

        Nothing else changes: the claim stays in place (so the next holder sees the step as
        interrupted) and the session stays due at the claim's lease end.
        """
        values: dict[str, Any] = {
            ":held": {"S": held_claim},
            ":faults": {"N": str(session.faults)},
            ":updated": {"S": format_time(session.updated_at)},
        }
        update = "SET faults = :faults, updated_at = :updated"
        if session.fault:
            update += ", fault = :fault"
            values[":fault"] = {"S": session.fault}
        return self._update(
            f"could not record the fault of session {session.session_id}",
            Key={"pk": {"S": session_key(session.session_id)}},
            UpdateExpression=update,
            ConditionExpression="claim_id = :held",
            ExpressionAttributeValues=values,
        )

    def save(
        self, session: CaptureSession, *, held_claim: str, release_guard: bool = False
    ) -> bool:
        """Write the session if `held_claim` still holds it; False when the claim was lost.

        `release_guard` also frees the ticket and action for a new capture, in one transaction.
        """
        write_id = uuid.uuid4().hex
        item = to_item(session) | {"write_id": write_id}
        put: dict[str, Any] = {
            "TableName": self._table.name,
            "Item": dump(item),
            "ConditionExpression": "claim_id = :held",
            "ExpressionAttributeValues": {":held": {"S": held_claim}},
            # A failed condition shows the item: our own retried write, or a lost claim.
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        failure = f"could not save session {session.session_id}"
        stored: Mapping[str, Any]
        if release_guard:
            guard = _guard_release(session, self._table.name)
            reasons = self._transact_patiently([{"Put": put}, {"Delete": guard}], failure)
            if reasons is None:
                return True
            stored = load(reasons[0].get("Item"))
        else:
            try:
                with converted_errors(failure, refusals={CONDITION_CHECK_FAILED}):
                    self._table.client.put_item(**put)
                return True
            except Refusal as refusal:
                stored = refusal.item
        # Lost to another holder, unless a retried call's first attempt had written it.
        return stored.get("write_id") == write_id

    def save_checked(self, session: CaptureSession, *, seen: CaptureSession) -> bool:
        """Write a check's answer unclaimed, if the session is still as `seen`; else False.

        As read means: still pending, held by nobody, checked as often and due at the same time
        (every claim and save changes one of them). A retried call whose first attempt had
        written it is told apart by the write id, as `save` does.
        """
        write_id = uuid.uuid4().hex
        seen_next = format_time(seen.next_check_at) if seen.next_check_at else ""
        try:
            with converted_errors(
                f"could not save session {session.session_id}", refusals={CONDITION_CHECK_FAILED}
            ):
                self._table.client.put_item(
                    TableName=self._table.name,
                    Item=dump(to_item(session) | {"write_id": write_id}),
                    ConditionExpression=(
                        "attribute_not_exists(claim_id) AND #status = :status "
                        "AND polls = :polls AND next_check_at = :next"
                    ),
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":status": {"S": seen.status.value},
                        ":polls": {"N": str(seen.polls)},
                        ":next": {"S": seen_next},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except Refusal as refusal:
            return refusal.item.get("write_id") == write_id
        return True

    def cancel(self, target: CaptureSession, *, seen: SessionStatus, now: datetime) -> CancelWrite:
        """Write `target`'s cancel and free its guard, in one transaction, if nobody holds it.

        Commits only while the stored status is still `seen` and no live claim exists (none, or
        its lease lapsed), so that a holder working on the session (perhaps posting its note)
        always finishes first. Writes the fields a cancel changes: status, times and retention;
        removes the due-index key, the claim and the note state. Otherwise returns the session
        as it stood (None when there is none), for the caller to decide.
        """
        write_id = uuid.uuid4().hex
        values: dict[str, Any] = {
            ":status": {"S": target.status.value},
            ":seen": {"S": seen.value},
            ":now": {"S": format_time(now)},
            ":updated": {"S": format_time(target.updated_at)},
            ":closed": {"S": format_time(target.closed_at or now)},
            ":expires": {"N": str(target.expires_at or int(now.timestamp()))},
            ":write": {"S": write_id},
        }
        update = {
            "TableName": self._table.name,
            "Key": {"pk": {"S": session_key(target.session_id)}},
            "UpdateExpression": (
                "SET #status = :status, updated_at = :updated, closed_at = :closed, "
                "expires_at = :expires, write_id = :write "
                "REMOVE due_bucket, next_check_at, claim_id, note_state"
            ),
            "ConditionExpression": (
                "#status = :seen AND (attribute_not_exists(claim_id) OR next_check_at <= :now)"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        guard = _guard_release(target, self._table.name)
        failure = f"could not cancel session {target.session_id}"
        reasons = self._transact_patiently([{"Update": update}, {"Delete": guard}], failure)
        if reasons is None:
            return CancelWrite(committed=True)
        stored = load(reasons[0].get("Item"))
        if stored.get("write_id") == write_id:
            # A retried call whose first attempt had committed.
            return CancelWrite(committed=True)
        return CancelWrite(committed=False, stored=from_item(stored) if stored else None)

    def save_links(self, session: CaptureSession, *, seen: SessionStatus) -> bool:
        """Write the session's links, details and update time if its status is still `seen`."""
        return self._update(
            f"could not save the links of session {session.session_id}",
            Key={"pk": {"S": session_key(session.session_id)}},
            UpdateExpression="SET links = :links, details = :details, updated_at = :updated",
            ConditionExpression="#status = :seen",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":seen": {"S": seen.value},
                ":links": dump_value(dict(session.links)),
                ":details": dump_value(dict(session.details)),
                ":updated": {"S": format_time(session.updated_at)},
            },
        )
