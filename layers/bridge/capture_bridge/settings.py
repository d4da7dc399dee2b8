"""Typed settings, read lazily from the environment and, in AWS, from one Secrets Manager secret.

An environment variable set explicitly wins over the secret: that is how local runs and tests
configure the bridge. Nothing here runs at import time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from capture_bridge.capture.bugpilot import ACTIONS as BUGPILOT_ACTIONS
from capture_bridge.errors import ConfigurationError

# Keys the secret may provide; every other setting comes from the environment only.
SECRET_KEYS = (
    "BUGPILOT_WORKSPACE_ID",
    "BUGPILOT_API_KEY",
    "ZENDESK_EMAIL",
    "ZENDESK_API_TOKEN",
    "ZENDESK_WEBHOOK_SECRET",
)
# Secrets are re-read after this long so that a rotated value reaches warm functions.
SECRET_CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Settings:
    """Everything the functions need, validated once per cache period."""

    table_name: str
    bugpilot_api_url: str = "https://widget-api.bugpilot.io"
    bugpilot_workspace_id: str = ""
    bugpilot_api_key: str = field(default="", repr=False)
    bugpilot_default_action: str = "upload-session"
    zendesk_subdomain: str = ""
    zendesk_api_url: str = ""
    zendesk_email: str = ""
    zendesk_api_token: str = field(default="", repr=False)
    zendesk_webhook_secret: str = field(default="", repr=False)
    capture_max_wait_minutes: int = 30
    # How often a user who is offline is asked again, and the first report poll interval.
    user_retry_seconds: int = 180
    poll_seconds: int = 30
    resolver_concurrency: int = 8

    @property
    def capture_max_wait(self) -> timedelta:
        return timedelta(minutes=self.capture_max_wait_minutes)

    @property
    def zendesk_base_url(self) -> str:
        """`ZENDESK_API_URL` if set, else the subdomain's URL; empty when neither is configured."""
        if self.zendesk_api_url:
            return self.zendesk_api_url.rstrip("/")
        if self.zendesk_subdomain:
            return f"https://{self.zendesk_subdomain}.zendesk.com"
        return ""


def _int(values: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        number = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= number <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {number}")
    return number


def settings_from(values: Mapping[str, str]) -> Settings:
    """Build and validate settings from a flat mapping of setting names to strings."""
    table_name = values.get("TABLE_NAME", "").strip()
    if not table_name:
        raise ConfigurationError("TABLE_NAME is not set")
    default_action = values.get("BUGPILOT_DEFAULT_ACTION", "").strip() or "upload-session"
    if default_action not in BUGPILOT_ACTIONS:
        raise ConfigurationError(
            f"BUGPILOT_DEFAULT_ACTION must be one of {', '.join(BUGPILOT_ACTIONS)}"
        )
    return Settings(
        table_name=table_name,
        bugpilot_api_url=(
            values.get("BUGPILOT_API_URL", "").strip() or "https://widget-api.bugpilot.io"
        ).rstrip("/"),
        bugpilot_workspace_id=values.get("BUGPILOT_WORKSPACE_ID", "").strip(),
        bugpilot_api_key=values.get("BUGPILOT_API_KEY", "").strip(),
        bugpilot_default_action=default_action,
        zendesk_subdomain=values.get("ZENDESK_SUBDOMAIN", "").strip(),
        zendesk_api_url=values.get("ZENDESK_API_URL", "").strip(),
        zendesk_email=values.get("ZENDESK_EMAIL", "").strip(),
        zendesk_api_token=values.get("ZENDESK_API_TOKEN", "").strip(),
        zendesk_webhook_secret=values.get("ZENDESK_WEBHOOK_SECRET", ""),
        capture_max_wait_minutes=_int(values, "CAPTURE_MAX_WAIT_MINUTES", 30, 1, 1440),
        user_retry_seconds=_int(values, "CAPTURE_USER_RETRY_SECONDS", 180, 1, 3600),
        poll_seconds=_int(values, "CAPTURE_POLL_SECONDS", 30, 1, 3600),
        resolver_concurrency=_int(values, "RESOLVER_CONCURRENCY", 8, 1, 64),
    )


def _read_secret(secret_id: str) -> dict[str, str]:
    import boto3  # imported here: only deployed functions with a secret pay for it
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
        payload: Any = json.loads(answer["SecretString"])
    except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
        # The message names the failure, never the secret's value.
        raise ConfigurationError(f"could not read the bridge secret: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise ConfigurationError("the bridge secret must hold a JSON object")
    return {key: str(payload[key]) for key in SECRET_KEYS if payload.get(key) not in (None, "")}


_lock = threading.Lock()
_cached: tuple[float, Settings] | None = None


def get_settings() -> Settings:
    """Settings from the environment over the secret named by `BRIDGE_SECRET_ID`, cached briefly."""
    global _cached
    with _lock:
        now = time.monotonic()
        if _cached is not None and now - _cached[0] < SECRET_CACHE_SECONDS:
            return _cached[1]
        values: dict[str, str] = {}
        secret_id = os.environ.get("BRIDGE_SECRET_ID", "").strip()
        if secret_id:
            values.update(_read_secret(secret_id))
        values.update({key: value for key, value in os.environ.items() if value != ""})
        settings = settings_from(values)
        _cached = (now, settings)
        return settings


def reset_settings_cache() -> None:
    """Forget cached settings (tests and the local runner change the environment)."""
    global _cached
    with _lock:
        _cached = None
