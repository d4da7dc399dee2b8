"""Logging shared by the package: one JSON object per line, the fields Powertools' Logger wrote.

Every line about a capture session carries the same fields (`session_fields`), passed per call
as `extra`: the resolver works on sessions in a thread pool, where keys appended to the shared
logger would leak from one session's line into another's. Requester emails never reach a log
line as they are: the handlers' formatter masks every address in what it writes (`redacted_json`).

The logger is our own, on the standard `logging` (which boto3 loads anyway): Powertools' Logger
and the metrics its package loads with it cost every cold start about a fifth more than
`import boto3, requests` (`make bench`). Its lines are unchanged, because operators' queries
read them: `level`, `location`, `message`, `timestamp`, `service`, then the Lambda context keys
`inject_lambda_context` adds, the `extra` keys, the exception's keys and `xray_trace_id`, keys
without a value left out. Settings keep their Powertools names (`POWERTOOLS_LOG_LEVEL`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeVar, cast

if TYPE_CHECKING:
    from capture_bridge.models import CaptureSession

    # Typing only: a class made at import would be paid by every cold start for nothing.
    class LambdaContext(Protocol):
        """What the handlers and their logger read of Lambda's context object."""

        @property
        def function_name(self) -> str: ...
        @property
        def memory_limit_in_mb(self) -> int | str: ...
        @property
        def invoked_function_arn(self) -> str: ...
        @property
        def aws_request_id(self) -> str: ...
        def get_remaining_time_in_millis(self) -> int: ...


SERVICE = "capture-bridge"

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# Setting names whose values are credentials; they are cut out of any error text we keep.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)")
# Values this short are no credential, and replacing them would garble ordinary text.
_MIN_SECRET_LENGTH = 6
MAX_ERROR_TEXT = 200

LOG_LEVEL_ENV = "POWERTOOLS_LOG_LEVEL"
LEGACY_LOG_LEVEL_ENV = "LOG_LEVEL"
# Lambda's advanced logging controls, when a function sets them, win over our own setting.
LAMBDA_LOG_LEVEL_ENV = "AWS_LAMBDA_LOG_LEVEL"
LAMBDA_LOG_LEVELS = {
    "TRACE": "NOTSET",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "CRITICAL",
}
TRACE_ID_ENV = "_X_AMZN_TRACE_ID"
INITIALIZATION_TYPE_ENV = "AWS_LAMBDA_INITIALIZATION_TYPE"
# What a standard record carries and no `extra` may add to a line; `level`, `location` and
# `timestamp` are the line's own keys, as Powertools reserved them.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "level", "location", "timestamp"}

_Function = TypeVar("_Function", bound=Callable[..., Any])


def mask_email(text: str) -> str:
    """Every email address in `text` with its local part hidden: `j***@example.com`."""
    return _EMAIL.sub(r"\1***@\2", text)


def redacted_json(record: Mapping[str, Any]) -> str:
    """The handlers' log serializer: JSON with every email address masked."""
    return mask_email(json.dumps(record, default=str, separators=(",", ":")))


def log_level() -> int | str:
    """The level the settings ask for: Lambda's, else `POWERTOOLS_LOG_LEVEL`, else INFO."""
    lambda_level = LAMBDA_LOG_LEVELS.get(os.environ.get(LAMBDA_LOG_LEVEL_ENV, ""))
    if lambda_level:
        return lambda_level
    level = os.environ.get(LOG_LEVEL_ENV) or os.environ.get(LEGACY_LOG_LEVEL_ENV)
    return level.upper() if level else logging.INFO


class JsonFormatter(logging.Formatter):
    """A record as one JSON object, with the keys, order and formats of Powertools' formatter."""

    def __init__(
        self,
        service: str = SERVICE,
        serializer: Callable[[Mapping[str, Any]], str] = redacted_json,
    ) -> None:
        super().__init__()
        self.service = service
        self.serializer = serializer

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": _message(record),
            "timestamp": self.formatTime(record),
            "service": self.service,
        }
        # The Lambda context keys and the call's `extra`, in the order they were given.
        line.update(
            (key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES
        )
        error = record.exc_info
        # `logger.exception` outside an `except` block has (None, None, None): nothing to tell.
        if isinstance(error, tuple) and error[0] is not None:
            kind, value, trace = error
            line.setdefault("exception", self.formatException(error))
            line.setdefault("exception_name", kind.__name__)
            line.setdefault("exception_notes", getattr(value, "__notes__", None))
            line["stack_trace"] = {
                "type": kind.__name__,
                "value": value,
                "module": type(value).__module__,
                "frames": [
                    {
                        "file": frame.filename,
                        "line": frame.lineno,
                        "function": frame.name,
                        "statement": frame.line,
                    }
                    for frame in traceback.extract_tb(trace)
                ],
            }
        trace_id = os.environ.get(TRACE_ID_ENV)
        line["xray_trace_id"] = trace_id.split(";")[0].replace("Root=", "") if trace_id else None
        return self.serializer({key: value for key, value in line.items() if value is not None})

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Local time (UTC in Lambda) with milliseconds: `2026-12-06 13:58:21,883+0000`."""
        when = time.localtime(record.created)
        return time.strftime(f"%Y-%m-%d %H:%M:%S,{int(record.msecs):03d}%z", when)


def _message(record: logging.LogRecord) -> Any:
    """The message as written: a mapping as is, `%` arguments applied."""
    if isinstance(record.msg, Mapping) or not record.args:
        return record.msg
    return record.getMessage()


class _NotOurs(logging.Filter):
    """Keeps our records out of handlers they reach by propagation: they are written already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == SERVICE or record.name.startswith(SERVICE + "."))


