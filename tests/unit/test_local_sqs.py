"""The local runner's SQS event source mapping, its pure parts: the event it builds, how it reads
the function's answer, and the queues and mappings it reads from the template (no socket)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local_runner.sqs import handled_ids, sqs_event
from local_runner.template import LOCAL_SQS_CONCURRENCY, load_template
from tests.conftest import ROOT

ARN = "arn:aws:sqs:us-east-1:123456789012:work"
IDS = ["m-1", "m-2", "m-3"]


def message(number: int, **extra: Any) -> dict[str, Any]:
    """A message as ReceiveMessage returns it."""
    return {
        "MessageId": f"m-{number}",
        "ReceiptHandle": f"r-{number}",
        "MD5OfBody": "d41d8cd98f00b204e9800998ecf8427e",
        "Body": json.dumps({"session_id": f"s-{number}", "due": "2026-12-06T12:00:00Z"}),
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1765022400000"},
        **extra,
    }


def test_the_event_has_the_records_lambda_sends() -> None:
    # given two received messages, one with a message attribute
    attribute = {"StringValue": "x", "DataType": "String"}
    messages = [message(1), message(2, MessageAttributes={"kind": attribute})]
    # when the mapping builds the function's event
    event = sqs_event(messages, ARN)
    # then each record carries what Lambda's SQS records carry, in Lambda's spelling
    first, second = event["Records"]
    assert first == {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": messages[0]["Body"],
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1765022400000"},
        "messageAttributes": {},
        "md5OfBody": "d41d8cd98f00b204e9800998ecf8427e",
        "eventSource": "aws:sqs",
        "eventSourceARN": ARN,
        "awsRegion": "us-east-1",
    }
    assert second["messageAttributes"] == {
        "kind": {
            "stringValue": "x",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }


def test_the_worker_reads_the_event_the_mapping_builds() -> None:
    # given the bridge's own reading of an SQS event
    from capture_bridge.worker import messages_of

    # when it reads the mapping's event
    found = messages_of(sqs_event([message(1), message(2)], ARN))
    # then every record is a reminder with its message id
    assert [(m.message_id, m.item and m.item.session_id) for m in found] == [
        ("m-1", "s-1"),
        ("m-2", "s-2"),
    ]


@pytest.mark.parametrize(
    ("answer", "deleted"),
    [
        # complete success, as Lambda reads it
        (None, IDS),
        ({}, IDS),
        ({"batchItemFailures": []}, IDS),
        ({"batchItemFailures": None}, IDS),
        # the named ones stay
        ({"batchItemFailures": [{"itemIdentifier": "m-2"}]}, ["m-1", "m-3"]),
        ({"batchItemFailures": [{"itemIdentifier": i} for i in IDS]}, []),
        # malformed: complete failure, nothing deleted
        ({"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, []),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, []),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, []),
        ({"batchItemFailures": [{"id": "m-1"}]}, []),
        ({"batchItemFailures": ["m-1"]}, []),
        ({"batchItemFailures": "m-1"}, []),
        ({"batchItemFailures": {}}, []),
        ("ok", []),
        ([], []),
    ],
)
def test_report_batch_item_failures_deletes_what_lambda_would(
    answer: Any, deleted: list[str]
) -> None:
    # given a batch of three, with ReportBatchItemFailures; when the function answers
    # then the mapping deletes exactly what Lambda's would
    assert handled_ids(answer, IDS, report_batch_item_failures=True) == deleted


@pytest.mark.parametrize("answer", [None, {"batchItemFailures": [{"itemIdentifier": "m-1"}]}, "x"])
def test_without_report_batch_item_failures_an_answer_means_all_done(answer: Any) -> None:
    assert handled_ids(answer, IDS, report_batch_item_failures=False) == IDS


def test_the_templates_queues_and_mapping_are_read() -> None:
    # given the repository's template
    template = load_template(ROOT / "template.yaml")
    # then its work queue keeps its visibility timeout and redrive policy to its dead-letter queue
    work, dead = template.queues["WorkQueue"], template.queues["WorkDeadLetterQueue"]
    assert work.attributes["VisibilityTimeout"] == "720"
    assert json.loads(work.attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead.arn,
        "maxReceiveCount": 5,
    }
    assert work.dead_letter_queue == "WorkDeadLetterQueue"
    assert dead.arn == f"arn:aws:sqs:us-east-1:123456789012:{dead.name}"
    # and the worker's SQS event becomes a mapping as the template sets it
    worker = template.functions["WorkerFunction"]
    (due,) = worker.queue_events
    assert (due.queue, due.batch_size, due.max_concurrency) == ("WorkQueue", 10, 10)
    assert due.report_batch_item_failures is True
    assert due.batching_window_seconds == 0
    assert worker.timeout == 120
    # and every function's WORK_QUEUE_URL is the work queue's (its local URL once started)
    for function in template.functions.values():
        assert function.queue_env_vars == {"WORK_QUEUE_URL": "WorkQueue"}
        assert function.environment["WORK_QUEUE_URL"] == work.aws_url


def test_a_mapping_without_a_concurrency_cap_gets_the_local_one(tmp_path: Any) -> None:
    # given a template whose SQS event sets no ScalingConfig, a queue with a name of its own
    (tmp_path / "fn").mkdir()
    (tmp_path / "template.yaml").write_text(
        "Resources:\n"
        "  Jobs:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties: {QueueName: jobs, FifoQueue: false}\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      CodeUri: fn\n"
        "      Handler: app.handler\n"
        "      Environment: {Variables: {JOBS: !GetAtt Jobs.QueueUrl, ARN: !GetAtt Jobs.Arn}}\n"
        "      Events:\n"
        "        Work:\n"
        "          Type: SQS\n"
        "          Properties: {Queue: !GetAtt Jobs.Arn, Enabled: false}\n"
    )
    # when it is read
    template = load_template(tmp_path / "template.yaml")
    # then the mapping has Lambda's defaults and the local cap, and the queue its own name
    (work,) = template.functions["Fn"].queue_events
    assert (work.batch_size, work.max_concurrency, work.enabled) == (
        10,
        LOCAL_SQS_CONCURRENCY,
        False,
    )
    assert template.queues["Jobs"].name == "jobs"
    assert template.queues["Jobs"].attributes == {"FifoQueue": "false"}
    environment = template.functions["Fn"].environment
    assert environment["ARN"] == "arn:aws:sqs:us-east-1:123456789012:jobs"
    assert environment["JOBS"] == template.queues["Jobs"].aws_url
    assert template.functions["Fn"].queue_env_vars == {"JOBS": "Jobs"}
