"""The operations side of template.yaml: alarms that reach someone, names that carry the stack
name, the metric contract, the dashboard, tracing, the required Zendesk setting, the runbook."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

from local_runner.template import Intrinsic
from tests.template.conftest import ROOT, resources

RUNBOOK = ROOT / "docs" / "operations.md"
ALARM = "AWS::CloudWatch::Alarm"
TOPIC = "AlarmTopic"
STACK_NAME = "${AWS::StackName}"
CLOUDWATCH = "cloudwatch.amazonaws.com"
NAMESPACE = "CaptureBridge"

#: The metric contract shared with the emitting side (capture_bridge): namespace CaptureBridge,
#: the `service` dimension = the stack name. Names must not change without both sides.
METRIC_CONTRACT = frozenset(
    {
        "CapturesRequested",
        "ActionsSent",
        "UserOfflineRetries",
        "ReportsReady",
        "NotesPosted",
        "NotesUndeliverable",
        "CapturesTimedOut",
        "CapturesFinished",
        "CapturesFailed",
        "WebhookRefused",
        "UpstreamThrottled",
        "ConfigurationErrors",
        "SessionErrors",
        "ResolverRuns",
        "RequestToNoteSeconds",
    }
)
#: Dimension sets every metric is emitted with, and the extra ones some metrics have.
COMMON_DIMENSION_SETS = (frozenset({"service"}), frozenset({"service", "helpdesk", "provider"}))
EXTRA_DIMENSION_SETS = {
    "CapturesFailed": frozenset({"service", "reason"}),
    "WebhookRefused": frozenset({"service", "reason"}),
    "ConfigurationErrors": frozenset({"service", "reason"}),
    "UpstreamThrottled": frozenset({"service", "upstream"}),
}
WEBHOOK_REFUSAL_REASONS = frozenset({"unauthorized", "bad_request", "too_large"})

#: Every alarm the issue asks for: logical id -> (name suffix, namespace, metric name).
#: The timed-out ratio is metric math over two metrics, so it has no single metric.
EXPECTED_ALARMS: dict[str, tuple[str, str | None, str | None]] = {
    "WebhookErrorsAlarm": ("webhook-errors", "AWS/Lambda", "Errors"),
    "ResolverErrorsAlarm": ("resolver-errors", "AWS/Lambda", "Errors"),
    "Webhook5xxAlarm": ("webhook-5xx", "AWS/ApiGateway", "5xx"),
    "ResolverDeadLetterAlarm": ("dead-letters", "AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    "ResolverNotRunningAlarm": ("resolver-not-running", NAMESPACE, "ResolverRuns"),
    "ConfigurationErrorsAlarm": ("configuration-errors", NAMESPACE, "ConfigurationErrors"),
    "NotesUndeliverableAlarm": ("notes-undeliverable", NAMESPACE, "NotesUndeliverable"),
    "TimedOutRatioAlarm": ("timed-out-ratio", None, None),
    "SignatureRefusalsAlarm": ("signature-refusals", NAMESPACE, "WebhookRefused"),
    "SessionsErrorsAlarm": ("sessions-api-errors", "AWS/Lambda", "Errors"),
    "WorkDeadLetterAlarm": ("work-dead-letters", "AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    "WorkBacklogAlarm": ("work-backlog", "AWS/SQS", "ApproximateAgeOfOldestMessage"),
}
TREAT_MISSING_DATA = frozenset({"breaching", "notBreaching", "ignore", "missing"})
RESOLVER_SILENCE_SECONDS = 600
ONE_HOUR = 3600
FIVE_MINUTES = 300

_PLACEHOLDER_RE = re.compile(r"\$\{([^}!][^}]*)\}")
_SEARCHED_METRIC_RE = re.compile(r'MetricName=\\?"(\w+)\\?"')


def ref(name: str) -> Intrinsic:
    return Intrinsic("Ref", name)


def sub_text(value: Any) -> str:
    """The text of a `!Sub` (either form); fails the test on anything else."""
    assert isinstance(value, Intrinsic), value
    assert value.name == "Fn::Sub", value
    return str(value.value[0] if isinstance(value.value, list) else value.value)


def alarm_suffix(properties: dict[str, Any]) -> str:
    name = sub_text(properties["AlarmName"])
    assert name.startswith(f"{STACK_NAME}-"), name
    return name.removeprefix(f"{STACK_NAME}-")


def custom_metrics(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """The CaptureBridge metrics an alarm reads: its own, or those of its metric math."""
    if "MetricName" in properties:
        metrics = [properties]
    else:
        metrics = [m["MetricStat"]["Metric"] for m in properties["Metrics"] if "MetricStat" in m]
    return [m for m in metrics if m["Namespace"] == NAMESPACE]


@pytest.fixture(scope="module")
def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: alarm["Properties"] for name, alarm in resources(template, ALARM).items()}


# --- the alarms ----------------------------------------------------------------------------


def test_the_template_has_exactly_the_alarms_asked_for(alarms: dict[str, Any]) -> None:
    # given the alarms in the template
    # when their logical ids, name suffixes and metrics are read
    found = {
        name: (alarm_suffix(p), p.get("Namespace"), p.get("MetricName"))
        for name, p in alarms.items()
    }
    # then they are the specified ones
    assert found == EXPECTED_ALARMS


def test_every_alarm_publishes_to_the_topic_and_treats_missing_data_deliberately(
    alarms: dict[str, Any],
) -> None:
    for name, properties in alarms.items():
        # given an alarm
        # then it notifies the topic when it fires and when it clears
        assert ref(TOPIC) in properties["AlarmActions"], name
        assert ref(TOPIC) in properties.get("OKActions", []), name
        # and says what missing data means for it
        assert properties["TreatMissingData"] in TREAT_MISSING_DATA, name


def test_every_alarm_description_points_to_its_runbook_section(alarms: dict[str, Any]) -> None:
    for name, properties in alarms.items():
        # given an alarm's description (a plain string, or a !Sub of one)
        description = properties["AlarmDescription"]
        text = description if isinstance(description, str) else sub_text(description)
        # then it links the runbook section named after the alarm
        assert f"docs/operations.md#stack-{alarm_suffix(properties)}" in text, name


def test_alarm_names_are_unique(alarms: dict[str, Any]) -> None:
    suffixes = [alarm_suffix(p) for p in alarms.values()]
    assert len(suffixes) == len(set(suffixes))


def test_alarms_read_only_metrics_of_the_contract_with_their_dimensions(
    alarms: dict[str, Any],
) -> None:
    for name, properties in alarms.items():
        for metric in custom_metrics(properties):
            # given a custom metric an alarm reads
            metric_name = metric["MetricName"]
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            # then it is in the contract
            assert metric_name in METRIC_CONTRACT, name
            # and reads a dimension set the metric is emitted with
            allowed = {*COMMON_DIMENSION_SETS, EXTRA_DIMENSION_SETS.get(metric_name)}
            assert frozenset(dimensions) in allowed, name
            # of this stack only
            assert dimensions["service"] == ref("AWS::StackName"), name


def test_the_resolver_not_running_alarm_fires_on_ten_silent_minutes(
    alarms: dict[str, Any],
) -> None:
    # given the heartbeat alarm
    alarm = alarms["ResolverNotRunningAlarm"]
    # then no data is a failure, and 10 minutes of it (every period of the window) fire it
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["Period"] * alarm["EvaluationPeriods"] == RESOLVER_SILENCE_SECONDS
    assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"]
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "Sum",
        "LessThanThreshold",
        1,
    )


def test_one_configuration_error_or_undeliverable_note_fires_at_once(
    alarms: dict[str, Any],
) -> None:
    for name in ("ConfigurationErrorsAlarm", "NotesUndeliverableAlarm"):
        # given an alarm that must page on the first occurrence
        alarm = alarms[name]
        # then one in one 5-minute period is enough
        assert (alarm["Period"], alarm["EvaluationPeriods"]) == (FIVE_MINUTES, 1), name
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", name
        assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1), name


def test_the_timed_out_ratio_needs_enough_finished_captures_in_an_hour(
    alarms: dict[str, Any],
) -> None:
    # given the ratio alarm's metric math
    alarm = alarms["TimedOutRatioAlarm"]
    by_id = {m["Id"]: m for m in alarm["Metrics"]}
    inputs = {i: m["MetricStat"] for i, m in by_id.items() if "MetricStat" in m}
    [expression] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    text = sub_text(expression["Expression"])
    # then it divides timed-out captures by finished ones over an hour
    assert {i: s["Metric"]["MetricName"] for i, s in inputs.items()} == {
        "timedout": "CapturesTimedOut",
        "finished": "CapturesFinished",
    }
    assert all((s["Period"], s["Stat"]) == (ONE_HOUR, "Sum") for s in inputs.values())
    assert "timedout, 0) / FILL(finished, 0)" in " ".join(text.split())
    # only when enough captures finished, else 0 (one timeout of one capture does not page)
    assert text.startswith("IF(FILL(finished, 0) >= ${TimedOutRatioMinCaptures}")
    assert alarm["Threshold"] == ref("TimedOutRatioThreshold")
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_signature_refusals_count_only_unauthorized_calls(
    template: dict[str, Any], alarms: dict[str, Any]
) -> None:
    # given the refusal spike alarm
    alarm = alarms["SignatureRefusalsAlarm"]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    # then it counts 401s of this stack over 5 minutes, above a parameter
    assert dimensions["reason"] == "unauthorized"
    assert dimensions["reason"] in WEBHOOK_REFUSAL_REASONS
    assert alarm["Period"] == FIVE_MINUTES
    assert alarm["Threshold"] == ref("SignatureRefusalsThreshold")
    assert "SignatureRefusalsThreshold" in template["Parameters"]


def test_aws_metric_alarms_watch_this_stacks_resources(alarms: dict[str, Any]) -> None:
    # given the alarms on AWS metrics, by their only dimension
    watched = {
        name: {d["Name"]: d["Value"] for d in p["Dimensions"]}
        for name, p in alarms.items()
        if p.get("Namespace", "").startswith("AWS/")
    }
    # then each watches the function, API or queue of this stack
    assert watched == {
        "WebhookErrorsAlarm": {"FunctionName": ref("WebhookFunction")},
        "ResolverErrorsAlarm": {"FunctionName": ref("ResolverFunction")},
        "SessionsErrorsAlarm": {"FunctionName": ref("SessionsFunction")},
        # HTTP APIs publish 4xx/5xx with the dimension ApiId (REST APIs: ApiName, 5XXError).
        "Webhook5xxAlarm": {"ApiId": ref("HttpApi")},
        "ResolverDeadLetterAlarm": {
            "QueueName": Intrinsic("Fn::GetAtt", ["ResolverDeadLetterQueue", "QueueName"])
        },
        "WorkDeadLetterAlarm": {
            "QueueName": Intrinsic("Fn::GetAtt", ["WorkDeadLetterQueue", "QueueName"])
        },
        "WorkBacklogAlarm": {"QueueName": Intrinsic("Fn::GetAtt", ["WorkQueue", "QueueName"])},
    }


# --- the alarm topic -----------------------------------------------------------------------


def test_the_alarm_topic_is_not_encrypted_with_an_aws_managed_key(template: dict[str, Any]) -> None:
    # given the alarm topic
    topic = template["Resources"][TOPIC]["Properties"]
    # then CloudWatch can publish to it: an AWS-managed key (alias/aws/sns) refuses CloudWatch
    key = topic.get("KmsMasterKeyId")
    assert not (isinstance(key, str) and key.startswith("alias/aws/")), key


def test_the_topic_policy_lets_this_accounts_alarms_publish(template: dict[str, Any]) -> None:
    # given the topic policy
    [policy] = resources(template, "AWS::SNS::TopicPolicy").values()
    properties = policy["Properties"]
    assert properties["Topics"] == [ref(TOPIC)]
    # when the statement allowing CloudWatch is looked up
    [statement] = [
        s
        for s in properties["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": CLOUDWATCH}
    ]
    # then it allows publishing to the topic, for this account only
    assert statement["Action"] in ("sns:Publish", ["sns:Publish"])
    assert statement["Resource"] == ref(TOPIC)
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ref("AWS::AccountId")


def test_the_topic_policy_covers_every_alarm_name(
    template: dict[str, Any], alarms: dict[str, Any]
) -> None:
    # given the alarm ARN pattern the topic policy allows
    [policy] = resources(template, "AWS::SNS::TopicPolicy").values()
    [statement] = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": CLOUDWATCH}
    ]
    pattern = sub_text(statement["Condition"]["ArnLike"]["aws:SourceArn"])
    prefix = pattern.removesuffix("*").rsplit(":alarm:", 1)[1]
    # then every alarm's name matches it: a name outside it would be dropped without a word
    for name, properties in alarms.items():
        assert sub_text(properties["AlarmName"]).startswith(prefix), name


def test_the_email_subscription_is_optional_and_its_confirmation_is_explained(
    template: dict[str, Any],
) -> None:
    # given the subscription and the outputs
    subscription = template["Resources"]["AlarmEmailSubscription"]
    notifications = template["Outputs"]["AlarmNotifications"]["Value"]
    # then the subscription exists only with an address
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    # and an output tells the user to confirm it (or to subscribe someone)
    assert notifications.name == "Fn::If"
    with_email, without_email = notifications.value[1], notifications.value[2]
    assert "confirmation email" in sub_text(with_email)
    assert "AlarmTopicArn" in without_email
    assert "AlarmTopicArn" in template["Outputs"]


# --- names carry the stack name --------------------------------------------------------------


def test_the_schedule_alarms_and_dashboard_are_named_after_the_stack(
    template: dict[str, Any], alarms: dict[str, Any]
) -> None:
    # given the names SAM or CloudFormation would otherwise pick, or fix for every stack
    tick = template["Resources"]["ResolverFunction"]["Properties"]["Events"]["Tick"]
    [dashboard] = resources(template, "AWS::CloudWatch::Dashboard").values()
    names = [
        tick["Properties"]["Name"],
        dashboard["Properties"]["DashboardName"],
        *(p["AlarmName"] for p in alarms.values()),
    ]
    # then each carries the stack name, so staging and prod can share an account and region
    for name in names:
        assert STACK_NAME in sub_text(name), name


# --- service name, metrics namespace and tracing ---------------------------------------------


def test_metrics_are_namespaced_and_dimensioned_by_the_stack(template: dict[str, Any]) -> None:
    # given the functions' shared environment
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    # then Powertools names the service after the stack and writes into the contract namespace
    assert variables["POWERTOOLS_SERVICE_NAME"] == ref("AWS::StackName")
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE


def test_tracing_is_a_parameter_applied_to_both_functions(template: dict[str, Any]) -> None:
    # given the Tracing parameter
    parameter = template["Parameters"]["Tracing"]
    # then it chooses X-Ray's mode for every function through Globals
    assert set(parameter["AllowedValues"]) == {"Active", "PassThrough"}
    assert parameter["Default"] in parameter["AllowedValues"]
    assert template["Globals"]["Function"]["Tracing"] == ref("Tracing")
    for name, function in resources(template, "AWS::Serverless::Function").items():
        assert "Tracing" not in function["Properties"], name


def test_no_code_imports_the_powertools_tracer() -> None:
    # given every module the functions ship
    sources = [
        *(ROOT / "layers" / "bridge" / "capture_bridge").rglob("*.py"),
        *(ROOT / "functions").rglob("*.py"),
    ]
    assert sources
    for source in sources:
        # when its imports are read
        imported: set[str] = set()
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        # then none is the Tracer (130-200 ms of cold start); Lambda's own tracing is enough
        assert not any(
            name.startswith("aws_lambda_powertools.tracing") or name.endswith(".Tracer")
            for name in imported
        ), source


# --- no helpdesk is required ----------------------------------------------------------------


def test_no_helpdesk_is_required_by_the_template(template: dict[str, Any]) -> None:
    # given the template's parameters and rules
    parameter = template["Parameters"]["ZendeskSubdomain"]
    pattern = re.compile(parameter["AllowedPattern"])
    # then a stack for another helpdesk deploys without Zendesk's subdomain
    assert parameter["Default"] == ""
    assert "Rules" not in template
    # and a given subdomain is the plain name, never a URL
    assert pattern.fullmatch("acme")
    assert not pattern.fullmatch("acme.zendesk.com")
    assert not pattern.fullmatch("https://acme.zendesk.com")
    assert "ConstraintDescription" in parameter


# --- dashboard -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as CloudFormation renders it, with placeholders for deploy values."""
    [resource] = resources(template, "AWS::CloudWatch::Dashboard").values()
    text = sub_text(resource["Properties"]["DashboardBody"])
    known = (
        set(template["Parameters"]) | set(template["Resources"]) | {"AWS::Region", STACK_NAME[2:-1]}
    )
    for placeholder in _PLACEHOLDER_RE.findall(text):
        assert placeholder.split(".", 1)[0] in known, placeholder
    rendered = _PLACEHOLDER_RE.sub("placeholder", text).replace("${!", "${")
    body: dict[str, Any] = json.loads(rendered)
    return body


