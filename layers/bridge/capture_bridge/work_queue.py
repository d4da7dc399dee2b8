"""The one module that talks to SQS: the work queue that carries each session to its due time.

Whoever saves a session that stays due sends it here, delayed until its `next_check_at`; the
worker function takes it at that time. A message is only a reminder: the table stays the truth
(a worker claims the session before any step, so a message late, early, doubled or for a session
done since does nothing twice), and the scheduled sweep sends again the sessions whose message
was lost. So a send that fails is logged and left to the sweep, never retried blindly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from capture_bridge.models import format_time, parse_time
from capture_bridge.observability import logger

# SQS delays a message at most 15 minutes; a session due later gets a message that hops (the
# worker sends it on, delayed again, without touching the session).
MAX_DELAY_SECONDS = 900
# SendMessageBatch takes at most ten entries.
BATCH = 10
# SQS answers in milliseconds; a stalled call is sent again by botocore, three attempts in all.
CONNECT_TIMEOUT = 1
READ_TIMEOUT = 2
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class WorkItem:
    """One reminder: session `session_id` is due at `due`."""

    session_id: str
    due: datetime

    def body(self) -> str:
        return json.dumps({"session_id": self.session_id, "due": format_time(self.due)})

    @classmethod
    def from_body(cls, body: str) -> WorkItem:
        """The item a message carries; raises `ValueError` for anything else."""
        try:
            data = json.loads(body)
        except RecursionError as exc:
            # Nested deeper than the parser goes: no reminder either, and only this one fails.
            raise ValueError("a work message is not nested JSON") from exc
        if not isinstance(data, Mapping):
            raise ValueError("a work message is a JSON object")
        session_id, due = data.get("session_id"), data.get("due")
        if not isinstance(session_id, str) or not session_id or not isinstance(due, str):
            raise ValueError("a work message names a session_id and its due time")
        return cls(session_id, parse_time(due))


def delay_seconds(item: WorkItem, now: datetime) -> int:
    """Whole seconds until `item` is due, rounded up (never early), within SQS's 0-900."""
    wait = (item.due - now).total_seconds()
    whole = int(wait) + (wait > int(wait))
    return min(max(whole, 0), MAX_DELAY_SECONDS)


class WorkQueue(Protocol):
    """Where sessions wait for their due time."""

    def send(self, items: Sequence[WorkItem], *, now: datetime) -> list[WorkItem]:
        """Send each item delayed until it is due; returns those that could not be sent."""

    def backlog(self) -> int | None:
        """About how many messages wait to be taken now (None: the queue cannot say)."""


class SqsWorkQueue:
    """The work queue in SQS, its client built on first use (thread-safe)."""

    def __init__(self, url: str, client: Any | None = None) -> None:
        self.url = url
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = boto3.client(
                    "sqs",
                    config=Config(
                        connect_timeout=CONNECT_TIMEOUT,
                        read_timeout=READ_TIMEOUT,
                        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                    ),
                )
            return self._client

    def send(self, items: Sequence[WorkItem], *, now: datetime) -> list[WorkItem]:
        unsent: list[WorkItem] = []
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": item.body(),
                    "DelaySeconds": delay_seconds(item, now),
                }
                for index, item in enumerate(chunk)
            ]
            try:
                answer = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                logger.warning(
                    "could not send sessions to the work queue; the sweep sends them later",
                    extra={"sessions": len(chunk), "reason": str(exc)},
                )
                unsent.extend(chunk)
                continue
            failed = answer.get("Failed") or []
            if failed:
                logger.warning(
                    "the work queue refused some sessions; the sweep sends them later",
                    extra={"sessions": len(failed), "codes": sorted({f["Code"] for f in failed})},
                )
            unsent.extend(chunk[int(f["Id"])] for f in failed)
        return unsent

    def backlog(self) -> int | None:
        try:
            answer = self.client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
            )
            return int(answer["Attributes"]["ApproximateNumberOfMessages"])
        except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
            logger.warning("could not read the work queue's backlog", extra={"reason": str(exc)})
            return None


_lock = threading.Lock()
_queues: dict[str, SqsWorkQueue] = {}


def work_queue(url: str) -> WorkQueue | None:
    """The queue at `url`, one per warm function; None when no queue is configured."""
    if not url:
        return None
    with _lock:
        return _queues.setdefault(url, SqsWorkQueue(url))
