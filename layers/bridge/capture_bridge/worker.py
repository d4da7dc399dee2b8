"""The queue's worker: takes each session at its due time, steps it, and sends its next reminder.

SQS delivers a batch of reminders (`work_queue.WorkItem`); each is worked on in its own thread,
all at once, so every step begins with the whole of the function's time (the template sizes the
batch to the pool and the timeout to one session's worst case: tests/unit/test_worker.py). The
step is the scheduled run's own (`resolver.step_session`): claimed first, so a reminder that
comes twice, late, or for a session done or held since does nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple

from capture_bridge import metrics
from capture_bridge.models import utc_now
from capture_bridge.observability import logger
from capture_bridge.resolver import SESSION_BUDGET_MS, Sleep, step_session
from capture_bridge.runtime import Runtime
from capture_bridge.work_queue import WorkItem

# SQS's delays are whole seconds, rounded up, and stored due times are whole seconds: a reminder
# that arrives a little early waits for its time in the worker instead of going round again.
EARLY_WAIT_SECONDS = 5.0
# The event source mapping's batch size, and so the pool: every reminder starts at once.
MAX_BATCH = 10


class QueueMessage(NamedTuple):
    """One SQS record: its id (to report a failure) and the reminder it carries."""

    message_id: str
    item: WorkItem | None


def messages_of(event: dict[str, Any]) -> list[QueueMessage]:
    """The records of an SQS event; a body that is not a reminder is kept as None, to fail."""
    found: list[QueueMessage] = []
    for record in event.get("Records") or []:
        message_id = str(record.get("messageId", ""))
        try:
            item: WorkItem | None = WorkItem.from_body(str(record.get("body", "")))
        except ValueError:
            item = None
        found.append(QueueMessage(message_id, item))
    return found


def work(
    runtime: Runtime,
    messages: Sequence[QueueMessage],
    clock: Callable[[], datetime] = utc_now,
    remaining_ms: Callable[[], int] = lambda: 900_000,
    *,
    sleep: Sleep = time.sleep,
) -> list[str]:
    """Work on a batch of reminders; returns the ids of the messages SQS should deliver again."""
    try:
        if not messages:
            return []
        with ThreadPoolExecutor(max_workers=min(len(messages), MAX_BATCH)) as pool:
            done = list(
                pool.map(lambda m: _handle(runtime, m, clock, remaining_ms, sleep), messages)
            )
        return [m.message_id for m, ok in zip(messages, done, strict=True) if not ok]
    finally:
        metrics.flush()


def _handle(
    runtime: Runtime,
    message: QueueMessage,
    clock: Callable[[], datetime],
    remaining_ms: Callable[[], int],
    sleep: Sleep,
) -> bool:
    """One reminder; False when SQS should deliver it again (after its tries: dead-lettered)."""
    item = message.item
    if item is None:
        logger.error(
            "not a work reminder; left to the dead-letter queue",
            extra={"message_id": message.message_id},
        )
        return False
    wait = (item.due - clock()).total_seconds()
    if wait > EARLY_WAIT_SECONDS:
        # Due later than SQS could delay it (over 15 minutes): on again, delayed once more.
        return _send(runtime, item, clock)
    if wait > 0:
        sleep(wait)
    if remaining_ms() < SESSION_BUDGET_MS:
        # Not enough time for the step's worst case: back to the queue, due now.
        return _send(runtime, WorkItem(item.session_id, clock()), clock)
    try:
        step = step_session(
            runtime, item.session_id, clock, remaining_ms, sleep=sleep, read_first=True
        )
    except Exception:
        # Not even claimed (the store failed): it stays due as it was; SQS delivers it again.
        logger.exception("could not claim the session", extra={"session_id": item.session_id})
        metrics.session_error(None)
        return False
    if step.due is not None:
        # A reminder that cannot be sent now is the sweep's to send: the step itself is done.
        _send(runtime, WorkItem(item.session_id, step.due), clock)
    return True


def _send(runtime: Runtime, item: WorkItem, clock: Callable[[], datetime]) -> bool:
    if runtime.queue is None:
        logger.error("the worker has no work queue to send to (WORK_QUEUE_URL)")
        return False
    return not runtime.queue.send([item], now=clock())


def run(
    runtime_factory: Callable[[], Runtime],
    event: dict[str, Any],
    remaining_ms: Callable[[], int],
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """One SQS batch, answered as `ReportBatchItemFailures` asks."""
    messages = messages_of(event)
    try:
        runtime = runtime_factory()
    except Exception:
        # Invalid settings: every reminder goes back; after its tries, to the dead-letter queue.
        logger.exception("the worker cannot run: its settings are invalid")
        failed = [m.message_id for m in messages]
    else:
        failed = work(runtime, messages, clock, remaining_ms)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
