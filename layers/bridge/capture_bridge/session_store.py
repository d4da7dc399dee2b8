"""The one module that talks to DynamoDB: capture sessions, their claims and their guards.

One table, three kinds of item, all keyed by `pk`:
- `session#<id>`: a capture session. While it has work left it carries `due_bucket`, which puts
  it in the sparse `due-sessions` index sorted by `next_check_at`. Every session also carries
  `ticket_key` (`<helpdesk>#<ticket>`) and `status`, the partitions of the `ticket-sessions` and
  `status-sessions` indexes (both sorted by `created_at`); no other item has those attributes,
  so guards and deliveries never appear in a listing.
- `open#<capture key>`: the guard that keeps one open capture per ticket, provider and subject
  (`<helpdesk>#<ticket>#<provider>#<action or external session id>`).
- `delivery#<helpdesk>#<fingerprint>#<capture key>`: a capture already taken from a webhook
  delivery, to recognise replays; `delivery#api#<hash of the key>`: one taken from an API call's
  `Idempotency-Key`, with the fingerprint of its body, remembered for a day.

Items written before sessions named their provider still load: they are Bugpilot sessions.

Whoever works on a session first claims it: a conditional update that sets `claim_id` and pushes
`next_check_at` one lease ahead, so that overlapping resolver runs never work on it together.
A claim still set when the next one is taken means its holder died mid-way (`interrupted`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from capture_bridge.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidRequest,
    StoreUnavailable,
)
from capture_bridge.models import (
    CaptureSession,
    Delivery,
    NoteState,
    SessionStatus,
    format_time,
    parse_time,
)
from capture_bridge.observability import logger

DUE_INDEX = "due-sessions"
# Spreads the due index over a few partitions; the resolver reads them all.
DUE_BUCKETS = 4
# A webhook delivery is remembered as long as its helpdesk says (`Delivery.remember_for`).
# An API caller's Idempotency-Key is honoured for a day, as the API promises.
API_DELIVERY_MEMORY = timedelta(hours=24)
# Cursors are short JSON; anything longer is not one of ours.
MAX_CURSOR_LENGTH = 2048
CURSOR_VERSION = 1
# Guards normally go with their session's end; this only cleans up after the unexpected.
GUARD_GRACE = timedelta(days=1)

# DynamoDB answers in milliseconds; a call that stalls is better sent again (botocore does, with
# the same client token for transactions). The longest one call can take: three attempts in all
# (botocore's `max_attempts` would count retries only), each at its timeouts, and botocore's
# backoff (up to 1 s, then 2 s) between them:
CONNECT_TIMEOUT = 1
READ_TIMEOUT = 2
MAX_ATTEMPTS = 3
LONGEST_CALL_SECONDS = MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + (1 + 2)

# DynamoDB cancels a transaction that meets another one still committing on the same item
# (`TransactionConflict`) or that it throttles. A save or a cancel tries again briefly: pauses of
# 20-40, 40-80 and 80-160 ms, as transactions usually commit within milliseconds.
SAVE_ATTEMPTS = 4
CONFLICT_PAUSE_SECONDS = 0.02
# Creating a session meets the commits of identical deliveries sent at once, which can take a
# second under load: it waits for them with growing jittered pauses (50-100 ms, doubling, up to
# 0.4-0.8 s), reading the delivery consistently after each one, so that a rival's commit that
# landed answers the request as a duplicate. All of it within a budget that leaves the webhook's
# answer well inside the ~10 s a helpdesk waits (the Lambda's timeout is 15 s).
CREATE_ATTEMPTS = 10
CREATE_FIRST_PAUSE_SECONDS = 0.05
CREATE_LONGEST_PAUSE_SECONDS = 0.8
CREATE_BUDGET_SECONDS = 6.0
CONDITION_FAILED = "ConditionalCheckFailed"
VALIDATION_ERROR = "ValidationError"
BUSY_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

_TEXT_FIELDS = (
    "session_id",
    "helpdesk",
    "ticket_id",
    "provider",
    "action",
    "capture_key",
    "user_id",
    "description",
)
_OPTIONAL_TEXT = ("reference", "error", "fault", "claim_id")
_MAPS = ("links", "details")
# Sessions stored before providers were named were all Bugpilot's.
LEGACY_PROVIDER = "bugpilot"


class SessionIndex(StrEnum):
    """The indexes sessions are listed by, newest first."""

    BY_TICKET = "ticket-sessions"
    BY_STATUS = "status-sessions"


# The partition attribute of each listing index; both sort by `created_at`.
INDEX_PARTITION = {SessionIndex.BY_TICKET: "ticket_key", SessionIndex.BY_STATUS: "status"}
LIST_SORT_KEY = "created_at"


@dataclass(frozen=True)
class SessionQuery:
    """One listing: an index, its partition (a ticket key or a status), and an optional floor."""

    index: SessionIndex
    partition: str
    since: datetime | None = None

    @property
    def partition_attribute(self) -> str:
        return INDEX_PARTITION[self.index]


@dataclass(frozen=True)
class SessionPage:
    """A page of sessions, newest first, and the cursor of the next one (None on the last)."""

    sessions: list[CaptureSession]
    cursor: str | None


@dataclass(frozen=True)
class Idempotency:
    """An API call's Idempotency-Key and the fingerprint of the body it came with."""

    key: str
    fingerprint: str

    @property
    def pointer_key(self) -> str:
        # Hashed: the key is the caller's text, of any shape, and must not form other items' keys.
        return f"delivery#api#{hashlib.sha256(self.key.encode()).hexdigest()}"


