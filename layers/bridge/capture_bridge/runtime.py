"""The objects a warm function reuses between invocations, built on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

from capture_bridge.capture import CallBudget, CaptureProvider, get_provider, requests_for
from capture_bridge.capture_flow import RetryPolicy
from capture_bridge.helpdesks import HelpdeskAdapter, get_adapter
from capture_bridge.http import HttpClient, get_http_client
from capture_bridge.models import CaptureRequest, TicketRequest
from capture_bridge.session_store import SessionStore
from capture_bridge.settings import Settings, get_settings


@dataclass(frozen=True)
class Runtime:
    """Settings and the clients built from them."""

    settings: Settings
    store: SessionStore
    http: HttpClient

    @property
    def policy(self) -> RetryPolicy:
        settings = self.settings
        return RetryPolicy(
            poll=_seconds(settings.poll_seconds),
            user_retry=_seconds(settings.user_retry_seconds),
            max_wait=settings.capture_max_wait,
        )

    def helpdesk(self, name: str) -> HelpdeskAdapter:
        """The adapter for helpdesk `name`; raises `UnknownHelpdesk`."""
        return get_adapter(name, self.settings, self.http)

    def provider(self, name: str, budget: CallBudget = CallBudget.BACKGROUND) -> CaptureProvider:
        """The capture provider `name`, timing its calls for `budget`; raises `UnknownProvider`."""
        return get_provider(name, self.settings, self.http, budget)

    def capture_requests(self, ticket: TicketRequest) -> list[CaptureRequest]:
        """Every capture the ticket asks for; raises `InvalidRequest`."""
        return requests_for(ticket, self.settings, self.http)


def _seconds(count: int) -> timedelta:
    return timedelta(seconds=count)


_lock = threading.Lock()
_stores: dict[str, SessionStore] = {}


def build_runtime(settings: Settings, *, store: SessionStore | None = None) -> Runtime:
    """A runtime for `settings`, reusing the store (and its DynamoDB client) per table."""
    if store is None:
        with _lock:
            store = _stores.setdefault(settings.table_name, SessionStore(settings.table_name))
    return Runtime(settings, store, get_http_client())


def get_runtime() -> Runtime:
    """The runtime for the current settings (which refresh themselves periodically)."""
    return build_runtime(get_settings())
