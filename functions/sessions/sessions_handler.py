"""Lambda entry point for the sessions API (`/sessions`, `/sessions/{sessionId}`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capture_bridge.api.sessions import handle
from capture_bridge.observability import handler_logger

if TYPE_CHECKING:
    from capture_bridge.observability import LambdaContext

logger = handler_logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The HTTP API v2 payload is read directly: see capture_bridge.api.edge.
    return handle(event).as_response()
