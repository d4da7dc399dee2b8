"""The pure parts of bench/time_to_link.py: percentiles, the event loop, the virtual clock and
queue, the plan. The measurement itself needs the local stack and runs in `make bench`."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from capture_bridge.capture_flow import RetryPolicy
from capture_bridge.work_queue import MAX_DELAY_SECONDS, WorkItem

BENCH = Path(__file__).resolve().parents[2] / "bench"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ttl() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        yield importlib.import_module("time_to_link")


class FakeTimer:
    """A real-time clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestPercentile:
    @pytest.mark.parametrize(
        ("share", "expected"), [(0.5, 5.0), (0.95, 10.0), (0.9, 9.0), (0.1, 1.0), (1.0, 10.0)]
    )
    def test_nearest_rank_of_one_to_ten(
        self, ttl: ModuleType, share: float, expected: float
    ) -> None:
        # given the values 1..10, shuffled
        values = [7.0, 1.0, 10.0, 3.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0]
        # then the percentile is the smallest value with that share at or below it
        assert ttl.percentile(values, share) == expected

    def test_one_value_is_every_percentile(self, ttl: ModuleType) -> None:
        assert ttl.percentile([42.0], 0.5) == ttl.percentile([42.0], 0.95) == 42.0

    @pytest.mark.parametrize(("values", "share"), [([], 0.5), ([1.0], 0.0), ([1.0], 1.5)])
    def test_nothing_to_rank_or_a_share_out_of_range_is_refused(
        self, ttl: ModuleType, values: list[float], share: float
    ) -> None:
        with pytest.raises(ValueError, match=r"no values|share must be"):
            ttl.percentile(values, share)


class TestEventLoop:
    def test_events_come_out_in_time_order_and_ties_first_in_first_out(
        self, ttl: ModuleType
    ) -> None:
        # given events added out of order, two of them at the same time
        loop = ttl.EventLoop()
        loop.push(T0 + timedelta(seconds=30), "run", "c")
        loop.push(T0, "start", "a")
        loop.push(T0 + timedelta(seconds=30), "ready", "d")
        loop.push(T0 + timedelta(seconds=5), "message", "b")
        # when they are taken one by one
        taken = [loop.pop().payload for _ in range(len(loop))]
        # then earliest first, and of the tied ones the one added first
        assert taken == ["a", "b", "c", "d"]

    def test_a_batch_is_the_events_of_one_kind_at_one_time_up_to_the_limit(
        self, ttl: ModuleType
    ) -> None:
        # given four messages due at once, then a ready report at the same time, then a later one
        loop = ttl.EventLoop()
        for name in "abcd":
            loop.push(T0, "message", name)
        loop.push(T0, "ready", "r")
        loop.push(T0 + timedelta(seconds=1), "message", "later")
        # when batches of at most three are taken
        first = loop.pop_same(loop.pop(), 3)
        second = loop.pop_same(loop.pop(), 3)
        # then the first three, then the fourth alone (the ready report is of another kind)
        assert [e.payload for e in first] == ["a", "b", "c"]
        assert [e.payload for e in second] == ["d"]
        assert loop.pop().payload == "r"
        assert (loop.count("message"), len(loop)) == (1, 1)


