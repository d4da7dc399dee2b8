"""The HTTP API's edge: JSON access logs, throttles, the webhook's reserved concurrency, encrypted
queues, and a Checkov run whose every waived check says why (docs/operations.md, "Floods")."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from local_runner.template import Intrinsic
from tests.template.conftest import ROOT, TEMPLATE, checkov_cli, resources

RUNBOOK = ROOT / "docs" / "operations.md"
DEPLOY = ROOT / "docs" / "deploy.md"
CHECK_ID = re.compile(r"^CKV2?_AWS_\d+$")

#: What the runbook's queries read from an access log line: field -> API Gateway variable.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "latency": "$context.responseLatency",
    "integrationError": "$context.integrationErrorMessage",
    "sourceIp": "$context.identity.sourceIp",
}
EDGE_PARAMETERS = (
    "ApiThrottlingRateLimit",
    "ApiThrottlingBurstLimit",
    "WebhookThrottlingRateLimit",
    "WebhookThrottlingBurstLimit",
    "WebhookReservedConcurrency",
)


def ref(name: str) -> Intrinsic:
    return Intrinsic("Ref", name)


def _api(template: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"]["HttpApi"]["Properties"]
    return properties


def _webhook_route_key(template: dict[str, Any]) -> str:
    event = template["Resources"]["WebhookFunction"]["Properties"]["Events"]["Webhook"]
    return f"{event['Properties']['Method']} {event['Properties']['Path']}"


def test_access_logs_are_json_lines_with_what_the_runbook_reads(template: dict[str, Any]) -> None:
    # given the stage's access log format
    settings = _api(template)["AccessLogSettings"]
    log_format = settings["Format"]
    # when API Gateway fills in its variables, quotes included (a missing one becomes "-")
    line = re.sub(r"\$context\.[A-Za-z.]+", 'a "quoted" -', log_format)
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)  # values are not escaped: only whole variables inside quotes are safe
    line = re.sub(r"\$context\.[A-Za-z.]+", "-", log_format)
    # then every line is one JSON object, each value a string (a "-" stays valid JSON)
    record = json.loads(line)
    assert all(value == "-" for value in record.values())
    # and it carries the request id, route, status, latency, integration error and source IP
    for field, variable in ACCESS_LOG_FIELDS.items():
        assert f'"{field}":"{variable}"' in log_format.replace(" ", ""), field


def test_access_logs_go_to_their_own_log_group_with_the_stacks_retention(
    template: dict[str, Any],
) -> None:
    settings = _api(template)["AccessLogSettings"]
    assert settings["DestinationArn"] == Intrinsic("Fn::GetAtt", ["ApiAccessLogGroup", "Arn"])
    group = resources(template, "AWS::Logs::LogGroup")["ApiAccessLogGroup"]
    assert group["Properties"]["RetentionInDays"] == ref("LogRetentionDays")
    assert group["DeletionPolicy"] == "Delete"
    # and the runbook's query says where to find it
    assert "ApiAccessLogGroupName" in template["Outputs"]
    assert "ApiAccessLogGroupName" in RUNBOOK.read_text()


def test_the_runbook_finds_forged_calls_by_source_ip_in_the_access_log() -> None:
    text = RUNBOOK.read_text()
    queries = re.findall(r"```\n(.*?)```", text, re.DOTALL)
    [forged] = [q for q in queries if 'status = "401"' in q]
    assert 'routeKey = "POST /webhooks/{helpdesk}"' in forged
    assert "by sourceIp" in forged
    lines = text.splitlines()
    assert {"## Floods and the edge", "#### Who is sending forged calls"} <= set(lines)


def test_the_stage_and_the_webhook_route_are_throttled_by_parameters(
    template: dict[str, Any],
) -> None:
    api = _api(template)
    # the stage's default (the sessions API's routes take it)
    assert api["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": ref("ApiThrottlingBurstLimit"),
        "ThrottlingRateLimit": ref("ApiThrottlingRateLimit"),
    }
    # the webhook route's own, keyed by the route the webhook event declares (and no other)
    assert api["RouteSettings"] == {
        _webhook_route_key(template): {
            "ThrottlingBurstLimit": ref("WebhookThrottlingBurstLimit"),
            "ThrottlingRateLimit": ref("WebhookThrottlingRateLimit"),
        }
    }
    parameters = template["Parameters"]
    for prefix in ("Api", "Webhook"):
        rate = parameters[f"{prefix}ThrottlingRateLimit"]
        burst = parameters[f"{prefix}ThrottlingBurstLimit"]
        assert (rate["Type"], burst["Type"]) == ("Number", "Number")
        assert rate["MinValue"] >= 1
        assert burst["MinValue"] >= 1
        # a burst below the rate would refuse a steady second's worth of calls
        assert burst["Default"] >= rate["Default"]


def test_the_sessions_routes_share_the_api_and_take_the_stage_default(
    template: dict[str, Any],
) -> None:
    routes = resources(template, "AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["ApiId"] for r in routes.values()} == {ref("HttpApi")}
    throttled = set(_api(template)["RouteSettings"])
    assert not throttled & {r["Properties"]["RouteKey"] for r in routes.values()}


def test_the_webhooks_reserved_concurrency_is_a_parameter_where_0_is_unreserved(
    template: dict[str, Any],
) -> None:
    # Lambda refuses a reservation that leaves an account fewer than 100 unreserved executions,
    # so the default deploys on any account and 0 leaves the property out altogether
    parameter = template["Parameters"]["WebhookReservedConcurrency"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 0, 0)
    assert template["Conditions"]["HasWebhookReservedConcurrency"] == Intrinsic(
        "Fn::Not", [Intrinsic("Fn::Equals", [ref("WebhookReservedConcurrency"), 0])]
    )
    webhook = template["Resources"]["WebhookFunction"]["Properties"]
    assert webhook["ReservedConcurrentExecutions"] == Intrinsic(
        "Fn::If",
        ["HasWebhookReservedConcurrency", ref("WebhookReservedConcurrency"), ref("AWS::NoValue")],
    )
    # and only the webhook reserves any
    for name, function in resources(template, "AWS::Serverless::Function").items():
        if name != "WebhookFunction":
            assert "ReservedConcurrentExecutions" not in function["Properties"], name


def test_every_queue_is_encrypted_at_rest(template: dict[str, Any]) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    assert queues
    for name, queue in queues.items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, name


def test_the_edge_parameters_are_documented_for_deploys() -> None:
    deploy = DEPLOY.read_text()
    samconfig = (ROOT / "samconfig.toml").read_text()
    runbook = RUNBOOK.read_text()
    for name in EDGE_PARAMETERS:
        assert f"`{name}`" in deploy, name
        assert name in samconfig, name
        assert f"`{name}`" in runbook, name


def _waivers(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(check id, resource) -> comment, for every check waived in the template."""
    found: dict[tuple[str, str], str] = {}
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            found[skip["id"], f"{resource['Type']}.{name}"] = skip.get("comment", "")
    return found


