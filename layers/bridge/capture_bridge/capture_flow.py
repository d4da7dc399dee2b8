"""The capture session state machine: what each provider or helpdesk answer leads to.

`TRANSITIONS` is the whole of it: for a status and the outcome of a start or a check, the next
status, when to look again, and what the session becomes if the deadline has come. The functions
below make the calls and apply the table; they never touch the store, so the webhook and the
resolver share them and the rules are tested without DynamoDB.

    requested ──started──▶ pending ──ready──▶ resolved
        │  ▲                 │ ├──not ready past the deadline──▶ timed_out
        │  └─retryable,      │ └──invalid / rejected──▶ failed
        │    unconfirmed*    │
        ├──user offline──▶ waiting_for_user ──(started again)──▶ pending | timed_out
        └──rejected / invalid / interrupted / unconfirmed*──▶ failed

Sessions whose capture already exists (LambdaTest, Notte) open `pending`. A `requested` session
whose helpdesk named only a contact first learns who the requester is (`identify`, before any
start); the look-up's failures take the `requested` rows (`LOOKUP_OUTCOMES`). Every final status but
`cancelled` owes the ticket exactly one note (`note_state`). Any open session may be cancelled
(`cancel_verdict`, `cancelled`), but only while no live claim holds it: a holder may be posting
its note, and no note may ever follow `cancelled`.

*A start that may have been carried out without a confirmation is the one answer whose next step
depends on history (`transition_for`): sent once more if the user would not notice it and it has
not been repeated yet, else the session fails. So a request never gives more than two captures,
and never shows the user a second prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from capture_bridge import metrics
from capture_bridge.capture import BRIDGE_ERROR, CaptureProvider, CaptureResult, Outcome
from capture_bridge.helpdesks import HelpdeskAdapter, LookupOutcome, NoteOutcome, NoteResult
from capture_bridge.models import RETENTION, CaptureSession, ErrorCode, NoteState, SessionStatus
from capture_bridge.notes import marker, render_note
from capture_bridge.observability import logger, session_fields

if TYPE_CHECKING:
    from capture_bridge.pacing import Take


# A claim outlives the longest function run (resolver timeout 90 s), so it only ever lapses
# when its holder died; see session_store.
CLAIM_LEASE = timedelta(minutes=5)
MAX_RETRY_DELAY = timedelta(minutes=10)
MAX_POLL_DELAY = timedelta(minutes=5)
# A pending capture is checked at a steady pace while it is young, then further apart
# (`poll_interval`). Chosen by bench/time_to_link.py (issue 26 §3): with checks at their due
# time, reports ready 0-10 minutes after the start reach the ticket within 30 s at the median
# and 60 s at p95 only if checks are at most ~60 s apart; 1.5x the first poll (45 s by default)
# keeps a margin and costs about 1.5x today's vendor calls per capture (2x allowed). Steady
# for 14 checks (about 11 minutes by default), so a report that never comes costs under 2x
# today's calls in its 30 minutes, not the 4x of steady checks to the end.
STEADY_POLL_RATIO = 1.5
STEADY_POLLS = 14
MAX_RETRY_AFTER = timedelta(hours=1)
# Notes that cannot be delivered after this many tries (about a day with the backoff) are given up.
MAX_NOTE_ATTEMPTS = 12
# A step that raises is recorded on the session (`record_fault`) and its claim left to lapse, so
# the next try comes a lease (5 minutes) later. Five in a row is then about 25 minutes: most of
# the default 30-minute capture window, long enough to ride out a passing cause (a dependency
# raising instead of answering for a while, a bad deploy rolled back), short enough that the
# agent still hears within that window instead of never. A step that completes resets the count.
MAX_CONSECUTIVE_FAULTS = 5
NOTE_RETRY_BASE = timedelta(minutes=1)
MAX_NOTE_DELAY = timedelta(hours=4)


@dataclass(frozen=True)
class RetryPolicy:
    """The timings of the flow, from the core settings."""

    poll: timedelta = timedelta(seconds=30)
    user_retry: timedelta = timedelta(minutes=3)
    max_wait: timedelta = timedelta(minutes=30)


class Wait(StrEnum):
    """How long an open session waits before its next start or check."""

    # The first check after a start: the provider needs a moment.
    POLL = "poll"
    # Checks of a capture that is not ready yet: steady while it is young, then further apart
    # each time (`poll_interval`).
    POLL_BACKOFF = "poll_backoff"
    # Asking an offline user again.
    USER_RETRY = "user_retry"
    # After a failure: the provider's Retry-After, else exponential backoff.
    RETRY_BACKOFF = "retry_backoff"


@dataclass(frozen=True)
class Finish:
    """The outcome ends the capture in a final status; the ticket is owed its note."""

    status: SessionStatus


@dataclass(frozen=True)
class Continue:
    """The capture stays open: look again after `wait`, unless the deadline has come."""

    status: SessionStatus
    wait: Wait
    # What the session becomes when this outcome arrives at or past its deadline.
    give_up_as: SessionStatus


Transition = Finish | Continue
_S = SessionStatus
_FAILED = Finish(_S.FAILED)
# How often an unconfirmed start the user would not notice is sent again.
MAX_UNCONFIRMED_REPEATS = 1


def _starting(status: SessionStatus) -> dict[tuple[SessionStatus, Outcome], Transition]:
    return {
        (status, Outcome.STARTED): Continue(_S.PENDING, Wait.POLL, _S.TIMED_OUT),
        (status, Outcome.USER_OFFLINE): Continue(
            _S.WAITING_FOR_USER, Wait.USER_RETRY, _S.TIMED_OUT
        ),
        (status, Outcome.RETRYABLE): Continue(status, Wait.RETRY_BACKOFF, _S.FAILED),
        # Only within the repeat budget; see `transition_for`.
        (status, Outcome.UNCONFIRMED): Continue(status, Wait.RETRY_BACKOFF, _S.FAILED),
        (status, Outcome.REJECTED): _FAILED,
        (status, Outcome.INVALID): _FAILED,
        (status, Outcome.INTERRUPTED): _FAILED,
    }


TRANSITIONS: dict[tuple[SessionStatus, Outcome], Transition] = {
    **_starting(_S.REQUESTED),
    **_starting(_S.WAITING_FOR_USER),
    (_S.PENDING, Outcome.READY): Finish(_S.RESOLVED),
    (_S.PENDING, Outcome.NOT_READY): Continue(_S.PENDING, Wait.POLL_BACKOFF, _S.TIMED_OUT),
    (_S.PENDING, Outcome.RETRYABLE): Continue(_S.PENDING, Wait.RETRY_BACKOFF, _S.FAILED),
    (_S.PENDING, Outcome.REJECTED): _FAILED,
    (_S.PENDING, Outcome.INVALID): _FAILED,
}


# A helpdesk whose payload names only a contact is asked who the requester is before the first
# start (`identify`). A requester found lets the start go ahead; any other answer is taken as
# that start's own answer would be (the table's rows for `requested`), with its error code.
LOOKUP_OUTCOMES: dict[LookupOutcome, tuple[Outcome, ErrorCode]] = {
    LookupOutcome.NOT_FOUND: (Outcome.INVALID, ErrorCode.REQUESTER_NOT_FOUND),
    LookupOutcome.REJECTED: (Outcome.REJECTED, ErrorCode.REQUESTER_LOOKUP_REJECTED),
    LookupOutcome.RETRYABLE: (Outcome.RETRYABLE, ErrorCode.REQUESTER_LOOKUP_FAILING),
}


def next_transition(status: SessionStatus, outcome: Outcome) -> Transition:
    """The table's entry; any pair it does not list (a provider answering out of turn) fails."""
    return TRANSITIONS.get((status, outcome), _FAILED)


