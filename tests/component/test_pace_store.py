"""Each helpdesk's note bucket in the sessions table (`store.pace`), on moto.

The arithmetic is tested without moto in tests/unit/test_pacing.py; here, that the item is
shared, taken from by atomic updates (racing takers never lose a token nor fail), tightened
only if unchanged since read, and read and rewritten from the shape stored before `full_at`.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from capture_bridge.pacing import Bucket, Pace, bucket_at, full_at, take
from capture_bridge.session_store import SessionStore
from capture_bridge.store.pace import pace_key
from tests.conftest import START, SerializedClient, store_for

NO_WAIT = timedelta(0)
# Times are stored to the microsecond: a bucket refilling 100 tokens a second reads a
# ten-thousandth of a token off, more after many takes.
ROUNDING = 1e-3


def item(table: str, helpdesk: str = "zendesk") -> dict[str, Any]:
    answer = boto3.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": pace_key(helpdesk)}}, ConsistentRead=True
    )
    return dict(answer.get("Item", {}))


def tokens(table: str, pace: Pace, helpdesk: str = "zendesk", moment: datetime = START) -> float:
    """The tokens the stored bucket holds at `moment`."""
    bucket = bucket_at(float(item(table, helpdesk)["full_at"]["N"]), pace, moment)
    assert bucket is not None
    return bucket.tokens


class CountingClient(SerializedClient):
    """Counts the calls made, by operation."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if callable(getattr(self._client, name)):
            self.calls.append(name)
        return super().__getattr__(name)


def test_a_bucket_is_one_item_per_helpdesk_outside_every_index(table: str) -> None:
    store = store_for(table)
    assert store.take_note_token("zendesk", Pace(120), now=START, max_wait=NO_WAIT).granted
    stored = item(table)
    assert set(stored) == {"pk", "full_at", "expires_at"}
    assert tokens(table, Pace(120)) == pytest.approx(Pace(120).capacity - 1, abs=ROUNDING)
    # another helpdesk's bucket is its own
    assert item(table, "freshdesk") == {}
    assert store.take_note_token("freshdesk", Pace(120), now=START, max_wait=NO_WAIT).granted
    assert tokens(table, Pace(120)) == pytest.approx(Pace(120).capacity - 1, abs=ROUNDING)


def test_a_take_is_one_write_and_no_read_once_the_runtime_knows_the_bucket(table: str) -> None:
    # given a runtime whose first take found the bucket busy (another runtime had taken)
    pace = Pace(600)
    store_for(table).take_note_token("zendesk", pace, now=START, max_wait=NO_WAIT)
    client = CountingClient(boto3.client("dynamodb"))
    store = SessionStore(table, client=client)
    assert store.take_note_token("zendesk", pace, now=START, max_wait=NO_WAIT).granted
    assert client.calls == ["update_item", "update_item"]  # guessed idle, told busy
    # when it takes again from the busy bucket, and later from the bucket idle again
    client.calls.clear()
    busy = store.take_note_token("zendesk", pace, now=START, max_wait=NO_WAIT)
    later = START + timedelta(minutes=1)
    idle = store.take_note_token("zendesk", pace, now=later, max_wait=NO_WAIT)
    # then each take was one update, reading nothing first
    assert busy.granted and idle.granted
    assert client.calls == ["update_item", "update_item"]
    assert tokens(table, pace, moment=later) == pytest.approx(pace.capacity - 1, abs=ROUNDING)


