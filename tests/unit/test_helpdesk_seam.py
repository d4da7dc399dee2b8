"""The helpdesk seam: the whole request to `verify`, delivery memory, adapter reuse."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from capture_bridge import settings as settings_module
from capture_bridge.errors import Unauthenticated
from capture_bridge.helpdesks import Headers, HelpdeskAdapter, WebhookRequest, zendesk
from capture_bridge.runtime import Runtime, build_runtime, get_runtime
from capture_bridge.settings import SECRET_CACHE_SECONDS, reset_settings_cache, settings_from
from capture_bridge.webhook import receive_event
from tests.conftest import START, load_event, signed_headers, trigger_body

QUERY = "token=a&token=b&empty="
PATH = "/webhooks/zendesk"
# A redelivery Zendesk could still send: inside its five-minute signature window.
WITHIN_WINDOW = timedelta(minutes=4)


@dataclass
class SpyAdapter:
    """Records what `verify` is given, then refuses (so nothing is stored)."""

    name: str = "zendesk"
    seen: list[WebhookRequest] = field(default_factory=list)

    def verify(self, request: WebhookRequest, now: datetime) -> Any:
        self.seen.append(request)
        raise Unauthenticated("spy refuses")


@dataclass(frozen=True)
class SpyRuntime(Runtime):
    spy: SpyAdapter = field(default_factory=SpyAdapter)

    def helpdesk(self, name: str) -> HelpdeskAdapter:
        return self.spy  # type: ignore[return-value]


def test_verify_sees_method_path_query_headers_and_body() -> None:
    # Given the events file's delivery, with a query string and a header in odd case
    event = load_event("webhook_zendesk")
    event["rawQueryString"] = QUERY
    event["headers"]["X-Custom-Proof"] = "proof"
    runtime = SpyRuntime(settings_from({"TABLE_NAME": "t"}), None, None)  # type: ignore[arg-type]
    # When the webhook answers the API Gateway event
    answer = receive_event(event, runtime_factory=lambda: runtime)
    # Then the adapter saw the whole call, headers looked up case-insensitively
    assert answer.status == 401
    [request] = runtime.spy.seen
    assert (request.method, request.path, request.query_string) == ("POST", PATH, QUERY)
    assert request.params == {"token": ("a", "b"), "empty": ("",)}
    assert request.headers["x-custom-proof"] == "proof"
    assert request.headers["X-CUSTOM-PROOF"] == "proof"
    assert request.body == event["body"].encode()


def test_headers_keep_every_spelling_of_a_name() -> None:
    # Given two spellings of one header; then both values are kept, in order
    headers = Headers({"X-Sig": "a", "x-sig": "b"})
    assert headers.all("X-SIG") == ("a", "b")
    assert headers["x-sig"] == "a"
    assert "x-Sig" in headers and len(headers) == 1


def test_zendesk_says_how_long_to_remember_its_delivery() -> None:
    # Given a signed Zendesk delivery; when verified
    body = trigger_body()
    settings = settings_from({"TABLE_NAME": "t", "ZENDESK_WEBHOOK_SECRET": "s"})
    adapter = zendesk.adapter(settings, None)  # type: ignore[arg-type]
    request = WebhookRequest("POST", PATH, Headers(signed_headers(body, START, "s")), body)
    delivery = adapter.verify(request, START)
    # Then its memory is Zendesk's own: past the five-minute window, with room to spare
    assert delivery.remember_for == zendesk.DELIVERY_MEMORY
    assert delivery.remember_for > zendesk.MAX_SKEW


class TestAdapterLifetime:
    def test_the_same_settings_give_the_same_adapter(self) -> None:
        # Given two runtimes built from one settings object (two warm invocations)
        settings = settings_from({"TABLE_NAME": "t"})
        first, second = build_runtime(settings), build_runtime(settings)
        # Then they share one adapter
        assert first.helpdesk("zendesk") is second.helpdesk("zendesk")

    def test_settings_read_again_unchanged_keep_the_adapter_and_its_token(self) -> None:
        # Given an adapter built from some settings
        before = build_runtime(settings_from({"TABLE_NAME": "t"})).helpdesk("zendesk")
        # When the settings are read again with the same values (a new object)
        after = build_runtime(settings_from({"TABLE_NAME": "t"})).helpdesk("zendesk")
        # Then the adapter (and whatever token it holds) is kept
        assert after is before

    def test_changed_settings_give_a_new_adapter(self) -> None:
        # Given an adapter built from some settings
        before = build_runtime(settings_from({"TABLE_NAME": "t"})).helpdesk("zendesk")
        # When the secret changes (a rotated credential)
        rotated = settings_from({"TABLE_NAME": "t", "ZENDESK_API_TOKEN": "rotated"})
        after = build_runtime(rotated).helpdesk("zendesk")
        # Then the adapter is rebuilt
        assert after is not before

    def test_the_settings_cache_period_decides_when_adapters_may_be_rebuilt(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given settings from the environment and a hand-moved cache clock
        monkeypatch.setenv("TABLE_NAME", "t")
        monkeypatch.delenv("BRIDGE_SECRET_ID", raising=False)
        clock = [1000.0]
        monkeypatch.setattr(settings_module, "monotonic", lambda: clock[0])
        reset_settings_cache()
        first = get_runtime().helpdesk("zendesk")
        # When the period has passed and nothing changed, then the adapter is kept
        clock[0] += SECRET_CACHE_SECONDS + 1
        assert get_runtime().helpdesk("zendesk") is first
        # When the period has passed again after the settings changed, then a fresh one is built
        monkeypatch.setenv("ZENDESK_API_TOKEN", "rotated")
        assert get_runtime().helpdesk("zendesk") is first
        clock[0] += SECRET_CACHE_SECONDS + 1
        assert get_runtime().helpdesk("zendesk") is not first
        reset_settings_cache()

    def test_an_adapter_module_keeps_no_hidden_globals(self) -> None:
        # Given Zendesk's module; then its only module-level state is constants and functions
        mutable = {
            name
            for name, value in vars(zendesk).items()
            if not name.startswith("__") and isinstance(value, (dict, list, set))
        }
        assert mutable == set()
