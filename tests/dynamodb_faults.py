"""DynamoDB as it really behaves, for tests: conflicts, throttling and failures moto never shows.

moto answers every call at once, in order and successfully: it never cancels a transaction with
`TransactionConflict`, never throttles and never fails internally, and its backend is not
thread-safe. `RealisticDynamoDB` sits in a boto3 client's `before-send` event, *below* botocore's
retry logic, so the bridge's own client retries exactly as it would against AWS:

- `fail(operation, *faults)` answers the next calls of an operation with a documented error
  (`conflict()`, `throttled()`, `internal_error()`, `cancelled(...)`), before moto sees the call,
  or after moto carried it out (`answer_lost(...)`: the write happened, the answer did not come
  back, as when a connection drops or a proxy re-sends);
- with `commit_seconds`, a transaction takes that long to commit, unseen by reads meanwhile, and
  any other transaction touching one of its items is cancelled with `TransactionConflict`, as
  DynamoDB documents for concurrent transactions on the same item;
- calls reach moto one at a time (its backend has no lock of its own).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"


@dataclass(frozen=True)
class Fault:
    """A DynamoDB error answer: HTTP status, error code, and per-item reasons for a cancellation."""

    status: int
    code: str
    # For TransactionCanceledException: one reason per item; None gives every item `default`.
    reasons: tuple[str, ...] | None = None
    default_reason: str = "None"
    # Carried out by moto first: only the answer is lost.
    after_commit: bool = False


def conflict() -> Fault:
    """Another transaction on the same item was committing: every item reports the conflict."""
    return Fault(400, "TransactionCanceledException", default_reason="TransactionConflict")


def cancelled(*reasons: str) -> Fault:
    """A transaction cancelled with these reasons, one per item (e.g. "None", "ValidationError")."""
    return Fault(400, "TransactionCanceledException", reasons=reasons)


def throttled(code: str = "ProvisionedThroughputExceededException") -> Fault:
    """Throttled (also `ThrottlingException`); botocore retries these."""
    return Fault(400, code)


def internal_error() -> Fault:
    """DynamoDB failed internally (HTTP 500); botocore retries it."""
    return Fault(500, "InternalServerError")


def answer_lost(fault: Fault) -> Fault:
    """The call is carried out, then answered with `fault`, so the caller cannot tell it worked."""
    return Fault(fault.status, fault.code, fault.reasons, fault.default_reason, after_commit=True)


def _item_keys(operation: str, payload: dict[str, Any]) -> list[str]:
    if operation != "TransactWriteItems":
        return []
    keys: list[str] = []
    for entry in payload.get("TransactItems", []):
        (action,) = entry.values()
        source = action.get("Item") or action.get("Key") or {}
        keys.append(str(source.get("pk", {}).get("S", "")))
    return keys


class RealisticDynamoDB:
    """Faults and commit timing injected into one boto3 DynamoDB client running on moto."""

    def __init__(self, client: Any, *, commit_seconds: float = 0.0) -> None:
        self.commit_seconds = commit_seconds
        # Calls that reached the wire per operation (botocore's retries included), and faults given.
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._faults: defaultdict[str, deque[Fault | None]] = defaultdict(deque)
        self._backend = threading.Lock()
        self._state = threading.Lock()
        self._committing: list[set[str]] = []
        # botocore runs every before-send handler and takes the first answer, so moto's own must
        # go: this class decides whether a call reaches moto at all.
        client.meta.events.unregister("before-send", botocore_stubber)
        client.meta.events.register_first("before-send.dynamodb", self._send)

    def fail(self, operation: str, *faults: Fault | None) -> None:
        """Answer the next calls of `operation` with these faults in turn (None: a normal call)."""
        with self._state:
            self._faults[operation].extend(faults)

    def _send(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else str(target)).split(".")[-1]
        payload = json.loads(request.body or b"{}")
        with self._state:
            self.calls[operation] += 1
            queue = self._faults.get(operation)
            fault = queue.popleft() if queue else None
        keys = _item_keys(operation, payload)
        if fault is not None and not fault.after_commit:
            return self._answer(request, fault, len(keys))
        if keys and self.commit_seconds:
            response = self._commit_slowly(request, set(keys))
        else:
            response = self._moto(request)
        if fault is not None:
            return self._answer(request, fault, len(keys))
        return response

    def _commit_slowly(self, request: AWSPreparedRequest, keys: set[str]) -> AWSResponse:
        with self._state:
            if any(keys & other for other in self._committing):
                self.injected["TransactionConflict"] += 1
                return self._error(request, conflict(), len(keys))
            self._committing.append(keys)
        try:
            # Committing: reads do not see these writes yet, other transactions conflict.
            time.sleep(self.commit_seconds)
            return self._moto(request)
        finally:
            with self._state:
                self._committing.remove(keys)

    def _moto(self, request: AWSPreparedRequest) -> AWSResponse:
        with self._backend:
            response: AWSResponse = botocore_stubber("before-send", request)
        return response

    def _answer(self, request: AWSPreparedRequest, fault: Fault, items: int) -> AWSResponse:
        with self._state:
            self.injected[fault.code] += 1
        return self._error(request, fault, items)

    @staticmethod
    def _error(request: AWSPreparedRequest, fault: Fault, items: int) -> AWSResponse:
        body: dict[str, Any] = {"__type": _ERROR_PREFIX + fault.code, "message": fault.code}
        if fault.code == "TransactionCanceledException":
            reasons = fault.reasons or (fault.default_reason,) * max(items, 1)
            body["CancellationReasons"] = [
                {"Code": reason} if reason == "None" else {"Code": reason, "Message": reason}
                for reason in reasons
            ]
            body["message"] = f"Transaction cancelled [{', '.join(reasons)}]"
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "fault"}
        return AWSResponse(request.url, fault.status, headers, MockRawResponse(json.dumps(body)))
