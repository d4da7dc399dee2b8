"""Lambda entry point for the scheduled resolver: one run over the due capture sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capture_bridge.observability import handler_logger
from capture_bridge.resolver import ResolverRunFailed, run
from capture_bridge.runtime import get_runtime

if TYPE_CHECKING:
    from capture_bridge.observability import LambdaContext

logger = handler_logger()

# Raised (and so sent to the dead-letter queue) only when the run itself cannot work.
__all__ = ["ResolverRunFailed", "lambda_handler"]


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = run(get_runtime, context.get_remaining_time_in_millis)
    return {"due": summary.due, "outcomes": dict(summary.outcomes)}
