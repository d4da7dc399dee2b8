"""The objects a warm function reuses between invocations, built on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from capture_bridge.capture import CaptureProvider, get_provider
from capture_bridge.helpdesks import HelpdeskAdapter, get_adapter
from capture_bridge.http import HttpClient, get_http_client
from capture_bridge.session_store import SessionStore
from capture_bridge.settings import Settings, get_settings


@dataclass(frozen=True)
class Runtime:
    """Settings and the clients built from them."""

    settings: Settings
    store: SessionStore
    http: HttpClient
    provider: CaptureProvider

    def helpdesk(self, name: str) -> HelpdeskAdapter:
        """The adapter for helpdesk `name`; raises `UnknownHelpdesk`."""
        return get_adapter(name, self.settings, self.http)


_lock = threading.Lock()
_stores: dict[str, SessionStore] = {}


def build_runtime(settings: Settings, *, store: SessionStore | None = None) -> Runtime:
    """A runtime for `settings`, reusing the store (and its DynamoDB client) per table."""
    if store is None:
        with _lock:
            store = _stores.setdefault(settings.table_name, SessionStore(settings.table_name))
    http = get_http_client()
    return Runtime(settings, store, http, get_provider(settings, http))


def get_runtime() -> Runtime:
    """The runtime for the current settings (which refresh themselves periodically)."""
    return build_runtime(get_settings())
