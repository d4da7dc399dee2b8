"""The command line, the deploy preflight and the Makefile targets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ops import ROOT
from ops.cli import main
from ops.preflight import check_python, check_region, pyenv_versions
from ops.stack import Aws, OpsError, configured_region
from tests.ops.conftest import Deployed

PYENV_FAILURE = "pyenv: python3.13: command not found\n"
SHIM = "/home/me/.pyenv/shims/python3.13"


def completed(code: int, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["python3.13"], code, out, err)


def test_a_pyenv_shim_that_fails_gets_a_plain_hint() -> None:
    # given a python3.13 shim that exits 127 because the active pyenv version lacks it
    def check(installed: list[str]) -> str:
        return check_python(
            which=lambda name: SHIM,
            run=lambda command: completed(127, err=PYENV_FAILURE),
            installed=installed,
        )

    # then the hint quotes the failure and says how to get a real one: select the 3.13 pyenv
    # has (the usual case), or install one first when it has none
    assert "pyenv: python3.13: command not found" in check([])
    assert "`pyenv install 3.13`, then `pyenv local 3.13`" in check([])
    assert "pyenv has 3.13.1 installed but does not select it here" in check(["3.13.1"])
    assert "run `pyenv local 3.13.1` in this directory" in check(["3.13.1"])
    assert "pyenv install" not in check(["3.13.1"])


def test_pyenv_versions_lists_the_installed_313s(tmp_path: Path) -> None:
    # given a pyenv root with 3.12, 3.13.0 and an unfinished 3.13.1 (no python3.13 in it)
    for version, complete in (("3.12.1", True), ("3.13.0", True), ("3.13.1", False)):
        (tmp_path / "versions" / version / "bin").mkdir(parents=True)
        if complete:
            (tmp_path / "versions" / version / "bin" / f"python{version[:4]}").touch()

    # then only the usable 3.13 is found, and a machine without pyenv has none
    assert pyenv_versions({"PYENV_ROOT": str(tmp_path)}) == ["3.13.0"]
    assert pyenv_versions({"PYENV_ROOT": str(tmp_path / "absent")}) == []


def test_a_working_python313_passes_and_others_do_not() -> None:
    assert check_python(which=lambda name: SHIM, run=lambda command: completed(0, "3.13\n")) == ""
    assert "not 3.13" in check_python(
        which=lambda name: SHIM, run=lambda command: completed(0, "3.12\n")
    )
    assert "no python3.13 on PATH" in check_python(which=lambda name: None, installed=[])


def test_make_build_checks_python313_before_sam_build(tmp_path: Path) -> None:
    # given a PATH whose python3.13 is a pyenv shim that fails, as when 3.13 is not selected
    shim = tmp_path / "python3.13"
    shim.write_text(f"#!/bin/sh\nprintf '{PYENV_FAILURE}' >&2\nexit 127\n")
    shim.chmod(0o755)
    env = os.environ | {"PATH": f"{tmp_path}:/usr/bin:/bin", "PYENV_ROOT": str(tmp_path)}

    # when the build's own check runs
    result = subprocess.run(
        [sys.executable, "-m", "ops", "preflight", "--build"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    # then it fails with the reason and the fix, not SAM's "Binary validation failed"
    assert result.returncode == 1
    assert f"PROBLEM  python3.13 for sam build: {shim} is on PATH but fails" in result.stdout
    assert "pyenv install 3.13" in result.stdout
    assert "Build prerequisites: 1 problem(s)" in result.stdout
    # and `make build` runs that check before `sam build`, and explains SAM's warnings first
    lines = make_dry_run("build")
    check = next(i for i, line in enumerate(lines) if "preflight --build" in line)
    assert "'requirements.txt file not found' once per function" in lines[check + 1]
    assert lines[check + 2].endswith("sam build")


def make_dry_run(
    target: str, *assignments: str, environ: dict[str, str] | None = None
) -> list[str]:
    """The commands `make -n TARGET` would run, with `environ` as the environment."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [make, "-s", "-n", "-C", str(ROOT), target, *assignments],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ if environ is None else environ,
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "eu-north-1"}, "eu-north-1"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-north-1"}, "eu-west-1"),
    ],
)
def test_region_comes_from_aws_region_or_aws_default_region(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    # given only these region variables (AWS_REGION wins, as in the AWS CLI and Lambda)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    # then the ops commands connect there, preflight finds it, and make passes it on to
    # sam deploy and to every ops command, which botocore alone would not do for AWS_REGION
    assert configured_region() == expected
    assert Aws.connect(None).region == expected
    assert check_region({}, configured_region()) == ""
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith("AWS_")
    } | variables
    deploy = make_dry_run("deploy", f"SAM_VENV={ROOT / '.venv-sam'}", environ=environ)
    assert any(f"sam deploy --config-env default --region {expected}" in line for line in deploy)
    assert any(f"preflight --env default --region {expected}" in line for line in deploy)
    for target in ("doctor", "secret", "redrive"):
        assert make_dry_run(target, environ=environ)[-1].endswith(f"--region {expected}")
    # and REGION=… on the command line wins over both
    doctor = make_dry_run("doctor", "REGION=us-west-2", environ=environ)
    assert doctor[-1].endswith("--region us-west-2")


def test_an_explicit_region_wins_and_none_at_all_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert configured_region("ap-south-1") == "ap-south-1"
    # given no region anywhere, then preflight says every way to set one
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert configured_region() == ""
    problem = check_region({}, "")
    assert "AWS_REGION or AWS_DEFAULT_REGION" in problem
    assert "REGION=… with make" in problem


def test_samconfig_keeps_no_region_and_preflight_says_so_when_one_is_added() -> None:
    # samconfig.toml names no region: only sam deploy would read it, not doctor/secret/redrive
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for env, section in config.items():
        if isinstance(section, dict):
            for command in section.values():
                assert "region" not in command.get("parameters", {}), env
    problem = check_region({"region": "eu-west-1"}, "eu-west-1")
    assert "samconfig.toml sets region = 'eu-west-1'" in problem
    assert "AWS_REGION" in problem


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

    # given a machine with credentials and a region (AWS_REGION alone) but no python3.13
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")

    # when the preflight runs through the command line
    code = main(["preflight", "--env", "default"])

    # then the python problem is named with its hint, and nothing else fails
    out = capsys.readouterr().out
    assert code == 1
    assert "PROBLEM  python3.13 for sam build: no python3.13 on PATH" in out
    assert "ok       AWS credentials" in out
    assert "ok       AWS region (eu-west-1)" in out


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
