"""Read the SAM template into typed definitions the local runner can act on.

Everything the runner starts (functions, routes, schedules, queues and their event source
mappings, layers, tables) comes from here, so
adding a function or a route to ``template.yaml`` is enough for it to run locally too.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

#: Stack name used for local resource names when no ``samconfig.toml`` names one.
DEFAULT_STACK_NAME = "capture-bridge"
#: Pseudo-parameter values used locally (the account id is the documentation one).
LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"

# Lambda defaults that apply when neither the function nor Globals set a value.
_DEFAULT_TIMEOUT_SECONDS = 3
_DEFAULT_MEMORY_MB = 128

_RATE_RE = re.compile(
    r"^rate\(\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*\)$", re.IGNORECASE
)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_SUB_RE = re.compile(r"\$\{([^}]+)\}")
# Lambda's defaults for an SQS event source mapping.
_DEFAULT_SQS_BATCH_SIZE = 10
# Without ScalingConfig, Lambda may run up to 1,000 batches at once; one process cannot, so a
# local mapping without a cap runs this many at a time.
LOCAL_SQS_CONCURRENCY = 5
# CloudFormation properties of AWS::SQS::Queue that are SQS queue attributes, as they are.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
)


class TemplateError(ValueError):
    """The template uses something the local runner cannot represent."""


@dataclass(frozen=True)
class Intrinsic:
    """A CloudFormation intrinsic function such as ``!Ref X`` kept as a small object."""

    name: str  # the long form: "Ref", "Condition", "Fn::GetAtt", "Fn::Sub", ...
    value: Any


class CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that also accepts the CloudFormation short-form tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Intrinsic:
    """Build an :class:`Intrinsic` for any ``!Tag`` (scalar, sequence or mapping)."""
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML only has the three node kinds
        raise TemplateError(f"unexpected YAML node for !{suffix}")
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if name == "Fn::GetAtt" and isinstance(value, str):
        # The short form "!GetAtt Res.Attr" means the list form [Res, Attr].
        value = value.split(".", 1)
    return Intrinsic(name, value)


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML file, keeping intrinsic functions as objects."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    if not isinstance(data, dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no mapping at the top)")
    return data


def parse_rate(expression: str) -> float:
    """Return the period in seconds of ``rate(N unit)``; raise ``ValueError`` otherwise."""
    match = _RATE_RE.match(expression.strip())
    if not match:
        raise ValueError(f"not a rate() expression: {expression!r}")
    count = int(match.group(1))
    if count <= 0:
        raise ValueError(f"rate() needs a positive value: {expression!r}")
    unit = match.group(2).lower().rstrip("s")
    return float(count * _UNIT_SECONDS[unit])


@dataclass(frozen=True)
class HttpRoute:
    """One ``HttpApi`` event: a method and a path template such as ``/webhooks/{helpdesk}``."""

    event_name: str
    method: str  # upper case; "ANY" matches every method
    path: str  # "$default" for the catch-all route

    @property
    def route_key(self) -> str:
        """The API Gateway route key, e.g. ``POST /webhooks/{helpdesk}``."""
        if self.path == "$default":
            return "$default"
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class ScheduleDef:
    """One ``Schedule``/``ScheduleV2`` event."""

    event_name: str
    event_type: str  # "Schedule" (EventBridge rule) or "ScheduleV2" (EventBridge Scheduler)
    expression: str
    rate_seconds: float | None  # None for cron()/at(), which run only with an explicit interval
    enabled: bool = True
    input: str | None = None  # the target's constant Input (JSON text), if any


@dataclass(frozen=True)
class SqsEventDef:
    """One ``SQS`` event of a function: what its event source mapping polls, and how."""

    event_name: str
    queue: str  # the queue's logical id
    batch_size: int = _DEFAULT_SQS_BATCH_SIZE
    max_concurrency: int = LOCAL_SQS_CONCURRENCY  # ScalingConfig.MaximumConcurrency
    report_batch_item_failures: bool = False  # FunctionResponseTypes: [ReportBatchItemFailures]
    batching_window_seconds: float = 0.0  # MaximumBatchingWindowInSeconds
    enabled: bool = True


@dataclass(frozen=True)
class FunctionDef:
    """An ``AWS::Serverless::Function`` with Globals applied and values resolved locally."""

    logical_id: str
    code_uri: Path
    handler: str
    timeout: float
    memory_size: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...] = ()
    routes: tuple[HttpRoute, ...] = ()
    schedules: tuple[ScheduleDef, ...] = ()
    #: Environment variables whose template value is ``!Ref <table>`` (name -> table id).
    table_env_vars: dict[str, str] = field(default_factory=dict)
    queue_events: tuple[SqsEventDef, ...] = ()
    #: Environment variables whose template value is ``!Ref <queue>`` (name -> queue id): the
    #: runner gives them the local queue's URL.
    queue_env_vars: dict[str, str] = field(default_factory=dict)

    @property
    def module_name(self) -> str:
        """Module part of the handler: ``webhook_handler`` of ``webhook_handler.lambda_handler``."""
        return self.handler.rsplit(".", 1)[0].replace("/", ".")

    @property
    def handler_name(self) -> str:
        """Function part of the handler (``lambda_handler``)."""
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class TableDef:
    """An ``AWS::DynamoDB::Table`` turned into DynamoDB API calls."""

    logical_id: str
    name: str  # the local table name
    create_kwargs: dict[str, Any]  # for create_table, without TableName
    ttl_attribute: str | None = None  # for update_time_to_live when TTL is enabled


@dataclass(frozen=True)
class QueueDef:
    """An ``AWS::SQS::Queue`` turned into ``create_queue`` arguments."""

    logical_id: str
    name: str  # the local queue name
    attributes: dict[str, str]  # SQS attributes, RedrivePolicy (as JSON) included
    dead_letter_queue: str | None = None  # the logical id its RedrivePolicy names

    @property
    def arn(self) -> str:
        """The queue's ARN (moto's, locally: the same account and region)."""
        return queue_arn(self.name)

    @property
    def aws_url(self) -> str:
        """The URL the queue would have in AWS; the runner replaces it with the local one."""
        return f"https://sqs.{LOCAL_REGION}.amazonaws.com/{LOCAL_ACCOUNT_ID}/{self.name}"


def queue_arn(name: str) -> str:
    """The ARN of the local queue called ``name``."""
    return f"arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{name}"


@dataclass(frozen=True)
class SamTemplate:
    """What the local runner needs from a SAM template."""

    path: Path
    stack_name: str
    parameters: dict[str, str]
    functions: dict[str, FunctionDef]
    layers: dict[str, Path]
    tables: dict[str, TableDef]
    queues: dict[str, QueueDef] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """Directory the template's relative paths (CodeUri, ContentUri) start from."""
        return self.path.parent

    @property
    def layer_dirs(self) -> list[Path]:
        """Layer directories used by at least one function, in first-use order."""
        seen: dict[Path, None] = {}
        for function in self.functions.values():
            for layer_dir in function.layer_dirs:
                seen.setdefault(layer_dir, None)
        return list(seen)

    @property
    def routes(self) -> list[tuple[HttpRoute, FunctionDef]]:
        """Every HTTP route with the function that serves it."""
        return [(route, fn) for fn in self.functions.values() for route in fn.routes]


