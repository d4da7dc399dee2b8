"""Warm webhook latency: the bridge's handler beside a bare floor doing the same calls.

The floor is what any webhook that stores a capture and asks Bugpilot for it must do, written
with boto3 and requests and nothing else: the same TransactWriteItems (the session, its open
marker and the delivery, with the same conditions), the same POST to Bugpilot's action endpoint,
the same PutItem of the answer and the same SendMessageBatch of its reminder to the work queue.
The bench checks the floor makes the same DynamoDB and SQS operations and HTTP calls as the
bridge before it times anything.

Both are called in turn (bridge, floor, bridge, floor, ...) in one warm process, each on a
fresh delivery, against the local runner's embedded DynamoDB and SQS and the simulators over
real HTTP on 127.0.0.1; the table is emptied (untimed) every `RESET_EVERY` pairs to keep moto's
TransactWriteItems, which copies the table, out of the timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from local_stack import (
    API_KEY,
    SECRET,
    TABLE,
    WORKSPACE,
    CallCounter,
    Stack,
    local_stack,
    quiet,
)

RESET_EVERY = 20
ACCEPTED = 202


def _event(number: int) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event: a signed Zendesk delivery for ticket `number`."""
    from capture_bridge.helpdesks.zendesk import sign_webhook

    body = json.dumps(
        {"ticket_id": str(number), "requester_external_id": f"user-{number}", "tags": ""}
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{helpdesk}",
        "rawPath": "/webhooks/zendesk",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-zendesk-webhook-signature": sign_webhook(SECRET, stamp, body.encode()),
            "x-zendesk-webhook-signature-timestamp": stamp,
            "x-zendesk-webhook-invocation-id": str(uuid.uuid4()),
        },
        "requestContext": {
            "http": {"method": "POST", "path": "/webhooks/zendesk", "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
        },
        "pathParameters": {"helpdesk": "zendesk"},
        "body": body,
        "isBase64Encoded": False,
    }


def _context() -> Any:
    from local_runner.runner import LambdaContext

    return LambdaContext(
        function_name="WebhookFunction",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:WebhookFunction",
        memory_limit_in_mb=256,
        aws_request_id=str(uuid.uuid4()),
        log_group_name="/aws/lambda/WebhookFunction",
        log_stream_name="bench",
        timeout_seconds=15,
    )


