"""The queued path end to end: the webhook's reminders, the worker's batches, and the sweep.

moto's DynamoDB, the Bugpilot and Zendesk simulators, and `QueueDouble` standing for SQS and its
event source mapping, all on one hand-moved clock: a reminder becomes visible when its delay has
passed, a batch the worker fails (or dies on) comes back after the visibility timeout, and the
scheduled run is the sweep (`resolver.sweep`), as it is whenever `WORK_QUEUE_URL` is set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import boto3
import pytest

from capture_bridge import worker
from capture_bridge.capture_flow import poll_interval
from capture_bridge.errors import StoreUnavailable
from capture_bridge.models import CaptureSession, NoteState, SessionStatus, utc_now
from capture_bridge.resolver import (
    STALE_SWEEP_MINUTES,
    SWEEP_GRACE,
    SWEEP_STALE,
    RunOutcome,
    RunSummary,
    resolve_due_sessions,
    stale_sweep,
)
from capture_bridge.runtime import Runtime
from capture_bridge.work_queue import SqsWorkQueue, WorkItem
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from tests.conftest import Clock, Webhook, runtime_with, trigger_body
from tests.integration.test_sessions_api import BUGPILOT_BODY, LAMBDATEST_BODY, TOKEN, Api
from tests.work_queue_double import (
    Delivery,
    Handler,
    Message,
    QueueDouble,
    Sent,
)

USER = "user-42"
TICKET = "1001"
# A worker invocation's time (the template's Timeout, 120 s).
WORKER_MS = 120_000
SWEEP_MS = 90_000
# The schedule's rate.
SCHEDULE = timedelta(minutes=1)
ONE_SECOND = timedelta(seconds=1)
POLL = timedelta(seconds=30)


def outcomes(summary: RunSummary) -> dict[RunOutcome, int]:
    """What a run did, leaving out the outcomes it counted none of."""
    return {outcome: count for outcome, count in summary.outcomes.items() if count}


@dataclass
class Queued:
    """The bridge with its work queue: the webhook, the worker, the sweep, the simulators."""

    runtime: Runtime
    clock: Clock
    queue: QueueDouble
    bugpilot: BugpilotSimulator
    zendesk: ZendeskSimulator
    slept: list[float] = field(default_factory=list)

    # -- the functions --------------------------------------------------------------------------

    def request(self, runtime: Runtime | None = None, **fields: Any) -> str:
        """A capture request through the webhook; returns its session id."""
        answer = Webhook(runtime or self.runtime, self.clock).send(trigger_body(**fields))
        assert answer.status == 202, answer.body
        session_id: str = answer.body["session_id"]
        return session_id

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds=seconds)

    def handler(self, runtime: Runtime | None = None) -> Handler:
        """The worker function as the event source mapping invokes it."""
        used = runtime or self.runtime

        def handle(event: dict[str, Any]) -> dict[str, Any]:
            messages = worker.messages_of(event)
            failed = worker.work(used, messages, self.clock, lambda: WORKER_MS, sleep=self.sleep)
            return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

        return handle

    def deliver(
        self,
        runtime: Runtime | None = None,
        messages: list[Message] | None = None,
        *,
        dies: type[BaseException] | None = None,
    ) -> Delivery | None:
        """One worker invocation on what is visible now (or on `messages`)."""
        return self.queue.deliver(self.handler(runtime), messages, dies=dies)

    def deliver_when_visible(self) -> Delivery:
        """Move the clock to the next message's time and deliver the batch visible then."""
        visible = self.queue.next_visible()
        assert visible is not None, "no message waits"
        self.clock.now = max(self.clock(), visible)
        delivery = self.deliver()
        assert delivery is not None
        return delivery

    def sweep(self, runtime: Runtime | None = None) -> RunSummary:
        """One scheduled run (with a queue, the sweep)."""
        return resolve_due_sessions(runtime or self.runtime, lambda: SWEEP_MS, self.clock)

    # -- what the world sees --------------------------------------------------------------------

    def session(self, session_id: str) -> CaptureSession:
        session = self.runtime.store.get(session_id)
        assert session is not None
        return session

    def notes(self, ticket: str = TICKET) -> list[dict[str, Any]]:
        return self.zendesk.comments(ticket)

    def sent_for(self, session_id: str) -> list[Sent]:
        return [s for s in self.queue.sent if s.item.session_id == session_id]

    def settled(self, session_id: str) -> bool:
        session = self.session(session_id)
        return session.status.is_final and session.note_state is not NoteState.PENDING


