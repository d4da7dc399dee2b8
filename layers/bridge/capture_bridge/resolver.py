"""The scheduled resolver: works through the due capture sessions, a bounded pool at a time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from capture_bridge import metrics
from capture_bridge.capture import CaptureResult
from capture_bridge.capture_flow import (
    CLAIM_LEASE,
    NoteTurn,
    advance,
    apply,
    awaiting_token,
    check,
    checks_unclaimed,
    completed,
    deliver_note,
    give_up_if_faulting,
    held_token,
    identify,
    needs_requester,
    note_turn,
    record_fault,
    releases_guard,
    report_step,
    token_horizon,
)
from capture_bridge.errors import ConfigurationError, StoreUnavailable, UnknownHelpdesk
from capture_bridge.helpdesks import NoteResult, helpdesk_spec, notes_per_minute_key
from capture_bridge.models import CaptureSession, NoteState, SessionStatus, utc_now
from capture_bridge.observability import error_text, logger, secret_values, session_fields
from capture_bridge.pacing import MAX_PER_MINUTE, MIN_PER_MINUTE, Pace, Take
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import Claim
from capture_bridge.work_queue import WorkItem, WorkQueue

# A session's work is cut in two, each begun only with time left for its worst case, every call
# at its timeout (tests/unit/test_resolver_budget.py holds these to the integrations' figures):
# the claim, one start or check by the provider (two HTTP calls at most) and the save...
SESSION_BUDGET_MS = 47_000
# ...then, for a finished session, its note: the check for an earlier one, the post, the save.
# With less time left the note waits, due at once, for the next run.
NOTE_BUDGET_MS = 39_000
MAX_SESSIONS_PER_RUN = 500
# With a work queue: a session this long overdue has lost its reminder (a delivered one is taken
# within a second or two of its due time, so two minutes leave room for a worker's start-up).
SWEEP_GRACE = timedelta(minutes=2)
# ...and one this long overdue is sent even while the queue's backlog could hold every overdue one,
# by the sweeps of every tenth minute only (00, 10, 20 …): a queue busy for an hour with
# thousands of overdue sessions gets one more reminder each per ten minutes, not one a minute.
SWEEP_STALE = timedelta(minutes=10)
STALE_SWEEP_MINUTES = 10
# The most sessions one sweep sends (10,000 reminders take about 1,000 SQS calls, in parallel),
# and how many each of its threads sends at a time.
MAX_SWEPT_PER_RUN = 10_000
SWEEP_CHUNK = 100
# A note waits in its run for its helpdesk's next token at most this long (and only with time
# left for the note's worst case after it); a later token is reserved for a later step (with a
# work queue) or leaves it due for a later run.
MAX_TOKEN_WAIT = timedelta(seconds=20)

# The pace of a helpdesk the registry does not know (never one a session names in production).
DEFAULT_NOTES_PER_MINUTE = 60

Sleep = Callable[[float], None]


class ResolverRunFailed(Exception):
    """The run itself could not work; failing it sends it to the dead-letter queue.

    The message says what failed in plain words: it is the `errorMessage` of the dead letter.
    """


class RunOutcome(StrEnum):
    """What one resolver run did with one due session."""

    # Not due any more, or another run holds it.
    SKIPPED = "skipped"
    # Left for the next run: too little time remained.
    DEFERRED = "deferred"
    # Raised unexpectedly: recorded on the session, whose claim lapses for a later run to retry
    # (`capture_flow.MAX_CONSECUTIVE_FAULTS` bounds how often). Not a failed run.
    ERROR = "error"
    # Our claim lapsed before the result could be saved; the next holder redoes the step.
    LAPSED = "lapsed"
    # Still open; checked again later.
    WAITING = "waiting"
    # Final, its note still to be delivered.
    FINISHED = "finished"
    # Its note was posted in this run.
    NOTED = "noted"
    # Its note was given up (refused by the helpdesk, or failing too long).
    NOTE_UNDELIVERABLE = "note_undeliverable"
    # Its note waits for its helpdesk's next token (`<NAME>_NOTES_PER_MINUTE`), due again then.
    PACED = "paced"
    # Sent to the work queue by the sweep: its reminder had been lost (see `sweep`).
    QUEUED = "queued"


@dataclass
class RunSummary:
    """What one resolver run did, by outcome."""

    due: int = 0
    outcomes: Counter[RunOutcome] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return self.outcomes[RunOutcome.ERROR]


def _outcome(before: CaptureSession, after: CaptureSession, *, paced: bool) -> RunOutcome:
    if paced:
        return RunOutcome.PACED
    if after.note_state is not before.note_state:
        if after.note_state is NoteState.POSTED:
            return RunOutcome.NOTED
        if after.note_state is NoteState.UNDELIVERABLE:
            return RunOutcome.NOTE_UNDELIVERABLE
    return RunOutcome.FINISHED if after.status.is_final else RunOutcome.WAITING


class Step(NamedTuple):
    """What one step did, and when its session is due next (None: nothing left, or not ours)."""

    outcome: RunOutcome
    due: datetime | None


def process_session(
    runtime: Runtime,
    session_id: str,
    clock: Callable[[], datetime],
    remaining_ms: Callable[[], int] | None = None,
    *,
    sleep: Sleep = time.sleep,
) -> RunOutcome:
    """Claim one due session, take its next step, record it; returns what happened.

    `remaining_ms` is the run's time left; without it, a note is always attempted. A step that
    raises is recorded on the session, under the claim it keeps (see `_record_fault`). `sleep`
    waits for a note's token.
    """
    return step_session(runtime, session_id, clock, remaining_ms, sleep=sleep).outcome


class Checked(NamedTuple):
    """A check's answer that ends the capture: saved under a claim, as the session stood."""

    polls: int
    result: CaptureResult


