"""`ops redrive`: list the resolver's dead letters, run the resolver once, then clear them.

The dead-letter queue receives two kinds of message (both documented by AWS):
- a Lambda invocation record (the function's OnFailure destination): JSON with
  `requestContext` {requestId, functionArn, condition, approximateInvokeCount},
  `responseContext` and `responsePayload` {errorType, errorMessage, …};
- an EventBridge Scheduler dead-letter event: the target's input as the body, and the reason in
  message attributes ERROR_CODE, ERROR_MESSAGE, RETRY_ATTEMPTS, EXHAUSTED_RETRY_CONDITION,
  SCHEDULED_TIME, SCHEDULE_ARN, TARGET_ARN.
A scheduled run carries no work of its own (the due sessions are in the table), so redriving
means one fresh run; the messages are deleted only once such a run has succeeded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ops import ROOT
from ops.stack import DEAD_LETTER_OUTPUT, RESOLVER_FUNCTION, Aws, Stack, aws_problem

TICK_EVENT = ROOT / "events" / "resolver_tick.json"
# Held invisible while the run happens; the resolver's timeout (90 s) is well inside it.
HOLD_SECONDS = 300
# One screenful; a queue with more than this is an outage, and one run redrives it all anyway.
MAX_MESSAGES = 100
SQS_BATCH = 10
MAX_TEXT = 300


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue, in plain words."""

    message_id: str
    receipt_handle: str
    when: str
    what: str
    why: str


def _attribute(message: dict[str, Any], name: str) -> str:
    value = message.get("MessageAttributes", {}).get(name, {})
    return str(value.get("StringValue", "")) if isinstance(value, dict) else ""


def _sent_at(message: dict[str, Any]) -> str:
    raw = str(message.get("Attributes", {}).get("SentTimestamp", ""))
    if not raw.isdigit():
        return "unknown time"
    return datetime.fromtimestamp(int(raw) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def describe(message: dict[str, Any]) -> DeadLetter:
    """Say when, what and why for either documented format, or admit we do not know it."""
    message_id = str(message.get("MessageId", ""))
    receipt = str(message.get("ReceiptHandle", ""))
    code = _attribute(message, "ERROR_CODE")
    if code:
        retries = _attribute(message, "RETRY_ATTEMPTS") or "?"
        exhausted = _attribute(message, "EXHAUSTED_RETRY_CONDITION")
        what = f"EventBridge Scheduler could not invoke the resolver ({retries} retries"
        what += f", {exhausted} reached)" if exhausted else ")"
        why = f"{code}: {_attribute(message, 'ERROR_MESSAGE')}".rstrip(": ")
        when = _attribute(message, "SCHEDULED_TIME") or _sent_at(message)
        return DeadLetter(message_id, receipt, when, what, _short(why))
    try:
        record = json.loads(str(message.get("Body", "")))
    except ValueError:
        record = None
    context = record.get("requestContext") if isinstance(record, dict) else None
    if isinstance(record, dict) and isinstance(context, dict):
        payload = record.get("responsePayload")
        if isinstance(payload, dict):
            kind = str(payload.get("errorType") or "error")
            why = f"{kind}: {payload.get('errorMessage', '')}"
        else:
            why = str(record.get("responseContext", {}).get("functionError") or "no error text")
        what = (
            f"resolver run {context.get('requestId', '?')} failed "
            f"({context.get('condition', '?')}, {context.get('approximateInvokeCount', '?')} "
            "attempts)"
        )
        when = str(record.get("timestamp") or _sent_at(message))
        return DeadLetter(message_id, receipt, when, what, _short(why))
    return DeadLetter(
        message_id, receipt, _sent_at(message), "a message of unknown format", "unknown"
    )


def receive_all(aws: Aws, queue_url: str, wait_seconds: int) -> list[dict[str, Any]]:
    """Take up to MAX_MESSAGES messages, holding them invisible for HOLD_SECONDS."""
    taken: dict[str, dict[str, Any]] = {}
    while len(taken) < MAX_MESSAGES:
        answer = aws.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=SQS_BATCH,
            VisibilityTimeout=HOLD_SECONDS,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            taken.setdefault(str(message["MessageId"]), message)
    return list(taken.values())


def _batches(letters: list[DeadLetter]) -> list[list[DeadLetter]]:
    return [letters[i : i + SQS_BATCH] for i in range(len(letters)) if i % SQS_BATCH == 0]


def release(aws: Aws, queue_url: str, letters: list[DeadLetter]) -> None:
    """Make the messages visible again at once: they stay in the queue, untouched."""
    for batch in _batches(letters):
        aws.sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                for n, letter in enumerate(batch)
            ],
        )