def _unstarted_give_up(status: SessionStatus) -> SessionStatus:
    """What a session still to start becomes at its deadline: the user never came, or it failed."""
    return _S.TIMED_OUT if status is _S.WAITING_FOR_USER else _S.FAILED


def may_repeat(session: CaptureSession, result: CaptureResult) -> bool:
    """Whether an unconfirmed start may be sent again: unnoticeable, and not repeated before."""
    return result.repeatable and session.unconfirmed < MAX_UNCONFIRMED_REPEATS


def transition_for(session: CaptureSession, result: CaptureResult) -> Transition:
    """The table's entry for `result`, unless it is an unconfirmed start beyond its budget."""
    if result.outcome is Outcome.UNCONFIRMED and not may_repeat(session, result):
        return _FAILED
    return next_transition(session.status, result.outcome)


def releases_guard(before: CaptureSession, after: CaptureSession) -> bool:
    """A capture that has just ended frees its ticket for a new request, in the same write."""
    return after.status.is_final and not before.status.is_final


def backoff(base: timedelta, step: int, cap: timedelta) -> timedelta:
    """`base` doubled `step` times, at most `cap`."""
    doubled: timedelta = base * 2 ** min(max(step, 0), 16)
    return min(doubled, cap)


def retry_delay(retry_after: int | None, base: timedelta, step: int, cap: timedelta) -> timedelta:
    """The upstream's Retry-After when it gave one (within an hour), else exponential backoff."""
    if retry_after is not None:
        return min(timedelta(seconds=max(retry_after, 0)), MAX_RETRY_AFTER)
    return backoff(base, step, cap)


