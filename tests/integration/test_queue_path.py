"""The queue path end to end on the local stack (issue 26 §1): many sessions due at once.

The local runner runs the template's work queue on its embedded moto server and the worker as
its SQS event source mapping (batches of 10, at most a few at once locally). Hundreds of
captures are stored through the webhook minutes ago with their reminders lost (no queue
configured when they were stored), their reports ready: the resolver's sweep sends them all to
the queue, and the worker notes each one. `bench/queue_scale.py` times the same path
(`make bench`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from local_runner.demo import start_stack
from local_runner.runner import LocalRunner
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator

# Issue 26 asks make test for about 1,000; on 2 cores in one pytest process, 1,000 at once made
# the local DynamoDB's calls outlast the handlers' 2 s timeouts (reminders retried, the run 7+
# minutes), so make test keeps 300 and bench/queue_scale.py the larger runs.
SESSIONS = 300
QUEUE_CONCURRENCY = 2
VISIBILITY_SECONDS = 60
RESOLVER = "ResolverFunction"
WORKER = "WorkerFunction"
# The resolver's schedule, as this test runs it (the template's: every minute).
SWEEP_SECONDS = 60.0
# A bound on waiting for the queue to drain, far above what it takes (not a timing assertion).
DRAIN_SECONDS = 600.0
# Past the sweep's grace (2 minutes) and within the webhook's signature window (5 minutes).
STORED_AGO = timedelta(minutes=4)


@dataclass
class QueueStack:
    runner: LocalRunner
    zendesk: ZendeskSimulator
    bugpilot: BugpilotSimulator

    def sqs(self) -> Any:
        return boto3.client("sqs", endpoint_url=self.runner.sqs_endpoint)

    def messages(self, queue: str) -> int:
        """Messages in the queue, visible, in flight or delayed."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        answer = self.sqs().get_queue_attributes(
            QueueUrl=self.runner.queue_urls[queue], AttributeNames=names
        )
        return sum(int(answer["Attributes"][name]) for name in names)


@pytest.fixture
def queue_stack() -> Iterator[QueueStack]:
    """The local runner with its work queue polled, on the Bugpilot and Zendesk simulators."""
    from capture_bridge.helpdesks import notes_per_minute_key
    from capture_bridge.pacing import MAX_PER_MINUTE

    with ExitStack() as stack:
        bugpilot = BugpilotSimulator()
        zendesk = ZendeskSimulator()
        env = {
            # This test proves the queue path, not the notes' pace (tests/integration/test_pacing).
            notes_per_minute_key("zendesk"): str(MAX_PER_MINUTE),
            "TABLE_NAME": f"sessions-queue-{uuid.uuid4().hex[:12]}",
        }
        started = start_stack(
            stack,
            zendesk,
            providers={"bugpilot": lambda: bugpilot},
            env=env,
            start_schedules=False,  # the test runs the resolver's schedule itself, to count it
            start_queues=True,
            # Two batches of 10 at once: one process on two cores, whose DynamoDB takes one call
            # at a time, keeps its calls within the handlers' 2 s timeouts so (a call that times
            # out leaves its message to come back after the queue's visibility timeout).
            queue_concurrency=QUEUE_CONCURRENCY,
            # A reminder whose SQS call timed out on this busy machine (received but never
            # answered, or handled but not deleted) comes back after the visibility timeout, as
            # in AWS, and finds its session done; 720 s would outlast the test.
            queue_attributes={"WorkQueue": {"VisibilityTimeout": str(VISIBILITY_SECONDS)}},
        )
        yield QueueStack(started.runner, zendesk, bugpilot)


