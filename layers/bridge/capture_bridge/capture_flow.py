"""The capture session state machine: what each provider or helpdesk answer leads to.

These functions make the calls and decide the next state; they never touch the store, so the
webhook and the resolver share them and the rules can be tested without DynamoDB.

    requested ──accepted──▶ pending ──report ready──▶ resolved
        │  ▲                  │ └──not found past the deadline──▶ timed_out
        │  └─retryable        └──invalid token──▶ failed
        ├──user offline──▶ waiting_for_user ──(retried)──▶ pending | timed_out
        └──rejected──▶ failed

Every final status owes the ticket exactly one note (`note_state`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from capture_bridge.capture import (
    ActionOutcome,
    ActionResult,
    CaptureProvider,
    ReportOutcome,
    ReportResult,
)
from capture_bridge.helpdesks import HelpdeskAdapter, NoteOutcome
from capture_bridge.models import CaptureSession, NoteState, SessionStatus
from capture_bridge.notes import marker, render_note
from capture_bridge.observability import logger
from capture_bridge.settings import Settings

# A claim outlives the longest function run (resolver timeout 90 s), so it only ever lapses
# when its holder died; see session_store.
CLAIM_LEASE = timedelta(minutes=5)
MAX_RETRY_DELAY = timedelta(minutes=10)
MAX_POLL_DELAY = timedelta(minutes=5)
# Notes that cannot be delivered after this many tries (about a day with the backoff) are given up.
MAX_NOTE_ATTEMPTS = 12


def _backoff(base_seconds: int, step: int, cap: timedelta) -> timedelta:
    return min(timedelta(seconds=base_seconds * 2 ** min(max(step, 0), 16)), cap)


def _retry_delay(
    retry_after: int | None, base_seconds: int, step: int, cap: timedelta
) -> timedelta:
    """The upstream's Retry-After when it gave one (within an hour), else exponential backoff."""
    if retry_after is not None:
        return min(timedelta(seconds=retry_after), timedelta(hours=1))
    return _backoff(base_seconds, step, cap)


def _retry_later(
    tried: CaptureSession,
    now: datetime,
    *,
    error: str | None,
    delay: timedelta,
    give_up_as: SessionStatus,
) -> CaptureSession:
    """Check again after `delay`, or end as `give_up_as` once the deadline has come."""
    if now >= tried.deadline_at:
        return tried.finish(give_up_as, now=now, error=error)
    # Never past the deadline, so that giving up happens on time.
    return replace(tried, error=error, next_check_at=min(now + delay, tried.deadline_at))


def after_action(
    session: CaptureSession, result: ActionResult, now: datetime, settings: Settings
) -> CaptureSession:
    """The session after its capture action was answered with `result`."""
    tried = replace(session, attempts=session.attempts + 1, updated_at=now)
    outcome = result.outcome
    if outcome is ActionOutcome.ACCEPTED:
        return replace(
            tried,
            status=SessionStatus.PENDING,
            session_info_url=result.session_info_url,
            error=None,
            next_check_at=now + timedelta(seconds=settings.poll_seconds),
        )
    if outcome is ActionOutcome.REJECTED:
        logger.error(
            "capture provider rejected the request: configuration error",
            extra={"session_id": session.session_id, "error_code": result.error_code},
        )
        return tried.finish(SessionStatus.FAILED, now=now, error=result.error_code)
    if outcome is ActionOutcome.USER_OFFLINE:
        return _retry_later(
            replace(tried, status=SessionStatus.WAITING_FOR_USER),
            now,
            error=result.error_code,
            delay=timedelta(seconds=settings.user_retry_seconds),
            give_up_as=SessionStatus.TIMED_OUT,
        )
    return _retry_later(
        tried,
        now,
        error=result.error_code,
        delay=_retry_delay(
            result.retry_after_seconds, settings.poll_seconds, session.attempts, MAX_RETRY_DELAY
        ),
        give_up_as=SessionStatus.FAILED,
    )