def poll_interval(step: int, policy: RetryPolicy) -> timedelta:
    """The wait after check `step` (0 = the first) of a capture found not ready yet.

    `STEADY_POLL_RATIO` x the first poll for `STEADY_POLLS` checks, then doubling from there up
    to `MAX_POLL_DELAY`.
    """
    steady = min(policy.poll * STEADY_POLL_RATIO, MAX_POLL_DELAY)
    if step < STEADY_POLLS:
        return steady
    return backoff(steady, step - STEADY_POLLS + 1, MAX_POLL_DELAY)


def _wait(wait: Wait, result: CaptureResult, step: int, policy: RetryPolicy) -> timedelta:
    if wait is Wait.POLL:
        return policy.poll
    if wait is Wait.USER_RETRY:
        return policy.user_retry
    if wait is Wait.POLL_BACKOFF:
        return poll_interval(step, policy)
    return retry_delay(result.retry_after_seconds, policy.poll, step, MAX_RETRY_DELAY)


def apply(
    session: CaptureSession, result: CaptureResult, now: datetime, policy: RetryPolicy
) -> CaptureSession:
    """The session after a start or a check of it came to `result`."""
    checking = session.status is SessionStatus.PENDING
    step = session.polls if checking else session.attempts
    tried = replace(
        session,
        attempts=session.attempts + (0 if checking else 1),
        polls=session.polls + (1 if checking else 0),
        unconfirmed=session.unconfirmed + (result.outcome is Outcome.UNCONFIRMED),
        deadline_at=result.deadline_at or session.deadline_at,
        updated_at=now,
    )
    transition = transition_for(session, result)
    error = result.error_code
    if isinstance(transition, Finish):
        if result.outcome is Outcome.REJECTED:
            logger.error(
                "capture provider rejected the request: configuration error",
                extra=session_fields(session, error_code=error, reason=result.message),
            )
        elif (session.status, result.outcome) not in TRANSITIONS:
            error = f"UNEXPECTED_{result.outcome.value.upper()}"
        return tried.finish(
            transition.status, now=now, error=error, links=result.links, details=result.details
        )
    if now >= tried.deadline_at:
        return tried.finish(transition.give_up_as, now=now, error=error)
    delay = _wait(transition.wait, result, step, policy)
    return replace(
        tried,
        status=transition.status,
        reference=result.reference or tried.reference,
        error=error,
        # Never past the deadline, so that giving up happens on time.
        next_check_at=min(now + delay, tried.deadline_at),
    )


def advance(
    session: CaptureSession,
    provider: CaptureProvider,
    now: datetime,
    policy: RetryPolicy,
    *,
    interrupted: bool,
) -> CaptureSession:
    """One step of an open session: start the capture (again), or check it."""
    if session.status is SessionStatus.PENDING:
        # Checking is read-only, so an interrupted check is simply repeated.
        return apply(session, check(session, provider), now, policy)
    if interrupted:
        # The last holder died between starting the capture and recording the answer. Starting
        # again could capture twice; at most one start per request, so the agent is told instead.
        logger.warning("capture start interrupted; not repeating it", extra=session_fields(session))
        result = CaptureResult(Outcome.INTERRUPTED, error_code=ErrorCode.INTERRUPTED)
        return apply(session, result, now, policy)
    if now >= session.deadline_at:
        # Its last try falls on the deadline: starting now would capture (or prompt the user)
        # with nobody left to follow it up. It ends as its last answer would have at the deadline.
        return session.finish(_unstarted_give_up(session.status), now=now, error=session.error)
    metrics.action_sent(session)
    return apply(session, _answered(session, provider.start(session)), now, policy)


