"""The queue path at scale (issue 26 §1), on the local runner's stack.

The local runner runs the template: the work queue on its embedded moto server, the worker as
that queue's SQS event source mapping, the resolver's sweep when this script runs it (as its
schedule would). Sessions are stored through the real webhook code minutes ago with no queue
configured (their reminders lost), their Bugpilot reports ready, so each needs one step: the
report, the note. Then:

- **scale**: `count` sessions due at once; the sweep sends them all, the worker notes them. Time,
  resolver runs, worker batches, and whether every ticket has exactly one note.
- **overload**: 120 due sessions, every Bugpilot and Zendesk call answered after 2 s. Today's
  in-run path (the resolver with no queue, one run of its real 90 s timeout) beside the queue path
  (the template's default concurrency): how many are noted by the run's end; how long until the
  queue path notes all, and how many in its first 60 s.
- **estimate**: from the vendor calls a session makes, what AWS would take for 10,000 and
  100,000 due sessions at the template's defaults, and the notes' pace (its own bound).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "layers" / "bridge"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

RESOLVER = "ResolverFunction"
WORKER = "WorkerFunction"
# Past the sweep's grace (2 minutes), within the webhook signature's window (5 minutes).
STORED_AGO = timedelta(minutes=4)
# The resolver's schedule, as these runs keep it (the template's: every minute).
SWEEP_SECONDS = 60.0
# The template's defaults: WorkerMaximumConcurrency, the SQS event's BatchSize.
WORKER_CONCURRENCY = 10
BATCH_SIZE = 10
# Zendesk's default note pace (its spec's notes_per_minute: the vendor's lowest plan).
ZENDESK_NOTES_PER_MINUTE = 80
# The vendors' per-call latency of the overload figure and of the AWS estimate.
LATENCY = 2.0
OVERLOAD_DUE = 120
IN_RUN_TIMEOUT_MS = 90_000  # the resolver's Timeout in the template
# Routes a session's one step calls, by simulator: the report, the earlier-note check, the note.
DELAYED = {"bugpilot": ("session_info",), "zendesk": ("comments", "update")}
# What the AWS estimate assumes a DynamoDB call takes (single-digit milliseconds in-region).
DYNAMODB_CALL_SECONDS = 0.01
# A drain taking longer than this is stuck (10,000 sessions take about half an hour here).
WAIT_LIMIT = 5400.0
# The bridge's DynamoDB read timeout in the scale run (see `scale`).
LOCAL_READ_TIMEOUT = 60
# How often `drain` says how far it got, on stderr.
PROGRESS_SECONDS = 60.0


@dataclass
class Local:
    """The local runner with its work queue polled, on the Bugpilot and Zendesk simulators."""

    runner: Any
    zendesk: Any
    bugpilot: Any

    def queued(self, queue: str = "WorkQueue") -> int:
        import boto3

        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        sqs = boto3.client("sqs", endpoint_url=self.runner.sqs_endpoint)
        answer = sqs.get_queue_attributes(
            QueueUrl=self.runner.queue_urls[queue], AttributeNames=names
        )
        return sum(int(answer["Attributes"][name]) for name in names)


@contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    """`module.name` is `value` inside."""
    before = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, before)


@contextmanager
def local(
    *, unpaced: bool, queue_concurrency: int | None, start_queues: bool = True
) -> Iterator[Local]:
    from local_runner.demo import start_stack
    from local_runner.simulators import BugpilotSimulator, ZendeskSimulator

    env = {"TABLE_NAME": f"bench-queue-{uuid.uuid4().hex[:8]}", "POWERTOOLS_LOG_LEVEL": "ERROR"}
    if unpaced:
        env["ZENDESK_NOTES_PER_MINUTE"] = "100000"
    with ExitStack() as stack:
        bugpilot, zendesk = BugpilotSimulator(), ZendeskSimulator()
        started = start_stack(
            stack,
            zendesk,
            providers={"bugpilot": lambda: bugpilot},
            env=env,
            start_schedules=False,
            start_queues=start_queues,
            queue_concurrency=queue_concurrency,
        )
        from capture_bridge import runtime as bridge_runtime
        from capture_bridge.settings import reset_settings_cache

        # This process is one warm function across stacks: its cached settings and stores (and
        # their DynamoDB clients) are an earlier stack's until reset, as local_stack.py does.
        reset_settings_cache()
        bridge_runtime._stores.clear()
        yield Local(started.runner, zendesk, bugpilot)


def store_overdue(stack: Local, count: int, *, with_queue: bool = False) -> list[str]:
    """`count` captures, one ticket each, through the webhook `STORED_AGO` with their reminders
    lost (unless `with_queue`), their reports ready; returns the tickets."""
    from capture_bridge.helpdesks import WebhookRequest, helpdesk_spec
    from capture_bridge.runtime import get_runtime
    from capture_bridge.webhook import receive

    runtime = get_runtime() if with_queue else replace(get_runtime(), queue=None)
    then = datetime.now(UTC) - STORED_AGO
    desk, sign = stack.zendesk, helpdesk_spec("zendesk").sign_request
    tickets = [str(100_000 + number) for number in range(count)]

    def deliver(ticket: str) -> None:
        user = f"user-{ticket}"
        stack.bugpilot.connect_user(user)
        body = desk.webhook_body(
            ticket, user_id=user, email=f"{user}@example.com", tags="bugpilot_session", fields={}
        )
        request = WebhookRequest("POST", "/webhooks/zendesk", body=body)
        answer = receive(
            "zendesk",
            {**desk.webhook_headers(), **sign(desk.bridge_settings(), request, then)},
            body.decode(),
            is_base64=False,
            runtime_factory=lambda: runtime,
            clock=lambda: then,
        )
        if answer.status != 202:
            raise RuntimeError(f"the webhook answered {answer.status}: {answer.body}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(deliver, tickets))
    for token in stack.bugpilot.tokens:
        stack.bugpilot.complete_report(token)
    return tickets


def _noted(stack: Local, tickets: list[str]) -> dict[str, int]:
    return {ticket: len(stack.zendesk.internal_notes(ticket)) for ticket in tickets}


def _say(text: str) -> None:
    print(f"queue_scale: {text}", file=sys.stderr, flush=True)


def drain(stack: Local, tickets: list[str], mark: float = 60.0) -> dict[str, Any]:
    """Sweep, then wait until every ticket is noted and the queue is empty; what it took."""
    runner = stack.runner
    started = time.monotonic()
    _say(f"stored; the first sweep begins ({runner.mapping_stats(WORKER).batches} worker batches)")
    first = runner.tick(RESOLVER)
    _say(f"the first sweep took {time.monotonic() - started:.0f} s: {first}")
    runs, last_run = 1, time.monotonic()
    last_said = last_run
    noted_at_mark: int | None = None
    all_noted: float | None = None
    while True:
        now = time.monotonic()
        if now - last_run >= SWEEP_SECONDS:
            runner.tick(RESOLVER)
            runs, last_run = runs + 1, now
        noted = sum(1 for count in _noted(stack, tickets).values() if count)
        if noted_at_mark is None and now - started >= mark:
            noted_at_mark = noted
        if all_noted is None and noted == len(tickets):
            all_noted = now - started
        poller = runner.pollers[f"{WORKER}.Due"]
        if all_noted is not None and poller.busy == 0 and stack.queued() == 0:
            break
        if now - last_said >= PROGRESS_SECONDS:
            last_said = now
            _say(
                f"{noted} of {len(tickets)} noted after {now - started:.0f} s,"
                f" {stack.queued()} reminders queued, {runs} sweeps,"
                f" {runner.mapping_stats(WORKER).batches} worker batches"
            )
        if now - started > WAIT_LIMIT:
            raise RuntimeError(f"only {noted} of {len(tickets)} noted after {WAIT_LIMIT:.0f} s")
        time.sleep(0.25)
    stats = runner.mapping_stats(WORKER)
    counts = _noted(stack, tickets)
    return {
        "sessions": len(tickets),
        "seconds": all_noted,
        "noted_at_mark": len(tickets) if noted_at_mark is None else noted_at_mark,
        "mark": mark,
        "first_run": first,
        "runs": runs,
        "batches": stats.batches,
        "records": stats.records,
        "kept": stats.kept,
        "every_note_once": set(counts.values()) == {1},
        "dead_letters": stack.queued("WorkDeadLetterQueue"),
    }


def scale(count: int, queue_concurrency: int) -> dict[str, Any]:
    """`count` sessions due at once through the queue path (the pace lifted: the queue is
    measured, not the helpdesk's plan).

    The bridge's DynamoDB calls get `LOCAL_READ_TIMEOUT` instead of their 2 s: moto answers a
    query of the due index by reading every item of the table in Python, seconds for tens of
    thousands of items where DynamoDB takes milliseconds, and it takes calls one at a time.
    """
    from capture_bridge.store import dynamodb

    with (
        local(unpaced=True, queue_concurrency=queue_concurrency) as stack,
        patched(dynamodb, "READ_TIMEOUT", LOCAL_READ_TIMEOUT),
    ):
        started = time.monotonic()
        tickets = store_overdue(stack, count)
        stored = time.monotonic() - started
        result = drain(stack, tickets)
    vendor_calls = 3  # session-info, the earlier-note check, the note (DELAYED)
    return {
        **result,
        "store_seconds": stored,
        "queue_concurrency": queue_concurrency,
        "vendor_calls": vendor_calls,
    }


def _delay(stack: Local, count: int, latency: float) -> None:
    for simulator, routes in DELAYED.items():
        for route in routes:
            getattr(stack, simulator).script(route, 200, delay=latency, times=4 * count)


def overload_queue(
    due: int = OVERLOAD_DUE, latency: float = LATENCY, *, unpaced: bool
) -> dict[str, Any]:
    """The queue path with `due` sessions due at once and every vendor call taking `latency`."""
    with local(unpaced=unpaced, queue_concurrency=None) as stack:
        tickets = store_overdue(stack, due)
        _delay(stack, due, latency)
        return drain(stack, tickets)


def overload_in_run(due: int = OVERLOAD_DUE, latency: float = LATENCY) -> dict[str, Any]:
    """Today's in-run path: one scheduled run of the resolver with no queue, its real 90 s."""
    from capture_bridge.resolver import RunOutcome, resolve_due_sessions
    from capture_bridge.runtime import get_runtime

    with local(unpaced=False, queue_concurrency=None, start_queues=False) as stack:
        tickets = store_overdue(stack, due)
        _delay(stack, due, latency)
        runtime = replace(get_runtime(), queue=None)
        deadline = time.monotonic() + IN_RUN_TIMEOUT_MS / 1000
        started = time.monotonic()
        summary = resolve_due_sessions(runtime, lambda: int((deadline - time.monotonic()) * 1000))
        seconds = time.monotonic() - started
        noted = sum(1 for count in _noted(stack, tickets).values() if count)
    return {
        "due": due,
        "noted": noted,
        "deferred": summary.outcomes[RunOutcome.DEFERRED],
        "seconds": seconds,
        "timeout": IN_RUN_TIMEOUT_MS / 1000,
    }


def aws_estimate(vendor_calls: int, store_calls: int, latency: float = LATENCY) -> dict[str, Any]:
    """Wall time on AWS for 10,000 and 100,000 due sessions at the template's defaults.

    A batch steps its sessions at once, so it takes one session's step: its vendor calls in
    turn at `latency` each, and its DynamoDB calls. WorkerMaximumConcurrency batches of
    BatchSize run at once. Notes go at the helpdesk's pace, which bounds them on its own.
    """
    step = vendor_calls * latency + store_calls * DYNAMODB_CALL_SECONDS
    per_minute = WORKER_CONCURRENCY * BATCH_SIZE * 60 / step
    rows = []
    for sessions in (10_000, 100_000):
        worker_minutes = sessions / per_minute
        note_minutes = sessions / ZENDESK_NOTES_PER_MINUTE
        rows.append(
            {
                "sessions": sessions,
                "worker_minutes": worker_minutes,
                "note_minutes": note_minutes,
                "minutes": max(worker_minutes, note_minutes),
            }
        )
    return {
        "step_seconds": step,
        "sessions_per_minute": per_minute,
        "latency": latency,
        "vendor_calls": vendor_calls,
        "store_calls": store_calls,
        "dynamodb_call_seconds": DYNAMODB_CALL_SECONDS,
        "concurrency": WORKER_CONCURRENCY,
        "batch": BATCH_SIZE,
        "notes_per_minute": ZENDESK_NOTES_PER_MINUTE,
        "rows": rows,
    }


def store_calls_per_step() -> int:
    """The DynamoDB calls one worker step makes on a ready session (counted, not timed)."""
    from capture_bridge import runtime as bridge_runtime

    counted = 0

    def count(**_: Any) -> None:
        nonlocal counted
        counted += 1

    with local(unpaced=True, queue_concurrency=None, start_queues=False) as stack:
        store_overdue(stack, 1)
        session = bridge_runtime.get_runtime()
        client = session.store._table.client
        client.meta.events.register("before-parameter-build.dynamodb.*", count)
        stack.runner.tick(RESOLVER)  # the sweep: one listing, not the step's
        counted = 0
        stack.runner.poll(WORKER)
    return counted


@contextmanager
def beside(command: list[str]) -> Iterator[Callable[[], Any]]:
    """`command` run in a process of its own while the block runs; inside, a call that waits
    for it and returns the JSON it printed. Stopped if the block raises before that."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603

    def result() -> Any:
        out, _ = process.communicate()
        if process.returncode:
            raise RuntimeError(f"{command} exited with {process.returncode}")
        return json.loads(out)

    try:
        yield result
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def run(count: int, queue_concurrency: int, *, paced: bool = True) -> dict[str, Any]:
    """Every figure of this script; `paced` adds the queue path at Zendesk's default note pace
    (about 3 minutes, bound by the pace: `make bench` leaves it out to stay within 10 minutes).

    The overload runs spend their minutes mostly waiting on the vendors' 2 s, and the unpaced
    one its last minute on its last reminders' SQS delays (the reminders it takes are part of its
    figure), so it runs beside the others, in an interpreter and on a local stack of its own:
    beside today's in-run path first, both waiting, then beside the scale run (busy throughout:
    moto takes its calls one at a time) while it only waits for those reminders.
    """
    unpaced = [sys.executable, str(Path(__file__).resolve()), "--part", "unpaced"]
    with beside(unpaced) as queue_unpaced:
        overload = {"in_run": overload_in_run()}
        at_scale = scale(count, queue_concurrency)
        store_calls = store_calls_per_step()
        overload["queue_unpaced"] = queue_unpaced()
    if paced:
        overload["queue"] = overload_queue(unpaced=False)
    return {
        "scale": at_scale,
        "overload": overload,
        "estimate": aws_estimate(at_scale["vendor_calls"], store_calls),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--queue-concurrency", type=int, default=2)
    parser.add_argument(
        "--part",
        choices=("scale", "in-run", "queue", "unpaced", "estimate"),
        help="one figure only",
    )
    args = parser.parse_args()
    if args.part == "scale":
        result: Any = scale(args.sessions, args.queue_concurrency)
    elif args.part == "in-run":
        result = overload_in_run()
    elif args.part == "unpaced":
        result = overload_queue(unpaced=True)
    elif args.part == "queue":
        result = {"paced": overload_queue(unpaced=False), "unpaced": overload_queue(unpaced=True)}
    elif args.part == "estimate":
        result = aws_estimate(3, store_calls_per_step())
    else:
        result = run(args.sessions, args.queue_concurrency)
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
