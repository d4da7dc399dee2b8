"""Time from a ready report to the note on the ticket (issue 26 §3), on a virtual clock.

Captures start at random times over `ARRIVALS` and their Bugpilot reports become ready
uniform(0, `READY_WITHIN`) after each start (seeded). The real product code runs them: the
intake (`intake.open_captures`) starts each capture, the real `SessionStore` keeps them in the
local runner's embedded DynamoDB, the Bugpilot and Zendesk simulators answer over HTTP on
127.0.0.1. Two paths are measured on the same plan:

- **today**: the scheduled resolver (`resolver.resolve_due_sessions`) once a minute, with the
  pending-check schedule of before issue 26 §3 (`todays_schedule`);
- **queue**: the work queue and its worker (`worker.work`), each session stepped when its
  message becomes visible, plus the scheduled sweep, with the new schedule;
- and, on request, **steady_every_minute**: the new schedule stepped by the resolver every minute.

Half an hour of captures cannot run in real time inside `make bench`, so time is virtual: a
discrete-event loop (`EventLoop`) takes the starts, the reports becoming ready, the scheduled
runs and the queue's messages in time order, and every product call is given the virtual clock
(`clock=`, `now=`) and a virtual `sleep`. Processing is not free: while a step runs, the
virtual clock moves on by the real time it takes (`VirtualClock.step`). Time-to-link is the
virtual time of the note's request to Zendesk less that of the report becoming ready; vendor
calls are the simulators' recorded requests, counted per capture over its first 30 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import math
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from local_stack import TABLE, CallCounter, Stack, local_stack, quiet

CAPTURES = 200
# A few captures whose report never comes: what they cost in their 30 minutes, beside today's.
NEVER_READY = 5
SEED = 26
# Starts spread over this long, so that they fall anywhere within the scheduled minute.
ARRIVALS = timedelta(minutes=20)
READY_WITHIN = timedelta(minutes=10)
RUN_EVERY = timedelta(minutes=1)
# The resolver's and the worker's timeouts, and the work queue's visibility timeout
# (template.yaml's): a run's `remaining_ms` counts down on the virtual clock.
RUN_TIMEOUT = timedelta(seconds=90)
WORKER_TIMEOUT = timedelta(seconds=120)
VISIBILITY_TIMEOUT = timedelta(seconds=720)
FIRST_MINUTES = timedelta(minutes=30)
EPOCH = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


# -- the pure parts ------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `share` of them at or below."""
    if not values:
        raise ValueError("no values")
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


@dataclass(order=True)
class Event:
    """Something that happens at `at`; events at the same time keep the order they were added."""

    at: datetime
    seq: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False, default=None)


class EventLoop:
    """A discrete-event loop: events come out in time order, ties first in first out.

    Pushes and counts may come from a step's threads (the sweep sends from a pool), so they
    hold a lock; pops come from the loop alone, between steps.
    """

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def push(self, at: datetime, kind: str, payload: Any = None) -> Event:
        with self._lock:
            event = Event(at, next(self._seq), kind, payload)
            heapq.heappush(self._heap, event)
        return event

    def pop(self) -> Event:
        return heapq.heappop(self._heap)

    def pop_same(self, first: Event, limit: int) -> list[Event]:
        """`first` and the events of its kind due at the same time right after it, up to `limit`."""
        batch = [first]
        while (
            len(batch) < limit
            and self._heap
            and self._heap[0].at == first.at
            and self._heap[0].kind == first.kind
        ):
            batch.append(heapq.heappop(self._heap))
        return batch

    def count(self, kind: str, until: datetime | None = None) -> int:
        """The events of `kind` to come (by `until`, when given)."""
        with self._lock:
            return sum(
                1
                for event in self._heap
                if event.kind == kind and (until is None or event.at <= until)
            )

    def __len__(self) -> int:
        return len(self._heap)