def _metric_widgets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [w["properties"] for w in dashboard["widgets"] if w["type"] == "metric"]


def test_the_dashboard_body_is_json_in_the_stacks_region(template: dict[str, Any]) -> None:
    # given the body's text before substitution
    [resource] = resources(template, "AWS::CloudWatch::Dashboard").values()
    text = sub_text(resource["Properties"]["DashboardBody"])
    # when CloudFormation has substituted the placeholders (the `dashboard` fixture's job)
    body = json.loads(_PLACEHOLDER_RE.sub(lambda m: f"<{m.group(1)}>", text).replace("${!", "${"))
    # then it is a JSON dashboard whose every metric widget is in the stack's region
    widgets = _metric_widgets(body)
    assert widgets
    assert all(widget["region"] == "<AWS::Region>" for widget in widgets)


def test_the_dashboard_reads_only_contract_metrics(dashboard: dict[str, Any]) -> None:
    for widget in _metric_widgets(dashboard):
        for metric in widget["metrics"]:
            # given a metric line: [namespace, name, dims..., options] or [{expression}]
            if isinstance(metric[0], dict):
                names = _SEARCHED_METRIC_RE.findall(metric[0]["expression"])
                assert names, metric
            elif metric[0] == NAMESPACE:
                names = [metric[1]]
            else:
                continue
            # then every custom metric it reads is in the contract
            assert set(names) <= METRIC_CONTRACT, widget["title"]


