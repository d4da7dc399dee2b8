"""Reading sessions: one by id, the due ones over every bucket, and listings page by page."""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime
from typing import Any

from capture_bridge.errors import InvalidCursor
from capture_bridge.models import CaptureSession, format_time
from capture_bridge.store.codec import (
    DUE_BUCKETS,
    DUE_INDEX,
    LIST_SORT_KEY,
    SessionPage,
    SessionQuery,
    decode_cursor,
    encode_cursor,
    from_item,
    session_key,
)
from capture_bridge.store.dynamodb import (
    VALIDATION_EXCEPTION,
    Refusal,
    TablePart,
    converted_errors,
    load,
)


class Reads(TablePart):
    """Sessions as stored: by id, due, or listed; never a Scan."""

    def get(self, session_id: str) -> CaptureSession | None:
        """The session with this id, read consistently, or None."""
        item = self._table.read(session_key(session_id))
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
            "TableName": self._table.name,
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
            with converted_errors("could not read the due sessions"):
                page = self._table.client.query(**kwargs)
            due.extend(
                (item["next_check_at"]["S"], item["pk"]["S"].removeprefix("session#"))
                for item in page["Items"]
            )
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return due

    def list_sessions(
        self, query: SessionQuery, *, limit: int, cursor: str | None = None
    ) -> SessionPage:
        """Up to `limit` sessions of `query`, newest first, from its index; never a Scan.

        Raises `InvalidCursor` for a cursor that is not one this query returned.
        """
        condition = "#part = :part"
        values: dict[str, Any] = {":part": {"S": query.partition}}
        if query.since is not None:
            condition += f" AND {LIST_SORT_KEY} >= :since"
            values[":since"] = {"S": format_time(query.since)}
        kwargs: dict[str, Any] = {
            "TableName": self._table.name,
            "IndexName": query.index.value,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#part": query.partition_attribute},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            # One more than asked: whether another page exists, without an empty last page.
            "Limit": limit + 1,
        }
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = decode_cursor(query, cursor)
        # DynamoDB refusing the start key means a cursor we could not tell was foreign.
        refusals = {VALIDATION_EXCEPTION} if cursor is not None else set()
        try:
            with converted_errors("could not list the sessions", refusals=refusals):
                page = self._table.client.query(**kwargs)
        except Refusal as refusal:
            raise InvalidCursor("the cursor does not belong to this query") from refusal
        items = [load(item) for item in page.get("Items", [])]
        if len(items) > limit:
            sessions = [from_item(item) for item in items[:limit]]
            return SessionPage(sessions, encode_cursor(query, items[limit - 1]))
        following = page.get("LastEvaluatedKey")
        next_cursor = encode_cursor(query, load(following)) if following else None
        return SessionPage([from_item(item) for item in items], next_cursor)