@dataclass(frozen=True)
class CancelWrite:
    """What a conditional cancel found: committed, or the session as it stood (None: missing)."""

    committed: bool
    stored: CaptureSession | None = None


@dataclass(frozen=True)
class Claim:
    """A session now held by the caller, and whether a previous holder died before finishing."""

    session: CaptureSession
    interrupted: bool


# A delivery pointer: its key, when it lapses, and the fingerprint of the body (API calls only).
_Pointer = tuple[str, datetime, str | None]


def _delivery_pointer(
    session: CaptureSession,
    now: datetime,
    delivery: Delivery | None,
    idempotency: Idempotency | None,
) -> _Pointer | None:
    if idempotency is not None:
        return (idempotency.pointer_key, now + API_DELIVERY_MEMORY, idempotency.fingerprint)
    if delivery is not None and delivery.fingerprint:
        key = f"delivery#{session.helpdesk}#{delivery.fingerprint}#{session.capture_key}"
        return (key, now + delivery.remember_for, None)
    return None


def _session_key(session_id: str) -> str:
    return f"session#{session_id}"


def _guard_key(session: CaptureSession) -> str:
    return f"open#{session.capture_key}"


def due_bucket(session_id: str) -> str:
    """The due-index partition of a session, fixed for its life."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return f"due#{digest[0] % DUE_BUCKETS}"


def to_item(session: CaptureSession) -> dict[str, Any]:
    """The DynamoDB item (plain Python values) for a session."""
    item: dict[str, Any] = {
        "pk": _session_key(session.session_id),
        "ticket_key": session.ticket_key,
        "status": session.status.value,
        "created_at": format_time(session.created_at),
        "updated_at": format_time(session.updated_at),
        "deadline_at": format_time(session.deadline_at),
        "attempts": session.attempts,
        "polls": session.polls,
        "unconfirmed": session.unconfirmed,
        "interruptions": session.interruptions,
        "note_attempts": session.note_attempts,
        "faults": session.faults,
    }
    item.update({name: getattr(session, name) for name in _TEXT_FIELDS})
    item.update({name: getattr(session, name) for name in _OPTIONAL_TEXT if getattr(session, name)})
    item.update({name: dict(getattr(session, name)) for name in _MAPS if getattr(session, name)})
    if session.note_state is not None:
        item["note_state"] = session.note_state.value
    if session.expires_at is not None:
        item["expires_at"] = session.expires_at
    if session.closed_at is not None:
        item["closed_at"] = format_time(session.closed_at)
    if session.next_check_at is not None:
        item["next_check_at"] = format_time(session.next_check_at)
        if session.has_work:
            item["due_bucket"] = due_bucket(session.session_id)
    return item


def _optional_text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return str(value) if value else None


def _text_map(value: Any) -> dict[str, str]:
    return {str(key): str(text) for key, text in value.items()} if isinstance(value, dict) else {}


def from_item(item: Mapping[str, Any]) -> CaptureSession:
    """The session stored in a DynamoDB item (plain Python values), in today's or an older shape."""
    next_check = item.get("next_check_at")
    note_state = item.get("note_state")
    expires_at = item.get("expires_at")
    helpdesk, ticket_id, action = str(item["helpdesk"]), str(item["ticket_id"]), str(item["action"])
    links = _text_map(item.get("links"))
    legacy_report = _optional_text(item, "report_url")
    if legacy_report and not links:
        links = {"report": legacy_report}
    status = SessionStatus(item["status"])
    updated_at = parse_time(item["updated_at"])
    closed = item.get("closed_at")
    # Sessions finished before `closed_at` existed: their last update is the nearest we know.
    closed_at = parse_time(closed) if closed else (updated_at if status.is_final else None)
    return CaptureSession(
        session_id=str(item["session_id"]),
        helpdesk=helpdesk,
        ticket_id=ticket_id,
        provider=str(item.get("provider") or LEGACY_PROVIDER),
        action=action,
        # Older items were guarded per ticket and action.
        capture_key=str(item.get("capture_key") or f"{helpdesk}#{ticket_id}#{action}"),
        user_id=str(item.get("user_id", "")),
        description=str(item.get("description", "")),
        reference=_optional_text(item, "reference") or _optional_text(item, "session_info_url"),
        links=links,
        details=_text_map(item.get("details")),
        error=_optional_text(item, "error"),
        fault=_optional_text(item, "fault"),
        faults=int(item.get("faults", 0)),
        claim_id=_optional_text(item, "claim_id"),
        status=status,
        created_at=parse_time(item["created_at"]),
        updated_at=updated_at,
        closed_at=closed_at,
        deadline_at=parse_time(item["deadline_at"]),
        next_check_at=parse_time(next_check) if next_check else None,
        attempts=int(item.get("attempts", 0)),
        polls=int(item.get("polls", 0)),
        unconfirmed=int(item.get("unconfirmed", 0)),
        interruptions=int(item.get("interruptions", 0)),
        note_state=NoteState(note_state) if note_state else None,
        note_attempts=int(item.get("note_attempts", 0)),
        expires_at=int(expires_at) if expires_at is not None else None,
    )