class VirtualClock:
    """Virtual time: set by the event loop, moved on by the real time a step takes and its sleeps.

    Steps are taken one after the other but each begins at its own event's time, as concurrent
    functions would; within a step the clock runs at real speed from there. A sleep moves only
    its own thread's time on (the worker's threads wait side by side, not one after another);
    the step ends at the latest of them.
    """

    def __init__(self, start: datetime, timer: Callable[[], float] = time.perf_counter) -> None:
        self._at = start
        self._timer = timer
        self._since: float | None = None
        self._lock = threading.Lock()
        # Each thread's sleeps in the current step: a cell per thread, tagged with the step.
        self._local = threading.local()
        self._step = 0
        self._cells: list[list[float]] = []

    def _slept(self) -> float:
        cell = getattr(self._local, "cell", None)
        return cell[1] if cell is not None and cell[0] == self._step else 0.0

    def __call__(self) -> datetime:
        with self._lock:
            at, since, slept = self._at, self._since, self._slept()
        running = 0.0 if since is None else self._timer() - since
        return at + timedelta(seconds=running + slept)

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of virtual time, at once (this thread's)."""
        with self._lock:
            cell = getattr(self._local, "cell", None)
            if cell is None or cell[0] != self._step:
                cell = [float(self._step), 0.0]
                self._local.cell = cell
                self._cells.append(cell)
            cell[1] += max(seconds, 0)

    @contextlib.contextmanager
    def step(self, at: datetime) -> Iterator[None]:
        """A step beginning at `at`: inside it the clock runs from `at` at real speed."""
        with self._lock:
            self._at, self._since = at, self._timer()
            self._step += 1
            self._cells = []
        try:
            yield
        finally:
            with self._lock:
                assert self._since is not None  # noqa: S101 - set above
                slept = max((cell[1] for cell in self._cells), default=0.0)
                self._at += timedelta(seconds=self._timer() - self._since + slept)
                self._since = None
                self._step += 1


class VirtualQueue:
    """The work queue (`work_queue.WorkQueue`) in the event loop: each message is delivered at
    the time SQS would make it visible, the product's own `delay_seconds` after it was sent."""

    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        self.sent = 0
        self.send_calls = 0
        self._ids = itertools.count(1)

    def send(self, items: Sequence[Any], *, now: datetime) -> list[Any]:
        from capture_bridge.work_queue import BATCH, delay_seconds
        from capture_bridge.worker import QueueMessage

        # One SendMessageBatch per ten, as SqsWorkQueue sends them.
        self.send_calls += math.ceil(len(items) / BATCH)
        for item in items:
            self.sent += 1
            message = QueueMessage(f"m{next(self._ids)}", item)
            self.loop.push(now + timedelta(seconds=delay_seconds(item, now)), "message", message)
        return []

    def backlog(self) -> int | None:
        return self.loop.count("message")


@dataclass(frozen=True)
class Capture:
    """One capture of the plan: when it starts and when its report is ready (None: never)."""

    number: int
    start: timedelta
    ready: timedelta | None


def plan(captures: int, never: int, seed: int = SEED) -> list[Capture]:
    """Starts uniform over `ARRIVALS`, reports ready uniform(0, `READY_WITHIN`) after each."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible plan, not a secret
    planned: list[Capture] = []
    for number in range(captures + never):
        start = timedelta(seconds=rng.uniform(0, ARRIVALS.total_seconds()))
        delay = timedelta(seconds=rng.uniform(0, READY_WITHIN.total_seconds()))
        planned.append(Capture(number, start, start + delay if number < captures else None))
    return sorted(planned, key=lambda capture: capture.start)


@dataclass
class PathResult:
    """What one path did with the plan."""

    # Seconds from each report becoming ready to its note's request to Zendesk.
    links: list[float] = field(default_factory=list)
    # Vendor calls in each capture's first 30 minutes, by capture, for ready and never-ready ones.
    calls: list[int] = field(default_factory=list)
    never_calls: list[int] = field(default_factory=list)
    # Vendor calls for no capture in particular (none expected; counted to be sure).
    other_calls: int = 0
    # Resolver runs, or worker invocations (batches), and the real seconds the path took.
    steps: int = 0
    seconds: float = 0.0
    # The queue path's: messages sent and SendMessageBatch calls, messages delivered again,
    # and the sessions the sweeps found overdue.
    queue_sends: int = 0
    queue_send_calls: int = 0
    redelivered: int = 0
    swept: int = 0
    # The calls of one scheduled run with nothing due, once every capture has ended.
    idle_run: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "captures": len(self.links),
            "p50": percentile(self.links, 0.5),
            "p95": percentile(self.links, 0.95),
            "max": max(self.links),
            "links": self.links,
            "calls": statistics.mean(self.calls),
            "never_calls": statistics.mean(self.never_calls) if self.never_calls else None,
            "other_calls": self.other_calls,
            "steps": self.steps,
            "seconds": self.seconds,
            "queue_sends": self.queue_sends,
            "queue_send_calls": self.queue_send_calls,
            "redelivered": self.redelivered,
            "swept": self.swept,
            "idle_run": self.idle_run,
        }


# -- the measurement -----------------------------------------------------------------------------


class Recorder:
    """The virtual time of every request a simulator receives (the simulators run in-process)."""

    def __init__(self, simulator: Any, clock: VirtualClock) -> None:
        self.stamps: list[tuple[datetime, Any]] = []
        handle = simulator.handle

        def recorded(request: Any) -> Any:
            self.stamps.append((clock(), request))
            return handle(request)

        # The simulator's own `handle`, wrapped on this instance only.
        simulator.handle = recorded


class Run:
    """One path over the plan: the loop, the clock, the stack and what the simulators saw."""

    def __init__(self, stack: Stack, planned: list[Capture]) -> None:
        self.stack = stack
        # A report is ready when the plan says (`complete_report`), never after some polls.
        stack.bugpilot.reports_after_polls = None
        self.plan = planned
        self.loop = EventLoop()
        self.clock = VirtualClock(EPOCH)
        self.bugpilot = Recorder(stack.bugpilot, self.clock)
        self.zendesk = Recorder(stack.zendesk, self.clock)
        self.tokens: dict[str, int] = {}
        self.ready_at: dict[int, datetime] = {}
        self.result = PathResult()
        for capture in planned:
            self.loop.push(EPOCH + capture.start, "start", capture)
            if capture.ready is not None:
                self.loop.push(EPOCH + capture.ready, "ready", capture)

    def runtime(self, queue: Any = None) -> Any:
        """The product's runtime on the stack, with `queue` as its work queue (None: none, so
        the scheduled run steps the due sessions itself, as before the queue)."""
        from dataclasses import replace

        from capture_bridge.runtime import build_runtime
        from capture_bridge.session_store import SessionStore
        from capture_bridge.settings import settings_from

        # Every setting at its default (notes paced at Zendesk's 80 a minute: never the limit
        # here, about ten notes a minute), the stack's own queue left out.
        settings = settings_from({**self.stack.settings, "WORK_QUEUE_URL": ""})
        # The embedded server answers DynamoDB calls one at a time (moto is not thread-safe).
        store = SessionStore(TABLE, client=self.stack.client())
        return replace(build_runtime(settings, store=store), queue=queue)

    def start(self, runtime: Any, capture: Capture) -> None:
        from capture_bridge.intake import open_captures
        from capture_bridge.models import CaptureRequest

        user = f"user-{capture.number}"
        self.stack.bugpilot.connect_user(user)
        request = CaptureRequest(
            helpdesk="zendesk",
            ticket_id=str(1000 + capture.number),
            provider="bugpilot",
            action="upload-session",
            subject="upload-session",
            user_id=user,
        )
        issued = len(self.stack.bugpilot.tokens)
        open_captures(runtime, [request], now=self.clock(), clock=self.clock)
        tokens = self.stack.bugpilot.tokens
        if len(tokens) != issued + 1:
            raise RuntimeError(f"capture {capture.number} was not started by its request")
        self.tokens[tokens[-1]] = capture.number

    def ready(self, capture: Capture) -> None:
        token = next(t for t, number in self.tokens.items() if number == capture.number)
        self.stack.bugpilot.complete_report(token)
        self.ready_at[capture.number] = self.clock()

    def remaining_ms(self, began: datetime, timeout: timedelta = RUN_TIMEOUT) -> Callable[[], int]:
        """A function's time left on the virtual clock, `timeout` from `began`."""
        return lambda: int((began + timeout - self.clock()).total_seconds() * 1000)

    def settled(self) -> bool:
        """Every capture noted (the never-ready ones once their deadline has passed)."""
        noted = {self._capture_of(request) for _, request in self._notes()} - {None}
        return len(noted) == len(self.plan)

    def _notes(self) -> list[tuple[datetime, Any]]:
        return [
            (at, request)
            for at, request in self.zendesk.stamps
            if request.method == "PUT" and "/tickets/" in request.path
        ]

    def _capture_of(self, request: Any) -> int | None:
        """The capture a vendor call was for: by ticket, session token or user; None if none."""
        path: str = request.route
        if "/tickets/" in path:
            return int(path.split("/tickets/")[1].split(".")[0].split("/")[0]) - 1000
        if "session-info" in path:
            return self.tokens.get(path.rstrip("/").rsplit("/", 1)[1])
        body = request.json()
        user = body.get("userId") if isinstance(body, dict) else None
        if isinstance(user, str) and user.startswith("user-"):
            return int(user.removeprefix("user-"))
        return None

    def tally(self) -> PathResult:
        """Time-to-link and vendor calls per capture, from what the simulators recorded."""
        starts = {capture.number: EPOCH + capture.start for capture in self.plan}
        firsts: dict[int, datetime] = {}
        for at, request in self._notes():
            number = self._capture_of(request)
            if number in firsts:
                raise RuntimeError(f"capture {number} got a second note")
            if number is not None:
                firsts[number] = at
        calls = dict.fromkeys(starts, 0)
        for at, request in [*self.bugpilot.stamps, *self.zendesk.stamps]:
            number = self._capture_of(request)
            if number is None:
                self.result.other_calls += 1
            elif at < starts[number] + FIRST_MINUTES:
                calls[number] += 1
        for capture in self.plan:
            if capture.ready is None:
                self.result.never_calls.append(calls[capture.number])
                continue
            ready = self.ready_at[capture.number]
            self.result.links.append((firsts[capture.number] - ready).total_seconds())
            self.result.calls.append(calls[capture.number])
        return self.result


