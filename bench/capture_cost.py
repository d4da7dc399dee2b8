"""What 10,000 captures cost in AWS, from the calls the bridge really makes.

Runs captures end to end (the webhook path, then either scheduled resolver runs, as stacks without
the work queue do, or the queue's worker taking each reminder at its due time on a virtual clock)
on moto's DynamoDB and the Bugpilot and Zendesk simulators, counts every DynamoDB call with the
capacity units it would consume, every SQS request, every vendor call and the bytes the functions
log, then prices them with the list prices below. The counts are measured; the prices and the
billed durations are stated assumptions, printed with the result.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "bridge")]

# List prices, us-east-1, arm64, of the AWS pricing pages (Lambda, API Gateway HTTP APIs, DynamoDB
# on-demand, Secrets Manager, CloudWatch, SQS standard queues) as read on PRICES_AS_OF, when this
# file was written; not re-checked since (check https://aws.amazon.com/pricing before relying on
# them).
PRICES_AS_OF = "2026-11-25"
LAMBDA_PER_GB_SECOND = 0.0000133334
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
HTTP_API_PER_REQUEST = 1.00 / 1_000_000
DYNAMODB_PER_WRITE_UNIT = 0.625 / 1_000_000
DYNAMODB_PER_READ_UNIT = 0.125 / 1_000_000
SECRETS_PER_SECRET_MONTH = 0.40
SECRETS_PER_CALL = 0.05 / 10_000
LOGS_PER_GB = 0.50
METRIC_PER_MONTH = 0.30
ALARM_PER_MONTH = 0.10
DASHBOARD_PER_MONTH = 3.00
SQS_PER_REQUEST = 0.40 / 1_000_000
# An idle event source mapping still polls: Lambda's pollers long-poll the queue (20 s), about
# three receives a minute each; five pollers is an assumption (AWS does not publish the count).
IDLE_POLLERS = 5
IDLE_RECEIVES_PER_POLLER_MINUTE = 3
# How many checks find each capture's report not ready before the one that finds it.
NOT_READY_CHECKS = 3
# Billed durations assumed per invocation: the vendors' latency dominates and is not ours to
# measure here. The memory is the template's.
MEMORY_GB = 256 / 1024
WEBHOOK_SECONDS = 0.4
RESOLVER_RUN_SECONDS = 0.15
RESOLVER_SESSION_SECONDS = 0.5
# A worker invocation per reminder at low load (a batch of one), billed for its step.
WORKER_STEP_SECONDS = 0.3
RUNS_PER_MONTH = 60 * 24 * 30
# Settings are re-read every five minutes per warm function: about two functions' worth.
SECRET_READS_PER_MONTH = 2 * 12 * 24 * 30
CAPTURES = 10_000
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MAX_RUNS = 30
WORKER_MS = 110_000
ACCEPTED = 202
# The simulators' credentials.
TOKEN = "token"  # noqa: S105
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem"}
READ_OPERATIONS = {"GetItem", "Query"}


class Meter:
    """Counts DynamoDB calls and the capacity units they would consume on demand."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.write_units = 0.0
        self.read_units = 0.0
        self.items_written = 0

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        self.calls[name] += 1
        if name == "TransactWriteItems":
            # A transactional write costs two units per item written or checked.
            self.write_units += sum(
                2 * _units(next(iter(item.values()))) for item in params["TransactItems"]
            )
            self.items_written += sum(
                1 for item in params["TransactItems"] if "ConditionCheck" not in item
            )
        elif name in WRITE_OPERATIONS:
            self.write_units += _units(params)
            self.items_written += 1
        elif name in READ_OPERATIONS:
            # Strongly consistent reads of items under 4 KB: one unit each (Query: per 4 KB read).
            self.read_units += 1


