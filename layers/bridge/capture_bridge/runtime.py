"""The objects a warm function reuses between invocations, built on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from capture_bridge.capture import CallBudget, CaptureProvider, get_provider, requests_for
from capture_bridge.helpdesks import HelpdeskAdapter, get_adapter
from capture_bridge.http import HttpClient, get_http_client
from capture_bridge.models import CaptureRequest, TicketRequest
from capture_bridge.session_store import SessionStore
from capture_bridge.settings import Settings, get_settings
from capture_bridge.work_queue import WorkQueue, work_queue

if TYPE_CHECKING:
    from capture_bridge.capture_flow import RetryPolicy

# The work queue's URL (the template sets it); unset, the scheduled run does all the work.
WORK_QUEUE_SETTING = "WORK_QUEUE_URL"


@dataclass(frozen=True)
class Runtime:
    """Settings and the clients built from them."""

    settings: Settings
    store: SessionStore
    http: HttpClient
    # Where sessions wait for their due time (`WORK_QUEUE_URL`); None: the scheduled run steps
    # the due sessions itself, as before the queue existed.
    queue: WorkQueue | None = None

    @property
    def policy(self) -> RetryPolicy:
        # Imported here: the flow's rules load with the first step that needs them, so the
        # sessions API's reads (list, show) never load them (cold start, make bench).
        from capture_bridge.capture_flow import RetryPolicy

        settings = self.settings
        return RetryPolicy(
            poll=_seconds(settings.poll_seconds),
            user_retry=_seconds(settings.user_retry_seconds),
            max_wait=settings.capture_max_wait,
        )

    def helpdesk(self, name: str) -> HelpdeskAdapter:
        """The adapter for helpdesk `name`, kept while the settings are; raises `UnknownHelpdesk`.

        An adapter lives as long as the warm function: it is built again only when the settings
        change (they are re-read every `SECRET_CACHE_SECONDS`; equal values keep it), so what it
        keeps between calls (a token) lasts while the credentials do and follows rotated ones.
        """
        return _adapters.get(name, self.settings, self.http)

    def provider(self, name: str, budget: CallBudget = CallBudget.BACKGROUND) -> CaptureProvider:
        """The capture provider `name`, timing its calls for `budget`; raises `UnknownProvider`."""
        return get_provider(name, self.settings, self.http, budget)

    def capture_requests(self, ticket: TicketRequest) -> list[CaptureRequest]:
        """Every capture the ticket asks for; raises `InvalidRequest`.

        A capture whose user the payload did not name carries the helpdesk's reference to look
        them up by.
        """
        found = requests_for(ticket, self.settings, self.http)
        if not ticket.requester_ref:
            return found
        return [
            request if request.user_id else replace(request, requester_ref=ticket.requester_ref)
            for request in found
        ]


def _seconds(count: int) -> timedelta:
    return timedelta(seconds=count)


class AdapterCache:
    """One adapter per helpdesk, for the settings and HTTP client it was built with."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Holding the settings keeps their identity from being reused by another object.
        self._built: dict[str, tuple[Settings, HttpClient, HelpdeskAdapter]] = {}

    def get(self, name: str, settings: Settings, http: HttpClient) -> HelpdeskAdapter:
        # Built under the lock, so that threads of one function share one adapter (and token).
        with self._lock:
            built = self._built.get(name)
            # Equal settings re-read from the secret keep the adapter, and any token it holds.
            if built is not None and built[1] is http and built[0] == settings:
                return built[2]
            adapter = get_adapter(name, settings, http)
            self._built[name] = (settings, http, adapter)
            return adapter

    def clear(self) -> None:
        with self._lock:
            self._built.clear()


_lock = threading.Lock()
_stores: dict[str, SessionStore] = {}
_adapters = AdapterCache()


def build_runtime(settings: Settings, *, store: SessionStore | None = None) -> Runtime:
    """A runtime for `settings`, reusing the store (and its DynamoDB client) per table."""
    if store is None:
        with _lock:
            store = _stores.setdefault(settings.table_name, SessionStore(settings.table_name))
    return Runtime(settings, store, get_http_client(), work_queue(settings.url(WORK_QUEUE_SETTING)))


def get_runtime() -> Runtime:
    """The runtime for the current settings (which refresh themselves periodically)."""
    return build_runtime(get_settings())
