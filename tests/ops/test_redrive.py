"""`ops redrive`: both dead-letter formats listed; messages deleted only after a good run."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from ops.redrive import run_redrive
from tests.ops.conftest import FUNCTIONS, Deployed

# A Lambda OnFailure destination record (AWS's documented invocation record).
INVOCATION_RECORD = {
    "version": "1.0",
    "timestamp": "2026-11-25T12:03:05.568Z",
    "requestContext": {
        "requestId": "e4b46cbf-b738-4d22-8880-a18cdf61200e",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:resolver:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 1,
    },
    "requestPayload": {"detail-type": "Scheduled Event"},
    "responseContext": {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    },
    "responsePayload": {
        "errorMessage": "DynamoDB could not be reached",
        "errorType": "StoreUnavailable",
    },
}
# An EventBridge Scheduler dead-letter event: the target input as body, the reason as attributes.
SCHEDULER_ATTRIBUTES = {
    "ERROR_CODE": "AWS.Lambda.TooManyRequestsException",
    "ERROR_MESSAGE": "Rate Exceeded.",
    "RETRY_ATTEMPTS": "2",
    "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
    "SCHEDULED_TIME": "2026-11-25T12:04:00Z",
}
RESOLVER_ANSWER = {"due": 3, "outcomes": {"resolved": 3}}


def fill_queue(deployed: Deployed) -> None:
    deployed.aws.sqs.send_message(
        QueueUrl=deployed.queue_url, MessageBody=json.dumps(INVOCATION_RECORD)
    )
    deployed.aws.sqs.send_message(
        QueueUrl=deployed.queue_url,
        MessageBody="{}",
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value}
            for name, value in SCHEDULER_ATTRIBUTES.items()
        },
    )


def messages_left(deployed: Deployed) -> int:
    attributes = deployed.aws.sqs.get_queue_attributes(
        QueueUrl=deployed.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def visible(deployed: Deployed) -> int:
    attributes = deployed.aws.sqs.get_queue_attributes(
        QueueUrl=deployed.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def stub_invoke(deployed: Deployed, payload: dict[str, Any], error: str | None = None) -> Stubber:
    body = json.dumps(payload).encode()
    answer: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": StreamingBody(io.BytesIO(body), len(body)),
    }
    if error:
        answer["FunctionError"] = error
    stubber = Stubber(deployed.aws.lambda_)
    stubber.add_response(
        "invoke",
        answer,
        {
            "FunctionName": FUNCTIONS["ResolverFunction"],
            "InvocationType": "RequestResponse",
            "Payload": ANY,
        },
    )
    stubber.activate()
    return stubber


def redrive(deployed: Deployed, **flags: bool) -> int:
    return run_redrive(
        deployed.aws,
        deployed.stack,
        dry_run=flags.get("dry_run", False),
        yes=flags.get("yes", True),
        confirm=lambda question: "n",
        wait_seconds=0,
    )


def test_dry_run_lists_both_formats_and_changes_nothing(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given one message of each documented format
    fill_queue(deployed)

    # when redrive runs as a dry run (no invoke is stubbed: any call would fail)
    code = redrive(deployed, dry_run=True)

    # then both are said in plain words and both are still there, visible
    out = capsys.readouterr().out
    assert code == 0
    assert "2 message(s)" in out
    assert "resolver run e4b46cbf-b738-4d22-8880-a18cdf61200e failed (RetriesExhausted" in out
    assert "why: StoreUnavailable: DynamoDB could not be reached" in out
    assert "2026-11-25T12:04:00Z: EventBridge Scheduler could not invoke the resolver" in out
    assert "why: AWS.Lambda.TooManyRequestsException: Rate Exceeded." in out
    assert visible(deployed) == 2


def test_messages_are_deleted_after_a_successful_run(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given dead letters and a resolver run that succeeds
    fill_queue(deployed)
    stubber = stub_invoke(deployed, RESOLVER_ANSWER)

    # when redrive runs
    code = redrive(deployed)

    # then the resolver ran once and the queue is empty
    stubber.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert code == 0
    assert '"resolved": 3' in out
    assert messages_left(deployed) == 0


def test_messages_are_kept_when_the_run_fails(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given dead letters and a resolver run that fails
    fill_queue(deployed)
    stub_invoke(
        deployed, {"errorType": "StoreUnavailable", "errorMessage": "still down"}, "Unhandled"
    )

    # when redrive runs
    code = redrive(deployed)

    # then it says why and the messages are back in the queue, visible
    out = capsys.readouterr().out
    assert code == 1
    assert "The resolver run failed (StoreUnavailable: still down)" in out
    assert visible(deployed) == 2


def test_declining_the_confirmation_changes_nothing(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given dead letters, when the operator answers no, then nothing runs and nothing goes
    fill_queue(deployed)
    code = redrive(deployed, yes=False)
    assert code == 0
    assert "Nothing done" in capsys.readouterr().out
    assert visible(deployed) == 2


def test_an_empty_queue_needs_nothing(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given an empty queue, when redrive runs, then it says so
    assert redrive(deployed) == 0
    assert "empty" in capsys.readouterr().out
