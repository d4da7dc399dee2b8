"""Where Chromium is missing, the browser suite says so in one line instead of vanishing."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_without_chromium_the_browser_suite_is_one_skipped_line_naming_apt_get() -> None:
    # Given a machine whose Chromium is not where the suite looks
    environment = {**os.environ, "CHROMIUM": "/nonexistent/chromium"}
    # When the browser suite runs as `make test` runs it
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/browser", "-p", "no:cacheprovider", "--no-cov"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it passes with exactly one skip, whose line says how to install Chromium
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1, result.stdout
    assert "apt-get install -y chromium" in skipped[0]
    assert "1 skipped" in result.stdout
