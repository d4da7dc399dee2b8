"""`ops preflight`: what `sam build` and `sam deploy` need on this machine, checked offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ops import ROOT

SAMCONFIG = ROOT / "samconfig.toml"
LAMBDA_PYTHON = "python3.13"
PYENV_HINT = (
    "sam build needs python3.13 (the functions' runtime). With pyenv run "
    "`pyenv install 3.13`, then `pyenv shell 3.13` (this shell) or `pyenv local 3.13` "
    "(this directory); or build in Docker with `sam build --use-container`."
)

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed interpreter name from PATH, no shell
        command, capture_output=True, text=True, timeout=30, check=False
    )


def check_python(which: Callable[[str], str | None] | None = None, run: Runner = _run) -> str:
    """'' when a working python3.13 is first on PATH, else the problem and what to do."""
    found = (which or shutil.which)(LAMBDA_PYTHON)
    if found is None:
        return f"no {LAMBDA_PYTHON} on PATH. {PYENV_HINT}"
    try:
        result = run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{found} does not run ({type(exc).__name__}). {PYENV_HINT}"
    if result.returncode != 0:
        # A pyenv shim exists for every version some environment has; it fails (exit 127,
        # "pyenv: python3.13: command not found") when the active one has no 3.13.
        said = (result.stderr or result.stdout).strip().splitlines()
        first = said[0] if said else f"exit {result.returncode}"
        return f"{found} is on PATH but fails: {first}. {PYENV_HINT}"
    if result.stdout.strip() != "3.13":
        return f"{found} is Python {result.stdout.strip()}, not 3.13. {PYENV_HINT}"
    return ""


def check_credentials() -> str:
    """'' when AWS credentials can be found without asking the network, else the problem."""
    import botocore.session

    # The instance metadata service is a network call (and a one-second wait off EC2).
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    try:
        credentials = botocore.session.Session().get_credentials()
    except Exception as exc:  # any failure here means "no usable credentials"
        return f"AWS credentials could not be loaded ({type(exc).__name__}: {exc})"
    if credentials is None:
        return (
            "no AWS credentials: run `aws configure` (or `aws sso login --profile …` and set "
            "AWS_PROFILE), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return ""


def samconfig_env(env: str, path: Path = SAMCONFIG) -> tuple[dict[str, Any], str]:
    """The deploy parameters of config env `env`, and the problem when there are none."""
    if not path.exists():
        return {}, f"{path.name} is missing: it names the stack of each ENV"
    try:
        config = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        return {}, f"{path.name} is not valid TOML: {exc}"
    section = config.get(env)
    if not isinstance(section, dict):
        names = ", ".join(key for key, value in config.items() if isinstance(value, dict))
        return {}, f"{path.name} has no [{env}] environment (it has: {names})"
    parameters: dict[str, Any] = {}
    for command in ("global", "deploy"):
        parameters.update(section.get(command, {}).get("parameters", {}))
    return parameters, ""


def check_region(parameters: dict[str, Any]) -> str:
    """'' when sam deploy will know the region (samconfig, environment or AWS config)."""
    if parameters.get("region"):
        return ""
    import botocore.session

    if botocore.session.Session().get_config_variable("region"):
        return ""
    return "no AWS region: set `region` in samconfig.toml, AWS_REGION, or run `aws configure`"


def run_preflight(env: str) -> int:
    """Print each check; 1 when `sam build` / `sam deploy` would fail for a reason found here."""
    parameters, samconfig_problem = samconfig_env(env)
    checks = {
        f"{LAMBDA_PYTHON} for sam build": check_python(),
        "AWS credentials": check_credentials(),
        f"samconfig.toml [{env}]": samconfig_problem,
        "AWS region": check_region(parameters),
    }
    for name, problem in checks.items():
        print(f"  {'PROBLEM' if problem else 'ok':<8} {name}" + (f": {problem}" if problem else ""))
    if shutil.which("aws") is None:
        print("  note     no AWS CLI: not needed, `make secret` fills the secret")
    problems = [problem for problem in checks.values() if problem]
    if problems:
        print(f"Deploy prerequisites: {len(problems)} problem(s); nothing was built or deployed.")
        return 1
    return 0
