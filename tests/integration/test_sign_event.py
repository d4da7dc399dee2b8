"""`python -m local_runner sign-event`: a freshly signed event the webhook accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

from capture_bridge.helpdesks import supported_helpdesks
from capture_bridge.helpdesks.zendesk import ZendeskAdapter, ZendeskSettings
from capture_bridge.http import HttpClient
from capture_bridge.settings import settings_from
from local_runner.simulators._server import JsonHttpServer, RecordedRequest, Reply
from tests.conftest import EVENTS, ROOT, webhook_request


class RecordingServer(JsonHttpServer):
    """Answers every call 202 and keeps it, standing in for the local API."""

    def handle(self, request: RecordedRequest) -> Reply:
        return Reply(202, {})


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
    adapter.verify(webhook_request(event["headers"], event["body"].encode()), datetime.now(UTC))


def test_without_a_secret_it_says_what_is_missing() -> None:
    result = run_cli(
        str(EVENTS / "webhook_zendesk.json"),
        "--env-file",
        "/nonexistent/.env",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "ZENDESK_WEBHOOK_SECRET" in result.stderr


def test_the_helpdesk_can_be_named_and_an_unknown_one_is_refused() -> None:
    # Given the Zendesk event, signed with the helpdesk named explicitly
    env = {"ZENDESK_WEBHOOK_SECRET": "s3cret", "PATH": "/usr/bin:/bin"}
    named = run_cli(str(EVENTS / "webhook_zendesk.json"), "--helpdesk", "zendesk", env=env)
    # Then it is signed as without the option
    assert named.returncode == 0, named.stderr
    assert "x-zendesk-webhook-signature" in json.loads(named.stdout)["headers"]
    # When a helpdesk the bridge does not know is named, then it says which ones it knows
    unknown = run_cli(str(EVENTS / "webhook_zendesk.json"), "--helpdesk", "nope", env=env)
    assert unknown.returncode == 2
    assert f"supported: {', '.join(supported_helpdesks())}" in unknown.stderr


def test_curl_prints_a_command_the_local_api_accepts() -> None:
    # Given a dev server's address, faked by a recorder that answers like the webhook
    with RecordingServer() as server:
        # When the printed command is run by a shell
        result = run_cli(
            str(EVENTS / "webhook_zendesk.json"),
            "--curl",
            server.url,
            env={"ZENDESK_WEBHOOK_SECRET": "s3cret", "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0, result.stderr
        sent = subprocess.run(
            ["/bin/sh"], input=result.stdout, capture_output=True, text=True, timeout=60
        )
        assert sent.returncode == 0, sent.stderr
        [request] = server.requests()
    # Then the call arrives at the webhook's path with the exact body and a proof that verifies
    assert request.path == "/webhooks/zendesk"
    event = json.loads((EVENTS / "webhook_zendesk.json").read_text())
    assert request.body == event["body"].encode()
    adapter = ZendeskAdapter(
        ZendeskSettings.from_settings(
            settings_from({"TABLE_NAME": "t", "ZENDESK_WEBHOOK_SECRET": "s3cret"})
        ),
        HttpClient(),
    )
    adapter.verify(webhook_request(dict(request.headers), request.body), datetime.now(UTC))
