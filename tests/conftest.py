"""Shared fixtures: no network beyond 127.0.0.1, moto's DynamoDB, the API simulators, a clock."""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from moto import mock_aws

from capture_bridge import metrics
from capture_bridge.helpdesks import (
    Headers,
    WebhookRequest,
    notes_per_minute_key,
    supported_helpdesks,
)
from capture_bridge.helpdesks.zendesk import sign_webhook
from capture_bridge.models import CaptureSession, Delivery
from capture_bridge.pacing import MAX_PER_MINUTE
from capture_bridge.resolver import RunOutcome, resolve_due_sessions
from capture_bridge.runtime import Runtime, build_runtime
from capture_bridge.session_store import SessionStore
from capture_bridge.settings import reset_settings_cache, settings_from
from capture_bridge.webhook import WebhookAnswer, receive
from local_runner.dynamodb import ensure_table
from local_runner.simulators import (
    PROVIDER_SIMULATORS,
    BugpilotSimulator,
    LambdaTestSimulator,
    NotteSimulator,
    ProviderSimulator,
    ZendeskSimulator,
)
from local_runner.template import load_template

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
WEBHOOK_SECRET = "test-webhook-secret"
START = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
P = TypeVar("P", bound=ProviderSimulator)

# Property tests: a bounded, reproducible run in `make test`; `make fuzz` runs the long one.
_PROPERTY_CHECKS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
hypothesis_settings.register_profile(
    "default", max_examples=200, derandomize=True, database=None, **_PROPERTY_CHECKS
)
hypothesis_settings.register_profile("fuzz", max_examples=5_000, **_PROPERTY_CHECKS)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"tests may only connect to 127.0.0.1, not {host!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset_settings_cache()
    # Metrics recorded by a test that flushed nothing (a step called directly) stay its own.
    metrics.discard()
    yield
    reset_settings_cache()


def load_event(name: str) -> dict[str, Any]:
    """A copy of a payload from events/, the same files `sam local invoke -e` uses."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return copy.deepcopy(event)


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def providers() -> Iterator[dict[str, ProviderSimulator]]:
    """Every capture source's simulator (PROVIDER_SIMULATORS), serving for the test."""
    with ExitStack() as stack:
        started: dict[str, ProviderSimulator] = {}
        for name, make in PROVIDER_SIMULATORS.items():
            started[name] = make().start()
            stack.callback(started[name].stop)
        yield started


def provider(providers: dict[str, ProviderSimulator], name: str, kind: type[P]) -> P:
    """The simulator registered as `name`, as the class a test drives it by."""
    simulator = providers[name]
    assert isinstance(simulator, kind), simulator
    return simulator


@pytest.fixture
def bugpilot(providers: dict[str, ProviderSimulator]) -> BugpilotSimulator:
    return provider(providers, "bugpilot", BugpilotSimulator)


@pytest.fixture
def lambdatest(providers: dict[str, ProviderSimulator]) -> LambdaTestSimulator:
    return provider(providers, "lambdatest", LambdaTestSimulator)


@pytest.fixture
def notte(providers: dict[str, ProviderSimulator]) -> NotteSimulator:
    return provider(providers, "notte", NotteSimulator)


@pytest.fixture
def zendesk() -> Iterator[ZendeskSimulator]:
    with ZendeskSimulator(email="agent@example.com", api_token="zd-test-token") as simulator:
        yield simulator


@pytest.fixture
def table() -> Iterator[str]:
    """The sessions table, created in moto from template.yaml's own definition."""
    definition = load_template(ROOT / "template.yaml").tables["SessionsTable"]
    with mock_aws():
        ensure_table(boto3.client("dynamodb", region_name="us-east-1"), definition, "sessions-test")
        yield "sessions-test"


@pytest.fixture
def env(
    table: str, providers: dict[str, ProviderSimulator], zendesk: ZendeskSimulator
) -> dict[str, str]:
    """Settings pointing at moto and the simulators (each capture source's its own)."""
    return {
        "TABLE_NAME": table,
        **{
            key: value
            for simulator in providers.values()
            for key, value in simulator.bridge_settings().items()
        },
        "ZENDESK_SUBDOMAIN": "acme",
        "ZENDESK_API_URL": zendesk.url,
        "ZENDESK_EMAIL": "agent@example.com",
        "ZENDESK_API_TOKEN": "zd-test-token",
        "ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CAPTURE_MAX_WAIT_MINUTES": "30",
        # The tests' clocks stand still while a run works, so a note's pace would sleep for
        # real: paced as fast as the bucket goes (its tests set their own pace).
        **{notes_per_minute_key(name): str(MAX_PER_MINUTE) for name in supported_helpdesks()},
    }