def step_session(
    runtime: Runtime,
    session_id: str,
    clock: Callable[[], datetime],
    remaining_ms: Callable[[], int] | None = None,
    *,
    sleep: Sleep = time.sleep,
    read_first: bool = False,
) -> Step:
    """`process_session`, also saying when the session is due next, for its next reminder.

    `read_first` (the queue's worker) reads the session before claiming it: one not due any more
    is skipped without a write, and a pending capture is checked without a claim
    (`capture_flow.checks_unclaimed`), so a check that finds it not ready costs one write.
    """
    checked: Checked | None = None
    if read_first:
        unclaimed = _check_unclaimed(runtime, session_id, clock)
        if isinstance(unclaimed, Step):
            return unclaimed
        checked = unclaimed
    claim = runtime.store.claim(session_id, now=clock(), lease=CLAIM_LEASE)
    if claim is None:
        return Step(RunOutcome.SKIPPED, None)
    try:
        return _step(runtime, claim, clock, remaining_ms, sleep, checked)
    except Exception as exc:
        _record_fault(runtime, claim.session, exc, clock())
        # The claim stays until its lease ends; then the session is due again.
        return Step(RunOutcome.ERROR, claim.session.next_check_at)


def _check_unclaimed(
    runtime: Runtime, session_id: str, clock: Callable[[], datetime]
) -> Step | Checked | None:
    """The session read first: skipped, checked without a claim, or left to the claimed step.

    A check whose answer ends the capture comes back as `Checked`, for the claimed step to save
    (with the note it owes) without asking the provider twice.
    """
    session = runtime.store.get(session_id)
    now = clock()
    if session is None or session.next_check_at is None or session.next_check_at > now:
        # Gone, done, or rescheduled by another holder (who sent its own reminder).
        return Step(RunOutcome.SKIPPED, None)
    if not checks_unclaimed(session, now):
        return None
    result = check(session, runtime.provider(session.provider))
    after = apply(session, result, clock(), runtime.policy)
    if after.status is not SessionStatus.PENDING:
        return Checked(session.polls, result)
    if not runtime.store.save_checked(after, seen=session):
        # Someone else stepped or claimed it meanwhile: theirs is the step, and the reminder.
        return Step(RunOutcome.SKIPPED, None)
    report_step(session, after)
    return Step(RunOutcome.WAITING, after.next_check_at)


