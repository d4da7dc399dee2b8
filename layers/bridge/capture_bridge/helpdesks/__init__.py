"""Helpdesk adapters: who asks for captures and receives the notes.

Each helpdesk is one module behind `HelpdeskAdapter`, found by the name in the webhook path.
Modules are imported on first use, so a function only pays for the helpdesks it serves. A module
declares `NAME`; `SETTINGS` (read from the functions' environment, so template parameters),
`SECRET_KEYS` (read from the bridge secret, all needed), `OPTIONAL_KEYS` (from the secret too, with
defaults) and `WEBHOOK_SECRET_KEY` (the one its webhooks are checked against);
`LONGEST_NOTE_SECONDS`; and defines `adapter(settings, http)`, `probe(settings, http)` and
`sign_request(values, request, now)` (and `fresh_body(body, now)` if its sample bodies carry a
time of their own). Shared rules are in `helpdesks.common`; adapters never
import each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs

from capture_bridge.errors import UnknownHelpdesk
from capture_bridge.models import Delivery, TicketRequest

if TYPE_CHECKING:
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


class HelpdeskAdapter(Protocol):
    """Verifies a helpdesk's webhook, reads its capture request, and writes internal notes.

    An adapter lives as long as the warm function and its settings (`Runtime.helpdesk`), and is
    called from several threads at once by the resolver: state it keeps (a token) is its own.
    """

    name: str

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Check the sender and freshness; return the delivery's fingerprint and memory.

        Raises `Unauthenticated` when the proof is missing, wrong or stale, and
        `SecretNotConfigured` (naming the setting) when there is nothing to check it against.
        """
        ...

    def parse(self, body: bytes) -> TicketRequest:
        """Read a verified body: the ticket, its requester and the fields naming captures.

        Raises `InvalidRequest`; the capture providers read the fields they own.
        """
        ...

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """Add an internal (agent-only) note to the ticket, in the form the helpdesk renders."""
        ...

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether a recent note on the ticket contains `marker`; None when that is unknown."""
        ...


# The registry: adding a helpdesk is one line here and its module.
_MODULES = {
    "freshdesk": "capture_bridge.helpdesks.freshdesk",
    "generic": "capture_bridge.helpdesks.generic",
    "jira": "capture_bridge.helpdesks.jira",
    "zendesk": "capture_bridge.helpdesks.zendesk",
}


def supported_helpdesks() -> tuple[str, ...]:
    return tuple(sorted(_MODULES))


def helpdesk_module(name: str) -> ModuleType:
    """The module of helpdesk `name` (see the module docstring for what it declares)."""
    module_name = _MODULES.get(name)
    if module_name is None:
        raise UnknownHelpdesk(
            f"unknown helpdesk {name[:40]!r}; supported: {', '.join(supported_helpdesks())}"
        )
    return importlib.import_module(module_name)


# Signs or authenticates a webhook call as the helpdesk would: the headers to send with it.
RequestSigner = Callable[[Mapping[str, str], WebhookRequest, datetime], dict[str, str]]


def request_signer(name: str) -> RequestSigner:
    """Helpdesk `name`'s `sign_request(values, request, now)`, for the local runner and tests.

    `values` are settings by name (its webhook secret among them); it raises
    `SecretNotConfigured` naming the setting when that is missing.
    """
    signer: RequestSigner = helpdesk_module(name).sign_request
    return signer


# Makes a sample body current (a signed timestamp inside it) before it is signed again.
BodyRefresher = Callable[[bytes, datetime], bytes]


def body_refresher(name: str) -> BodyRefresher:
    """Helpdesk `name`'s `fresh_body(body, now)` if it declares one; else the body unchanged.

    Only schemes whose freshness lives in the body (Jira's admin webhooks) need one.
    """
    refresh: BodyRefresher = getattr(helpdesk_module(name), "fresh_body", lambda body, now: body)
    return refresh


def get_adapter(name: str, settings: Settings, http: HttpClient) -> HelpdeskAdapter:
    """The adapter for the helpdesk `name`; raises `UnknownHelpdesk` for any other name."""
    adapter: HelpdeskAdapter = helpdesk_module(name).adapter(settings, http)
    return adapter
