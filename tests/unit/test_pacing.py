"""The token bucket's arithmetic (`capture_bridge.pacing`), and a drain of 5,000 notes through it.

The drain is simulated (a clock of events, no sleeping): workers sharing one bucket take tokens
and post to a helpdesk that answers 429 beyond 200 calls in any 60 seconds, as Zendesk Team
allows. The store's own part (conditional updates on the table) is tested in
`tests/component/test_pace_store.py`, the resolver's use of it in
`tests/integration/test_pacing.py`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from capture_bridge.capture_flow import RESERVATION_HORIZON
from capture_bridge.pacing import (
    Bucket,
    Pace,
    Take,
    bucket_at,
    full,
    full_at,
    next_token_of,
    refilled,
    take,
    take_bounds,
    tightened,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
NO_WAIT = timedelta(0)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


class TestPace:
    @pytest.mark.parametrize("per_minute", [2, 59, 60, 61, 200, 600, 10_000])
    def test_a_bucket_full_then_refilling_for_a_minute_adds_up_to_the_rate(
        self, per_minute: int
    ) -> None:
        pace = Pace(per_minute)
        assert pace.capacity >= 1
        assert pace.refill > 0
        assert pace.capacity + 60 * pace.refill == pytest.approx(per_minute)

    @pytest.mark.parametrize("per_minute", [0, 1, 100_001])
    def test_a_rate_the_bucket_cannot_keep_is_refused(self, per_minute: int) -> None:
        with pytest.raises(ValueError, match="per_minute"):
            Pace(per_minute)


class TestTake:
    def test_a_new_bucket_is_full_and_gives_its_capacity_at_once(self) -> None:
        pace = Pace(600)  # capacity 10
        bucket: Bucket | None = None
        grants = []
        for _ in range(11):
            bucket, answer = take(bucket, pace, NOW, NO_WAIT)
            grants.append(answer.granted)
        assert grants == [True] * 10 + [False]

    def test_a_refused_take_says_when_the_next_token_comes_and_takes_nothing(self) -> None:
        pace = Pace(62)  # capacity 2, one token a second
        bucket = Bucket(0.25, at(0).timestamp())
        after, answer = take(bucket, pace, NOW, NO_WAIT)
        assert answer == Take(False, at(0.75))
        assert after == bucket

    def test_a_taker_that_may_wait_reserves_the_next_token_and_sends_when_it_comes(self) -> None:
        pace = Pace(62)  # one token a second
        bucket, first = take(Bucket(0.0, NOW.timestamp()), pace, NOW, timedelta(seconds=5))
        bucket, second = take(bucket, pace, NOW, timedelta(seconds=5))
        assert first == Take(True, at(1))
        assert second == Take(True, at(2))
        assert bucket.tokens == pytest.approx(-2.0)
        # a third that may wait only one second is not granted: its token comes at 3 s
        _, third = take(bucket, pace, NOW, timedelta(seconds=1))
        assert third == Take(False, at(3))

    @pytest.mark.parametrize("per_minute", [80, 600])
    def test_notes_waiting_together_reserve_distinct_tokens_spaced_by_the_pace(
        self, per_minute: int
    ) -> None:
        # given a bucket just emptied and 120 notes asking at the same moment, each able to
        # reserve up to the horizon
        pace = Pace(per_minute)
        bucket = Bucket(0.0, NOW.timestamp())
        times = []
        for _ in range(120):
            bucket, answer = take(bucket, pace, NOW, RESERVATION_HORIZON)
            assert answer.granted
            times.append((answer.at - NOW).total_seconds())
        # then each holds its own time, one token apart (60 / the pace's refill a minute), not
        # one time for all
        assert len(set(times)) == 120
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert gaps == pytest.approx([1 / pace.refill] * 119, abs=1e-5)
        assert 1 / pace.refill == pytest.approx(60 / (per_minute - pace.capacity))
        assert times[0] == pytest.approx(1 / pace.refill)

    def test_no_token_is_reserved_beyond_the_horizon(self) -> None:
        # given a bucket that owes an hour's tokens already
        pace = Pace(80)
        owed = Bucket(-RESERVATION_HORIZON.total_seconds() * pace.refill, NOW.timestamp())
        # when one more note asks, then it takes nothing and hears when the next token comes
        after, answer = take(owed, pace, NOW, RESERVATION_HORIZON)
        assert not answer.granted
        assert answer.at > NOW + RESERVATION_HORIZON
        assert after == owed
        # and a minute later, the tokens that came make room for it
        _, later = take(owed, pace, at(60), RESERVATION_HORIZON)
        assert later.granted

    def test_refilling_stops_at_the_capacity_and_never_runs_backwards(self) -> None:
        pace = Pace(120)  # capacity 2
        drained = Bucket(0.0, NOW.timestamp())
        assert refilled(drained, pace, at(3600)).tokens == pace.capacity
        # a writer whose clock is behind sees nothing added
        assert refilled(drained, pace, at(-5)) == drained
        assert refilled(None, pace, NOW) == full(pace, NOW)

    @pytest.mark.parametrize("per_minute", [2, 60, 200, 700])
    def test_no_sixty_seconds_ever_see_more_than_the_rate(self, per_minute: int) -> None:
        # given takers asking as often as they can, some waiting, for ten minutes
        pace = Pace(per_minute)
        bucket: Bucket | None = None
        sent: list[float] = []
        for step in range(per_minute * 12):
            now = at(step * 60 / (per_minute * 1.2))
            bucket, answer = take(bucket, pace, now, timedelta(seconds=step % 3))
            if answer.granted:
                sent.append((answer.at - NOW).total_seconds())
        # then the sends of any 60 seconds number at most the rate
        sent.sort()
        window: deque[float] = deque()
        for moment in sent:
            window.append(moment)
            while window[0] <= moment - 60:
                window.popleft()
            assert len(window) <= per_minute


class TestTightened:
    def test_remaining_calls_cap_the_tokens(self) -> None:
        pace = Pace(600)
        assert tightened(None, pace, NOW, remaining=3).tokens == 3
        assert tightened(None, pace, NOW, remaining=50).tokens == pace.capacity

    def test_none_left_until_a_reset_means_no_token_before_it(self) -> None:
        pace = Pace(62)  # one token a second
        bucket = tightened(None, pace, NOW, remaining=0, reset_seconds=20)
        _, answer = take(bucket, pace, NOW, NO_WAIT)
        assert not answer.granted
        assert answer.at == at(21)

    def test_a_reset_read_wrongly_cannot_stop_notes_for_more_than_an_hour(self) -> None:
        pace = Pace(62)
        bucket = tightened(None, pace, NOW, remaining=0, reset_seconds=10**9)
        _, answer = take(bucket, pace, NOW, NO_WAIT)
        assert answer.at <= at(3601)


def atomic_take(
    stored: float | None, pace: Pace, now: datetime, max_wait: timedelta
) -> tuple[float | None, Take]:
    """The store's take on a stored `full_at`, as its conditional updates decide it."""
    bounds = take_bounds(pace, now, max_wait)
    if stored is not None and stored > bounds.latest:
        return stored, Take(False, next_token_of(stored, pace))
    after = max(stored if stored is not None else bounds.now, bounds.now) + bounds.step
    return after, Take(True, bounds.granted_at(pace, after))


