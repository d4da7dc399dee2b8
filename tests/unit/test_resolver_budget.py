"""The resolver's time reserves cover the real worst case: every call at its timeout.

Each integration declares how long its longest step or note can take (from its own timeouts);
the store declares one DynamoDB call's longest, botocore's retries included. A reserve is within
a second of that worst case: a larger one would defer work that fits.
"""

from __future__ import annotations

from capture_bridge import session_store
from capture_bridge.capture import provider_specs
from capture_bridge.helpdesks import helpdesk_specs
from capture_bridge.resolver import NOTE_BUDGET_MS, SESSION_BUDGET_MS

ROUNDING_MS = 1000
# A write that DynamoDB answers "busy" is tried again after growing pauses.
BUSY_PAUSES_SECONDS = sum(
    session_store.CONFLICT_PAUSE_SECONDS * 2**attempt
    for attempt in range(1, session_store.SAVE_ATTEMPTS)
)
STORE_WRITE_SECONDS = session_store.LONGEST_CALL_SECONDS + BUSY_PAUSES_SECONDS


def longest_step_seconds() -> float:
    return max(spec.longest_step_seconds for spec in provider_specs())


def longest_note_seconds() -> float:
    return max(spec.longest_note_seconds for spec in helpdesk_specs())


def test_every_integration_declares_its_longest_call_sequence() -> None:
    for provider in provider_specs():
        assert provider.longest_step_seconds > 0, provider.name
    for helpdesk in helpdesk_specs():
        assert helpdesk.longest_note_seconds > 0, helpdesk.name


def longest_lookup_seconds() -> float:
    return max(spec.longest_lookup_seconds for spec in helpdesk_specs())


def test_the_session_reserve_covers_a_claim_the_longest_step_and_a_save() -> None:
    # A requester look-up is a step of its own in the resolver (the start waits for the next run).
    step = max(longest_step_seconds(), longest_lookup_seconds())
    worst_ms = 1000 * (session_store.LONGEST_CALL_SECONDS + step + STORE_WRITE_SECONDS)
    assert worst_ms <= SESSION_BUDGET_MS < worst_ms + ROUNDING_MS


def test_the_note_reserve_covers_the_longest_note_and_a_save() -> None:
    worst_ms = 1000 * (longest_note_seconds() + STORE_WRITE_SECONDS)
    assert worst_ms <= NOTE_BUDGET_MS < worst_ms + ROUNDING_MS
