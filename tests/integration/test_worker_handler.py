"""The worker's Lambda entry point: an SQS event in, `batchItemFailures` out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from capture_bridge.models import SessionStatus, format_time, utc_now
from capture_bridge.session_store import SessionStore
from capture_bridge.settings import reset_settings_cache
from capture_bridge.work_queue import WorkItem
from capture_bridge.worker import messages_of
from local_runner.simulators import BugpilotSimulator
from tests.conftest import Clock, Webhook, load_event, runtime_with, trigger_body


def sqs_event(*bodies: str) -> dict[str, Any]:
    """events/worker_due.json (what the event source mapping delivers), one record per body."""
    sample = load_event("worker_due")
    (record,) = sample["Records"]
    return {
        "Records": [
            {**record, "messageId": f"m-{number}", "receiptHandle": f"r-{number}", "body": body}
            for number, body in enumerate(bodies)
        ]
    }


def test_the_sample_event_is_a_reminder_the_worker_reads() -> None:
    # given the sample SQS event `sam local invoke WorkerFunction -e` takes
    event = load_event("worker_due")
    # when the worker reads its records
    messages = messages_of(event)
    # then it is one well-formed reminder, as the webhook sends it
    reminder = WorkItem("SESSION_ID", datetime(2026, 11, 25, 12, 1, tzinfo=UTC))
    assert [message.item for message in messages] == [reminder]
    assert reminder.body() == event["Records"][0]["body"]


@pytest.mark.usefixtures("zendesk")
def test_a_batch_steps_its_due_session_and_fails_only_the_malformed_record(
    configured: dict[str, str], bugpilot: BugpilotSimulator, lambda_context: Any
) -> None:
    import worker_handler

    # given a capture started a minute ago (the handler runs on the real clock), due for its check
    bugpilot.connect_user("user-42")
    a_minute_ago = Clock(utc_now() - timedelta(minutes=1))
    answer = Webhook(runtime_with(configured), a_minute_ago).send(trigger_body())
    assert answer.status == 202
    session_id = answer.body["session_id"]
    due = json.dumps({"session_id": session_id, "due": format_time(a_minute_ago())})
    # when the worker's handler gets its reminder beside a record that is no reminder
    result = worker_handler.lambda_handler(sqs_event(due, "not a reminder"), lambda_context)
    # then only the malformed record goes back to the queue
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    # and the session was checked once
    stored = SessionStore(configured["TABLE_NAME"]).get(session_id)
    assert stored is not None
    assert stored.status is SessionStatus.PENDING
    assert stored.polls == 1
    assert len(bugpilot.requests("session_info")) == 1


def test_invalid_settings_send_the_whole_batch_back(
    configured: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker_handler

    # given settings that cannot be read (no table)
    monkeypatch.delenv("TABLE_NAME")
    reset_settings_cache()
    due = json.dumps({"session_id": "s-1", "due": format_time(utc_now())})
    # when the worker's handler gets a batch
    result = worker_handler.lambda_handler(sqs_event(due, due), lambda_context)
    # then every record goes back (and, after its tries, to the dead-letter queue)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}
