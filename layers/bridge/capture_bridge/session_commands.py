"""Capture sessions as the sessions API sees them: create, refresh and cancel.

The rules live in `capture_flow` (`cancel_verdict`, `cancelled`, `may_refresh`, `refreshed`) and
every write in `session_store`; this module makes the calls in order and reports each result as
an outcome the API maps to its answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from capture_bridge.capture import CallBudget, Outcome, provider_spec
from capture_bridge.capture_flow import (
    CancelVerdict,
    cancel_verdict,
    cancelled,
    may_refresh,
    refreshed,
)
from capture_bridge.errors import HelpdeskNotConfigured
from capture_bridge.helpdesks import helpdesk_spec
from capture_bridge.intake import Opened, open_captures
from capture_bridge.models import CaptureSession, TicketRequest
from capture_bridge.observability import logger, session_fields
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import Idempotency, SessionStore

# A cancel waits this many tries for a holder to finish (pauses of 0.25, 0.5, 1 and 2 s, about
# 4 s in all): a start or a check plus its save usually takes well under a second, and a note
# a little more. Past that the caller is told the session is busy and to try again.
CANCEL_ATTEMPTS = 5
CANCEL_PAUSE_SECONDS = 0.25


@dataclass(frozen=True)
class NewSession:
    """One capture asked for over the API, validated."""

    helpdesk: str
    ticket_id: str
    provider: str
    # The user as the capture source knows them (Bugpilot: external id, else email).
    requester: str = ""
    action: str = ""
    description: str = ""
    external_session_id: str = ""

    @property
    def fingerprint(self) -> str:
        """What "the same body" means for an idempotency key: every field, defaults included."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def ticket_request(new: NewSession) -> TicketRequest:
    """The request as a helpdesk would have sent it: the fields each provider reads."""
    fields: dict[str, str] = {}
    if new.action:
        fields["action"] = new.action
    if new.description:
        fields["description"] = new.description
    named = provider_spec(new.provider).named
    if named and new.external_session_id:
        fields[named.field] = new.external_session_id
    return TicketRequest(
        helpdesk=new.helpdesk,
        ticket_id=new.ticket_id,
        requester=new.requester,
        label=f"{new.helpdesk.capitalize()} ticket #{new.ticket_id}",
        fields=fields,
    )


def create(
    runtime: Runtime,
    new: NewSession,
    *,
    idempotency_key: str | None,
    clock: Callable[[], datetime],
) -> Opened:
    """Store and start the capture as a webhook's would be (the same functions, guards, start).

    Raises `HelpdeskNotConfigured` (its note could never be written), `InvalidRequest` (the
    provider refused a field), `IdempotencyConflict` and `StoreUnavailable`.
    """
    missing = helpdesk_spec(new.helpdesk).unconfigured(runtime.settings)
    if missing:
        raise HelpdeskNotConfigured(
            f"{new.helpdesk} is not configured in this bridge, so no note could reach the ticket: "
            f"set {', '.join(missing)}"
        )
    requests = runtime.capture_requests(ticket_request(new))
    idempotency = Idempotency(idempotency_key, new.fingerprint) if idempotency_key else None
    # The body names one provider's one capture, so exactly one request comes back.
    opened = open_captures(runtime, requests[:1], now=clock(), clock=clock, idempotency=idempotency)
    return opened[0]


class CancelOutcome(StrEnum):
    """What a cancel came to."""

    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    # Already final: nothing to cancel (a note may be out).
    FINISHED = "finished"
    # A live claim kept holding it: its holder is starting it or posting its note.
    BUSY = "busy"


class Cancellation(NamedTuple):
    """What a cancel came to, and the session as it now stands."""

    outcome: CancelOutcome
    session: CaptureSession | None


def cancel(
    store: SessionStore,
    session_id: str,
    clock: Callable[[], datetime],
    pause: Callable[[float], None] = time.sleep,
) -> Cancellation:
    """Cancel an open session once no holder works on it, releasing its guard in the same write.

    A holder's claim is waited for briefly (`CANCEL_ATTEMPTS`); the store commits only while no
    live claim exists, so a note can never follow the cancel, nor a claim be taken after it.
    """
    session = store.get(session_id)
    for attempt in range(CANCEL_ATTEMPTS):
        if session is None:
            return Cancellation(CancelOutcome.NOT_FOUND, None)
        now = clock()
        verdict = cancel_verdict(session, now)
        if verdict is CancelVerdict.FINISHED:
            return Cancellation(CancelOutcome.FINISHED, session)
        if verdict is CancelVerdict.ALLOWED:
            target = cancelled(session, now)
            write = store.cancel(target, seen=session.status, now=now)
            if write.committed:
                logger.info("capture cancelled", extra=session_fields(target))
                return Cancellation(CancelOutcome.CANCELLED, store.get(session_id) or target)
            # Someone changed it since it was read: judge it again as it stands now.
            session = write.stored
            continue
        if attempt + 1 < CANCEL_ATTEMPTS:
            pause(CANCEL_PAUSE_SECONDS * 2**attempt)
        session = store.get(session_id)
    logger.info("cancel refused: the session stayed held", extra={"session_id": session_id})
    return Cancellation(CancelOutcome.BUSY, session)


class RefreshOutcome(StrEnum):
    """What a refresh of a session's links came to."""

    REFRESHED = "refreshed"
    # Nothing to refresh (open, or links that do not expire), or the provider has no fresh ones.
    UNCHANGED = "unchanged"
    # The provider could not be reached or failed: try again later.
    UNAVAILABLE = "unavailable"


class Refresh(NamedTuple):
    """What a refresh came to, and the session as it now stands."""

    outcome: RefreshOutcome
    session: CaptureSession


def refresh(runtime: Runtime, session: CaptureSession, clock: Callable[[], datetime]) -> Refresh:
    """Fresh links for a finished session whose links expire; status and note stay as they are."""
    if not may_refresh(session, provider_spec(session.provider).links_expire):
        return Refresh(RefreshOutcome.UNCHANGED, session)
    provider = runtime.provider(session.provider, budget=CallBudget.INTERACTIVE)
    result = provider.check(session)
    fresh = refreshed(session, result, clock())
    if fresh is None:
        logger.warning(
            "could not refresh the links",
            extra=session_fields(
                session, outcome=result.outcome.value, error_code=result.error_code
            ),
        )
        if result.outcome is Outcome.RETRYABLE:
            return Refresh(RefreshOutcome.UNAVAILABLE, session)
        return Refresh(RefreshOutcome.UNCHANGED, session)
    if not runtime.store.save_links(fresh, seen=session.status):
        # Changed meanwhile: what is stored now is the answer.
        return Refresh(RefreshOutcome.UNCHANGED, runtime.store.get(session.session_id) or session)
    logger.info("links refreshed", extra=session_fields(fresh))
    return Refresh(RefreshOutcome.REFRESHED, fresh)
