"""Fresh signatures for the payloads in events/: a stored one is stale five minutes later."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from typing import Any

SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"


def signed_event(event: dict[str, Any], secret: str, now: datetime | None = None) -> dict[str, Any]:
    """A copy of an API Gateway v2 webhook event, signed as Zendesk would sign it at `now`."""
    from capture_bridge.helpdesks.zendesk import sign_webhook

    signed = copy.deepcopy(event)
    body = signed.get("body") or ""
    raw = base64.b64decode(body) if signed.get("isBase64Encoded") else body.encode()
    timestamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        key: value
        for key, value in (signed.get("headers") or {}).items()
        if key.lower() not in (SIGNATURE_HEADER, TIMESTAMP_HEADER)
    }
    headers[SIGNATURE_HEADER] = sign_webhook(secret, timestamp, raw)
    headers[TIMESTAMP_HEADER] = timestamp
    signed["headers"] = headers
    return signed
