"""The handlers' log lines: the keys, order and formats Powertools' Logger wrote, emails masked."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest

from capture_bridge import observability
from capture_bridge.observability import JsonFormatter, StructuredLogger, handler_logger

EMAIL = "ada@example.com"
MASKED_EMAIL = "a***@example.com"
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
LINE_KEYS = ["level", "location", "message", "timestamp", "service"]
CONTEXT_KEYS = [
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
]
_names = count()


@dataclass
class Context:
    """The attributes of Lambda's context object the logger reads."""

    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    function_name: str = "capture-bridge-webhook"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:webhook"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


class Written:
    """A logger of its own, outside the package's, and the JSON lines it wrote."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.logger = StructuredLogger(f"observability-test-{next(_names)}")
        self.stdlib = logging.getLogger(self.logger.name)
        self.stdlib.propagate = False
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.stdlib.addHandler(self.handler)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> Iterator[Written]:
    for name in ("_X_AMZN_TRACE_ID", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    logs = Written()
    yield logs
    logs.stdlib.removeHandler(logs.handler)


def test_a_line_is_one_json_object_with_the_powertools_keys_in_order(written: Written) -> None:
    # When a line is logged with extra keys
    line_number = sys._getframe().f_lineno + 1
    written.logger.info("capture requested", extra={"session_id": "s-1", "ticket_id": "1001"})
    # Then it is one JSON object: the line's keys first, then the extra keys at top level
    [text] = written.stream.getvalue().splitlines()
    line = json.loads(text)
    assert list(line) == [*LINE_KEYS, "session_id", "ticket_id"]
    assert line["level"] == "INFO"
    assert line["location"] == f"{sys._getframe().f_code.co_name}:{line_number}"
    assert line["message"] == "capture requested"
    assert line["service"] == "capture-bridge"
    assert (line["session_id"], line["ticket_id"]) == ("s-1", "1001")
    # And it is compact, as CloudWatch Logs bills it
    assert ": " not in text
    assert ", " not in text


def test_a_key_without_a_value_is_left_out_and_arguments_are_applied(written: Written) -> None:
    written.logger.warning("refused by %s", "zendesk", extra={"reason": None, "status": 401})
    [line] = written.lines()
    assert line["message"] == "refused by zendesk"
    assert line["level"] == "WARNING"
    assert "reason" not in line
    assert line["status"] == 401


def test_the_timestamp_is_local_time_with_milliseconds_then_the_offset() -> None:
    # Given a record made at a known instant, in a process on UTC (as Lambda's are)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    record.created, record.msecs = 1796565501.883, 883.0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        try:
            # When it is formatted
            line = json.loads(JsonFormatter().format(record))
        finally:
            patch.undo()
            time.tzset()
    # Then the timestamp is Powertools' default: `%Y-%m-%d %H:%M:%S,<ms>%z`
    assert line["timestamp"] == "2026-12-06 13:58:21,883+0000"


def test_every_email_is_masked_in_the_message_and_the_extra_keys(written: Written) -> None:
    written.logger.error(f"no user {EMAIL}", extra={"requester": EMAIL, "nested": {"to": EMAIL}})
    [line] = written.lines()
    assert line["message"] == f"no user {MASKED_EMAIL}"
    assert (line["requester"], line["nested"]) == (MASKED_EMAIL, {"to": MASKED_EMAIL})
    assert EMAIL not in written.stream.getvalue()


def test_an_exception_adds_its_text_its_name_and_its_stack_trace(written: Written) -> None:
    # When an exception is logged while it is handled
    try:
        raise ValueError(f"bad answer for {EMAIL}")
    except ValueError:
        written.logger.exception("session step failed", extra={"session_id": "s-1"})
    # Then the line is an error with Powertools' exception keys after the extra ones, masked
    [line] = written.lines()
    assert list(line) == [
        *LINE_KEYS,
        "session_id",
        "exception",
        "exception_name",
        "stack_trace",
    ]
    assert line["level"] == "ERROR"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith(f"ValueError: bad answer for {MASKED_EMAIL}")
    assert line["exception_name"] == "ValueError"
    trace = line["stack_trace"]
    assert (trace["type"], trace["value"], trace["module"]) == (
        "ValueError",
        f"bad answer for {MASKED_EMAIL}",
        "builtins",
    )
    [frame] = trace["frames"]
    assert frame["function"] == "test_an_exception_adds_its_text_its_name_and_its_stack_trace"
    assert frame["statement"] == 'raise ValueError(f"bad answer for {EMAIL}")'


def test_an_exception_logged_outside_a_handler_adds_nothing(written: Written) -> None:
    written.logger.exception("no exception in flight")
    [line] = written.lines()
    assert list(line) == LINE_KEYS


def test_the_lambda_context_is_on_every_line_of_an_invocation_cold_once(written: Written) -> None:
    logger = written.logger

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Context) -> str:
        logger.info("inside", extra={"session_id": event["id"]})
        return "answer"

    # When two invocations run
    assert handler({"id": "s-1"}, Context()) == "answer"
    handler({"id": "s-2"}, Context(aws_request_id="second"))
    # Then each line carries the context keys, after the line's keys and before the extra ones
    first, second = written.lines()
    assert list(first) == [*LINE_KEYS, *CONTEXT_KEYS, "session_id"]
    assert {key: first[key] for key in CONTEXT_KEYS} == {
        "cold_start": True,
        "function_name": "capture-bridge-webhook",
        "function_memory_size": 256,
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:webhook",
        "function_request_id": "52fdfc07-2182-154f-163f-5f0f9a621d72",
    }
    # And only the first invocation of the process is a cold start
    assert (second["cold_start"], second["function_request_id"]) == (False, "second")
    assert second["session_id"] == "s-2"


def test_a_provisioned_environment_has_no_cold_start(
    written: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")
    logger = written.logger
    handler = logger.inject_lambda_context(clear_state=True)(
        lambda event, context: logger.info("x")
    )
    handler({}, Context())
    assert written.lines()[0]["cold_start"] is False


def test_clear_state_drops_an_earlier_invocations_keys_and_extra_wins(written: Written) -> None:
    logger = written.logger

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Context) -> None:
        logger.info("inside", extra=event)

    # Given an invocation whose extra overrides a context key
    handler({"function_name": "overridden"}, Context())
    handler({}, Context(function_name="other"))
    first, second = written.lines()
    # Then the extra value wins in its place, and the next invocation has its own keys only
    assert list(first) == [*LINE_KEYS, *CONTEXT_KEYS]
    assert first["function_name"] == "overridden"
    assert second["function_name"] == "other"


def test_the_xray_trace_id_ends_every_line_when_lambda_sets_it(
    written: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE_HEADER)
    written.logger.info("traced", extra={"k": 1})
    [line] = written.lines()
    assert list(line) == [*LINE_KEYS, "k", "xray_trace_id"]
    assert line["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"


def test_threads_logging_at_once_keep_their_own_keys(written: Written) -> None:
    # Given an invocation's context, as the resolver's pool works under it
    logger = written.logger
    sessions = [f"s-{number}" for number in range(8)]
    barrier = threading.Barrier(len(sessions))

    def work(session_id: str) -> None:
        barrier.wait()
        for step in range(25):
            logger.info("step", extra={"session_id": session_id, f"only_{session_id}": step})

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Context) -> None:
        threads = [threading.Thread(target=work, args=(session,)) for session in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # When each thread logs about its session at the same time
    handler({}, Context())
    # Then every line carries the invocation's keys and its own session's keys, no other's
    lines = written.lines()
    assert len(lines) == len(sessions) * 25
    for line in lines:
        own = line["session_id"]
        assert line["function_request_id"] == Context.aws_request_id
        assert [key for key in line if key.startswith("only_")] == [f"only_{own}"]


@pytest.mark.parametrize(
    ("settings", "lowest"),
    [
        ({}, logging.INFO),
        ({"POWERTOOLS_LOG_LEVEL": "warning"}, logging.WARNING),
        ({"LOG_LEVEL": "DEBUG"}, logging.DEBUG),
        ({"POWERTOOLS_LOG_LEVEL": "ERROR", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"}, logging.DEBUG),
        ({"AWS_LAMBDA_LOG_LEVEL": "WARN"}, logging.WARNING),
    ],
)
def test_the_level_is_the_settings_one_lambdas_first(
    settings: dict[str, str], lowest: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("POWERTOOLS_LOG_LEVEL", "LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    written = Written()
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        getattr(written.logger, logging.getLevelName(level).lower())("at", extra={})
    levels = [logging.getLevelName(line["level"]) for line in written.lines()]
    assert levels == [level for level in (10, 20, 30, 40) if level >= lowest]


def test_the_handlers_logger_is_the_packages_writing_once_to_stdout() -> None:
    # When handlers ask for their logger, as each handler module does at import
    first, second = handler_logger(), handler_logger()
    # Then it is the one the package logs with, with one stdout handler of JSON lines
    assert first is second is observability.logger
    own = logging.getLogger(observability.SERVICE).handlers
    assert [type(handler.formatter) for handler in own].count(JsonFormatter) == 1
    assert first.registered_handler in own


def test_our_records_stay_out_of_the_root_handlers_they_propagate_to() -> None:
    # Given a handler on the root logger, as Lambda's runtime installs one
    stream = io.StringIO()
    root_handler = logging.StreamHandler(stream)
    logging.root.addHandler(root_handler)
    logger = StructuredLogger(f"{observability.SERVICE}.test-{next(_names)}")
    try:
        # When our logger starts writing its lines, and logs
        logger.write_to_stdout()
        logger.warning("written once")
        logging.getLogger("elsewhere").warning("not ours")
    finally:
        logging.root.removeHandler(root_handler)
        if logger.registered_handler is not None:
            logging.getLogger(logger.name).removeHandler(logger.registered_handler)
    # Then the root handler gets every other logger's records, but not ours
    assert stream.getvalue() == "not ours\n"


def test_a_mapping_message_is_written_as_an_object(written: Written) -> None:
    written.logger.info({"event": "tick", "due": 3})
    [line] = written.lines()
    assert line["message"] == {"event": "tick", "due": 3}
