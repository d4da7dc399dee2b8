"""template.yaml: SAM's own validation, cfn-lint, and the invariants we keep by test, not memory."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from local_runner.template import Intrinsic
from tests.template.conftest import ROOT, TEMPLATE, resources, sam_cli


def test_sam_validate_lint() -> None:
    env = os.environ | {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SAM_CLI_TELEMETRY": "0",
    }
    result = subprocess.run(  # noqa: S603 - fixed arguments, our own template
        [sam_cli(), "validate", "--lint", "--template-file", str(TEMPLATE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint() -> None:
    from cfnlint.api import lint_all  # type: ignore[import-untyped]

    # Errors and warnings, as the cfn-lint command reports by default.
    matches = lint_all(TEMPLATE.read_text())
    assert [str(m) for m in matches if m.rule.id[0] in "EW"] == []


def test_functions_are_arm64_python313_with_a_shared_layer(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    layer = resources(template, "AWS::Serverless::LayerVersion")["BridgeLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").exists()


def test_every_function_has_an_explicit_log_group_with_retention(
    template: dict[str, Any],
) -> None:
    log_groups = resources(template, "AWS::Logs::LogGroup")
    for name, function in resources(template, "AWS::Serverless::Function").items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"].value
        assert group in log_groups, name
        assert "RetentionInDays" in log_groups[group]["Properties"]


def test_every_asynchronous_source_has_a_failure_destination_and_an_alarm(
    template: dict[str, Any],
) -> None:
    resolver = template["Resources"]["ResolverFunction"]["Properties"]
    tick = resolver["Events"]["Tick"]["Properties"]
    assert tick["ScheduleExpression"] == "rate(1 minute)"
    assert "RetryPolicy" in tick
    queue = tick["DeadLetterConfig"]["Arn"].value[0]
    assert resolver["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    watched = [
        d["Value"].value[0]
        for alarm in alarms
        for d in alarm["Properties"].get("Dimensions", [])
        if isinstance(d["Value"], Intrinsic) and d["Value"].name == "Fn::GetAtt"
    ]
    assert queue in watched


def test_no_wildcard_resources_and_no_crud_policy_templates(template: dict[str, Any]) -> None:
    for name, function in resources(template, "AWS::Serverless::Function").items():
        for policy in function["Properties"]["Policies"]:
            assert isinstance(policy, dict) and "Statement" in policy, name
            for statement in policy["Statement"]:
                assert statement["Resource"] != "*", name
                actions = statement["Action"]
                actions = actions if isinstance(actions, list) else [actions]
                assert not any(action.endswith("*") for action in actions), name
                assert "dynamodb:Scan" not in actions, name


def test_table_has_pitr_ttl_on_demand_and_a_sparse_due_index(template: dict[str, Any]) -> None:
    table = template["Resources"]["SessionsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    from capture_bridge.session_store import DUE_INDEX, INDEX_PARTITION, LIST_SORT_KEY

    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    keys = {name: [k["AttributeName"] for k in i["KeySchema"]] for name, i in indexes.items()}
    assert keys == {
        DUE_INDEX: ["due_bucket", "next_check_at"],
        **{index.value: [partition, LIST_SORT_KEY] for index, partition in INDEX_PARTITION.items()},
    }
    # The due index is read for keys only; listings read whole sessions in one Query.
    assert indexes[DUE_INDEX]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    for index in INDEX_PARTITION:
        assert indexes[index.value]["Projection"] == {"ProjectionType": "ALL"}


def integration_keys() -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Every registered integration: its name, settings, and secret keys (optional ones too)."""
    from capture_bridge.capture import provider_specs
    from capture_bridge.helpdesks import helpdesk_specs

    found = [(spec.name, spec.settings, spec.secret_keys) for spec in provider_specs()]
    return found + [
        (spec.name, spec.settings, (*spec.secret_keys, *spec.optional_keys))
        for spec in helpdesk_specs()
    ]


def test_every_integration_setting_is_a_parameter_and_no_secret_is(
    template: dict[str, Any],
) -> None:
    # Settings come from parameters; secret keys only from the secret, so a new integration's
    # keys touch no template. `sam local` gets them in one variable, declared empty
    # (tests/template/test_local_env.py).
    from capture_bridge.api import sessions
    from capture_bridge.settings import LOCAL_SECRET_VARIABLE

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for name, settings, keys in integration_keys():
        assert set(settings) <= set(variables), name
        assert not set(keys) & set(variables), name
    assert not set(sessions.SECRET_KEYS) & set(variables)
    assert variables[LOCAL_SECRET_VARIABLE] == ""
    for parameter in template["Parameters"]:
        assert not any(word in parameter.lower() for word in ("token", "key", "secret"))


