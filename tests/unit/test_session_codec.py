"""The store's codec: sessions, pointers and cursors to and from items, with no DynamoDB at all.

Stored items are a contract with deployed stacks, so their field names are spelled out here.
These tests import no moto and open no socket (a socket would fail them).
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from capture_bridge.errors import InvalidCursor
from capture_bridge.models import (
    CaptureSession,
    Delivery,
    NoteState,
    SessionStatus,
)
from capture_bridge.store.codec import (
    API_DELIVERY_MEMORY,
    DUE_BUCKETS,
    Idempotency,
    SessionIndex,
    SessionQuery,
    decode_cursor,
    delivery_pointer,
    due_bucket,
    encode_cursor,
    from_item,
    guard_key,
    to_item,
)
from tests.store_sessions import START, new_session

# The package, found from here (tests.conftest would bring moto with it).
LAYER = Path(__file__).resolve().parents[2] / "layers" / "bridge"
BY_TICKET = SessionQuery(SessionIndex.BY_TICKET, "zendesk#1001")
PENDING = SessionQuery(SessionIndex.BY_STATUS, "pending")
# Every field a session item can carry, as deployed stacks have stored them.
SESSION_FIELDS = {
    "pk",
    "session_id",
    "helpdesk",
    "ticket_id",
    "ticket_key",
    "provider",
    "action",
    "capture_key",
    "user_id",
    "description",
    "reference",
    "links",
    "details",
    "error",
    "fault",
    "faults",
    "claim_id",
    "status",
    "created_at",
    "updated_at",
    "closed_at",
    "deadline_at",
    "next_check_at",
    "due_bucket",
    "attempts",
    "polls",
    "unconfirmed",
    "interruptions",
    "note_state",
    "note_attempts",
    "expires_at",
}


@pytest.fixture(autouse=True)
def _no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The codec is pure: any attempt to reach a network fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the codec opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def a_full_session() -> CaptureSession:
    """A session with every optional field set (but `error`, left out when empty)."""
    return replace(
        new_session(),
        status=SessionStatus.RESOLVED,
        links={"report": "https://dash.bugpilot.io/report/r1"},
        details={"kind": "screenshot"},
        reference="http://127.0.0.1/api/v1/session-info/ws/t",
        error=None,
        note_state=NoteState.PENDING,
        attempts=2,
        polls=3,
        unconfirmed=1,
        interruptions=1,
        faults=2,
        fault="Broken: a defect",
        expires_at=123,
        closed_at=START + timedelta(minutes=3),
    )


class TestSessionItems:
    def test_a_session_round_trips_through_its_item(self) -> None:
        # Given a session with every optional field set
        session = a_full_session()
        # When it is written as an item and read back
        item = to_item(session)
        # Then it is the same session, due in its bucket, and an empty field is left out
        assert from_item(item) == session
        assert item["due_bucket"] == due_bucket(session.session_id)
        assert "error" not in item

    def test_the_item_keeps_the_field_names_deployed_stacks_store(self) -> None:
        # Given a session with every field set, its error too
        session = replace(a_full_session(), error="NO_ACCESS")
        # When it is written as an item
        item = to_item(session)
        # Then its fields are exactly those deployed stacks store and read, in their shapes
        assert set(item) == SESSION_FIELDS
        assert item["pk"] == f"session#{session.session_id}"
        assert item["ticket_key"] == "zendesk#1001"
        assert item["created_at"] == "2026-11-25T12:00:00Z"
        assert item["status"] == "resolved"
        assert item["note_state"] == "pending"
        assert item["links"] == {"report": "https://dash.bugpilot.io/report/r1"}
        assert isinstance(item["expires_at"], int)

    def test_an_item_in_the_shape_stored_before_providers_loads_as_bugpilot(self) -> None:
        # Given an open session as the bridge stored it before sessions named their provider
        legacy = {
            "pk": "session#s-1",
            "session_id": "s-1",
            "helpdesk": "zendesk",
            "ticket_id": "1001",
            "user_id": "user-42",
            "action": "upload-session",
            "description": "Requested from Zendesk ticket #1001",
            "status": "pending",
            "created_at": "2026-11-25T12:00:00Z",
            "updated_at": "2026-11-25T12:00:00Z",
            "deadline_at": "2026-11-25T12:30:00Z",
            "next_check_at": "2026-11-25T12:00:30Z",
            "session_info_url": "https://widget-api.bugpilot.io/api/v1/session-info/ws/t",
            "report_url": "https://dash.bugpilot.io/report/r1",
            "attempts": 1,
            "polls": 0,
            "note_attempts": 0,
        }
        # When it is read
        session = from_item(legacy)
        # Then it is a Bugpilot session, guarded as it was, with its reference and link carried
        assert session.provider == "bugpilot"
        assert session.capture_key == "zendesk#1001#upload-session"
        assert session.reference == legacy["session_info_url"]
        assert session.links == {"report": legacy["report_url"]}
        assert to_item(session)["capture_key"] == "zendesk#1001#upload-session"

    def test_a_session_finished_before_closed_at_existed_closed_at_its_last_update(self) -> None:
        # Given a resolved session stored without `closed_at`, last updated ten minutes in
        updated = START + timedelta(minutes=10)
        finished = replace(new_session(), status=SessionStatus.RESOLVED, updated_at=updated)
        item = to_item(replace(finished, closed_at=None, next_check_at=None))
        assert "closed_at" not in item
        # When it is read, then its last update stands for its closing
        assert from_item(item).closed_at == updated

    def test_only_sessions_with_work_are_in_the_due_index(self) -> None:
        # Given a session whose note is posted, and one with no next check
        posted = replace(new_session(), status=SessionStatus.RESOLVED, note_state=NoteState.POSTED)
        unscheduled = replace(new_session(), next_check_at=None)
        # Then neither carries the due index's key
        assert "due_bucket" not in to_item(posted)
        assert "due_bucket" not in to_item(unscheduled)

    def test_a_session_keeps_its_due_bucket_for_life(self) -> None:
        # Given many session ids
        ids = [f"s-{n}" for n in range(200)]
        # Then each one's bucket is always the same, and every bucket is used
        assert [due_bucket(i) for i in ids] == [due_bucket(i) for i in ids]
        assert {due_bucket(i) for i in ids} == {f"due#{n}" for n in range(DUE_BUCKETS)}


class TestPointers:
    def test_a_webhook_delivery_is_remembered_per_capture_as_its_helpdesk_says(self) -> None:
        # Given a session from a webhook delivery its adapter remembers for two hours
        session = new_session()
        delivery = Delivery("fp-1", timedelta(hours=2))
        # When its pointer is made
        pointer = delivery_pointer(session, START, delivery, None)
        # Then it names the helpdesk, the delivery and the capture, and lapses in two hours
        assert pointer is not None
        assert pointer.key == f"delivery#zendesk#fp-1#{session.capture_key}"
        assert pointer.item(session.session_id) == {
            "pk": pointer.key,
            "session_id": session.session_id,
            "expires_at": int((START + timedelta(hours=2)).timestamp()),
        }

    def test_an_idempotency_key_is_hashed_and_remembered_a_day_with_its_body(self) -> None:
        # Given an API call's key, of any shape, and its body's fingerprint
        idempotency = Idempotency("open#zendesk#1001 / any text", "body-print")
        # When its pointer is made
        pointer = delivery_pointer(new_session(), START, None, idempotency)
        # Then the key is hashed (so it cannot form another item's key), kept a day with the print
        assert pointer is not None
        assert pointer.key.startswith("delivery#api#")
        assert "open#" not in pointer.key
        assert pointer.expires == START + API_DELIVERY_MEMORY
        assert pointer.item("s-1")["fingerprint"] == "body-print"

    def test_a_delivery_its_helpdesk_cannot_tell_apart_leaves_only_the_guard(self) -> None:
        # Given a delivery without a fingerprint, and no delivery at all
        session = new_session()
        # Then there is no pointer: only the open-capture guard deduplicates
        assert delivery_pointer(session, START, Delivery("", timedelta(hours=1)), None) is None
        assert delivery_pointer(session, START, None, None) is None
        assert guard_key(session) == "open#zendesk#1001#bugpilot#upload-session"


class TestCursors:
    def test_a_cursor_gives_back_the_key_it_was_made_after(self) -> None:
        # Given the whole item of the last session of a page
        item = to_item(new_session())
        # When a cursor is made after it, and read back for the same query
        key = decode_cursor(BY_TICKET, encode_cursor(BY_TICKET, item))
        # Then it is the start key of the next page: the table and index keys only
        assert key == {
            "pk": {"S": item["pk"]},
            "ticket_key": {"S": "zendesk#1001"},
            "created_at": {"S": "2026-11-25T12:00:00Z"},
        }

    def test_a_cursor_of_another_query_is_refused(self) -> None:
        # Given a cursor from a ticket's listing
        cursor = encode_cursor(BY_TICKET, to_item(new_session()))
        # Then it cannot read another ticket, a status, or another floor
        for other in (
            SessionQuery(SessionIndex.BY_TICKET, "zendesk#2002"),
            PENDING,
            replace(BY_TICKET, since=START),
        ):
            with pytest.raises(InvalidCursor):
                decode_cursor(other, cursor)

    def test_a_cursor_rewritten_to_another_partition_is_refused(self) -> None:
        # Given a cursor whose key was rewritten to another ticket
        key = {
            "pk": "session#x",
            "ticket_key": "zendesk#2002",
            "created_at": "2026-11-25T12:00:00Z",
        }
        forged = encode_cursor(BY_TICKET, key)
        # Then it is refused for the ticket its query names
        with pytest.raises(InvalidCursor):
            decode_cursor(BY_TICKET, forged)

    @pytest.mark.parametrize(
        "cursor",
        [
            "",
            "not base64 !",
            "é",
            "x" * 3000,
            base64.urlsafe_b64encode(b"[1, 2]").decode(),
            base64.urlsafe_b64encode(b"\xff\xfe").decode(),
            base64.urlsafe_b64encode(json.dumps({"v": 1}).encode()).decode(),
        ],
    )
    def test_a_malformed_cursor_is_the_callers_error(self, cursor: str) -> None:
        with pytest.raises(InvalidCursor):
            decode_cursor(BY_TICKET, cursor)

    def test_a_cursor_below_the_floor_is_refused(self) -> None:
        # Given a cursor for a listing since START whose key lies before it
        query = replace(PENDING, since=START)
        key = {"pk": "session#x", "status": "pending", "created_at": "2020-01-01T00:00:00Z"}
        # Then it is refused
        with pytest.raises(InvalidCursor):
            decode_cursor(query, encode_cursor(query, key))


def test_the_codec_loads_without_boto3() -> None:
    # Given a fresh interpreter, when the codec is imported, then no AWS library came with it
    probe = (
        "import sys\n"
        "import capture_bridge.store.codec\n"
        "assert not {'boto3', 'botocore'} & set(sys.modules), sorted(sys.modules)\n"
    )
    result = subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(LAYER), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