def same(first: Bucket | None, second: Bucket | None) -> bool:
    """The same bucket but for rounding (epoch seconds as floats: a hundredth in 2,000 takes)."""
    assert first is not None and second is not None
    return abs(first.tokens - second.tokens) < 1e-2 and abs(first.at - second.at) < 1e-6


class TestStoredAsFullAt:
    """The table keeps `full_at` and takes by adding a token's time: the same bucket as `take`."""

    def test_full_at_is_the_bucket_refilled_at_any_later_moment(self) -> None:
        # given buckets with tokens to spare, none, and taken ahead
        pace = Pace(200)
        for tokens in (pace.capacity, 1.5, 0.0, -7.25):
            bucket = Bucket(tokens, NOW.timestamp())
            stored = full_at(bucket, pace)
            # when read back at later moments, then it is the bucket refilled to then
            for later in (0, 0.5, 3, 60, 3600):
                expected = refilled(bucket, pace, at(later))
                assert same(bucket_at(stored, pace, at(later)), expected)
        assert bucket_at(None, pace, NOW) is None

    @pytest.mark.parametrize("per_minute", [2, 62, 80, 200, 700])
    @pytest.mark.parametrize("wait", [0, 1.5, 20, 3600])
    def test_taking_by_adding_a_tokens_time_answers_as_take_does(
        self, per_minute: int, wait: float
    ) -> None:
        # given one bucket kept both ways, and takers asking at uneven moments, in turn
        pace = Pace(per_minute)
        bucket: Bucket | None = None
        stored: float | None = None
        max_wait = timedelta(seconds=wait)
        moment = 0.0
        for step in range(3 * per_minute):
            moment += 60 / (per_minute * 1.5) * (0.25 + (step * 7 % 10) / 6)
            now = at(moment)
            # when each takes one token both ways
            bucket, expected = take(bucket, pace, now, max_wait)
            stored, answer = atomic_take(stored, pace, now, max_wait)
            # then both grant or refuse alike (but a token due right at the wait's end, where
            # rounding decides), at the same moment, and leave the same bucket
            if answer.granted != expected.granted:
                assert abs((expected.at - now - max_wait).total_seconds()) < 1e-2
                # both go on from one bucket
                bucket = refilled(bucket, pace, now)
                stored = full_at(bucket, pace)
                continue
            assert abs((answer.at - expected.at).total_seconds()) < 1e-2
            assert same(bucket_at(stored, pace, now), refilled(bucket, pace, now))


