"""The queue's worker checks a pending capture without a claim: one write when it is not ready.

A check is read-only at the provider, so the worker reads the session, checks it, and saves the
answer only if the session is still as it read it. Anything else (a start, a note, a session that
raised) is claimed first, as in the scheduled run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from capture_bridge.capture.bugpilot import BugpilotProvider
from capture_bridge.capture_flow import CLAIM_LEASE
from capture_bridge.models import CaptureSession, NoteState, SessionStatus
from capture_bridge.resolver import RunOutcome, Step, step_session
from capture_bridge.runtime import Runtime
from capture_bridge.session_commands import CancelOutcome, cancel
from capture_bridge.work_queue import WorkItem
from capture_bridge.worker import QueueMessage, work
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from tests.conftest import Clock, Webhook, trigger_body

WRITES = frozenset({"put_item", "update_item", "delete_item", "transact_write_items"})


class CountingClient:
    """The store's DynamoDB client, counting the calls made through it by name."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return call

    @property
    def writes(self) -> int:
        return sum(count for name, count in self.calls.items() if name in WRITES)


@dataclass
class RecordingQueue:
    """A work queue that keeps what it was sent."""

    sent: list[WorkItem] = field(default_factory=list)

    def send(self, items: Sequence[WorkItem], *, now: datetime) -> list[WorkItem]:
        self.sent.extend(items)
        return []

    def backlog(self) -> int | None:
        return 0


@dataclass
class Bench:
    runtime: Runtime
    clock: Clock
    bugpilot: BugpilotSimulator
    zendesk: ZendeskSimulator
    queue: RecordingQueue
    client: CountingClient

    def pending(self) -> str:
        """A started capture, due for its first check; returns its id."""
        self.bugpilot.connect_user("user-42")
        answer = Webhook(self.runtime, self.clock).send(trigger_body())
        assert answer.status == 202, answer.body
        self.clock.advance(seconds=30)
        session_id: str = answer.body["session_id"]
        return session_id

    def work_on(self, session_id: str) -> list[str]:
        """One worker batch holding the session's reminder, due now; returns the failures."""
        self.client.calls.clear()
        self.queue.sent.clear()
        message = QueueMessage("m-1", WorkItem(session_id, self.clock()))
        return work(self.runtime, [message], self.clock, lambda: 110_000, sleep=self.clock_sleep)

    def clock_sleep(self, seconds: float) -> None:
        self.clock.advance(seconds=seconds)

    def checks(self) -> int:
        return len(self.bugpilot.requests("session_info"))


@pytest.fixture
def bench(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, zendesk: ZendeskSimulator
) -> Bench:
    queue = RecordingQueue()
    store = runtime.store
    client = CountingClient(store._table._client)
    store._table._client = client
    return Bench(
        Runtime(runtime.settings, store, runtime.http, queue),
        clock,
        bugpilot,
        zendesk,
        queue,
        client,
    )


