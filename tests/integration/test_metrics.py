"""The metrics contract: names, dimension sets and values of the EMF lines each path writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from capture_bridge.capture.bugpilot import BugpilotProvider
from capture_bridge.metrics import CONTRACT, MetricName
from capture_bridge.resolver import RunOutcome
from tests.conftest import START, Desk, Webhook, runtime_with, trigger_body

SERVICE = "capture-bridge-test-stack"
NAMESPACE = "CaptureBridge"
USER = "user-42"
NOTTE_SESSION = "33c3c8bf-9d6d-4dff-8248-142eaf347f59"
FIRST_CHECK_SECONDS = 30
BY_SERVICE = ("service",)
BY_SESSION = ("service", "helpdesk", "provider")
BUGPILOT = {"service": SERVICE, "helpdesk": "zendesk", "provider": "bugpilot"}
# The contract as the template's alarms and dashboard read it: these names, never others.
CONTRACT_NAMES = (
    "CapturesRequested",
    "ActionsSent",
    "UserOfflineRetries",
    "ReportsReady",
    "NotesPosted",
    "NotesUndeliverable",
    "CapturesTimedOut",
    "CapturesFinished",
    "CapturesFailed",
    "WebhookRefused",
    "UpstreamThrottled",
    "ConfigurationErrors",
    "SessionErrors",
    "ResolverRuns",
    "RequestToNoteSeconds",
)


@dataclass(frozen=True)
class Point:
    """One metric of one EMF line: its unit, dimension sets, dimension values and values."""

    name: str
    unit: str
    sets: tuple[tuple[str, ...], ...]
    dimensions: dict[str, str]
    values: list[float]


def points_in(output: str) -> list[Point]:
    """Every metric of every EMF line in `output`, checked against the EMF shape."""
    found: list[Point] = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob: dict[str, Any] = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            sets = tuple(tuple(dimensions) for dimensions in directive["Dimensions"])
            names = {name for dimensions in sets for name in dimensions}
            for metric in directive["Metrics"]:
                found.append(
                    Point(
                        metric["Name"],
                        metric["Unit"],
                        sets,
                        {name: blob[name] for name in names},
                        list(blob[metric["Name"]]),
                    )
                )
    return found


class Emitted:
    """The EMF lines written to stdout since the last look."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def take(self) -> list[Point]:
        return points_in(self._capsys.readouterr().out)

    @staticmethod
    def named(points: list[Point], name: MetricName) -> list[Point]:
        return [point for point in points if point.name == name]

    def one(self, points: list[Point], name: MetricName) -> Point:
        [point] = self.named(points, name)
        return point


