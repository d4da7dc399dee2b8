"""The local runner on its own: a throwaway SAM app in tmp_path, real HTTP on 127.0.0.1.

These tests do not use the bridge's business code; they check that the runner turns a template
into routes, API Gateway v2 events, schedules, environment and DynamoDB tables faithfully.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml

from local_runner.dynamodb import ENDPOINT_VARIABLE, EmbeddedDynamoDB, ensure_table
from local_runner.runner import LocalRunner, load_env_file
from local_runner.template import CfnLoader, Intrinsic, load_template, parse_rate

ROOT = Path(__file__).resolve().parents[2]

# The top-level keys of `sam local generate-event apigateway http-api-proxy`.
V2_KEYS = {
    "version",
    "routeKey",
    "rawPath",
    "rawQueryString",
    "cookies",
    "headers",
    "queryStringParameters",
    "requestContext",
    "body",
    "pathParameters",
    "isBase64Encoded",
    "stageVariables",
}

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting:
    Type: String
    Default: hello
  Retries:
    Type: Number
    Default: 3
Conditions:
  IsHello: !Equals [!Ref Greeting, hello]
Globals:
  Function:
    Timeout: 7
    Layers: [!Ref SharedLayer]
    Environment:
      Variables:
        TABLE_NAME: !Ref ItemsTable
        SECRET_ID: !Ref AppSecret
        GREETING: !Ref Greeting
        RETRIES: !Ref Retries
        MODE: !If [IsHello, friendly, formal]
        TABLE_ARN: !GetAtt ItemsTable.Arn
        WHERE: !Sub "${{AWS::Region}}/${{Greeting}}"
        LR_FROM_TEMPLATE: template
        LR_FILE_OVER_TEMPLATE: template
        LR_PROCESS_OVER_FILE: template
        LR_EXPLICIT: template
Resources:
  AppSecret:
    Type: AWS::SecretsManager::Secret
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer
  ItemsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {{AttributeName: pk, AttributeType: S}}
        - {{AttributeName: owner, AttributeType: S}}
        - {{AttributeName: created, AttributeType: N}}
      KeySchema:
        - {{AttributeName: pk, KeyType: HASH}}
      GlobalSecondaryIndexes:
        - IndexName: by-owner
          KeySchema:
            - {{AttributeName: owner, KeyType: HASH}}
            - {{AttributeName: created, KeyType: RANGE}}
          Projection:
            ProjectionType: KEYS_ONLY
      TimeToLiveSpecification:
        AttributeName: expires_at
        Enabled: true
      SSESpecification:
        SSEEnabled: true
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo
      Handler: {echo}.handler
      Events:
        Item:
          Type: HttpApi
          Properties: {{Path: "/items/{{item_id}}", Method: POST}}
        List:
          Type: HttpApi
          Properties: {{Path: /items, Method: get}}
        Files:
          Type: HttpApi
          Properties: {{Path: "/files/{{path+}}", Method: ANY}}
  ReplyFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: reply
      Handler: {reply}.handler
      Events:
        Reply:
          Type: HttpApi
          Properties: {{Path: /reply, Method: POST}}
        Boom:
          Type: HttpApi
          Properties: {{Path: /boom, Method: GET}}
  TickFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: tick
      Handler: {tick}.handler
      Timeout: 30
      MemorySize: 512
      Events:
        Tick:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 minute)
"""

ECHO = """\
import os

import {layer}


def handler(event, context):
    return {{
        "event": event,
        "layer": {layer}.NAME,
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory": context.memory_limit_in_mb,
        "env": {{key: value for key, value in os.environ.items() if key.startswith("LR_")}},
    }}
"""

REPLY = """\
import json


def handler(event, context):
    if event["rawPath"] == "/boom":
        raise RuntimeError("boom from the handler")
    return json.loads(event["body"])["result"]
"""

TICK = """\
calls = []


def handler(event, context):
    calls.append(event)
    if len(calls) == 1:
        raise RuntimeError("the first tick fails")
    return {"tick": len(calls)}
"""