def test_the_dashboard_shows_the_flow_failures_latency_and_upstreams(
    dashboard: dict[str, Any],
) -> None:
    # given the metric widgets by title
    widgets = {w["title"]: w for w in _metric_widgets(dashboard)}

    def names(title_start: str) -> list[str]:
        [widget] = [w for t, w in widgets.items() if t.startswith(title_start)]
        return [m[1] if isinstance(m[0], str) else m[0]["expression"] for m in widget["metrics"]]

    # then the flow is one time series of the four steps, and their totals stand beside it
    flow = ["CapturesRequested", "ActionsSent", "ReportsReady", "NotesPosted"]
    assert names("Flow") == flow
    assert names("Totals")[:4] == flow
    # failures are split by reason, request-to-note time shows p50/p95/p99
    assert "CapturesFailed" in names("Failures")[0]
    [latency] = [w for t, w in widgets.items() if t.startswith("Request to note")]
    assert [m[-1]["stat"] for m in latency["metrics"]] == ["p50", "p95", "p99"]
    # upstream 429s by upstream, webhook 5xx and function errors, configuration errors, refusals
    assert "UpstreamThrottled" in names("Upstream")[0]
    assert {"5xx", "Errors"} <= set(names("Errors"))
    assert "ConfigurationErrors" in names("Configuration")[0]
    assert "WebhookRefused" in names("Webhook refusals")[0]


