"""The one module that talks to DynamoDB: the table, its client, and what its errors mean.

Every call goes through `converted_errors`: an error the caller reads (a failed condition, a
cancelled transaction) comes back as a `Refusal`; any other is `StoreUnavailable`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from capture_bridge.errors import StoreUnavailable

# DynamoDB answers in milliseconds; a call that stalls is better sent again (botocore does, with
# the same client token for transactions). The longest one call can take: three attempts in all
# (botocore's `max_attempts` would count retries only), each at its timeouts, and botocore's
# backoff (up to 1 s, then 2 s) between them:
CONNECT_TIMEOUT = 1
READ_TIMEOUT = 2
MAX_ATTEMPTS = 3
LONGEST_CALL_SECONDS = MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + (1 + 2)

# Error codes the store reads rather than reports.
CONDITION_CHECK_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELLED = "TransactionCanceledException"
VALIDATION_EXCEPTION = "ValidationException"
# Reasons DynamoDB gives per item of a cancelled transaction.
CONDITION_FAILED = "ConditionalCheckFailed"
VALIDATION_ERROR = "ValidationError"
BUSY_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def dump(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item of plain Python values in DynamoDB's typed form."""
    return {key: _serializer.serialize(value) for key, value in item.items()}


def dump_value(value: Any) -> dict[str, Any]:
    """One plain Python value in DynamoDB's typed form."""
    serialized: dict[str, Any] = _serializer.serialize(value)
    return serialized


def load(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """An item in DynamoDB's typed form as plain Python values (empty for None)."""
    return {key: _deserializer.deserialize(value) for key, value in (item or {}).items()}


class Refusal(Exception):
    """DynamoDB answered with an error its caller reads: the code and the whole answer."""

    def __init__(self, code: str, response: Mapping[str, Any]) -> None:
        super().__init__(code)
        self.code = code
        self.response = response

    @property
    def item(self) -> dict[str, Any]:
        """The item a failed condition returned (`ReturnValuesOnConditionCheckFailure`), loaded."""
        return load(self.response.get("Item"))


@contextmanager
def converted_errors(failure: str, *, refusals: Collection[str] = ()) -> Iterator[None]:
    """Turn DynamoDB's errors into `StoreUnavailable(failure)`, or `Refusal` for `refusals`.

    botocore has already retried what is worth retrying (throttling, 5xx, timeouts), so any
    other error means DynamoDB cannot be used now: the caller's caller retries later.
    """
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in refusals:
            raise Refusal(code, exc.response) from exc
        raise StoreUnavailable(f"{failure}: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"{failure}: {exc}") from exc


def reason_codes(reasons: list[dict[str, Any]]) -> list[str]:
    """The code of each item's reason for a cancelled transaction ("None": the item was fine)."""
    return [str(reason.get("Code") or "None") for reason in reasons]


def busy(codes: list[str]) -> bool:
    """Cancelled only because items were busy (some may show "None": they were fine)."""
    return set(codes) <= BUSY_REASONS | {"None"}


def jittered(pause: float) -> float:
    """A pause between `pause / 2` and `pause`, so that racing writers do not collide in step."""
    return random.uniform(pause / 2, pause)  # noqa: S311


class Table:
    """The sessions table and the client that reaches it, built on first use (thread-safe)."""

    def __init__(self, name: str, client: Any | None = None) -> None:
        self.name = name
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

    def read(self, key: str, failure: str = "could not read the session store") -> dict[str, Any]:
        """The item under `key`, read consistently, as plain values (empty when there is none)."""
        with converted_errors(failure):
            answer = self.client.get_item(
                TableName=self.name, Key={"pk": {"S": key}}, ConsistentRead=True
            )
        return load(answer.get("Item"))

    def transact(self, items: list[dict[str, Any]], failure: str) -> list[dict[str, Any]] | None:
        """Write `items` in one transaction: None when done, else DynamoDB's reason per item."""
        try:
            with converted_errors(failure, refusals={TRANSACTION_CANCELLED}):
                self.client.transact_write_items(TransactItems=items)
        except Refusal as refusal:
            reasons = refusal.response.get("CancellationReasons") or [{"Code": "Unknown"}]
            return [dict(reason) for reason in reasons]
        return None


class TablePart:
    """One part of the session store (`SessionStore` puts the parts together on one table)."""

    def __init__(self, table: Table) -> None:
        self._table = table
