"""`make demo [HELPDESK=…]` stays working for every helpdesk: the demo checks each step itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from local_runner.demo import NOTE_MARKUP, PANEL_HINT
from local_runner.simulators import HELPDESK_SIMULATORS
from tests.conftest import ROOT

# Two Bugpilot captures, a LambdaTest and a Notte session.
DEMO_CAPTURES = 4
DEMO_TICKETS = (1001, 1002, 1003, 1004)
DEMO_SECONDS = 180
# Settings of this test process that must not reach the demo: the runner owns its environment.
OWN_SETTINGS = ("AWS_", "BUGPILOT_", "LAMBDATEST_", "NOTTE_", "CAPTURE_", "TABLE_NAME")


@pytest.mark.parametrize("helpdesk", sorted(HELPDESK_SIMULATORS))
def test_demo_runs_end_to_end(helpdesk: str) -> None:
    # given a fresh interpreter, as `make demo HELPDESK=…` runs it
    prefixes = (*OWN_SETTINGS, *(f"{name.upper()}_" for name in HELPDESK_SIMULATORS))
    environment = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    # when the demo runs with the helpdesk's simulator
    result = subprocess.run(  # noqa: S603 - our own module, a name from the registry
        [sys.executable, "-m", "local_runner", "demo", "--helpdesk", helpdesk],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=DEMO_SECONDS,
        check=False,
    )
    # then every step happened: each ticket got its note, the redelivery was a duplicate
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Done: every step happened as expected." in result.stdout
    # and it ends saying how to open the sidebar app locally
    assert result.stdout.rstrip().endswith("\n".join(PANEL_HINT))
    # first `make panel` (no account), then `make dev` (real accounts)
    hint = " ".join(PANEL_HINT)
    assert "make panel" in hint
    assert hint.index("make panel") < hint.index("make dev")
    desk = HELPDESK_SIMULATORS[helpdesk]()
    for number in DEMO_TICKETS:
        ticket = desk.ticket_id(number)
        assert f"Internal note on {helpdesk.capitalize()} ticket {ticket}:" in result.stdout
    assert result.stdout.count("Capture session: ") >= DEMO_CAPTURES
    assert '"duplicate": true' in result.stdout
    # and a note whose raw body reads oddly (Jira's escapes) is explained once, before the first
    for line in NOTE_MARKUP.get(helpdesk, ()):
        assert result.stdout.count(line) == 1, line
        assert result.stdout.index(line) < result.stdout.index("Capture session: ")
    # and it ends with the captures as the sessions API's command line shows them
    assert "$ .venv/bin/capture-bridge sessions list --status resolved" in result.stdout
    assert result.stdout.count("  resolved  ") >= DEMO_CAPTURES


def test_an_unknown_helpdesk_is_refused_naming_those_the_demo_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local_runner", "demo", "--helpdesk", "kayako"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEMO_SECONDS,
        check=False,
    )
    assert result.returncode == 2
    assert all(name in result.stderr for name in HELPDESK_SIMULATORS)
