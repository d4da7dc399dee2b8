"""Settings: environment over the Secrets Manager JSON, validated, read lazily and cached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from capture_bridge import settings as settings_module
from capture_bridge.errors import ConfigurationError
from capture_bridge.settings import get_settings, reset_settings_cache, settings_from


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="capture-bridge",
            SecretString=json.dumps(
                {
                    "BUGPILOT_WORKSPACE_ID": "ws-from-secret",
                    "BUGPILOT_API_KEY": "key-from-secret",
                    "ZENDESK_EMAIL": "",
                    "ZENDESK_API_TOKEN": "token-from-secret",
                    "ZENDESK_WEBHOOK_SECRET": "hook-from-secret",
                    "TABLE_NAME": "never-from-the-secret",
                }
            ),
        )["ARN"]
        monkeypatch.setenv("BRIDGE_SECRET_ID", arn)
        monkeypatch.setenv("TABLE_NAME", "sessions")
        yield arn


def test_core_defaults() -> None:
    settings = settings_from({"TABLE_NAME": "t"})
    assert settings.capture_max_wait == timedelta(minutes=30)
    assert (settings.user_retry_seconds, settings.poll_seconds) == (180, 30)
    assert settings.resolver_concurrency == 8


def test_integrations_read_their_own_settings_through_lookups() -> None:
    settings = settings_from(
        {
            "TABLE_NAME": "t",
            "SOME_API_URL": "http://127.0.0.1:8000/",
            "SOME_KEY": "  k-1 ",
            "SOME_LIMIT": "7",
            "CAPTURE_MAX_WAIT_MINUTES": "45",
        }
    )
    assert settings.url("SOME_API_URL") == "http://127.0.0.1:8000"
    assert settings.url("OTHER_API_URL", "https://api.example.com/") == "https://api.example.com"
    assert settings.secret("SOME_KEY") == "k-1"
    assert settings.number("SOME_LIMIT", 3, 1, 10) == 7
    assert settings.choice("SOME_MODE", "a", ("a", "b")) == "a"
    assert settings.capture_max_wait == timedelta(minutes=45)


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda s: s.choice("SOME_MODE", "a", ("a", "b")), "SOME_MODE must be one of a, b"),
        (lambda s: s.number("SOME_LIMIT", 3, 1, 10), "SOME_LIMIT must be between 1 and 10"),
    ],
)
def test_invalid_integration_settings_are_named(read: Any, message: str) -> None:
    settings = settings_from({"TABLE_NAME": "t", "SOME_MODE": "c", "SOME_LIMIT": "11"})
    with pytest.raises(ConfigurationError, match=message):
        read(settings)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "TABLE_NAME is not set"),
        ({"TABLE_NAME": "t", "CAPTURE_MAX_WAIT_MINUTES": "soon"}, "whole number"),
        ({"TABLE_NAME": "t", "CAPTURE_MAX_WAIT_MINUTES": "0"}, "between 1 and 1440"),
    ],
)
def test_invalid_settings_are_named(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings_from(values)


def test_secrets_never_show_in_repr() -> None:
    settings = settings_from(
        {"TABLE_NAME": "t", "BUGPILOT_API_KEY": "sk-1", "ZENDESK_API_TOKEN": "zt-1"}
        | {"ZENDESK_WEBHOOK_SECRET": "wh-1"}
    )
    assert not {"sk-1", "zt-1", "wh-1"} & set(repr(settings).replace("'", " ").split())


@pytest.mark.usefixtures("secret")
def test_secret_fills_in_what_the_environment_does_not_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZENDESK_API_TOKEN", "token-from-env")
    settings = get_settings()
    assert settings.secret("BUGPILOT_WORKSPACE_ID") == "ws-from-secret"
    assert settings.secret("BUGPILOT_API_KEY") == "key-from-secret"
    assert settings.secret("ZENDESK_WEBHOOK_SECRET") == "hook-from-secret"
    # An environment variable set explicitly wins over the secret.
    assert settings.secret("ZENDESK_API_TOKEN") == "token-from-env"
    assert settings.table_name == "sessions"


def test_a_secret_created_empty_means_nothing_is_configured_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the secret as the stack creates it: no value at all until an operator puts one
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="empty")["ARN"]
        monkeypatch.setenv("BRIDGE_SECRET_ID", arn)
        monkeypatch.setenv("TABLE_NAME", "t")
        reset_settings_cache()
        # When the settings are read, then they load with no credentials rather than failing
        assert get_settings().secret("ZENDESK_WEBHOOK_SECRET") == ""


@pytest.mark.usefixtures("secret")
def test_settings_are_cached_then_refreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = settings_module._read_secret

    def counting(secret_id: str) -> dict[str, str]:
        calls.append(secret_id)
        return original(secret_id)

    monkeypatch.setattr(settings_module, "_read_secret", counting)
    first = get_settings()
    assert get_settings() is first
    assert len(calls) == 1
    monkeypatch.setattr(settings_module, "SECRET_CACHE_SECONDS", 0.0)
    get_settings()
    assert len(calls) == 2


def test_secret_must_be_a_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="s", SecretString="[1]")["ARN"]
        monkeypatch.setenv("BRIDGE_SECRET_ID", arn)
        monkeypatch.setenv("TABLE_NAME", "t")
        reset_settings_cache()
        with pytest.raises(ConfigurationError, match="JSON object"):
            get_settings()


def test_nothing_is_read_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.delenv("TABLE_NAME", raising=False)
    importlib.reload(settings_module)
    with pytest.raises(ConfigurationError):
        settings_module.get_settings()


def test_unreadable_secret_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        monkeypatch.setenv("BRIDGE_SECRET_ID", "arn:aws:secretsmanager:us-east-1:1:secret:gone")
        monkeypatch.setenv("TABLE_NAME", "t")
        reset_settings_cache()
        with pytest.raises(ConfigurationError, match="could not read the bridge secret"):
            get_settings()
