"""Lambda entry point for `POST /webhooks/{helpdesk}`: parse the API Gateway event, answer it."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from capture_bridge.webhook import receive

logger = Logger(service="capture-bridge")


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayProxyEventV2(event)
    answer = receive(
        (request.path_parameters or {}).get("helpdesk", ""),
        request.headers,
        request.body,
        is_base64=bool(request.is_base64_encoded),
    )
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(answer.body),
    }