def checks_unclaimed(session: CaptureSession, now: datetime) -> bool:
    """Whether a due session's step may go without a claim: a check of a pending capture.

    A check is read-only at the provider, so two holders checking at once do no harm; only its
    save must be conditional on the session still being as read (`SessionStore.save_checked`).
    It saves the claim's write on every check that finds the capture not ready. Anything else
    (a start, a note, a session that raised, one at its deadline) is claimed first.
    """
    due = session.next_check_at is not None and session.next_check_at <= now
    return (
        due
        and session.status is SessionStatus.PENDING
        and session.claim_id is None
        and session.note_state is None
        and not session.faults
        and now < session.deadline_at
    )


def needs_requester(session: CaptureSession) -> bool:
    """Whether the session must learn its requester from the helpdesk before it can start."""
    starting = session.status in (SessionStatus.REQUESTED, SessionStatus.WAITING_FOR_USER)
    return starting and not session.user_id and bool(session.requester_ref)


def identify(
    session: CaptureSession, helpdesk: HelpdeskAdapter, now: datetime, policy: RetryPolicy
) -> CaptureSession:
    """Ask the helpdesk who the session's requester is (`needs_requester`); nothing else.

    Found: the session, still to start and due at once, knows its user. Otherwise the answer
    moves it as `LOOKUP_OUTCOMES` says: tried again later, or failed with a note explaining why.
    Nothing was started, so an interrupted earlier look-up is simply asked again.
    """
    if now >= session.deadline_at:
        return session.finish(SessionStatus.FAILED, now=now, error=session.error)
    lookup = helpdesk.find_requester(session.requester_ref or "")
    if lookup.outcome is LookupOutcome.FOUND and lookup.user:
        logger.info("requester found", extra=session_fields(session))
        # Due at once: the start is the next step (in the resolver, the next run's).
        return replace(session, user_id=lookup.user, error=None, updated_at=now, next_check_at=now)
    outcome, error = LOOKUP_OUTCOMES.get(lookup.outcome, LOOKUP_OUTCOMES[LookupOutcome.NOT_FOUND])
    (logger.warning if outcome is Outcome.RETRYABLE else logger.error)(
        "could not look the requester up",
        extra=session_fields(session, outcome=lookup.outcome.value, reason=lookup.message),
    )
    result = CaptureResult(
        outcome,
        error_code=error,
        message=lookup.message,
        retry_after_seconds=lookup.retry_after_seconds,
    )
    return apply(session, result, now, policy)


def check(session: CaptureSession, provider: CaptureProvider) -> CaptureResult:
    """Ask the provider whether a pending capture is ready (read-only), counted and logged."""
    return _answered(session, provider.check(session))


def _answered(session: CaptureSession, result: CaptureResult) -> CaptureResult:
    """Count and log a provider's answer as it comes (whether or not its step is saved)."""
    metrics.capture_answer(session, result)
    if result.outcome in (Outcome.RETRYABLE, Outcome.UNCONFIRMED):
        # A vendor unreachable or failing: retried on its own, but someone may need to look.
        logger.warning(
            "capture provider unreachable or failing; trying again later",
            extra=session_fields(
                session,
                outcome=result.outcome.value,
                error_code=result.error_code,
                reason=result.message,
                retry_after_seconds=result.retry_after_seconds,
            ),
        )
    return result


def report_step(before: CaptureSession, after: CaptureSession) -> None:
    """Log and count what a saved step did: once per step, since only saved steps count."""
    metrics.session_step(before, after)
    if after.status.is_final and not before.status.is_final:
        failed = after.status is SessionStatus.FAILED
        (logger.warning if failed else logger.info)(
            "capture failed" if failed else "capture finished",
            extra=session_fields(after, error_code=after.error),
        )
    if after.note_state is not before.note_state and after.note_state is NoteState.POSTED:
        logger.info("note posted", extra=session_fields(after))


def record_fault(session: CaptureSession, error: str, now: datetime) -> CaptureSession:
    """The session after a step of it raised `error` (already short and redacted).

    Only the count and the text change: the step's other effects are lost with it, and the claim
    stays, so that the next holder treats the step as interrupted.
    """
    return replace(session, faults=session.faults + 1, fault=error, updated_at=now)


def completed(session: CaptureSession) -> CaptureSession:
    """A step went through: faults are counted in a row, so the count starts again."""
    return replace(session, faults=0) if session.faults else session


