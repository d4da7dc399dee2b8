"""The deployed stack as the operator commands see it: its outputs, its functions, its clients."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# The template's logical ids and outputs the commands rely on.
WEBHOOK_FUNCTION = "WebhookFunction"
RESOLVER_FUNCTION = "ResolverFunction"
SECRET_OUTPUT = "SecretArn"  # noqa: S105 - an output name, not a secret
DEAD_LETTER_OUTPUT = "ResolverDeadLetterQueueUrl"


# Where a region comes from, in the words of every "no region" message.
REGION_SOURCES = (
    "pass --region (REGION=… with make), set AWS_REGION or AWS_DEFAULT_REGION, "
    "or give your profile one with `aws configure`"
)


class OpsError(Exception):
    """Something the operator must fix, said in plain words (printed without a traceback)."""


def configured_region(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The region: `explicit`, else AWS_REGION, else AWS_DEFAULT_REGION, else the profile's.

    '' when there is none. botocore (and so SAM CLI) reads AWS_DEFAULT_REGION only; AWS_REGION
    is what the AWS CLI, the other SDKs and Lambda itself use, and it wins there too.
    """
    environ = os.environ if environ is None else environ
    for candidate in (explicit, environ.get("AWS_REGION"), environ.get("AWS_DEFAULT_REGION")):
        if candidate and candidate.strip():
            return candidate.strip()
    import botocore.session

    region = botocore.session.Session().get_config_variable("region")
    return str(region or "")


@dataclass(frozen=True)
class Aws:
    """The AWS clients the commands use, built once per run (tests pass moto or stubbed ones)."""

    region: str
    cloudformation: Any
    secretsmanager: Any
    sqs: Any
    lambda_: Any

    @classmethod
    def connect(cls, region: str | None) -> Aws:
        """Clients for `region`, else the region of the AWS configuration (profile, env)."""
        import boto3  # imported here: `python -m ops --help` needs no AWS at all

        session = boto3.session.Session(region_name=configured_region(region) or None)
        if not session.region_name:
            raise OpsError(f"No AWS region: {REGION_SOURCES}.")

        def client(name: str) -> Any:
            return session.client(name)

        return cls(
            region=session.region_name,
            cloudformation=client("cloudformation"),
            secretsmanager=client("secretsmanager"),
            sqs=client("sqs"),
            lambda_=client("lambda"),
        )


@dataclass(frozen=True)
class Stack:
    """A deployed stack: its status, outputs and functions (logical id → function name)."""

    name: str
    region: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)

    def output(self, key: str) -> str:
        """An output's value; a plain error when the stack lacks it."""
        value = self.outputs.get(key)
        if not value:
            raise OpsError(
                f"Stack {self.name} has no output {key}: is it deployed from this "
                "project's template.yaml (and finished deploying)?"
            )
        return value

    def function(self, logical_id: str) -> str:
        """The name of the function the template calls `logical_id`."""
        name = self.functions.get(logical_id)
        if not name:
            raise OpsError(f"Stack {self.name} has no {logical_id}.")
        return name


def aws_problem(exc: ClientError | BotoCoreError) -> str:
    """An AWS error in one line: the code and message, never the request."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return str(exc)


def describe_stack(aws: Aws, name: str) -> Stack:
    """Read the stack's status, outputs and Lambda functions."""
    try:
        [found] = aws.cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc.response.get("Error", {}).get("Message", "")):
            raise OpsError(
                f"There is no stack {name} in {aws.region}. Deploy it with `make deploy`, "
                "or pick the right ENV=… / REGION=…."
            ) from None
        raise OpsError(f"Could not read stack {name}: {aws_problem(exc)}") from None
    outputs = {
        str(output["OutputKey"]): str(output.get("OutputValue", ""))
        for output in found.get("Outputs", [])
    }
    try:
        resources = aws.cloudformation.describe_stack_resources(StackName=name)["StackResources"]
    except ClientError as exc:
        raise OpsError(f"Could not list the resources of {name}: {aws_problem(exc)}") from None
    functions = {
        str(resource["LogicalResourceId"]): str(resource.get("PhysicalResourceId", ""))
        for resource in resources
        if resource.get("ResourceType") == "AWS::Lambda::Function"
    }
    return Stack(name, aws.region, str(found["StackStatus"]), outputs, functions)