# -- draining 5,000 notes through one shared bucket -------------------------------------------


class Account:
    """A helpdesk account allowing `limit` calls in any 60 seconds (or in each minute, `fixed`).

    `call` answers as the helpdesk would in its headers: the calls remaining after this one and,
    for fixed windows, the seconds until the window resets; a 429 gives its `Retry-After`.
    """

    def __init__(self, limit: int, *, fixed: bool = False) -> None:
        self.limit = limit
        self.fixed = fixed
        self.calls: deque[float] = deque()
        self.refused = 0

    def call(self, moment: float) -> tuple[bool, int, float | None]:
        """(accepted, remaining or Retry-After seconds, reset seconds or None)."""
        start = (moment // 60) * 60 if self.fixed else moment - 60
        while self.calls and (self.calls[0] < start if self.fixed else self.calls[0] <= start):
            self.calls.popleft()
        reset = start + 60 - moment if self.fixed else None
        if len(self.calls) >= self.limit:
            self.refused += 1
            wait = reset if reset is not None else self.calls[0] + 60 - moment
            return False, max(1, int(wait + 0.999)), None
        self.calls.append(moment)
        return True, self.limit - len(self.calls), reset


@dataclass
class MemoryBuckets:
    """The table's bucket item, kept in memory: read, and written only if unchanged since."""

    bucket: Bucket | None = None
    version: int = 0
    writes: int = 0

    def take(self, pace: Pace, now: datetime, max_wait: timedelta) -> Take:
        seen, version = self.bucket, self.version
        after, answer = take(seen, pace, now, max_wait)
        if answer.granted:
            assert self.version == version  # the conditional write's condition
            self.bucket, self.version, self.writes = after, version + 1, self.writes + 1
        return answer

    def tighten(self, pace: Pace, now: datetime, remaining: int, reset: float | None) -> None:
        self.bucket = tightened(self.bucket, pace, now, remaining, reset)
        self.version += 1


@dataclass
class Drain:
    notes: int
    sent: Counter[int] = field(default_factory=Counter)
    refused: int = 0
    last_sent: float = 0.0
    takes: int = 0


def drain(
    notes: int,
    pace: Pace,
    account: Account,
    *,
    workers: int = 16,
    max_wait: float = 20.0,
    latency: float = 0.25,
    other_app_per_minute: int = 0,
    headers: bool = True,
) -> Drain:
    """Every note due at 0, worked by `workers` sharing one bucket, on a simulated clock.

    A worker takes its next due note's token: granted, it posts when the token comes (busy for
    `latency`); refused, the note is due again when the next token comes. A 429 makes the note
    due again after its `Retry-After`. `other_app_per_minute` spends the account's calls evenly.
    """
    buckets = MemoryBuckets()
    result = Drain(notes)
    due: list[tuple[float, int]] = [(0.0, note) for note in range(notes)]
    heapq.heapify(due)
    order = itertools.count()
    events = [(0.0, next(order), "free", worker) for worker in range(workers)]
    if other_app_per_minute:
        events.append((0.0, next(order), "other", -1))
    heapq.heapify(events)
    while events and (due or any(kind == "send" for _, _, kind, _ in events)):
        moment, _, kind, note = heapq.heappop(events)
        if kind == "other":
            account.call(moment)
            heapq.heappush(events, (moment + 60 / other_app_per_minute, next(order), "other", -1))
        elif kind == "send":
            accepted, count, reset = account.call(moment)
            if not accepted:
                result.refused += 1
                heapq.heappush(due, (moment + count, note))
                if headers:
                    # a 429: none left until its Retry-After
                    buckets.tighten(pace, at(moment), 0, count)
            else:
                result.sent[note] += 1
                result.last_sent = max(result.last_sent, moment)
                if headers:
                    buckets.tighten(pace, at(moment), count, reset)
            heapq.heappush(events, (moment + latency, next(order), "free", 0))
        elif due:
            when, picked = heapq.heappop(due)
            if when > moment:
                # nothing due yet: the worker looks again when the first note is
                heapq.heappush(due, (when, picked))
                heapq.heappush(events, (when, next(order), "free", 0))
                continue
            result.takes += 1
            answer = buckets.take(pace, at(moment), timedelta(seconds=max_wait))
            send_at = (answer.at - NOW).total_seconds()
            if answer.granted:
                heapq.heappush(events, (max(send_at, moment), next(order), "send", picked))
            else:
                heapq.heappush(due, (send_at, picked))
                heapq.heappush(events, (moment + 0.01, next(order), "free", 0))
    return result


def test_five_thousand_notes_drain_at_the_limit_with_no_429() -> None:
    # given 5,000 notes due at once for an account allowing 200 calls a minute, and the bridge
    # paced at that limit, 16 workers (two runs' pools) sharing the bucket
    account = Account(200)
    result = drain(5000, Pace(200), account)
    # then every note went out exactly once, none was refused, and the drain took within 10%
    # of the limit's own 25 minutes
    assert len(result.sent) == 5000
    assert set(result.sent.values()) == {1}
    assert result.refused == account.refused == 0
    own = 5000 / 200 * 60
    assert own <= result.last_sent <= 1.10 * own, result.last_sent
    # (25.5 minutes: the bucket keeps 4 notes of each minute as its burst)
    print(f"\n5,000 notes at 200/min: {result.last_sent / 60:.2f} min, {result.refused} 429s")


def test_unpaced_the_same_drain_meets_429s() -> None:
    # given the same workers taking tokens from a bucket ten times the account's limit
    account = Account(200)
    result = drain(5000, Pace(2000), account, headers=False)
    # then the helpdesk refuses many, and each is posted again later
    assert account.refused > 100
    assert set(result.sent.values()) == {1}


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-window", "sliding-window"])
def test_the_headers_tighten_the_bucket_when_another_app_spends_the_same_limit(
    fixed: bool,
) -> None:
    # given another app spending 80 of the account's 200 calls a minute, the bridge paced at 200
    def run(headers: bool) -> Drain:
        account = Account(200, fixed=fixed)
        result = drain(2000, Pace(200), account, other_app_per_minute=80, headers=headers)
        assert set(result.sent.values()) == {1}
        return result

    # then what the helpdesk says (calls remaining, 429s' Retry-After) holds the bridge back:
    # fewer 429s than without it (a fifth with a window that says when it resets, under half
    # with a sliding one, whose headers cannot say when calls free up), and the notes still
    # drain at about what the account has left
    with_headers, without = run(True), run(False)
    assert without.refused > 100
    share = 5 if fixed else 2
    assert with_headers.refused <= without.refused // share, (with_headers.refused, without)
    print(
        f"\n{'fixed' if fixed else 'sliding'}: 429s {with_headers.refused} with headers,"
        f" {without.refused} without; {with_headers.last_sent / 60:.1f} min"
    )
    assert with_headers.last_sent <= 1.3 * 2000 / 120 * 60
