"""The seam app webhooks need, against moto and Bugpilot's simulator, with a stand-in helpdesk.

A payload naming only a contact is stored first and its requester looked up once; a call carrying
several events remembers each by its own id; a handshake gets the answer the vendor expects.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge import helpdesks, intake
from capture_bridge.capture_flow import CLAIM_LEASE
from capture_bridge.helpdesks import LookupOutcome, RequesterLookup
from capture_bridge.models import CaptureSession, ErrorCode, SessionStatus
from capture_bridge.resolver import resolve_due_sessions
from capture_bridge.runtime import Runtime
from capture_bridge.webhook import WebhookAnswer, receive
from local_runner.simulators import BugpilotSimulator
from tests import lookup_helpdesk
from tests.conftest import PLENTY_MS, Clock
from tests.helpdesk_desk import stored
from tests.lookup_helpdesk import Directory
from tests.store_sessions import unidentified_request


@pytest.fixture
def directory(monkeypatch: pytest.MonkeyPatch) -> Directory:
    """The stand-in helpdesk registered as `lookupdesk`, with a fresh directory."""
    monkeypatch.setitem(helpdesks._MODULES, "lookupdesk", "tests.lookup_helpdesk")
    fresh = Directory()
    monkeypatch.setattr(lookup_helpdesk, "DIRECTORY", [fresh])
    return fresh


def send(runtime: Runtime, clock: Clock, payload: dict[str, Any]) -> WebhookAnswer:
    return receive(
        "lookupdesk",
        {"X-Test-Secret": lookup_helpdesk.SECRET},
        json.dumps(payload),
        is_base64=False,
        runtime_factory=lambda: runtime,
        clock=clock,
    )


def event(event_id: str, ticket: str, contact: str = "c-7") -> dict[str, str]:
    return {"id": event_id, "ticket": ticket, "contact": contact}


def run(runtime: Runtime, clock: Clock) -> None:
    resolve_due_sessions(runtime, lambda: PLENTY_MS, clock)


def session(runtime: Runtime, session_id: str) -> CaptureSession:
    found = runtime.store.get(session_id)
    assert found is not None
    return found


def test_a_contact_is_looked_up_once_after_the_request_is_stored_then_the_capture_starts(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, directory: Directory
) -> None:
    # Given a helpdesk that knows contact c-7 as user-7, who is online
    directory.contacts["c-7"] = "user-7"
    bugpilot.connect_user("user-7")
    # When a call names only the contact
    answer = send(runtime, clock, {"events": [event("e-1", "T-1")]})
    # Then the session is stored, its requester looked up once, and Bugpilot asked for user-7
    assert answer.status == 202, answer.body
    started = session(runtime, answer.body["session_id"])
    assert (started.status, started.user_id) == (SessionStatus.PENDING, "user-7")
    assert directory.lookups == ["c-7"]
    assert [json.loads(r.body)["userId"] for r in bugpilot.requests("action")] == ["user-7"]
    # When the call is delivered again and the resolver runs
    again = send(runtime, clock, {"events": [event("e-1", "T-1")]})
    run(runtime, clock.advance(minutes=1) and clock)
    # Then nothing is asked or started a second time
    assert again.body["duplicate"] is True
    assert directory.lookups == ["c-7"]
    assert len(bugpilot.requests("action")) == 1


def test_a_failing_lookup_keeps_the_request_and_the_resolver_asks_again_then_starts(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, directory: Directory
) -> None:
    # Given a helpdesk that fails once (rate limited for a minute), then knows the contact
    directory.contacts["c-7"] = "user-7"
    directory.scripted.append(RequesterLookup(LookupOutcome.RETRYABLE, retry_after_seconds=60))
    bugpilot.connect_user("user-7")
    # When the call comes in
    answer = send(runtime, clock, {"events": [event("e-1", "T-1")]})
    # Then it is accepted and stored, nothing started, the look-up due again in a minute
    assert answer.status == 202
    waiting = session(runtime, answer.body["session_id"])
    assert (waiting.status, waiting.user_id) == (SessionStatus.REQUESTED, "")
    assert waiting.error == ErrorCode.REQUESTER_LOOKUP_FAILING
    assert waiting.next_check_at == clock() + timedelta(seconds=60)
    assert bugpilot.requests("action") == []
    # When the resolver runs then: the requester is found and recorded, as a step of its own
    clock.advance(seconds=60)
    run(runtime, clock)
    found = session(runtime, waiting.session_id)
    assert (found.status, found.user_id) == (SessionStatus.REQUESTED, "user-7")
    assert bugpilot.requests("action") == []
    # And the next run starts the capture, without asking the helpdesk again
    run(runtime, clock)
    assert session(runtime, waiting.session_id).status is SessionStatus.PENDING
    assert directory.lookups == ["c-7", "c-7"]
    assert len(bugpilot.requests("action")) == 1


def test_a_contact_nobody_can_find_fails_with_one_note_saying_why(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, directory: Directory
) -> None:
    # Given a contact the helpdesk does not know
    answer = send(runtime, clock, {"events": [event("e-1", "T-1", contact="c-unknown")]})
    # Then the request is stored as failed, nothing started
    failed = session(runtime, answer.body["session_id"])
    assert (failed.status, failed.error) == (SessionStatus.FAILED, ErrorCode.REQUESTER_NOT_FOUND)
    assert bugpilot.requests("action") == []
    # When the resolver runs twice, then exactly one note explains it
    run(runtime, clock)
    run(runtime, clock.advance(minutes=5) and clock)
    assert [ticket for ticket, _ in directory.notes] == ["T-1"]
    assert "we could not tell who the requester is" in directory.notes[0][1].text


def test_a_holder_that_died_during_the_lookup_is_followed_by_a_lookup_not_a_failure(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, directory: Directory
) -> None:
    # Given a session a webhook stored and claimed, then died while asking for the requester
    directory.contacts["c-7"] = "user-7"
    bugpilot.connect_user("user-7")
    opened = CaptureSession.open(
        unidentified_request("lookupdesk", "T-1"),
        now=clock(),
        max_wait=timedelta(minutes=30),
        claim_id="dead-webhook",
        next_check_at=clock() + CLAIM_LEASE,
    )
    runtime.store.create(opened, now=clock())
    # When its claim lapses and the resolver runs twice
    clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)
    run(runtime, clock)
    run(runtime, clock)
    # Then nothing had been started, so it is looked up and started, not failed as interrupted
    after = session(runtime, opened.session_id)
    assert (after.status, after.user_id) == (SessionStatus.PENDING, "user-7")
    assert after.interruptions == 1
    assert len(bugpilot.requests("action")) == 1


def test_several_events_in_one_call_are_each_remembered_by_their_own_id(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, directory: Directory
) -> None:
    # Given two contacts the helpdesk knows
    directory.contacts.update({"c-1": "user-1", "c-2": "user-2", "c-3": "user-3"})
    # When one call carries events on two tickets
    first = send(
        runtime, clock, {"events": [event("e-1", "T-1", "c-1"), event("e-2", "T-2", "c-2")]}
    )
    # Then each is a capture of its own
    assert first.status == 202
    assert [item["duplicate"] for item in first.body["sessions"]] == [False, False]
    # When a later call carries one of them again and a new one
    clock.advance(minutes=10)
    second = send(
        runtime, clock, {"events": [event("e-2", "T-2", "c-2"), event("e-3", "T-3", "c-3")]}
    )
    # Then the event seen before is its duplicate and the new one a new capture
    sessions = second.body["sessions"]
    assert [item["duplicate"] for item in sessions] == [True, False]
    assert sessions[0]["session_id"] == first.body["sessions"][1]["session_id"]
    assert directory.lookups == ["c-1", "c-2", "c-3"]


def test_a_call_with_no_event_asking_for_a_capture_stores_nothing(
    runtime: Runtime, clock: Clock, table: str, directory: Directory
) -> None:
    answer = send(runtime, clock, {"events": []})
    assert answer.status == 200
    assert "ignored" in answer.body
    assert stored(table) == 0


def test_a_handshake_gets_the_answer_the_vendor_expects_and_stores_nothing(
    runtime: Runtime, clock: Clock, table: str, directory: Directory
) -> None:
    answer = send(runtime, clock, {"challenge": "abc123"})
    assert (answer.status, answer.body) == (200, {"challenge": "abc123"})
    assert stored(table) == 0


def test_a_session_stored_without_a_reference_starts_as_before(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, directory: Directory
) -> None:
    # Given a payload that names its requester
    bugpilot.connect_user("user-9")
    payload = {"events": [{**event("e-9", "T-9", contact=""), "requester": "user-9"}]}
    answer = send(runtime, clock, payload)
    # Then the helpdesk is never asked
    started = session(runtime, answer.body["session_id"])
    assert (started.status, started.user_id) == (SessionStatus.PENDING, "user-9")
    assert replace(started).requester_ref is None
    assert directory.lookups == []


def test_captures_left_when_the_call_has_no_time_are_started_by_the_resolver_never_interrupted(
    runtime: Runtime,
    clock: Clock,
    bugpilot: BugpilotSimulator,
    directory: Directory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a call whose time for starting captures itself is already over (many events)
    monkeypatch.setattr(intake, "INLINE_START_SECONDS", 0.0)
    directory.contacts.update({"c-1": "user-1", "c-2": "user-2"})
    bugpilot.connect_user("user-1")
    bugpilot.connect_user("user-2")
    # When it carries two events
    answer = send(
        runtime, clock, {"events": [event("e-1", "T-1", "c-1"), event("e-2", "T-2", "c-2")]}
    )
    # Then both are stored, released and due at once, nothing asked or started yet
    ids = [item["session_id"] for item in answer.body["sessions"]]
    for session_id in ids:
        released = session(runtime, session_id)
        assert (released.status, released.claim_id) == (SessionStatus.REQUESTED, None)
        assert released.next_check_at == clock()
    assert directory.lookups == []
    assert bugpilot.requests("action") == []
    # When the resolver runs twice: the requesters are looked up, then the captures started
    run(runtime, clock)
    run(runtime, clock)
    # Then each is started once, none taken for interrupted
    for session_id in ids:
        started = session(runtime, session_id)
        assert (started.status, started.interruptions) == (SessionStatus.PENDING, 0)
    assert sorted(directory.lookups) == ["c-1", "c-2"]
    assert len(bugpilot.requests("action")) == 2
