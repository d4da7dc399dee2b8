"""Notes paced under the helpdesk's limit by the resolver, on moto and the Zendesk simulator.

The simulator enforces a per-minute limit on a clock the test moves (and the resolver's waits
for a token move it too), so minutes of notes pass in seconds. The 5,000-note drain is in
tests/unit/test_pacing.py, on the bucket's arithmetic alone: moto copies the table on every
transaction, so thousands of resolver steps would take minutes here.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from capture_bridge import worker
from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.resolver import NOTE_BUDGET_MS, RunOutcome, RunSummary, resolve_due_sessions
from capture_bridge.runtime import Runtime
from capture_bridge.store.codec import to_item
from capture_bridge.store.dynamodb import dump
from capture_bridge.work_queue import WorkItem
from local_runner.simulators import ZendeskSimulator
from tests.conftest import START, Clock, runtime_with
from tests.store_sessions import new_session
from tests.work_queue_double import Message, QueueDouble, event_of

RUN_MS = 90_000
# The worker's timeout (the template's), and the steps it runs at once: WorkerMaximumConcurrency
# 10 x BatchSize 10.
WORKER_MS = 120_000
CONCURRENT_STEPS = 100
FIRST_TICKET = 5000


def owed_notes(table: str, count: int) -> list[str]:
    """`count` resolved captures owing their note, due at START, one per ticket."""
    client = boto3.client("dynamodb")
    ids = []
    for number in range(count):
        session = new_session(ticket=str(FIRST_TICKET + number), claim_id=None)
        session = session.finish(
            SessionStatus.RESOLVED, now=START, links={"report": "https://app.bugpilot.io/r/1"}
        )
        client.put_item(TableName=table, Item=dump(to_item(session)))
        ids.append(session.session_id)
    return ids


def simulated(zendesk: ZendeskSimulator, clock: Clock, limit: int | None) -> None:
    """The simulator counts its per-minute limit on the test's clock."""
    zendesk.per_minute_limit = limit
    zendesk.clock = lambda: (clock() - START).total_seconds()


def run(runtime: Runtime, clock: Clock) -> RunSummary:
    """One scheduled run on the moved clock: its waits for tokens move the clock."""
    began = clock()

    def remaining_ms() -> int:
        return RUN_MS - int((clock() - began).total_seconds() * 1000)

    return resolve_due_sessions(
        runtime, remaining_ms, clock, sleep=lambda seconds: clock.advance(seconds=seconds)
    )


def notes_per_ticket(zendesk: ZendeskSimulator, count: int) -> Counter[int]:
    return Counter(
        len(zendesk.internal_notes(str(FIRST_TICKET + number))) for number in range(count)
    )


def test_three_hundred_notes_at_sixty_a_minute_meet_no_429_and_each_goes_out_once(
    env: dict[str, str], clock: Clock, zendesk: ZendeskSimulator
) -> None:
    # given 300 notes owed at once, a Zendesk account allowing 60 calls a minute, and the bridge
    # paced at that limit, with one run a minute
    owed = owed_notes(env["TABLE_NAME"], 300)
    simulated(zendesk, clock, 60)
    runtime = runtime_with(env, ZENDESK_NOTES_PER_MINUTE="60")
    outcomes: Counter[RunOutcome] = Counter()
    runs = 0
    # when the scheduled runs work through them
    while runs < 20 and notes_per_ticket(zendesk, 300)[1] < 300:
        clock.now = max(clock(), START + timedelta(minutes=runs))
        outcomes.update(run(runtime, clock).outcomes)
        runs += 1
    # then every note went out exactly once, and Zendesk never answered 429
    assert notes_per_ticket(zendesk, 300) == {1: 300}
    assert zendesk.throttled == 0
    assert outcomes[RunOutcome.NOTED] == 300
    posted_at = []
    for session_id in owed:
        stored = runtime.store.get(session_id)
        assert stored is not None
        assert (stored.note_state, stored.note_attempts) == (NoteState.POSTED, 1)
        posted_at.append(stored.updated_at)
    # and the drain took the limit's own 5 minutes, stretched by the runs' reserve: a run starts
    # sessions only in the first 43 s of its minute (`SESSION_BUDGET_MS`), so about 43 notes a
    # run, 7 runs in all
    drained = (max(posted_at) - START).total_seconds()
    print(f"\n300 notes at 60/min: {runs} runs, {drained:.0f} s, {zendesk.throttled} 429s")
    assert 300 <= drained <= 300 * 60 / 43 + 60