def _step(
    runtime: Runtime,
    claim: Claim,
    clock: Callable[[], datetime],
    remaining_ms: Callable[[], int] | None,
    sleep: Sleep,
    checked: Checked | None = None,
) -> Step:
    claimed, token = claim.session, claim.session.claim_id or ""
    session = claimed
    if claim.interrupted:
        # Counted on the session, so that every later run knows a note may already be out.
        session = replace(session, interruptions=session.interruptions + 1)
    # Before anything that could raise again: what a session that kept raising has left to do
    # ends, and is saved at once (a note still owed goes out in the next run, with its own tries).
    ended = give_up_if_faulting(session, clock())
    paced = False
    if ended is session:
        session, paced = _work(
            runtime,
            session,
            clock,
            remaining_ms,
            sleep,
            interrupted=claim.interrupted,
            checked=checked,
        )
    else:
        session = ended
    session = completed(session)
    released = replace(session, claim_id=None)
    if not runtime.store.save(
        released, held_claim=token, release_guard=releases_guard(claimed, session)
    ):
        logger.warning("claim lapsed before the session was saved", extra=session_fields(session))
        return Step(RunOutcome.LAPSED, None)
    report_step(claimed, session)
    due = session.next_check_at if session.has_work else None
    return Step(_outcome(claimed, session, paced=paced), due)


def _work(
    runtime: Runtime,
    session: CaptureSession,
    clock: Callable[[], datetime],
    remaining_ms: Callable[[], int] | None,
    sleep: Sleep,
    *,
    interrupted: bool,
    checked: Checked | None = None,
) -> tuple[CaptureSession, bool]:
    """The session's next step: start or check an open capture, then deliver a note owed.

    `checked` is an answer to a check made just before the claim: it stands for the check while
    the session is as it was then. Also says whether the note waits for its helpdesk's pace.
    """
    if needs_requester(session):
        # A step of its own, whoever held the session before (nothing was started without the
        # requester): the start follows in the next run, once the requester is recorded.
        helpdesk = runtime.helpdesk(session.helpdesk)
        session = identify(session, helpdesk, clock(), runtime.policy)
    elif (
        checked is not None
        and session.status is SessionStatus.PENDING
        and session.polls == checked.polls
    ):
        session = apply(session, checked.result, clock(), runtime.policy)
    elif not session.status.is_final:
        provider = runtime.provider(session.provider)
        session = advance(session, provider, clock(), runtime.policy, interrupted=interrupted)
    if session.note_state is NoteState.PENDING:
        if remaining_ms is None or remaining_ms() >= NOTE_BUDGET_MS:
            return _paced_note(runtime, session, clock, remaining_ms, sleep)
        # Too little time for the note's worst case: left due now (or at its reserved token's
        # time) for the next run.
        logger.info("note left for the next run", extra=session_fields(session))
        now = clock()
        session = replace(session, next_check_at=max(now, session.note_token_at or now))
    return session, False


def note_pace(runtime: Runtime, helpdesk: str) -> Pace:
    """`<NAME>_NOTES_PER_MINUTE`, else the helpdesk's default (also when the value is invalid:
    an ERROR log names it, and notes keep going at the vendor's lowest plan's pace)."""
    try:
        default = helpdesk_spec(helpdesk).notes_per_minute
    except UnknownHelpdesk:
        # No registered module (a test's double): the spec's own default.
        default = DEFAULT_NOTES_PER_MINUTE
    key = notes_per_minute_key(helpdesk)
    try:
        per_minute = runtime.settings.number(key, default, MIN_PER_MINUTE, MAX_PER_MINUTE)
    except ConfigurationError as exc:
        logger.error(
            "invalid note pace; using the helpdesk's default",
            extra={"helpdesk": helpdesk, "reason": str(exc), "notes_per_minute": default},
        )
        per_minute = default
    return Pace(per_minute)