@pytest.fixture
def queued(
    runtime: Runtime, clock: Clock, bugpilot: BugpilotSimulator, zendesk: ZendeskSimulator
) -> Queued:
    queue = QueueDouble(clock)
    return Queued(replace(runtime, queue=queue), clock, queue, bugpilot, zendesk)


@pytest.fixture
def store_calls(queued: Queued) -> Iterator[Counter[str]]:
    """DynamoDB calls by operation, counted from now on."""
    calls: Counter[str] = Counter()

    def count(model: Any, **kwargs: Any) -> None:
        calls[model.name] += 1

    events = queued.runtime.store.client.meta.events
    events.register("before-call.dynamodb", count)
    yield calls
    events.unregister("before-call.dynamodb", count)


def online_request(queued: Queued) -> str:
    """A request for a requester online in the app: started by the webhook, pending."""
    queued.bugpilot.connect_user(USER)
    session_id = queued.request()
    assert queued.session(session_id).status is SessionStatus.PENDING
    return session_id


# -- the webhook's reminders ---------------------------------------------------------------------


class TestIntake:
    def test_a_new_session_sends_one_reminder_for_its_first_check(self, queued: Queued) -> None:
        # Given a requester online, when the webhook takes a capture request
        session_id = online_request(queued)
        # Then one reminder went out, after the write, delayed until the first check
        session = queued.session(session_id)
        assert session.next_check_at == queued.clock() + POLL
        assert queued.queue.sent == [Sent(WorkItem(session_id, session.next_check_at), 30)]

    def test_a_duplicate_delivery_sends_no_second_reminder(self, queued: Queued) -> None:
        # Given a request taken once
        session_id = online_request(queued)
        # When Zendesk sends the same call again
        queued.clock.advance(seconds=10)
        again = Webhook(queued.runtime, queued.clock).send(trigger_body())
        # Then it is the same session, and no second reminder went out
        assert (again.body["session_id"], again.body["duplicate"]) == (session_id, True)
        assert len(queued.queue.sent) == 1
        assert len(queued.bugpilot.requests("action")) == 1

    def test_an_offline_requester_is_reminded_at_the_user_retry(self, queued: Queued) -> None:
        # Given a requester offline, when the webhook takes a capture request
        session_id = queued.request()
        # Then the session waits for the user, reminded at the user retry (3 minutes)
        session = queued.session(session_id)
        assert session.status is SessionStatus.WAITING_FOR_USER
        assert queued.queue.sent == [Sent(WorkItem(session_id, queued.clock() + 3 * SCHEDULE), 180)]

    def test_the_sessions_api_sends_one_reminder_per_new_session(
        self, queued: Queued, env: dict[str, str]
    ) -> None:
        # Given the sessions API on the same queue, and a requester online
        runtime = runtime_with(env, SESSIONS_API_TOKEN=TOKEN, SESSIONS_API_AUTH="token")
        api = Api(replace(runtime, queue=queued.queue), queued.clock)
        queued.bugpilot.connect_user(USER)
        # When a Bugpilot capture is asked for, then again with the same Idempotency-Key
        first = api.create(BUGPILOT_BODY, key="k-1")
        again = api.create(BUGPILOT_BODY, key="k-1")
        # Then one session, reminded once, for its first check
        assert (first.status, again.body["sessionId"]) == (201, first.body["sessionId"])
        session_id = first.body["sessionId"]
        assert queued.queue.sent == [Sent(WorkItem(session_id, queued.clock() + POLL), 30)]
        # When a LambdaTest capture (which exists already) is asked for
        lambdatest = api.create(LAMBDATEST_BODY)
        # Then it is reminded at once: the worker makes its first check
        assert lambdatest.status == 201
        assert queued.queue.sent[-1] == Sent(
            WorkItem(lambdatest.body["sessionId"], queued.clock()), 0
        )


# -- the worker's flows --------------------------------------------------------------------------