class _NoValue:
    """Marker for ``AWS::NoValue``: the property is dropped."""


_NO_VALUE = _NoValue()


class _Resolver:
    """Evaluates intrinsic functions with local stand-ins for deploy-time values."""

    def __init__(
        self,
        doc: Mapping[str, Any],
        stack_name: str,
        table_names: Mapping[str, str],
        queue_names: Mapping[str, str] | None = None,
    ):
        self._parameters: Mapping[str, Any] = doc.get("Parameters") or {}
        self._conditions: Mapping[str, Any] = doc.get("Conditions") or {}
        self._mappings: Mapping[str, Any] = doc.get("Mappings") or {}
        self._resources: Mapping[str, Any] = doc.get("Resources") or {}
        self._table_names = table_names
        self._queue_names = dict(queue_names or {})
        self._pseudo = {
            "AWS::Region": LOCAL_REGION,
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "AWS::StackName": stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stack/{stack_name}/local"
            ),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }

    def parameter_default(self, name: str) -> Any:
        """A parameter's Default ("" when it has none, as an empty override would be)."""
        default = (self._parameters.get(name) or {}).get("Default", "")
        return self.resolve(default)

    def resource_type(self, logical_id: str) -> str | None:
        """The ``Type`` of a resource, or None if there is no such resource."""
        resource = self._resources.get(logical_id)
        return resource.get("Type") if isinstance(resource, dict) else None

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic inside ``value`` (lists and mappings included)."""
        intrinsic = _as_intrinsic(value)
        if intrinsic is not None:
            return self._evaluate(intrinsic)
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if isinstance(value, dict):
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not _NO_VALUE}
        return value

    def condition(self, name: str) -> bool:
        """Evaluate a named condition from the ``Conditions`` section."""
        if name not in self._conditions:
            raise TemplateError(f"unknown condition {name!r}")
        return bool(self.resolve(self._conditions[name]))

    def _evaluate(self, intrinsic: Intrinsic) -> Any:
        name, arg = intrinsic.name, intrinsic.value
        if name == "Ref":
            return self._ref(str(arg))
        if name == "Condition":
            return self.condition(str(arg))
        if name == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else list(self.resolve(arg))
            return self._get_att(str(parts[0]), str(parts[1]))
        if name == "Fn::Sub":
            return self._sub(arg)
        if name == "Fn::Join":
            delimiter, items = arg[0], self.resolve(arg[1])
            return str(delimiter).join(_to_text(item) for item in items)
        if name == "Fn::Select":
            index, items = self.resolve(arg[0]), self.resolve(arg[1])
            return items[int(index)]
        if name == "Fn::Split":
            return str(self.resolve(arg[1])).split(str(arg[0]))
        if name == "Fn::If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self.condition(str(condition)) else when_false)
        if name == "Fn::Equals":
            left, right = (self.resolve(item) for item in arg)
            return _to_text(left) == _to_text(right)
        if name == "Fn::Not":
            return not bool(self.resolve(arg[0]))
        if name == "Fn::And":
            return all(bool(self.resolve(item)) for item in arg)
        if name == "Fn::Or":
            return any(bool(self.resolve(item)) for item in arg)
        if name == "Fn::FindInMap":
            map_name, top, second = (self.resolve(item) for item in arg[:3])
            return self._mappings[map_name][top][second]
        if name == "Fn::Base64":
            return base64.b64encode(_to_text(self.resolve(arg)).encode()).decode()
        raise TemplateError(f"{name} is not supported by the local runner")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self.parameter_default(name)
        if name in self._table_names:
            return self._table_names[name]
        if name in self._queue_names:
            # The URL it would have in AWS; the runner gives the handlers the local one.
            return (
                f"https://sqs.{LOCAL_REGION}.amazonaws.com/{LOCAL_ACCOUNT_ID}/"
                + (self._queue_names[name])
            )
        if name in self._resources:
            # Other resources (secrets, topics...) have no local counterpart: locally the
            # handlers get their values, secrets included, from environment variables only.
            return ""
        raise TemplateError(f"!Ref to unknown name {name!r}")

    def _get_att(self, resource: str, attribute: str) -> Any:
        if resource in self._table_names and attribute == "Arn":
            table = self._table_names[resource]
            return f"arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:table/{table}"
        if resource in self._queue_names:
            queue = self._queue_names[resource]
            if attribute == "Arn":
                return queue_arn(queue)
            if attribute == "QueueName":
                return queue
            if attribute == "QueueUrl":
                return self._ref(resource)
        if resource not in self._resources:
            raise TemplateError(f"!GetAtt on unknown resource {resource!r}")
        return ""

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):  # "${!Literal}" is how Sub escapes "${Literal}"
                return "${" + expression[1:] + "}"
            if expression in variables:
                return _to_text(variables[expression])
            if "." in expression:
                resource, attribute = expression.split(".", 1)
                return _to_text(self._get_att(resource, attribute))
            return _to_text(self._ref(expression))

        return _SUB_RE.sub(replace, text)


def _as_intrinsic(value: Any) -> Intrinsic | None:
    """Recognise both the short form (``!Ref X``) and the long form (``{"Ref": "X"}``)."""
    if isinstance(value, Intrinsic):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key in ("Ref", "Condition") or (isinstance(key, str) and key.startswith("Fn::")):
            return Intrinsic(key, arg)
    return None


def _to_text(value: Any) -> str:
    """Stringify a resolved value the way CloudFormation does for environment variables."""
    if value is None or value is _NO_VALUE:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stack_name(template_path: Path) -> str:
    """The stack name from ``samconfig.toml`` next to the template, else the default."""
    config_path = template_path.parent / "samconfig.toml"
    if config_path.is_file():
        try:
            config = tomllib.loads(config_path.read_text(encoding="utf-8"))
            name = (
                config.get("default", {}).get("deploy", {}).get("parameters", {}).get("stack_name")
            )
            if isinstance(name, str) and name:
                return name
        except (tomllib.TOMLDecodeError, AttributeError):
            logger.warning("ignoring unreadable %s", config_path)
    return DEFAULT_STACK_NAME


def _local_table_names(
    doc: Mapping[str, Any], stack_name: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """Pick a local name for every DynamoDB table; also return the tables' Properties."""
    tables = {
        logical_id: resource.get("Properties") or {}
        for logical_id, resource in (doc.get("Resources") or {}).items()
        if isinstance(resource, dict) and resource.get("Type") == "AWS::DynamoDB::Table"
    }
    names: dict[str, str] = {}
    for logical_id in tables:
        # One table gets the short name; several need the logical id to stay apart.
        names[logical_id] = (
            f"{stack_name}-local" if len(tables) == 1 else f"{stack_name}-{logical_id}-local"
        )
    return names, tables


