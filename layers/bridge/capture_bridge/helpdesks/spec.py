"""The typed spec each helpdesk declares (`SPEC = HelpdeskSpec(...)`).

Imported by the helpdesk modules, so only with the first helpdesk a function serves; the rest of
the bridge reads specs through `helpdesks.helpdesk_spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from capture_bridge.helpdesks import HelpdeskAdapter, WebhookRequest

if TYPE_CHECKING:
    from capture_bridge.access import AccessCheck
    from capture_bridge.http import HttpClient
    from capture_bridge.settings import Settings

# Signs or authenticates a webhook call as the helpdesk would: the headers to send with it.
RequestSigner = Callable[[Mapping[str, str], WebhookRequest, datetime], dict[str, str]]
# Makes a sample body current (a signed timestamp inside it) before it is signed again.
BodyRefresher = Callable[[bytes, datetime], bytes]


def unchanged_body(body: bytes, now: datetime) -> bytes:
    """The `fresh_body` of helpdesks whose freshness is not in the body: the body as it is."""
    return body


@dataclass(frozen=True)
class HelpdeskSpec:
    """Everything the bridge, its operators' tools and the local runner know of one helpdesk."""

    # The name in the webhook path (`/webhooks/<name>`) and on every session.
    name: str
    # Builds the adapter from the settings: `adapter(settings, http)`.
    adapter: Callable[[Settings, HttpClient], HelpdeskAdapter]
    # One read-only call proving the stored credentials (`ops doctor`); never in the request path.
    probe: Callable[[Settings, HttpClient], AccessCheck]
    # The settings its notes need that are not set (none: it can write notes); no call is made.
    # The sessions API refuses a capture on a helpdesk that could never get its note.
    unconfigured: Callable[[Settings], list[str]]
    # The headers the helpdesk would send with a call (the local runner's `sign-event`, tests);
    # raises `SecretNotConfigured` naming the key when its secret is missing.
    sign_request: RequestSigner
    # The secret key its webhooks are checked against (the doctor names it when missing).
    webhook_secret_key: str
    # Keys read from the bridge secret, all needed.
    secret_keys: tuple[str, ...]
    # The longest a note can take, every call at its timeouts (the resolver's time budget).
    longest_note_seconds: float
    # The longest a requester look-up can take, every call at its timeouts (none: never looks
    # one up, the payload names them).
    longest_lookup_seconds: float = 0.0
    # Notes a minute to one account when `<NAME>_NOTES_PER_MINUTE` is not set: the vendor's
    # lowest documented plan limit with a margin (its docs page says which, and why).
    notes_per_minute: int = 60
    # Settings read from the functions' environment (template parameters).
    settings: tuple[str, ...] = ()
    # Keys read from the secret too, with defaults.
    optional_keys: tuple[str, ...] = ()
    # Makes a sample body current before it is signed again, for bodies carrying their own time.
    fresh_body: BodyRefresher = unchanged_body