@pytest.fixture
def emitted(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Emitted:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    capsys.readouterr()
    return Emitted(capsys)


def session_point(point: Point, *extra: tuple[str, ...]) -> None:
    """The point is dimensioned by service, by helpdesk and provider, and by `extra`."""
    assert point.sets == (BY_SERVICE, BY_SESSION, *extra)


def test_the_contract_is_the_one_the_template_reads() -> None:
    assert CONTRACT == CONTRACT_NAMES


class TestWebhook:
    def test_an_accepted_request_counts_its_capture_and_its_action(
        self, desk: Desk, emitted: Emitted
    ) -> None:
        # Given a user online, when a capture is requested
        desk.bugpilot.connect_user(USER)
        desk.send(trigger_body())
        points = emitted.take()
        # Then the new session and its start are counted, by service and by helpdesk/provider
        for name in (MetricName.CAPTURES_REQUESTED, MetricName.ACTIONS_SENT):
            point = emitted.one(points, name)
            session_point(point)
            assert (point.unit, point.dimensions, point.values) == ("Count", BUGPILOT, [1.0])
        # And a redelivery counts nothing new
        desk.send(trigger_body())
        assert emitted.named(emitted.take(), MetricName.CAPTURES_REQUESTED) == []

    @pytest.mark.parametrize(
        ("body", "headers", "reason"),
        [
            (trigger_body(), {"x-zendesk-webhook-signature": "forged"}, "unauthorized"),
            (b"not json", None, "bad_request"),
            (b"{" + b" " * 70_000 + b"}", None, "too_large"),
        ],
        ids=["401", "400", "413"],
    )
    def test_a_refusal_is_counted_by_reason(
        self,
        webhook: Webhook,
        emitted: Emitted,
        body: bytes,
        headers: dict[str, str] | None,
        reason: str,
    ) -> None:
        # When the webhook refuses a call
        webhook.send(body, headers)
        # Then it is counted by service and by reason, and no capture is
        [point] = emitted.take()
        assert (point.name, point.sets) == (
            MetricName.WEBHOOK_REFUSED,
            (BY_SERVICE, ("service", "reason")),
        )
        assert (point.dimensions, point.values) == ({"service": SERVICE, "reason": reason}, [1.0])

    def test_a_refusal_for_want_of_a_secret_is_a_configuration_error(
        self, env: dict[str, str], emitted: Emitted
    ) -> None:
        # Given a bridge whose webhook secret is not configured
        unconfigured = runtime_with(env, ZENDESK_WEBHOOK_SECRET="")
        # When a call comes
        answer = Webhook(unconfigured, lambda: START).send(trigger_body())  # type: ignore[arg-type]
        assert answer.status == 401
        # Then the refusal and the configuration error are counted
        points = emitted.take()
        assert (
            emitted.one(points, MetricName.WEBHOOK_REFUSED).dimensions["reason"] == "unauthorized"
        )
        error = emitted.one(points, MetricName.CONFIGURATION_ERRORS)
        assert error.sets == (BY_SERVICE, ("service", "reason"))
        assert error.dimensions == {"service": SERVICE, "reason": "missing_secret"}

    def test_a_rejected_api_key_fails_the_capture_by_reason_and_is_a_configuration_error(
        self, env: dict[str, str], desk: Desk, emitted: Emitted
    ) -> None:
        # Given a bridge with an API key Bugpilot does not know
        desk.send(trigger_body(), runtime_with(env, BUGPILOT_API_KEY="ws-wrong"))
        points = emitted.take()
        # Then the configuration error and the failed capture are counted by their reasons
        error = emitted.one(points, MetricName.CONFIGURATION_ERRORS)
        session_point(error, ("service", "reason"))
        assert error.dimensions == BUGPILOT | {"reason": "invalid_api_key"}
        failed = emitted.one(points, MetricName.CAPTURES_FAILED)
        session_point(failed, ("service", "reason"))
        assert failed.dimensions == BUGPILOT | {"reason": "INVALID_API_KEY"}
        finished = emitted.one(points, MetricName.CAPTURES_FINISHED)
        session_point(finished)


class TestResolver:
    def test_every_run_beats_even_an_empty_one(self, desk: Desk, emitted: Emitted) -> None:
        # When the resolver runs with nothing due
        assert desk.run() == {}
        # Then its heartbeat alone is written
        [point] = emitted.take()
        assert (point.name, point.sets, point.values) == (
            MetricName.RESOLVER_RUNS,
            (BY_SERVICE,),
            [1.0],
        )

    def test_a_user_still_offline_is_a_retry(self, desk: Desk, emitted: Emitted) -> None:
        # Given a request for a user who is offline
        session_id = desk.send(trigger_body())["session_id"]
        assert emitted.one(emitted.take(), MetricName.USER_OFFLINE_RETRIES).values == [1.0]
        # When the resolver asks again and the user is still offline
        desk.run_when_due(session_id)
        points = emitted.take()
        # Then the retry and the action are counted again
        for name in (MetricName.USER_OFFLINE_RETRIES, MetricName.ACTIONS_SENT):
            point = emitted.one(points, name)
            session_point(point)
            assert (point.dimensions, point.values) == (BUGPILOT, [1.0])

    def test_a_ready_report_and_its_note_with_the_time_from_request_to_note(
        self, desk: Desk, emitted: Emitted
    ) -> None:
        # Given a started capture whose report is ready at its first check
        desk.bugpilot.connect_user(USER)
        desk.send(trigger_body())
        desk.bugpilot.complete_report(desk.bugpilot.tokens[-1])
        desk.clock.advance(seconds=FIRST_CHECK_SECONDS)
        emitted.take()
        # When the resolver runs
        assert desk.run() == {RunOutcome.NOTED: 1}
        points = emitted.take()
        # Then the report, the end of the capture and the note are counted
        for name in (
            MetricName.REPORTS_READY,
            MetricName.CAPTURES_FINISHED,
            MetricName.NOTES_POSTED,
        ):
            point = emitted.one(points, name)
            session_point(point)
            assert (point.dimensions, point.values) == (BUGPILOT, [1.0])
        # And the time from the request to the note, in seconds
        waited = emitted.one(points, MetricName.REQUEST_TO_NOTE_SECONDS)
        session_point(waited)
        assert (waited.unit, waited.values) == ("Seconds", [float(FIRST_CHECK_SECONDS)])
        assert emitted.one(points, MetricName.RESOLVER_RUNS).values == [1.0]

    def test_a_capture_never_taken_times_out(self, desk: Desk, emitted: Emitted) -> None:
        # Given a request for a user who never comes online
        session_id = desk.send(trigger_body())["session_id"]
        # When the resolver runs whenever it is due until the capture ends
        while desk.session(session_id).status.is_final is False:
            desk.run_when_due(session_id)
        points = emitted.take()
        # Then it is counted as timed out, and as finished, once
        for name in (MetricName.CAPTURES_TIMED_OUT, MetricName.CAPTURES_FINISHED):
            point = emitted.one(points, name)
            session_point(point)
            assert point.values == [1.0]
        assert emitted.named(points, MetricName.CAPTURES_FAILED) == []

    def test_a_note_the_helpdesk_refuses_is_undeliverable_and_a_configuration_error(
        self, desk: Desk, emitted: Emitted
    ) -> None:
        # Given a capture whose report is ready, and Zendesk refusing our access
        desk.bugpilot.connect_user(USER)
        desk.send(trigger_body())
        desk.bugpilot.complete_report(desk.bugpilot.tokens[-1])
        desk.clock.advance(seconds=FIRST_CHECK_SECONDS)
        desk.zendesk.script("update", 403)
        emitted.take()
        # When the resolver runs
        assert desk.run() == {RunOutcome.NOTE_UNDELIVERABLE: 1}
        points = emitted.take()
        # Then the note is counted as undeliverable and the refusal as no access
        undeliverable = emitted.one(points, MetricName.NOTES_UNDELIVERABLE)
        session_point(undeliverable)
        assert undeliverable.values == [1.0]
        error = emitted.one(points, MetricName.CONFIGURATION_ERRORS)
        session_point(error, ("service", "reason"))
        assert error.dimensions == BUGPILOT | {"reason": "no_access"}
        assert emitted.named(points, MetricName.NOTES_POSTED) == []

    @pytest.mark.parametrize("upstream", ["bugpilot", "zendesk", "notte"])
    def test_every_429_is_counted_by_upstream(
        self, desk: Desk, emitted: Emitted, upstream: str
    ) -> None:
        # Given a capture due for a call, and its upstream answering 429
        if upstream == "notte":
            desk.notte.add_session(NOTTE_SESSION, created_at=START)
            desk.send(trigger_body(tags="qa", notte_session_id=NOTTE_SESSION))
            desk.notte.script("status", 429)
        else:
            desk.bugpilot.connect_user(USER)
            desk.send(trigger_body())
            desk.bugpilot.complete_report(desk.bugpilot.tokens[-1])
            desk.clock.advance(seconds=FIRST_CHECK_SECONDS)
            if upstream == "bugpilot":
                desk.bugpilot.script("session_info", 429)
            else:
                desk.zendesk.script("update", 429, retry_after=45)
        emitted.take()
        # When the resolver makes the call
        desk.run()
        # Then the 429 is counted by service, by the session and by the upstream
        point = emitted.one(emitted.take(), MetricName.UPSTREAM_THROTTLED)
        session_point(point, ("service", "upstream"))
        assert point.dimensions["upstream"] == upstream
        assert point.values == [1.0]

    def test_a_raising_session_is_counted_not_failed(
        self, desk: Desk, emitted: Emitted, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a started capture whose check raises
        desk.bugpilot.connect_user(USER)
        desk.send(trigger_body())
        desk.clock.advance(seconds=FIRST_CHECK_SECONDS)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a defect")

        monkeypatch.setattr(BugpilotProvider, "check", broken)
        emitted.take()
        # When the resolver runs
        assert desk.run() == {RunOutcome.ERROR: 1}
        # Then the session's error is counted, by service and by the session
        point = emitted.one(emitted.take(), MetricName.SESSION_ERRORS)
        session_point(point)
        assert (point.dimensions, point.values) == (BUGPILOT, [1.0])


def _every_path(desk: Desk, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each path of the contract in turn, each on its own ticket; yields after each."""
    desk.bugpilot.connect_user(USER)
    desk.send(trigger_body(ticket_id="1"))
    desk.bugpilot.complete_report(desk.bugpilot.tokens[-1])
    desk.clock.advance(seconds=FIRST_CHECK_SECONDS)
    desk.run()
    yield
    Webhook(desk.runtime, desk.clock).send(b"not json")
    desk.send(trigger_body(ticket_id="2"), runtime_with(env, BUGPILOT_API_KEY="ws-wrong"))
    yield
    desk.bugpilot.disconnect_user(USER)
    offline = desk.send(trigger_body(ticket_id="3"))["session_id"]
    while not desk.session(offline).status.is_final:
        desk.run_when_due(offline)
    yield
    desk.bugpilot.connect_user(USER)
    desk.send(trigger_body(ticket_id="4"))
    desk.bugpilot.complete_report(desk.bugpilot.tokens[-1])
    desk.clock.advance(hours=1)
    desk.zendesk.script("update", 429)
    desk.run()
    yield
    desk.send(trigger_body(ticket_id="5"))
    desk.clock.advance(hours=1)
    with monkeypatch.context() as patch:
        patch.setattr(BugpilotProvider, "check", _broken)
        desk.run()
    yield
    desk.zendesk.script("update", 403, times=UNDELIVERABLE_TRIES)
    desk.clock.advance(hours=1)
    desk.run()
    yield


# Enough refusals for every note still owed to meet one.
UNDELIVERABLE_TRIES = 10


def _broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a defect")


def test_every_name_of_the_contract_is_written_by_some_path(
    desk: Desk, env: dict[str, str], emitted: Emitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When every path runs
    seen: set[str] = set()
    for _ in _every_path(desk, env, monkeypatch):
        seen |= {point.name for point in emitted.take()}
    # Then every name of the contract was written, and no other
    assert seen == set(CONTRACT_NAMES)