def delete(aws: Aws, queue_url: str, letters: list[DeadLetter]) -> int:
    """Delete the messages; the number that could not be deleted."""
    failed = 0
    for batch in _batches(letters):
        answer = aws.sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": letter.receipt_handle}
                for n, letter in enumerate(batch)
            ],
        )
        failed += len(answer.get("Failed", []))
    return failed


def tick_event(region: str) -> dict[str, Any]:
    """The scheduled event the resolver gets every minute (events/resolver_tick.json), fresh."""
    event: dict[str, Any] = json.loads(TICK_EVENT.read_text())
    event.update(
        id=str(uuid.uuid4()),
        time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        region=region,
    )
    return event


def invoke_resolver(aws: Aws, function: str) -> tuple[bool, str]:
    """Run the resolver once and wait; (succeeded, what it said)."""
    try:
        answer = aws.lambda_.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps(tick_event(aws.region)).encode(),
        )
    except (ClientError, BotoCoreError) as exc:
        return False, f"the resolver could not be invoked: {aws_problem(exc)}"
    body = answer.get("Payload")
    raw = body.read() if body is not None else b""
    try:
        payload: Any = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")
    if answer.get("FunctionError") or answer.get("StatusCode") != 200:
        if isinstance(payload, dict):
            detail = f"{payload.get('errorType', 'error')}: {payload.get('errorMessage', '')}"
        else:
            detail = str(payload or answer.get("FunctionError") or "no error text")
        return False, _short(detail)
    return True, _short(json.dumps(payload))


def run_redrive(
    aws: Aws,
    stack: Stack,
    *,
    dry_run: bool,
    yes: bool,
    confirm: Callable[[str], str],
    wait_seconds: int = 1,
) -> int:
    """List the dead letters; unless a dry run, run the resolver and delete them if it worked."""
    queue_url = stack.output(DEAD_LETTER_OUTPUT)
    function = stack.function(RESOLVER_FUNCTION)
    letters = [describe(message) for message in receive_all(aws, queue_url, wait_seconds)]
    if not letters:
        print("The dead-letter queue is empty: nothing to redrive.")
        return 0
    print(f"{len(letters)} message(s) in the resolver's dead-letter queue:")
    for letter in letters:
        print(f"- {letter.when}: {letter.what}\n    why: {letter.why}")
    if dry_run:
        release(aws, queue_url, letters)
        print("Dry run: the resolver was not run and the messages are still in the queue.")
        return 0
    question = f"Run the resolver once now and, if it succeeds, delete these {len(letters)}? [y/N] "
    if not yes and confirm(question).strip().lower() not in ("y", "yes"):
        release(aws, queue_url, letters)
        print("Nothing done; the messages are still in the queue.")
        return 0
    succeeded, said = invoke_resolver(aws, function)
    if not succeeded:
        release(aws, queue_url, letters)
        print(
            f"The resolver run failed ({said}). The messages are kept. Fix the cause "
            "(`make doctor`, and `sam logs` of the ResolverFunction), then redrive again."
        )
        return 1
    print(f"The resolver ran: {said}")
    failed = delete(aws, queue_url, letters)
    if failed:
        print(f"Deleted {len(letters) - failed}; {failed} could not be deleted (run again).")
        return 1
    print(f"Deleted the {len(letters)} message(s).")
    return 0