class BareWebhook:
    """The floor: the bridge's DynamoDB and HTTP calls for one capture, with boto3 and requests."""

    def __init__(self, stack: Stack) -> None:
        import requests

        self.client = stack.client()
        self.sqs = stack.sqs()
        self.queue_url = stack.queue_url
        self.http = requests.Session()
        self.action_url = stack.settings["BUGPILOT_API_URL"].rstrip("/") + "/api/v1/action"

    def __call__(self, event: dict[str, Any], _context: Any) -> dict[str, Any]:
        ticket = json.loads(event["body"])
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        session_id = str(uuid.uuid4())
        capture_key = f"zendesk#{ticket['ticket_id']}#bugpilot#upload-session"
        item = {
            "pk": {"S": f"session#{session_id}"},
            "ticket_key": {"S": f"zendesk#{ticket['ticket_id']}"},
            "status": {"S": "requested"},
            "created_at": {"S": stamp},
            "updated_at": {"S": stamp},
            "deadline_at": {"S": (now + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "session_id": {"S": session_id},
            "helpdesk": {"S": "zendesk"},
            "ticket_id": {"S": ticket["ticket_id"]},
            "provider": {"S": "bugpilot"},
            "action": {"S": "upload-session"},
            "capture_key": {"S": capture_key},
            "user_id": {"S": ticket["requester_external_id"]},
            "claim_id": {"S": uuid.uuid4().hex},
            "next_check_at": {"S": stamp},
            "due_bucket": {"S": "due#0"},
        }
        delivery = event["headers"]["x-zendesk-webhook-invocation-id"]
        expires = {"N": str(int(now.timestamp()) + 86_400)}
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {
                            "pk": {"S": f"open#{capture_key}"},
                            "session_id": {"S": session_id},
                            "expires_at": expires,
                        },
                        "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                        "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
                    }
                },
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {
                            "pk": {"S": f"delivery#zendesk#{delivery}#{capture_key}"},
                            "session_id": {"S": session_id},
                            "expires_at": expires,
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        answer = self.http.post(
            self.action_url,
            json={
                "workspaceId": WORKSPACE,
                "userId": ticket["requester_external_id"],
                "action": "upload-session",
                "userProvidedDescription": f"Requested from Zendesk ticket #{ticket['ticket_id']}",
            },
            headers={"x-bugpilot-api-key": API_KEY, "user-agent": "Bugpilot API Client/1.0"},
            timeout=10,
        )
        answer.raise_for_status()
        claim = item.pop("claim_id")
        item["status"] = {"S": "pending"}
        item["reference"] = {"S": str(answer.json())[:80]}
        self.client.put_item(
            TableName=TABLE,
            Item=item,
            ConditionExpression="claim_id = :held",
            ExpressionAttributeValues={":held": claim},
        )
        due = json.dumps({"session_id": session_id, "due": stamp})
        self.sqs.send_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": "0", "MessageBody": due, "DelaySeconds": 30}],
        )
        return {"statusCode": ACCEPTED, "body": json.dumps({"session_id": session_id})}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(pairs: int = 400) -> dict[str, Any]:
    """Time `pairs` bridge and floor webhooks, interleaved; returns both samples in seconds."""
    import webhook_handler
    from capture_bridge import runtime as bridge_runtime

    with local_stack() as stack, quiet():
        admin = stack.client()
        floor = BareWebhook(stack)
        # The bridge's own client (what a warm function reuses), counted to compare the calls.
        bridge_counter, floor_counter = CallCounter(), CallCounter()
        floor.client.meta.events.register("before-parameter-build.dynamodb.*", floor_counter)
        floor.sqs.meta.events.register("before-parameter-build.sqs.*", floor_counter)
        handlers: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]] = {
            "bridge": webhook_handler.lambda_handler,
            "floor": floor,
        }
        number = 0

        def call(name: str) -> float:
            nonlocal number
            number += 1
            stack.bugpilot.connect_user(f"user-{number}")
            event = _event(number)
            started = time.perf_counter()
            answer = handlers[name](event, _context())
            elapsed = time.perf_counter() - started
            if answer["statusCode"] != ACCEPTED:
                raise RuntimeError(f"{name} answered {answer['statusCode']}: {answer['body']}")
            return elapsed

        # Warm both (the bridge builds its runtime on the first call), then compare their calls.
        call("bridge")
        bridge = bridge_runtime.get_runtime()
        bridge_client = bridge.store._table.client
        bridge_client.meta.events.register("before-parameter-build.dynamodb.*", bridge_counter)
        bridge_sqs = getattr(bridge.queue, "client", None)
        if bridge_sqs is None:
            raise RuntimeError("the bench's bridge has no work queue (WORK_QUEUE_URL)")
        bridge_sqs.meta.events.register("before-parameter-build.sqs.*", bridge_counter)
        http_before = len(stack.bugpilot.requests())
        call("bridge")
        bridge_http = len(stack.bugpilot.requests()) - http_before
        call("floor")
        floor_http = len(stack.bugpilot.requests()) - http_before - bridge_http
        if bridge_counter.calls != floor_counter.calls or bridge_http != floor_http:
            raise RuntimeError(
                f"the floor does not make the bridge's calls: {dict(bridge_counter.calls)}"
                f" and {bridge_http} HTTP vs {dict(floor_counter.calls)} and {floor_http} HTTP"
            )
        calls = dict(bridge_counter.calls)
        samples: dict[str, list[float]] = {"bridge": [], "floor": []}
        for pair in range(pairs):
            if pair % RESET_EVERY == 0:
                stack.reset_table(admin)
            order = ("bridge", "floor") if pair % 2 == 0 else ("floor", "bridge")
            for name in order:
                samples[name].append(call(name))
    return {
        "pairs": pairs,
        "calls": calls,
        "http_calls": bridge_http,
        "bridge": samples["bridge"],
        "floor": samples["floor"],
        **{
            f"{name}_{label}": _percentile(samples[name], fraction)
            for name in ("bridge", "floor")
            for label, fraction in (("p50", 0.5), ("p99", 0.99))
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args()
    result = measure(args.pairs)
    print(f"each webhook: {result['calls']} and {result['http_calls']} HTTP call(s)")
    for label in ("p50", "p99"):
        bridge, floor = result[f"bridge_{label}"], result[f"floor_{label}"]
        print(
            f"{label}: bridge {bridge * 1000:6.1f} ms, floor {floor * 1000:6.1f} ms:"
            f" {bridge / floor:4.2f}x"
        )
    print(f"medians of {statistics.median(result['bridge']) * 1000:.1f} ms (bridge)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
