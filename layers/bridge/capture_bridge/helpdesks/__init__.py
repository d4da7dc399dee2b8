"""Helpdesk adapters: who asks for captures and receives the notes.

Each helpdesk is one module behind `HelpdeskAdapter`, found by the name in the webhook path.
Modules are imported on first use, so a function only pays for the helpdesks it serves.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from capture_bridge.errors import InvalidRequest, UnknownHelpdesk
from capture_bridge.models import CaptureRequest

if TYPE_CHECKING:
    from capture_bridge.http import HttpClient
    from capture_bridge.settings import Settings

# Ticket tags that choose the capture when the webhook body names no action.
ACTION_TAGS = {
    "bugpilot_screenshot": "upload-screenshot",
    "bugpilot_recording": "show-recording-ui",
    "bugpilot_session": "upload-session",
}


class NoteOutcome(StrEnum):
    POSTED = "posted"
    # Rate limited, unreachable or failing upstream: try again later.
    RETRYABLE = "retryable"
    # Refused for a reason retrying will not fix (credentials, missing ticket, invalid note).
    REJECTED = "rejected"


@dataclass(frozen=True)
class NoteResult:
    outcome: NoteOutcome
    message: str = ""
    retry_after_seconds: int | None = None


class HelpdeskAdapter(Protocol):
    """Verifies a helpdesk's webhook, reads its capture request, and writes internal notes."""

    name: str

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
        """Check the sender and freshness; return a fingerprint of this delivery.

        Raises `Unauthenticated` when the proof is missing, wrong or stale.
        """
        ...

    def parse(self, body: bytes) -> CaptureRequest:
        """Read a verified body into a capture request; raises `InvalidRequest`."""
        ...

    def post_note(self, ticket_id: str, text: str) -> NoteResult:
        """Add an internal (agent-only) note to the ticket."""
        ...

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether a recent note on the ticket contains `marker`; None when that is unknown."""
        ...


_MODULES = {"zendesk": "capture_bridge.helpdesks.zendesk"}


def supported_helpdesks() -> tuple[str, ...]:
    return tuple(sorted(_MODULES))


def get_adapter(name: str, settings: Settings, http: HttpClient) -> HelpdeskAdapter:
    """The adapter for the helpdesk `name`; raises `UnknownHelpdesk` for any other name."""
    module_name = _MODULES.get(name)
    if module_name is None:
        raise UnknownHelpdesk(
            f"unknown helpdesk {name[:40]!r}; supported: {', '.join(supported_helpdesks())}"
        )
    adapter: HelpdeskAdapter = importlib.import_module(module_name).adapter(settings, http)
    return adapter


def choose_action(
    explicit: str | None, tags: Iterable[str], default: str, allowed: Iterable[str]
) -> str:
    """The `action` field if given, else the first action tag, else the default."""
    allowed = tuple(allowed)
    if explicit:
        if explicit not in allowed:
            raise InvalidRequest(f"unknown action {explicit[:60]!r}; allowed: {', '.join(allowed)}")
        return explicit
    tag_set = set(tags)
    # Fixed precedence, so that a ticket carrying several tags always gives the same action.
    for tag, action in ACTION_TAGS.items():
        if tag in tag_set:
            return action
    return default
