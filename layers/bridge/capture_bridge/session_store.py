"""The session store: capture sessions, their claims and their guards, in one DynamoDB table.

One table, four kinds of item, all keyed by `pk`:
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
- `pace#<helpdesk>`: the token bucket that paces notes to one helpdesk account (`store.pace`).

Items written before sessions named their provider still load: they are Bugpilot sessions.

The store saves and claims; it decides nothing (that is `capture_flow`). Its parts live in
`capture_bridge.store` (the item codec, deliveries, claims, reads), and only
`capture_bridge.store.dynamodb` talks to DynamoDB; this module puts them together behind
`SessionStore` and names what callers import.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from capture_bridge.store.claims import (
    CONFLICT_PAUSE_SECONDS,
    SAVE_ATTEMPTS,
    CancelWrite,
    Claim,
    Claims,
)
from capture_bridge.store.codec import (
    API_DELIVERY_MEMORY,
    CURSOR_VERSION,
    DUE_BUCKETS,
    DUE_INDEX,
    INDEX_PARTITION,
    LEGACY_PROVIDER,
    LIST_SORT_KEY,
    MAX_CURSOR_LENGTH,
    Idempotency,
    SessionIndex,
    SessionPage,
    SessionQuery,
    decode_cursor,
    due_bucket,
    encode_cursor,
    from_item,
    to_item,
)
from capture_bridge.store.deliveries import (
    CREATE_ATTEMPTS,
    CREATE_BUDGET_SECONDS,
    CREATE_FIRST_PAUSE_SECONDS,
    CREATE_LONGEST_PAUSE_SECONDS,
    GUARD_GRACE,
    Deliveries,
)
from capture_bridge.store.dynamodb import (
    BUSY_REASONS,
    CONDITION_FAILED,
    CONNECT_TIMEOUT,
    LONGEST_CALL_SECONDS,
    MAX_ATTEMPTS,
    READ_TIMEOUT,
    VALIDATION_ERROR,
    Table,
)
from capture_bridge.store.reads import Reads

if TYPE_CHECKING:
    from capture_bridge.pacing import Pace, Take
    from capture_bridge.store.pace import Paces

__all__ = [
    "API_DELIVERY_MEMORY",
    "BUSY_REASONS",
    "CONDITION_FAILED",
    "CONFLICT_PAUSE_SECONDS",
    "CONNECT_TIMEOUT",
    "CREATE_ATTEMPTS",
    "CREATE_BUDGET_SECONDS",
    "CREATE_FIRST_PAUSE_SECONDS",
    "CREATE_LONGEST_PAUSE_SECONDS",
    "CURSOR_VERSION",
    "DUE_BUCKETS",
    "DUE_INDEX",
    "GUARD_GRACE",
    "INDEX_PARTITION",
    "LEGACY_PROVIDER",
    "LIST_SORT_KEY",
    "LONGEST_CALL_SECONDS",
    "MAX_ATTEMPTS",
    "MAX_CURSOR_LENGTH",
    "READ_TIMEOUT",
    "SAVE_ATTEMPTS",
    "VALIDATION_ERROR",
    "CancelWrite",
    "Claim",
    "Idempotency",
    "SessionIndex",
    "SessionPage",
    "SessionQuery",
    "SessionStore",
    "decode_cursor",
    "due_bucket",
    "encode_cursor",
    "from_item",
    "to_item",
]


class SessionStore(Deliveries, Claims, Reads):
    """Capture sessions in DynamoDB. Thread-safe: the client is shared, nothing else is.

    Its methods are its parts': `create` (deliveries); `claim`, `record_fault`, `save`,
    `save_checked`, `cancel` and `save_links` (claims); `get`, `due_session_ids` and
    `list_sessions` (reads);
    `take_note_token` and `tighten_note_pace` (pace, loaded with the first note paced).
    """

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        super().__init__(Table(table_name, client))
        self._paces: Paces | None = None

    @property
    def paces(self) -> Paces:
        if self._paces is None:
            # Imported here: only a resolver pacing its notes loads it, never a webhook.
            from capture_bridge.store.pace import Paces

            self._paces = Paces(self._table)
        return self._paces

    def take_note_token(
        self, helpdesk: str, pace: Pace, *, now: datetime, max_wait: timedelta
    ) -> Take:
        """A token to post a note to `helpdesk` (`store.pace.Paces.take_note_token`)."""
        return self.paces.take_note_token(helpdesk, pace, now=now, max_wait=max_wait)

    def tighten_note_pace(
        self,
        helpdesk: str,
        pace: Pace,
        *,
        now: datetime,
        remaining: int,
        reset_seconds: float | None = None,
    ) -> None:
        """Cut `helpdesk`'s bucket to what its rate-limit headers say is left."""
        self.paces.tighten_note_pace(
            helpdesk, pace, now=now, remaining=remaining, reset_seconds=reset_seconds
        )

    @property
    def client(self) -> Any:
        """The DynamoDB client, built on first use with short timeouts and three attempts."""
        return self._table.client
