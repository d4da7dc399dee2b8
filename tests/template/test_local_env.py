"""`make local-env`'s env.json, read the way `sam local invoke --env-vars` reads it.

SAM CLI sets only the variables the template declares for a function (Globals included); their
values come from env.json's `Parameters` (every function) and logical-id keys (one function),
then the shell, then the template. The test runs SAM CLI's own code for that, without Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_runner.__main__ import main as local_runner
from local_runner.dynamodb import ENDPOINT_VARIABLE, EmbeddedDynamoDB
from local_runner.sam_env import container_endpoint
from tests.template.conftest import ROOT, TEMPLATE, sam_cli

# SAM CLI's resolution of each function's environment (samcli/commands/local/lib/local_lambda.py
# `_make_env_vars`, samcli/local/lambdafn/env_vars.py `resolve`), printed as JSON per function.
SAM_RESOLVES = """
import json, sys, types
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1])
runner = types.SimpleNamespace(
    env_vars_values=json.load(open(sys.argv[2])),
    get_aws_creds=lambda: {},
    is_debugging=lambda: False,
)
print(json.dumps({
    function.name: LocalLambdaRunner._make_env_vars(runner, function).resolve()
    for function in SamFunctionProvider(stacks).get_all()
}))
"""


def integration_keys() -> set[str]:
    """Every key an integration or the bridge keeps in the secret, from the specs."""
    from capture_bridge.api import sessions
    from capture_bridge.capture import provider_specs
    from capture_bridge.helpdesks import helpdesk_specs

    keys = {key for spec in provider_specs() for key in spec.secret_keys}
    keys |= {key for spec in helpdesk_specs() for key in (*spec.secret_keys, *spec.optional_keys)}
    return keys | set(sessions.SECRET_KEYS)


def run_in_sam_cli(script: str, *arguments: str) -> Any:
    """What `script`, run by SAM CLI's own Python with `arguments`, prints as JSON."""
    python = Path(sam_cli()).parent / "python"
    if not python.exists():
        pytest.skip(f"no Python beside the SAM CLI at {sam_cli()}")
    # No shell variables: SAM would take a declared one from the shell before the template.
    clean = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}  # noqa: S108
    result = subprocess.run(  # noqa: S603 - SAM CLI's Python, our template
        [str(python), "-c", script, *arguments],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def sam_local_environment(env_json: Path) -> dict[str, dict[str, str]]:
    """Each function's variables as `sam local invoke --env-vars env_json` would set them."""
    resolved: dict[str, dict[str, str]] = run_in_sam_cli(SAM_RESOLVES, str(TEMPLATE), str(env_json))
    return resolved


def test_every_function_gets_its_keys_table_and_endpoint_from_the_generated_env_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a .env with every integration's keys and a setting, and a DynamoDB to create in
    keys = integration_keys()
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(f"{key}=value-of-{key}\n" for key in sorted(keys)) + "ZENDESK_SUBDOMAIN=acme\n"
    )
    for key in (*keys, ENDPOINT_VARIABLE):
        monkeypatch.delenv(key, raising=False)
    out = tmp_path / "env.json"
    with EmbeddedDynamoDB() as dynamodb:
        assert dynamodb.endpoint_url
        # when `make local-env` runs (`python -m local_runner sam-env`)
        arguments = ["--env-file", str(env_file), "--endpoint", dynamodb.endpoint_url]
        code = local_runner(["sam-env", *arguments, "--out", str(out), "--template", str(TEMPLATE)])
        assert code == 0, capsys.readouterr().err
        tables = boto3.client("dynamodb", endpoint_url=dynamodb.endpoint_url).list_tables()

    # then the file is the owner's alone, and SAM CLI gives every function every key, the
    # setting, the table that now exists, no secret to read, and DynamoDB as the container
    # reaches it
    assert out.stat().st_mode & 0o777 == 0o600
    resolved = sam_local_environment(out)
    assert set(resolved) == {
        "WebhookFunction",
        "SessionsFunction",
        "ResolverFunction",
        "WorkerFunction",
    }
    for name, variables in resolved.items():
        # (the keys as the settings read them in the container, where SAM sets AWS_SAM_LOCAL)
        settings = settings_in_container(variables)
        assert {key: settings.secret(key) for key in keys} == {
            key: f"value-of-{key}" for key in keys
        }, name
        assert variables["ZENDESK_SUBDOMAIN"] == "acme", name
        assert variables["TABLE_NAME"] in tables["TableNames"], name
        assert variables["BRIDGE_SECRET_ID"] == "", name
        assert variables[ENDPOINT_VARIABLE] == container_endpoint(dynamodb.endpoint_url), name
        assert variables[ENDPOINT_VARIABLE].startswith("http://host.docker.internal:"), name


def test_without_env_json_sam_local_would_read_a_secret_and_set_no_key(tmp_path: Path) -> None:
    # Why env.json sets them: SAM resolves a Ref to a resource as its logical id.
    empty = tmp_path / "env.json"
    empty.write_text("{}")
    resolved = sam_local_environment(empty)["WebhookFunction"]
    assert resolved["BRIDGE_SECRET_ID"] == "BridgeSecret"
    assert resolved["TABLE_NAME"] == "SessionsTable"
    assert resolved["BRIDGE_LOCAL_SECRET"] == ""
    assert "ZENDESK_WEBHOOK_SECRET" not in resolved