def todays_poll_interval(step: int, policy: Any) -> timedelta:
    """Today's wait after a check found no report: the first poll doubled, up to 5 minutes."""
    from capture_bridge.capture_flow import MAX_POLL_DELAY, backoff

    interval: timedelta = backoff(policy.poll, step, MAX_POLL_DELAY)
    return interval


@contextlib.contextmanager
def todays_schedule() -> Iterator[None]:
    """The flow with today's pending-check schedule (before issue 26 §3), for the baseline."""
    from capture_bridge import capture_flow

    new = capture_flow.poll_interval
    # `_wait` looks `poll_interval` up when it is called, so this is the one rule replaced.
    capture_flow.poll_interval = todays_poll_interval
    try:
        yield
    finally:
        capture_flow.poll_interval = new


def every_minute(stack: Stack, planned: list[Capture]) -> PathResult:
    """The resolver every minute, each run on the sessions due by then."""
    from capture_bridge.resolver import resolve_due_sessions

    run = Run(stack, planned)
    runtime = run.runtime()
    run.loop.push(EPOCH, "run")
    began = time.perf_counter()
    while run.loop:
        event = run.loop.pop()
        with run.clock.step(event.at):
            if event.kind == "start":
                run.start(runtime, event.payload)
            elif event.kind == "ready":
                run.ready(event.payload)
            else:
                resolve_due_sessions(
                    runtime, run.remaining_ms(event.at), run.clock, sleep=run.clock.sleep
                )
                run.result.steps += 1
                if not (run.settled() and run.loop.count("start") == 0):
                    run.loop.push(event.at + RUN_EVERY, "run")
    run.result.seconds = time.perf_counter() - began
    run.result.idle_run = idle_run(runtime, run.clock)
    return run.tally()


