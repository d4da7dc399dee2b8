"""`python -m local_runner sign-event`: a freshly signed event the webhook accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

from capture_bridge.helpdesks.zendesk import ZendeskAdapter, ZendeskSettings
from capture_bridge.http import HttpClient
from capture_bridge.settings import settings_from
from tests.conftest import EVENTS, ROOT


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "local_runner", "sign-event", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_signed_event_verifies() -> None:
    result = run_cli(
        str(EVENTS / "webhook_zendesk.json"),
        env={"ZENDESK_WEBHOOK_SECRET": "s3cret", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    adapter = ZendeskAdapter(
        ZendeskSettings.from_settings(
            settings_from({"TABLE_NAME": "t", "ZENDESK_WEBHOOK_SECRET": "s3cret"})
        ),
        HttpClient(),
    )
    adapter.verify(event["headers"], event["body"].encode(), datetime.now(UTC))


def test_without_a_secret_it_says_what_is_missing() -> None:
    result = run_cli(
        str(EVENTS / "webhook_zendesk.json"),
        "--env-file",
        "/nonexistent/.env",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "ZENDESK_WEBHOOK_SECRET" in result.stderr