@dataclass(frozen=True)
class App:
    """A throwaway SAM application written into tmp_path."""

    template: Path
    stack_name: str
    echo: str
    reply: str
    tick: str
    layer: str

    @property
    def table_name(self) -> str:
        return f"{self.stack_name}-local"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    suffix = uuid.uuid4().hex[:8]
    # Unique module names: several runners in one test process must not share modules.
    names = {kind: f"lrt_{kind}_{suffix}" for kind in ("echo", "reply", "tick", "layer")}
    sources = {"echo": ECHO.format(**names), "reply": REPLY, "tick": TICK}
    for kind, source in sources.items():
        (tmp_path / kind).mkdir()
        (tmp_path / kind / f"{names[kind]}.py").write_text(source)
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / f"{names['layer']}.py").write_text('NAME = "shared layer"\n')
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE.format(**names))
    # A unique stack name, hence a unique table on the shared DynamoDB endpoint.
    stack_name = f"lrt-{suffix}"
    (tmp_path / "samconfig.toml").write_text(
        f'version = 0.1\n[default.deploy.parameters]\nstack_name = "{stack_name}"\n'
    )
    yield App(template, stack_name, names["echo"], names["reply"], names["tick"], names["layer"])
    for name in names.values():
        sys.modules.pop(name, None)
    sys.path[:] = [entry for entry in sys.path if not entry.startswith(str(tmp_path))]


@pytest.fixture(scope="module")
def dynamodb_url() -> Iterator[str]:
    """One embedded DynamoDB for the module: stopping one costs half a second."""
    server = EmbeddedDynamoDB()
    yield server.start()
    server.stop()


@pytest.fixture
def runner(app: App, dynamodb_url: str) -> Iterator[LocalRunner]:
    with LocalRunner(
        app.template, env={ENDPOINT_VARIABLE: dynamodb_url}, start_schedules=False
    ) as started:
        yield started


