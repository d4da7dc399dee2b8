"""The work queue as SQS and its Lambda event source mapping behave, in memory, on a test's clock.

`QueueDouble` is a `work_queue.WorkQueue`: `send` records each reminder with the delay it was
given (`delay_seconds`, as `SqsWorkQueue` sends it) and holds it until then; `backlog` counts the
messages visible now (`ApproximateNumberOfMessages`). `deliver(handler)` is one invocation of the
worker as the event source mapping makes it: up to ten visible messages received (each becoming
invisible for the visibility timeout and counting a receive), handed over as an SQS event; the
ones the answer does not name in `batchItemFailures` are deleted. A handler that raises (its
function died) deletes nothing: the whole batch comes back once the visibility timeout has passed.
A message received more than `max_receives` times goes to `dead` instead (the redrive policy).

Faults: `fail_sends` makes sends fail (returned unsent, as `SqsWorkQueue` returns them when SQS
answers with an error), `lose` drops a message, `put` enqueues any body (a malformed one).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from capture_bridge.work_queue import WorkItem, delay_seconds

# The template's WorkQueue: VisibilityTimeout 720, maxReceiveCount 5; the mapping's BatchSize 10.
VISIBILITY_TIMEOUT = timedelta(seconds=720)
MAX_RECEIVES = 5
BATCH_SIZE = 10

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Sent(NamedTuple):
    """One reminder as it was sent: the item and its delay in whole seconds."""

    item: WorkItem
    delay: int


@dataclass
class Message:
    """One message in the queue."""

    message_id: str
    body: str
    visible_at: datetime
    receives: int = 0

    @property
    def item(self) -> WorkItem | None:
        try:
            return WorkItem.from_body(self.body)
        except ValueError:
            return None


@dataclass
class Delivery:
    """What one invocation of the worker was given and answered."""

    messages: list[Message]
    failed: list[str]
    died: bool = False

    @property
    def session_ids(self) -> list[str]:
        return [m.item.session_id for m in self.messages if m.item is not None]


@dataclass
class QueueDouble:
    """An in-memory SQS queue with its redrive policy, read on `clock`."""

    clock: Callable[[], datetime]
    visibility_timeout: timedelta = VISIBILITY_TIMEOUT
    max_receives: int = MAX_RECEIVES
    # Every reminder sent, in order, and the calls made to the queue.
    sent: list[Sent] = field(default_factory=list)
    send_calls: int = 0
    backlog_calls: int = 0
    # Messages waiting or in flight, and those the redrive policy moved to the dead-letter queue.
    messages: dict[str, Message] = field(default_factory=dict)
    dead: list[Message] = field(default_factory=list)
    # While true, every send fails: its items come back unsent.
    fail_sends: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- the WorkQueue protocol ---------------------------------------------------------------

    def send(self, items: Sequence[WorkItem], *, now: datetime) -> list[WorkItem]:
        self.send_calls += 1
        if self.fail_sends:
            return list(items)
        for item in items:
            delay = delay_seconds(item, now)
            self.sent.append(Sent(item, delay))
            self.put(item.body(), now + timedelta(seconds=delay))
        return []

    def backlog(self) -> int | None:
        self.backlog_calls += 1
        return len(self.visible())

    # -- what a test does with it -------------------------------------------------------------

    def put(self, body: str, visible_at: datetime | None = None) -> Message:
        """A message with any body, visible at `visible_at` (now by default)."""
        message = Message(f"m-{next(self._ids)}", body, visible_at or self.clock())
        self.messages[message.message_id] = message
        return message

    def visible(self) -> list[Message]:
        """The messages a receive would return now, oldest first."""
        now = self.clock()
        return sorted(
            (m for m in self.messages.values() if m.visible_at <= now),
            key=lambda m: (m.visible_at, int(m.message_id[2:])),
        )

    def next_visible(self) -> datetime | None:
        """When the next message becomes visible (None: the queue is empty)."""
        return min((m.visible_at for m in self.messages.values()), default=None)

    def waiting(self, session_id: str) -> list[Message]:
        """The messages (visible or not) reminding of `session_id`."""
        return [
            m
            for m in self.messages.values()
            if m.item is not None and m.item.session_id == session_id
        ]

    def lose(self, message: Message) -> None:
        """The message is gone, never delivered."""
        del self.messages[message.message_id]

    def receive(self, limit: int = BATCH_SIZE) -> list[Message]:
        """Up to `limit` visible messages, now in flight; one over its receives is dead-lettered."""
        now = self.clock()
        taken: list[Message] = []
        for message in self.visible():
            if len(taken) == limit:
                break
            if message.receives >= self.max_receives:
                del self.messages[message.message_id]
                self.dead.append(message)
                continue
            message.receives += 1
            message.visible_at = now + self.visibility_timeout
            taken.append(message)
        return taken

    def ack(self, message_ids: Sequence[str]) -> None:
        for message_id in message_ids:
            self.messages.pop(message_id, None)

    def deliver(
        self,
        handler: Handler,
        messages: Sequence[Message] | None = None,
        *,
        dies: type[BaseException] | None = None,
    ) -> Delivery | None:
        """One worker invocation on the visible messages (or `messages`, already received).

        When the handler raises `dies`, the function died: nothing is deleted.
        """
        batch = list(messages) if messages is not None else self.receive()
        if not batch:
            return None
        try:
            answer = handler(event_of(batch))
        except BaseException as exc:
            if dies is not None and isinstance(exc, dies):
                return Delivery(batch, [m.message_id for m in batch], died=True)
            raise
        failed = [str(f["itemIdentifier"]) for f in answer["batchItemFailures"]]
        self.ack([m.message_id for m in batch if m.message_id not in failed])
        return Delivery(batch, failed)


def event_of(messages: Sequence[Message]) -> dict[str, Any]:
    """The SQS event Lambda hands the worker for these messages."""
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": f"handle-{m.message_id}-{m.receives}",
                "body": m.body,
                "attributes": {"ApproximateReceiveCount": str(m.receives)},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }
