"""SQS for local runs: the template's queues on the embedded moto server, and event source
mappings that poll them and invoke their functions as Lambda's do.

A mapping is one poller thread per ``SQS`` event: it long-polls its queue, hands each batch (up to
``BatchSize`` records) to the function in a thread of its own, at most
``ScalingConfig.MaximumConcurrency`` batches at once, and deletes what the function handled. With
``ReportBatchItemFailures`` only the records not named in ``batchItemFailures`` are deleted; a
function that raises, or answers in a shape Lambda would refuse, keeps the whole batch, which
comes back after the queue's VisibilityTimeout and, after its RedrivePolicy's maxReceiveCount,
goes to the dead-letter queue (moto applies both, as SQS does).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local_runner.template import LOCAL_REGION, QueueDef, SqsEventDef

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_SQS"
# A receive waits this long for a message (long polling): short enough for a prompt stop, long
# enough not to spin on an idle queue. Lambda's pollers long-poll too.
LONG_POLL_SECONDS = 1
# SQS hands out at most ten messages per receive (and deletes ten per batch call).
RECEIVE_MAX = 10
# After a failed receive (the queue gone, the server stopping), wait before the next.
RETRY_SECONDS = 1.0
# How long stop() waits for batches still running before it leaves them (daemon threads).
DRAIN_SECONDS = 15.0

#: A function invocation: the event in, the function's answer out (exceptions propagate).
Invoke = Callable[[dict[str, Any]], Any]


def sqs_client(endpoint_url: str | None = None) -> Any:
    """An SQS client for the local endpoint (from the environment when not given)."""
    endpoint = endpoint_url or os.environ.get(ENDPOINT_VARIABLE)
    # The long poll must end before the read does; a stalled local server is retried once.
    config = Config(read_timeout=LONG_POLL_SECONDS + 10, retries={"total_max_attempts": 2})
    return boto3.client("sqs", endpoint_url=endpoint, config=config)


def ensure_queues(
    client: Any, queues: Mapping[str, QueueDef], *, purge: bool = False
) -> dict[str, str]:
    """Create every queue (dead-letter queues first), or find it; returns URLs by logical id.

    A queue that exists (moto's state is per process: every embedded server of a process
    shares it) gets the template's attributes; with `purge` it is made anew, empty of what an
    earlier runner of the process left, as an embedded server promises.
    """
    urls: dict[str, str] = {}

    def create(queue: QueueDef, seen: tuple[str, ...] = ()) -> str:
        if queue.logical_id in urls:
            return urls[queue.logical_id]
        if queue.dead_letter_queue is not None:
            if queue.dead_letter_queue in seen:
                raise ValueError(f"{queue.logical_id}: its RedrivePolicy goes round in a circle")
            create(queues[queue.dead_letter_queue], (*seen, queue.logical_id))
        try:
            url = str(
                client.create_queue(QueueName=queue.name, Attributes=queue.attributes)["QueueUrl"]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            url = str(client.get_queue_url(QueueName=queue.name)["QueueUrl"])
            if purge:
                # Anew rather than purged: moto, as SQS, purges a queue once a minute at most.
                client.delete_queue(QueueUrl=url)
                answer = client.create_queue(QueueName=queue.name, Attributes=queue.attributes)
                url = str(answer["QueueUrl"])
            else:
                client.set_queue_attributes(QueueUrl=url, Attributes=queue.attributes)
        urls[queue.logical_id] = url
        logger.debug("queue %s at %s", queue.name, urls[queue.logical_id])
        return urls[queue.logical_id]

    for queue in queues.values():
        create(queue)
    return urls


# --- the pure parts: the event Lambda builds, and what its answer means ----------------------


def sqs_record(
    message: Mapping[str, Any], queue_arn: str, region: str = LOCAL_REGION
) -> dict[str, Any]:
    """One record of an SQS event, from a message as ReceiveMessage returns it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda spells it in an event (camelCase keys)."""
    spelled = {
        "stringValue": value.get("StringValue"),
        "binaryValue": value.get("BinaryValue"),
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": list(value.get("BinaryListValues") or []),
        "dataType": value.get("DataType"),
    }
    return {key: item for key, item in spelled.items() if item is not None}


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event an SQS event source mapping invokes its function with."""
    return {"Records": [sqs_record(message, queue_arn) for message in messages]}


def handled_ids(
    answer: Any, message_ids: Sequence[str], *, report_batch_item_failures: bool
) -> list[str]:
    """The messages to delete after a function answered `answer` (it did not raise).

    Without ReportBatchItemFailures every message was handled. With it, Lambda reads a null or
    empty answer, or a null or empty ``batchItemFailures``, as complete success; any other shape,
    or an ``itemIdentifier`` that is empty, null or not a message of the batch, as complete
    failure (nothing deleted); else every message but those named.
    """
    if not report_batch_item_failures or answer is None:
        return list(message_ids)
    if not isinstance(answer, Mapping):
        return []
    failures = answer.get("batchItemFailures")
    if not failures:
        return list(message_ids) if failures in (None, []) else []
    if not isinstance(failures, list):
        return []
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return []
        failed.add(identifier)
    return [message_id for message_id in message_ids if message_id not in failed]


