"""`make demo` stays working: the demo runs the whole flow and checks each step itself."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

# Two Bugpilot captures, a LambdaTest and a Notte session.
DEMO_CAPTURES = 4


def test_demo_runs_end_to_end() -> None:
    # A fresh interpreter, as `make demo` runs it: the runner owns the process environment.
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ZENDESK_", "BUGPILOT_", "CAPTURE_", "TABLE_NAME"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "local_runner", "demo"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Done: every step happened as expected." in result.stdout
    assert "Internal note on Zendesk ticket 1001" in result.stdout
    assert '"duplicate": true' in result.stdout
    # And it ends with the captures as the sessions API's command line shows them
    assert "$ capture-bridge sessions list --status resolved" in result.stdout
    assert result.stdout.count("  resolved  ") >= DEMO_CAPTURES
