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

Sessions whose capture already exists (LambdaTest, Notte) open `pending`. Every final status owes
the ticket exactly one note (`note_state`).

*A start that may have been carried out without a confirmation is the one answer whose next step
depends on history (`transition_for`): sent once more if the user would not notice it and it has
not been repeated yet, else the session fails. So a request never gives more than two captures,
and never shows the user a second prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from capture_bridge.capture import CaptureProvider, CaptureResult, Outcome
from capture_bridge.helpdesks import HelpdeskAdapter, NoteOutcome
from capture_bridge.models import CaptureSession, NoteState, SessionStatus
from capture_bridge.notes import marker, render_note
from capture_bridge.observability import logger

# A claim outlives the longest function run (resolver timeout 90 s), so it only ever lapses
# when its holder died; see session_store.
CLAIM_LEASE = timedelta(minutes=5)
MAX_RETRY_DELAY = timedelta(minutes=10)
MAX_POLL_DELAY = timedelta(minutes=5)
MAX_RETRY_AFTER = timedelta(hours=1)
# Notes that cannot be delivered after this many tries (about a day with the backoff) are given up.
MAX_NOTE_ATTEMPTS = 12
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
    # Checks of a capture that is not ready yet, further apart each time.
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


def _wait(wait: Wait, result: CaptureResult, step: int, policy: RetryPolicy) -> timedelta:
    if wait is Wait.POLL:
        return policy.poll
    if wait is Wait.USER_RETRY:
        return policy.user_retry
    if wait is Wait.POLL_BACKOFF:
        return backoff(policy.poll, step, MAX_POLL_DELAY)
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
                extra={
                    "session_id": session.session_id,
                    "provider": session.provider,
                    "error_code": error,
                },
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
        return apply(session, provider.check(session), now, policy)
    if interrupted:
        # The last holder died between starting the capture and recording the answer. Starting
        # again could capture twice; at most one start per request, so the agent is told instead.
        logger.warning(
            "capture start interrupted; not repeating it",
            extra={"session_id": session.session_id},
        )
        result = CaptureResult(Outcome.INTERRUPTED, error_code="INTERRUPTED")
        return apply(session, result, now, policy)
    if now >= session.deadline_at:
        # Its last try falls on the deadline: starting now would capture (or prompt the user)
        # with nobody left to follow it up. It ends as its last answer would have at the deadline.
        return session.finish(_unstarted_give_up(session.status), now=now, error=session.error)
    return apply(session, provider.start(session), now, policy)


def deliver_note(
    session: CaptureSession,
    helpdesk: HelpdeskAdapter,
    provider: CaptureProvider,
    now: datetime,
) -> CaptureSession:
    """Post the session's one note unless it is already on the ticket."""
    if session.interruptions or session.note_attempts > 0:
        # An earlier try may have landed before its holder died or timed out. Interruptions are
        # counted on the session, so a later run that did not see the death still looks.
        already = helpdesk.has_note(session.ticket_id, marker(session))
        if already:
            return replace(session, note_state=NoteState.POSTED, next_check_at=None, updated_at=now)
        if already is None:
            return _note_retry(session, now, None, "could not check the ticket for an earlier note")
    result = helpdesk.post_note(session.ticket_id, render_note(session, provider))
    if result.outcome is NoteOutcome.POSTED:
        return _note_done(session, NoteState.POSTED, now)
    if result.outcome is NoteOutcome.REJECTED:
        logger.error(
            "helpdesk refused the note",
            extra={"session_id": session.session_id, "reason": result.message},
        )
        return _note_done(session, NoteState.UNDELIVERABLE, now)
    return _note_retry(session, now, result.retry_after_seconds, result.message)


def _note_done(session: CaptureSession, state: NoteState, now: datetime) -> CaptureSession:
    return replace(
        session,
        note_state=state,
        note_attempts=session.note_attempts + 1,
        next_check_at=None,
        updated_at=now,
    )


def _note_retry(
    session: CaptureSession, now: datetime, retry_after: int | None, reason: str
) -> CaptureSession:
    attempts = session.note_attempts + 1
    if attempts >= MAX_NOTE_ATTEMPTS:
        logger.error(
            "giving up on the note", extra={"session_id": session.session_id, "reason": reason}
        )
        return replace(_note_done(session, NoteState.UNDELIVERABLE, now), note_attempts=attempts)
    delay = retry_delay(retry_after, NOTE_RETRY_BASE, attempts - 1, MAX_NOTE_DELAY)
    return replace(session, note_attempts=attempts, next_check_at=now + delay, updated_at=now)
