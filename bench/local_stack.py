"""The local stack the bench measures on: the local runner's embedded DynamoDB and simulators.

The embedded DynamoDB is moto's server on 127.0.0.1 (local_runner/dynamodb.py), not Amazon's
DynamoDB Local, which needs a download this bench does not make. Moto's TransactWriteItems
copies the whole table on every call, so the timed runs keep their table small (`reset_table`
between rounds, untimed).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (
    ROOT,
    ROOT / "layers" / "bridge",
    ROOT / "functions" / "webhook",
    ROOT / "functions" / "resolver",
):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

TABLE = "bench-sessions"
SECRET = "bench-secret"  # noqa: S105 - the simulators'
TOKEN = "token"  # noqa: S105 - the simulators'
WORKSPACE = "ws"
API_KEY = "key"
EMAIL = "agent@example.com"


@dataclass
class CallCounter:
    """Counts the DynamoDB operations a client makes (registered on its event system)."""

    calls: Counter[str] = field(default_factory=Counter)
    items_written: int = 0

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "TransactWriteItems":
            self.items_written += sum(
                1 for item in params["TransactItems"] if "ConditionCheck" not in item
            )
        elif model.name in ("PutItem", "UpdateItem", "DeleteItem"):
            self.items_written += 1

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()
        self.items_written = 0


@dataclass
class Stack:
    """What a bench run talks to: DynamoDB's endpoint, the simulators, the bridge's settings."""

    endpoint: str
    bugpilot: Any
    zendesk: Any
    settings: dict[str, str]
    #: The embedded server (`local_runner.dynamodb.EmbeddedDynamoDB`): how busy it was.
    dynamodb: Any = None

    @property
    def queue_url(self) -> str:
        return self.settings["WORK_QUEUE_URL"]

    def sqs(self) -> Any:
        import boto3

        return boto3.client("sqs", endpoint_url=self.endpoint)

    def client(self) -> Any:
        import boto3

        return boto3.client("dynamodb", endpoint_url=self.endpoint)

    def reset_table(self, client: Any, name: str = TABLE) -> None:
        """Drop the table and create it again empty, from the template's definition."""
        from botocore.exceptions import ClientError

        from local_runner.dynamodb import ensure_table
        from local_runner.template import load_template

        with contextlib.suppress(ClientError):
            client.delete_table(TableName=name)
        definition = load_template(ROOT / "template.yaml").tables["SessionsTable"]
        ensure_table(client, definition, name)


@contextlib.contextmanager
def local_stack() -> Iterator[Stack]:
    """The embedded DynamoDB and the Bugpilot and Zendesk simulators, with the bridge's settings.

    The settings are put in the environment as a deployed function reads them (no secret), so
    the handlers run unchanged.
    """
    from capture_bridge import runtime as bridge_runtime
    from capture_bridge.settings import reset_settings_cache
    from local_runner.dynamodb import AWS_DEFAULTS, EmbeddedDynamoDB
    from local_runner.simulators import BugpilotSimulator, ZendeskSimulator

    for key, value in AWS_DEFAULTS.items():
        os.environ.setdefault(key, value)
    with (
        EmbeddedDynamoDB() as dynamodb,
        BugpilotSimulator(workspace_id=WORKSPACE, api_key=API_KEY) as bugpilot,
        ZendeskSimulator(email=EMAIL, api_token=TOKEN) as zendesk,
    ):
        assert dynamodb.endpoint_url is not None  # noqa: S101 - started above
        # The work queue, on the same moto server: every capture's reminder goes there, as
        # deployed (its worker is not run here; the webhook's call to SQS is what is timed).
        import boto3

        queue_url = boto3.client("sqs", endpoint_url=dynamodb.endpoint_url).create_queue(
            QueueName="bench-work"
        )["QueueUrl"]
        settings = {
            "TABLE_NAME": TABLE,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.endpoint_url,
            "AWS_ENDPOINT_URL_SQS": dynamodb.endpoint_url,
            "WORK_QUEUE_URL": queue_url,
            "BUGPILOT_API_URL": bugpilot.url,
            "BUGPILOT_WORKSPACE_ID": WORKSPACE,
            "BUGPILOT_API_KEY": API_KEY,
            "ZENDESK_API_URL": zendesk.url,
            "ZENDESK_EMAIL": EMAIL,
            "ZENDESK_API_TOKEN": TOKEN,
            "ZENDESK_WEBHOOK_SECRET": SECRET,
        }
        saved = {key: os.environ.get(key) for key in settings}
        os.environ.update(settings)
        reset_settings_cache()
        # A warm function's store keeps its client, here the endpoint of an earlier stack.
        bridge_runtime._stores.clear()
        stack = Stack(dynamodb.endpoint_url, bugpilot, zendesk, settings, dynamodb)
        stack.reset_table(stack.client())
        try:
            yield stack
        finally:
            for key, before in saved.items():
                if before is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = before
            reset_settings_cache()
            bridge_runtime._stores.clear()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The functions' log lines go where CloudWatch would take them: away from the terminal."""
    from capture_bridge.observability import handler_logger

    handler = handler_logger().registered_handler
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        if handler is None:
            yield
            return
        previous = handler.setStream(sink)
        try:
            yield
        finally:
            if previous is not None:
                handler.setStream(previous)
