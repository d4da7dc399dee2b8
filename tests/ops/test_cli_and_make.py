"""The command line, the deploy preflight and the Makefile targets."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest

from ops import ROOT
from ops.cli import main
from ops.preflight import check_python
from ops.stack import Aws, OpsError
from tests.ops.conftest import Deployed

PYENV_FAILURE = "pyenv: python3.13: command not found\n"
SHIM = "/home/me/.pyenv/shims/python3.13"


def completed(code: int, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["python3.13"], code, out, err)


def test_a_pyenv_shim_that_fails_gets_a_plain_hint() -> None:
    # given a python3.13 shim that exits 127 because the active pyenv version lacks it
    problem = check_python(
        which=lambda name: SHIM, run=lambda command: completed(127, err=PYENV_FAILURE)
    )

    # then the hint says how to get a real one
    assert "pyenv: python3.13: command not found" in problem
    assert "pyenv install 3.13" in problem


def test_a_working_python313_passes_and_others_do_not() -> None:
    assert check_python(which=lambda name: SHIM, run=lambda command: completed(0, "3.13\n")) == ""
    assert "not 3.13" in check_python(
        which=lambda name: SHIM, run=lambda command: completed(0, "3.12\n")
    )
    assert "no python3.13 on PATH" in check_python(which=lambda name: None)


def test_make_help_lists_every_target() -> None:
    # given the Makefile's targets
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))

    # when `make -s help` runs
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [make, "-s", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True
    )

    # then each target is listed with its description
    listed = set(re.findall(r"^  make (\S+)", result.stdout, flags=re.MULTILINE))
    assert listed == targets
    assert {"deploy", "secret", "doctor", "redrive", "help"} <= listed


def test_the_makefile_stack_names_match_samconfig() -> None:
    # given samconfig.toml's stack per config env and the Makefile's STACK_<ENV> names
    samconfig = ROOT / "samconfig.toml"
    if not samconfig.exists():
        pytest.skip("samconfig.toml is not there yet")
    config = tomllib.loads(samconfig.read_text())
    makefile = dict(
        re.findall(r"^STACK_(\w+) := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    )

    # then they agree, env by env
    from_samconfig = {
        env: section["deploy"]["parameters"]["stack_name"]
        for env, section in config.items()
        if isinstance(section, dict) and "deploy" in section
    }
    assert makefile == from_samconfig


def test_cli_prints_problems_plainly(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a stack CloudFormation does not know
    from botocore.stub import Stubber

    stubber = Stubber(deployed.aws.cloudformation)
    stubber.add_client_error(
        "describe_stacks", "ValidationError", "Stack with id nope does not exist"
    )
    stubber.activate()

    # when any command runs through the command line
    code = main(["redrive", "--stack", "nope", "--dry-run"], connect=lambda region: deployed.aws)

    # then the error is one plain line and the exit status 1
    assert code == 1
    assert capsys.readouterr().err.startswith("error: There is no stack nope in us-east-1.")


def test_cli_without_a_region_says_how_to_set_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given no region anywhere
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")

    # when doctor runs, then it says how to name a region
    assert main(["doctor", "--stack", "capture-bridge"]) == 1
    assert "No AWS region" in capsys.readouterr().err


def test_connect_builds_clients_for_the_region() -> None:
    aws = Aws.connect("eu-west-1")
    assert aws.region == "eu-west-1"
    with pytest.raises(OpsError):
        raise OpsError("plain")


def test_samconfig_envs_are_read_and_a_missing_one_is_named(
    tmp_path: pytest.TempPathFactory,
) -> None:
    from pathlib import Path

    from ops.preflight import samconfig_env

    # given a samconfig with a default env only
    path = Path(str(tmp_path)) / "samconfig.toml"
    path.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "s"\n')

    # then its parameters are read, and another env is named as missing
    assert samconfig_env("default", path) == ({"stack_name": "s"}, "")
    assert "has no [staging] environment (it has: default)" in samconfig_env("staging", path)[1]
    assert "is missing" in samconfig_env("default", path.with_name("absent.toml"))[1]


def test_preflight_reports_each_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ops import preflight

    # given a machine with credentials and a region but no python3.13
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")

    # when the preflight runs through the command line
    code = main(["preflight", "--env", "default"])

    # then the python problem is named with its hint, and nothing else fails
    out = capsys.readouterr().out
    assert code == 1
    assert "PROBLEM  python3.13 for sam build: no python3.13 on PATH" in out
    assert "ok       AWS credentials" in out
    assert "ok       AWS region" in out


def test_cli_secret_reads_stdin(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    # given a piped value
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-notte-cli\n"))
    deployed.stub_stack()

    # when `secret --set` runs through the command line
    code = main(
        ["secret", "--stack", "capture-bridge", "--set", "NOTTE_API_KEY"],
        connect=lambda region: deployed.aws,
    )

    # then the key is stored and its value not shown
    assert code == 0
    assert deployed.secret() == {"NOTTE_API_KEY": "sk-notte-cli"}
    assert "sk-notte-cli" not in capsys.readouterr().out
