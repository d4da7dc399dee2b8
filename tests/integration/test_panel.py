"""`make panel` as a new user runs it: the sidebar app on the simulators, no account."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from typing import IO, Any

import requests

from tests.conftest import ROOT

START_SECONDS = 60
RESOLVE_SECONDS = 30
PANEL = [
    sys.executable,
    "-m",
    "local_runner",
    "panel",
    "--panel-port",
    "0",
    "--complete-after",
    "1",
]
# As apps/zendesk/assets/logic.js builds its client.request options.
AUTHORIZATION = {"Authorization": "Bearer {{setting.api_token}}"}


def read_until(stream: IO[str], pattern: str, lines: list[str]) -> re.Match[str]:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"no {pattern!r} in the output:\n{''.join(lines)}")


def proxy(panel: str, options: dict[str, Any]) -> dict[str, Any]:
    """One client.request through the stand-in's proxy, as the page's stand-in client sends it."""
    answer = requests.post(f"{panel}/zaf/request", json=options, timeout=20)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def sessions(panel: str, api: str) -> list[dict[str, Any]]:
    options = {
        "url": f"{api}/sessions?helpdesk=zendesk&ticketId=1001",
        "type": "GET",
        "dataType": "json",
        "headers": AUTHORIZATION,
        "secure": True,
        "httpCompleteResponse": True,
    }
    answer = proxy(panel, options)
    assert answer["status"] == 200, answer
    listed: list[dict[str, Any]] = json.loads(answer["responseText"])["sessions"]
    return listed


def test_make_panel_serves_a_capture_to_its_note_and_stops_on_ctrl_c() -> None:
    # Given `python -m local_runner panel`, as `make panel` runs it
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        PANEL, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        panel_url = read_until(process.stdout, r"Panel\s+(http://127\.0\.0\.1:\d+)/panel/", lines)
        api = read_until(process.stdout, r"Local API\s+(http://127\.0\.0\.1:\d+)", lines)[1]
        panel = panel_url[1]
        read_until(process.stdout, r"Ctrl-C stops everything", lines)
        # The page is served, and its context is the demo ticket without the secure token
        page = requests.get(f"{panel}/panel/", timeout=10)
        assert page.status_code == 200
        context = requests.get(f"{panel}/zaf/context", timeout=10).json()
        assert context["data"]["ticket.requester.externalId"] == "user-42"
        assert "demo-sessions-token" not in json.dumps(context)

        # When a capture is requested through the stand-in's proxy, exactly as the page does
        body = {
            "helpdesk": "zendesk",
            "ticketId": "1001",
            "provider": "bugpilot",
            "action": "upload-screenshot",
            "userId": "user-42",
        }
        created = proxy(
            panel,
            {
                "url": f"{api}/sessions",
                "type": "POST",
                "contentType": "application/json",
                "dataType": "json",
                "data": json.dumps(body),
                "headers": {**AUTHORIZATION, "Idempotency-Key": str(uuid.uuid4())},
                "secure": True,
                "httpCompleteResponse": True,
            },
        )
        assert created["status"] in (200, 201, 202), created

        # Then the capture is resolved with no further step (the simulated user sends it)
        deadline = time.monotonic() + RESOLVE_SECONDS
        while (listed := sessions(panel, api))[0]["status"] != "resolved":
            assert time.monotonic() < deadline, listed
            time.sleep(0.5)
        assert len(listed) == 1
        # And the one internal note is printed as it lands on the simulated ticket
        read_until(process.stdout, r"Internal note on Zendesk ticket 1001", lines)
    finally:
        # When Ctrl-C is pressed
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
    output = "".join(lines) + rest
    # Then it stops cleanly, having written exactly one note
    assert process.returncode == 0, output
    assert output.count("Internal note on Zendesk ticket") == 1, output
    assert output.rstrip().endswith("Stopped."), output
    assert "Traceback" not in output, output