def give_up_if_faulting(session: CaptureSession, now: datetime) -> CaptureSession:
    """End what a session that raised `MAX_CONSECUTIVE_FAULTS` times in a row still has to do.

    An open capture fails with `BRIDGE_ERROR` (its note is still owed and tried); a note still
    owed is given up as undeliverable. Anything else is returned as it is.
    """
    if session.faults < MAX_CONSECUTIVE_FAULTS:
        return session
    if not session.status.is_final:
        logger.error(
            "session kept failing; ending it as failed",
            extra=session_fields(session, faults=session.faults, fault=session.fault),
        )
        return session.finish(SessionStatus.FAILED, now=now, error=BRIDGE_ERROR)
    if session.note_state is NoteState.PENDING:
        logger.error(
            "note kept failing; giving it up",
            extra=session_fields(session, faults=session.faults, fault=session.fault),
        )
        return _note_done(session, NoteState.UNDELIVERABLE, now)
    return session


# The furthest ahead a note reserves its token, and so the most the bucket owes: an hour's
# refill. An hour matches the longest a helpdesk's headers may hold the bucket back
# (`pacing.MAX_RESET_SECONDS`); a
# reminder that far ahead costs four SQS deliveries, three of them hops with no read; and a
# lowered `<NAME>_NOTES_PER_MINUTE` reaches the notes that reserved at the old pace within it.
# A note beyond it takes nothing and comes back at the horizon, when an hour's tokens have come.
RESERVATION_HORIZON = timedelta(hours=1)
# A reserved token a note is woken later than this is given up and a new one taken: SQS wakes a
# reservation within a second or two of its time, so one this late was held up (a backlog, a
# crash, a lost reminder), and posting it now could crowd a later minute. Notes post within it
# of their token, so no 60 seconds see more than the pace and a sixth of a minute's refill.
LATE_TOKEN = timedelta(seconds=10)


class NoteTurn(StrEnum):
    """What a note owed does in this step, by its helpdesk's pace (`note_turn`)."""

    # Its token comes within what the step can wait: posted once it has come.
    SEND = "send"
    # Its token comes later: kept on the session (`note_token_at`), due then; nothing sent.
    RESERVE = "reserve"
    # No token within the horizon (or the bucket too contended): nothing taken, nothing sent.
    WAIT = "wait"


def token_horizon(spare: timedelta, *, reminded: bool) -> timedelta:
    """How far ahead a note may take its token.

    With a work queue, a reminder wakes the session at its token's time, so it reserves up to
    `pacing.RESERVATION_HORIZON`. The scheduled runs come once a minute: a token between them
    would be posted late, beside the next minute's, so there a note takes only what its step can
    wait for (`spare`), and a later one leaves it due when the next token comes.
    """
    return max(RESERVATION_HORIZON, spare) if reminded else spare


def held_token(session: CaptureSession, now: datetime) -> datetime | None:
    """The time of the token the session's note reserved; None if none, or woken too late.

    None means the note takes a new one. One woken over `LATE_TOKEN` after its time is lost:
    that slows the pace, never more.
    """
    reserved = session.note_token_at
    if reserved is None or now - reserved > LATE_TOKEN:
        return None
    return reserved


def note_turn(token: Take, now: datetime, spare: timedelta) -> NoteTurn:
    """A note goes out only on a token (`store.pace`, or held), and only once it has come."""
    if not token.granted:
        return NoteTurn.WAIT
    return NoteTurn.SEND if token.at - now <= spare else NoteTurn.RESERVE


def awaiting_token(session: CaptureSession, token: Take, now: datetime) -> CaptureSession:
    """The session whose note waits its turn (`NoteTurn.RESERVE` or `WAIT`).

    Holding a token: it keeps it and is due at its time. Without one: due when the next token
    comes, but no later than the horizon (then an hour's tokens have come; sooner, notes left
    together would wake together). Nothing was sent, so nothing else changes: no attempt
    (`note_attempts` stays, so no marker check is owed), and the note is never dropped.
    """
    if token.granted:
        return replace(session, note_token_at=token.at, next_check_at=token.at, updated_at=now)
    due = min(max(token.at, now), now + RESERVATION_HORIZON)
    return replace(session, next_check_at=due, updated_at=now)


