"""The scheduled resolver: works through the due capture sessions, a bounded pool at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from capture_bridge.capture_flow import CLAIM_LEASE, advance, deliver_note, releases_guard
from capture_bridge.models import CaptureSession, NoteState, utc_now
from capture_bridge.observability import logger
from capture_bridge.runtime import Runtime

# A session's work is cut in two, each begun only with time left for its worst case, every call
# at its timeout (tests/unit/test_resolver_budget.py holds these to the integrations' figures):
# the claim, one start or check by the provider (two HTTP calls at most) and the save...
SESSION_BUDGET_MS = 47_000
# ...then, for a finished session, its note: the check for an earlier one, the post, the save.
# With less time left the note waits, due at once, for the next run.
NOTE_BUDGET_MS = 39_000
MAX_SESSIONS_PER_RUN = 500


class RunOutcome(StrEnum):
    """What one resolver run did with one due session."""

    # Not due any more, or another run holds it.
    SKIPPED = "skipped"
    # Left for the next run: too little time remained.
    DEFERRED = "deferred"
    # Raised unexpectedly; its claim lapses and a later run retries it.
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


@dataclass
class RunSummary:
    """What one resolver run did, by outcome."""

    due: int = 0
    outcomes: Counter[RunOutcome] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return self.outcomes[RunOutcome.ERROR]


def _outcome(before: CaptureSession, after: CaptureSession) -> RunOutcome:
    if after.note_state is not before.note_state:
        if after.note_state is NoteState.POSTED:
            return RunOutcome.NOTED
        if after.note_state is NoteState.UNDELIVERABLE:
            return RunOutcome.NOTE_UNDELIVERABLE
    return RunOutcome.FINISHED if after.status.is_final else RunOutcome.WAITING


def process_session(
    runtime: Runtime,
    session_id: str,
    clock: Callable[[], datetime],
    remaining_ms: Callable[[], int] | None = None,
) -> RunOutcome:
    """Claim one due session, take its next step, record it; returns what happened.

    `remaining_ms` is the run's time left; without it, a note is always attempted.
    """
    claim = runtime.store.claim(session_id, now=clock(), lease=CLAIM_LEASE)
    if claim is None:
        return RunOutcome.SKIPPED
    claimed, token = claim.session, claim.session.claim_id or ""
    provider = runtime.provider(claimed.provider)
    session = claimed
    if claim.interrupted:
        # Counted on the session, so that every later run knows a note may already be out.
        session = replace(session, interruptions=session.interruptions + 1)
    if not session.status.is_final:
        session = advance(session, provider, clock(), runtime.policy, interrupted=claim.interrupted)
    if session.note_state is NoteState.PENDING:
        if remaining_ms is None or remaining_ms() >= NOTE_BUDGET_MS:
            # Posted before the write below: a crash in between is caught by the marker check.
            session = deliver_note(session, runtime.helpdesk(session.helpdesk), provider, clock())
        else:
            # Too little time for the note's worst case: left due now for the next run.
            logger.info("note left for the next run", extra={"session_id": session_id})
            session = replace(session, next_check_at=clock())
    released = replace(session, claim_id=None)
    if not runtime.store.save(
        released, held_claim=token, release_guard=releases_guard(claimed, session)
    ):
        logger.warning(
            "claim lapsed before the session was saved", extra={"session_id": session_id}
        )
        return RunOutcome.LAPSED
    return _outcome(claimed, session)


def resolve_due_sessions(
    runtime: Runtime,
    remaining_ms: Callable[[], int],
    clock: Callable[[], datetime] = utc_now,
) -> RunSummary:
    """Process the sessions due now, stopping in time to leave the rest for the next run."""
    summary = RunSummary()
    due = runtime.store.due_session_ids(clock(), MAX_SESSIONS_PER_RUN)
    summary.due = len(due)

    def work(session_id: str) -> RunOutcome:
        if remaining_ms() < SESSION_BUDGET_MS:
            return RunOutcome.DEFERRED
        try:
            return process_session(runtime, session_id, clock, remaining_ms)
        except Exception:
            # One broken session must not stop the others; its claim lapses and it is retried.
            logger.exception("session processing failed", extra={"session_id": session_id})
            return RunOutcome.ERROR

    with ThreadPoolExecutor(max_workers=runtime.settings.resolver_concurrency) as pool:
        summary.outcomes.update(pool.map(work, due))
    logger.info(
        "resolver run finished",
        extra={"due": summary.due, **{str(k): v for k, v in summary.outcomes.items()}},
    )
    return summary