def test_every_secret_key_is_documented_where_its_owner_is() -> None:
    # Each integration's keys are rows of its own page's settings table; the bridge's own keys
    # are rows of the README's configuration table, marked as kept in the secret.
    from capture_bridge.api import sessions as sessions_api
    from capture_bridge.capture import provider_specs
    from capture_bridge.helpdesks import helpdesk_specs

    pages = [(ROOT / "docs" / "helpdesks" / f"{spec.name}.md", spec) for spec in helpdesk_specs()]
    for page, spec in pages:
        rows = [line for line in page.read_text().splitlines() if line.startswith("| `")]
        for key in (*spec.settings, *spec.secret_keys, *spec.optional_keys):
            assert any(row.startswith(f"| `{key}` |") for row in rows), (page.name, key)
    for provider in provider_specs():
        page = ROOT / "docs" / "sources" / f"{provider.name}.md"
        rows = [line for line in page.read_text().splitlines() if line.startswith("| `")]
        for key in (*provider.settings, *provider.secret_keys):
            assert any(row.startswith(f"| `{key}` |") for row in rows), (page.name, key)
    readme = [line for line in (ROOT / "README.md").read_text().splitlines() if line[:1] == "|"]
    for key in sessions_api.SECRET_KEYS:
        row = next((line for line in readme if line.startswith(f"| `{key}` |")), "")
        assert "| yes |" in row, key


def test_a_stack_update_never_overwrites_the_secret(template: dict[str, Any]) -> None:
    # A SecretString (or a generated one) in the template is written into the live secret
    # whenever it changes, blanking the credentials an operator put there.
    secret = template["Resources"]["BridgeSecret"]["Properties"]
    assert "SecretString" not in secret
    assert "GenerateSecretString" not in secret


def test_a_capture_start_the_webhook_begins_ends_before_it_times_out(
    template: dict[str, Any],
) -> None:
    # A start cut off by the function's timeout would be failed as interrupted: the webhook begins
    # one only within INLINE_START_SECONDS, and Bugpilot's interactive start (the only capture a
    # webhook starts) then ends, every call at its timeout, with seconds to spare for the save.
    from capture_bridge.capture import CallBudget
    from capture_bridge.capture.bugpilot import ACTION_TIMEOUTS
    from capture_bridge.intake import INLINE_START_SECONDS

    timeout = template["Resources"]["WebhookFunction"]["Properties"]["Timeout"]
    worst_start = sum(ACTION_TIMEOUTS[CallBudget.INTERACTIVE])
    assert INLINE_START_SECONDS + worst_start + 1.5 < timeout


def test_claim_lease_outlives_every_function(template: dict[str, Any]) -> None:
    from capture_bridge.capture_flow import CLAIM_LEASE

    for function in resources(template, "AWS::Serverless::Function").values():
        assert function["Properties"]["Timeout"] < CLAIM_LEASE.total_seconds()


def test_a_resolver_run_has_time_for_a_session_and_its_note(template: dict[str, Any]) -> None:
    from capture_bridge.resolver import NOTE_BUDGET_MS, SESSION_BUDGET_MS

    timeout = template["Resources"]["ResolverFunction"]["Properties"]["Timeout"]
    assert timeout * 1000 >= SESSION_BUDGET_MS + NOTE_BUDGET_MS


def test_webhook_route_and_output(template: dict[str, Any]) -> None:
    events = template["Resources"]["WebhookFunction"]["Properties"]["Events"]
    assert events["Webhook"]["Properties"]["Path"] == "/webhooks/{helpdesk}"
    assert events["Webhook"]["Properties"]["Method"] == "POST"
    # one base for every helpdesk: no output names a single helpdesk's URL
    assert "WebhookUrl" not in template["Outputs"]
    base_url = template["Outputs"]["WebhookBaseUrl"]["Value"]
    assert base_url.name == "Fn::Sub"
    assert base_url.value.endswith("/webhooks/")


def _sessions_routes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        resource["Properties"]["RouteKey"]: resource["Properties"]
        for resource in resources(template, "AWS::ApiGatewayV2::Route").values()
    }


