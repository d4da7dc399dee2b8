"""Helpdesk adapters: who asks for captures and receives the notes.

Each helpdesk is one module behind `HelpdeskAdapter`, found by the name in the webhook path.
Modules are imported on first use, so a function only pays for the helpdesks it serves.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from capture_bridge.errors import UnknownHelpdesk
from capture_bridge.models import TicketRequest

if TYPE_CHECKING:
    from capture_bridge.http import HttpClient
    from capture_bridge.settings import Settings


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
    # The helpdesk's HTTP status, when it answered at all (metrics tell 429s and 401s by it).
    status: int | None = None


class HelpdeskAdapter(Protocol):
    """Verifies a helpdesk's webhook, reads its capture request, and writes internal notes."""

    name: str

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
        """Check the sender and freshness; return a fingerprint of this delivery.

        Raises `Unauthenticated` when the proof is missing, wrong or stale.
        """
        ...

    def parse(self, body: bytes) -> TicketRequest:
        """Read a verified body: the ticket, its requester and the fields naming captures.

        Raises `InvalidRequest`; the capture providers read the fields they own.
        """
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


def helpdesk_module(name: str) -> ModuleType:
    """The module of helpdesk `name` (it declares `SETTINGS` and `SECRET_KEYS`)."""
    module_name = _MODULES.get(name)
    if module_name is None:
        raise UnknownHelpdesk(
            f"unknown helpdesk {name[:40]!r}; supported: {', '.join(supported_helpdesks())}"
        )
    return importlib.import_module(module_name)


def get_adapter(name: str, settings: Settings, http: HttpClient) -> HelpdeskAdapter:
    """The adapter for the helpdesk `name`; raises `UnknownHelpdesk` for any other name."""
    adapter: HelpdeskAdapter = helpdesk_module(name).adapter(settings, http)
    return adapter
