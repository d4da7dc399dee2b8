"""Lambda entry point for the scheduled resolver: one run over the due capture sessions."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from capture_bridge.resolver import resolve_due_sessions
from capture_bridge.runtime import get_runtime

logger = Logger(service="capture-bridge")


class ResolverRunFailed(Exception):
    """Some sessions failed unexpectedly; failing the run sends it to the dead-letter queue."""


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = resolve_due_sessions(get_runtime(), context.get_remaining_time_in_millis)
    if summary.errors:
        raise ResolverRunFailed(f"{summary.errors} of {summary.due} due sessions failed")
    return {"due": summary.due, "outcomes": dict(summary.outcomes)}
