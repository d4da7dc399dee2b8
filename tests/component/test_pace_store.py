"""Each helpdesk's note bucket in the sessions table (`store.pace`), on moto.

The arithmetic is tested without moto in tests/unit/test_pacing.py; here, that the item is
shared, written only if unchanged since read, and tightened.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import boto3

from capture_bridge.pacing import Pace
from capture_bridge.session_store import SessionStore
from capture_bridge.store.pace import pace_key
from tests.conftest import START, SerializedClient, store_for

NO_WAIT = timedelta(0)


def item(table: str, helpdesk: str = "zendesk") -> dict[str, Any]:
    answer = boto3.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": pace_key(helpdesk)}}, ConsistentRead=True
    )
    return dict(answer.get("Item", {}))


def test_a_bucket_is_one_item_per_helpdesk_outside_every_index(table: str) -> None:
    store = store_for(table)
    assert store.take_note_token("zendesk", Pace(120), now=START, max_wait=NO_WAIT).granted
    stored = item(table)
    assert set(stored) == {"pk", "tokens", "at", "version", "expires_at"}
    assert float(stored["tokens"]["N"]) == Pace(120).capacity - 1
    # another helpdesk's bucket is its own
    assert item(table, "freshdesk") == {}
    assert store.take_note_token("freshdesk", Pace(120), now=START, max_wait=NO_WAIT).granted
    assert float(item(table)["tokens"]["N"]) == Pace(120).capacity - 1


def test_two_runtimes_share_one_bucket(table: str) -> None:
    # given two stores (two runs, each its own client) on one table, the bucket at 120/min
    first, second = store_for(table), store_for(table)
    pace = Pace(120)  # capacity 2, about 1.97 a second
    grants = [
        store.take_note_token("zendesk", pace, now=START, max_wait=NO_WAIT).granted
        for store in (first, second, first, second)
    ]
    # then together they get the bucket's two tokens, not two each
    assert grants == [True, True, False, False]
    # and a second later, one more between them
    later = START + timedelta(seconds=1)
    assert first.take_note_token("zendesk", pace, now=later, max_wait=NO_WAIT).granted
    assert not second.take_note_token("zendesk", pace, now=later, max_wait=NO_WAIT).granted


class InterleavingClient(SerializedClient):
    """Lets every racing thread read the item before any of them writes it."""

    def __init__(self, client: Any, barrier: threading.Barrier) -> None:
        super().__init__(client)
        self._barrier = barrier
        self._first_read = threading.local()

    def get_item(self, **kwargs: Any) -> Any:
        answer = self.__getattr__("get_item")(**kwargs)
        if not getattr(self._first_read, "done", False):
            self._first_read.done = True
            self._barrier.wait(timeout=10)
        return answer


def test_racing_takers_each_get_a_distinct_token_and_conflicts_are_retried(table: str) -> None:
    # given eight threads that all read the bucket before any writes it, and tokens for all
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
    # then each got a token, and the bucket counts eight taken: no write was lost to a race
    assert answers == [True] * racers
    stored = item(table)
    assert float(stored["tokens"]["N"]) == pace.capacity - racers
    assert int(stored["version"]["N"]) == racers


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
    version = item(table)["version"]
    store.tighten_note_pace("zendesk", pace, now=START, remaining=500)
    assert item(table)["version"] == version