# --- the poller --------------------------------------------------------------------------


@dataclass
class MappingStats:
    """What an event source mapping did (for tests, the bench and the log)."""

    batches: int = 0  # invocations of the function
    records: int = 0  # records handed to it (a message received twice counts twice)
    deleted: int = 0  # messages deleted as handled
    kept: int = 0  # messages left for SQS to deliver again (failed, or their batch raised)
    raised: int = 0  # invocations that raised


class SqsPoller:
    """One SQS event source mapping: a poller thread and the batches it runs."""

    def __init__(
        self,
        name: str,
        event: SqsEventDef,
        queue_url: str,
        queue_arn: str,
        invoke: Invoke,
        client: Any,
    ) -> None:
        self.name = name
        self.event = event
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.stats = MappingStats()
        self._invoke = invoke
        self._client = client
        self._slots = threading.BoundedSemaphore(max(1, event.max_concurrency))
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._batches: set[threading.Thread] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> SqsPoller:
        """Start polling (in a daemon thread)."""
        self._thread = threading.Thread(target=self._poll, name=f"sqs-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Stop receiving, then wait up to `drain_seconds` for the batches still running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=LONG_POLL_SECONDS + 5)
            self._thread = None
        deadline = time.monotonic() + drain_seconds
        for thread in list(self._batches):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._batches):
            logger.warning("%s: batches still running were left at stop", self.name)

    @property
    def busy(self) -> int:
        """Batches running now."""
        return sum(1 for thread in list(self._batches) if thread.is_alive())

    def _poll(self) -> None:
        while not self._stop.is_set():
            # A slot first, as Lambda scales its invocations to MaximumConcurrency: a message
            # is received only when a function is free to take it.
            if not self._slots.acquire(timeout=0.2):
                continue
            try:
                messages = self._receive()
            except (BotoCoreError, ClientError) as error:
                self._slots.release()
                if not self._stop.is_set():
                    logger.warning("%s: could not receive (%s)", self.name, error)
                    self._stop.wait(RETRY_SECONDS)
                continue
            if not messages:
                self._slots.release()
                continue
            thread = threading.Thread(
                target=self._run_batch, args=(messages,), name=f"sqs-{self.name}-batch", daemon=True
            )
            self._batches.add(thread)
            thread.start()

    def run_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and invoke the function with it, here and now (what a test that
        drives time by hand calls instead of starting the poller); returns its record count."""
        with self._slots:
            messages = self._receive(wait_seconds)
            if messages:
                self._handle(messages)
        return len(messages)

    def _receive(self, wait_seconds: int = LONG_POLL_SECONDS) -> list[dict[str, Any]]:
        """Up to BatchSize messages: a long poll for the first, then whatever else is there."""
        messages: list[dict[str, Any]] = []
        wait = wait_seconds
        window_ends = time.monotonic() + self.event.batching_window_seconds
        while len(messages) < self.event.batch_size and not self._stop.is_set():
            answer = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(RECEIVE_MAX, self.event.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            got = answer.get("Messages") or []
            messages.extend(got)
            if not got and (messages or time.monotonic() >= window_ends):
                break
            wait = 0 if time.monotonic() >= window_ends else wait_seconds
        return messages

    def _run_batch(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._handle(messages)
        finally:
            self._slots.release()
            self._batches.discard(threading.current_thread())

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        ids = [str(message["MessageId"]) for message in messages]
        started = time.monotonic()
        try:
            answer = self._invoke(sqs_event(messages, self.queue_arn))
        except Exception:
            logger.exception("%s: the function raised; its %d messages stay", self.name, len(ids))
            handled: list[str] = []
            raised = True
        else:
            raised = False
            handled = handled_ids(
                answer, ids, report_batch_item_failures=self.event.report_batch_item_failures
            )
        deleted = self._delete([m for m in messages if str(m["MessageId"]) in set(handled)])
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.records += len(ids)
            self.stats.deleted += deleted
            self.stats.kept += len(ids) - deleted
            self.stats.raised += raised
        logger.info(
            "sqs %s <- %d records -> %d deleted, %d kept (%.0f ms)",
            self.name,
            len(ids),
            deleted,
            len(ids) - deleted,
            (time.monotonic() - started) * 1000,
        )

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Delete the handled messages, ten at a time; returns how many SQS deleted."""
        deleted = 0
        for start in range(0, len(messages), RECEIVE_MAX):
            chunk = messages[start : start + RECEIVE_MAX]
            entries = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(chunk)
            ]
            try:
                answer = self._client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as error:
                # Not deleted: SQS delivers them again, and the function finds them done.
                logger.warning(
                    "%s: could not delete %d messages (%s)", self.name, len(chunk), error
                )
                continue
            deleted += len(answer.get("Successful") or [])
        return deleted
