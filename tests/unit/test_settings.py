"""Settings: environment over the Secrets Manager JSON, validated, read lazily and cached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

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


def test_defaults() -> None:
    settings = settings_from({"TABLE_NAME": "t"})
    assert settings.bugpilot_api_url == "https://widget-api.bugpilot.io"
    assert settings.bugpilot_default_action == "upload-session"
    assert settings.capture_max_wait == timedelta(minutes=30)
    assert settings.zendesk_base_url == ""
    assert (settings.user_retry_seconds, settings.poll_seconds) == (180, 30)


def test_explicit_values_and_zendesk_url_override() -> None:
    settings = settings_from(
        {
            "TABLE_NAME": "t",
            "BUGPILOT_API_URL": "http://127.0.0.1:8000/",
            "ZENDESK_SUBDOMAIN": "acme",
            "ZENDESK_API_URL": "https://help.acme.test/",
            "CAPTURE_MAX_WAIT_MINUTES": "45",
        }
    )
    assert settings.bugpilot_api_url == "http://127.0.0.1:8000"
    assert settings.zendesk_base_url == "https://help.acme.test"
    assert settings.capture_max_wait == timedelta(minutes=45)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "TABLE_NAME is not set"),
        ({"TABLE_NAME": "t", "BUGPILOT_DEFAULT_ACTION": "nap"}, "BUGPILOT_DEFAULT_ACTION"),
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
    assert settings.bugpilot_workspace_id == "ws-from-secret"
    assert settings.bugpilot_api_key == "key-from-secret"
    assert settings.zendesk_webhook_secret == "hook-from-secret"
    # An environment variable set explicitly wins; only secret keys come from the secret.
    assert settings.zendesk_api_token == "token-from-env"
    assert settings.table_name == "sessions"


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
