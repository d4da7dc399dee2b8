"""What `make demo HELPDESK=…` needs from a helpdesk's simulator, whichever helpdesk it is.

Each helpdesk simulator implements `HelpdeskSimulator`; the demo finds it by name in
`HELPDESK_SIMULATORS` (in this package's `__init__`) and signs its deliveries with the adapter's
own `sign_request`, so a new helpdesk joins the demo with its simulator alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from .provider import Simulator


class HelpdeskSimulator(Simulator, Protocol):
    """A helpdesk's write-back API over real HTTP, as the demo drives it."""

    # The name in `/webhooks/<helpdesk>`.
    helpdesk: str
    # What the demo calls the sender, e.g. "Zendesk" or "Freshdesk's automation rule".
    sender: str

    def ticket_id(self, number: int) -> str:
        """The id of the demo's ticket `number` in this helpdesk's form (1001, SUP-1001, ...)."""
        ...

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        """The body the helpdesk's rule posts for the ticket, with extra capture `fields`."""
        ...

    def webhook_headers(self) -> dict[str, str]:
        """Headers the sender adds besides its proof (content type, user agent)."""
        ...

    def internal_notes(self, ticket_id: str) -> list[str]:
        """The internal (agent-only) notes on the ticket, oldest first, as posted."""
        ...


def utc_stamp() -> str:
    """Now, as Zendesk and Freshdesk write times: ``2026-01-05T09:00:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalise(ticket_id: str | int) -> str:
    """A numeric ticket id as the helpdesk keeps it ("0042" is "42"); any other id unchanged."""
    text = str(ticket_id).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text


class NumericTickets:
    """The tickets of a helpdesk whose ids are numbers: the `known` ones, or every one (None)."""

    def __init__(self, known: Iterable[str] | None) -> None:
        self._known = None if known is None else {normalise(t) for t in known}

    def __contains__(self, raw_id: str) -> bool:
        numeric = raw_id.isascii() and raw_id.isdigit()
        return numeric and (self._known is None or normalise(raw_id) in self._known)
