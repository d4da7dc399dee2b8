"""The worker's pure parts: reading SQS records, the reminder's delay, what it does with a reminder
before any store call, its sizing against the template, and the work-queue test double itself.

The worker steps sessions against moto and the simulators in tests/integration/test_worker.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st

from capture_bridge import worker
from capture_bridge.capture_flow import CLAIM_LEASE
from capture_bridge.models import format_time
from capture_bridge.resolver import (
    MAX_TOKEN_WAIT,
    NOTE_BUDGET_MS,
    SESSION_BUDGET_MS,
    STALE_SWEEP_MINUTES,
    stale_sweep,
)
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import Claim
from capture_bridge.work_queue import (
    MAX_DELAY_SECONDS,
    SqsWorkQueue,
    WorkItem,
    delay_seconds,
    work_queue,
)
from local_runner.template import load_yaml
from tests.conftest import START, Clock
from tests.work_queue_double import MAX_RECEIVES, VISIBILITY_TIMEOUT, QueueDouble

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
SESSION = "s-1"
PLENTY_MS = 120_000


def record(body: str, message_id: str = "m-1") -> dict[str, Any]:
    return {"messageId": message_id, "body": body}


def reminder(due: datetime, session_id: str = SESSION) -> str:
    return WorkItem(session_id, due).body()


# -- reading the records ------------------------------------------------------------------------


class TestMessages:
    def test_a_reminder_reads_back_as_it_was_sent(self) -> None:
        # Given a reminder's body, when the worker reads it, then it is the same item
        [message] = worker.messages_of({"Records": [record(reminder(START))]})
        assert message == worker.QueueMessage("m-1", WorkItem(SESSION, START))

    @pytest.mark.parametrize(
        "body",
        [
            "",
            "not json",
            "null",
            "[]",
            '"text"',
            "{}",
            json.dumps({"session_id": "", "due": format_time(START)}),
            json.dumps({"session_id": 7, "due": format_time(START)}),
            json.dumps({"session_id": SESSION}),
            json.dumps({"session_id": SESSION, "due": 1764072000}),
            json.dumps({"session_id": SESSION, "due": "2026-11-25T12:00:00"}),
            json.dumps({"session_id": SESSION, "due": "2026-13-25T12:00:00Z"}),
            json.dumps({"session_id": SESSION, "due": "2026-11-25T12:00:00+01:00"}),
        ],
    )
    def test_a_body_that_is_no_reminder_is_kept_to_fail(self, body: str) -> None:
        # Given a record whose body is not a reminder, when the worker reads the batch
        found = worker.messages_of({"Records": [record(reminder(START), "good"), record(body)]})
        # Then it is kept, without an item (to fail alone), and the good one is read
        assert found == [
            worker.QueueMessage("good", WorkItem(SESSION, START)),
            worker.QueueMessage("m-1", None),
        ]

    @given(body=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
    def test_no_body_stops_the_batch_from_being_read(self, body: str) -> None:
        # Given any body, when the worker reads it, then it gets a reminder or nothing, never raises
        [message] = worker.messages_of({"Records": [record(body)]})
        assert message.item is None or message.item.due.tzinfo is not None

    def test_a_body_nested_too_deep_for_the_parser_fails_alone(self) -> None:
        # Given a batch with a reminder and a body of JSON nested deeper than Python's parser goes
        # (a RecursionError, not a ValueError; SQS takes bodies up to 256 KiB)
        event = {"Records": [record(reminder(START), "good"), record("[" * 100_000)]}
        # When the worker reads the batch, then the deep one alone is kept to fail
        assert worker.messages_of(event) == [
            worker.QueueMessage("good", WorkItem(SESSION, START)),
            worker.QueueMessage("m-1", None),
        ]

    def test_an_event_without_records_is_an_empty_batch(self) -> None:
        assert worker.messages_of({}) == []
        assert worker.messages_of({"Records": None}) == []


# -- the reminder's delay -----------------------------------------------------------------------


class TestDelay:
    @pytest.mark.parametrize(
        ("ahead", "delay"),
        [
            (timedelta(seconds=30), 30),
            (timedelta(seconds=29, milliseconds=1), 30),
            (timedelta(0), 0),
            (timedelta(seconds=-40), 0),
            (timedelta(minutes=15), MAX_DELAY_SECONDS),
            (timedelta(hours=4), MAX_DELAY_SECONDS),
        ],
    )
    def test_whole_seconds_rounded_up_within_what_sqs_takes(
        self, ahead: timedelta, delay: int
    ) -> None:
        assert delay_seconds(WorkItem(SESSION, START + ahead), START) == delay

    @given(ahead_ms=st.integers(-(10**9), 10**9))
    def test_never_early_unless_sqs_cannot_wait_that_long(self, ahead_ms: int) -> None:
        # Given any due time, when its delay is computed
        due = START + timedelta(milliseconds=ahead_ms)
        delay = delay_seconds(WorkItem(SESSION, due), START)
        # Then it is within SQS's limits, and the reminder comes no earlier than due unless capped
        assert 0 <= delay <= MAX_DELAY_SECONDS
        assert START + timedelta(seconds=delay) >= due or delay == MAX_DELAY_SECONDS


# -- what the worker does before any store call -------------------------------------------------


@dataclass
class NoClaimStore:
    """A store without the session: records when it was first asked for (read, or claimed)."""

    clock: Clock
    claims: list[tuple[str, datetime]] = field(default_factory=list)

    def get(self, session_id: str) -> None:
        # The worker reads a session before it claims it.
        self.claims.append((session_id, self.clock()))

    def claim(self, session_id: str, *, now: datetime, lease: timedelta) -> Claim | None:
        self.claims.append((session_id, now))
        return None


@dataclass
class BareRuntime:
    """What `worker.work` reads of a runtime before a claim succeeds."""

    store: NoClaimStore
    queue: QueueDouble | None


@dataclass
class Bench:
    clock: Clock
    store: NoClaimStore
    queue: QueueDouble
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds=seconds)

    def work(self, *bodies: str, remaining_ms: int = PLENTY_MS, queue: bool = True) -> list[str]:
        runtime = cast(Runtime, BareRuntime(self.store, self.queue if queue else None))
        messages = worker.messages_of(
            {"Records": [record(body, f"m-{i}") for i, body in enumerate(bodies)]}
        )
        return worker.work(runtime, messages, self.clock, lambda: remaining_ms, sleep=self.sleep)


@pytest.fixture
def bench() -> Bench:
    clock = Clock()
    return Bench(clock, NoClaimStore(clock), QueueDouble(clock))


class TestBeforeTheClaim:
    def test_a_reminder_due_claims_at_once(self, bench: Bench) -> None:
        # Given a reminder due now, when the worker takes it
        assert bench.work(reminder(START)) == []
        # Then it claims the session without waiting, and sends nothing (it was not due)
        assert bench.store.claims == [(SESSION, START)]
        assert (bench.slept, bench.queue.sent) == ([], [])

    def test_an_early_reminder_waits_for_its_time(self, bench: Bench) -> None:
        # Given a reminder due in 4.5 seconds (SQS rounds its delays; stored times are whole)
        due = START + timedelta(seconds=4, milliseconds=500)
        # When the worker takes it
        assert bench.work(reminder(due)) == []
        # Then it waits until due, then claims
        assert bench.slept == [4.0]  # the body holds whole seconds
        assert bench.store.claims == [(SESSION, START + timedelta(seconds=4))]

    def test_a_reminder_due_later_than_the_wait_goes_round_again(self, bench: Bench) -> None:
        # Given a reminder due in an hour (longer than SQS can delay)
        due = START + timedelta(hours=1)
        # When the worker takes it
        assert bench.work(reminder(due)) == []
        # Then it is sent on unchanged, delayed as long as SQS can, and the session is not touched
        assert [(s.item, s.delay) for s in bench.queue.sent] == [
            (WorkItem(SESSION, due), MAX_DELAY_SECONDS)
        ]
        assert (bench.store.claims, bench.slept) == ([], [])

    def test_a_reminder_just_past_the_wait_goes_round_again(self, bench: Bench) -> None:
        due = START + timedelta(seconds=worker.EARLY_WAIT_SECONDS + 1)
        assert bench.work(reminder(due)) == []
        assert [s.delay for s in bench.queue.sent] == [6]
        assert bench.store.claims == []

    def test_a_reminder_that_cannot_go_round_is_delivered_again(self, bench: Bench) -> None:
        # Given SQS refusing sends, when a reminder due later comes
        bench.queue.fail_sends = True
        failed = bench.work(reminder(START + timedelta(hours=1)))
        # Then SQS is asked to deliver it again (it is not lost), and the session is not touched
        assert failed == ["m-0"]
        assert bench.store.claims == []

    def test_without_time_for_a_step_it_goes_back_due_now(self, bench: Bench) -> None:
        # Given a worker with less time left than a step's worst case
        assert bench.work(reminder(START), remaining_ms=SESSION_BUDGET_MS - 1) == []
        # Then the reminder is sent back due now, the session not claimed
        assert [(s.item, s.delay) for s in bench.queue.sent] == [(WorkItem(SESSION, START), 0)]
        assert bench.store.claims == []

    def test_without_a_queue_nothing_goes_round_and_sqs_tries_again(self, bench: Bench) -> None:
        failed = bench.work(reminder(START + timedelta(hours=1)), queue=False)
        assert failed == ["m-0"]

    def test_a_malformed_body_fails_alone(self, bench: Bench) -> None:
        # Given a batch with a good reminder and a body that is not one
        failed = bench.work(reminder(START), "{not json")
        # Then only the bad one is failed (the redrive policy dead-letters it); the good one ran
        assert failed == ["m-1"]
        assert bench.store.claims == [(SESSION, START)]

    def test_an_empty_batch_does_nothing(self, bench: Bench) -> None:
        assert bench.work() == []
        assert bench.store.claims == []

    def test_invalid_settings_send_every_reminder_back(self) -> None:
        # Given a worker whose settings cannot be read
        def broken() -> Runtime:
            raise ValueError("TABLE_NAME is not set")

        event = {"Records": [record(reminder(START), "a"), record(reminder(START), "b")]}
        # When a batch comes, then every message is reported failed, for SQS to deliver again
        answer = worker.run(broken, event, lambda: PLENTY_MS)
        assert answer == {"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}


# -- the worker's sizing, as the template deploys it --------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_yaml(TEMPLATE)


class TestSizing:
    def test_one_sessions_worst_case_fits_the_timeout(self, template: dict[str, Any]) -> None:
        # An early wait, a step, its note, and the longest wait for the note's token
        timeout = template["Resources"]["WorkerFunction"]["Properties"]["Timeout"]
        worst_ms = (
            worker.EARLY_WAIT_SECONDS * 1000
            + SESSION_BUDGET_MS
            + NOTE_BUDGET_MS
            + MAX_TOKEN_WAIT.total_seconds() * 1000
        )
        assert worst_ms <= timeout * 1000

    def test_a_batch_is_the_pool(self, template: dict[str, Any]) -> None:
        due = template["Resources"]["WorkerFunction"]["Properties"]["Events"]["Due"]
        assert due["Properties"]["BatchSize"] == worker.MAX_BATCH
        assert due["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    def test_a_claim_outlives_its_worker_and_a_message_its_claim(
        self, template: dict[str, Any]
    ) -> None:
        timeout = template["Resources"]["WorkerFunction"]["Properties"]["Timeout"]
        queue = template["Resources"]["WorkQueue"]["Properties"]
        assert timedelta(seconds=timeout) < CLAIM_LEASE
        assert timedelta(seconds=queue["VisibilityTimeout"]) > CLAIM_LEASE
        # The double redelivers and dead-letters as the template's queue does
        assert timedelta(seconds=queue["VisibilityTimeout"]) == VISIBILITY_TIMEOUT
        assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES


# -- the test double: SQS as the worker sees it --------------------------------------------------


def answering(failed: list[str]) -> Any:
    def handler(event: dict[str, Any]) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    return handler


class Died(BaseException):
    pass


def dying(event: dict[str, Any]) -> dict[str, Any]:
    raise Died


class TestQueueDouble:
    def test_a_message_waits_for_its_delay(self) -> None:
        clock = Clock()
        queue = QueueDouble(clock)
        # Given a reminder sent due in 30 seconds
        assert queue.send([WorkItem(SESSION, START + timedelta(seconds=30))], now=START) == []
        # Then it is recorded with its delay, invisible until then
        assert [s.delay for s in queue.sent] == [30]
        assert (queue.receive(), queue.backlog()) == ([], 0)
        clock.advance(seconds=30)
        assert queue.backlog() == 1
        [message] = queue.receive()
        assert message.item == WorkItem(SESSION, START + timedelta(seconds=30))

    def test_acknowledged_messages_go_failed_ones_come_back_after_the_timeout(self) -> None:
        clock = Clock()
        queue = QueueDouble(clock)
        first, second = queue.put("a"), queue.put("b")
        # When a worker fails the second and acknowledges the first
        delivery = queue.deliver(answering([second.message_id]))
        assert delivery is not None and delivery.failed == [second.message_id]
        # Then the first is gone, the second comes back only after the visibility timeout
        assert list(queue.messages) == [second.message_id]
        clock.advance(seconds=VISIBILITY_TIMEOUT.total_seconds() - 1)
        assert queue.receive() == []
        clock.advance(seconds=1)
        assert [m.message_id for m in queue.receive()] == [second.message_id]
        assert first.message_id not in queue.messages

    def test_a_worker_that_dies_leaves_its_whole_batch(self) -> None:
        clock = Clock()
        queue = QueueDouble(clock)
        queue.put("a"), queue.put("b")
        delivery = queue.deliver(dying, dies=Died)
        assert delivery is not None and delivery.died
        clock.advance(seconds=VISIBILITY_TIMEOUT.total_seconds())
        assert len(queue.receive()) == 2

    def test_a_message_failed_at_every_receive_is_dead_lettered(self) -> None:
        clock = Clock()
        queue = QueueDouble(clock)
        poison = queue.put("{not json")
        for _ in range(MAX_RECEIVES):
            assert queue.deliver(answering([poison.message_id])) is not None
            clock.advance(seconds=VISIBILITY_TIMEOUT.total_seconds())
        # The receive after the last allowed one moves it to the dead-letter queue
        assert queue.deliver(answering([])) is None
        assert queue.dead == [poison] and queue.messages == {}

    def test_failing_sends_come_back_unsent_and_nothing_waits(self) -> None:
        queue = QueueDouble(Clock())
        queue.fail_sends = True
        items = [WorkItem(SESSION, START)]
        assert queue.send(items, now=START) == items
        assert (queue.sent, queue.messages, queue.send_calls) == ([], {}, 1)

    def test_a_batch_holds_ten(self) -> None:
        queue = QueueDouble(Clock())
        for n in range(12):
            queue.put(str(n))
        assert len(queue.receive()) == 10
        assert len(queue.receive()) == 2


# -- SqsWorkQueue: what it asks SQS, and what it makes of the answers ----------------------------


@dataclass
class FakeSqs:
    """An SQS client answering `send_message_batch` with `failed` ids, or raising `error`."""

    failed: list[str] = field(default_factory=list)
    error: Exception | None = None
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    backlog: Any = "3"

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        self.batches.append(Entries)
        if self.error is not None:
            raise self.error
        ids = {entry["Id"] for entry in Entries}
        refused = [i for i in self.failed if i in ids]
        return {
            "Failed": [{"Id": i, "Code": "InternalError", "SenderFault": False} for i in refused]
        }

    def get_queue_attributes(self, *, QueueUrl: str, AttributeNames: list[str]) -> Any:
        if self.error is not None:
            raise self.error
        return {"Attributes": {"ApproximateNumberOfMessages": self.backlog}}


QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/work"


class TestSqsWorkQueue:
    def test_items_go_ten_at_a_time_each_delayed_until_due(self) -> None:
        # Given 23 reminders, due from now to beyond SQS's longest delay
        client = FakeSqs()
        items = [WorkItem(f"s-{n}", START + timedelta(seconds=100 * n)) for n in range(23)]
        # When they are sent
        assert SqsWorkQueue(QUEUE_URL, client).send(items, now=START) == []
        # Then in batches of ten, each entry with its own id, body and whole-second delay
        assert [len(batch) for batch in client.batches] == [10, 10, 3]
        entries = [entry for batch in client.batches for entry in batch]
        assert [WorkItem.from_body(e["MessageBody"]) for e in entries] == items
        assert [e["DelaySeconds"] for e in entries] == [min(100 * n, 900) for n in range(23)]
        assert all(len({e["Id"] for e in batch}) == len(batch) for batch in client.batches)

    def test_entries_sqs_refused_come_back_unsent(self) -> None:
        client = FakeSqs(failed=["1", "3"])
        items = [WorkItem(f"s-{n}", START) for n in range(12)]
        unsent = SqsWorkQueue(QUEUE_URL, client).send(items, now=START)
        # The ids name entries within their batch: the first refused its second and fourth, the
        # second (two entries) its second
        assert unsent == [items[1], items[3], items[11]]

    def test_a_call_that_fails_leaves_its_batch_unsent_and_goes_on(self) -> None:
        client = FakeSqs(error=ClientError({"Error": {"Code": "AccessDenied"}}, "SendMessageBatch"))
        items = [WorkItem(f"s-{n}", START) for n in range(12)]
        assert SqsWorkQueue(QUEUE_URL, client).send(items, now=START) == items
        assert len(client.batches) == 2

    def test_the_backlog_is_the_visible_count_or_none(self) -> None:
        assert SqsWorkQueue(QUEUE_URL, FakeSqs()).backlog() == 3
        assert SqsWorkQueue(QUEUE_URL, FakeSqs(backlog="many")).backlog() is None
        failing = FakeSqs(error=EndpointConnectionError(endpoint_url=QUEUE_URL))
        assert SqsWorkQueue(QUEUE_URL, failing).backlog() is None

    def test_no_url_no_queue(self) -> None:
        assert work_queue("") is None


class TestStaleSweeps:
    def test_only_a_tenth_minutes_sweep_sends_what_a_busy_queue_holds_back(self) -> None:
        # Given the sweeps of an hour, one a minute, each a few seconds past its minute
        sweeps = [START + timedelta(minutes=minute, seconds=3) for minute in range(60)]
        # When each decides whether it sends stale sessions
        sending = [at.minute for at in sweeps if stale_sweep(at)]
        # Then six of them do, ten minutes apart, whatever the seconds
        assert sending == list(range(0, 60, STALE_SWEEP_MINUTES))
        assert all(stale_sweep(at.replace(second=59)) for at in sweeps if at.minute in sending)