def test_runs_at_once_share_one_bucket_and_a_waiting_note_keeps_its_place(
    env: dict[str, str], clock: Clock, zendesk: ZendeskSimulator
) -> None:
    # given 40 notes owed, the bridge paced at 120 a minute (2 at once, then 1.97 a second),
    # and two runs at the same moment, each able to wait 8 s for a token
    owed = owed_notes(env["TABLE_NAME"], 40)
    runtimes = [runtime_with(env, ZENDESK_NOTES_PER_MINUTE="120") for _ in range(2)]
    summaries: list[RunSummary] = []

    def one_run(runtime: Runtime) -> None:
        summaries.append(
            resolve_due_sessions(
                runtime, lambda: NOTE_BUDGET_MS + 8_000 + 10, clock, sleep=lambda _: None
            )
        )

    threads = [threading.Thread(target=one_run, args=(runtime,)) for runtime in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # when both are done (the clock never moved)
    outcomes: Counter[RunOutcome] = Counter()
    for summary in summaries:
        outcomes.update(summary.outcomes)
    # then together they sent what one bucket allows within 8 s: 2, then 15 more; not twice that
    assert outcomes[RunOutcome.NOTED] == 17
    assert outcomes[RunOutcome.PACED] == 40 - 17
    # and each note that waits is due when the bucket's next token comes, unattempted
    waiting = [runtime.store.get(session_id) for runtime in runtimes[:1] for session_id in owed]
    paced = [s for s in waiting if s is not None and s.note_state is NoteState.PENDING]
    assert len(paced) == 23
    for session in paced:
        assert session.note_attempts == 0
        assert session.claim_id is None
        assert session.next_check_at is not None
        assert START + timedelta(seconds=8) <= session.next_check_at <= START + timedelta(seconds=9)
    # when a later run finds them due, with time to spare
    clock.advance(minutes=1)
    later = run(runtimes[0], clock)
    # then each goes out once: no ticket has two notes, and none was looked for (no marker check)
    assert later.outcomes[RunOutcome.NOTED] == 23
    assert notes_per_ticket(zendesk, 40) == {1: 40}
    assert zendesk.requests("comments") == []


def test_a_429_holds_back_every_later_note_until_its_retry_after(
    env: dict[str, str], clock: Clock, zendesk: ZendeskSimulator
) -> None:
    # given an account with 5 calls a minute left to the bridge, which is paced at 600 a minute
    owed_notes(env["TABLE_NAME"], 12)
    simulated(zendesk, clock, 5)
    runtime = runtime_with(env, ZENDESK_NOTES_PER_MINUTE="600", RESOLVER_CONCURRENCY="1")
    # when one run works through 12 notes owed
    summary = run(runtime, clock)
    # then the headers (calls remaining, then the 429's Retry-After) stop it after one 429: the
    # other notes wait for the minute to pass, rather than each meeting its own 429
    assert zendesk.throttled == 1
    assert summary.outcomes[RunOutcome.NOTED] == 5
    assert summary.outcomes[RunOutcome.FINISHED] == 1  # the refused note, retried as usual
    assert summary.outcomes[RunOutcome.PACED] == 6


@pytest.mark.parametrize("raw", ["lots", "0", "1"])
def test_an_invalid_pace_falls_back_to_the_helpdesk_default(
    env: dict[str, str], clock: Clock, zendesk: ZendeskSimulator, raw: str
) -> None:
    # given a pace that is no number the bucket can keep
    owed_notes(env["TABLE_NAME"], 3)
    runtime = runtime_with(env, ZENDESK_NOTES_PER_MINUTE=raw)
    # when a run delivers the notes, then it paces them at Zendesk's default instead of failing
    summary = run(runtime, clock)
    assert summary.outcomes[RunOutcome.NOTED] == 3
    assert summary.errors == 0
    # (the default, 80 a minute, gives 2 at once and then one each 0.77 s: the run waited)
    assert clock() > START


# -- the queued path: notes reserve their token ----------------------------------------------------


class SharedTime:
    """The test's clock for worker threads that sleep on it, as one discrete-event simulation.

    Time moves only when every running step is asleep (or done): to the earliest wake-up, or to
    the queue's next visible message. A step's sleep is its wait for a token.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._changed = threading.Condition()
        self._running = 0
        self._sleepers: list[list[Any]] = []  # [wake time, woken]

    def sleep(self, seconds: float) -> None:
        with self._changed:
            me: list[Any] = [self.clock() + timedelta(seconds=seconds), False]
            self._sleepers.append(me)
            self._running -= 1
            self._changed.notify_all()
            while not me[1]:
                self._changed.wait()

    def started(self) -> None:
        with self._changed:
            self._running += 1

    def finished(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def settle(self) -> None:
        """Wait until no step runs: each is asleep or done."""
        with self._changed:
            while self._running:
                self._changed.wait(timeout=60)

    def next_wake(self) -> datetime | None:
        return min((wake for wake, _ in self._sleepers), default=None)

    def advance_to(self, moment: datetime) -> None:
        """Move the clock (only once settled) and wake the steps whose time has come."""
        with self._changed:
            self.clock.now = max(self.clock(), moment)
            for sleeper in list(self._sleepers):
                if sleeper[0] <= self.clock():
                    sleeper[1] = True
                    self._sleepers.remove(sleeper)
                    self._running += 1
            self._changed.notify_all()


def drain_queued(
    runtime: Runtime, queue: QueueDouble, time_: SharedTime, owed: list[str]
) -> tuple[int, list[threading.Thread]]:
    """The worker takes each reminder as it becomes visible, up to the template's 100 at once
    (WorkerMaximumConcurrency 10 x BatchSize 10), each step in its own thread as `worker.work`
    runs a batch; returns the reminders taken once every note is settled."""
    taken = 0
    in_flight: set[str] = set()
    threads: list[threading.Thread] = []

    def step(message: Message) -> None:
        try:
            failed = worker.work(
                runtime,
                worker.messages_of(event_of([message])),
                time_.clock,
                lambda: WORKER_MS,
                sleep=time_.sleep,
            )
            if not failed:
                queue.ack([message.message_id])
        finally:
            in_flight.discard(message.message_id)
            time_.finished()

    end = START + timedelta(minutes=30)
    while True:
        time_.settle()
        settled = all(
            (s := runtime.store.get(i)) is not None and s.note_state is not NoteState.PENDING
            for i in owed
        )
        if settled and not in_flight:
            return taken, threads
        assert time_.clock() < end, "the notes did not drain"
        batch = queue.receive(limit=CONCURRENT_STEPS - len(in_flight))
        for message in batch:
            taken += 1
            in_flight.add(message.message_id)
            time_.started()
            thread = threading.Thread(target=step, args=(message,), daemon=True)
            threads.append(thread)
            thread.start()
        if batch:
            continue
        wakes = [time_.next_wake()]
        if len(in_flight) < CONCURRENT_STEPS:
            wakes.append(queue.next_visible())
        moments = [moment for moment in wakes if moment is not None]
        assert moments, "nothing left to happen"
        time_.advance_to(min(moments))


def test_a_hundred_and_twenty_notes_on_the_queue_reserve_their_tokens_and_wake_once(
    env: dict[str, str], clock: Clock, zendesk: ZendeskSimulator
) -> None:
    # given 120 notes owed at once, each with its reminder due now, a Zendesk account allowing
    # 80 calls a minute, and the bridge at Zendesk's default pace, 80 a minute
    count = 120
    owed = owed_notes(env["TABLE_NAME"], count)
    simulated(zendesk, clock, 80)
    queue = QueueDouble(clock)
    runtime = replace(runtime_with(env, ZENDESK_NOTES_PER_MINUTE="80"), queue=queue)
    queue.send([WorkItem(session_id, START) for session_id in owed], now=START)
    # when the worker takes every reminder as it becomes visible
    taken, threads = drain_queued(runtime, queue, SharedTime(clock), owed)
    for thread in threads:
        thread.join(timeout=10)
    # then every ticket has exactly one note, and Zendesk never answered 429
    assert notes_per_ticket(zendesk, count) == {1: count}
    assert zendesk.throttled == 0
    posted_at = []
    for session_id in owed:
        stored = runtime.store.get(session_id)
        assert stored is not None
        assert (stored.note_state, stored.note_attempts, stored.note_token_at) == (
            NoteState.POSTED,
            1,
            None,
        )
        posted_at.append(stored.updated_at)
    # and each note took its first reminder and, when its token lay beyond the step's 20 s
    # wait, one more at its token's time: those within the wait (the bucket's 2 and 20 s of
    # refill, 28) took one, the other 92 two; no note woke to find its token taken (212, 1.77 a
    # note; before reservations, 326 and 2.72, all waiting notes waking at each next token)
    per_note = taken / count
    drained = (max(posted_at) - START).total_seconds()
    own = count / 80 * 60
    print(
        f"\n{count} notes at 80/min, queued: {taken} reminders, {per_note:.2f} a note,"
        f" {drained:.0f} s (the pace's own {own:.0f} s), {zendesk.throttled} 429s"
    )
    assert per_note <= 1.8
    # and the drain took within 10% of the pace's own 90 s
    assert drained <= 1.10 * own
