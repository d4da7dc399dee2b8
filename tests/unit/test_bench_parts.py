"""The helpers that keep `make bench`'s cost and queue parts short: a figure run beside the
others in a process of its own, the scheduled runs' token waits, the cost part's captures."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import ROOT

BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        yield {
            name: importlib.import_module(name) for name in ("queue_scale", "capture_cost", "run")
        }


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_beside_returns_what_its_process_printed(bench: dict[str, ModuleType]) -> None:
    # given a command that prints its figures as JSON
    command = _python("import json; print(json.dumps({'noted': 120}))")
    # when it runs beside a block that waits for it
    with bench["queue_scale"].beside(command) as result:
        figures = result()
    # then the block has the figures
    assert figures == {"noted": 120}


def test_beside_says_when_its_process_failed(bench: dict[str, ModuleType]) -> None:
    # given a command that exits with an error
    command = _python("raise SystemExit(3)")
    # when the block waits for it
    with bench["queue_scale"].beside(command) as result, pytest.raises(RuntimeError) as raised:
        result()
    # then the error names the exit code
    assert "exited with 3" in str(raised.value)


def test_beside_stops_its_process_when_the_block_fails(bench: dict[str, ModuleType]) -> None:
    # given a command that would run for a minute
    command = _python("import time; time.sleep(60)")
    started = time.monotonic()
    # when the block raises before waiting for it
    with pytest.raises(ValueError, match="failed"), bench["queue_scale"].beside(command):
        raise ValueError("the block failed")
    # then the process is stopped rather than waited for
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("before", "after", "says"),
    [
        (100, 25, "100 through the scheduled runs, 25 through the worker"),
        (20, 20, "20"),
    ],
)
def test_the_cost_figure_says_how_many_captures_each_path_ran(
    bench: dict[str, ModuleType], before: int, after: int, says: str
) -> None:
    # given the cost part's figures of each path
    cost = {"captures": after, "before": {"captures": before}}
    # when its text is written
    text = bench["run"]._cost_captures(cost)
    # then it names each path's captures (one number when they ran the same)
    assert text.startswith(says)
    assert (before == after) == (text == says)