class TestWorker:
    def test_a_due_session_is_stepped_once_and_reminded_of_its_next_check(
        self, queued: Queued
    ) -> None:
        # Given a pending session whose report is not ready yet
        session_id = online_request(queued)
        # When its reminder comes due and a worker takes the batch
        delivery = queued.deliver_when_visible()
        # Then it was checked once, acknowledged, and reminded of the next check (45 s later)
        assert delivery.failed == []
        assert len(queued.bugpilot.requests("session_info")) == 1
        session = queued.session(session_id)
        assert (session.status, session.polls, session.claim_id) == (
            SessionStatus.PENDING,
            1,
            None,
        )
        wait = poll_interval(0, queued.runtime.policy)
        assert session.next_check_at == queued.clock() + wait
        assert queued.queue.sent[-1] == Sent(
            WorkItem(session_id, session.next_check_at), int(wait.total_seconds())
        )
        assert queued.queue.messages.keys() == {
            m.message_id for m in queued.queue.waiting(session_id)
        }
        assert len(queued.queue.messages) == 1

    def test_started_checked_resolved_with_exactly_one_note(self, queued: Queued) -> None:
        # Given a pending session
        session_id = online_request(queued)
        # When the first check finds nothing, then the report is there for the next one
        queued.deliver_when_visible()
        queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
        queued.deliver_when_visible()
        # Then it is resolved with one note, and nothing more is sent
        session = queued.session(session_id)
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.POSTED)
        [note] = queued.notes()
        assert "The capture is ready" in note["body"]
        assert queued.queue.messages == {}
        assert len(queued.sent_for(session_id)) == 2
        # And an hour later the sweep finds nothing, and nothing moves
        queued.clock.advance(hours=1)
        assert queued.sweep().due == 0
        assert (len(queued.notes()), len(queued.bugpilot.requests("action"))) == (1, 1)

    def test_a_reminder_delivered_twice_at_once_steps_once(self, queued: Queued) -> None:
        # Given a pending session whose reminder is in the queue twice (the sweep sent one too)
        session_id = online_request(queued)
        queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
        [first] = queued.queue.waiting(session_id)
        queued.queue.put(first.body, first.visible_at)
        # When both come in one batch
        queued.clock.now = first.visible_at
        delivery = queued.deliver()
        # Then one step saved: one note, no reminder (done); both acknowledged. Bugpilot may be
        # asked twice: a check goes unclaimed (it is read-only), and both may read the session
        # before either claims it to save the answer
        assert delivery is not None and len(delivery.messages) == 2 and delivery.failed == []
        assert len(queued.bugpilot.requests("session_info")) in (1, 2)
        assert len(queued.notes()) == 1
        assert len(queued.sent_for(session_id)) == 1
        assert queued.queue.messages == {}

    def test_a_reminder_delivered_again_later_does_nothing(self, queued: Queued) -> None:
        # Given a pending session stepped once (its report not ready): reminded for 30 s later
        session_id = online_request(queued)
        [first] = queued.queue.waiting(session_id)
        body = first.body
        queued.deliver_when_visible()
        stepped = queued.session(session_id)
        # When its old reminder comes again 10 s later (SQS delivers at least once)
        queued.clock.advance(seconds=10)
        queued.queue.put(body)
        delivery = queued.deliver()
        # Then it is acknowledged and nothing happens: no check, no write, no reminder
        assert delivery is not None and delivery.failed == []
        assert len(queued.bugpilot.requests("session_info")) == 1
        assert queued.session(session_id) == stepped
        assert len(queued.sent_for(session_id)) == 2
        # And once finished, the same old reminder changes nothing either
        queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
        queued.deliver_when_visible()
        done = queued.session(session_id)
        queued.queue.put(body)
        queued.deliver()
        assert queued.session(session_id) == done
        assert len(queued.notes()) == 1

    def test_an_early_reminder_waits_then_steps(self, queued: Queued) -> None:
        # Given a pending session's reminder delivered 3 seconds early
        session_id = online_request(queued)
        [message] = queued.queue.waiting(session_id)
        due = message.visible_at
        queued.clock.now = due - 3 * ONE_SECOND
        # When the worker takes it
        delivery = queued.deliver(messages=[message])
        # Then it waited until due, then checked it
        assert delivery is not None and delivery.failed == []
        assert queued.slept == [3.0]
        assert len(queued.bugpilot.requests("session_info")) == 1
        assert queued.session(session_id).polls == 1

    def test_a_reminder_far_ahead_goes_round_and_the_session_is_untouched(
        self, queued: Queued
    ) -> None:
        # Given a session due in 30 s, and a reminder for it due in an hour delivered now
        session_id = online_request(queued)
        before = queued.session(session_id)
        later = WorkItem(session_id, queued.clock() + timedelta(hours=1))
        message = queued.queue.put(later.body())
        # When the worker takes it
        delivery = queued.deliver(messages=[message])
        # Then it is sent on unchanged, as late as SQS delays, and the session is untouched
        assert delivery is not None and delivery.failed == []
        assert queued.queue.sent[-1] == Sent(later, 900)
        assert queued.session(session_id) == before
        assert queued.bugpilot.requests("session_info") == []

    def test_a_malformed_body_fails_alone_and_touches_nothing(self, queued: Queued) -> None:
        # Given a pending session's reminder due, and a malformed message beside it
        session_id = online_request(queued)
        [due] = queued.queue.waiting(session_id)
        queued.clock.now = due.visible_at
        poison = queued.queue.put('{"session_id": ')
        # When the batch comes
        delivery = queued.deliver()
        # Then only the malformed one is failed; the session was stepped
        assert delivery is not None and delivery.failed == [poison.message_id]
        assert queued.session(session_id).polls == 1
        # And the session's own next reminder was sent; the malformed one waits for its next try
        assert poison.message_id in queued.queue.messages
        assert len(queued.sent_for(session_id)) == 2

    def test_a_store_outage_on_the_claim_fails_the_message_and_loses_nothing(
        self, queued: Queued, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a pending session due, and the store failing its reads and claims
        session_id = online_request(queued)
        queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
        before = queued.session(session_id)

        def outage(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("could not claim (test outage)")

        with monkeypatch.context() as patch:
            patch.setattr(queued.runtime.store, "get", outage)
            patch.setattr(queued.runtime.store, "claim", outage)
            # When the worker takes its reminder
            delivery = queued.deliver_when_visible()
        # Then the message is failed, the session as it was, nothing called
        assert delivery.failed == [m.message_id for m in delivery.messages]
        assert queued.session(session_id) == before
        assert queued.bugpilot.requests("session_info") == []
        # When SQS delivers it again after the visibility timeout, the store back
        again = queued.deliver_when_visible()
        assert again.messages[0].message_id == delivery.messages[0].message_id
        # Then it is stepped: resolved, one note
        session = queued.session(session_id)
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.POSTED)
        assert len(queued.notes()) == 1

    def test_the_worker_function_answers_with_the_failed_messages(self, queued: Queued) -> None:
        # Given a due reminder and a malformed message, through the function's own `run`
        session_id = online_request(queued)
        [message] = queued.queue.waiting(session_id)
        queued.clock.now = message.visible_at
        poison = queued.queue.put("not json")

        def handler(event: dict[str, Any]) -> dict[str, Any]:
            return worker.run(lambda: queued.runtime, event, lambda: WORKER_MS, queued.clock)

        delivery = queued.queue.deliver(handler)
        assert delivery is not None and delivery.failed == [poison.message_id]
        assert queued.session(session_id).polls == 1


# -- the sweep -----------------------------------------------------------------------------------


class TestSweep:
    def test_a_session_overdue_past_the_grace_is_sent_once(self, queued: Queued) -> None:
        # Given a pending session whose reminder was lost
        session_id = online_request(queued)
        [message] = queued.queue.waiting(session_id)
        queued.queue.lose(message)
        due = queued.session(session_id).next_check_at
        assert due is not None
        # When the sweep runs within the grace, it leaves it (a reminder may be on its way)
        queued.clock.now = due + SWEEP_GRACE - ONE_SECOND
        assert queued.sweep().due == 0
        # When it runs past the grace, it sends it, due now
        queued.clock.now = due + SWEEP_GRACE
        assert outcomes(queued.sweep()) == {RunOutcome.QUEUED: 1}
        assert queued.queue.sent[-1] == Sent(WorkItem(session_id, queued.clock()), 0)
        # When the next sweep comes before a worker took it, the waiting message covers it
        queued.clock.advance(minutes=1)
        assert outcomes(queued.sweep()) == {RunOutcome.SKIPPED: 1}
        assert len(queued.sent_for(session_id)) == 2
        # Then the worker steps it as usual
        queued.deliver()
        assert queued.session(session_id).polls == 1

    def test_a_backlog_that_holds_the_overdue_is_left_to_work(self, queued: Queued) -> None:
        # Given a session overdue past the grace, and more messages waiting than overdue sessions
        session_id = online_request(queued)
        due = queued.session(session_id).next_check_at
        assert due is not None
        queued.clock.now = due + SWEEP_GRACE
        assert len(queued.queue.visible()) == 1
        sent = len(queued.queue.sent)
        # When the sweep runs, then it sends nothing: the backlog is worked first
        assert outcomes(queued.sweep()) == {RunOutcome.SKIPPED: 1}
        assert (len(queued.queue.sent), queued.queue.backlog_calls) == (sent, 1)

    def test_a_lost_reminder_behind_a_busy_queue_is_sent_once_stale_then_every_ten_minutes(
        self, queued: Queued
    ) -> None:
        # Given a session whose reminder was lost, and a queue busy with other messages
        session_id = online_request(queued)
        queued.queue.lose(queued.queue.waiting(session_id)[0])
        due = queued.session(session_id).next_check_at
        assert due is not None
        for number in range(3):
            queued.queue.put(WorkItem(f"other-{number}", due).body(), due)
        # When the sweep runs past the grace, the backlog could hold it: it is left
        queued.clock.now = due + SWEEP_GRACE
        assert outcomes(queued.sweep()) == {RunOutcome.SKIPPED: 1}
        assert len(queued.sent_for(session_id)) == 1  # the lost one
        # When the queue stays busy until it is stale, a tenth minute's sweep sends it all the same
        queued.clock.now = due + SWEEP_STALE
        assert stale_sweep(queued.clock())
        assert len(queued.queue.visible()) == 3
        assert outcomes(queued.sweep()) == {RunOutcome.QUEUED: 1}
        assert len(queued.sent_for(session_id)) == 2
        # When the next sweeps come with the queue still as busy, they leave it to the backlog
        for _ in range(STALE_SWEEP_MINUTES - 1):
            queued.clock.advance(minutes=1)
            assert outcomes(queued.sweep()) == {RunOutcome.SKIPPED: 1}
        assert len(queued.sent_for(session_id)) == 2
        # Then the next tenth minute's sweep sends it once more
        queued.clock.advance(minutes=1)
        assert outcomes(queued.sweep()) == {RunOutcome.QUEUED: 1}
        assert len(queued.sent_for(session_id)) == 3

    def test_an_idle_sweep_lists_once_and_calls_no_sqs(
        self, queued: Queued, store_calls: Counter[str]
    ) -> None:
        # Given nothing due, when the scheduled run comes
        summary = queued.sweep()
        # Then it listed the due index once (a query per bucket) and made no SQS call
        assert summary.due == 0
        assert store_calls == Counter({"Query": 4})
        assert (queued.queue.send_calls, queued.queue.backlog_calls) == (0, 0)

    def test_a_failed_send_leaves_the_session_due_for_the_sweep(self, queued: Queued) -> None:
        # Given SQS refusing sends when the webhook takes the request
        queued.queue.fail_sends = True
        session_id = online_request(queued)
        queued.bugpilot.complete_report(queued.bugpilot.tokens[0])
        # Then the request is stored, due, with no reminder
        assert queued.queue.messages == {}
        due = queued.session(session_id).next_check_at
        assert due is not None
        # When SQS is back and the sweep runs past the grace
        queued.queue.fail_sends = False
        queued.clock.now = due + SWEEP_GRACE
        assert outcomes(queued.sweep()) == {RunOutcome.QUEUED: 1}
        # Then a worker steps it: resolved, one note
        queued.deliver()
        session = queued.session(session_id)
        assert (session.status, session.note_state) == (SessionStatus.RESOLVED, NoteState.POSTED)
        assert len(queued.notes()) == 1

    def test_a_sweep_whose_sends_fail_defers_them_to_the_next(self, queued: Queued) -> None:
        # Given a session whose reminder was lost, and SQS down at the sweep
        session_id = online_request(queued)
        queued.queue.lose(queued.queue.waiting(session_id)[0])
        due = queued.session(session_id).next_check_at
        assert due is not None
        queued.clock.now = due + SWEEP_GRACE
        queued.queue.fail_sends = True
        assert outcomes(queued.sweep()) == {RunOutcome.DEFERRED: 1}
        # When SQS is back, the next sweep sends it
        queued.queue.fail_sends = False
        queued.clock.advance(minutes=1)
        assert outcomes(queued.sweep()) == {RunOutcome.QUEUED: 1}


# -- the real client, on moto's SQS ---------------------------------------------------------------


class TestSqsWorkQueue:
    def test_reminders_wait_in_sqs_for_their_delay_and_the_backlog_counts_the_visible(
        self, table: str
    ) -> None:
        # Given a queue (moto's SQS, in the same mock as the table)
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="work")["QueueUrl"]
        queue = SqsWorkQueue(url, client)
        now = utc_now()
        # When a reminder due now and one due in ten minutes are sent
        due_now, due_later = (
            WorkItem("s-now", now),
            WorkItem("s-later", now + timedelta(minutes=10)),
        )
        assert queue.send([due_now, due_later], now=now) == []
        # Then only the one due is visible, and counted as the backlog
        attributes = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        assert (
            attributes["ApproximateNumberOfMessages"],
            attributes["ApproximateNumberOfMessagesDelayed"],
        ) == ("1", "1")
        assert queue.backlog() == 1
        [message] = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert WorkItem.from_body(message["Body"]) == due_now

    def test_a_queue_that_is_gone_leaves_every_reminder_unsent(self, table: str) -> None:
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="gone")["QueueUrl"]
        client.delete_queue(QueueUrl=url)
        queue = SqsWorkQueue(url, client)
        items = [WorkItem("s-1", utc_now())]
        assert queue.send(items, now=utc_now()) == items
        assert queue.backlog() is None