def test_the_sessions_routes_use_iam_by_default_and_the_webhook_never(
    template: dict[str, Any],
) -> None:
    # Given the parameter that chooses the sessions API's authorisation
    parameter = template["Parameters"]["SessionsApiAuth"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("iam", ["iam", "token"])
    condition = template["Conditions"]["SessionsApiUsesIam"]
    assert condition == Intrinsic("Fn::Equals", [Intrinsic("Ref", "SessionsApiAuth"), "iam"])
    # Then both sessions routes (ANY, so that the function answers 405) take AWS_IAM in iam mode
    # and no authorizer in token mode, and reach the sessions function
    routes = _sessions_routes(template)
    assert set(routes) == {"ANY /sessions", "ANY /sessions/{sessionId}"}
    integration = resources(template, "AWS::ApiGatewayV2::Integration")["SessionsIntegration"]
    assert integration["Properties"]["IntegrationUri"].value == ["SessionsFunction", "Arn"]
    for route in routes.values():
        assert route["AuthorizationType"] == Intrinsic(
            "Fn::If", ["SessionsApiUsesIam", "AWS_IAM", "NONE"]
        )
        assert route["Target"] == Intrinsic("Fn::Sub", "integrations/${SessionsIntegration}")
    # And the webhook keeps no authorizer: it checks Zendesk's signature itself
    webhook = template["Resources"]["WebhookFunction"]["Properties"]["Events"]["Webhook"]
    assert "Auth" not in webhook["Properties"]
    # And the function knows the mode, and the CLI finds the URL and the mode in the outputs
    sessions = template["Resources"]["SessionsFunction"]["Properties"]
    variables = sessions["Environment"]["Variables"]
    assert variables["SESSIONS_API_AUTH"] == Intrinsic("Ref", "SessionsApiAuth")
    assert {"SessionsApiUrl", "SessionsApiAuth"} <= set(template["Outputs"])
    # And API Gateway may invoke it for the sessions paths only
    permission = resources(template, "AWS::Lambda::Permission")["SessionsInvokePermission"]
    assert permission["Properties"]["SourceArn"].value.endswith("${HttpApi}/*/*/sessions*")


# --- the work queue and its worker ---------------------------------------------------------


def worker_event(template: dict[str, Any]) -> dict[str, Any]:
    events = template["Resources"]["WorkerFunction"]["Properties"]["Events"]
    (event,) = events.values()
    assert event["Type"] == "SQS"
    properties: dict[str, Any] = event["Properties"]
    return properties


def test_a_worker_begins_every_session_of_its_batch_at_once(template: dict[str, Any]) -> None:
    from capture_bridge.worker import MAX_BATCH

    # given the worker's event source mapping
    event = worker_event(template)
    # then it reads the work queue in batches no larger than the worker's pool, without waiting
    # to fill them, and reports each failed message alone
    assert event["Queue"] == Intrinsic("Fn::GetAtt", ["WorkQueue", "Arn"])
    assert event["BatchSize"] <= MAX_BATCH
    assert event["MaximumBatchingWindowInSeconds"] == 0
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # and how many workers run at once is a stated parameter
    concurrency = event["ScalingConfig"]["MaximumConcurrency"]
    assert concurrency == Intrinsic("Ref", "WorkerMaximumConcurrency")
    assert template["Parameters"]["WorkerMaximumConcurrency"]["MinValue"] >= 2


def test_a_worker_has_time_for_a_session_its_note_and_their_waits(
    template: dict[str, Any],
) -> None:
    from capture_bridge.resolver import MAX_TOKEN_WAIT, NOTE_BUDGET_MS, SESSION_BUDGET_MS
    from capture_bridge.worker import EARLY_WAIT_SECONDS

    # given the worker's timeout
    timeout_ms = template["Resources"]["WorkerFunction"]["Properties"]["Timeout"] * 1000
    # then a reminder taken early, its session's step, its note's turn and its note all fit
    waits_ms = 1000 * (EARLY_WAIT_SECONDS + MAX_TOKEN_WAIT.total_seconds())
    assert timeout_ms >= SESSION_BUDGET_MS + NOTE_BUDGET_MS + waits_ms


def test_a_message_comes_back_only_after_its_worker_and_its_claim_are_gone(
    template: dict[str, Any],
) -> None:
    from capture_bridge.capture_flow import CLAIM_LEASE

    # given the work queue and the worker
    queue = template["Resources"]["WorkQueue"]["Properties"]
    timeout = template["Resources"]["WorkerFunction"]["Properties"]["Timeout"]
    # then a message is redelivered only after six times the worker's timeout (Lambda's advice),
    # when a dead worker's claim has lapsed, so the next worker takes its session over
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["VisibilityTimeout"] > CLAIM_LEASE.total_seconds()
    # and one failing again and again ends in the dead-letter queue, which an alarm watches
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == Intrinsic("Fn::GetAtt", ["WorkDeadLetterQueue", "Arn"])
    assert 1 < redrive["maxReceiveCount"] <= 10
    for name in ("WorkQueue", "WorkDeadLetterQueue"):
        assert template["Resources"][name]["Properties"]["SqsManagedSseEnabled"] is True


def test_every_function_that_saves_a_session_may_send_its_reminder(
    template: dict[str, Any],
) -> None:
    # given the functions' environment and policies
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    # then every function knows the work queue
    assert variables["WORK_QUEUE_URL"] == Intrinsic("Ref", "WorkQueue")
    for name in ("WebhookFunction", "SessionsFunction", "ResolverFunction", "WorkerFunction"):
        statements = template["Resources"][name]["Properties"]["Policies"][0]["Statement"]
        sends = [
            s
            for s in statements
            if "sqs:SendMessage"
            in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        ]
        # and may send to it, and to it alone
        assert [s["Resource"] for s in sends] == [Intrinsic("Fn::GetAtt", ["WorkQueue", "Arn"])], (
            name
        )
