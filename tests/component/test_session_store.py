"""Session store on moto: guards, claims, and conditional writes that are retried.

The item mapping itself is tested without moto in tests/unit/test_session_codec.py.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from capture_bridge.errors import InvalidRequest, StoreUnavailable
from capture_bridge.models import CaptureSession, SessionStatus
from capture_bridge.session_store import (
    CREATE_ATTEMPTS,
    SAVE_ATTEMPTS,
    SessionStore,
    due_bucket,
)
from capture_bridge.store import deliveries
from tests.conftest import START, webhook_delivery
from tests.dynamodb_faults import (
    RealisticDynamoDB,
    answer_lost,
    cancelled,
    conflict,
    internal_error,
    throttled,
)
from tests.store_sessions import new_session

LEASE = timedelta(minutes=5)
# More sessions due than one run takes, so that the choice between buckets matters.
DUE_SESSIONS = 40
RUN_LIMIT = 10
# As many identical deliveries at once as the load test that found the 503 storm.
RACING_DUPLICATES = 50


class RepeatingClient:
    """Sends chosen calls twice, as botocore does when an answer is lost on the way back."""

    def __init__(self, client: Any, repeat: set[str]) -> None:
        self._client, self._repeat = client, repeat

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in self._repeat:
            return method

        def twice(**kwargs: Any) -> Any:
            method(**kwargs)
            return method(**kwargs)

        return twice


class BrokenClient:
    """A client whose every call fails to connect."""

    def __getattr__(self, name: str) -> Any:
        def fail(**kwargs: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

        return fail


@pytest.fixture
def store(table: str) -> SessionStore:
    return SessionStore(table)


@pytest.fixture
def no_creation_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pauses between creating attempts: they wait for a commit that scripted faults lack."""
    monkeypatch.setattr(deliveries, "CREATE_FIRST_PAUSE_SECONDS", 0.0)


def test_claim_survives_a_retried_call_whose_first_attempt_succeeded(table: str) -> None:
    plain = SessionStore(table)
    session = new_session()
    plain.create(session, delivery=webhook_delivery("d1"), now=START)
    retried = SessionStore(table, client=RepeatingClient(boto3.client("dynamodb"), {"update_item"}))
    claim = retried.claim(session.session_id, now=START + LEASE, lease=LEASE)
    assert claim is not None
    assert claim.interrupted is True  # the webhook's own claim was never released
    assert claim.session.next_check_at == START + 2 * LEASE
    assert claim.session.claim_id not in (None, "webhook-claim")


def test_a_fault_is_recorded_under_the_held_claim_which_stays(table: str) -> None:
    # Given a session claimed by a run
    plain = SessionStore(table)
    session = new_session()
    plain.create(session, delivery=webhook_delivery("d1"), now=START)
    claim = plain.claim(session.session_id, now=START + LEASE, lease=LEASE)
    assert claim is not None
    held = claim.session.claim_id or ""
    faulted = replace(claim.session, faults=1, fault="Broken: a defect", updated_at=START + LEASE)
    # When the run records a fault under its claim (a retried call writing it twice)
    retried = SessionStore(table, client=RepeatingClient(boto3.client("dynamodb"), {"update_item"}))
    assert retried.record_fault(faulted, held_claim=held)
    # Then the fault is on the session, the claim still in place and the due time its lease end
    stored = plain.get(session.session_id)
    assert stored == faulted
    assert (stored.claim_id, stored.next_check_at) == (held, START + 2 * LEASE)
    # And a holder that lost the claim records nothing
    assert not plain.record_fault(replace(faulted, faults=9), held_claim="lost")
    assert plain.get(session.session_id) == faulted


def test_save_survives_a_retried_call_whose_first_attempt_succeeded(table: str) -> None:
    plain = SessionStore(table)
    session = new_session()
    plain.create(session, delivery=webhook_delivery("d1"), now=START)
    retried = SessionStore(
        table,
        client=RepeatingClient(boto3.client("dynamodb"), {"put_item", "transact_write_items"}),
    )
    released = replace(session, claim_id=None, status=SessionStatus.PENDING)
    assert retried.save(released, held_claim="webhook-claim") is True
    final = released.finish(SessionStatus.FAILED, now=START, error="X")
    # The claim is gone now, so a save under it is refused: it was lost to someone else.
    assert plain.save(final, held_claim="webhook-claim", release_guard=True) is False