def _dump(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items()}


def _load(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _codes(reasons: list[dict[str, Any]]) -> list[str]:
    return [str(reason.get("Code") or "None") for reason in reasons]


def _busy(codes: list[str]) -> bool:
    """Cancelled only because items were busy (some may show "None": they were fine)."""
    return set(codes) <= BUSY_REASONS | {"None"}


def _jittered(pause: float) -> float:
    # Jittered, so that racing writers do not collide again in step.
    return random.uniform(pause / 2, pause)  # noqa: S311


def _pause(attempt: int) -> None:
    """Wait before trying a busy write again: longer each time, jittered."""
    # Growing, so that a rival's commit has time to land.
    time.sleep(_jittered(CONFLICT_PAUSE_SECONDS * 2**attempt))


def _creation_pause(attempt: int, deadline: float) -> bool:
    """Wait before creating again after `attempt`; False when that would overrun `deadline`."""
    pause = _jittered(min(CREATE_FIRST_PAUSE_SECONDS * 2**attempt, CREATE_LONGEST_PAUSE_SECONDS))
    if time.monotonic() + pause > deadline:
        return False
    time.sleep(pause)
    return True


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class SessionStore:
    """Capture sessions in DynamoDB. Thread-safe: the client is shared, nothing else is."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                # Short timeouts: a webhook must answer within Zendesk's patience.
                self._client = boto3.client(
                    "dynamodb",
                    config=Config(
                        connect_timeout=CONNECT_TIMEOUT,
                        read_timeout=READ_TIMEOUT,
                        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                    ),
                )
            return self._client

    # -- creation ---------------------------------------------------------------------------

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
        helpdesk's adapter said) or an API
        call's (`idempotency`, remembered a day with its body's fingerprint); with neither, only
        the open-capture guard deduplicates. Returns the session that stands for the request and
        whether it is the caller's own. Reads DynamoDB's reasons for a cancelled transaction: an
        item that exists names the session standing for the request (the caller's own when a
        re-sent transaction had committed); a conflict with a transaction still committing is
        waited out, the delivery read again consistently after each pause, within
        `CREATE_BUDGET_SECONDS`; an item DynamoDB refuses as invalid is the caller's error. Raises
        `StoreUnavailable` only when DynamoDB cannot be used, `InvalidRequest` when it refuses
        the item, `IdempotencyConflict` when the key was stored with another body's fingerprint.
        """
        now_epoch = int(now.timestamp())
        pointer = _delivery_pointer(session, now, delivery, idempotency)
        pointer_keys = (*((pointer[0],) if pointer else ()), _guard_key(session))
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
            cancelled = self._transact(items, "could not store the capture request")
            if cancelled is None:
                return session, True
            reasons = _codes(cancelled)
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
            elif not _busy(reasons):
                raise StoreUnavailable(f"the capture request was cancelled: {', '.join(reasons)}")
        # Still busy: the transaction we conflicted with may have committed by now.
        standing = self._standing_for(session, pointer_keys, now_epoch, fingerprint)
        if standing is not None:
            return standing
        raise StoreUnavailable(
            "the capture request kept conflicting with writes that never settled"
        )

    def _creation_items(
        self, session: CaptureSession, pointer: _Pointer | None, now: datetime
    ) -> list[dict[str, Any]]:
        """The session, its open-capture guard and its delivery pointer, each only if free."""
        free = "attribute_not_exists(pk) OR expires_at < :now"
        now_value = {":now": {"N": str(int(now.timestamp()))}}
        pointers: list[_Pointer] = [(_guard_key(session), session.deadline_at + GUARD_GRACE, None)]
        if pointer is not None:
            pointers.append(pointer)
        return [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _dump(to_item(session)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            *(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _dump(
                            {
                                "pk": key,
                                "session_id": session.session_id,
                                "expires_at": int(expires.timestamp()),
                                **({"fingerprint": fingerprint} if fingerprint else {}),
                            }
                        ),
                        "ConditionExpression": free,
                        "ExpressionAttributeValues": now_value,
                    }
                }
                for key, expires, fingerprint in pointers
            ),
        ]

    def _transact(self, items: list[dict[str, Any]], failure: str) -> list[dict[str, Any]] | None:
        """Write `items` in one transaction: None when done, else DynamoDB's reason per item."""
        try:
            self.client.transact_write_items(TransactItems=items)
            return None
        except ClientError as exc:
            if _error_code(exc) != "TransactionCanceledException":
                raise StoreUnavailable(f"{failure}: {exc}") from exc
            reasons = exc.response.get("CancellationReasons") or [{"Code": "Unknown"}]
            return [dict(reason) for reason in reasons]
        except BotoCoreError as exc:
            raise StoreUnavailable(f"{failure}: {exc}") from exc

    def _transact_patiently(
        self, items: list[dict[str, Any]], failure: str
    ) -> list[dict[str, Any]] | None:
        """`_transact`, tried again briefly while DynamoDB reports the items busy."""
        cancelled = None
        for attempt in range(SAVE_ATTEMPTS):
            if attempt:
                _pause(attempt)
            cancelled = self._transact(items, failure)
            if cancelled is None or not _busy(_codes(cancelled)):
                return cancelled
        return cancelled

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
            pointer = self._get(key)
            if pointer is None or int(pointer.get("expires_at", 0)) < now_epoch:
                continue
            stored_print = pointer.get("fingerprint")
            if fingerprint is not None and stored_print is not None and stored_print != fingerprint:
                raise IdempotencyConflict("the idempotency key was used with another body")
            existing = self.get(str(pointer["session_id"]))
            if existing is not None:
                return existing, existing.session_id == session.session_id
        return None

    # -- reading ----------------------------------------------------------------------------

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            answer = self.client.get_item(
                TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"could not read the session store: {exc}") from exc
        item = answer.get("Item")
        return _load(item) if item else None

    def get(self, session_id: str) -> CaptureSession | None:
        """The session with this id, read consistently, or None."""
        item = self._get(_session_key(session_id))
        return from_item(item) if item else None

    def due_session_ids(self, now: datetime, limit: int) -> list[str]:
        """Ids of up to `limit` sessions due now, oldest first over every bucket; never a Scan.

        Each bucket gives its `limit` oldest, then they are merged: reading the buckets one after
        another would fill the run from the first and starve the others under load.
        """
        per_bucket = [self._due_in(f"due#{bucket}", now, limit) for bucket in range(DUE_BUCKETS)]
        merged = heapq.merge(*per_bucket)
        return [session_id for _, session_id in itertools.islice(merged, limit)]

    def _due_in(self, bucket: str, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(next check, id) of the bucket's `limit` oldest due sessions, oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "due_bucket = :bucket AND next_check_at <= :now",
            "ExpressionAttributeValues": {
                ":bucket": {"S": bucket},
                ":now": {"S": format_time(now)},
            },
        }
        due: list[tuple[str, str]] = []
        while len(due) < limit:
            kwargs["Limit"] = limit - len(due)
            try:
                page = self.client.query(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise StoreUnavailable(f"could not read the due sessions: {exc}") from exc
            due.extend(
                (item["next_check_at"]["S"], item["pk"]["S"].removeprefix("session#"))
                for item in page["Items"]
            )
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return due

    # -- claims and writes ------------------------------------------------------------------

    def claim(self, session_id: str, *, now: datetime, lease: timedelta) -> Claim | None:
        """Take a due session for `lease`; None when it is not due or someone else holds it."""
        token = uuid.uuid4().hex
        try:
            answer = self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _session_key(session_id)}},
                UpdateExpression=(
                    "SET previous_claim = if_not_exists(claim_id, :none), claim_id = :token, "
                    "next_check_at = :lease_end"
                ),
                # A cancelled session has no `due_bucket`; its status is checked as well, so that
                # no claim (and so no note) can ever follow a cancel.
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
                # A failed condition shows the item, so telling a lost race from our own retried
                # call needs no second read.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            item = _load(answer["Attributes"])
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise StoreUnavailable(f"could not claim session {session_id}: {exc}") from exc
            # A retried call whose first attempt went through fails its own condition.
            stored = _load(exc.response.get("Item") or {})
            if stored.get("claim_id") != token:
                return None
            item = stored
        except BotoCoreError as exc:
            raise StoreUnavailable(f"could not claim session {session_id}: {exc}") from exc
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
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _session_key(session.session_id)}},
                UpdateExpression=update,
                ConditionExpression="claim_id = :held",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise StoreUnavailable(
                    f"could not record the fault of session {session.session_id}: {exc}"
                ) from exc
            return False
        except BotoCoreError as exc:
            raise StoreUnavailable(
                f"could not record the fault of session {session.session_id}: {exc}"
            ) from exc
        return True

    def save(
        self, session: CaptureSession, *, held_claim: str, release_guard: bool = False
    ) -> bool:
        """Write the session if `held_claim` still holds it; False when the claim was lost.

        `release_guard` also frees the ticket and action for a new capture, in one transaction.
        """
        write_id = uuid.uuid4().hex
        item = to_item(session) | {"write_id": write_id}
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": _dump(item),
            "ConditionExpression": "claim_id = :held",
            "ExpressionAttributeValues": {":held": {"S": held_claim}},
            # A failed condition shows the item: our own retried write, or a lost claim.
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        failure = f"could not save session {session.session_id}"
        stored: Mapping[str, Any] | None
        if release_guard:
            guard = {
                "TableName": self._table,
                "Key": {"pk": {"S": _guard_key(session)}},
                "ConditionExpression": "attribute_not_exists(pk) OR session_id = :sid",
                "ExpressionAttributeValues": {":sid": {"S": session.session_id}},
            }
            reasons = self._transact_patiently([{"Put": put}, {"Delete": guard}], failure)
            if reasons is None:
                return True
            if _busy(_codes(reasons)):
                raise StoreUnavailable(f"{failure}: its items stayed busy")
            stored = reasons[0].get("Item")
        else:
            try:
                self.client.put_item(**put)
                return True
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise StoreUnavailable(f"{failure}: {exc}") from exc
                stored = exc.response.get("Item")
            except BotoCoreError as exc:
                raise StoreUnavailable(f"{failure}: {exc}") from exc
        # Lost to another holder, unless a retried call's first attempt had written it.
        return _load(stored or {}).get("write_id") == write_id

    # -- cancelling and refreshing (the sessions API) ---------------------------------------

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
            "TableName": self._table,
            "Key": {"pk": {"S": _session_key(target.session_id)}},
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
        guard = {
            "TableName": self._table,
            "Key": {"pk": {"S": _guard_key(target)}},
            "ConditionExpression": "attribute_not_exists(pk) OR session_id = :sid",
            "ExpressionAttributeValues": {":sid": {"S": target.session_id}},
        }
        failure = f"could not cancel session {target.session_id}"
        reasons = self._transact_patiently([{"Update": update}, {"Delete": guard}], failure)
        if reasons is None:
            return CancelWrite(committed=True)
        if _busy(_codes(reasons)):
            raise StoreUnavailable(f"{failure}: its items stayed busy")
        stored = _load(reasons[0].get("Item") or {})
        if stored.get("write_id") == write_id:
            # A retried call whose first attempt had committed.
            return CancelWrite(committed=True)
        return CancelWrite(committed=False, stored=from_item(stored) if stored else None)

    def save_links(self, session: CaptureSession, *, seen: SessionStatus) -> bool:
        """Write the session's links, details and update time if its status is still `seen`."""
        values: dict[str, Any] = {
            ":seen": {"S": seen.value},
            ":links": _serializer.serialize(dict(session.links)),
            ":details": _serializer.serialize(dict(session.details)),
            ":updated": {"S": format_time(session.updated_at)},
        }
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _session_key(session.session_id)}},
                UpdateExpression="SET links = :links, details = :details, updated_at = :updated",
                ConditionExpression="#status = :seen",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise StoreUnavailable(
                    f"could not save the links of session {session.session_id}: {exc}"
                ) from exc
            return False
        except BotoCoreError as exc:
            raise StoreUnavailable(
                f"could not save the links of session {session.session_id}: {exc}"
            ) from exc
        return True

    # -- listing ----------------------------------------------------------------------------

    def list_sessions(
        self, query: SessionQuery, *, limit: int, cursor: str | None = None
    ) -> SessionPage:
        """Up to `limit` sessions of `query`, newest first, from its index; never a Scan.

        Raises `InvalidCursor` for a cursor that is not one this query returned.
        """
        attribute = query.partition_attribute
        condition = "#part = :part"
        values: dict[str, Any] = {":part": {"S": query.partition}}
        if query.since is not None:
            condition += f" AND {LIST_SORT_KEY} >= :since"
            values[":since"] = {"S": format_time(query.since)}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": query.index.value,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#part": attribute},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            # One more than asked: whether another page exists, without an empty last page.
            "Limit": limit + 1,
        }
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = decode_cursor(query, cursor)
        try:
            page = self.client.query(**kwargs)
        except ClientError as exc:
            if cursor is not None and _error_code(exc) == "ValidationException":
                # DynamoDB refused the start key: a cursor we could not tell was foreign.
                raise InvalidCursor("the cursor does not belong to this query") from exc
            raise StoreUnavailable(f"could not list the sessions: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"could not list the sessions: {exc}") from exc
        items = [_load(item) for item in page.get("Items", [])]
        if len(items) > limit:
            last = items[limit - 1]
            next_key = {name: str(last[name]) for name in ("pk", attribute, LIST_SORT_KEY)}
            sessions = [from_item(item) for item in items[:limit]]
            return SessionPage(sessions, encode_cursor(query, next_key))
        following = page.get("LastEvaluatedKey")
        next_cursor = encode_cursor(query, _load(following)) if following else None
        return SessionPage([from_item(item) for item in items], next_cursor)


# -- cursors -------------------------------------------------------------------------------------
#
# A cursor is base64url JSON of the last key read and the query it was read for. It needs no
# signature: it is accepted only when its query equals the caller's and its key lies in that
# query's partition (and range), and the Query's own key condition limits what DynamoDB reads
# to that partition. So a made-up cursor can at most start the caller's own listing elsewhere,
# which `since` allows anyway; it can never reach another ticket's or status's sessions.


def _query_id(query: SessionQuery) -> dict[str, Any]:
    since = format_time(query.since) if query.since is not None else None
    return {"i": query.index.value, "p": query.partition, "s": since}


def encode_cursor(query: SessionQuery, key: Mapping[str, Any]) -> str:
    """The opaque cursor after `key` (the index and table key of the last session read)."""
    plain = {name: str(key[name]) for name in ("pk", query.partition_attribute, LIST_SORT_KEY)}
    payload = {"v": CURSOR_VERSION, **_query_id(query), "k": plain}
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(query: SessionQuery, cursor: str) -> dict[str, Any]:
    """The ExclusiveStartKey a cursor stands for; `InvalidCursor` unless it is this query's."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise InvalidCursor("the cursor is not valid")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor("the cursor is not valid") from None
    attribute = query.partition_attribute
    names = {"pk", attribute, LIST_SORT_KEY}
    key = payload.get("k") if isinstance(payload, dict) else None
    if (
        not isinstance(payload, dict)
        or payload.get("v") != CURSOR_VERSION
        or {name: payload.get(name) for name in ("i", "p", "s")} != _query_id(query)
        or not isinstance(key, dict)
        or set(key) != names
        or not all(isinstance(value, str) for value in key.values())
    ):
        raise InvalidCursor("the cursor does not belong to this query")
    # Its key must lie inside this query's partition and range.
    if key[attribute] != query.partition or not key["pk"].startswith("session#"):
        raise InvalidCursor("the cursor does not belong to this query")
    try:
        created = parse_time(key[LIST_SORT_KEY])
    except ValueError:
        raise InvalidCursor("the cursor is not valid") from None
    if query.since is not None and created < query.since:
        raise InvalidCursor("the cursor does not belong to this query")
    return {name: {"S": value} for name, value in key.items()}