def _local_queue_names(
    doc: Mapping[str, Any], stack_name: str, resolver: _Resolver
) -> dict[str, str]:
    """A local name for every SQS queue: its QueueName, else one made from the stack's."""
    names: dict[str, str] = {}
    for logical_id, resource in (doc.get("Resources") or {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::SQS::Queue":
            continue
        props = resource.get("Properties") or {}
        name = resolver.resolve(props.get("QueueName"))
        if not isinstance(name, str) or not name:
            name = f"{stack_name}-{logical_id}-local"
            if _to_text(resolver.resolve(props.get("FifoQueue"))).lower() == "true":
                name += ".fifo"
        names[logical_id] = name
    return names


def _queue_url_of(intrinsic: Intrinsic | None, queue_names: Mapping[str, str]) -> str | None:
    """The queue whose URL ``!Ref Queue`` or ``!GetAtt Queue.QueueUrl`` stands for, if any."""
    if intrinsic is None:
        return None
    if intrinsic.name == "Ref" and intrinsic.value in queue_names:
        return str(intrinsic.value)
    if intrinsic.name == "Fn::GetAtt" and isinstance(intrinsic.value, list):
        resource, attribute = (str(part) for part in intrinsic.value[:2])
        if resource in queue_names and attribute == "QueueUrl":
            return resource
    return None


def _queue_def(
    logical_id: str, name: str, props: Mapping[str, Any], by_arn: Mapping[str, str]
) -> QueueDef:
    """Translate (resolved) CloudFormation queue Properties into SQS queue attributes."""
    attributes = {
        key: _to_text(props[key]) for key in _QUEUE_ATTRIBUTES if props.get(key) is not None
    }
    dead_letter = None
    redrive = props.get("RedrivePolicy")
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    if isinstance(redrive, Mapping) and redrive.get("deadLetterTargetArn"):
        target = str(redrive["deadLetterTargetArn"])
        dead_letter = by_arn.get(target)
        if dead_letter is None:
            raise TemplateError(
                f"{logical_id}: its dead-letter queue {target} is not in the template"
            )
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": target, "maxReceiveCount": int(redrive["maxReceiveCount"])}
        )
    return QueueDef(logical_id, name, attributes, dead_letter)


def _sqs_event(
    logical_id: str, event_name: str, props: Mapping[str, Any], by_arn: Mapping[str, str]
) -> SqsEventDef:
    """An ``SQS`` event's mapping; its Queue must be one of the template's queues."""
    queue = by_arn.get(str(props.get("Queue")))
    if queue is None:
        raise TemplateError(
            f"{logical_id}: event {event_name} polls {props.get('Queue')!r}, which is not a "
            "queue of the template (!GetAtt Queue.Arn)"
        )
    scaling = props.get("ScalingConfig") or {}
    concurrency = scaling.get("MaximumConcurrency")
    return SqsEventDef(
        event_name=event_name,
        queue=queue,
        batch_size=int(props.get("BatchSize", _DEFAULT_SQS_BATCH_SIZE)),
        max_concurrency=int(concurrency) if concurrency else LOCAL_SQS_CONCURRENCY,
        report_batch_item_failures="ReportBatchItemFailures"
        in (props.get("FunctionResponseTypes") or []),
        batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        enabled=_to_text(props.get("Enabled", True)).lower() == "true",
    )


def _table_def(logical_id: str, name: str, props: Mapping[str, Any]) -> TableDef:
    """Translate CloudFormation table Properties into ``create_table`` arguments."""
    kwargs: dict[str, Any] = {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
    }
    billing_mode = props.get("BillingMode", "PROVISIONED")
    kwargs["BillingMode"] = billing_mode
    if billing_mode == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
    # CloudFormation-only keys (ContributorInsightsSpecification...) are not API arguments.
    indexes = []
    for index in props.get("GlobalSecondaryIndexes") or []:
        api_index = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        if billing_mode == "PROVISIONED":
            api_index["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
        indexes.append(api_index)
    if indexes:
        kwargs["GlobalSecondaryIndexes"] = indexes
    local_indexes = [
        {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        for index in props.get("LocalSecondaryIndexes") or []
    ]
    if local_indexes:
        kwargs["LocalSecondaryIndexes"] = local_indexes
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    ttl = props.get("TimeToLiveSpecification") or {}
    enabled = _to_text(ttl.get("Enabled")).lower() == "true"
    ttl_attribute = ttl.get("AttributeName") if enabled else None
    return TableDef(logical_id, name, kwargs, ttl_attribute)


def _throughput(value: Mapping[str, Any] | None) -> dict[str, int]:
    """Provisioned throughput as integers (CloudFormation also accepts strings)."""
    value = value or {}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """Apply SAM Globals: own properties win; environment variables are merged key by key."""
    merged = {**global_props, **props}
    global_vars = ((global_props.get("Environment") or {}).get("Variables")) or {}
    own_vars = ((props.get("Environment") or {}).get("Variables")) or {}
    merged["Environment"] = {"Variables": {**global_vars, **own_vars}}
    return merged


def _events(
    logical_id: str,
    events: Mapping[str, Any],
    resolver: _Resolver,
    queues_by_arn: Mapping[str, str],
) -> tuple[list[HttpRoute], list[ScheduleDef], list[SqsEventDef]]:
    """Collect the HttpApi routes, the schedules and the SQS mappings of a function's events."""
    routes: list[HttpRoute] = []
    schedules: list[ScheduleDef] = []
    queue_events: list[SqsEventDef] = []
    for event_name, event in events.items():
        event_type = event.get("Type")
        props = resolver.resolve(event.get("Properties") or {})
        if event_type == "HttpApi":
            # Without Path and Method, SAM attaches the function to the $default route.
            path = props.get("Path", "$default")
            method = str(props.get("Method", "ANY")).upper()
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                method = "ANY"
            routes.append(HttpRoute(event_name, method, path))
        elif event_type in ("Schedule", "ScheduleV2"):
            expression = str(props["ScheduleExpression"])
            try:
                rate: float | None = parse_rate(expression)
            except ValueError:
                rate = None  # cron()/at(): only with an explicit --schedule-interval
            if event_type == "ScheduleV2":
                enabled = str(props.get("State", "ENABLED")).upper() == "ENABLED"
            else:
                enabled = _to_text(props.get("Enabled", True)).lower() == "true"
            raw_input = props.get("Input")
            schedules.append(
                ScheduleDef(
                    event_name,
                    event_type,
                    expression,
                    rate,
                    enabled,
                    None if raw_input is None else str(raw_input),
                )
            )
        elif event_type == "SQS":
            queue_events.append(_sqs_event(logical_id, event_name, props, queues_by_arn))
        else:
            logger.debug(
                "%s: event %s of type %s is not run locally", logical_id, event_name, event_type
            )
    return routes, schedules, queue_events


_INTEGRATION_TARGET_RE = re.compile(r"^integrations/\$\{([A-Za-z0-9]+)\}$")


def _api_routes(resources: Mapping[str, Any], resolver: _Resolver) -> dict[str, list[HttpRoute]]:
    """Plain ``AWS::ApiGatewayV2::Route`` resources, by the function their integration calls.

    A template declares routes this way when SAM's HttpApi event cannot express them (an
    authorizer chosen by a parameter); only Lambda integrations named by ``!GetAtt F.Arn`` and
    targets ``!Sub integrations/${Integration}`` are understood. Authorizers are not emulated.
    """
    integrations: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::ApiGatewayV2::Integration":
            uri = _as_intrinsic((resource.get("Properties") or {}).get("IntegrationUri"))
            if uri is not None and uri.name == "Fn::GetAtt":
                parts = uri.value.split(".", 1) if isinstance(uri.value, str) else uri.value
                integrations[logical_id] = str(parts[0])
    routes: dict[str, list[HttpRoute]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::ApiGatewayV2::Route":
            continue
        props = resource.get("Properties") or {}
        target = _as_intrinsic(props.get("Target"))
        found = (
            _INTEGRATION_TARGET_RE.match(str(target.value))
            if target is not None and target.name == "Fn::Sub"
            else None
        )
        function_id = integrations.get(found.group(1)) if found else None
        if function_id is None:
            logger.debug("route %s has no local Lambda integration; skipped", logical_id)
            continue
        method, _, path = str(resolver.resolve(props.get("RouteKey"))).partition(" ")
        route = HttpRoute(logical_id, method.upper(), path or "$default")
        routes.setdefault(function_id, []).append(route)
    return routes


def load_template(path: str | Path, *, stack_name: str | None = None) -> SamTemplate:
    """Load a SAM template and resolve what the local runner needs from it."""
    template_path = Path(path).resolve()
    doc = load_yaml(template_path)
    stack = stack_name or _stack_name(template_path)
    table_names, table_props = _local_table_names(doc, stack)
    queue_names = _local_queue_names(doc, stack, _Resolver(doc, stack, table_names))
    resolver = _Resolver(doc, stack, table_names, queue_names)
    resources: Mapping[str, Any] = doc.get("Resources") or {}
    queues_by_arn = {queue_arn(name): logical_id for logical_id, name in queue_names.items()}
    queues = {
        logical_id: _queue_def(
            logical_id,
            name,
            resolver.resolve(resources[logical_id].get("Properties") or {}),
            queues_by_arn,
        )
        for logical_id, name in queue_names.items()
    }
    root = template_path.parent

    layers: dict[str, Path] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            content_uri = resolver.resolve((resource.get("Properties") or {}).get("ContentUri"))
            if isinstance(content_uri, str):
                layer_dir = (root / content_uri).resolve()
                # A built layer keeps Python code under python/; the source layer at its root.
                python_dir = layer_dir / "python"
                layers[logical_id] = python_dir if python_dir.is_dir() else layer_dir

    tables = {
        logical_id: _table_def(logical_id, table_names[logical_id], resolver.resolve(props))
        for logical_id, props in table_props.items()
    }

    global_props = ((doc.get("Globals") or {}).get("Function")) or {}
    functions: dict[str, FunctionDef] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        props = _merge_globals(global_props, resource.get("Properties") or {})
        code_uri = resolver.resolve(props.get("CodeUri"))
        handler = resolver.resolve(props.get("Handler"))
        if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
            raise TemplateError(
                f"{logical_id}: only local CodeUri directories with a module.function Handler "
                "can run locally"
            )
        environment: dict[str, str] = {}
        table_env_vars: dict[str, str] = {}
        queue_env_vars: dict[str, str] = {}
        for name, raw in props["Environment"]["Variables"].items():
            intrinsic = _as_intrinsic(raw)
            if intrinsic and intrinsic.name == "Ref" and intrinsic.value in table_names:
                table_env_vars[name] = str(intrinsic.value)
            queue = _queue_url_of(intrinsic, queue_names)
            if queue is not None:
                queue_env_vars[name] = queue
            value = resolver.resolve(raw)
            if value is not _NO_VALUE:
                environment[name] = _to_text(value)
        layer_dirs = []
        for layer in props.get("Layers") or []:
            intrinsic = _as_intrinsic(layer)
            if intrinsic and intrinsic.name == "Ref" and intrinsic.value in layers:
                layer_dirs.append(layers[str(intrinsic.value)])
            else:
                logger.warning("%s: layer %r is not a local layer; skipped", logical_id, layer)
        routes, schedules, queue_events = _events(
            logical_id, props.get("Events") or {}, resolver, queues_by_arn
        )
        functions[logical_id] = FunctionDef(
            logical_id=logical_id,
            code_uri=(root / code_uri).resolve(),
            handler=handler,
            timeout=float(resolver.resolve(props.get("Timeout", _DEFAULT_TIMEOUT_SECONDS))),
            memory_size=int(resolver.resolve(props.get("MemorySize", _DEFAULT_MEMORY_MB))),
            environment=environment,
            layer_dirs=tuple(layer_dirs),
            routes=tuple(routes),
            schedules=tuple(schedules),
            table_env_vars=table_env_vars,
            queue_events=tuple(queue_events),
            queue_env_vars=queue_env_vars,
        )

    for function_id, api_routes in _api_routes(resources, resolver).items():
        if function_id in functions:
            function = functions[function_id]
            functions[function_id] = replace(function, routes=(*function.routes, *api_routes))

    parameters = {
        name: _to_text(resolver.parameter_default(name)) for name in doc.get("Parameters") or {}
    }
    return SamTemplate(template_path, stack, parameters, functions, layers, tables, queues)