def test_a_reserved_note_token_round_trips_and_an_item_without_one_reads_none(
    table: str,
) -> None:
    # given a session owing its note, stored before reservations existed (no such attribute)
    store = SessionStore(table)
    session = new_session()
    store.create(session, delivery=webhook_delivery("d1"), now=START)
    owed = replace(session, claim_id=None).finish(SessionStatus.RESOLVED, now=START)
    assert store.save(owed, held_claim="webhook-claim", release_guard=True)
    key = {"pk": {"S": f"session#{session.session_id}"}}
    raw = boto3.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)
    assert "note_token_at" not in raw["Item"]
    stored = store.get(session.session_id)
    assert stored is not None
    assert stored.note_token_at is None
    # when its note reserves a token a fraction of a second past a whole second
    token_at = START + timedelta(seconds=41, milliseconds=769)
    claim = store.claim(session.session_id, now=START, lease=LEASE)
    assert claim is not None
    holding = replace(claim.session, claim_id=None, note_token_at=token_at, next_check_at=token_at)
    assert store.save(holding, held_claim=claim.session.claim_id or "")
    # then it reads back to the millisecond, and the session is due at its (whole) second
    stored = store.get(session.session_id)
    assert stored is not None
    assert stored.note_token_at == token_at
    assert stored.next_check_at == START + timedelta(seconds=41)
    # and a try that uses it stores none again
    again = store.claim(session.session_id, now=token_at, lease=LEASE)
    assert again is not None
    used = replace(again.session, claim_id=None, note_token_at=None)
    assert store.save(used, held_claim=again.session.claim_id or "")
    raw = boto3.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)
    assert "note_token_at" not in raw["Item"]


def test_guard_of_an_ended_capture_does_not_block_a_new_one(store: SessionStore) -> None:
    first = new_session()
    store.create(first, delivery=webhook_delivery("d1"), now=START)
    ended = replace(first, claim_id=None).finish(SessionStatus.FAILED, now=START, error="X")
    assert store.save(ended, held_claim="webhook-claim", release_guard=True)
    second = new_session()
    stored, created = store.create(second, delivery=webhook_delivery("d2"), now=START)
    assert created is True
    assert stored.session_id == second.session_id


def test_expired_guard_and_delivery_count_as_free(store: SessionStore) -> None:
    first = new_session()
    store.create(first, delivery=webhook_delivery("d1"), now=START)
    much_later = START + timedelta(days=3)
    second = new_session()
    _, created = store.create(second, delivery=webhook_delivery("d1"), now=much_later)
    assert created is True


def test_due_sessions_are_the_oldest_over_every_bucket(store: SessionStore) -> None:
    # Given more due sessions than one run takes, spread over the buckets, due a second apart
    sessions = [
        replace(new_session(ticket=str(1000 + n)), next_check_at=START + timedelta(seconds=n))
        for n in range(DUE_SESSIONS)
    ]
    for session in reversed(sessions):
        store.create(session, delivery=webhook_delivery(session.session_id), now=START)
    assert len({due_bucket(session.session_id) for session in sessions[:RUN_LIMIT]}) > 1
    # When a run asks for its share
    due = store.due_session_ids(START + timedelta(hours=1), RUN_LIMIT)
    # Then it gets the longest waiting ones, whatever their bucket, oldest first
    assert due == [session.session_id for session in sessions[:RUN_LIMIT]]


def test_claim_of_a_session_not_due_is_refused(store: SessionStore) -> None:
    session = new_session()
    store.create(session, delivery=webhook_delivery("d1"), now=START)
    assert store.claim(session.session_id, now=START, lease=LEASE) is None
    assert store.claim("no-such-session", now=START, lease=LEASE) is None


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.create(new_session(), delivery=webhook_delivery("d"), now=START),
        lambda s: s.get("x"),
        lambda s: s.claim("x", now=START, lease=LEASE),
        lambda s: s.save(new_session(), held_claim="c"),
    ],
)
def test_connection_failures_become_store_unavailable(call: Any) -> None:
    with pytest.raises(StoreUnavailable):
        call(SessionStore("t", client=BrokenClient()))


