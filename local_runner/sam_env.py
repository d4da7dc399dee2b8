"""`make local-env`: env.json for `sam local invoke`, and the table it names in your DynamoDB.

SAM CLI sets only the variables a function declares in the template (Globals included), from the
env.json's `Parameters` key (every function) or a logical id's key (that function alone). The
file carries every declared variable that .env or the environment sets, the local table, the
DynamoDB endpoint as the function's container reaches it, and the secret's keys (which the
template never declares) as one JSON object in `BRIDGE_LOCAL_SECRET`, read only under `sam local`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from local_runner.dynamodb import ENDPOINT_VARIABLE, dynamodb_client, ensure_table
from local_runner.template import SamTemplate

# The settings' `LOCAL_SECRET_VARIABLE` (the layer is imported lazily, so it is named here too).
LOCAL_SECRET_VARIABLE = "BRIDGE_LOCAL_SECRET"  # noqa: S105 - a variable's name, not a secret

# Without it, SAM passes the secret's logical id ("BridgeSecret") and the settings would ask
# Secrets Manager for it; empty, they read the variables alone.
SECRET_ID_VARIABLE = "BRIDGE_SECRET_ID"  # noqa: S105 - a variable's name, not a secret
# DynamoDB Local's port (`docker run -p 8000:8000 amazon/dynamodb-local`).
DEFAULT_ENDPOINT = "http://127.0.0.1:8000"
_THIS_MACHINE = ("127.0.0.1", "localhost", "::1")


def secret_keys() -> frozenset[str]:
    """Every key the bridge keeps in its secret: each integration's (by its spec), the API's.

    Needs `capture_bridge` importable (the runner puts the layer on `sys.path`).
    """
    from capture_bridge.api import sessions
    from capture_bridge.capture import provider_specs
    from capture_bridge.helpdesks import helpdesk_specs

    keys = {key for spec in provider_specs() for key in spec.secret_keys}
    keys |= {key for spec in helpdesk_specs() for key in (*spec.secret_keys, *spec.optional_keys)}
    return frozenset(keys | set(sessions.SECRET_KEYS))


def container_endpoint(endpoint: str) -> str:
    """`endpoint` as seen from a container: this machine is host.docker.internal there."""
    parts = urlsplit(endpoint)
    if parts.hostname not in _THIS_MACHINE:
        return endpoint
    netloc = "host.docker.internal" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def sam_env(
    template: SamTemplate, values: Mapping[str, str], endpoint: str
) -> dict[str, dict[str, str]]:
    """The env.json for every function: what `values` sets of the declared variables, and more.

    More: each table variable names the local table (unless `values` names another), the secret
    id is empty unless given, and the DynamoDB endpoint is `endpoint`.
    """
    declared = {name for function in template.functions.values() for name in function.environment}
    parameters = {key: value for key, value in values.items() if key in declared and value.strip()}
    # The secret's keys, which the template does not declare, go in as the secret's JSON.
    kept = {key: value for key, value in values.items() if key in secret_keys() and value.strip()}
    if kept:
        parameters[LOCAL_SECRET_VARIABLE] = json.dumps(dict(sorted(kept.items())))
    for function in template.functions.values():
        for variable, table_id in function.table_env_vars.items():
            parameters.setdefault(variable, template.tables[table_id].name)
    parameters.setdefault(SECRET_ID_VARIABLE, "")
    parameters[ENDPOINT_VARIABLE] = endpoint
    return {"Parameters": dict(sorted(parameters.items()))}


def table_names(template: SamTemplate, env: Mapping[str, dict[str, str]]) -> dict[str, str]:
    """Each table's name in `env` (logical id -> name), as the functions will use it."""
    parameters = env["Parameters"]
    return {
        table_id: parameters[variable]
        for function in template.functions.values()
        for variable, table_id in function.table_env_vars.items()
    }


def write_sam_env(
    template: SamTemplate,
    values: Mapping[str, str],
    endpoint: str,
    out: Path,
    for_container: str | None = None,
) -> dict[str, str]:
    """Create the tables at `endpoint` and write env.json to `out` (owner-only: it holds keys).

    Returns the tables created or found (logical id -> name).
    """
    env = sam_env(template, values, for_container or container_endpoint(endpoint))
    client = dynamodb_client(endpoint)
    names = table_names(template, env)
    for table_id, name in names.items():
        ensure_table(client, template.tables[table_id], name)
    out.touch(mode=0o600, exist_ok=True)
    out.chmod(0o600)
    out.write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")
    return names


def local_values(env_file: Path | None) -> dict[str, str]:
    """The settings of a local run: `env_file`'s, and the environment's over them."""
    from local_runner.runner import load_env_file

    from_file = load_env_file(env_file) if env_file and env_file.is_file() else {}
    return from_file | {key: value for key, value in os.environ.items() if value}