def settings_in_container(variables: dict[str, str]) -> Any:
    """The settings the functions read from `variables` under `sam local` (AWS_SAM_LOCAL)."""
    from capture_bridge import settings

    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("AWS_", "BRIDGE_")) or name in variables:
                patch.delenv(name)
        for name, value in {**variables, "AWS_SAM_LOCAL": "true"}.items():
            patch.setenv(name, value)
        settings.reset_settings_cache()
        try:
            return settings.get_settings()
        finally:
            settings.reset_settings_cache()


def test_the_local_secret_is_read_only_under_sam_local(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a function with keys in BRIDGE_LOCAL_SECRET (as env.json gives them)
    from capture_bridge import settings

    monkeypatch.setenv("TABLE_NAME", "sessions")
    monkeypatch.delenv("BRIDGE_SECRET_ID", raising=False)
    monkeypatch.setenv("BRIDGE_LOCAL_SECRET", '{"NOTTE_API_KEY": "from-env-json"}')
    for local, expected in (("true", "from-env-json"), ("", "")):
        # when SAM CLI runs it (AWS_SAM_LOCAL=true), and when anything else does (deployed)
        monkeypatch.setenv("AWS_SAM_LOCAL", local)
        settings.reset_settings_cache()
        # then only the local run reads the keys from it
        assert settings.get_settings().secret("NOTTE_API_KEY") == expected
    settings.reset_settings_cache()


def test_the_container_reaches_this_machine_as_host_docker_internal() -> None:
    assert container_endpoint("http://127.0.0.1:8000") == "http://host.docker.internal:8000"
    assert container_endpoint("http://localhost:8000/") == "http://host.docker.internal:8000/"
    assert container_endpoint("http://dynamodb:8000") == "http://dynamodb:8000"


def test_an_empty_variable_never_hides_the_secrets_value(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a deployed function: the template's empty variables, and the secret holding values
    from capture_bridge import settings

    def read_secret(secret_id: str) -> dict[str, str]:
        return {"ZENDESK_WEBHOOK_SECRET": "from-the-secret", "NOTTE_API_KEY": "from-the-secret"}

    monkeypatch.setattr(settings, "_read_secret", read_secret)
    monkeypatch.setenv("BRIDGE_SECRET_ID", "arn:aws:secretsmanager:eu-west-1:1:secret:x")
    monkeypatch.setenv("TABLE_NAME", "sessions")
    monkeypatch.setenv("ZENDESK_WEBHOOK_SECRET", "")
    monkeypatch.setenv("NOTTE_API_KEY", "set-explicitly")
    settings.reset_settings_cache()
    try:
        values = settings.get_settings()
    finally:
        settings.reset_settings_cache()

    # then the secret's value stands, and only a variable with a value wins over it
    assert values.secret("ZENDESK_WEBHOOK_SECRET") == "from-the-secret"
    assert values.secret("NOTTE_API_KEY") == "set-explicitly"


def test_the_declared_variables_fit_lambdas_four_kilobytes(template: dict[str, Any]) -> None:
    # Lambda refuses a function whose variables exceed 4 KB (names and values); intrinsic values
    # are counted generously, as 100 characters each.
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            own = resource["Properties"].get("Environment", {}).get("Variables", {})
            size = sum(
                len(name) + (len(value) if isinstance(value, str) else 100)
                for name, value in (variables | own).items()
            )
            assert size < 4096


def test_env_json_is_ignored_by_git() -> None:
    assert "env.json" in (ROOT / ".gitignore").read_text().splitlines()


def test_no_dynamodb_is_said_with_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given nothing listening on the endpoint, when `make local-env` runs
    out = tmp_path / "env.json"
    code = local_runner(["sam-env", "--endpoint", "http://127.0.0.1:9", "--out", str(out)])

    # then it says what to start, and writes nothing
    assert code == 1
    assert "docker run --rm -p 8000:8000 amazon/dynamodb-local" in capsys.readouterr().err
    assert not out.exists()


# The routes `sam local start-api` serves: SAM CLI's own reader over the template.
SAM_START_API_ROUTES = """
import json, sys
from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1])
print(json.dumps(sorted([route.path, route.function_name] for route in ApiProvider(stacks).routes)))
"""


def test_sam_local_start_api_serves_the_webhook_only_as_docs_local_md_says() -> None:
    # The sessions routes are AWS::ApiGatewayV2::Route resources (their authorizer follows
    # SessionsApiAuth), which SAM CLI's local API does not read. If this changes, so must
    # docs/local.md, which points to `make dev` for the sessions API.
    routes = run_in_sam_cli(SAM_START_API_ROUTES, str(TEMPLATE))
    assert routes == [["/webhooks/{helpdesk}", "WebhookFunction"]]
    assert "`sam local start-api` serves the webhook only" in (ROOT / "docs/local.md").read_text()
