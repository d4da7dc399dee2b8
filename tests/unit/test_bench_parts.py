"""The helpers that keep `make bench`'s cost part short: the scheduled runs' token waits, the
cost part's captures."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import ROOT

BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        yield {name: importlib.import_module(name) for name in ("capture_cost", "run")}


def test_a_token_wait_takes_its_scaled_share_of_real_time(
    bench: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the cost script's sleeps recorded rather than slept
    cost = bench["capture_cost"]
    slept: list[float] = []
    monkeypatch.setattr(cost.time, "sleep", slept.append)
    # when a scheduled run's note waits 20 s for its token
    cost._token_wait(20.0)
    # then it sleeps TOKEN_WAIT_SCALE of it
    assert slept == [pytest.approx(20.0 * cost.TOKEN_WAIT_SCALE)]


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
