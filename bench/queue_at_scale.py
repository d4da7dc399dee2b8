"""10,000 sessions due at once through the work queue (issue 26 §1), on a virtual clock.

The product's code runs every step for real: the sessions are stored by the intake
(`intake.open_captures`) in the embedded DynamoDB with their reminders lost, their Bugpilot
reports ready; the scheduled sweep (`resolver.resolve_due_sessions`) sends them to the queue
every minute; the worker (`worker.work`) steps batches of ten; the Bugpilot and Zendesk
simulators answer over HTTP on 127.0.0.1. What is modelled is SQS and its event source mapping:
a message is visible the product's own `delay_seconds` after it was sent, at most
`WorkerMaximumConcurrency` batches run at once, each takes up to ten visible messages, and a
message a worker reports failed is visible again after the visibility timeout.

Why modelled: moto's SQS, which the local runner's queue path uses (`bench/queue_scale.py`,
`tests/integration/test_queue_path.py`, 300 sessions), keeps a queue's messages in a list it
walks on every call, so with 10,000 messages its sends and deletes outlast the bridge's timeouts
(measured here: the first sweep sent 450 of 10,000 in six minutes).

Why virtual: batches run one after the other here, on 2 shared cores, while on AWS ten run at
once. Each batch begins at the virtual time its worker is free and the clock runs at real speed
while it works (`time_to_link.VirtualClock`), so the drain time is what ten workers as fast as
this machine would take, vendors answering at local speed. The notes' pace is lifted unless
`--paced` (then Zendesk's default 80 a minute holds them, and waits cost no real time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from local_stack import Stack, local_stack, quiet
from time_to_link import EPOCH, VISIBILITY_TIMEOUT, WORKER_TIMEOUT, Run, VirtualQueue

SESSIONS = 10_000
# The template's defaults: WorkerMaximumConcurrency (batches at once) and the resolver's schedule.
WORKER_CONCURRENCY = 10
SWEEP_EVERY = timedelta(minutes=1)
# Stored this long before the first sweep: past its grace (2 minutes), so each is overdue.
STORED_AGO = timedelta(minutes=4)
# A drain still going after this much virtual time is stuck.
VIRTUAL_LIMIT = timedelta(hours=6)
FIRST_TICKET = 100_000


def store(stack: Stack, run: Run, count: int) -> list[str]:
    """`count` captures started `STORED_AGO` before the first sweep, no reminder sent (as if all
    were lost), every report ready; returns the tickets."""
    from capture_bridge.intake import open_captures
    from capture_bridge.models import CaptureRequest

    runtime = run.runtime(None)
    then = EPOCH - STORED_AGO
    tickets = [str(FIRST_TICKET + number) for number in range(count)]

    def start(ticket: str) -> None:
        user = f"user-{ticket}"
        stack.bugpilot.connect_user(user)
        request = CaptureRequest(
            helpdesk="zendesk",
            ticket_id=ticket,
            provider="bugpilot",
            action="upload-session",
            subject="upload-session",
            user_id=user,
        )
        open_captures(runtime, [request], now=then, clock=lambda: then)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(start, tickets))
    if len(stack.bugpilot.tokens) != count:
        raise RuntimeError(f"{len(stack.bugpilot.tokens)} captures started for {count} requests")
    for token in stack.bugpilot.tokens:
        stack.bugpilot.complete_report(token)
    return tickets


def drain(stack: Stack, run: Run, tickets: list[str], concurrency: int) -> dict[str, Any]:
    """The sweeps and the workers, until every ticket is noted and nothing is left queued."""
    from capture_bridge.resolver import RunOutcome, resolve_due_sessions
    from capture_bridge.worker import MAX_BATCH, work

    visible: deque[Any] = deque()
    queue = VirtualQueue(run.loop)
    # What the sweep reads (SqsWorkQueue.backlog: ApproximateNumberOfMessages): the messages
    # visible now, those waiting for a worker and those whose delay has passed.
    queue.backlog = lambda: len(visible) + run.loop.count("message", until=run.clock())  # type: ignore[method-assign]
    runtime = run.runtime(queue)
    free = concurrency
    noted: set[str] = set()
    figures = {"sweeps": 0, "swept": 0, "batches": 0, "records": 0, "redelivered": 0}
    all_noted: timedelta | None = None
    wanted = set(tickets)
    notes_seen = 0

    def count_notes() -> None:
        nonlocal notes_seen
        # Only the new requests to Zendesk: a note is a PUT on its ticket.
        requests = stack.zendesk.requests()
        for request in requests[notes_seen:]:
            if request.method == "PUT" and "/tickets/" in request.path:
                noted.add(request.path.rsplit("/", 1)[-1].split(".")[0])
        notes_seen = len(requests)

    def dispatch(at: Any) -> None:
        nonlocal free
        while free and visible:
            batch = [visible.popleft() for _ in range(min(MAX_BATCH, len(visible)))]
            free -= 1
            with run.clock.step(at):
                failed = set(
                    work(
                        runtime,
                        batch,
                        run.clock,
                        run.remaining_ms(at, WORKER_TIMEOUT),
                        sleep=run.clock.sleep,
                    )
                )
            run.loop.push(run.clock(), "free")
            figures["batches"] += 1
            figures["records"] += len(batch)
            for message in batch:
                if message.message_id in failed:
                    run.loop.push(at + VISIBILITY_TIMEOUT, "message", message)
                    figures["redelivered"] += 1

    run.loop.push(EPOCH, "sweep")
    began = time.perf_counter()
    while run.loop:
        event = run.loop.pop()
        if event.at - EPOCH > VIRTUAL_LIMIT:
            raise RuntimeError(f"{len(noted)} of {len(tickets)} noted after {VIRTUAL_LIMIT}")
        if event.kind == "message":
            same = run.loop.pop_same(event, sys.maxsize)
            visible.extend(e.payload for e in same)
        elif event.kind == "free":
            free += 1
        else:
            with run.clock.step(event.at):
                summary = resolve_due_sessions(
                    runtime, run.remaining_ms(event.at), run.clock, sleep=run.clock.sleep
                )
            figures["sweeps"] += 1
            figures["swept"] += summary.outcomes[RunOutcome.QUEUED]
            count_notes()
            if not (wanted <= noted and not visible and run.loop.count("message") == 0):
                run.loop.push(event.at + SWEEP_EVERY, "sweep")
        dispatch(event.at)
        if all_noted is None and event.kind == "free":
            count_notes()
            if wanted <= noted:
                all_noted = run.clock() - EPOCH
    if all_noted is None:
        raise RuntimeError(f"{len(noted & wanted)} of {len(tickets)} noted")
    notes = {ticket: len(stack.zendesk.internal_notes(ticket)) for ticket in tickets}
    return {
        **figures,
        "sessions": len(tickets),
        "virtual_seconds": all_noted.total_seconds(),
        "real_seconds": time.perf_counter() - began,
        "reminders_sent": queue.sent,
        "every_note_once": set(notes.values()) == {1},
        "concurrency": concurrency,
    }


def measure(
    count: int = SESSIONS, concurrency: int = WORKER_CONCURRENCY, *, paced: bool = False
) -> dict[str, Any]:
    """Store `count` overdue sessions, then drain them; what it took."""
    with local_stack() as stack, quiet():
        if not paced:
            stack.settings["ZENDESK_NOTES_PER_MINUTE"] = "100000"
        run = Run(stack, [])
        started = time.perf_counter()
        tickets = store(stack, run, count)
        stored = time.perf_counter() - started
        result = drain(stack, run, tickets, concurrency)
    return {
        **result,
        "store_seconds": stored,
        "paced": paced,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--concurrency", type=int, default=WORKER_CONCURRENCY)
    parser.add_argument("--paced", action="store_true", help="at Zendesk's default note pace")
    parser.add_argument(
        "--merge", action="store_true", help="keep the figures in bench/results.json and .md"
    )
    args = parser.parse_args()
    result = measure(args.sessions, args.concurrency, paced=args.paced)
    print(json.dumps(result, indent=1))
    if args.merge:
        merge(result)
    return 0


def merge(result: dict[str, Any]) -> None:
    """Put `result` in bench/results.json (`make bench` keeps it) and redraw results.md."""
    import run

    results = json.loads(run.RAW.read_text())
    results["queue_at_scale"] = result
    run.RAW.write_text(json.dumps(results, indent=1) + "\n")
    run.write_results(results, sorted(str(path) for path in run.PLOTS.glob("*.png")))


if __name__ == "__main__":
    sys.exit(main())
