"""Helpdesk adapters: who asks for captures and receives the notes.

Each helpdesk is one module behind `HelpdeskAdapter`, found by the name in the webhook path, that
declares itself in one `SPEC = HelpdeskSpec(...)`. Modules are imported on first use, so a
function only pays for the helpdesks it serves. Shared rules are in `helpdesks.common`; adapters
never import each other. `docs/extending.md` walks through adding one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol
from urllib.parse import parse_qs

from capture_bridge.errors import UnknownHelpdesk
from capture_bridge.models import Delivery, TicketRequest

if TYPE_CHECKING:
    from capture_bridge.helpdesks.spec import HelpdeskSpec
    from capture_bridge.http import HttpClient
    from capture_bridge.notes import Note
    from capture_bridge.settings import Settings


class Headers(Mapping[str, str]):
    """HTTP headers looked up case-insensitively; every value sent under a name is kept.

    `headers[name]` is the first value; `all(name)` gives them all, so that a scheme can refuse
    spellings that disagree (`X-Signature` and `x-signature` with different values).
    """

    __slots__ = ("_values",)

    def __init__(self, pairs: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        values: dict[str, tuple[str, ...]] = {}
        for name, value in items:
            key = str(name).lower()
            values[key] = (*values.get(key, ()), str(value))
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def all(self, name: str) -> tuple[str, ...]:
        """Every value sent under `name`, in the order received; empty when none was."""
        return self._values.get(name.lower(), ())

    def __repr__(self) -> str:
        # Names only: values carry signatures and secrets.
        return f"Headers({sorted(self._values)})"


@dataclass(frozen=True)
class WebhookRequest:
    """The whole webhook call as the sender made it, for schemes that sign more than the body."""

    method: str
    path: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    # The raw query string, without the `?`, exactly as sent.
    query_string: str = ""

    @property
    def params(self) -> Mapping[str, tuple[str, ...]]:
        """The query string's parameters, each with every value it was given."""
        parsed = parse_qs(self.query_string, keep_blank_values=True)
        return {name: tuple(values) for name, values in parsed.items()}


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
    # What its rate-limit headers said, when it sent them: the calls left, and the seconds until
    # they are counted afresh (`common.rate_limit_left`). They tighten the helpdesk's note pace.
    rate_remaining: int | None = None
    rate_reset_seconds: float | None = None


class LookupOutcome(StrEnum):
    """What asking the helpdesk who a requester is came to (`capture_flow.LOOKUP_OUTCOMES`)."""

    FOUND = "found"
    # The contact does not exist, or has neither an external id nor an email.
    NOT_FOUND = "not_found"
    # Refused for a reason retrying will not fix (credentials, access).
    REJECTED = "rejected"
    # Rate limited, unreachable or failing upstream: try again later.
    RETRYABLE = "retryable"


class RequesterLookup(NamedTuple):
    """A helpdesk's answer to who the requester is: their id as capture sources know them."""

    outcome: LookupOutcome
    user: str = ""
    message: str = ""
    retry_after_seconds: int | None = None


class HelpdeskAdapter(Protocol):
    """Verifies a helpdesk's webhook, reads its capture request, and writes internal notes.

    An adapter lives as long as the warm function and its settings (`Runtime.helpdesk`), and is
    called from several threads at once by the resolver: state it keeps (a token) is its own.
    """

    name: str

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Check the sender and freshness; return the delivery's fingerprint and memory.

        Raises `Unauthenticated` when the proof is missing, wrong or stale, and
        `SecretNotConfigured` (naming the setting) when there is nothing to check it against;
        `NothingToCapture` for a proven call that asks for nothing (a vendor's ping).
        """
        ...

    def parse(self, body: bytes) -> TicketRequest | list[TicketRequest]:
        """Read a verified body: the ticket, its requester and the fields naming captures.

        A body carrying several events gives a list, each ticket with its own `delivery`.
        Raises `InvalidRequest`, or `NothingToCapture` for an event that asks for no capture;
        the capture providers read the fields they own.
        """
        ...

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """Add an internal (agent-only) note to the ticket, in the form the helpdesk renders."""
        ...

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether a recent note on the ticket contains `marker`; None when that is unknown."""
        ...

    def find_requester(self, reference: str) -> RequesterLookup:
        """Who the requester `parse` gave only a `requester_ref` for is (their external id, else
        email). Called once per capture, after it is stored; never raises for an upstream failure.
        """
        ...


# The registry: adding a helpdesk is one line here and its module (which declares `SPEC`).
_MODULES = {
    "freshdesk": "capture_bridge.helpdesks.freshdesk",
    "front": "capture_bridge.helpdesks.front",
    "generic": "capture_bridge.helpdesks.generic",
    "helpscout": "capture_bridge.helpdesks.helpscout",
    "hubspot": "capture_bridge.helpdesks.hubspot",
    "intercom": "capture_bridge.helpdesks.intercom",
    "jira": "capture_bridge.helpdesks.jira",
    "zendesk": "capture_bridge.helpdesks.zendesk",
}


def notes_per_minute_key(name: str) -> str:
    """The setting that paces notes to helpdesk `name`: `ZENDESK_NOTES_PER_MINUTE`, ...

    Each spec lists it among its `optional_keys` and defaults it (`HelpdeskSpec.notes_per_minute`).
    """
    return f"{name.upper()}_NOTES_PER_MINUTE"


def supported_helpdesks() -> tuple[str, ...]:
    return tuple(sorted(_MODULES))


def helpdesk_spec(name: str) -> HelpdeskSpec:
    """The spec of helpdesk `name`, importing its module; raises `UnknownHelpdesk` otherwise."""
    # Imported with the first integration: a handler's cold start does not build these types.
    from capture_bridge.helpdesks.spec import HelpdeskSpec

    module_name = _MODULES.get(name)
    if module_name is None:
        raise UnknownHelpdesk(
            f"unknown helpdesk {name[:40]!r}; supported: {', '.join(supported_helpdesks())}"
        )
    spec = importlib.import_module(module_name).SPEC
    if not isinstance(spec, HelpdeskSpec) or spec.name != name:
        raise TypeError(f"{module_name}.SPEC must be the HelpdeskSpec named {name!r}")
    return spec


def helpdesk_specs() -> tuple[HelpdeskSpec, ...]:
    """Every helpdesk's spec, by name (imports every module: for tools, not the request path)."""
    return tuple(helpdesk_spec(name) for name in supported_helpdesks())


def get_adapter(name: str, settings: Settings, http: HttpClient) -> HelpdeskAdapter:
    """The adapter for the helpdesk `name`; raises `UnknownHelpdesk` for any other name."""
    return helpdesk_spec(name).adapter(settings, http)