@pytest.fixture
def configured(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`env` exported to the process, as the Lambda handlers read it."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings_cache()
    return env


class SerializedClient:
    """A DynamoDB client whose calls take turns.

    moto's in-process backend is not thread-safe (it deep-copies items without a lock), while
    DynamoDB is. Calls from concurrent resolver runs still interleave between calls, which is
    where the races we test live.
    """

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


def store_for(table: str) -> SessionStore:
    return SessionStore(table, client=SerializedClient(boto3.client("dynamodb")))


@pytest.fixture
def runtime(env: dict[str, str]) -> Runtime:
    return build_runtime(settings_from(env), store=store_for(env["TABLE_NAME"]))


def runtime_with(env: dict[str, str], **overrides: str) -> Runtime:
    """A runtime whose settings differ from `env` by `overrides`."""
    return build_runtime(settings_from(env | overrides), store=store_for(env["TABLE_NAME"]))


def trigger_body(**fields: Any) -> bytes:
    """The README's Zendesk trigger body, with `fields` changed (None removes a field)."""
    body: dict[str, Any] = {
        "ticket_id": "1001",
        "requester_email": "ada@example.com",
        "requester_external_id": "user-42",
        "tags": "bugpilot_session vip",
    }
    body.update(fields)
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def signed_headers(body: bytes, at: datetime, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    timestamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "content-type": "application/json",
        "x-zendesk-webhook-signature": sign_webhook(secret, timestamp, body),
        "x-zendesk-webhook-signature-timestamp": timestamp,
    }


# How long the tests' webhook deliveries are remembered, unless a test says otherwise.
TEST_DELIVERY_MEMORY = timedelta(hours=1)


def webhook_delivery(fingerprint: str, remember_for: timedelta = TEST_DELIVERY_MEMORY) -> Delivery:
    """A webhook delivery as an adapter's `verify` returns it."""
    return Delivery(fingerprint, remember_for)


def webhook_request(
    headers: dict[str, str],
    body: bytes,
    *,
    helpdesk: str = "zendesk",
    method: str = "POST",
    query_string: str = "",
) -> WebhookRequest:
    """A webhook call as the webhook hands it to an adapter's `verify`."""
    return WebhookRequest(
        method=method,
        path=f"/webhooks/{helpdesk}",
        headers=Headers(headers),
        body=body,
        query_string=query_string,
    )


@dataclass
class Webhook:
    """Sends webhook calls through the same code path the Lambda handler uses."""

    runtime: Runtime
    clock: Clock

    def send(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        helpdesk: str = "zendesk",
    ) -> WebhookAnswer:
        try:
            text, is_base64 = body.decode(), False
        except UnicodeDecodeError:
            # API Gateway passes bodies that are not UTF-8 text base64-encoded.
            text, is_base64 = base64.b64encode(body).decode(), True
        return receive(
            helpdesk,
            signed_headers(body, self.clock()) if headers is None else headers,
            text,
            is_base64=is_base64,
            runtime_factory=lambda: self.runtime,
            clock=self.clock,
        )


@pytest.fixture
def webhook(runtime: Runtime, clock: Clock) -> Webhook:
    return Webhook(runtime, clock)


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context, with a countdown."""

    function_name: str = "capture-bridge-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:capture-bridge-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    remaining_ms: int = 90_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


# Enough time left for every due session: the resolver defers nothing.
PLENTY_MS = 90_000


@dataclass
class Desk:
    """The webhook, the resolver and every simulator, as a support team sees them."""

    runtime: Runtime
    clock: Clock
    zendesk: ZendeskSimulator
    bugpilot: BugpilotSimulator
    lambdatest: LambdaTestSimulator
    notte: NotteSimulator

    def send(self, body: bytes, runtime: Runtime | None = None) -> dict[str, Any]:
        """A signed webhook call that must be accepted; returns its 202 body."""
        answer = Webhook(runtime or self.runtime, self.clock).send(body)
        assert answer.status == 202, answer.body
        return answer.body

    def run(self, runtime: Runtime | None = None) -> dict[RunOutcome, int]:
        """One resolver run; what it did, by outcome."""
        summary = resolve_due_sessions(runtime or self.runtime, lambda: PLENTY_MS, self.clock)
        return dict(summary.outcomes)

    def session(self, session_id: str) -> CaptureSession:
        session = self.runtime.store.get(session_id)
        assert session is not None
        return session

    def run_when_due(
        self, session_id: str, runtime: Runtime | None = None
    ) -> dict[RunOutcome, int]:
        """Move the clock to the session's next check (if ahead) and run."""
        due = self.session(session_id).next_check_at
        assert due is not None
        self.clock.now = max(due, self.clock.now)
        return self.run(runtime)

    def notes(self, ticket: str = "1001") -> list[str]:
        return [str(comment["body"]) for comment in self.zendesk.comments(ticket)]


@pytest.fixture
def desk(
    runtime: Runtime,
    clock: Clock,
    zendesk: ZendeskSimulator,
    bugpilot: BugpilotSimulator,
    lambdatest: LambdaTestSimulator,
    notte: NotteSimulator,
) -> Desk:
    return Desk(runtime, clock, zendesk, bugpilot, lambdatest, notte)