def through_queue(stack: Stack, planned: list[Capture]) -> PathResult:
    """The work queue: each message stepped by the worker when it is delivered, in batches of
    those delivered at the same moment (up to the event source mapping's ten); the scheduled
    run, a sweep, every minute."""
    from capture_bridge.resolver import resolve_due_sessions
    from capture_bridge.worker import MAX_BATCH, work

    run = Run(stack, planned)
    queue = VirtualQueue(run.loop)
    runtime = run.runtime(queue)
    run.loop.push(EPOCH, "run")
    began = time.perf_counter()
    while run.loop:
        event = run.loop.pop()
        with run.clock.step(event.at):
            if event.kind == "start":
                run.start(runtime, event.payload)
            elif event.kind == "ready":
                run.ready(event.payload)
            elif event.kind == "message":
                batch = [e.payload for e in run.loop.pop_same(event, MAX_BATCH)]
                failed = set(
                    work(
                        runtime,
                        batch,
                        run.clock,
                        run.remaining_ms(event.at, WORKER_TIMEOUT),
                        sleep=run.clock.sleep,
                    )
                )
                run.result.steps += 1
                for message in batch:
                    if message.message_id in failed:
                        # Delivered again once its visibility timeout has passed.
                        run.loop.push(event.at + VISIBILITY_TIMEOUT, "message", message)
                        run.result.redelivered += 1
            else:
                summary = resolve_due_sessions(
                    runtime, run.remaining_ms(event.at), run.clock, sleep=run.clock.sleep
                )
                run.result.swept += summary.due
                if not (run.settled() and run.loop.count("start") == 0):
                    run.loop.push(event.at + RUN_EVERY, "run")
    run.result.seconds = time.perf_counter() - began
    run.result.queue_sends = queue.sent
    run.result.queue_send_calls = queue.send_calls
    run.result.idle_run = idle_run(runtime, run.clock)
    return run.tally()


