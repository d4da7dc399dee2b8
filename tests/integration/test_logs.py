"""The log lines of a capture's life: their fields, their levels, and nothing they must not show."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from capture_bridge import observability
from capture_bridge.capture.bugpilot import BugpilotProvider
from capture_bridge.observability import JsonFormatter
from capture_bridge.resolver import RunOutcome
from tests.conftest import Desk, Webhook, runtime_with, trigger_body

EMAIL = "ada@example.com"
MASKED_EMAIL = "a***@example.com"
SESSION_FIELDS = ("session_id", "helpdesk", "ticket_id", "provider", "action", "status")
SECRET_SETTINGS = (
    "BUGPILOT_API_KEY",
    "ZENDESK_API_TOKEN",
    "ZENDESK_WEBHOOK_SECRET",
    "LAMBDATEST_ACCESS_KEY",
    "NOTTE_API_KEY",
)
FIRST_CHECK_SECONDS = 30
# A port nothing listens on: Bugpilot unreachable.
NOWHERE = "http://127.0.0.1:9"
# A requester known by email only, so that the email is the Bugpilot user.
BY_EMAIL = {"requester_external_id": None, "requester_email": EMAIL}


class Lines:
    """The JSON log lines the handlers' logger wrote."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def with_message(self, text: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line["message"] == text]


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Log lines formatted as the handlers' logger formats them (JSON, emails masked)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    shared = logging.getLogger(observability.logger.name)
    level = shared.level
    shared.addHandler(handler)
    shared.setLevel(logging.INFO)
    try:
        yield Lines(stream)
    finally:
        shared.removeHandler(handler)
        shared.setLevel(level)


def test_the_handlers_log_through_the_masking_serializer() -> None:
    import resolver_handler
    import sessions_handler
    import webhook_handler

    # Given the handlers' logger: the package's, writing to stdout
    for handler_module in (webhook_handler, resolver_handler, sessions_handler):
        assert handler_module.logger is observability.logger
    handler = observability.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    # When it logs an email, in the message and in an extra key
    try:
        observability.logger.warning(f"refused {EMAIL}", extra={"requester": EMAIL})
    finally:
        handler.setStream(previous)
    # Then the one JSON line it writes shows the address masked only
    [line] = Lines(stream).all()
    assert (line["message"], line["requester"]) == (f"refused {MASKED_EMAIL}", MASKED_EMAIL)
    assert EMAIL not in stream.getvalue()


def test_every_line_of_a_capture_life_carries_the_session_fields(desk: Desk, lines: Lines) -> None:
    # Given a capture requested, started, found ready and noted
    desk.bugpilot.connect_user("user-42")
    session_id = desk.send(trigger_body())["session_id"]
    desk.bugpilot.complete_report(desk.bugpilot.tokens[-1])
    desk.clock.advance(seconds=FIRST_CHECK_SECONDS)
    assert desk.run() == {RunOutcome.NOTED: 1}
    # Then every line about the session carries who and what it is, and where it stands
    about = [line for line in lines.all() if session_id in json.dumps(line)]
    messages = [line["message"] for line in about]
    assert messages == [
        "capture request stored",
        "capture requested",
        "capture finished",
        "note posted",
    ]
    for line in about:
        assert {name: line.get(name) for name in SESSION_FIELDS} == {
            "session_id": session_id,
            "helpdesk": "zendesk",
            "ticket_id": "1001",
            "provider": "bugpilot",
            "action": "upload-session",
            "status": line["status"],
        }
    assert [line["status"] for line in about] == ["requested", "pending", "resolved", "resolved"]


def _every_kind_of_path(desk: Desk, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Accepted, refused and failing calls, for a requester known by email."""
    webhook = Webhook(desk.runtime, desk.clock)
    # Accepted, the user offline, then online and noted
    desk.send(trigger_body(**BY_EMAIL))
    desk.bugpilot.connect_user(EMAIL)
    desk.send(trigger_body(ticket_id="1002", **BY_EMAIL))
    # Refused: forged, invalid, too large, and with no secret configured
    webhook.send(trigger_body(**BY_EMAIL), {"x-zendesk-webhook-signature": "forged"})
    webhook.send(b'{"ticket_id": "x", "requester_email": "' + EMAIL.encode() + b'"}')
    webhook.send(b"{" + b" " * 70_000 + b"}")
    Webhook(runtime_with(env, ZENDESK_WEBHOOK_SECRET=""), desk.clock).send(trigger_body())
    # Failing: a wrong API key, Bugpilot unreachable, a note refused, a step raising
    desk.send(trigger_body(ticket_id="1003", **BY_EMAIL), runtime_with(env, BUGPILOT_API_KEY="x"))
    desk.send(
        trigger_body(ticket_id="1004", **BY_EMAIL), runtime_with(env, BUGPILOT_API_URL=NOWHERE)
    )
    desk.zendesk.script("update", 403)
    desk.clock.advance(minutes=5)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"could not read the report of {EMAIL}")

    with monkeypatch.context() as patch:
        patch.setattr(BugpilotProvider, "check", broken)
        desk.run()
    desk.clock.advance(minutes=10)
    desk.run()


def test_no_secret_and_no_raw_email_reaches_the_logs_or_the_metrics(
    desk: Desk,
    env: dict[str, str],
    lines: Lines,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # When accepted, refused and failing calls have gone through, for a requester's email
    _every_kind_of_path(desk, env, monkeypatch)
    written = lines.text + capsys.readouterr().out
    # Then the logs say a lot, but no credential, and the email only masked
    assert len(lines.all()) > 10
    for name in SECRET_SETTINGS:
        assert env[name] not in written, name
    assert EMAIL not in written
    assert MASKED_EMAIL in lines.text


def test_failures_that_need_a_person_are_warnings_or_errors(
    desk: Desk,
    env: dict[str, str],
    lines: Lines,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # When accepted, refused and failing calls have gone through
    _every_kind_of_path(desk, env, monkeypatch)
    # Then each failure that needs a person is logged at its level
    expected = {
        "capture provider unreachable or failing; trying again later": "WARNING",
        "capture provider rejected the request: configuration error": "ERROR",
        "no webhook secret is configured: every webhook is refused": "ERROR",
        "webhook refused": "WARNING",
        "helpdesk refused the note": "ERROR",
        "session step failed": "ERROR",
        "capture failed": "WARNING",
    }
    for message, level in expected.items():
        found = lines.with_message(message)
        assert found, message
        assert {line["level"] for line in found} == {level}, message
    # And what needs nobody stays at INFO
    assert {line["level"] for line in lines.with_message("capture request stored")} == {"INFO"}


def test_an_exception_text_kept_on_a_session_is_short_and_masked() -> None:
    # Given an exception whose message holds a credential and an email
    secret = "ws-very-secret-key"
    error = RuntimeError(f"auth with {secret} failed for {EMAIL}\nsecond line " + "x" * 500)
    # When it is described for the session
    text = observability.error_text(error, [secret])
    # Then neither shows, it is one line, and short
    assert text.startswith(f"RuntimeError: auth with *** failed for {MASKED_EMAIL} second line")
    assert len(text) == observability.MAX_ERROR_TEXT
