"""A deployed stack's sessions API: its URL and auth mode, from CloudFormation outputs.

The same reading as `ops/stack.py`, kept small and separate: `ops` is not installed with the
project (it runs from the repository), while `capture-bridge` runs from anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from capture_cli import exits
from capture_cli.client import CliError

URL_OUTPUT = "SessionsApiUrl"
AUTH_OUTPUT = "SessionsApiAuth"
IAM = "iam"
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30

# Given a region (None: the AWS configuration's), a CloudFormation client and its region.
Connect = Callable[[str | None], tuple[Any, str]]


@dataclass(frozen=True)
class StackApi:
    """Where a stack's sessions API is and how it authorizes callers."""

    url: str
    auth: str  # "iam", "token", or "" when the stack does not say
    region: str


def connect_cloudformation(region: str | None) -> tuple[Any, str]:
    """A CloudFormation client for `region`, else the AWS configuration's region."""
    import boto3  # imported here: `--url` calls need no AWS at all
    from botocore.config import Config

    session = boto3.session.Session(region_name=region or None)
    if not session.region_name:
        raise CliError(
            "no AWS region: pass --region, set AWS_REGION, or run `aws configure`", exits.USAGE
        )
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return session.client("cloudformation", config=config), str(session.region_name)


def read_stack_api(
    name: str, region: str | None, connect: Connect = connect_cloudformation
) -> StackApi:
    """The stack's `SessionsApiUrl` and `SessionsApiAuth` outputs, or a plain CliError."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    client, region_name = connect(region)
    try:
        [found] = client.describe_stacks(StackName=name)["Stacks"]
    except NoCredentialsError:
        raise CliError(
            "no AWS credentials to read the stack: run `aws configure` or `aws sso login`, "
            "or set AWS_PROFILE",
            exits.UNAUTHORIZED,
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if "does not exist" in message:
            raise CliError(
                f"there is no stack {name} in {region_name}: check --stack and --region",
                exits.USAGE,
            ) from None
        if "AccessDenied" in code or "Unauthorized" in code or "Token" in code:
            raise CliError(f"AWS refused to describe {name}: {code}", exits.UNAUTHORIZED) from None
        raise CliError(
            f"could not read stack {name}: {code}: {message}", exits.UNAVAILABLE
        ) from None
    except BotoCoreError as exc:
        raise CliError(f"could not reach CloudFormation: {exc}", exits.UNAVAILABLE) from None
    outputs = {
        str(output["OutputKey"]): str(output.get("OutputValue", ""))
        for output in found.get("Outputs", [])
    }
    url = outputs.get(URL_OUTPUT, "").strip()
    if not url:
        raise CliError(
            f"stack {name} has no output {URL_OUTPUT}: is it deployed from a template with "
            "the sessions API (and finished deploying)?",
            exits.USAGE,
        )
    return StackApi(url, outputs.get(AUTH_OUTPUT, "").strip().lower(), region_name)