@pytest.mark.usefixtures("no_creation_pauses")
def test_conflict_with_a_vanished_session_is_store_unavailable(
    store: SessionStore, table: str
) -> None:
    first = new_session()
    store.create(first, delivery=webhook_delivery("d1"), now=START)
    boto3.client("dynamodb").delete_item(
        TableName=table, Key={"pk": {"S": f"session#{first.session_id}"}}
    )
    with pytest.raises(StoreUnavailable, match="never settled"):
        store.create(new_session(), delivery=webhook_delivery("d2"), now=START)


class TestCreationUnderRealDynamoDBBehaviour:
    """`create` reads why DynamoDB cancelled its transaction (tests/dynamodb_faults.py)."""

    # Longer than a first jittered pause, and the slowest commit a delivery must still get through.
    COMMIT_SECONDS = (0.05, 1.0)

    @pytest.fixture
    def dynamodb(self, table: str) -> tuple[SessionStore, RealisticDynamoDB]:
        client = boto3.client("dynamodb")
        return SessionStore(table, client=client), RealisticDynamoDB(client)

    def test_a_re_sent_transaction_that_had_committed_is_the_callers_own_write(
        self, table: str
    ) -> None:
        # Given a client that sends the creating transaction again after it committed
        store = SessionStore(
            table, client=RepeatingClient(boto3.client("dynamodb"), {"transact_write_items"})
        )
        session = new_session()
        # When the session is created, then it is the caller's own, not a duplicate
        assert store.create(session, delivery=webhook_delivery("d1"), now=START) == (session, True)

    def test_an_answer_lost_after_commit_is_the_callers_own_write(
        self, dynamodb: tuple[SessionStore, RealisticDynamoDB]
    ) -> None:
        # Given DynamoDB committing the transaction, then failing before it answers, so that
        # botocore sends it again
        store, faults = dynamodb
        faults.fail("TransactWriteItems", answer_lost(internal_error()))
        session = new_session()
        # When the session is created, then it is the caller's own
        assert store.create(session, delivery=webhook_delivery("d1"), now=START) == (session, True)
        assert faults.injected == {"InternalServerError": 1}

    @pytest.mark.parametrize("commit_seconds", COMMIT_SECONDS, ids=lambda s: f"commit-{s}s")
    def test_duplicates_racing_a_commit_in_progress_are_duplicates_not_outages(
        self, table: str, commit_seconds: float
    ) -> None:
        # Given DynamoDB taking a moment to commit, cancelling any transaction on the same items
        # meanwhile with TransactionConflict, and not showing the first one to reads until done
        client = boto3.client("dynamodb")
        faults = RealisticDynamoDB(client, commit_seconds=commit_seconds)
        store = SessionStore(table, client=client)
        racers = [new_session() for _ in range(RACING_DUPLICATES)]
        barrier = threading.Barrier(RACING_DUPLICATES)

        def deliver(session: CaptureSession) -> tuple[CaptureSession, bool]:
            barrier.wait()
            return store.create(session, delivery=webhook_delivery("d1"), now=START)

        # When the same delivery arrives that many times at once
        with ThreadPoolExecutor(RACING_DUPLICATES) as pool:
            answers = list(pool.map(deliver, racers))
        # Then one created the session and every other one is answered with it, having raced a
        # commit in progress (how many did depends on the threads' timing on a busy machine)
        assert faults.injected["TransactionConflict"] > 0
        assert sum(created for _, created in answers) == 1
        assert len({stored.session_id for stored, _ in answers}) == 1

    @pytest.mark.parametrize("busy", ["TransactionConflict", "ThrottlingError"])
    def test_a_busy_item_is_tried_again(
        self, dynamodb: tuple[SessionStore, RealisticDynamoDB], busy: str
    ) -> None:
        store, faults = dynamodb
        faults.fail("TransactWriteItems", cancelled("None", busy, "None"))
        session = new_session()
        assert store.create(session, delivery=webhook_delivery("d1"), now=START) == (session, True)
        assert faults.calls["TransactWriteItems"] == 2

    def test_an_item_dynamodb_refuses_is_invalid_input_and_nothing_is_stored(
        self, dynamodb: tuple[SessionStore, RealisticDynamoDB], table: str
    ) -> None:
        store, faults = dynamodb
        faults.fail("TransactWriteItems", cancelled("ValidationError", "None", "None"))
        with pytest.raises(InvalidRequest, match="cannot be stored"):
            store.create(new_session(), delivery=webhook_delivery("d1"), now=START)
        assert boto3.client("dynamodb").scan(TableName=table)["Items"] == []

    @pytest.mark.usefixtures("no_creation_pauses")
    def test_conflicts_that_never_settle_are_unavailable_and_store_nothing(
        self, dynamodb: tuple[SessionStore, RealisticDynamoDB], table: str
    ) -> None:
        store, faults = dynamodb
        faults.fail("TransactWriteItems", *[conflict()] * CREATE_ATTEMPTS)
        with pytest.raises(StoreUnavailable, match="never settled"):
            store.create(new_session(), delivery=webhook_delivery("d1"), now=START)
        assert faults.calls["TransactWriteItems"] == CREATE_ATTEMPTS
        assert boto3.client("dynamodb").scan(TableName=table)["Items"] == []

    def test_conflicts_are_waited_out_only_within_the_creation_budget(
        self,
        dynamodb: tuple[SessionStore, RealisticDynamoDB],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given a creation budget shorter than the pauses of every attempt together
        budget = 0.3
        monkeypatch.setattr(deliveries, "CREATE_BUDGET_SECONDS", budget)
        store, faults = dynamodb
        faults.fail("TransactWriteItems", *[conflict()] * CREATE_ATTEMPTS)
        started = time.monotonic()
        # When every attempt meets a conflict
        with pytest.raises(StoreUnavailable, match="never settled"):
            store.create(new_session(), delivery=webhook_delivery("d1"), now=START)
        # Then the store gives up within its budget, before using up its attempts
        assert time.monotonic() - started < budget + 0.2
        assert 1 < faults.calls["TransactWriteItems"] < CREATE_ATTEMPTS

    def test_throttling_and_internal_errors_are_retried_by_botocore(
        self, dynamodb: tuple[SessionStore, RealisticDynamoDB]
    ) -> None:
        store, faults = dynamodb
        faults.fail("TransactWriteItems", throttled(), internal_error())
        session = new_session()
        assert store.create(session, delivery=webhook_delivery("d1"), now=START) == (session, True)
        assert faults.calls["TransactWriteItems"] == 3


class TestClaimsAndSavesUnderRealDynamoDBBehaviour:
    """Claims and saves read the item a failed condition returns, and wait out busy items."""

    @pytest.fixture
    def stored(self, table: str) -> tuple[SessionStore, RealisticDynamoDB, CaptureSession]:
        client = boto3.client("dynamodb")
        store = SessionStore(table, client=client)
        session = new_session()
        store.create(session, delivery=webhook_delivery("d1"), now=START)
        return store, RealisticDynamoDB(client), session

    def test_a_final_save_that_meets_a_busy_guard_is_tried_again(
        self, stored: tuple[SessionStore, RealisticDynamoDB, CaptureSession]
    ) -> None:
        # Given the guard busy with another transaction once
        store, faults, session = stored
        faults.fail("TransactWriteItems", cancelled("None", "TransactionConflict"))
        ended = replace(session, claim_id=None).finish(SessionStatus.FAILED, now=START, error="X")
        # When the session ends, then the save goes through on the next try
        assert store.save(ended, held_claim="webhook-claim", release_guard=True) is True
        assert faults.calls["TransactWriteItems"] == 2

    def test_a_save_whose_items_stay_busy_is_unavailable_not_a_lost_claim(
        self, stored: tuple[SessionStore, RealisticDynamoDB, CaptureSession]
    ) -> None:
        store, faults, session = stored
        faults.fail("TransactWriteItems", *[conflict()] * SAVE_ATTEMPTS)
        ended = replace(session, claim_id=None).finish(SessionStatus.FAILED, now=START, error="X")
        with pytest.raises(StoreUnavailable, match="stayed busy"):
            store.save(ended, held_claim="webhook-claim", release_guard=True)

    def test_lost_claims_and_lost_races_are_told_without_a_second_read(
        self, stored: tuple[SessionStore, RealisticDynamoDB, CaptureSession]
    ) -> None:
        store, faults, session = stored
        # A save under a claim someone else holds, and a claim of a session not due yet
        assert store.save(replace(session, claim_id=None), held_claim="not-ours") is False
        assert store.claim(session.session_id, now=START, lease=LEASE) is None
        assert faults.calls["GetItem"] == 0
