"""Readable handler logs for local runs: one line per record instead of the handlers' JSON.

In AWS the JSON goes to CloudWatch Logs, where Logs Insights queries its fields; in a terminal
the same record reads better as ``time level message key=value…``, a session's keys first.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

# A session's identity first, in this order, so lines about one capture line up.
LEADING_KEYS = ("session_id", "helpdesk", "ticket_id", "provider", "action", "status")
# Lambda's context and the line's own bookkeeping: the same on every line, so left out.
QUIET_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "sampling_rate",
        "xray_trace_id",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "exception",
        "exception_name",
        "stack_trace",
    }
)


class ReadableFormatter(logging.Formatter):
    """Renders a line of the handlers' JSON formatter as one readable line (plus any traceback)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        # Whatever else is asked of the formatter is the inner one's to answer.
        return getattr(self.inner, name)

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        try:
            data: Any = json.loads(text)
        except ValueError:
            return text
        if not isinstance(data, dict):
            return text
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        keys = [key for key in LEADING_KEYS if key in data]
        keys += sorted(key for key in data if key not in QUIET_KEYS and key not in LEADING_KEYS)
        fields = " ".join(f"{key}={_value(data[key])}" for key in keys)
        line = f"{when} {record.levelname:<7} {data.get('message', '')}"
        if fields:
            line = f"{line}  {fields}"
        if data.get("exception"):
            line = f"{line}\n{data['exception']}"
        return line


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or " " in text else text


def make_handler_logs_readable() -> int:
    """Wrap the formatter of every handler of the bridge's JSON; returns how many were wrapped."""
    # Imported here: the runner puts the layer on `sys.path` only once it loads the template.
    from capture_bridge.observability import JsonFormatter

    wrapped = 0
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for handler in {handler for log in loggers for handler in log.handlers}:
        if isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(ReadableFormatter(handler.formatter))
            wrapped += 1
    return wrapped
