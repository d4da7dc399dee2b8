"""Typed settings, read lazily from the environment and, in AWS, from one Secrets Manager secret.

An environment variable set explicitly wins over the secret: that is how local runs and tests
configure the bridge. This module knows the core settings only; each helpdesk and capture
provider reads and validates its own through the lookups of `Settings`, and declares them in its
module (`SETTINGS`, `SECRET_KEYS`). Nothing here runs at import time.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from capture_bridge.errors import ConfigurationError

# Secrets are re-read after this long so that a rotated value reaches warm functions.
SECRET_CACHE_SECONDS = 300.0
# A webhook refused with the cached settings may re-read them sooner, once they are this old: the
# secret just filled in then answers Zendesk's next test within seconds, not five minutes, while
# a flood of forged calls reads the secret at most once per this period in a warm function.
SECRET_REREAD_FLOOR_SECONDS = 30.0
# Only keys shaped like setting names are taken from the secret.
_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")


def _whole_number(name: str, raw: str, default: int, low: int, high: int) -> int:
    raw = raw.strip()
    if not raw:
        return default
    try:
        number = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= number <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {number}")
    return number


@dataclass(frozen=True)
class Settings:
    """The core settings, validated once per cache period, and lookups for everything else."""

    table_name: str
    capture_max_wait_minutes: int = 30
    # How often a user who is offline is asked again, and the first check interval.
    user_retry_seconds: int = 180
    poll_seconds: int = 30
    resolver_concurrency: int = 8
    # Every setting by name (secret ones included), for the integrations to read their own.
    values: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def capture_max_wait(self) -> timedelta:
        return timedelta(minutes=self.capture_max_wait_minutes)

    def text(self, name: str, default: str = "") -> str:
        """The setting `name`, stripped; `default` when unset or blank."""
        return self.values.get(name, "").strip() or default

    def secret(self, name: str) -> str:
        """A credential exactly as given (only surrounding whitespace is dropped)."""
        return self.values.get(name, "").strip()

    def url(self, name: str, default: str = "") -> str:
        """A base URL without its trailing slash."""
        return self.text(name, default).rstrip("/")

    def number(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number within [low, high]; raises `ConfigurationError` naming the setting."""
        return _whole_number(name, self.values.get(name, ""), default, low, high)

    def choice(self, name: str, default: str, allowed: Iterable[str]) -> str:
        """One of `allowed`; raises `ConfigurationError` listing them."""
        allowed = tuple(allowed)
        value = self.text(name, default)
        if value not in allowed:
            raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value


def settings_from(values: Mapping[str, str]) -> Settings:
    """Build and validate settings from a flat mapping of setting names to strings."""
    table_name = values.get("TABLE_NAME", "").strip()
    if not table_name:
        raise ConfigurationError("TABLE_NAME is not set")

    def number(name: str, default: int, low: int, high: int) -> int:
        return _whole_number(name, values.get(name, ""), default, low, high)

    return Settings(
        table_name=table_name,
        capture_max_wait_minutes=number("CAPTURE_MAX_WAIT_MINUTES", 30, 1, 1440),
        user_retry_seconds=number("CAPTURE_USER_RETRY_SECONDS", 180, 1, 3600),
        poll_seconds=number("CAPTURE_POLL_SECONDS", 30, 1, 3600),
        resolver_concurrency=number("RESOLVER_CONCURRENCY", 8, 1, 64),
        values=dict(values),
    )


# `sam local` only: the secret's JSON in one variable (`make local-env` writes it to env.json).
# Read only where SAM CLI says the function runs locally, so that a value typed into a deployed
# function's configuration (plain text there) is never used.
LOCAL_SECRET_VARIABLE = "BRIDGE_LOCAL_SECRET"  # noqa: S105 - a variable's name, not a secret


def _local_secret() -> dict[str, str]:
    raw = os.environ.get(LOCAL_SECRET_VARIABLE, "").strip()
    if not raw or os.environ.get("AWS_SAM_LOCAL") != "true":
        return {}
    try:
        payload: Any = json.loads(raw)
    except ValueError:
        raise ConfigurationError(f"{LOCAL_SECRET_VARIABLE} must hold a JSON object") from None
    if not isinstance(payload, dict):
        raise ConfigurationError(f"{LOCAL_SECRET_VARIABLE} must hold a JSON object")
    return _secret_values(payload)


def _secret_values(payload: Mapping[Any, Any]) -> dict[str, str]:
    """The settings in a secret's JSON object: setting names with a value."""
    return {
        key: str(value)
        for key, value in payload.items()
        if isinstance(key, str) and _SETTING_NAME.match(key) and value not in (None, "")
    }


def _read_secret(secret_id: str) -> dict[str, str]:
    import boto3  # imported here: only deployed functions with a secret pay for it
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
        payload: Any = json.loads(answer["SecretString"])
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ResourceNotFoundException" and "secret value" in str(
            error.get("Message", "")
        ):
            # The stack creates the secret empty; until someone fills it in, nothing is set.
            return {}
        raise ConfigurationError(f"could not read the bridge secret: {type(exc).__name__}") from exc
    except (BotoCoreError, KeyError, ValueError) as exc:
        # The message names the failure, never the secret's value.
        raise ConfigurationError(f"could not read the bridge secret: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise ConfigurationError("the bridge secret must hold a JSON object")
    return _secret_values(payload)


_lock = threading.Lock()
_cached: tuple[float, Settings] | None = None
# The clock of the cache; tests move it by hand.
monotonic: Callable[[], float] = time.monotonic


def _read(now: float) -> Settings:
    """Read and cache the settings; the caller holds `_lock`."""
    global _cached
    values: dict[str, str] = {}
    secret_id = os.environ.get("BRIDGE_SECRET_ID", "").strip()
    if secret_id:
        values.update(_read_secret(secret_id))
    values.update(_local_secret())
    values.update({key: value for key, value in os.environ.items() if value != ""})
    settings = settings_from(values)
    _cached = (now, settings)
    return settings


def get_settings() -> Settings:
    """Settings from the environment over the secret named by `BRIDGE_SECRET_ID`, cached briefly."""
    with _lock:
        now = monotonic()
        if _cached is not None and now - _cached[0] < SECRET_CACHE_SECONDS:
            return _cached[1]
        return _read(now)


def reread_settings(floor: float = SECRET_REREAD_FLOOR_SECONDS) -> Settings | None:
    """Settings read afresh if the cached copy is at least `floor` seconds old; else None.

    For a caller that found the cached settings wanting (a webhook refused for its signature).
    The fresh copy restarts the cache, so the secret is read at most once per `floor`.
    """
    with _lock:
        now = monotonic()
        if _cached is not None and now - _cached[0] < floor:
            return None
        return _read(now)


def reset_settings_cache() -> None:
    """Forget cached settings (tests and the local runner change the environment)."""
    global _cached
    with _lock:
        _cached = None
