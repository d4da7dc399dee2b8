"""The resolver at scale: throughput against its pool size, and what an idle tick reads.

Throughput: sessions whose reports are ready are worked through by one resolver run, against
the local runner's embedded DynamoDB and the simulators, with every Bugpilot and Zendesk call
answered after a fixed simulated latency. A session makes `vendor_calls` such calls in turn,
so a pool of P can do at best P / (vendor_calls x latency) sessions a second: the ideal bound
the measured figure is divided by. Pool sizes are measured in turn, round after round, and the
median of the rounds is kept.

Idle tick: the DynamoDB calls one scheduled run makes with nothing due, counted (not timed)
with 0, 10,000 and 100,000 finished sessions in the table.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from local_stack import TABLE, CallCounter, Stack, local_stack, quiet

POOLS = (1, 2, 4, 8, 16, 32, 64)
LATENCY = 0.2
HISTORY = (0, 10_000, 100_000)
RUN_MS = 60_000
# Routes the resolver calls, by simulator; each answers after LATENCY.
DELAYED = {"bugpilot": ("session_info",), "zendesk": ("comments", "update")}


def _runtime(stack: Stack, pool: int) -> Any:
    from capture_bridge.pacing import MAX_PER_MINUTE
    from capture_bridge.runtime import build_runtime
    from capture_bridge.session_store import SessionStore
    from capture_bridge.settings import settings_from

    # Without the stack's work queue: these runs step the due sessions themselves (with one,
    # a scheduled run only sweeps, and nothing would be noted). Notes paced at the highest
    # pace allowed: this is the resolver's throughput, not Zendesk's limit (§2 measures that).
    settings = settings_from(
        {
            **stack.settings,
            "RESOLVER_CONCURRENCY": str(pool),
            "WORK_QUEUE_URL": "",
            "ZENDESK_NOTES_PER_MINUTE": str(MAX_PER_MINUTE),
        }
    )
    # The embedded server answers DynamoDB calls one at a time (moto is not thread-safe); the
    # pool's threads make their calls concurrently, as on AWS, and wait for it only there.
    return build_runtime(settings, store=SessionStore(TABLE, client=stack.client()))


def _ready_sessions(stack: Stack, count: int, first: int) -> None:
    """`count` captures through the real webhook handler, their reports ready."""
    from webhook_latency import _context, _event

    import webhook_handler

    for number in range(first, first + count):
        stack.bugpilot.connect_user(f"user-{number}")
        answer = webhook_handler.lambda_handler(_event(number), _context())
        if answer["statusCode"] != 202:
            raise RuntimeError(f"webhook answered {answer['statusCode']}: {answer['body']}")
    for token in stack.bugpilot.tokens:
        stack.bugpilot.complete_report(token)


def _later() -> datetime:
    # Past every session's next check (the poll is 30 s).
    return datetime.now(UTC) + timedelta(minutes=2)


def throughput_once(
    stack: Stack, pool: int, sessions: int, first: int, latency: float = LATENCY
) -> dict[str, float]:
    """One run over `sessions` ready sessions with a pool of `pool`: sessions noted per second."""
    from capture_bridge.resolver import RunOutcome, resolve_due_sessions

    stack.reset_table(stack.client())
    _ready_sessions(stack, sessions, first)
    runtime = _runtime(stack, pool)
    before = len(stack.bugpilot.requests()) + len(stack.zendesk.requests())
    for simulator, routes in DELAYED.items():
        for route in routes:
            getattr(stack, simulator).script(route, 200, delay=latency, times=4 * sessions)
    deadline = time.monotonic() + RUN_MS / 1000

    def remaining_ms() -> int:
        return int((deadline - time.monotonic()) * 1000)

    busy = stack.dynamodb.busy_seconds
    started = time.perf_counter()
    summary = resolve_due_sessions(runtime, remaining_ms, _later)
    elapsed = time.perf_counter() - started
    store_seconds = stack.dynamodb.busy_seconds - busy
    for simulator, routes in DELAYED.items():
        for route in routes:
            # The delays not used up (a session makes fewer calls than scripted) are dropped.
            getattr(stack, simulator)._scripts[route].clear()
    noted = summary.outcomes[RunOutcome.NOTED]
    # Sessions not begun in the run's first 13 s (see resolver.SESSION_BUDGET_MS) are deferred
    # to the next run: counted as not done, which is what they are in this run.
    if noted + summary.outcomes[RunOutcome.DEFERRED] != sessions:
        raise RuntimeError(f"pool {pool}: {noted} of {sessions} noted ({summary.outcomes})")
    calls = len(stack.bugpilot.requests()) + len(stack.zendesk.requests()) - before
    return {
        "store_share": store_seconds / elapsed,
        "rate": noted / elapsed,
        "noted": noted,
        "deferred": summary.outcomes[RunOutcome.DEFERRED],
        "vendor_calls": calls / sessions,
        "seconds": elapsed,
    }


def throughput(rounds: int = 3, pools: tuple[int, ...] = POOLS) -> dict[str, Any]:
    """Sessions a second per pool size (median of `rounds`), and the ideal bound of each."""
    samples: dict[int, list[dict[str, float]]] = {pool: [] for pool in pools}
    first = 1
    with local_stack() as stack, quiet():
        for _ in range(rounds):
            for pool in pools:
                # Two waves of the pool, and at least 8 sessions (a pool of 1 takes 4 s a round).
                sessions = max(8, 2 * pool)
                samples[pool].append(throughput_once(stack, pool, sessions, first))
                first += sessions
    vendor_calls = statistics.median(s["vendor_calls"] for runs in samples.values() for s in runs)
    return {
        "latency": LATENCY,
        "rounds": rounds,
        "vendor_calls": vendor_calls,
        "pools": list(pools),
        "rate": [statistics.median(s["rate"] for s in samples[pool]) for pool in pools],
        "bound": [pool / (vendor_calls * LATENCY) for pool in pools],
        # The share of the run the (serialised) local DynamoDB was busy: near 1, it is the limit.
        "store_share": [
            statistics.median(s["store_share"] for s in samples[pool]) for pool in pools
        ],
    }


def overload(due: int = 120, latency: float = 2.0) -> dict[str, Any]:
    """Today's overload figure: how many of `due` ready sessions one run notes at the default pool.

    The run has its real 60 s: it starts a session only with 47 s left (resolver.SESSION_BUDGET_MS),
    so with every vendor call taking `latency` most of the due sessions wait for the next run.
    """
    with local_stack() as stack, quiet():
        once = throughput_once(stack, 8, due, 1, latency)
    return {
        "due": due,
        "latency": latency,
        "noted": once["noted"],
        "deferred": once["deferred"],
        "seconds": once["seconds"],
    }


def _finished_item(stack: Stack) -> dict[str, Any]:
    """A finished, noted session as the bridge stores it, to copy."""
    from capture_bridge.resolver import resolve_due_sessions

    stack.reset_table(stack.client())
    _ready_sessions(stack, 1, 10_000_000)
    resolve_due_sessions(_runtime(stack, 1), lambda: RUN_MS, _later)
    items = stack.client().scan(TableName=TABLE)["Items"]
    session = next(item for item in items if item["pk"]["S"].startswith("session#"))
    if "due_bucket" in session:
        raise RuntimeError("a finished session is still in the due index")
    return dict(session)


def _load(stack: Stack, template: dict[str, Any], count: int) -> None:
    """`count` copies of `template` (distinct keys and tickets), put straight into the embedded
    DynamoDB's table (moto, in this process).

    What is counted is the idle run's calls, not how the history got there: 100,000 items took
    two minutes through BatchWriteItem over HTTP, and moto's own `put_item` sizes the whole item
    again for each attribute. So one item is built by moto and the rest are its copies, sharing
    the attribute values no run changes (finished sessions are only read, if at all).
    """
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType

    region = stack.client().meta.region_name
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(TABLE)
    built = table.put_item(template)
    for number in range(count):
        keys = {
            "pk": {"S": f"session#history-{number}"},
            "session_id": {"S": f"history-{number}"},
            "ticket_key": {"S": f"zendesk#h{number}"},
        }
        item = copy.copy(built)
        # dict's own methods: moto's attribute dict re-sizes the whole item on each `[]=`.
        item.attrs = dict.__new__(type(built.attrs))
        dict.update(item.attrs, built.attrs)
        for name, value in keys.items():
            dict.__setitem__(item.attrs, name, DynamoType(value))
        item.hash_key = item.attrs["pk"]
        table.items[item.hash_key] = item  # type: ignore[assignment]  # moto types it loosely
    table.delete_item(built.hash_key, None)
    # As the server sees the table (the run reads it through the server): every copy is there.
    found = stack.client().describe_table(TableName=TABLE)["Table"]["ItemCount"]
    if found < count:
        raise RuntimeError(f"{found} items after loading {count}")


def idle_ticks(history: tuple[int, ...] = HISTORY) -> dict[str, Any]:
    """DynamoDB calls (and items read) of one run with nothing due, per finished-session count."""
    from capture_bridge.resolver import resolve_due_sessions

    calls: list[int] = []
    by_operation: list[dict[str, int]] = []
    load_seconds: list[float] = []
    with local_stack() as stack, quiet():
        template = _finished_item(stack)
        stack.reset_table(stack.client())
        loaded = 0
        for size in history:
            started = time.perf_counter()
            _load(stack, template, size - loaded)
            load_seconds.append(time.perf_counter() - started)
            loaded = size
            runtime = _runtime(stack, 8)
            counter = CallCounter()
            runtime.store._table.client.meta.events.register(
                "before-parameter-build.dynamodb.*", counter
            )
            summary = resolve_due_sessions(runtime, lambda: RUN_MS, _later)
            if summary.due:
                raise RuntimeError(f"{summary.due} due with only finished sessions")
            calls.append(counter.total())
            by_operation.append(dict(counter.calls))
    return {
        "history": list(history),
        "calls": calls,
        "by_operation": by_operation,
        "load_seconds": load_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pools", type=int, nargs="*", default=list(POOLS))
    parser.add_argument("--history", type=int, nargs="*", default=list(HISTORY))
    args = parser.parse_args()
    result = throughput(args.rounds, tuple(args.pools))
    print(f"store busy {[round(x, 2) for x in result['store_share']]}")
    print(f"{result['vendor_calls']:.1f} vendor calls a session, each {LATENCY * 1000:.0f} ms")
    for pool, rate, bound in zip(result["pools"], result["rate"], result["bound"], strict=True):
        print(f"pool {pool:3d}: {rate:6.1f}/s, bound {bound:6.1f}/s: {rate / bound:4.2f}x")
    idle = idle_ticks(tuple(args.history))
    for size, calls, ops in zip(idle["history"], idle["calls"], idle["by_operation"], strict=True):
        print(f"idle tick with {size:7,d} finished: {calls} DynamoDB calls {ops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
