"""The scheduled resolver: works through the due capture sessions, a bounded pool at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime

from capture_bridge.capture_flow import CLAIM_LEASE, advance, deliver_note
from capture_bridge.models import NoteState, utc_now
from capture_bridge.observability import logger
from capture_bridge.runtime import Runtime

# One session's worst case: a poll or an action, a note check and a note, each with its timeout.
SESSION_BUDGET_MS = 35_000
MAX_SESSIONS_PER_RUN = 500


@dataclass
class RunSummary:
    """What one resolver run did, by outcome."""

    due: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return self.outcomes["error"]


def process_session(runtime: Runtime, session_id: str, clock: Callable[[], datetime]) -> str:
    """Claim one due session, take its next step, record it; returns what happened."""
    claim = runtime.store.claim(session_id, now=clock(), lease=CLAIM_LEASE)
    if claim is None:
        return "skipped"
    session, token = claim.session, claim.session.claim_id or ""
    was_final = session.status.is_final
    if not was_final:
        session = advance(
            session, runtime.provider, clock(), runtime.settings, interrupted=claim.interrupted
        )
    if session.note_state is NoteState.PENDING:
        # Posted before the write below: a crash in between is caught by the marker check.
        session = deliver_note(
            session, runtime.helpdesk(session.helpdesk), clock(), interrupted=claim.interrupted
        )
    released = replace(session, claim_id=None)
    if not runtime.store.save(
        released, held_claim=token, release_guard=session.status.is_final and not was_final
    ):
        logger.warning(
            "claim lapsed before the session was saved", extra={"session_id": session_id}
        )
        return "lapsed"
    if (
        session.note_state is NoteState.POSTED
        and session.note_state is not claim.session.note_state
    ):
        return f"noted_{session.status.value}"
    return session.status.value


def resolve_due_sessions(
    runtime: Runtime,
    remaining_ms: Callable[[], int],
    clock: Callable[[], datetime] = utc_now,
) -> RunSummary:
    """Process the sessions due now, stopping in time to leave the rest for the next run."""
    summary = RunSummary()
    due = runtime.store.due_session_ids(clock(), MAX_SESSIONS_PER_RUN)
    summary.due = len(due)

    def work(session_id: str) -> str:
        if remaining_ms() < SESSION_BUDGET_MS:
            return "deferred"
        try:
            return process_session(runtime, session_id, clock)
        except Exception:
            # One broken session must not stop the others; its claim lapses and it is retried.
            logger.exception("session processing failed", extra={"session_id": session_id})
            return "error"

    with ThreadPoolExecutor(max_workers=runtime.settings.resolver_concurrency) as pool:
        summary.outcomes.update(pool.map(work, due))
    logger.info("resolver run finished", extra={"due": summary.due, **summary.outcomes})
    return summary
