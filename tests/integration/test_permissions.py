"""Each function's IAM policy allows every DynamoDB call its flows make, and nothing is left out.

moto does not enforce IAM, so a missing action would pass every other test and fail in AWS.
Here every flow runs with a client that records each operation (transactions counted by their
parts, as IAM authorises them), and the records are checked against template.yaml.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest

from capture_bridge.resolver import resolve_due_sessions
from capture_bridge.runtime import Runtime, build_runtime
from capture_bridge.session_commands import CancelOutcome, NewSession, cancel, create, refresh
from capture_bridge.session_store import DUE_INDEX, SessionIndex, SessionQuery, SessionStore
from capture_bridge.settings import settings_from
from local_runner.simulators import BugpilotSimulator, LambdaTestSimulator, ZendeskSimulator
from local_runner.template import load_yaml
from tests.conftest import ROOT, Clock, SerializedClient, Webhook, signed_headers, trigger_body

LT_SESSION = "bc02fd99593f14e37850745d66197f89"
TRANSACTION_PARTS = {
    "Put": "PutItem",
    "Delete": "DeleteItem",
    "Update": "UpdateItem",
    "ConditionCheck": "ConditionCheckItem",
}


class Recorder:
    """`dynamodb:<Action>` on `table` or `index/<name>`, for every call the client makes."""

    def __init__(self) -> None:
        self.calls: set[tuple[str, str]] = set()

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            for item in params["TransactItems"]:
                for part in item:
                    self.calls.add((f"dynamodb:{TRANSACTION_PARTS[part]}", "table"))
        elif "IndexName" in params:
            self.calls.add((f"dynamodb:{model.name}", f"index/{params['IndexName']}"))
        else:
            self.calls.add((f"dynamodb:{model.name}", "table"))


def recording_runtime(env: dict[str, str], recorder: Recorder) -> Runtime:
    client = boto3.client("dynamodb")
    client.meta.events.register("provide-client-params.dynamodb.*", recorder)
    store = SessionStore(env["TABLE_NAME"], client=SerializedClient(client))
    return build_runtime(settings_from(env), store=store)


def allowed(function: str) -> set[tuple[str, str]]:
    """(action, resource) pairs the template grants `function` on the sessions table."""
    properties = load_yaml(ROOT / "template.yaml")["Resources"][function]["Properties"]
    grants: set[tuple[str, str]] = set()
    for policy in properties["Policies"]:
        for statement in policy["Statement"]:
            actions = statement["Action"]
            listed = statement["Resource"]
            for resource in listed if isinstance(listed, list) else [listed]:
                if resource.name == "Fn::GetAtt" and resource.value == ["SessionsTable", "Arn"]:
                    where = "table"
                elif resource.name == "Fn::Sub" and resource.value.startswith(
                    "${SessionsTable.Arn}/"
                ):
                    where = resource.value.removeprefix("${SessionsTable.Arn}/")
                else:
                    continue
                for action in actions if isinstance(actions, list) else [actions]:
                    grants.add((action, where))
    return grants


@pytest.fixture
def scene(
    env: dict[str, str], clock: Clock, bugpilot: BugpilotSimulator, zendesk: ZendeskSimulator
) -> tuple[Recorder, Recorder, Runtime, Runtime]:
    webhook_calls, resolver_calls = Recorder(), Recorder()
    return (
        webhook_calls,
        resolver_calls,
        recording_runtime(env, webhook_calls),
        recording_runtime(env, resolver_calls),
    )


def test_every_dynamodb_call_is_allowed_by_the_functions_policy(
    scene: tuple[Recorder, Recorder, Runtime, Runtime],
    clock: Clock,
    bugpilot: BugpilotSimulator,
) -> None:
    webhook_calls, resolver_calls, for_webhook, for_resolver = scene
    webhook = Webhook(for_webhook, clock)

    def resolve() -> None:
        resolve_due_sessions(for_resolver, lambda: 90_000, clock)

    # Webhook: accepted, replayed, same ticket again, rejected at once (guard released).
    bugpilot.connect_user("user-42")
    body = trigger_body()
    headers = signed_headers(body, clock())
    webhook.send(body, headers)
    webhook.send(body, headers)
    webhook.send(trigger_body(tags="vip bugpilot_session"))
    bugpilot.script("action", 401, "INVALID_API_KEY")
    webhook.send(trigger_body(ticket_id="1002"))
    bugpilot.script("action", 503)
    webhook.send(trigger_body(ticket_id="1003"))
    # Resolver: notes, polls, retries, a resolution (guard released), and claims lost to a race.
    for _ in range(4):
        resolve()
        clock.advance(minutes=1)
    assert for_resolver.store.claim("gone", now=clock(), lease=timedelta(minutes=5)) is None

    assert webhook_calls.calls <= allowed("WebhookFunction")
    assert resolver_calls.calls <= allowed("ResolverFunction")
    # The flows did reach the operations that matter, so the check above means something.
    assert ("dynamodb:DeleteItem", "table") in webhook_calls.calls
    assert ("dynamodb:PutItem", "table") in resolver_calls.calls
    assert ("dynamodb:DeleteItem", "table") in resolver_calls.calls
    assert ("dynamodb:Query", f"index/{DUE_INDEX}") in resolver_calls.calls


def test_policies_grant_nothing_the_code_does_not_use() -> None:
    # Least privilege, the other way round: every granted action is one the store can call.
    used_by_store = {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
    }
    for function in ("WebhookFunction", "ResolverFunction", "SessionsFunction"):
        assert {action for action, _ in allowed(function)} <= used_by_store, function


def test_the_sessions_apis_calls_are_allowed_and_use_only_the_listing_indexes(
    env: dict[str, str],
    clock: Clock,
    bugpilot: BugpilotSimulator,
    lambdatest: LambdaTestSimulator,
) -> None:
    # Given the sessions API's flows on a recording client: create (a start, a duplicate, an
    # idempotent repeat), show, refresh, list both ways (a second page), cancel
    api_calls = Recorder()
    runtime = recording_runtime(env, api_calls)
    bugpilot.connect_user("user-42")
    lambdatest.add_session(LT_SESSION, status="failed")
    bugpilot_body = NewSession("zendesk", "1001", "bugpilot", requester="user-42")
    first = create(runtime, bugpilot_body, idempotency_key="k1", clock=clock).session
    create(runtime, bugpilot_body, idempotency_key="k1", clock=clock)
    create(runtime, bugpilot_body, idempotency_key=None, clock=clock)
    lt_body = NewSession("zendesk", "1001", "lambdatest", external_session_id=LT_SESSION)
    named = create(runtime, lt_body, idempotency_key=None, clock=clock).session
    resolve_due_sessions(recording_runtime(env, Recorder()), lambda: 90_000, clock)
    resolved = runtime.store.get(named.session_id)
    assert resolved is not None
    refresh(runtime, resolved, clock)
    for query in (
        SessionQuery(SessionIndex.BY_TICKET, "zendesk#1001"),
        SessionQuery(SessionIndex.BY_STATUS, "pending"),
    ):
        page = runtime.store.list_sessions(query, limit=1)
        runtime.store.list_sessions(query, limit=1, cursor=page.cursor)
    clock.advance(minutes=1)
    assert cancel(runtime.store, first.session_id, clock).outcome is CancelOutcome.CANCELLED

    # Then every call is granted, and the flows reached the calls that matter
    assert api_calls.calls <= allowed("SessionsFunction")
    for index in SessionIndex:
        assert ("dynamodb:Query", f"index/{index.value}") in api_calls.calls
    assert ("dynamodb:Query", f"index/{DUE_INDEX}") not in allowed("SessionsFunction")
    for action in ("UpdateItem", "DeleteItem", "PutItem", "GetItem"):
        assert (f"dynamodb:{action}", "table") in api_calls.calls
