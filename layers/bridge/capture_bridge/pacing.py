"""Pacing notes under a helpdesk's rate limit: the token bucket's arithmetic, pure.

One bucket per helpdesk account, shared by every resolver run and worker (`store.pace` keeps it
in the sessions table and takes from it with conditional updates; this module only computes).

`<NAME>_NOTES_PER_MINUTE` = N is a ceiling on any 60 seconds: the bucket holds at most
C = ceil(N / 60) tokens (a second's worth, at least 1) and refills (N - C) / 60 a second, so
that whatever the timing, no window of 60 seconds sees more than C + 60 * refill = N notes.

A taker may take a token that has not come yet: the bucket goes below zero, by at most what
`max_wait` refills, and the taker sends when its token comes (`Take.at`). A step that can wait
for it sleeps; a note woken at its time by the work queue reserves it (`capture_flow.note_turn`,
`RESERVATION_HORIZON`), so notes waiting together hold distinct times one token apart. A
taker whose token lies beyond `max_wait` takes nothing and learns when the next token comes.

The table keeps a bucket as one number, the time it is full again if nothing more is taken
(`full_at`): a take then moves it a token's time later (`Take.step`) in one atomic update, so
takers racing for one helpdesk never conflict; only the moment an idle bucket turns busy is a
conditional write that can lose, and a loser's next take is the atomic one (`take_bounds`).

The helpdesk's own rate-limit headers tighten the bucket (`tightened`): R calls remaining in a
window that resets in S seconds allow at most R in the next S seconds, so the tokens are cut to
R - refill * S less the tokens already taken ahead; without S, to R. A 429 is R = 0 until its
`Retry-After`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

# The lowest `<NAME>_NOTES_PER_MINUTE` accepted: below 2 the bucket could not refill at all.
MIN_PER_MINUTE = 2
MAX_PER_MINUTE = 100_000
# A reset further off than this is taken as this (a header read wrongly must not halt notes).
MAX_RESET_SECONDS = 3600.0


@dataclass(frozen=True)
class Pace:
    """A helpdesk account's note rate: at most `per_minute` notes in any 60 seconds."""

    per_minute: int

    def __post_init__(self) -> None:
        if not MIN_PER_MINUTE <= self.per_minute <= MAX_PER_MINUTE:
            raise ValueError(f"per_minute must be between {MIN_PER_MINUTE} and {MAX_PER_MINUTE}")

    @property
    def capacity(self) -> float:
        """The most tokens the bucket holds: a second's worth, at least one."""
        return float(max(1, math.ceil(self.per_minute / 60)))

    @property
    def refill(self) -> float:
        """Tokens added a second."""
        return (self.per_minute - self.capacity) / 60


class Bucket(NamedTuple):
    """The bucket as stored: its tokens (below zero: taken ahead) at `at` (epoch seconds)."""

    tokens: float
    at: float


class Take(NamedTuple):
    """A taker's answer: granted, send at `at`; else no token before `at` (the next one)."""

    granted: bool
    at: datetime


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def full(pace: Pace, now: datetime) -> Bucket:
    """A bucket never used: full."""
    return Bucket(pace.capacity, _seconds(now))


def refilled(bucket: Bucket | None, pace: Pace, now: datetime) -> Bucket:
    """The bucket at `now`: what the time since it was written added, up to its capacity."""
    if bucket is None:
        return full(pace, now)
    at = _seconds(now)
    if at <= bucket.at:
        # A clock behind the last writer's: nothing has come since.
        return bucket
    return Bucket(min(pace.capacity, bucket.tokens + pace.refill * (at - bucket.at)), at)


def next_token_at(bucket: Bucket, pace: Pace) -> float:
    """When the (refilled) bucket next holds a whole token, in epoch seconds."""
    missing = 1.0 - bucket.tokens
    return bucket.at + (missing / pace.refill if missing > 0 else 0.0)


def take(
    bucket: Bucket | None, pace: Pace, now: datetime, max_wait: timedelta
) -> tuple[Bucket, Take]:
    """Take one token at `now`, waiting for it at most `max_wait`.

    Returns the bucket to store and the answer. Granted: the token is the caller's at `Take.at`
    (now, or when it comes). Not granted: nothing was taken, `Take.at` is when the next token
    comes, and the bucket needs no write.
    """
    current = refilled(bucket, pace, now)
    ready = next_token_at(current, pace)
    if ready - current.at <= max(max_wait.total_seconds(), 0.0):
        return Bucket(current.tokens - 1.0, current.at), Take(True, _moment(ready))
    return current, Take(False, _moment(ready))


def tightened(
    bucket: Bucket | None,
    pace: Pace,
    now: datetime,
    remaining: int,
    reset_seconds: float | None = None,
) -> Bucket:
    """The bucket after the helpdesk said `remaining` calls are left (until `reset_seconds`).

    Without a reset time (the window may slide), `remaining` caps the tokens at hand. With one,
    at most `remaining` may go out before the reset: tokens taken ahead (below zero) are notes
    already promised, so the bucket is cut until what is promised and what refills before the
    reset add up to no more. A 429 is `remaining` 0 until its `Retry-After`.
    """
    current = refilled(bucket, pace, now)
    if reset_seconds is None:
        return Bucket(min(current.tokens, float(max(remaining, 0))), current.at)
    reset = min(max(reset_seconds, 0.0), MAX_RESET_SECONDS)
    allowed = max(remaining, 0) - pace.refill * reset
    promised = max(-current.tokens, 0.0)
    return Bucket(min(current.tokens, allowed - promised), current.at)


def full_at(bucket: Bucket, pace: Pace) -> float:
    """When `bucket`, left alone, holds its capacity again (epoch seconds): what the table keeps."""
    return bucket.at + (pace.capacity - bucket.tokens) / pace.refill


def bucket_at(stored_full_at: float | None, pace: Pace, now: datetime) -> Bucket | None:
    """The bucket at `now` of a stored `full_at` (None: never used); `refilled` of the same."""
    if stored_full_at is None:
        return None
    at = _seconds(now)
    return Bucket(pace.capacity - pace.refill * max(0.0, stored_full_at - at), at)


class TakeBounds(NamedTuple):
    """A take as atomic updates of `full_at` (epoch seconds); `take` is the same arithmetic.

    A busy bucket (`now <= full_at <= latest`) is taken from by adding `step`; an idle one
    (`full_at < now`, or none) is set to `now + step`, its token granted now; past `latest` the
    next token is further off than the taker may wait, and nothing is taken.
    """

    now: float
    latest: float
    step: float

    def granted_at(self, pace: Pace, after: float) -> datetime:
        """When the token of a take that left `full_at` at `after` comes."""
        return _moment(max(self.now, after - self.step - _tolerance(pace)))


def _tolerance(pace: Pace) -> float:
    # The time the tokens beyond the first take to refill: a full bucket's burst.
    return (pace.capacity - 1.0) / pace.refill


def take_bounds(pace: Pace, now: datetime, max_wait: timedelta) -> TakeBounds:
    """The bounds of a take at `now` waiting at most `max_wait` (see `TakeBounds`)."""
    at = _seconds(now)
    return TakeBounds(
        now=at,
        latest=at + max(max_wait.total_seconds(), 0.0) + _tolerance(pace),
        step=1.0 / pace.refill,
    )


def next_token_of(stored_full_at: float, pace: Pace) -> datetime:
    """When the next token of a bucket full at `stored_full_at` comes (a refused take's `at`)."""
    return _moment(stored_full_at - _tolerance(pace))
