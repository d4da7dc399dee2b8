"""What the store writes and reads, in plain Python values: no DynamoDB here, only the shapes.

Stored items are a contract with deployed stacks: their field names and shapes do not change, and
items in older shapes still load. Cursors are opaque to callers and bound to their query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from capture_bridge.errors import InvalidCursor
from capture_bridge.models import (
    CaptureSession,
    Delivery,
    NoteState,
    SessionStatus,
    format_time,
    parse_time,
)

DUE_INDEX = "due-sessions"
# Spreads the due index over a few partitions; the resolver reads them all.
DUE_BUCKETS = 4
# A webhook delivery is remembered as long as its helpdesk says (`Delivery.remember_for`).
# An API caller's Idempotency-Key is honoured for a day, as the API promises.
API_DELIVERY_MEMORY = timedelta(hours=24)
# Cursors are short JSON; anything longer is not one of ours.
MAX_CURSOR_LENGTH = 2048
CURSOR_VERSION = 1
# Sessions stored before providers were named were all Bugpilot's.
LEGACY_PROVIDER = "bugpilot"

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
_OPTIONAL_TEXT = ("reference", "requester_ref", "error", "fault", "claim_id")
_MAPS = ("links", "details")


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


class SessionPage(NamedTuple):
    """A page of sessions, newest first, and the cursor of the next one (None on the last)."""

    sessions: list[CaptureSession]
    cursor: str | None


class Idempotency(NamedTuple):
    """An API call's Idempotency-Key and the fingerprint of the body it came with."""

    key: str
    fingerprint: str

    @property
    def pointer_key(self) -> str:
        # Hashed: the key is the caller's text, of any shape, and must not form other items' keys.
        return f"delivery#api#{hashlib.sha256(self.key.encode()).hexdigest()}"


class Pointer(NamedTuple):
    """An item naming the session that stands for a delivery, or for an open capture (a guard).

    It counts until `expires`; `fingerprint` is an API call's body's, to tell a key used again
    with another body.
    """

    key: str
    expires: datetime
    fingerprint: str | None = None

    def item(self, session_id: str) -> dict[str, Any]:
        """The pointer's item, naming `session_id`."""
        return {
            "pk": self.key,
            "session_id": session_id,
            "expires_at": int(self.expires.timestamp()),
            **({"fingerprint": self.fingerprint} if self.fingerprint else {}),
        }


def delivery_pointer(
    session: CaptureSession,
    now: datetime,
    delivery: Delivery | None,
    idempotency: Idempotency | None,
) -> Pointer | None:
    """The pointer that remembers the delivery `session` came from (None: nothing to remember).

    An API call's is its Idempotency-Key's, for a day; a webhook's is per capture, for as long as
    its helpdesk's adapter says, and only when the adapter can tell deliveries apart.
    """
    if idempotency is not None:
        return Pointer(idempotency.pointer_key, now + API_DELIVERY_MEMORY, idempotency.fingerprint)
    if delivery is not None and delivery.fingerprint:
        key = f"delivery#{session.helpdesk}#{delivery.fingerprint}#{session.capture_key}"
        return Pointer(key, now + delivery.remember_for)
    return None


def session_key(session_id: str) -> str:
    return f"session#{session_id}"


def guard_key(session: CaptureSession) -> str:
    """The key of the guard that keeps one open capture per ticket, provider and subject."""
    return f"open#{session.capture_key}"


def due_bucket(session_id: str) -> str:
    """The due-index partition of a session, fixed for its life."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return f"due#{digest[0] % DUE_BUCKETS}"


def to_item(session: CaptureSession) -> dict[str, Any]:
    """The DynamoDB item (plain Python values) for a session."""
    item: dict[str, Any] = {
        "pk": session_key(session.session_id),
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
    if session.note_token_at is not None:
        item["note_token_at"] = _precise_time(session.note_token_at)
    if session.next_check_at is not None:
        item["next_check_at"] = format_time(session.next_check_at)
        if session.has_work:
            item["due_bucket"] = due_bucket(session.session_id)
    return item


def _precise_time(moment: datetime) -> str:
    """ISO 8601 UTC to the millisecond: reserved tokens come a fraction of a second apart."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


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
    # Items stored before reservations have none.
    token_at = item.get("note_token_at")
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
        requester_ref=_optional_text(item, "requester_ref"),
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
        note_token_at=datetime.fromisoformat(str(token_at)) if token_at else None,
        expires_at=int(expires_at) if expires_at is not None else None,
    )


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
    """The opaque cursor after `key` (the index and table key of the last session read).

    `key` may be the whole item: only the key's attributes are kept.
    """
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