def store_overdue(stack: QueueStack, count: int) -> list[str]:
    """`count` captures, one per ticket, through the webhook `STORED_AGO`, reminders lost, and
    their reports ready; returns the tickets."""
    from capture_bridge.helpdesks import WebhookRequest, helpdesk_spec
    from capture_bridge.runtime import get_runtime
    from capture_bridge.webhook import receive

    # As stored before the queue existed (or with every send failing): no reminder goes out.
    runtime = replace(get_runtime(), queue=None)
    then = datetime.now(UTC) - STORED_AGO
    desk, sign = stack.zendesk, helpdesk_spec("zendesk").sign_request
    tickets = [str(100_000 + number) for number in range(count)]

    def deliver(ticket: str) -> None:
        user = f"user-{ticket}"
        stack.bugpilot.connect_user(user)
        body = desk.webhook_body(
            ticket, user_id=user, email=f"{user}@example.com", tags="bugpilot_session", fields={}
        )
        proof = sign(
            desk.bridge_settings(), WebhookRequest("POST", "/webhooks/zendesk", body=body), then
        )
        answer = receive(
            "zendesk",
            {**desk.webhook_headers(), **proof},
            body.decode(),
            is_base64=False,
            runtime_factory=lambda: runtime,
            clock=lambda: then,
        )
        assert answer.status == 202, answer.body

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(deliver, tickets))
    for token in stack.bugpilot.tokens:
        stack.bugpilot.complete_report(token)
    return tickets


def wait_for(what: str, done: Callable[[], bool], on_the_way: Callable[[], None]) -> None:
    deadline = time.monotonic() + DRAIN_SECONDS
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen"
        on_the_way()
        time.sleep(2)


def test_hundreds_of_sessions_due_at_once_are_each_noted_once_through_the_queue(
    queue_stack: QueueStack,
) -> None:
    # Given 300 captures stored minutes ago whose reminders were lost, their reports ready
    stack, runner = queue_stack, queue_stack.runner
    tickets = store_overdue(stack, SESSIONS)
    assert stack.messages("WorkQueue") == 0

    # When the resolver's scheduled run sweeps them
    first = runner.tick(RESOLVER)
    runs = 1
    # Then it sends every one of them to the work queue at once (those the busy local queue
    # refused, the next run sends)
    assert first["due"] == SESSIONS
    assert set(first["outcomes"]) <= {"queued", "deferred"}
    assert sum(first["outcomes"].values()) == SESSIONS

    # When the worker takes them (the scheduled run going on every SWEEP_SECONDS meanwhile)
    last_run = time.monotonic()

    def schedule() -> None:
        nonlocal runs, last_run
        if time.monotonic() - last_run >= SWEEP_SECONDS:
            runner.tick(RESOLVER)
            runs, last_run = runs + 1, time.monotonic()

    def noted() -> int:
        return sum(len(stack.zendesk.internal_notes(ticket)) for ticket in tickets)

    wait_for("every note", lambda: noted() >= SESSIONS, schedule)
    poller = runner.pollers[f"{WORKER}.Due"]
    wait_for(
        "the queue drained",
        lambda: poller.busy == 0 and stack.messages("WorkQueue") == 0,
        schedule,
    )

    # Then every ticket has exactly one note, naming its own session
    counts = {ticket: len(stack.zendesk.internal_notes(ticket)) for ticket in tickets}
    assert set(counts.values()) == {1}
    # and nothing is left in the queue or dead-lettered
    assert stack.messages("WorkQueue") == 0
    assert stack.messages("WorkDeadLetterQueue") == 0
    # and it took the runs and batches a queue of batches of 10 should: every reminder handed
    # to the worker, in batches of at most 10, none failed
    stats = runner.mapping_stats(WORKER)
    assert stats.records >= SESSIONS
    assert SESSIONS / 10 <= stats.batches <= stats.records
    assert stats.raised == 0
    assert stats.kept <= stats.records - SESSIONS  # each one kept came back and was deleted
    print(
        f"\n{SESSIONS} sessions due at once: {runs} resolver runs, {stats.batches} worker"
        f" batches of {stats.records} reminders ({stats.records - SESSIONS} repeated),"
        f" {noted()} notes"
    )