def idle_run(runtime: Any, clock: VirtualClock) -> dict[str, int]:
    """The calls of one scheduled run with nothing due: DynamoDB's, and the queue's sends."""
    from capture_bridge.resolver import resolve_due_sessions

    counter = CallCounter()
    client = runtime.store._table.client
    client.meta.events.register("before-parameter-build.dynamodb.*", counter)
    queue = runtime.queue
    sends = queue.send_calls if queue is not None else 0
    with clock.step(clock() + timedelta(hours=1)):
        summary = resolve_due_sessions(runtime, lambda: 60_000, clock)
    client.meta.events.unregister("before-parameter-build.dynamodb.*", counter)
    if summary.due:
        raise RuntimeError(f"{summary.due} sessions still due after every capture ended")
    calls = dict(counter.calls)
    if queue is not None:
        calls["SendMessageBatch"] = queue.send_calls - sends
    return calls


# What each measured path runs: how sessions are stepped, and on which check schedule.
PATHS: dict[str, tuple[str, bool]] = {
    # Today: the resolver every minute, today's schedule.
    "today": ("every_minute", True),
    # The new schedule alone, still stepped by the resolver every minute.
    "steady_every_minute": ("every_minute", False),
    # The design: the work queue and its worker, the new schedule.
    "queue": ("through_queue", False),
}
DEFAULT_PATHS = ("today", "queue")


def measure_path(name: str, captures: int, never: int) -> dict[str, Any]:
    """One path over the plan, on a fresh local stack (in a process of its own: see `measure`)."""
    stepping, todays = PATHS[name]
    runner = {"every_minute": every_minute, "through_queue": through_queue}[stepping]
    planned = plan(captures, never)
    schedule = todays_schedule() if todays else contextlib.nullcontext()
    with local_stack() as stack, quiet(), schedule:
        return runner(stack, planned).summary()


def measure(
    captures: int = CAPTURES, never: int = NEVER_READY, paths: Sequence[str] = DEFAULT_PATHS
) -> dict[str, Any]:
    """Every path over the same plan, two at a time in processes of their own.

    The stack (moto's server, the simulators) and the product share one interpreter per path,
    so a path uses one core: two at once fit the bench's two cores.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = {name: pool.submit(measure_path, name, captures, never) for name in paths}
        figures = {name: future.result() for name, future in futures.items()}
    return {
        "captures": captures,
        "never_ready": never,
        "seed": SEED,
        "arrivals_s": ARRIVALS.total_seconds(),
        "ready_within_s": READY_WITHIN.total_seconds(),
        "paths": figures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--captures", type=int, default=CAPTURES)
    parser.add_argument("--never", type=int, default=NEVER_READY)
    parser.add_argument("--paths", nargs="*", choices=sorted(PATHS), default=DEFAULT_PATHS)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    result = measure(args.captures, args.never, args.paths)
    for name, figures in result["paths"].items():
        print(
            f"{name:20s} p50 {figures['p50']:5.1f} s  p95 {figures['p95']:5.1f} s"
            f"  max {figures['max']:5.1f} s  calls/capture {figures['calls']:.2f}"
            f" (never ready: {figures['never_calls']})  {figures['steps']} steps"
            f" in {figures['seconds']:.0f} s"
        )
    if args.out:
        with open(args.out, "w") as out:
            json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
