"""Lambda entry point for the work queue's worker: one SQS batch of due capture sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capture_bridge.observability import handler_logger
from capture_bridge.runtime import get_runtime
from capture_bridge.worker import run

if TYPE_CHECKING:
    from capture_bridge.observability import LambdaContext

logger = handler_logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run(get_runtime, event, context.get_remaining_time_in_millis)
