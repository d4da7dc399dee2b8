"""Notes paced under the helpdesk's limit by the resolver, on moto and the Zendesk simulator.

The simulator enforces a per-minute limit on a clock the test moves (and the resolver's waits
for a token move it too), so minutes of notes pass in seconds. The 5,000-note drain is in
tests/unit/test_pacing.py, on the bucket's arithmetic alone: moto copies the table on every
transaction, so thousands of resolver steps would take minutes here.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import boto3
import pytest

from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.resolver import NOTE_BUDGET_MS, RunOutcome, RunSummary, resolve_due_sessions
from capture_bridge.runtime import Runtime
from capture_bridge.store.codec import to_item
from capture_bridge.store.dynamodb import dump
from local_runner.simulators import ZendeskSimulator
from tests.conftest import START, Clock, runtime_with
from tests.store_sessions import new_session

RUN_MS = 90_000
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