class TestVirtualClock:
    def test_a_step_begins_at_its_event_and_runs_at_real_speed(self, ttl: ModuleType) -> None:
        # given a virtual clock outside any step
        timer = FakeTimer()
        clock = ttl.VirtualClock(T0, timer)
        assert clock() == T0
        # when a step begins later and takes 0.25 s of real time
        with clock.step(T0 + timedelta(minutes=1)):
            timer.now += 0.25
            inside = clock()
        # then the time inside ran on from the event, and the step ends there
        assert inside == T0 + timedelta(minutes=1, seconds=0.25)
        assert clock() == inside

    def test_sleeps_are_virtual_and_each_threads_own(self, ttl: ModuleType) -> None:
        # given a step in which two threads sleep side by side, 2 s and 3 s
        timer = FakeTimer()
        clock = ttl.VirtualClock(T0, timer)
        seen: dict[str, datetime] = {}

        def nap(name: str, seconds: float) -> None:
            clock.sleep(seconds)
            seen[name] = clock()

        with clock.step(T0):
            threads = [
                threading.Thread(target=nap, args=("two", 2.0)),
                threading.Thread(target=nap, args=("three", 3.0)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            here = clock()
        # then each thread's time moved by its own sleep only, the step's by the longest
        assert seen == {"two": T0 + timedelta(seconds=2), "three": T0 + timedelta(seconds=3)}
        assert here == T0
        assert clock() == T0 + timedelta(seconds=3)


class TestVirtualQueue:
    def test_a_message_is_delivered_when_sqs_would_make_it_visible(self, ttl: ModuleType) -> None:
        # given items due in 29.2 s, in the past, and in an hour
        loop = ttl.EventLoop()
        queue = ttl.VirtualQueue(loop)
        items = [
            WorkItem("soon", T0 + timedelta(seconds=29.2)),
            WorkItem("late", T0 - timedelta(seconds=10)),
            WorkItem("far", T0 + timedelta(hours=1)),
        ]
        # when they are sent
        assert queue.send(items, now=T0) == []
        # then each is delivered after whole seconds, never early, at most SQS's 15 minutes
        delivered = {}
        while loop:
            event = loop.pop()
            delivered[event.payload.item.session_id] = event.at - T0
        assert delivered == {
            "soon": timedelta(seconds=30),
            "late": timedelta(0),
            "far": timedelta(seconds=MAX_DELAY_SECONDS),
        }
        # and they were sent in one SendMessageBatch
        assert (queue.sent, queue.send_calls) == (3, 1)

    def test_the_backlog_is_the_messages_still_waiting(self, ttl: ModuleType) -> None:
        loop = ttl.EventLoop()
        queue = ttl.VirtualQueue(loop)
        queue.send([WorkItem(f"s{n}", T0) for n in range(12)], now=T0)
        loop.push(T0, "run")
        assert (queue.backlog(), queue.send_calls) == (12, 2)


class TestPlan:
    def test_the_plan_is_reproducible_and_within_the_issues_delays(self, ttl: ModuleType) -> None:
        # given the plan of 200 captures and 5 whose report never comes
        planned = ttl.plan(200, 5)
        # then it is the same every time, in start order
        assert planned == ttl.plan(200, 5)
        assert [c.start for c in planned] == sorted(c.start for c in planned)
        # and every report is ready 0-10 minutes after its start, but the five never
        ready = [c for c in planned if c.ready is not None]
        assert (len(ready), len(planned)) == (200, 205)
        assert all(timedelta(0) <= c.ready - c.start <= ttl.READY_WITHIN for c in ready)
        assert all(c.start <= ttl.ARRIVALS for c in planned)


def test_todays_schedule_is_the_first_poll_doubled_up_to_five_minutes(ttl: ModuleType) -> None:
    # given today's rule, as the baseline replays it
    policy = RetryPolicy()
    # then the waits after each check are 30 s doubling to the 5-minute cap
    waits = [ttl.todays_poll_interval(step, policy).total_seconds() for step in range(6)]
    assert waits == [30, 60, 120, 240, 300, 300]


def test_the_baseline_replaces_the_schedule_only_while_it_runs(ttl: ModuleType) -> None:
    # given the flow's schedule
    from capture_bridge import capture_flow

    new = capture_flow.poll_interval
    # when the baseline runs, then today's rule is in place, and afterwards the new one again
    with ttl.todays_schedule():
        assert capture_flow.poll_interval is ttl.todays_poll_interval
    assert capture_flow.poll_interval is new


def test_a_paths_summary_gives_its_percentiles_and_calls(ttl: ModuleType) -> None:
    # given a path's links and calls
    result = ttl.PathResult(links=[float(n) for n in range(1, 21)], calls=[6, 8], never_calls=[])
    # then the summary says the nearest-rank p50 and p95, the max and the mean calls
    summary = result.summary()
    assert (summary["p50"], summary["p95"], summary["max"]) == (10.0, 19.0, 20.0)
    assert (summary["calls"], summary["never_calls"]) == (7, None)
