"""A deployed stack in moto: its secret, dead-letter queue and functions; CloudFormation stubbed.

moto's CloudFormation cannot create a Secrets Manager secret, so the stack's own answers
(describe_stacks, describe_stack_resources) come from botocore's Stubber, which checks them
against the real API model; everything else is moto.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ops.stack import Aws, Stack

REGION = "us-east-1"
STACK_NAME = "capture-bridge"
TABLE_NAME = "capture-bridge-SessionsTable-1"
FUNCTIONS = {
    "WebhookFunction": "capture-bridge-WebhookFunction-abc",
    "ResolverFunction": "capture-bridge-ResolverFunction-def",
}


@dataclass
class Deployed:
    """The moto resources of one stack, and the Stack the commands see."""

    aws: Aws
    stack: Stack
    secret_arn: str
    queue_url: str

    def put_secret(self, values: dict[str, Any]) -> None:
        self.aws.secretsmanager.put_secret_value(
            SecretId=self.secret_arn, SecretString=json.dumps(values)
        )

    def secret(self) -> dict[str, Any]:
        answer = self.aws.secretsmanager.get_secret_value(SecretId=self.secret_arn)
        payload: dict[str, Any] = json.loads(answer["SecretString"])
        return payload

    def set_environment(self, logical_id: str, variables: dict[str, str]) -> None:
        self.aws.lambda_.update_function_configuration(
            FunctionName=FUNCTIONS[logical_id], Environment={"Variables": variables}
        )

    def stub_stack(self, status: str = "UPDATE_COMPLETE") -> Stubber:
        """Make CloudFormation answer for the stack once, as a deployed one would."""
        stubber = Stubber(self.aws.cloudformation)
        stubber.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": STACK_NAME,
                        "CreationTime": "2026-11-25T12:00:00Z",
                        "StackStatus": status,
                        "Outputs": [
                            {"OutputKey": key, "OutputValue": value}
                            for key, value in self.stack.outputs.items()
                        ],
                    }
                ]
            },
            {"StackName": STACK_NAME},
        )
        stubber.add_response(
            "describe_stack_resources",
            {
                "StackResources": [
                    {
                        "StackName": STACK_NAME,
                        "LogicalResourceId": logical_id,
                        "PhysicalResourceId": name,
                        "ResourceType": "AWS::Lambda::Function",
                        "Timestamp": "2026-11-25T12:00:00Z",
                        "ResourceStatus": "UPDATE_COMPLETE",
                    }
                    for logical_id, name in FUNCTIONS.items()
                ]
            },
            {"StackName": STACK_NAME},
        )
        stubber.activate()
        return stubber


def base_environment(secret_arn: str) -> dict[str, str]:
    """The functions' variables as the template sets them."""
    return {
        "TABLE_NAME": TABLE_NAME,
        "BRIDGE_SECRET_ID": secret_arn,
        "BUGPILOT_DEFAULT_ACTION": "upload-session",
        "LAMBDATEST_SHARE_EXPIRY_DAYS": "7",
        "ZENDESK_SUBDOMAIN": "acme",
    }


@pytest.fixture
def deployed() -> Iterator[Deployed]:
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        aws = Aws(
            region=REGION,
            cloudformation=session.client("cloudformation"),
            secretsmanager=session.client("secretsmanager"),
            sqs=session.client("sqs"),
            lambda_=session.client("lambda"),
        )
        # Created like the template's: no value at all until someone fills it in.
        secret_arn = aws.secretsmanager.create_secret(Name="BridgeSecret-test")["ARN"]
        queue_url = aws.sqs.create_queue(QueueName="capture-bridge-ResolverDeadLetterQueue")[
            "QueueUrl"
        ]
        role = session.client("iam").create_role(
            RoleName="bridge-function",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        for name in FUNCTIONS.values():
            aws.lambda_.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=role,
                Handler="index.handler",
                Code={"ZipFile": b"not run: invoking needs Docker, which moto uses"},
                Environment={"Variables": base_environment(secret_arn)},
            )
        stack = Stack(
            name=STACK_NAME,
            region=REGION,
            status="UPDATE_COMPLETE",
            outputs={"SecretArn": secret_arn, "ResolverDeadLetterQueueUrl": queue_url},
            functions=dict(FUNCTIONS),
        )
        yield Deployed(aws, stack, secret_arn, queue_url)


def without_output(stack: Stack, key: str) -> Stack:
    return replace(stack, outputs={k: v for k, v in stack.outputs.items() if k != key})


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