def _paced_note(
    runtime: Runtime,
    session: CaptureSession,
    clock: Callable[[], datetime],
    remaining_ms: Callable[[], int] | None,
    sleep: Sleep,
) -> tuple[CaptureSession, bool]:
    """Deliver the note on a token of its helpdesk's bucket, or leave it due when one comes.

    The token may be one still to come: the step waits for it if it can and still has time for
    the note's worst case; with a work queue, a later one is reserved, kept on the session, and
    the note posts on it when woken then (`capture_flow.note_turn`). The helpdesk's rate-limit
    headers on the answer tighten the bucket.
    """
    name = session.helpdesk
    pace = note_pace(runtime, name)
    spare = MAX_TOKEN_WAIT
    if remaining_ms is not None:
        spare = min(spare, timedelta(milliseconds=max(remaining_ms() - NOTE_BUDGET_MS, 0)))
    reserved = held_token(session, clock())
    if reserved is not None:
        # Its token was taken in an earlier step: it takes no other.
        token = Take(True, reserved)
    else:
        horizon = token_horizon(spare, reminded=runtime.queue is not None)
        token = runtime.store.take_note_token(name, pace, now=clock(), max_wait=horizon)
    turn = note_turn(token, clock(), spare)
    if turn is not NoteTurn.SEND:
        logger.info(
            "note waits for its helpdesk's pace",
            extra=session_fields(session, due_at=token.at.isoformat(), turn=turn.value),
        )
        return awaiting_token(session, token, clock()), True
    wait = (token.at - clock()).total_seconds()
    if wait > 0:
        sleep(wait)

    def tighten(result: NoteResult) -> None:
        remaining, reset = result.rate_remaining, result.rate_reset_seconds
        if result.status == 429:
            # None left until the helpdesk's Retry-After (or what its headers say).
            remaining, reset = 0, result.retry_after_seconds or reset
        if remaining is None:
            return
        try:
            runtime.store.tighten_note_pace(
                name, pace, now=clock(), remaining=remaining, reset_seconds=reset
            )
        except StoreUnavailable:
            # The note's own fate does not depend on it: the bucket alone paces for a while.
            logger.warning("could not tighten the note pace", extra=session_fields(session))

    # Posted before the write that follows: a crash in between is caught by the marker check.
    delivered = deliver_note(
        session,
        runtime.helpdesk(name),
        runtime.provider(session.provider),
        clock(),
        on_answer=tighten,
    )
    return delivered, False


def _record_fault(runtime: Runtime, claimed: CaptureSession, exc: Exception, now: datetime) -> None:
    """Record a step that raised on its session, keeping the claim (so it reads as interrupted)."""
    error = error_text(exc, secret_values(runtime.settings.values))
    faulted = record_fault(claimed, error, now)
    metrics.session_error(faulted)
    logger.exception(
        "session step failed",
        extra=session_fields(faulted, faults=faulted.faults, fault=error),
    )
    try:
        if not runtime.store.record_fault(faulted, held_claim=claimed.claim_id or ""):
            logger.warning(
                "claim lapsed before the fault was recorded", extra=session_fields(faulted)
            )
    except StoreUnavailable:
        # Not even the fault could be written: the claim lapses and the step is tried again.
        logger.exception("could not record the fault", extra=session_fields(faulted))


def resolve_due_sessions(
    runtime: Runtime,
    remaining_ms: Callable[[], int],
    clock: Callable[[], datetime] = utc_now,
    *,
    sleep: Sleep = time.sleep,
) -> RunSummary:
    """Process the sessions due now, stopping in time to leave the rest for the next run.

    Raises `StoreUnavailable` when the due sessions cannot be listed. Its metrics, the heartbeat
    first, are written as it ends, however it ends. `sleep` waits for a note's token.
    """
    metrics.resolver_run()
    try:
        return _resolve(runtime, remaining_ms, clock, sleep)
    finally:
        metrics.flush()


def _resolve(
    runtime: Runtime,
    remaining_ms: Callable[[], int],
    clock: Callable[[], datetime],
    sleep: Sleep,
) -> RunSummary:
    if runtime.queue is not None:
        return sweep(runtime, runtime.queue, clock)
    summary = RunSummary()
    due = runtime.store.due_session_ids(clock(), MAX_SESSIONS_PER_RUN)
    summary.due = len(due)

    def work(session_id: str) -> RunOutcome:
        if remaining_ms() < SESSION_BUDGET_MS:
            return RunOutcome.DEFERRED
        try:
            return process_session(runtime, session_id, clock, remaining_ms, sleep=sleep)
        except Exception:
            # Not even claimed (the store failed for this one session): it stays due as it was.
            logger.exception("could not claim the session", extra={"session_id": session_id})
            metrics.session_error(None)
            return RunOutcome.ERROR

    with ThreadPoolExecutor(max_workers=runtime.settings.resolver_concurrency) as pool:
        summary.outcomes.update(pool.map(work, due))
    _log_summary(summary)
    return summary


