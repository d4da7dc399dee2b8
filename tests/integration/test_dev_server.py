"""`make dev` as a developer sees it: what is missing, where DynamoDB is, readable handler logs."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from capture_bridge.helpdesks import supported_helpdesks
from capture_bridge.observability import JsonFormatter
from local_runner.__main__ import sample_commands
from local_runner.logs import ReadableFormatter
from local_runner.preflight import credential_gaps
from tests.conftest import ROOT

START_SECONDS = 60
SERVE = [
    sys.executable,
    "-m",
    "local_runner",
    "serve",
    "--port",
    "0",
    "--no-schedules",
    "--panel-port",
    "0",
]
# Everything every integration needs, as a complete .env would set it.
COMPLETE_ENV = {
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "zendesk-token",
    "ZENDESK_WEBHOOK_SECRET": "webhook-secret",
    "BUGPILOT_WORKSPACE_ID": "ws",
    "BUGPILOT_API_KEY": "bugpilot-key",
    "LAMBDATEST_USERNAME": "jane.doe",
    "LAMBDATEST_ACCESS_KEY": "lt-key",
    "NOTTE_API_KEY": "notte-key",
}


class TestCredentialGaps:
    def test_a_complete_environment_has_none(self) -> None:
        assert credential_gaps(COMPLETE_ENV) == []

    def test_a_missing_webhook_secret_is_needed(self) -> None:
        # Given an environment without the Zendesk webhook secret
        environ = {**COMPLETE_ENV, "ZENDESK_WEBHOOK_SECRET": " "}
        # When it is checked
        [gap] = credential_gaps(environ)
        # Then Zendesk is named, with the key, as needed
        assert (gap.integration, gap.missing, gap.needed) == (
            "zendesk",
            ("ZENDESK_WEBHOOK_SECRET",),
            True,
        )
        assert "ZENDESK_WEBHOOK_SECRET not set" in str(gap)

    def test_an_unused_optional_source_is_only_mentioned(self) -> None:
        environ = {key: value for key, value in COMPLETE_ENV.items() if key != "NOTTE_API_KEY"}
        [gap] = credential_gaps(environ)
        assert (gap.integration, gap.needed) == ("notte", False)
        assert "optional" in str(gap)

    def test_no_helpdesk_at_all_is_one_gap_naming_every_helpdesk(self) -> None:
        # Given an environment with the capture sources but no helpdesk's keys
        environ = {key: value for key, value in COMPLETE_ENV.items() if "ZENDESK" not in key}
        # When it is checked
        [gap] = credential_gaps(environ)
        # Then one needed gap says to set up any one helpdesk, naming them all
        assert gap.needed
        assert set(gap.alternatives) == set(supported_helpdesks())
        assert all(name in str(gap) for name in supported_helpdesks())

    def test_a_lambdatest_key_without_its_username_names_the_username(self) -> None:
        # Given LambdaTest's access key in .env but not its username (a template parameter)
        environ = {
            key: value for key, value in COMPLETE_ENV.items() if key != "LAMBDATEST_USERNAME"
        }
        # When it is checked
        [gap] = credential_gaps(environ)
        # Then the username is named as needed, with the page that says where it comes from
        assert (gap.integration, gap.missing, gap.needed) == (
            "lambdatest",
            ("LAMBDATEST_USERNAME",),
            True,
        )
        assert "docs/sources/lambdatest.md" in str(gap)

    def test_the_default_source_is_always_needed(self) -> None:
        environ = {key: value for key, value in COMPLETE_ENV.items() if "BUGPILOT" not in key}
        [gap] = credential_gaps(environ)
        assert (gap.integration, gap.needed) == ("bugpilot", True)


class TestSampleCommands:
    def test_each_helpdesk_with_a_secret_gets_a_command_that_signs_when_run(self) -> None:
        # Given only Zendesk's webhook secret set
        url = "http://127.0.0.1:3000"
        # When the start-up hints are made
        [command] = sample_commands(url, {"ZENDESK_WEBHOOK_SECRET": "s3cret"})
        # Then they name Zendesk's sample event, signed at run time and sent with curl
        assert command == (
            "try zendesk: .venv/bin/python -m local_runner sign-event events/webhook_zendesk.json "
            f"--curl {url} | sh"
        )

    def test_without_any_secret_there_is_none(self) -> None:
        assert sample_commands("http://127.0.0.1:3000", {}) == []


class TestReadableLogs:
    def test_a_record_reads_as_one_line_with_the_sessions_keys_first(self) -> None:
        # Given a handler of the bridge's JSON lines whose output is made readable
        handler = logging.StreamHandler()
        handler.setFormatter(ReadableFormatter(JsonFormatter(service="readable-test")))
        record = logging.LogRecord("t", logging.WARNING, __file__, 1, "note refused", None, None)
        record.__dict__.update({"ticket_id": "1001", "session_id": "s-1", "reason": "403"})
        # When a record with a session's keys is formatted
        line = handler.format(record)
        # Then it is one line: level, message, then the session's keys before the others
        assert "\n" not in line
        assert not line.startswith("{")
        assert line.index("WARNING") < line.index("note refused") < line.index("session_id=s-1")
        assert line.index("session_id=s-1") < line.index("ticket_id=1001")
        assert line.index("ticket_id=1001") < line.index("reason=403")
        assert "service=" not in line


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """`.venv/bin/python -m local_runner serve` with a .env that lacks the webhook secret."""
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(f"{key}={value}" for key, value in COMPLETE_ENV.items() if "WEBHOOK" not in key)
    )
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ZENDESK_", "BUGPILOT_", "LAMBDATEST_", "NOTTE_"))
    }
    server = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [*SERVE, "--env-file", str(env_file)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    lines: list[str] = []
    try:
        for line in server.stderr:
            lines.append(line)
            if "listening on" in line:
                break
        url = lines[-1].split("listening on ")[1].split()[0]
        yield server, url, lines
    finally:
        server.terminate()
        server.wait(timeout=START_SECONDS)


def test_the_dev_server_says_what_is_missing_and_where_dynamodb_is(
    dev_server: tuple[subprocess.Popen[str], str, list[str]],
) -> None:
    # Given the dev server started with a .env that lacks the webhook secret
    server, url, start_lines = dev_server
    # Then its start says so, and where the embedded DynamoDB listens
    startup = "".join(start_lines)
    assert "zendesk: ZENDESK_WEBHOOK_SECRET not set" in startup
    assert "DynamoDB at http://127.0.0.1:" in startup
    # When a webhook arrives
    answer = requests.post(f"{url}/webhooks/zendesk", data=b"{}", timeout=START_SECONDS)
    assert answer.status_code == 401
    server.terminate()
    output, _ = server.communicate(timeout=START_SECONDS)
    # Then the handler's log lines are readable lines, not JSON
    handler_lines = [line for line in output.splitlines() if line.strip()]
    assert handler_lines
    assert not [line for line in handler_lines if line.startswith("{")]
    assert "WARNING webhook refused" in output


def test_the_dev_server_serves_the_sidebar_app_on_the_stand_in_client(
    dev_server: tuple[subprocess.Popen[str], str, list[str]],
) -> None:
    # Given the dev server started (its .env has no SESSIONS_API_TOKEN)
    _, url, start_lines = dev_server
    startup = "".join(start_lines)
    # Then it names the panel's page, which loads the stand-in ZAF client
    [panel] = re.findall(r"sidebar app: (http://127\.0\.0\.1:\d+/panel/)", startup)
    assert "/zaf/zaf_sdk.min.js" in requests.get(panel, timeout=START_SECONDS).text
    # whose settings point at the local API, and it says the token is needed
    context = requests.get(panel.replace("/panel/", "/zaf/context"), timeout=START_SECONDS)
    assert context.json()["metadata"]["settings"] == {"api_url": url}
    assert "sidebar app: set SESSIONS_API_TOKEN in .env" in startup
