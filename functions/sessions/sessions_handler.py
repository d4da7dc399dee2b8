"""Lambda entry point for the sessions API (`/sessions`, `/sessions/{sessionId}`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from capture_bridge.observability import handler_logger
from capture_bridge.sessions_api import handle

logger = handler_logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The HTTP API v2 payload is read directly (no Powertools event handler: see sessions_api).
    return handle(event).as_response()
