"""The browser the suite drives: the machine's Chromium, or one line saying why not."""

from __future__ import annotations

import subprocess

import pytest

from tests.browser.conftest import CHROMIUM, MISSING


def test_the_machines_chromium_is_there() -> None:
    if MISSING:
        pytest.skip(MISSING)
    version = subprocess.run(  # noqa: S603 - the configured browser, fixed arguments
        [CHROMIUM, "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "Chromium" in version