def _log_summary(summary: RunSummary) -> None:
    logger.info(
        "resolver run finished",
        extra={"due": summary.due, **{str(k): v for k, v in summary.outcomes.items()}},
    )


def stale_sweep(now: datetime) -> bool:
    """Whether the sweep at `now` sends stale sessions a busy queue holds back: a tenth minute's.

    Stateless, so overlapping or skipped runs need no record: two runs in one such minute send
    twice (a duplicate does nothing), and a skipped one leaves it to the next, ten minutes on.
    """
    return now.minute % STALE_SWEEP_MINUTES == 0


def sweep(runtime: Runtime, queue: WorkQueue, clock: Callable[[], datetime]) -> RunSummary:
    """With a work queue, the scheduled run only sends again the sessions whose reminder was lost.

    Every save that leaves a session due sends its reminder, so a session overdue by more than
    `SWEEP_GRACE` lost it (a crash between the save and the send, a send that failed, a message
    dead-lettered) or waits in a backlog. While the queue's backlog could hold them all, they are
    left to it, but for those `SWEEP_STALE` overdue on a tenth minute's sweep (`stale_sweep`);
    else they are all sent, due now (a duplicate finds the session claimed or done). An idle tick
    costs the same one listing as ever.
    """
    summary = RunSummary()
    now = clock()
    due = runtime.store.due_session_ids(now - SWEEP_GRACE, MAX_SWEPT_PER_RUN)
    summary.due = len(due)
    if due:
        backlog = queue.backlog()
        if backlog is not None and backlog >= len(due):
            # A lost reminder is not in the backlog: a session overdue this long is sent anyway,
            # so that a queue that stays busy cannot hold it back (a duplicate does nothing).
            stale = (
                runtime.store.due_session_ids(now - SWEEP_STALE, MAX_SWEPT_PER_RUN)
                if stale_sweep(now)
                else []
            )
            logger.info(
                "overdue sessions left to the work queue's backlog",
                extra={"due": len(due), "backlog": backlog, "stale": len(stale)},
            )
            summary.outcomes[RunOutcome.SKIPPED] += len(due) - len(stale)
            due = stale
        if due:
            items = [WorkItem(session_id, now) for session_id in due]
            chunks = [items[i : i + SWEEP_CHUNK] for i in range(0, len(items), SWEEP_CHUNK)]
            with ThreadPoolExecutor(max_workers=runtime.settings.resolver_concurrency) as pool:
                left = pool.map(lambda chunk: queue.send(chunk, now=now), chunks)
                unsent = sum(len(chunk) for chunk in left)
            summary.outcomes[RunOutcome.QUEUED] += len(due) - unsent
            if unsent:
                # Still due in the table: the next run tries them again.
                summary.outcomes[RunOutcome.DEFERRED] += unsent
    _log_summary(summary)
    return summary


def run(
    runtime_factory: Callable[[], Runtime],
    remaining_ms: Callable[[], int],
    clock: Callable[[], datetime] = utc_now,
) -> RunSummary:
    """One scheduled run; raises `ResolverRunFailed` only when the run itself cannot work.

    A session that raises is its own affair (recorded on it, counted); the run fails only when
    the settings are invalid or the store cannot list the due sessions.
    """
    try:
        runtime = runtime_factory()
    except ConfigurationError as exc:
        # Still a run: the heartbeat says the schedule works, the dead letter says what does not.
        metrics.resolver_run()
        metrics.flush()
        logger.error(
            "the resolver cannot run: its settings are invalid", extra={"reason": str(exc)}
        )
        raise ResolverRunFailed(
            f"the resolver cannot run: its settings are invalid: {exc}"
        ) from exc
    try:
        return resolve_due_sessions(runtime, remaining_ms, clock)
    except StoreUnavailable as exc:
        logger.exception("the resolver cannot run: the session store is unreachable")
        raise ResolverRunFailed(
            f"the resolver cannot run: the session store is unreachable: {exc}"
        ) from exc
