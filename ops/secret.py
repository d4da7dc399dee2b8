"""`ops secret`: merge keys into the stack's secret, never replacing what is already there."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from capture_bridge.api import sessions as sessions_api
from capture_bridge.capture import provider_specs
from capture_bridge.helpdesks import helpdesk_specs
from capture_bridge.settings import SECRET_CACHE_SECONDS
from ops.stack import SECRET_OUTPUT, Aws, OpsError, Stack, aws_problem

Prompt = Callable[[str], str]
SESSIONS_API = "sessions"


def known_keys() -> dict[str, tuple[str, ...]]:
    """Each integration's secret keys, from the layer's registries (helpdesks first), then the
    sessions API's (its bearer token, for a stack with `SessionsApiAuth=token`)."""
    keys = {spec.name: spec.secret_keys for spec in helpdesk_specs()}
    keys.update({spec.name: spec.secret_keys for spec in provider_specs()})
    keys[SESSIONS_API] = tuple(sessions_api.SECRET_KEYS)
    return keys


def optional_keys() -> tuple[str, ...]:
    """Keys with working defaults that an integration also reads from the secret (set by name)."""
    return tuple(key for spec in helpdesk_specs() for key in spec.optional_keys)


def read_secret(aws: Aws, secret_id: str) -> tuple[dict[str, Any], str | None]:
    """The secret's JSON object and its version id; `{}` and None when it has no value yet."""
    try:
        answer = aws.secretsmanager.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise OpsError(f"Could not read the secret: {aws_problem(exc)}") from None
        # The stack creates the secret without a value: no version yet is an empty secret.
        try:
            aws.secretsmanager.describe_secret(SecretId=secret_id)
        except ClientError:
            raise OpsError(f"The secret {secret_id} does not exist.") from None
        return {}, None
    except BotoCoreError as exc:
        raise OpsError(f"Could not read the secret: {aws_problem(exc)}") from None
    try:
        payload = json.loads(answer.get("SecretString") or "{}")
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise OpsError(
            "The secret does not hold a JSON object, so it cannot be merged into; fix it in "
            "the Secrets Manager console (the functions cannot read it either)."
        )
    return payload, answer.get("VersionId")


def _is_set(values: Mapping[str, Any], key: str) -> bool:
    value = values.get(key)
    return value is not None and str(value).strip() != ""


def key_report(values: Mapping[str, Any]) -> list[str]:
    """One line per integration: which of its keys are set and which are missing."""
    lines = []
    for integration, keys in known_keys().items():
        states = [f"{key} {'set' if _is_set(values, key) else 'missing'}" for key in keys]
        lines.append(f"  {integration:<11} {', '.join(states)}")
    return lines


def _refuse_unknown(names: Iterable[str], known: list[str]) -> None:
    unknown = [name for name in names if name not in known]
    if unknown:
        raise OpsError(f"Unknown key {', '.join(unknown)}. Known keys: {', '.join(known)}.")


def _read_value(key: str, stdin: TextIO, prompt: Prompt) -> str:
    """A value for `--set`: hidden prompt on a terminal, else one line of stdin."""
    raw = prompt(f"{key}: ") if stdin.isatty() else stdin.readline()
    value = raw.strip()
    if not value:
        raise OpsError(f"No value for {key} was given on stdin; nothing was changed.")
    return value


def run_secret(
    aws: Aws,
    stack: Stack,
    *,
    set_keys: list[str],
    unset_keys: list[str],
    stdin: TextIO,
    prompt: Prompt,
) -> int:
    """Set, keep or remove keys of the secret; print which keys are set, never a value."""
    secret_id = stack.output(SECRET_OUTPUT)
    known = [*(key for keys in known_keys().values() for key in keys), *optional_keys()]
    _refuse_unknown([*set_keys, *unset_keys], known)
    current, version = read_secret(aws, secret_id)

    changes: dict[str, str | None] = {}
    if set_keys or unset_keys:
        for key in set_keys:
            changes[key] = _read_value(key, stdin, prompt)
        changes.update(dict.fromkeys(unset_keys))
    else:
        print(f"Secret of {stack.name}. Enter a new value, or press Enter to keep the current one.")
        for integration, keys in known_keys().items():
            print(f"{integration}:")
            for key in keys:
                state = "set" if _is_set(current, key) else "not set"
                typed = prompt(f"  {key} ({state}): ").strip()
                if typed:
                    changes[key] = typed

    merged = dict(current)
    for key, change in changes.items():
        if change is None:
            merged.pop(key, None)
        else:
            merged[key] = change
    if merged == current:
        print("Nothing changed.")
    else:
        _write(aws, secret_id, merged, version)
        for key, change in changes.items():
            print(f"{key}: {'removed' if change is None else 'stored'}")
    print("Keys per integration:")
    for line in key_report(merged):
        print(line)
    if merged != current:
        print(
            f"Running functions pick this up within {int(SECRET_CACHE_SECONDS // 60)} minutes "
            "(capture_bridge.settings.SECRET_CACHE_SECONDS); new instances at once."
        )
    return 0


def _write(aws: Aws, secret_id: str, values: dict[str, Any], version: str | None) -> None:
    """Store `values`, unless someone changed the secret since it was read."""
    # Secrets Manager has no compare-and-swap; a re-read narrows the window of losing a
    # concurrent change to the moment between this read and the write.
    _, latest = read_secret(aws, secret_id)
    if latest != version:
        raise OpsError(
            "The secret changed while you were editing it; nothing was written. Run again."
        )
    try:
        aws.secretsmanager.put_secret_value(
            SecretId=secret_id, SecretString=json.dumps(values, sort_keys=True)
        )
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"Could not store the secret: {aws_problem(exc)}") from None
