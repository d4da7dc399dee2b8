"""`ops preflight`: what `sam build` and `sam deploy` need on this machine, checked offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ops import ROOT
from ops.stack import REGION_SOURCES, configured_region

SAMCONFIG = ROOT / "samconfig.toml"
LAMBDA_PYTHON = "python3.13"
LAMBDA_VERSION = "3.13"

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def pyenv_versions(environ: Mapping[str, str] | None = None) -> list[str]:
    """The Python 3.13 versions pyenv has installed (none when there is no pyenv)."""
    environ = os.environ if environ is None else environ
    root = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = (root / "versions").glob(f"{LAMBDA_VERSION}*") if (root / "versions").is_dir() else []
    return sorted(path.name for path in found if (path / "bin" / LAMBDA_PYTHON).exists())


def python_hint(installed: list[str]) -> str:
    """What to do: select an installed 3.13 (the usual case with pyenv), else install one."""
    docker = "or build in Docker with `.venv-sam/bin/sam build --use-container`"
    if installed:
        version = installed[-1]
        return (
            f"pyenv has {version} installed but does not select it here: run "
            f"`pyenv local {version}` in this directory (or `pyenv shell {version}` for this "
            f"shell); {docker}."
        )
    return (
        "sam build needs python3.13 (the functions' runtime). With pyenv: "
        f"`pyenv install {LAMBDA_VERSION}`, then `pyenv local {LAMBDA_VERSION}`; {docker}."
    )


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed interpreter name from PATH, no shell
        command, capture_output=True, text=True, timeout=30, check=False
    )


def check_python(
    which: Callable[[str], str | None] | None = None,
    run: Runner = _run,
    installed: list[str] | None = None,
) -> str:
    """'' when a working python3.13 is first on PATH, else the problem and what to do."""
    found = (which or shutil.which)(LAMBDA_PYTHON)
    problem = ""
    if found is None:
        problem = f"no {LAMBDA_PYTHON} on PATH"
    else:
        try:
            result = run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = f"{found} does not run ({type(exc).__name__})"
        else:
            if result.returncode != 0:
                # A pyenv shim exists for every version some environment has; it fails (exit
                # 127, "pyenv: python3.13: command not found") when the selected one lacks it.
                said = (result.stderr or result.stdout).strip().splitlines()
                first = said[0] if said else f"exit {result.returncode}"
                problem = f"{found} is on PATH but fails: {first}"
            elif result.stdout.strip() != LAMBDA_VERSION:
                problem = f"{found} is Python {result.stdout.strip()}, not {LAMBDA_VERSION}"
    if not problem:
        return ""
    return f"{problem}. {python_hint(pyenv_versions() if installed is None else installed)}"


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


def check_region(parameters: dict[str, Any], region: str) -> str:
    """'' when `region` (see `configured_region`) is set and samconfig.toml names none.

    samconfig.toml holds no region on purpose: `make doctor`, `secret` and `redrive` do not read
    it, so a stack deployed to its region would be looked for in another.
    """
    if parameters.get("region"):
        return (
            f"samconfig.toml sets region = {parameters['region']!r}, which only `sam deploy` "
            "reads: remove it, and set AWS_REGION (or pass REGION=… to make) instead"
        )
    return "" if region else f"no AWS region: {REGION_SOURCES}"


def run_preflight(env: str, region: str | None = None, build_only: bool = False) -> int:
    """Print each check; 1 when `sam build` / `sam deploy` would fail for a reason found here."""
    checks = {f"{LAMBDA_PYTHON} for sam build": check_python()}
    if not build_only:
        parameters, samconfig_problem = samconfig_env(env)
        found = configured_region(region)
        checks |= {
            "AWS credentials": check_credentials(),
            f"samconfig.toml [{env}]": samconfig_problem,
            f"AWS region{f' ({found})' if found else ''}": check_region(parameters, found),
        }
    for name, problem in checks.items():
        print(f"  {'PROBLEM' if problem else 'ok':<8} {name}" + (f": {problem}" if problem else ""))
    if not build_only and shutil.which("aws") is None:
        print("  note     no AWS CLI: not needed, `make secret` fills the secret")
    problems = [problem for problem in checks.values() if problem]
    if problems:
        what = "Build" if build_only else "Deploy"
        done = "built" if build_only else "built or deployed"
        print(f"{what} prerequisites: {len(problems)} problem(s); nothing was {done}.")
        return 1
    return 0
