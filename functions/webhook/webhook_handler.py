"""Lambda entry point for `POST /webhooks/{helpdesk}`: parse the API Gateway event, answer it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capture_bridge.observability import handler_logger
from capture_bridge.webhook import receive_event

if TYPE_CHECKING:
    from capture_bridge.observability import LambdaContext

logger = handler_logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The HTTP API v2 fields a webhook needs are read directly (`receive_event`): Powertools'
    # event class would add to the cold start for no gain.
    return receive_event(event).as_response()
