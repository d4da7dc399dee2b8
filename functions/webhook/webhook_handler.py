"""Lambda entry point for `POST /webhooks/{helpdesk}`: parse the API Gateway event, answer it."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from capture_bridge.observability import handler_logger
from capture_bridge.webhook import receive

logger = handler_logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The four fields of the HTTP API v2 payload we need are read directly: Powertools' event
    # class would add a fifth to the cold start for no gain.
    answer = receive(
        (event.get("pathParameters") or {}).get("helpdesk", ""),
        event.get("headers") or {},
        event.get("body"),
        is_base64=bool(event.get("isBase64Encoded")),
    )
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(answer.body),
    }