def after_poll(
    session: CaptureSession, result: ReportResult, now: datetime, settings: Settings
) -> CaptureSession:
    """The session after Session Info was answered with `result`."""
    tried = replace(session, polls=session.polls + 1, updated_at=now)
    outcome = result.outcome
    if outcome is ReportOutcome.READY:
        return tried.finish(SessionStatus.RESOLVED, now=now, report_url=result.report_url)
    if outcome is ReportOutcome.INVALID:
        return tried.finish(SessionStatus.FAILED, now=now, error=result.error_code)
    if outcome is ReportOutcome.NOT_READY:
        # Reports usually land within a minute or two; later ones are checked less often.
        return _retry_later(
            tried,
            now,
            error=result.error_code,
            delay=_backoff(settings.poll_seconds, session.polls, MAX_POLL_DELAY),
            give_up_as=SessionStatus.TIMED_OUT,
        )
    return _retry_later(
        tried,
        now,
        error=result.error_code,
        delay=_retry_delay(
            result.retry_after_seconds, settings.poll_seconds, session.polls, MAX_RETRY_DELAY
        ),
        give_up_as=SessionStatus.FAILED,
    )


def advance(
    session: CaptureSession,
    provider: CaptureProvider,
    now: datetime,
    settings: Settings,
    *,
    interrupted: bool,
) -> CaptureSession:
    """One step of an open session: ask for the capture again, or ask for its report."""
    if session.status is SessionStatus.PENDING:
        if not session.session_info_url:
            return session.finish(SessionStatus.FAILED, now=now, error="UNEXPECTED_RESPONSE")
        # Polling is read-only, so an interrupted poll is simply repeated.
        return after_poll(session, provider.fetch_report(session.session_info_url), now, settings)
    if interrupted:
        # The last holder died between asking for the capture and recording the answer. Asking
        # again could capture twice; at most one action per request, so the agent is told instead.
        logger.warning(
            "capture request interrupted; not repeating it",
            extra={"session_id": session.session_id},
        )
        return session.finish(SessionStatus.FAILED, now=now, error="INTERRUPTED")
    result = provider.request_capture(
        user_id=session.user_id, action=session.action, description=session.description
    )
    return after_action(session, result, now, settings)


def deliver_note(
    session: CaptureSession, helpdesk: HelpdeskAdapter, now: datetime, *, interrupted: bool
) -> CaptureSession:
    """Post the session's one note unless it is already on the ticket."""
    if interrupted or session.note_attempts > 0:
        # The previous try may have landed before its holder died or timed out.
        already = helpdesk.has_note(session.ticket_id, marker(session))
        if already:
            return replace(session, note_state=NoteState.POSTED, next_check_at=None, updated_at=now)
        if already is None:
            return _note_retry(session, now, None, "could not check the ticket for an earlier note")
    result = helpdesk.post_note(session.ticket_id, render_note(session))
    if result.outcome is NoteOutcome.POSTED:
        return replace(
            session,
            note_state=NoteState.POSTED,
            note_attempts=session.note_attempts + 1,
            next_check_at=None,
            updated_at=now,
        )
    if result.outcome is NoteOutcome.REJECTED:
        logger.error(
            "helpdesk refused the note",
            extra={"session_id": session.session_id, "reason": result.message},
        )
        return replace(
            session,
            note_state=NoteState.UNDELIVERABLE,
            note_attempts=session.note_attempts + 1,
            next_check_at=None,
            updated_at=now,
        )
    return _note_retry(session, now, result.retry_after_seconds, result.message)


def _note_retry(
    session: CaptureSession, now: datetime, retry_after: int | None, reason: str
) -> CaptureSession:
    attempts = session.note_attempts + 1
    if attempts >= MAX_NOTE_ATTEMPTS:
        logger.error(
            "giving up on the note", extra={"session_id": session.session_id, "reason": reason}
        )
        return replace(
            session,
            note_state=NoteState.UNDELIVERABLE,
            note_attempts=attempts,
            next_check_at=None,
            updated_at=now,
        )
    delay = _retry_delay(retry_after, 60, attempts - 1, timedelta(hours=4))
    return replace(session, note_attempts=attempts, next_check_at=now + delay, updated_at=now)