def during_the_check(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Do `action` once, while Bugpilot is being asked: between the worker's read and save."""
    original = BugpilotProvider.check
    done: list[bool] = []

    def checking(provider: BugpilotProvider, session: CaptureSession) -> Any:
        if not done:
            done.append(True)
            action()
        return original(provider, session)

    monkeypatch.setattr(BugpilotProvider, "check", checking)


def test_a_check_that_finds_the_capture_not_ready_costs_one_write(bench: Bench) -> None:
    # given a started capture due for its first check, its report not ready
    session_id = bench.pending()
    before = bench.runtime.store.get(session_id)
    assert before is not None
    # when the worker takes its reminder
    assert bench.work_on(session_id) == []
    # then Bugpilot was asked once, and the answer saved in one write, with no claim left
    assert bench.checks() == 1
    assert bench.client.writes == 1
    after = bench.runtime.store.get(session_id)
    assert after is not None
    assert after.status is SessionStatus.PENDING
    assert after.polls == before.polls + 1
    assert after.claim_id is None
    # and its next reminder is on its way, for its next check
    assert bench.queue.sent == [WorkItem(session_id, after.next_check_at)]  # type: ignore[arg-type]


def test_a_check_that_finds_the_report_posts_one_note_under_a_claim(bench: Bench) -> None:
    # given a started capture whose report is ready
    session_id = bench.pending()
    bench.bugpilot.complete_report(bench.bugpilot.tokens[-1])
    # when the worker takes its reminder
    assert bench.work_on(session_id) == []
    # then Bugpilot was asked once (the claimed step used that answer), and one note went out
    assert bench.checks() == 1
    assert len(bench.zendesk.comments("1001")) == 1
    after = bench.runtime.store.get(session_id)
    assert after is not None
    assert after.status is SessionStatus.RESOLVED
    assert after.note_state is NoteState.POSTED
    # and nothing is left to remind
    assert bench.queue.sent == []
    # when the same reminder comes again
    assert bench.work_on(session_id) == []
    # then it is skipped after one read: no check, no write, no note
    assert bench.checks() == 1
    assert bench.client.writes == 0
    assert len(bench.zendesk.comments("1001")) == 1


def test_a_reminder_for_a_session_not_due_yet_costs_no_write(bench: Bench) -> None:
    # given a capture checked a moment ago (due again later)
    session_id = bench.pending()
    bench.work_on(session_id)
    checks = bench.checks()
    # when a duplicate of the reminder it just had arrives
    assert bench.work_on(session_id) == []
    # then nothing is asked, written or sent
    assert bench.checks() == checks
    assert bench.client.writes == 0
    assert bench.queue.sent == []


def test_a_claim_taken_while_checking_wins_and_the_check_is_dropped(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pending capture due now, and another holder that claims it while our worker checks
    session_id = bench.pending()
    store = bench.runtime.store
    rival: list[Any] = []
    during_the_check(
        monkeypatch,
        lambda: rival.append(store.claim(session_id, now=bench.clock(), lease=CLAIM_LEASE)),
    )
    # when the worker steps it
    step = step_session(bench.runtime, session_id, bench.clock, read_first=True)
    # then our answer is not saved over the rival's claim, and no reminder is ours to send
    assert step == Step(RunOutcome.SKIPPED, None)
    stored = store.get(session_id)
    assert stored is not None
    assert rival[0] is not None
    assert stored.claim_id == rival[0].session.claim_id
    assert stored.polls == rival[0].session.polls


def test_a_cancel_while_checking_stays_a_cancel(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pending capture due now, cancelled through the sessions API while our worker checks
    session_id = bench.pending()
    store = bench.runtime.store
    cancels: list[CancelOutcome] = []
    during_the_check(
        monkeypatch, lambda: cancels.append(cancel(store, session_id, bench.clock).outcome)
    )
    # when the worker steps it
    step = step_session(bench.runtime, session_id, bench.clock, read_first=True)
    # then the cancel stands: nothing saved over it, no note, no reminder
    assert cancels == [CancelOutcome.CANCELLED]
    assert step.outcome is RunOutcome.SKIPPED
    stored = store.get(session_id)
    assert stored is not None
    assert stored.status is SessionStatus.CANCELLED
    assert bench.zendesk.comments("1001") == []


def test_a_retried_save_whose_first_attempt_landed_counts_as_saved(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pending capture due now, and DynamoDB whose answer to the save is lost, so that
    # botocore sends the same write again (which then fails its own condition)
    session_id = bench.pending()
    client = bench.client
    original = client.__getattr__("put_item")

    def put_twice(**kwargs: Any) -> Any:
        original(**kwargs)
        return original(**kwargs)

    monkeypatch.setattr(client, "put_item", put_twice, raising=False)
    # when the worker steps it
    step = step_session(bench.runtime, session_id, bench.clock, read_first=True)
    # then the step is known to be saved, and its reminder is sent
    assert step.outcome is RunOutcome.WAITING
    assert step.due is not None