def test_every_checkov_waiver_names_a_check_and_says_why(template: dict[str, Any]) -> None:
    waivers = _waivers(template)
    assert waivers
    for (check_id, resource), comment in waivers.items():
        assert CHECK_ID.match(check_id), (check_id, resource)
        assert len(comment.split()) >= 8, (check_id, resource)


def test_checkov_finds_no_unwaived_failure_and_no_stale_waiver(template: dict[str, Any]) -> None:
    # when the pinned Checkov scans the template (as `make checkov` does, here as JSON)
    result = subprocess.run(  # noqa: S603 - fixed arguments, our own template
        [
            checkov_cli(),
            *("--file", str(TEMPLATE), "--framework", "cloudformation"),
            *("--skip-download", "--output", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    results = report["results"]
    # then nothing fails and everything parsed
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert result.returncode == 0, result.stderr
    # and what is skipped is exactly what the template waives, each with its comment
    skipped = {
        (c["check_id"], c["resource"]): c["check_result"]["suppress_comment"]
        for c in results["skipped_checks"]
    }
    assert skipped == _waivers(template)
    # and the checks the edge fixed pass: access logging, the webhook's concurrency limit
    passed = {(c["check_id"], c["resource"]) for c in results["passed_checks"]}
    assert ("CKV_AWS_95", "AWS::Serverless::HttpApi.HttpApi") in passed
    assert ("CKV_AWS_115", "AWS::Serverless::Function.WebhookFunction") in passed