class StructuredLogger:
    """The package's logger: `extra` keys on the line, Lambda context keys per invocation.

    Thread-safe: a call's `extra` goes on its own record only, and the context keys are one
    dictionary replaced, never changed, once per invocation (before the resolver's pool starts).
    """

    def __init__(self, name: str = SERVICE) -> None:
        self._logger = logging.getLogger(name)
        self._logger.setLevel(log_level())
        self._context: Mapping[str, Any] = {}
        self._cold_start = True
        self._handler: logging.StreamHandler[TextIO] | None = None

    @property
    def name(self) -> str:
        return self._logger.name

    @property
    def registered_handler(self) -> logging.StreamHandler[TextIO] | None:
        """The handler `write_to_stdout` installed, if it did."""
        return self._handler

    def setLevel(self, level: int | str) -> None:  # as `logging` spells it
        self._logger.setLevel(level)

    def debug(self, msg: object, *args: object, extra: Mapping[str, object] | None = None) -> None:
        self._log(logging.DEBUG, msg, args, extra)

    def info(self, msg: object, *args: object, extra: Mapping[str, object] | None = None) -> None:
        self._log(logging.INFO, msg, args, extra)

    def warning(
        self, msg: object, *args: object, extra: Mapping[str, object] | None = None
    ) -> None:
        self._log(logging.WARNING, msg, args, extra)

    def error(
        self,
        msg: object,
        *args: object,
        exc_info: bool = False,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        self._log(logging.ERROR, msg, args, extra, exc_info=exc_info)

    def exception(
        self, msg: object, *args: object, extra: Mapping[str, object] | None = None
    ) -> None:
        """An ERROR line with the exception being handled (`exception`, `stack_trace`…)."""
        self._log(logging.ERROR, msg, args, extra, exc_info=True)

    def _log(
        self,
        level: int,
        msg: object,
        args: tuple[object, ...],
        extra: Mapping[str, object] | None,
        *,
        exc_info: bool = False,
    ) -> None:
        if not self._logger.isEnabledFor(level):
            return
        fields = {**self._context, **(extra or {})}
        # stacklevel 3: the line's `location` is our caller's, not this method's nor its wrapper's.
        self._logger.log(level, msg, *args, exc_info=exc_info, extra=fields, stacklevel=3)

    def inject_lambda_context(
        self, *, clear_state: bool = False
    ) -> Callable[[_Function], _Function]:
        """Decorates a handler: every line of an invocation carries its Lambda context keys.

        With `clear_state` the keys of the invocation before are dropped, not merged.
        """

        def decorator(handler: _Function) -> _Function:
            @functools.wraps(handler)
            def decorated(event: Any, context: LambdaContext, *args: Any, **kwargs: Any) -> Any:
                keys = {
                    "cold_start": self._is_cold_start(),
                    "function_name": context.function_name,
                    "function_memory_size": context.memory_limit_in_mb,
                    "function_arn": context.invoked_function_arn,
                    "function_request_id": context.aws_request_id,
                }
                self._context = keys if clear_state else {**self._context, **keys}
                return handler(event, context, *args, **kwargs)

            return cast(_Function, decorated)

        return decorator

    def _is_cold_start(self) -> bool:
        """True for the first invocation of this process, unless it was provisioned ahead."""
        if os.environ.get(INITIALIZATION_TYPE_ENV) == "provisioned-concurrency":
            self._cold_start = False
        cold, self._cold_start = self._cold_start, False
        return cold

    def write_to_stdout(self) -> None:
        """Write JSON lines to stdout, once, where Lambda sends them to CloudWatch Logs."""
        if self._handler is not None:
            return
        self._logger.setLevel(log_level())
        self._handler = logging.StreamHandler(sys.stdout)
        self._handler.setFormatter(JsonFormatter())
        self._logger.addHandler(self._handler)
        # Lambda's runtime gives the root logger a handler of its own: our records would be
        # written twice. Pytest's capturing handler still gets them (`caplog`).
        for handler in logging.root.handlers:
            if type(handler).__name__ != "LogCaptureHandler":
                handler.addFilter(_NotOurs())


logger = StructuredLogger()


def handler_logger() -> StructuredLogger:
    """The logger a Lambda handler decorates with: `logger`, writing JSON lines to stdout."""
    logger.write_to_stdout()
    return logger


def secret_values(values: Mapping[str, str]) -> list[str]:
    """The credential values among settings, by their names (API keys, tokens, secrets)."""
    found = (value.strip() for name, value in values.items() if _SECRET_NAME.search(name.upper()))
    return [value for value in found if len(value) >= _MIN_SECRET_LENGTH]


def error_text(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """`Type: message` of an exception, short, one line, with credentials and emails cut out."""
    message = " ".join(str(exc).split())
    for secret in secrets:
        message = message.replace(secret, "***")
    text = f"{type(exc).__name__}: {mask_email(message)}" if message else type(exc).__name__
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def session_fields(session: CaptureSession, **more: Any) -> dict[str, Any]:
    """The `extra` of a log line about `session`: who and what it is, where it stands."""
    return {
        "session_id": session.session_id,
        "helpdesk": session.helpdesk,
        "ticket_id": session.ticket_id,
        "provider": session.provider,
        "action": session.action,
        "status": session.status.value,
        **more,
    }
