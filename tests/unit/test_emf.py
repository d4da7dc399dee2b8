"""EMF lines built by hand: field for field what Powertools' metrics wrote, and when none are."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from capture_bridge import metrics
from capture_bridge.metrics import MetricName, emf_line, metrics_disabled

BY_SESSION = {"service": "stack-x", "helpdesk": "zendesk", "provider": "bugpilot"}
SETS = [("service",), ("service", "helpdesk", "provider")]
# A line Powertools 3.37's EphemeralMetrics serialized (its own JSON, compacted as flush does).
POWERTOOLS_LINE = (
    '{"_aws":{"Timestamp":1796565494946,"CloudWatchMetrics":[{"Namespace":"CaptureBridge",'
    '"Dimensions":[["service"],["service","helpdesk","provider"]],"Metrics":['
    '{"Name":"CapturesRequested","Unit":"Count"},{"Name":"ActionsSent","Unit":"Count"},'
    '{"Name":"RequestToNoteSeconds","Unit":"Seconds"}]}]},'
    '"service":"stack-x","helpdesk":"zendesk","provider":"bugpilot",'
    '"CapturesRequested":[1.0],"ActionsSent":[1.0],"RequestToNoteSeconds":[12.5,3.0]}'
)


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stack-x")
    for name in ("POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV"):
        monkeypatch.delenv(name, raising=False)
    metrics.discard()
    yield
    metrics.discard()


def test_a_line_is_the_one_powertools_wrote() -> None:
    points = {
        ("CapturesRequested", "Count"): [1],
        ("ActionsSent", "Count"): [1],
        ("RequestToNoteSeconds", "Seconds"): [12.5, 3],
    }
    assert emf_line("CaptureBridge", BY_SESSION, SETS, points, 1796565494946) == POWERTOOLS_LINE


def test_dimension_values_follow_the_sets_and_a_blank_one_is_left_out() -> None:
    # Given a set whose helpdesk is blank, and a reason set after it
    values = {"reason": "NO_USER", **BY_SESSION, "helpdesk": " "}
    sets = [*SETS, ("service", "reason")]
    # When the line is built
    blob = json.loads(emf_line("N", values, sets, {("CapturesFailed", "Count"): [1]}, 0))
    # Then the blank dimension is out of its set and of the values, the order is the sets'
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["service"], ["service", "provider"], ["service", "reason"]]
    assert list(blob)[1:4] == ["service", "provider", "reason"]


def test_over_a_hundred_values_are_split_over_lines(capsys: pytest.CaptureFixture[str]) -> None:
    # Given 150 throttled answers and a run in one invocation
    for _ in range(150):
        metrics.record(MetricName.UPSTREAM_THROTTLED, upstream="zendesk")
    metrics.record(MetricName.RESOLVER_RUNS)
    # When they are flushed
    metrics.flush()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # Then each line holds at most a hundred values of a metric, and nothing is lost
    throttled = [line["UpstreamThrottled"] for line in lines if "UpstreamThrottled" in line]
    assert [len(values) for values in throttled] == [100, 50]
    assert [line["ResolverRuns"] for line in lines if "ResolverRuns" in line] == [[1.0]]
    namespaces = {line["_aws"]["CloudWatchMetrics"][0]["Namespace"] for line in lines}
    assert namespaces == {"CaptureBridge"}


@pytest.mark.parametrize(
    ("disabled", "dev", "expected"),
    [
        (None, None, False),
        ("true", None, True),
        ("1", "false", True),
        ("false", None, False),
        (None, "true", True),
        ("false", "true", False),
        ("no", "yes", False),
    ],
)
def test_metrics_are_off_as_powertools_turned_them_off(
    disabled: str | None, dev: str | None, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("POWERTOOLS_METRICS_DISABLED", disabled), ("POWERTOOLS_DEV", dev)):
        if value is not None:
            monkeypatch.setenv(name, value)
    assert metrics_disabled() is expected


def test_disabled_metrics_write_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "TRUE")
    metrics.resolver_run()
    metrics.flush()
    assert capsys.readouterr().out == ""


def test_an_unreadable_setting_is_refused_as_powertools_refused_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "maybe")
    with pytest.raises(ValueError, match="maybe"):
        metrics_disabled()
