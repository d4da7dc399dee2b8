"""The webhook end to end: Zendesk's signed call in, the session stored, Bugpilot asked once."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from capture_bridge import settings as settings_module
from capture_bridge.errors import NothingToCapture
from capture_bridge.helpdesks import supported_helpdesks
from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import SessionStore
from capture_bridge.settings import SECRET_CACHE_SECONDS, SECRET_REREAD_FLOOR_SECONDS
from capture_bridge.webhook import receive
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from tests.conftest import (
    START,
    WEBHOOK_SECRET,
    Webhook,
    load_event,
    runtime_with,
    signed_headers,
    trigger_body,
)


def table_items(table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return items


class TestAccepted:
    def test_stores_the_session_and_asks_bugpilot(
        self, webhook: Webhook, runtime: Runtime, bugpilot: BugpilotSimulator
    ) -> None:
        # Given a connected user
        bugpilot.connect_user("user-42")
        # When Zendesk calls
        answer = webhook.send(trigger_body())
        # Then
        assert answer.status == 202
        assert answer.body["status"] == "pending"
        assert answer.body["duplicate"] is False
        session = runtime.store.get(answer.body["session_id"])
        assert session is not None
        assert session.status is SessionStatus.PENDING
        assert (session.helpdesk, session.ticket_id, session.user_id) == (
            "zendesk",
            "1001",
            "user-42",
        )
        assert session.action == "upload-session"
        assert session.reference == bugpilot.session_info_url(
            bugpilot.workspace_id, bugpilot.tokens[0]
        )
        assert session.attempts == 1
        assert session.claim_id is None
        assert session.next_check_at == START + timedelta(seconds=30)
        assert session.deadline_at == START + timedelta(minutes=30)
        assert len(bugpilot.requests("action")) == 1

    def test_through_the_lambda_handler_with_the_events_file(
        self,
        configured: dict[str, str],
        bugpilot: BugpilotSimulator,
        lambda_context: Any,
    ) -> None:
        from local_runner.events import signed_event
        from webhook_handler import lambda_handler

        bugpilot.connect_user("user-42")
        event = load_event("webhook_zendesk")
        # API Gateway base64-encodes some bodies; the signature covers the decoded bytes.
        event["body"] = base64.b64encode(event["body"].encode()).decode()
        event["isBase64Encoded"] = True
        event = signed_event(event, configured)

        response = lambda_handler(event, lambda_context)

        assert response["statusCode"] == 202
        assert response["headers"]["Content-Type"] == "application/json"
        assert json.loads(response["body"])["status"] == "pending"
        assert len(bugpilot.requests("action")) == 1

    def test_request_is_stored_before_bugpilot_is_called(
        self, webhook: Webhook, runtime: Runtime, bugpilot: BugpilotSimulator, table: str
    ) -> None:
        seen: list[int] = []
        real = runtime.provider("bugpilot")

        class Spy:
            def start(self, session: Any) -> Any:
                sessions = [i for i in table_items(table) if i["pk"]["S"].startswith("session#")]
                seen.append(len(sessions))
                return real.start(session)

        object.__setattr__(runtime, "provider", lambda name, **_: Spy())
        webhook.send(trigger_body())
        assert seen == [1]


class TestBugpilotOutcomesAtIntake:
    def test_offline_user_waits(self, webhook: Webhook, runtime: Runtime) -> None:
        answer = webhook.send(trigger_body())
        assert answer.body["status"] == "waiting_for_user"
        session = runtime.store.get(answer.body["session_id"])
        assert session is not None
        assert session.error == "USER_NOT_CONNECTED"
        assert session.next_check_at == START + timedelta(minutes=3)

    @pytest.mark.parametrize(
        ("script", "code"),
        [
            ((401, "INVALID_API_KEY"), "INVALID_API_KEY"),
            ((403, "NO_ACCESS"), "NO_ACCESS"),
            ((400, "MISSING_FIELDS"), "MISSING_FIELDS"),
            ((400, "INVALID_ACTION"), "INVALID_ACTION"),
        ],
    )
    def test_configuration_errors_fail_and_owe_a_note(
        self,
        webhook: Webhook,
        runtime: Runtime,
        bugpilot: BugpilotSimulator,
        script: tuple[int, str],
        code: str,
    ) -> None:
        bugpilot.script("action", *script)
        answer = webhook.send(trigger_body())
        assert (answer.status, answer.body["status"]) == (202, "failed")
        session = runtime.store.get(answer.body["session_id"])
        assert session is not None
        assert (session.error, session.note_state) == (code, NoteState.PENDING)
        assert session.next_check_at == START

    @pytest.mark.parametrize(
        ("status", "error", "retry_after", "delay"),
        [(500, "INTERNAL_ERROR", None, 30), (503, None, None, 30), (429, None, 120, 120)],
    )
    def test_upstream_failures_are_left_to_the_resolver(
        self,
        webhook: Webhook,
        runtime: Runtime,
        bugpilot: BugpilotSimulator,
        status: int,
        error: str | None,
        retry_after: int | None,
        delay: int,
    ) -> None:
        bugpilot.script("action", status, error, retry_after=retry_after)
        answer = webhook.send(trigger_body())
        assert answer.body["status"] == "requested"
        session = runtime.store.get(answer.body["session_id"])
        assert session is not None
        assert session.next_check_at == START + timedelta(seconds=delay)
        assert session.claim_id is None

    def test_bugpilot_down_still_stores_the_request(self, env: dict[str, str], clock: Any) -> None:
        with BugpilotSimulator() as gone:
            dead_url = gone.url
        webhook = Webhook(runtime_with(env, BUGPILOT_API_URL=dead_url), clock)
        answer = webhook.send(trigger_body())
        assert (answer.status, answer.body["status"]) == (202, "requested")
        assert webhook.runtime.store.get(answer.body["session_id"]) is not None


# A Zendesk retry long after the first attempt (its signature's window is long past).
RETRY_AFTER_AN_OUTAGE_MINUTES = 30


class TestIdempotency:
    def test_replayed_delivery_triggers_bugpilot_once(
        self, webhook: Webhook, bugpilot: BugpilotSimulator, clock: Any
    ) -> None:
        bugpilot.connect_user("user-42")
        body = trigger_body()
        headers = signed_headers(body, clock())
        first = webhook.send(body, headers)
        clock.advance(seconds=40)
        again = webhook.send(body, headers)
        assert again.status == 202
        assert again.body == {
            "session_id": first.body["session_id"],
            "status": "pending",
            "duplicate": True,
            "sessions": [
                {
                    "session_id": first.body["session_id"],
                    "provider": "bugpilot",
                    "status": "pending",
                    "duplicate": True,
                }
            ],
        }
        assert len(bugpilot.requests("action")) == 1

    def test_same_ticket_and_action_while_open_is_one_capture(
        self, webhook: Webhook, bugpilot: BugpilotSimulator, clock: Any
    ) -> None:
        first = webhook.send(trigger_body())
        clock.advance(seconds=5)
        # A new delivery (new timestamp, tags in another order) for the same ticket and action.
        second = webhook.send(trigger_body(tags="vip bugpilot_session"))
        assert second.body["session_id"] == first.body["session_id"]
        assert second.body["duplicate"] is True
        assert len(bugpilot.requests("action")) == 1

    def test_another_action_on_the_same_ticket_is_a_new_capture(
        self, webhook: Webhook, bugpilot: BugpilotSimulator
    ) -> None:
        first = webhook.send(trigger_body())
        second = webhook.send(trigger_body(tags="bugpilot_screenshot"))
        assert second.body["session_id"] != first.body["session_id"]
        assert len(bugpilot.requests("action")) == 2

    def test_a_late_retry_of_an_invocation_signed_afresh_is_the_same_delivery(
        self, webhook: Webhook, bugpilot: BugpilotSimulator, clock: Any
    ) -> None:
        # given a delivery whose capture ended at once (the open-capture guard is free again)
        bugpilot.script("action", 401, "INVALID_API_KEY")
        body = trigger_body()
        invocation = {"x-zendesk-webhook-invocation-id": "8350205582"}
        first = webhook.send(body, signed_headers(body, clock()) | invocation)
        assert first.body["status"] == "failed"
        # when Zendesk retries that invocation half an hour later, signed with a new timestamp
        clock.advance(minutes=RETRY_AFTER_AN_OUTAGE_MINUTES)
        again = webhook.send(body, signed_headers(body, clock()) | invocation)
        # then it is recognised as the same delivery: no second capture is asked for
        assert again.status == 202
        assert again.body["session_id"] == first.body["session_id"]
        assert again.body["duplicate"] is True
        assert len(bugpilot.requests("action")) == 1

    def test_a_failed_capture_frees_the_ticket_for_a_new_request(
        self, webhook: Webhook, bugpilot: BugpilotSimulator, clock: Any
    ) -> None:
        bugpilot.script("action", 401, "INVALID_API_KEY")
        first = webhook.send(trigger_body())
        clock.advance(seconds=1)
        second = webhook.send(trigger_body())
        assert first.body["status"] == "failed"
        assert second.body["session_id"] != first.body["session_id"]

    def test_concurrent_deliveries_give_one_session(
        self, webhook: Webhook, bugpilot: BugpilotSimulator
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        body = trigger_body()
        headers = signed_headers(body, webhook.clock())
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda _: webhook.send(body, headers), range(6)))
        assert {a.status for a in answers} == {202}
        assert len({a.body["session_id"] for a in answers}) == 1
        assert len(bugpilot.requests("action")) == 1


def _bad(body: bytes, **kwargs: Any) -> tuple[bytes, dict[str, Any]]:
    return body, kwargs


class TestRefusals:
    """Bad input: a clear 4xx, nothing stored, nothing sent."""

    @pytest.fixture(autouse=True)
    def _nothing_changes(
        self, table: str, bugpilot: BugpilotSimulator, zendesk: ZendeskSimulator
    ) -> Any:
        yield
        assert table_items(table) == []
        assert bugpilot.requests() == []
        assert zendesk.requests() == []

    @pytest.mark.parametrize(
        ("headers", "message"),
        [
            ({}, "missing webhook signature headers"),
            (
                {"x-zendesk-webhook-signature": "x", "x-zendesk-webhook-signature-timestamp": ""},
                "missing",
            ),
            ("forged", "does not match"),
            ("stale", "too old"),
            ("future", "in the future"),
        ],
    )
    def test_unauthenticated(
        self, webhook: Webhook, clock: Any, headers: Any, message: str
    ) -> None:
        body = trigger_body()
        if headers == "forged":
            headers = signed_headers(body, clock(), secret="guess")
        elif headers == "stale":
            headers = signed_headers(body, clock() - timedelta(minutes=6))
        elif headers == "future":
            headers = signed_headers(body, clock() + timedelta(minutes=6))
        answer = webhook.send(body, headers)
        assert answer.status == 401
        assert message in answer.body["error"]

    def test_no_secret_configured_fails_closed(self, env: dict[str, str], clock: Any) -> None:
        webhook = Webhook(runtime_with(env, ZENDESK_WEBHOOK_SECRET=""), clock)
        body = trigger_body()
        answer = webhook.send(body, signed_headers(body, clock(), secret=""))
        assert answer.status == 401
        assert "not configured" in answer.body["error"]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (b"\xff\xfe\x00", "body is not valid JSON"),
            (trigger_body(ticket_id=None), "ticket_id is required"),
            (
                trigger_body(requester_email=None, requester_external_id=""),
                "or requester_email is required to identify the Bugpilot user",
            ),
            (trigger_body(action="format-disk"), "allowed: upload-session"),
            # A lone surrogate, as a JSON escape and as raw bytes: no store can keep it.
            (trigger_body(requester_external_id="x\ud800y"), "requester_external_id is not valid"),
            (
                trigger_body(description="x").replace(b'"x"', b'"x\xed\xa0\x80y"'),
                "description is not valid UTF-8",
            ),
            (trigger_body(tags=["ok", "x\udfff"]), "tags is not valid UTF-8"),
        ],
    )
    def test_bad_bodies(self, webhook: Webhook, body: bytes, message: str) -> None:
        answer = webhook.send(body)
        assert answer.status == 400
        assert message in answer.body["error"]

    def test_unknown_helpdesk(self, webhook: Webhook) -> None:
        answer = webhook.send(trigger_body(), helpdesk="kayako")
        assert answer.status == 404
        assert f"supported: {', '.join(supported_helpdesks())}" in answer.body["error"]

    def test_oversized_body(self, webhook: Webhook) -> None:
        answer = webhook.send(trigger_body(description="x" * 70_000))
        assert answer.status == 413

    def test_body_that_is_not_utf8_text(self, runtime: Runtime) -> None:
        from capture_bridge.webhook import receive

        answer = receive(
            "zendesk", {}, '{"a": "\ud800"}', is_base64=False, runtime_factory=lambda: runtime
        )
        assert answer.status == 400
        assert "UTF-8" in answer.body["error"]

    def test_bad_base64(self, runtime: Runtime) -> None:
        from capture_bridge.webhook import receive

        answer = receive("zendesk", {}, "***", is_base64=True, runtime_factory=lambda: runtime)
        assert answer.status == 400
        assert "base64" in answer.body["error"]

    @pytest.mark.usefixtures("configured")
    def test_handler_with_missing_pieces_answers_4xx(self, lambda_context: Any) -> None:
        from webhook_handler import lambda_handler

        event = load_event("webhook_zendesk")
        del event["pathParameters"]
        event["body"] = None
        response = lambda_handler(event, lambda_context)
        assert response["statusCode"] == 404


class TestNothingToCapture:
    """A proven call that asks for nothing (a vendor's ping): 200, nothing stored, nothing sent."""

    @pytest.fixture(autouse=True)
    def _ping_only(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Zendesk's adapter, verifying as always, whose body is an event asking for no capture.
        real = Runtime.helpdesk

        class PingOnly:
            name = "zendesk"

            def __init__(self, inner: Any) -> None:
                self.verify = inner.verify

            def parse(self, body: bytes) -> Any:
                raise NothingToCapture("ping")

        monkeypatch.setattr(Runtime, "helpdesk", lambda self, name: PingOnly(real(self, name)))

    def test_a_proven_ping_is_200_ignored_and_changes_nothing(
        self, webhook: Webhook, clock: Any, table: str, bugpilot: BugpilotSimulator
    ) -> None:
        # given a delivery signed with the webhook secret
        body = trigger_body()
        # when it arrives, then it is acknowledged as ignored, with nothing stored or started
        answer = webhook.send(body, signed_headers(body, clock()))
        assert (answer.status, answer.body) == (200, {"ignored": "ping"})
        assert table_items(table) == []
        assert bugpilot.requests() == []

    def test_an_unproven_ping_is_still_401(self, webhook: Webhook, clock: Any) -> None:
        # given the same call signed with a guessed secret
        body = trigger_body()
        answer = webhook.send(body, signed_headers(body, clock(), secret="guess"))
        # then verification decides first: a 401, never an "ignored"
        assert answer.status == 401


class TestUnavailable:
    def test_store_down_answers_503_so_zendesk_retries(
        self, env: dict[str, str], clock: Any, bugpilot: BugpilotSimulator
    ) -> None:
        store = SessionStore("no-such-table")
        from capture_bridge.runtime import build_runtime
        from capture_bridge.settings import settings_from

        webhook = Webhook(build_runtime(settings_from(env), store=store), clock)
        answer = webhook.send(trigger_body())
        assert answer.status == 503
        assert bugpilot.requests("action") == []

    def test_misconfiguration_answers_503(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from capture_bridge.webhook import receive

        monkeypatch.delenv("TABLE_NAME", raising=False)
        answer = receive("zendesk", {}, "{}", is_base64=False)
        assert answer.status == 503
        assert "not configured" in answer.body["error"]


class FakeMonotonic:
    """The settings cache's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class TestSecretFilledInAfterSetup:
    """Zendesk's test button, pressed right after the webhook secret was put into the secret."""

    @pytest.fixture
    def deployed(
        self,
        env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        bugpilot: BugpilotSimulator,
    ) -> tuple[str, FakeMonotonic, list[str]]:
        """The deployed shape: credentials in Secrets Manager, the webhook secret not yet there."""
        credentials = {key: env[key] for key in ("BUGPILOT_WORKSPACE_ID", "BUGPILOT_API_KEY")}
        secrets = boto3.client("secretsmanager")
        secret_id = secrets.create_secret(Name="bridge", SecretString=json.dumps(credentials))[
            "ARN"
        ]
        for key, value in env.items():
            if key not in (*credentials, "ZENDESK_WEBHOOK_SECRET"):
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("BRIDGE_SECRET_ID", secret_id)
        clock = FakeMonotonic()
        monkeypatch.setattr(settings_module, "monotonic", clock)
        reads: list[str] = []
        real_read = settings_module._read_secret

        def counted(secret: str) -> dict[str, str]:
            reads.append(secret)
            return real_read(secret)

        monkeypatch.setattr(settings_module, "_read_secret", counted)
        bugpilot.connect_user("user-42")
        return secret_id, clock, reads

    @staticmethod
    def call(body: bytes = b"", headers: dict[str, str] | None = None) -> int:
        body = body or trigger_body()
        answer = receive(
            "zendesk",
            signed_headers(body, START) if headers is None else headers,
            body.decode(),
            is_base64=False,
            clock=lambda: START,
        )
        return answer.status

    def test_the_next_call_after_the_floor_is_verified_with_the_secret_read_again(
        self, deployed: tuple[str, FakeMonotonic, list[str]]
    ) -> None:
        secret_id, clock, reads = deployed
        # Given a call refused while no webhook secret was configured (settings now cached)
        assert self.call() == 401
        assert len(reads) == 1
        # When the operator puts the webhook secret in
        secret = json.loads(
            boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
        )
        boto3.client("secretsmanager").put_secret_value(
            SecretId=secret_id,
            SecretString=json.dumps(secret | {"ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET}),
        )
        # Then a call within the floor is still refused, without reading the secret again
        clock.now += SECRET_REREAD_FLOOR_SECONDS - 1
        assert self.call() == 401
        assert len(reads) == 1
        # And the first call once the floor has passed reads it once more and is accepted,
        # long before the cache would have expired
        clock.now += 1
        assert SECRET_REREAD_FLOOR_SECONDS < SECRET_CACHE_SECONDS
        assert self.call() == 202
        assert len(reads) == 2

    def test_a_flood_of_forged_calls_reads_the_secret_at_most_once_per_floor(
        self, deployed: tuple[str, FakeMonotonic, list[str]]
    ) -> None:
        _, clock, reads = deployed
        forged = {**signed_headers(trigger_body(), START, secret="forged")}
        # Given settings read a floor ago
        assert self.call(headers=forged) == 401
        clock.now += SECRET_REREAD_FLOOR_SECONDS
        # When forged calls keep coming within one floor period
        for _ in range(FORGED_CALLS):
            assert self.call(headers=forged) == 401
        # Then the secret was read once more, not once per call
        assert len(reads) == 2


FORGED_CALLS = 20