def test_the_dashboard_shows_every_alarm(template: dict[str, Any], alarms: dict[str, Any]) -> None:
    # given the alarm widget's entries in the unrendered body
    [resource] = resources(template, "AWS::CloudWatch::Dashboard").values()
    text = sub_text(resource["Properties"]["DashboardBody"])
    # then every alarm of the template is on it
    for name in alarms:
        assert f'"${{{name}.Arn}}"' in text, name


# --- runbook -----------------------------------------------------------------------------------


def test_the_runbook_has_a_section_for_every_alarm(alarms: dict[str, Any]) -> None:
    # given the runbook's headings
    runbook = RUNBOOK.read_text()
    headings = {
        line.lstrip("#").strip() for line in runbook.splitlines() if line.startswith("### ")
    }
    assert "## Alarms" in runbook.splitlines()
    for name, properties in alarms.items():
        # then each alarm has a section named after it (its anchor is what the alarm links)
        assert f"`<stack>-{alarm_suffix(properties)}`" in headings, name
        # which names its logical id too
        assert f"`{name}`" in runbook, name


def test_the_runbook_names_no_alarm_the_template_lacks(alarms: dict[str, Any]) -> None:
    # given the alarm sections of the runbook
    runbook = RUNBOOK.read_text()
    documented = set(re.findall(r"^### `<stack>-([a-z0-9-]+)`$", runbook, flags=re.MULTILINE))
    # then they are exactly the template's alarms
    assert documented == {alarm_suffix(p) for p in alarms.values()}