class InterleavingClient(SerializedClient):
    """Holds every racing thread after its first call until all of them have made theirs."""

    def __init__(self, client: Any, barrier: threading.Barrier) -> None:
        super().__init__(client)
        self._barrier = barrier
        self._first_call = threading.local()

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if not callable(call):
            return call

        def first_waits(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            finally:
                if not getattr(self._first_call, "done", False):
                    self._first_call.done = True
                    self._barrier.wait(timeout=30)

        return first_waits


def test_racing_takers_each_get_a_distinct_token_and_conflicts_are_retried(table: str) -> None:
    # given eight threads that all find the bucket unused before any has set it (each one's
    # first write refused), and tokens for all
    racers = 8
    barrier = threading.Barrier(racers)
    stores = [
        SessionStore(table, client=InterleavingClient(boto3.client("dynamodb"), barrier))
        for _ in range(racers)
    ]
    pace = Pace(600)  # capacity 10
    answers: list[bool] = []
    lock = threading.Lock()

    def racer(store: SessionStore) -> None:
        answer = store.take_note_token("zendesk", pace, now=START, max_wait=NO_WAIT)
        with lock:
            answers.append(answer.granted)

    threads = [threading.Thread(target=racer, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then each got a token, and the bucket counts them all taken: no write was lost to a race
    assert answers == [True] * racers
    assert tokens(table, pace) == pytest.approx(pace.capacity - racers, abs=ROUNDING)


def test_the_headers_tighten_the_shared_bucket(table: str) -> None:
    # given a full bucket, and a note's answer saying no call is left for 30 seconds
    store, other = store_for(table), store_for(table)
    pace = Pace(600)
    store.tighten_note_pace("zendesk", pace, now=START, remaining=0, reset_seconds=30)
    # then another runtime's take waits for the reset
    answer = other.take_note_token("zendesk", pace, now=START, max_wait=NO_WAIT)
    assert not answer.granted
    assert answer.at >= START + timedelta(seconds=30)
    # and a header that allows more than the bucket holds changes nothing
    before = item(table)
    store.tighten_note_pace("zendesk", pace, now=START, remaining=500)
    assert item(table) == before


def test_a_bucket_stored_before_full_at_is_read_as_it_was_and_rewritten(table: str) -> None:
    # given a bucket as an earlier version stored it: 2.5 tokens taken ahead, version 7
    pace = Pace(80)
    legacy = Bucket(-2.5, START.timestamp())
    boto3.client("dynamodb").put_item(
        TableName=table,
        Item={
            "pk": {"S": pace_key("zendesk")},
            "tokens": {"N": "-2.5"},
            "at": {"N": f"{legacy.at:.6f}"},
            "version": {"N": "7"},
            "expires_at": {"N": "1"},
        },
    )
    store = store_for(table)
    # when a note too far behind for its wait asks, then it hears the same next token
    _, expected = take(legacy, pace, START, NO_WAIT)
    refused = store.take_note_token("zendesk", pace, now=START, max_wait=NO_WAIT)
    assert not refused.granted
    assert abs((refused.at - expected.at).total_seconds()) < 0.01
    # when one that can wait takes its token
    after, expected = take(legacy, pace, START, timedelta(minutes=1))
    granted = store.take_note_token("zendesk", pace, now=START, max_wait=timedelta(minutes=1))
    # then it is the token the old bucket gave, and the item is in the new shape, the same bucket
    assert granted.granted
    assert abs((granted.at - expected.at).total_seconds()) < 0.01
    stored = item(table)
    assert set(stored) == {"pk", "full_at", "expires_at"}
    assert float(stored["full_at"]["N"]) == pytest.approx(full_at(after, pace), abs=0.01)


def test_a_tightening_of_a_bucket_stored_before_full_at_rewrites_it(table: str) -> None:
    # given a full bucket as an earlier version stored it
    pace = Pace(600)
    boto3.client("dynamodb").put_item(
        TableName=table,
        Item={
            "pk": {"S": pace_key("zendesk")},
            "tokens": {"N": str(pace.capacity)},
            "at": {"N": f"{START.timestamp():.6f}"},
            "version": {"N": "3"},
        },
    )
    # when the helpdesk says three calls are left
    store_for(table).tighten_note_pace("zendesk", pace, now=START, remaining=3)
    # then the bucket holds three, in the new shape
    assert set(item(table)) == {"pk", "full_at", "expires_at"}
    assert tokens(table, pace) == pytest.approx(3, abs=ROUNDING)