def _units(request: dict[str, Any]) -> int:
    """Write units of one item: one per KB of the item written (an update: of its key, at least)."""
    item = request.get("Item") or request.get("Key") or {}
    return max(1, -(-len(json.dumps(item)) // 1024))


class Locked:
    """A client whose calls take turns: moto is not thread-safe, the resolver's pool is."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


class ListQueue:
    """The work queue in memory, on the virtual clock: SQS's delays, its requests counted."""

    def __init__(self, now: list[datetime]) -> None:
        self._now = now
        self._waiting: list[tuple[datetime, int, Any]] = []
        self.requests = 0

    def send(self, items: Any, *, now: datetime) -> list[Any]:
        import heapq

        from capture_bridge.work_queue import BATCH, delay_seconds

        # SendMessageBatch: one request per ten.
        self.requests += -(-len(items) // BATCH)
        for item in items:
            at = now + timedelta(seconds=delay_seconds(item, now))
            heapq.heappush(self._waiting, (at, len(self._waiting) + self.requests, item))
        return []

    def backlog(self) -> int | None:
        return 0

    def take(self) -> Any | None:
        """The next reminder, the clock moved to when SQS would deliver it; None when empty."""
        import heapq

        if not self._waiting:
            return None
        at, _, item = heapq.heappop(self._waiting)
        self._now[0] = max(self._now[0], at)
        # The worker's poller receives it and deletes it: a batch of one at low load.
        self.requests += 2
        return item


def measure(
    captures: int, *, queue: bool = False, not_ready_checks: int = NOT_READY_CHECKS
) -> dict[str, Any]:
    """Run `captures` captures to their notes; returns the counts per capture and per run.

    `queue`: the worker steps each session at its due time (else scheduled runs a minute apart);
    each report is found ready by the check after `not_ready_checks` that find it not ready.
    """
    import boto3
    from moto import mock_aws

    from capture_bridge.observability import handler_logger
    from capture_bridge.resolver import resolve_due_sessions
    from capture_bridge.runtime import build_runtime
    from capture_bridge.session_store import SessionStore
    from capture_bridge.settings import settings_from
    from local_runner.dynamodb import ensure_table
    from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
    from local_runner.template import load_template

    now = [START]
    secret = "bench-secret"  # noqa: S105 (a simulator's)
    definition = load_template(ROOT / "template.yaml").tables["SessionsTable"]
    with (
        mock_aws(),
        BugpilotSimulator(
            workspace_id="ws", api_key="key", reports_after_polls=not_ready_checks
        ) as bugpilot,
        ZendeskSimulator(email="agent@example.com", api_token=TOKEN) as zendesk,
    ):
        client = boto3.client("dynamodb", region_name="us-east-1")
        ensure_table(client, definition, "sessions")
        meter = Meter()
        client.meta.events.register("before-parameter-build.dynamodb.*", meter)
        settings = settings_from(
            {
                "TABLE_NAME": "sessions",
                "BUGPILOT_API_URL": bugpilot.url,
                "BUGPILOT_WORKSPACE_ID": "ws",
                "BUGPILOT_API_KEY": "key",
                "ZENDESK_API_URL": zendesk.url,
                "ZENDESK_EMAIL": "agent@example.com",
                "ZENDESK_API_TOKEN": TOKEN,
                "ZENDESK_WEBHOOK_SECRET": secret,
            }
        )
        runtime = build_runtime(settings, store=SessionStore("sessions", client=Locked(client)))
        work_queue = ListQueue(now) if queue else None
        runtime = replace(runtime, queue=work_queue)
        # Everything the functions write to stdout (logs and metrics) is what Logs ingests.
        output = io.StringIO()
        handler = handler_logger().registered_handler
        assert handler is not None  # noqa: S101 - handler_logger() installs it
        handler.setStream(output)

        # An empty run: what every scheduled minute costs with nothing to do.
        resolve_due_sessions(runtime, lambda: 60_000, lambda: now[0])
        idle = {"calls": dict(meter.calls), "read_units": meter.read_units}
        meter.__init__()  # type: ignore[misc]
        output.seek(0)
        output.truncate()
        webhook: dict[str, Any] = {}

        def webhooks_done() -> None:
            webhook.update(
                calls={name: count / captures for name, count in meter.calls.items()},
                items_written=meter.items_written / captures,
                write_units=meter.write_units / captures,
            )

        with contextlib.redirect_stdout(output):
            _webhooks(captures, runtime, bugpilot, secret, now)
            webhooks_done()
            if work_queue is None:
                runs = _run(captures, runtime, zendesk, now)
            else:
                runs = _work(captures, runtime, work_queue, zendesk, now)
        notes = sum(len(zendesk.comments(str(1000 + n))) for n in range(captures))
        if notes != captures:
            raise RuntimeError(f"{notes} notes for {captures} captures")
        return {
            "captures": captures,
            "path": "queue" if queue else "scheduled runs",
            "not_ready_checks": not_ready_checks,
            "sqs_requests": work_queue.requests / captures if work_queue else 0.0,
            "resolver_runs": runs,
            "idle_run": idle,
            "calls": {name: count / captures for name, count in meter.calls.items()},
            "webhook": webhook,
            "items_written": meter.items_written / captures,
            "write_units": meter.write_units / captures,
            "read_units": meter.read_units / captures,
            "vendor_calls": (len(bugpilot.requests()) + len(zendesk.requests())) / captures,
            "log_bytes": len(output.getvalue().encode()) / captures,
        }


def _webhooks(captures: int, runtime: Any, bugpilot: Any, secret: str, now: list[datetime]) -> None:
    """`captures` signed Zendesk webhook calls, each for its own ticket and connected user."""
    from capture_bridge.helpdesks.zendesk import sign_webhook
    from capture_bridge.webhook import receive

    for number in range(captures):
        user = f"user-{number}"
        bugpilot.connect_user(user)
        body = json.dumps(
            {"ticket_id": str(1000 + number), "requester_external_id": user, "tags": ""}
        ).encode()
        stamp = now[0].strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            "x-zendesk-webhook-signature": sign_webhook(secret, stamp, body),
            "x-zendesk-webhook-signature-timestamp": stamp,
        }
        answer = receive(
            "zendesk",
            headers,
            body.decode(),
            is_base64=False,
            runtime_factory=lambda: runtime,
            clock=lambda: now[0],
        )
        if answer.status != ACCEPTED:
            raise RuntimeError(f"webhook answered {answer.status}: {answer.body}")


def _run(captures: int, runtime: Any, zendesk: Any, now: list[datetime]) -> int:
    """Scheduled resolver runs a minute apart until every note is out; returns how many ran."""
    from capture_bridge.resolver import resolve_due_sessions

    runs = 0
    while len(zendesk.requests()) < captures and runs < MAX_RUNS:
        now[0] += timedelta(minutes=1)
        resolve_due_sessions(runtime, lambda: 60_000, lambda: now[0], sleep=_no_wait)
        runs += 1
    return runs


def _no_wait(seconds: float) -> None:
    """A note's wait for its token, not slept: the virtual clock stands still within a run, and
    takes from the pace's bucket never conflict, so the counts do not depend on it (write units a
    capture over 100: 26.31 with no wait, 26.36 with a fifth of each wait slept)."""


def _work(
    captures: int, runtime: Any, work_queue: ListQueue, zendesk: Any, now: list[datetime]
) -> int:
    """The worker takes each reminder at its due time until every note is out; returns how many."""
    from capture_bridge.worker import QueueMessage, work

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    taken = 0
    while len(zendesk.requests()) < captures and (item := work_queue.take()) is not None:
        taken += 1
        work(
            runtime,
            [QueueMessage(str(taken), item)],
            lambda: now[0],
            lambda: WORKER_MS,
            sleep=sleep,
        )
    return taken


def lambda_gb_seconds(
    captures: int = CAPTURES, worker_steps: float | None = None
) -> dict[str, float]:
    """The Lambda GB-seconds of a month with `captures` captures (the durations assumed above).

    `worker_steps`: reminders the worker takes per capture (the queue path), else the scheduled
    runs step the sessions.
    """
    sessions = (
        RESOLVER_SESSION_SECONDS if worker_steps is None else worker_steps * WORKER_STEP_SECONDS
    )
    return {
        "per captures": captures * (WEBHOOK_SECONDS + sessions) * MEMORY_GB,
        "scheduled runs": RUNS_PER_MONTH * RESOLVER_RUN_SECONDS * MEMORY_GB,
    }


def monthly_cost(figures: dict[str, Any], captures: int = CAPTURES) -> dict[str, float]:
    """The AWS bill for `captures` captures in a month, by service, in US dollars."""
    idle_reads = figures["idle_run"]["read_units"] * RUNS_PER_MONTH
    queued = figures.get("path") == "queue"
    steps = figures["resolver_runs"] / figures["captures"] if queued else None
    invocations = 1 + (steps if steps is not None else 1)
    idle_polls = IDLE_POLLERS * IDLE_RECEIVES_PER_POLLER_MINUTE * RUNS_PER_MONTH if queued else 0
    return {
        "Lambda (webhook, session steps)": captures * invocations * LAMBDA_PER_REQUEST
        + lambda_gb_seconds(captures, steps)["per captures"] * LAMBDA_PER_GB_SECOND,
        "Lambda (resolver every minute)": RUNS_PER_MONTH
        * (LAMBDA_PER_REQUEST + RESOLVER_RUN_SECONDS * MEMORY_GB * LAMBDA_PER_GB_SECOND),
        "API Gateway HTTP API": captures * HTTP_API_PER_REQUEST,
        "DynamoDB on demand": captures
        * (
            figures["write_units"] * DYNAMODB_PER_WRITE_UNIT
            + figures["read_units"] * DYNAMODB_PER_READ_UNIT
        )
        + idle_reads * DYNAMODB_PER_READ_UNIT,
        "SQS (reminders, and the idle pollers' receives)": (
            captures * figures.get("sqs_requests", 0.0) + idle_polls
        )
        * SQS_PER_REQUEST,
        "Secrets Manager": SECRETS_PER_SECRET_MONTH + SECRET_READS_PER_MONTH * SECRETS_PER_CALL,
        "CloudWatch Logs ingestion": captures * figures["log_bytes"] / 1e9 * LOGS_PER_GB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--captures", type=int, default=50, help="captures to measure")
    parser.add_argument(
        "--scheduled", action="store_true", help="scheduled runs step the sessions (no queue)"
    )
    args = parser.parse_args()
    figures = measure(args.captures, queue=not args.scheduled)
    print(
        f"Measured over {figures['captures']} captures ({figures['path']}, each report found by"
        f" the check after {figures['not_ready_checks']} not ready), per capture:"
    )
    for name, count in sorted(figures["calls"].items()):
        print(f"  DynamoDB {name:20s} {count:6.2f} calls")
    print(f"  DynamoDB write units      {figures['write_units']:6.2f}")
    print(f"  DynamoDB read units       {figures['read_units']:6.2f}")
    print(f"  DynamoDB items written    {figures['items_written']:6.2f}")
    webhook = figures["webhook"]
    print(
        f"  of which the webhook      {webhook['items_written']:6.2f} items,"
        f" {webhook['write_units']:.2f} write units"
    )
    print(f"  vendor HTTP calls         {figures['vendor_calls']:6.2f}")
    print(f"  SQS requests              {figures['sqs_requests']:6.2f}")
    print(f"  log bytes                 {figures['log_bytes']:6.0f}")
    print(f"An idle resolver run: {figures['idle_run']['calls']}")
    cost = monthly_cost(figures)
    print(
        f"\nA month with {CAPTURES:,} captures (list prices of {PRICES_AS_OF}, us-east-1, arm64):"
    )
    for item, dollars in cost.items():
        print(f"  {item:40s} ${dollars:8.2f}")
    print(f"  {'total':40s} ${sum(cost.values()):8.2f}")
    print(
        "Not included: CloudWatch custom metrics (each metric and dimension combination,"
        f" ${METRIC_PER_MONTH:.2f}/month), alarms (${ALARM_PER_MONTH:.2f} each),"
        f" the dashboard (${DASHBOARD_PER_MONTH:.2f}/month), all counted in docs/operations.md;"
        " free tiers are ignored."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
