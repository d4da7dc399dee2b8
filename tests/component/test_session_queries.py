"""The store's listings, cursors, idempotency pointers and cancel writes, on moto."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import boto3
import pytest

from capture_bridge.capture_flow import cancelled
from capture_bridge.errors import IdempotencyConflict, InvalidCursor
from capture_bridge.models import CaptureRequest, CaptureSession, SessionStatus
from capture_bridge.session_store import (
    API_DELIVERY_MEMORY,
    Idempotency,
    SessionIndex,
    SessionQuery,
    SessionStore,
    from_item,
    to_item,
)
from tests.conftest import START, webhook_delivery

LEASE = timedelta(minutes=5)
TICKET = "1001"
BY_TICKET = SessionQuery(SessionIndex.BY_TICKET, f"zendesk#{TICKET}")
PENDING = SessionQuery(SessionIndex.BY_STATUS, "pending")
PAGE = 3
SESSIONS_ON_TICKET = 7


def a_session(
    ticket: str = TICKET,
    *,
    minute: int = 0,
    status: SessionStatus = SessionStatus.PENDING,
    subject: str = "upload-session",
    claim_id: str | None = None,
) -> CaptureSession:
    request = CaptureRequest(
        helpdesk="zendesk",
        ticket_id=ticket,
        provider="bugpilot",
        action="upload-session",
        subject=subject,
        user_id="user-42",
    )
    opened = CaptureSession.open(
        request,
        now=START + timedelta(minutes=minute),
        max_wait=timedelta(minutes=30),
        claim_id=claim_id,
        next_check_at=START + timedelta(minutes=minute) + (LEASE if claim_id else timedelta()),
    )
    return replace(opened, status=status)


@pytest.fixture
def store(table: str) -> SessionStore:
    return SessionStore(table)


def put(table: str, *sessions: CaptureSession) -> None:
    """Plain PutItem rows: listings do not need the creation transaction."""
    rows = boto3.resource("dynamodb").Table(table)
    for session in sessions:
        rows.put_item(Item=to_item(session))


def ids(sessions: list[CaptureSession]) -> list[str]:
    return [session.session_id for session in sessions]


class TestListing:
    def test_a_tickets_sessions_come_newest_first_in_pages_each_once(
        self, store: SessionStore, table: str
    ) -> None:
        # Given seven sessions on the ticket and one on another ticket
        mine = [
            a_session(minute=minute, subject=f"s{minute}") for minute in range(SESSIONS_ON_TICKET)
        ]
        put(table, *mine, a_session("2002", minute=3))
        # When the ticket's sessions are read page by page
        seen: list[str] = []
        cursor = None
        while True:
            page = store.list_sessions(BY_TICKET, limit=PAGE, cursor=cursor)
            assert len(page.sessions) <= PAGE
            seen += ids(page.sessions)
            cursor = page.cursor
            if cursor is None:
                break
        # Then each came once, newest first, and the last page was not empty
        assert seen == ids(sorted(mine, key=lambda s: s.created_at, reverse=True))
        assert page.sessions

    def test_a_status_listing_takes_since_as_a_floor(self, store: SessionStore, table: str) -> None:
        # Given pending sessions over ten minutes and a resolved one
        put(table, *(a_session(str(n), minute=n) for n in range(10)))
        put(table, a_session("99", minute=9, status=SessionStatus.RESOLVED))
        # When those created from minute 6 on are listed
        query = replace(PENDING, since=START + timedelta(minutes=6))
        page = store.list_sessions(query, limit=100)
        # Then only those four come, newest first
        assert [s.ticket_id for s in page.sessions] == ["9", "8", "7", "6"]
        assert page.cursor is None

    def test_guards_and_deliveries_never_land_in_the_listing_indexes(
        self, store: SessionStore, table: str
    ) -> None:
        # Given a session created with its guard and delivery pointer
        session = a_session(claim_id="webhook")
        store.create(session, delivery=webhook_delivery("d1"), now=START)
        # Then each listing index holds the session alone
        for index, key in (
            (SessionIndex.BY_TICKET, "ticket_key"),
            (SessionIndex.BY_STATUS, "status"),
        ):
            items = store.client.scan(TableName=table, IndexName=index.value)["Items"]
            assert [item["pk"]["S"] for item in items] == [f"session#{session.session_id}"], key

    def test_a_cursor_of_another_query_is_refused(self, store: SessionStore, table: str) -> None:
        # Given a cursor from the first ticket's listing
        put(table, *(a_session(minute=n, subject=f"s{n}") for n in range(4)))
        put(table, *(a_session("2002", minute=n, subject=f"s{n}") for n in range(4)))
        cursor = store.list_sessions(BY_TICKET, limit=2).cursor
        assert cursor is not None
        # Then it cannot read the other ticket, another status, or another floor
        for other in (
            SessionQuery(SessionIndex.BY_TICKET, "zendesk#2002"),
            PENDING,
            replace(BY_TICKET, since=START),
        ):
            with pytest.raises(InvalidCursor):
                store.list_sessions(other, limit=2, cursor=cursor)


class TestIdempotency:
    def test_the_same_key_and_body_give_the_same_session_for_a_day(
        self, store: SessionStore
    ) -> None:
        # Given a session created under an idempotency key
        key = Idempotency("key-1", fingerprint="body-a")
        first = a_session(claim_id="api")
        assert store.create(first, idempotency=key, now=START) == (first, True)
        # When the same request comes again within the day, on another ticket's guard even
        again = a_session("2002", claim_id="api")
        within = START + API_DELIVERY_MEMORY - timedelta(seconds=1)
        # Then it is the first session, not a new one
        assert store.create(again, idempotency=key, now=within) == (first, False)

    def test_the_same_key_with_another_body_conflicts(self, store: SessionStore) -> None:
        store.create(a_session(claim_id="api"), idempotency=Idempotency("k", "a"), now=START)
        with pytest.raises(IdempotencyConflict):
            store.create(a_session("2002"), idempotency=Idempotency("k", "b"), now=START)

    def test_a_key_is_forgotten_after_a_day(self, store: SessionStore) -> None:
        store.create(a_session(claim_id="api"), idempotency=Idempotency("k", "a"), now=START)
        later = START + API_DELIVERY_MEMORY + timedelta(seconds=1)
        other = a_session("2002")
        assert store.create(other, idempotency=Idempotency("k", "b"), now=later) == (other, True)

    def test_without_a_key_only_the_guard_deduplicates(self, store: SessionStore) -> None:
        first = a_session()
        assert store.create(first, now=START) == (first, True)
        assert store.create(a_session(), now=START) == (first, False)


class TestCancelWrite:
    def test_a_cancel_frees_the_guard_and_leaves_the_due_index(self, store: SessionStore) -> None:
        # Given an open unclaimed session, due, with its guard
        session = a_session()
        store.create(session, now=START)
        now = START + timedelta(minutes=1)
        # When its cancel is written
        write = store.cancel(cancelled(session, now), seen=session.status, now=now)
        # Then it is stored cancelled, out of the due index, with no claim and no note owed
        assert write.committed
        stored = store.get(session.session_id)
        assert stored is not None
        assert stored.status is SessionStatus.CANCELLED
        assert (stored.note_state, stored.claim_id, stored.next_check_at) == (None, None, None)
        assert stored.closed_at == now
        assert store.due_session_ids(now + timedelta(days=1), 10) == []
        # And the guard is free: a new request for the same capture starts
        again = a_session(minute=2)
        assert store.create(again, now=now) == (again, True)
        # And no claim can ever be taken on it
        assert store.claim(session.session_id, now=now + timedelta(days=1), lease=LEASE) is None

    def test_a_live_claim_blocks_the_cancel_and_a_lapsed_one_does_not(
        self, store: SessionStore
    ) -> None:
        # Given a session held by a claim
        session = a_session()
        store.create(session, now=START)
        claim = store.claim(session.session_id, now=START, lease=LEASE)
        assert claim is not None
        # When a cancel is written within the lease, then it is not, and shows the holder
        within = START + timedelta(minutes=1)
        write = store.cancel(cancelled(session, within), seen=session.status, now=within)
        assert not write.committed
        assert write.stored is not None and write.stored.claim_id == claim.session.claim_id
        # When the lease has lapsed (the holder died), then it is
        lapsed = START + LEASE
        assert store.cancel(cancelled(session, lapsed), seen=session.status, now=lapsed).committed
        # And the dead holder's late save cannot overwrite the cancel
        late = replace(claim.session, status=SessionStatus.RESOLVED, claim_id=None)
        assert not store.save(late, held_claim=claim.session.claim_id or "")

    def test_a_status_changed_since_it_was_read_blocks_the_cancel(
        self, store: SessionStore, table: str
    ) -> None:
        session = a_session(status=SessionStatus.REQUESTED)
        put(table, replace(session, status=SessionStatus.PENDING))
        write = store.cancel(cancelled(session, START), seen=SessionStatus.REQUESTED, now=START)
        assert not write.committed
        assert write.stored is not None and write.stored.status is SessionStatus.PENDING

    def test_a_missing_session_is_told_as_none(self, store: SessionStore) -> None:
        session = a_session()
        write = store.cancel(cancelled(session, START), seen=session.status, now=START)
        assert write == type(write)(committed=False, stored=None)

    def test_old_final_items_read_updated_at_as_closed_at(self, store: SessionStore) -> None:
        # Given a resolved session stored before closed_at existed
        done = replace(a_session(status=SessionStatus.RESOLVED), updated_at=START + LEASE)
        item = to_item(done)
        item.pop("closed_at", None)
        # Then its closing time is its last update; an open one has none
        assert from_item(item).closed_at == START + LEASE
        assert from_item(to_item(a_session())).closed_at is None
