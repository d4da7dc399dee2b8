"""Deploying: the committed samconfig.toml, and `sam deploy --guided` answered like a new user.

The guided check drives the real SAM CLI's prompts from stdin, with dummy credentials and every
AWS endpoint pointed at a closed port on 127.0.0.1, so it needs no account and no network: it
passes when the prompts are all answered and SAM goes to AWS for its managed bucket.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.template.conftest import ROOT, TEMPLATE, sam_cli

SAMCONFIG = ROOT / "samconfig.toml"
STACK_NAMES = {
    "default": "capture-bridge",
    "staging": "capture-bridge-staging",
    "prod": "capture-bridge-prod",
}
#: The resolver's schedule is "<stack>-resolver-tick", and schedule names are at most 64 long.
LONGEST_STACK_NAME = 64 - len("-resolver-tick")
REQUIRED_CAPABILITY = "CAPABILITY_IAM"
#: What a new user types during `sam deploy --guided` (Enter for the rest): the helpdesk is set
#: up in the secret, and Zendesk's subdomain parameter is optional.
REQUIRED_ANSWERS = {"ZendeskSubdomain": "acme"}
#: The webhook has no API Gateway authorizer on purpose: every call proves itself by its HMAC
#: signature, so "has no authentication. Is this okay?" is answered yes.
NO_AUTHENTICATION_ANSWER = "y"
GUIDED_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    with SAMCONFIG.open("rb") as handle:
        return tomllib.load(handle)


# --- samconfig.toml ----------------------------------------------------------------------------


@pytest.mark.parametrize(("environment", "stack_name"), STACK_NAMES.items())
def test_each_environment_deploys_its_own_stack_safely(
    samconfig: dict[str, Any], environment: str, stack_name: str
) -> None:
    # given an environment's deploy settings (SAM reads each environment on its own)
    deploy = samconfig[environment]["deploy"]["parameters"]
    # then it names its stack, asks before changing it, and needs no bucket of its own
    assert deploy["stack_name"] == stack_name
    assert samconfig[environment]["global"]["parameters"]["stack_name"] == stack_name
    assert REQUIRED_CAPABILITY in deploy["capabilities"].split()
    assert deploy["confirm_changeset"] is True
    assert deploy["resolve_s3"] is True
    # and leaves the region to the user's AWS configuration
    assert "region" not in deploy
    assert "region" not in samconfig[environment]["global"]["parameters"]
    assert len(stack_name) <= LONGEST_STACK_NAME


def test_environments_are_separate_stacks(samconfig: dict[str, Any]) -> None:
    # given the environments' stack names
    names = [samconfig[env]["deploy"]["parameters"]["stack_name"] for env in STACK_NAMES]
    # then no two environments take turns on one stack
    assert len(set(names)) == len(names)


def test_the_local_runner_uses_the_default_stack_name() -> None:
    # given the local runner, which names its table after samconfig's default stack
    from local_runner.template import load_template

    # when it reads the real template
    loaded = load_template(TEMPLATE)
    # then locally the service (metrics' dimension) is that stack's name too
    assert loaded.stack_name == STACK_NAMES["default"]
    webhook = loaded.functions["WebhookFunction"]
    assert webhook.environment["POWERTOOLS_SERVICE_NAME"] == STACK_NAMES["default"]


def test_samconfig_documents_the_required_parameters(template: dict[str, Any]) -> None:
    # given the parameters without a default (a deploy must name them)
    required = [name for name, p in template["Parameters"].items() if "Default" not in p]
    text = SAMCONFIG.read_text()
    # then there are none (a stack for any helpdesk deploys with the defaults) and samconfig.toml
    # marks none as required
    assert required == []
    assert "REQUIRED" not in text
    for name in required:
        [line] = [line for line in text.splitlines() if f"#   {name}" in line]
        assert "REQUIRED" in line, name


def test_samconfig_sets_no_parameter_values(samconfig: dict[str, Any]) -> None:
    # given the committed environments
    # then none carries parameter values: a subdomain or an address is each team's own
    for environment in STACK_NAMES:
        assert "parameter_overrides" not in samconfig[environment]["deploy"]["parameters"]


# --- sam deploy --guided -----------------------------------------------------------------------


def _closed_local_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: a connection to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _guided_answers(template: dict[str, Any]) -> list[str]:
    """What a new user types: Enter everywhere except the required values."""
    answers = ["", ""]  # stack name (samconfig's), region (the environment's)
    answers += [REQUIRED_ANSWERS.get(name, "") for name in template["Parameters"]]
    answers += ["", "", ""]  # confirm changes, allow IAM role creation, disable rollback
    answers += [NO_AUTHENTICATION_ANSWER]  # WebhookFunction has no authentication
    answers += ["", "", ""]  # save arguments, to samconfig.toml, environment default
    return answers


def test_guided_deploy_with_enter_everywhere_but_required_values_gets_to_aws(
    template: dict[str, Any], tmp_path: Path
) -> None:
    # given a copy of the project (guided deploy may rewrite samconfig.toml), a fresh home whose
    # SAM CLI checked its version just now, dummy credentials and no reachable AWS endpoint
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, project / name)
    (home / ".aws-sam").mkdir(parents=True)
    (home / ".aws-sam" / "metadata.json").write_text(
        json.dumps({"telemetryEnabled": False, "lastVersionCheck": time.time()})
    )
    endpoint = f"http://127.0.0.1:{_closed_local_port()}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_MAX_ATTEMPTS": "1",
        "SAM_CLI_TELEMETRY": "0",
    }
    answers = _guided_answers(template)

    # when a new user runs the guided deploy
    result = subprocess.run(  # noqa: S603 - fixed arguments, our own template
        [sam_cli(), "deploy", "--guided"],
        input="".join(f"{answer}\n" for answer in answers),
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=GUIDED_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr

    # then every prompt was answered in the order SAM asked (parameters in template order)
    prompted = [
        chunk.split(" [", 1)[0] for chunk in output.split("Parameter ")[1:] if " [" in chunk
    ]
    assert prompted == list(template["Parameters"]), output
    assert "has no authentication. Is this okay?" in output, output
    # and nothing refused it: not the security question, not a parameter, not stdin running out
    assert "Security Constraints Not Satisfied" not in output, output
    assert "Aborted" not in output, output
    # but it got to the point where it needs AWS, and went only where we pointed it
    assert "Looking for resources needed for deployment" in output, output
    assert f'Could not connect to the endpoint URL: "{endpoint}/"' in output, output
    assert result.returncode != 0
    # and the committed samconfig.toml was neither needed nor touched
    assert (project / "samconfig.toml").read_text() == SAMCONFIG.read_text()