def raw_request(
    url: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send a request with exactly these headers (repeated ones included)."""
    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, target)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# --- the template --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(30 seconds)", 30),
        ("rate(1 second)", 1),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        (" rate( 10  Minutes ) ", 600),
    ],
)
def test_parse_rate(expression: str, seconds: float) -> None:
    assert parse_rate(expression) == seconds


@pytest.mark.parametrize(
    "expression", ["cron(0 * * * ? *)", "rate(0 minutes)", "rate(five minutes)", "rate(1 week)"]
)
def test_parse_rate_rejects(expression: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(expression)


def test_loader_keeps_short_form_tags_as_objects() -> None:
    doc = yaml.load(
        "a: !Ref X\nb: !GetAtt T.Arn\nc: !Sub 'x-${X}'\nd: !If [C, [1], !Ref AWS::NoValue]\n",
        Loader=CfnLoader,  # noqa: S506 - CfnLoader is a SafeLoader
    )
    assert doc["a"] == Intrinsic("Ref", "X")
    assert doc["b"] == Intrinsic("Fn::GetAtt", ["T", "Arn"])
    assert doc["c"] == Intrinsic("Fn::Sub", "x-${X}")
    assert doc["d"] == Intrinsic("Fn::If", ["C", [1], Intrinsic("Ref", "AWS::NoValue")])


def test_template_is_read_into_definitions(app: App) -> None:
    template = load_template(app.template)

    assert set(template.functions) == {"EchoFunction", "ReplyFunction", "TickFunction"}
    echo = template.functions["EchoFunction"]
    assert echo.module_name == app.echo
    assert echo.handler_name == "handler"
    assert echo.code_uri == app.template.parent / "echo"
    assert echo.layer_dirs == (app.template.parent / "layer",)
    assert echo.timeout == 7  # from Globals
    assert echo.memory_size == 128  # Lambda's default
    assert [(r.method, r.path, r.route_key) for r in echo.routes] == [
        ("POST", "/items/{item_id}", "POST /items/{item_id}"),
        ("GET", "/items", "GET /items"),
        ("ANY", "/files/{path+}", "ANY /files/{path+}"),
    ]
    assert echo.environment == {
        "TABLE_NAME": app.table_name,
        "SECRET_ID": "",  # secrets come from the environment locally
        "GREETING": "hello",
        "RETRIES": "3",
        "MODE": "friendly",
        "TABLE_ARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{app.table_name}",
        "WHERE": "us-east-1/hello",
        "LR_FROM_TEMPLATE": "template",
        "LR_FILE_OVER_TEMPLATE": "template",
        "LR_PROCESS_OVER_FILE": "template",
        "LR_EXPLICIT": "template",
    }
    assert echo.table_env_vars == {"TABLE_NAME": "ItemsTable"}

    tick = template.functions["TickFunction"]
    assert (tick.timeout, tick.memory_size, tick.routes) == (30, 512, ())
    (schedule,) = tick.schedules
    assert (schedule.event_type, schedule.rate_seconds, schedule.enabled) == (
        "ScheduleV2",
        60,
        True,
    )

    table = template.tables["ItemsTable"]
    assert table.name == app.table_name
    assert table.ttl_attribute == "expires_at"
    assert table.create_kwargs["BillingMode"] == "PAY_PER_REQUEST"
    assert table.create_kwargs["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert [index["IndexName"] for index in table.create_kwargs["GlobalSecondaryIndexes"]] == [
        "by-owner"
    ]
    assert "SSESpecification" not in table.create_kwargs  # CloudFormation-only


def test_real_template() -> None:
    template = load_template(ROOT / "template.yaml")

    webhook = template.functions["WebhookFunction"]
    assert [(r.method, r.path) for r in webhook.routes] == [("POST", "/webhooks/{helpdesk}")]
    assert webhook.code_uri == ROOT / "functions" / "webhook"
    assert webhook.module_name == "webhook_handler"
    resolver = template.functions["ResolverFunction"]
    assert [s.rate_seconds for s in resolver.schedules] == [60]
    assert resolver.routes == ()
    assert template.layer_dirs == [ROOT / "layers" / "bridge"]
    table = template.tables["SessionsTable"]
    assert webhook.environment["TABLE_NAME"] == table.name
    assert webhook.environment["BRIDGE_SECRET_ID"] == ""
    assert table.ttl_attribute == "expires_at"
    assert [i["IndexName"] for i in table.create_kwargs["GlobalSecondaryIndexes"]] == [
        "due-sessions",
        "ticket-sessions",
        "status-sessions",
    ]
    # The sessions routes are plain API Gateway routes (their authorizer follows a parameter)
    sessions = template.functions["SessionsFunction"]
    assert [(r.method, r.path) for r in sessions.routes] == [
        ("ANY", "/sessions"),
        ("ANY", "/sessions/{sessionId}"),
    ]
    assert sessions.module_name == "sessions_handler"
    assert sessions.environment["SESSIONS_API_AUTH"] == "iam"


# --- the HTTP API --------------------------------------------------------------------------


def test_http_api_v2_event(runner: LocalRunner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="local_runner")
    before_ms = time.time() * 1000
    status, headers, body = raw_request(
        runner.url,
        "POST",
        "/items/abc%20d?x=1&x=2&empty=",
        [
            ("Content-Type", "application/json"),
            ("X-Custom", "A"),
            ("X-Custom", "B"),
            ("User-Agent", "pytest-agent"),
            ("Cookie", "a=1; b=2"),
        ],
        b'{"hello": "world"}',
    )

    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["apigw-requestid"]
    answer = json.loads(body)
    assert answer["layer"] == "shared layer"
    event = answer["event"]
    assert set(event) <= V2_KEYS
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /items/{item_id}"
    assert event["rawPath"] == "/items/abc%20d"
    assert event["rawQueryString"] == "x=1&x=2&empty="
    assert event["queryStringParameters"] == {"x": "1,2", "empty": ""}
    assert event["pathParameters"] == {"item_id": "abc d"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "A,B"
    assert event["headers"]["content-type"] == "application/json"
    assert event["body"] == '{"hello": "world"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/items/abc%20d",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pytest-agent",
    }
    assert context["routeKey"] == "POST /items/{item_id}"
    assert context["stage"] == "$default"
    assert context["requestId"] == headers["apigw-requestid"]
    uuid.UUID(context["requestId"])
    assert context["accountId"] == "123456789012"
    assert {"apiId", "domainName", "domainPrefix"} <= set(context)
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])
    assert before_ms - 1000 <= context["timeEpoch"] <= time.time() * 1000 + 1000
    assert "POST /items/abc%20d -> 200" in caplog.text


def test_event_without_query_body_or_path_parameters(runner: LocalRunner) -> None:
    response = requests.get(f"{runner.url}/items", timeout=10)

    event = response.json()["event"]
    assert event["routeKey"] == "GET /items"
    assert event["rawQueryString"] == ""
    assert {"queryStringParameters", "pathParameters", "body", "cookies"}.isdisjoint(event)
    assert event["isBase64Encoded"] is False


def test_binary_body_is_base64(runner: LocalRunner) -> None:
    payload = b"\xff\x00\xfe binary"
    response = requests.post(f"{runner.url}/items/bin", data=payload, timeout=10)

    event = response.json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_greedy_path_and_any_method(runner: LocalRunner) -> None:
    response = requests.put(f"{runner.url}/files/a/b/c.txt", data=b"x", timeout=10)

    event = response.json()["event"]
    assert event["routeKey"] == "ANY /files/{path+}"
    assert event["pathParameters"] == {"path": "a/b/c.txt"}
    assert event["requestContext"]["http"]["method"] == "PUT"


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "OPTIONS", "PATCH"])
def test_any_method_reaches_an_any_route(runner: LocalRunner, method: str) -> None:
    # Given an ANY route; when it is called with a method http.server has no handler of its own for
    response = requests.request(method, f"{runner.url}/files/a.txt", timeout=10)
    # Then the function gets it, as API Gateway passes it on (not the stdlib's HTML 501)
    assert response.status_code == 200
    assert response.json()["event"]["requestContext"]["http"]["method"] == method


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/items"),
        ("GET", "/items/1"),
        ("POST", "/items/1/2"),
        ("TRACE", "/items"),
    ],
)
def test_unmatched_route_or_method_is_404(runner: LocalRunner, method: str, path: str) -> None:
    response = requests.request(method, f"{runner.url}{path}", timeout=10)

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_handler_exception_is_500(runner: LocalRunner, caplog: pytest.LogCaptureFixture) -> None:
    response = requests.get(f"{runner.url}/boom", timeout=10)

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert "ReplyFunction failed" in caplog.text
    assert "boom from the handler" in caplog.text  # the traceback is logged


@pytest.mark.parametrize(
    ("result", "status", "headers", "body"),
    [
        (
            {
                "statusCode": 201,
                "headers": {"X-Thing": "1", "Content-Type": "application/octet-stream"},
                "cookies": ["s=1; Path=/"],
                "body": base64.b64encode(b"\x00\x01").decode(),
                "isBase64Encoded": True,
            },
            201,
            {"x-thing": "1", "set-cookie": "s=1; Path=/"},
            b"\x00\x01",
        ),
        ({"statusCode": 204}, 204, {}, b""),
        ("plain text", 200, {"content-type": "application/json"}, b"plain text"),
        ({"ok": True}, 200, {"content-type": "application/json"}, b'{"ok": true}'),
        ({"statusCode": "teapot"}, 500, {}, b'{"message": "Internal Server Error"}'),
        ({"statusCode": 200, "body": {"not": "a string"}}, 500, {}, None),
    ],
)
def test_response_follows_payload_v2_rules(
    runner: LocalRunner, result: Any, status: int, headers: dict[str, str], body: bytes | None
) -> None:
    response = requests.post(f"{runner.url}/reply", json={"result": result}, timeout=10)

    assert response.status_code == status
    for name, value in headers.items():
        assert response.headers[name] == value
    if body is not None:
        assert response.content == body


def test_invoke_passes_a_lambda_context(runner: LocalRunner) -> None:
    answer = runner.invoke("EchoFunction", {"direct": True})

    assert answer["event"] == {"direct": True}
    assert answer["function_name"] == "EchoFunction"
    assert answer["memory"] == 128
    assert 6000 < answer["remaining_ms"] <= 7000  # counts down from Timeout: 7
    with pytest.raises(KeyError, match="NoSuchFunction"):
        runner.invoke("NoSuchFunction", {})


# --- environment, DynamoDB and schedules ---------------------------------------------------


def test_environment_precedence(
    app: App, dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = app.template.parent / ".env"
    env_file.write_text(
        "# settings for the local runner\n"
        "LR_FILE_OVER_TEMPLATE=file\n"
        "export LR_PROCESS_OVER_FILE=file\n"
        "LR_EXPLICIT='file'\n"
        'LR_ONLY_FILE="from the file"\n'
        "\n"
        "not a setting\n"
    )
    monkeypatch.setenv("LR_PROCESS_OVER_FILE", "process")
    monkeypatch.setenv("LR_EXPLICIT", "process")
    explicit = {ENDPOINT_VARIABLE: dynamodb_url, "LR_EXPLICIT": "explicit"}

    with LocalRunner(
        app.template, env=explicit, env_file=env_file, start_schedules=False
    ) as runner:
        seen = runner.invoke("EchoFunction", {})["env"]

    assert seen == {
        "LR_FROM_TEMPLATE": "template",
        "LR_FILE_OVER_TEMPLATE": "file",
        "LR_PROCESS_OVER_FILE": "process",
        "LR_EXPLICIT": "explicit",
        "LR_ONLY_FILE": "from the file",
    }
    # stop() gives the process its environment back.
    assert "LR_FROM_TEMPLATE" not in os.environ
    assert os.environ["LR_EXPLICIT"] == "process"
    assert load_env_file(env_file)["LR_EXPLICIT"] == "file"


def test_embedded_dynamodb_table_from_template(app: App) -> None:
    assert ENDPOINT_VARIABLE not in os.environ  # so the runner embeds its own
    with LocalRunner(app.template, start_schedules=False) as runner:
        endpoint = os.environ[ENDPOINT_VARIABLE]
        assert endpoint.startswith("http://127.0.0.1:")
        assert runner.table_names == {"ItemsTable": [app.table_name]}
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        table = client.describe_table(TableName=app.table_name)["Table"]
        ttl = client.describe_time_to_live(TableName=app.table_name)["TimeToLiveDescription"]
        created_again = ensure_table(client, load_template(app.template).tables["ItemsTable"])

    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-owner"
    assert index["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert created_again is False
    assert ENDPOINT_VARIABLE not in os.environ


def test_table_creation_is_idempotent(app: App, dynamodb_url: str) -> None:
    env = {ENDPOINT_VARIABLE: dynamodb_url}
    with LocalRunner(app.template, env=env, start_schedules=False):
        pass
    # A second start on the same DynamoDB finds the table and keeps it.
    with LocalRunner(app.template, env=env, start_schedules=False) as runner:
        assert runner.table_names == {"ItemsTable": [app.table_name]}
    client = boto3.client("dynamodb", endpoint_url=dynamodb_url, region_name="us-east-1")
    assert ensure_table(client, load_template(app.template).tables["ItemsTable"]) is False


def test_tick_runs_one_scheduled_invocation(runner: LocalRunner, app: App) -> None:
    with pytest.raises(RuntimeError, match="first tick fails"):
        runner.tick("TickFunction")

    assert runner.tick("TickFunction") == {"tick": 2}
    assert sys.modules[app.tick].calls == [{}, {}]  # EventBridge Scheduler sends {} by default
    with pytest.raises(KeyError):
        runner.tick("EchoFunction")  # no schedule


def test_scheduler_keeps_ticking_after_a_failure(
    app: App, dynamodb_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="local_runner")
    with LocalRunner(
        app.template, env={ENDPOINT_VARIABLE: dynamodb_url}, schedule_interval=0.05
    ) as runner:
        calls = sys.modules[app.tick].calls
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runner.url  # the HTTP API runs alongside

    assert len(calls) >= 3
    assert "scheduled invocation of TickFunction failed" in caplog.text
    assert "tick TickFunction -> ok" in caplog.text


def test_the_real_sessions_api_without_a_token_is_closed_locally() -> None:
    # given the real template on the local runner, no IAM authorizer in front, and no token
    env = {"SESSIONS_API_TOKEN": "", "TABLE_NAME": "sessions-local"}
    with LocalRunner(port=0, start_schedules=False, env=env, embedded_dynamodb=True) as runner:
        # when a caller lists sessions without credentials
        answer = requests.get(f"{runner.url}/sessions?status=pending", timeout=10)
        # (and its functions send reminders to the local work queue, which the worker polls)
        assert runner.environment["WORK_QUEUE_URL"] == runner.queue_urls["WorkQueue"]
        assert runner.queue_urls["WorkQueue"].startswith(str(runner.dynamodb_endpoint))
        assert list(runner.pollers) == ["WorkerFunction.Due"]
        # (not polling by itself while schedules are off: a test delivers by hand)
        assert runner.poll("WorkerFunction") == 0
    # then it is refused, naming the token to set: the API is never open
    assert answer.status_code == 401
    assert "SESSIONS_API_TOKEN" in answer.json()["detail"]


# --- SQS: queues and event source mappings -------------------------------------------------

QUEUE_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 1
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt JobsDead.Arn
        maxReceiveCount: 2
  JobsDead:
    Type: AWS::SQS::Queue
  JobFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: job
      Handler: {job}.handler
      Timeout: 9
      Environment:
        Variables:
          JOBS_URL: !Ref Jobs
          JOBS_ARN: !GetAtt Jobs.Arn
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
            BatchSize: 2
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig:
              MaximumConcurrency: 2
"""

JOB = """\
import json
import threading
import time

lock = threading.Lock()
running = [0]
most = [0]
bodies = []
contexts = []


def handler(event, context):
    with lock:
        running[0] += 1
        most[0] = max(most[0], running[0])
        contexts.append((context.function_name, context.get_remaining_time_in_millis()))
    try:
        time.sleep(0.1)  # long enough for batches to overlap if the mapping let them
        records = event["Records"]
        wanted = [json.loads(record["body"]) for record in records]
        with lock:
            bodies.extend(wanted)
        if any(body.get("raise") for body in wanted):
            raise RuntimeError("the job raised")
        return {{"batchItemFailures": [
            {{"itemIdentifier": record["messageId"]}}
            for record, body in zip(records, wanted) if body.get("fail")
        ]}}
    finally:
        with lock:
            running[0] -= 1
"""


def wait_until(check: Any, seconds: float = 30) -> None:
    """Poll `check` until it holds (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "did not happen"
        time.sleep(0.1)


def queue_depth(client: Any, url: str) -> int:
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return sum(
        int(attributes[name])
        for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    )


def test_an_sqs_event_polls_its_queue_as_an_event_source_mapping(tmp_path: Path) -> None:
    # given a template with a queue (redrive after 2 receives) and a function polling it
    module = f"lrt_job_{uuid.uuid4().hex[:8]}"
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / f"{module}.py").write_text(JOB.format())
    template = tmp_path / "template.yaml"
    template.write_text(QUEUE_TEMPLATE.format(job=module))
    try:
        with LocalRunner(template, start_schedules=False, start_queues=True) as runner:
            job = sys.modules[module]
            # then the handlers get the queue's local URL and ARN, on the SQS endpoint
            url = os.environ["JOBS_URL"]
            assert url == runner.queue_urls["Jobs"]
            assert runner.sqs_endpoint is not None
            assert url.startswith(runner.sqs_endpoint)
            assert os.environ["JOBS_ARN"].endswith(":" + url.rsplit("/", 1)[1])
            sqs = boto3.client("sqs", endpoint_url=runner.sqs_endpoint, region_name="us-east-1")
            # when ten jobs are sent, one of which the function reports as failed
            for number in range(10):
                body = {"n": number, "fail": number == 3}
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
            # then the nine others are handled once each and deleted; the failed one is
            # delivered again after the visibility timeout, then dead-lettered
            dead = runner.queue_urls["JobsDead"]
            wait_until(lambda: queue_depth(sqs, dead) == 1 and queue_depth(sqs, url) == 0)
            handled = sorted(body["n"] for body in job.bodies if not body["fail"])
            assert handled == [0, 1, 2, 4, 5, 6, 7, 8, 9]
            assert sum(1 for body in job.bodies if body["fail"]) == 2  # maxReceiveCount
            # and never more than MaximumConcurrency batches ran at once, each of BatchSize
            assert job.most[0] <= 2
            stats = runner.mapping_stats("JobFunction")
            assert stats.records == 11
            assert stats.batches >= 6
            assert (stats.deleted, stats.kept, stats.raised) == (9, 2, 0)
            # and each invocation had a fresh context counting down from the Timeout (9 s)
            assert {name for name, _ in job.contexts} == {"JobFunction"}
            assert all(0 < left <= 9000 for _, left in job.contexts)
            # when a batch raises, none of its messages is deleted
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 99, "raise": True}))
            wait_until(lambda: queue_depth(sqs, dead) == 2)
            assert runner.mapping_stats("JobFunction").raised == 2
        # and the pollers stop with the runner, which gives the environment back
        assert not any(t.name.startswith("sqs-JobFunction") for t in threading.enumerate())
        assert "JOBS_URL" not in os.environ
        assert "AWS_ENDPOINT_URL_SQS" not in os.environ
    finally:
        sys.modules.pop(module, None)
        sys.path[:] = [entry for entry in sys.path if not entry.startswith(str(tmp_path))]