def deliver_note(
    session: CaptureSession,
    helpdesk: HelpdeskAdapter,
    provider: CaptureProvider,
    now: datetime,
    *,
    on_answer: Callable[[NoteResult], None] | None = None,
) -> CaptureSession:
    """Post the session's one note unless it is already on the ticket.

    `on_answer` hears the helpdesk's answer to the post (the resolver tightens its pace by it).
    One try uses the note's reserved token, whatever comes of it: a later try takes a new one.
    """
    session = replace(session, note_token_at=None)
    if session.interruptions or session.note_attempts > 0:
        # An earlier try may have landed before its holder died or timed out. Interruptions are
        # counted on the session, so a later run that did not see the death still looks.
        already = helpdesk.has_note(session.ticket_id, marker(session))
        if already:
            return replace(session, note_state=NoteState.POSTED, next_check_at=None, updated_at=now)
        if already is None:
            return _note_retry(session, now, None, "could not check the ticket for an earlier note")
    result = helpdesk.post_note(session.ticket_id, render_note(session, provider))
    metrics.note_answer(session, result)
    if on_answer is not None:
        on_answer(result)
    if result.outcome is NoteOutcome.POSTED:
        return _note_done(session, NoteState.POSTED, now)
    if result.outcome is NoteOutcome.REJECTED:
        logger.error(
            "helpdesk refused the note", extra=session_fields(session, reason=result.message)
        )
        return _note_done(session, NoteState.UNDELIVERABLE, now)
    return _note_retry(session, now, result.retry_after_seconds, result.message)


def _note_done(session: CaptureSession, state: NoteState, now: datetime) -> CaptureSession:
    return replace(
        session,
        note_state=state,
        note_attempts=session.note_attempts + 1,
        note_token_at=None,
        next_check_at=None,
        updated_at=now,
    )


def _note_retry(
    session: CaptureSession, now: datetime, retry_after: int | None, reason: str
) -> CaptureSession:
    attempts = session.note_attempts + 1
    if attempts >= MAX_NOTE_ATTEMPTS:
        logger.error("giving up on the note", extra=session_fields(session, reason=reason))
        return replace(_note_done(session, NoteState.UNDELIVERABLE, now), note_attempts=attempts)
    delay = retry_delay(retry_after, NOTE_RETRY_BASE, attempts - 1, MAX_NOTE_DELAY)
    logger.warning(
        "note not delivered; trying again later",
        extra=session_fields(session, reason=reason, note_attempts=attempts),
    )
    return replace(session, note_attempts=attempts, next_check_at=now + delay, updated_at=now)


# -- cancelling and refreshing: asked by the sessions API, never by the resolver ----------------


class CancelVerdict(StrEnum):
    """Whether a session may be cancelled now."""

    ALLOWED = "allowed"
    # Already final (a note may be out): nothing to cancel.
    FINISHED = "finished"
    # A live claim holds it: its holder may be starting the capture or posting the note.
    HELD = "held"


def cancel_verdict(session: CaptureSession, now: datetime) -> CancelVerdict:
    """Open and not held by a live claim (none, or its lease lapsed: the holder died)."""
    if session.status.is_final:
        return CancelVerdict.FINISHED
    lease_live = session.next_check_at is not None and session.next_check_at > now
    if session.claim_id and lease_live:
        return CancelVerdict.HELD
    return CancelVerdict.ALLOWED


def cancelled(session: CaptureSession, now: datetime) -> CaptureSession:
    """The session cancelled: final, no note owed, never due again, no claim."""
    return replace(
        session,
        status=SessionStatus.CANCELLED,
        note_state=None,
        next_check_at=None,
        claim_id=None,
        updated_at=now,
        closed_at=now,
        expires_at=int((now + RETENTION).timestamp()),
    )


def may_refresh(session: CaptureSession, links_expire: bool) -> bool:
    """Only a resolved capture has links, and only a provider whose links expire has new ones."""
    return links_expire and session.status is SessionStatus.RESOLVED


def refreshed(
    session: CaptureSession, result: CaptureResult, now: datetime
) -> CaptureSession | None:
    """The session with the fresh links of a re-check; None unless the provider gave them.

    Status, note and everything else stay as they are: a refresh is not a step of the machine.
    """
    if result.outcome is not Outcome.READY:
        return None
    links: Mapping[str, str] = dict(result.links) if result.links else session.links
    details: Mapping[str, str] = dict(result.details) if result.details else session.details
    return replace(session, links=links, details=details, updated_at=now)
