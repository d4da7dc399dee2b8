"""Fresh proofs for the webhook events in events/: a stored signature is stale minutes later.

Each helpdesk's module says how it signs or authenticates a call (`sign_request`); nothing here
knows any one helpdesk.
"""

from __future__ import annotations

import base64
import copy
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def event_helpdesk(event: Mapping[str, Any]) -> str:
    """The helpdesk an API Gateway v2 webhook event is addressed to (its `{helpdesk}`)."""
    return str((event.get("pathParameters") or {}).get("helpdesk") or "")


def signed_event(
    event: dict[str, Any],
    values: Mapping[str, str],
    *,
    helpdesk: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A copy of an API Gateway v2 webhook event, signed as `helpdesk` would sign it at `now`.

    `values` are settings by name (the helpdesk's webhook secret among them); `helpdesk`
    defaults to the event's own path parameter. Raises `UnknownHelpdesk`, and
    `SecretNotConfigured` naming the setting that is missing.
    """
    from capture_bridge.helpdesks import Headers, WebhookRequest, helpdesk_spec

    name = helpdesk or event_helpdesk(event)
    spec = helpdesk_spec(name)
    at = now or datetime.now(UTC)
    signed = copy.deepcopy(event)
    body = signed.get("body") or ""
    raw = base64.b64decode(body) if signed.get("isBase64Encoded") else body.encode()
    # A time inside the body (Jira's admin webhooks) is made current too, then signed with it.
    raw = spec.fresh_body(raw, at)
    encoded = signed.get("isBase64Encoded")
    signed["body"] = base64.b64encode(raw).decode() if encoded else raw.decode()
    http = (signed.get("requestContext") or {}).get("http") or {}
    request = WebhookRequest(
        method=str(http.get("method") or "POST"),
        path=str(signed.get("rawPath") or f"/webhooks/{name}"),
        headers=Headers(signed.get("headers") or {}),
        body=raw,
        query_string=str(signed.get("rawQueryString") or ""),
    )
    proof = spec.sign_request(values, request, at)
    replaced = {key.lower() for key in proof}
    headers = {
        key: value
        for key, value in (signed.get("headers") or {}).items()
        if key.lower() not in replaced
    }
    headers.update(proof)
    signed["headers"] = headers
    return signed


# Headers curl sets itself, or that only API Gateway adds: a pasted command leaves them out.
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "connection", "x-forwarded-for"})


def curl_command(event: Mapping[str, Any], base_url: str) -> str:
    """A ready-to-paste `curl` that sends the event's call to the local API at `base_url`.

    The body is piped in by `printf %s`, so that it arrives byte for byte as signed (a
    here-document would add a newline the signature does not cover).
    """
    body = event.get("body") or ""
    raw = base64.b64decode(body).decode() if event.get("isBase64Encoded") else str(body)
    path = str(event.get("rawPath") or f"/webhooks/{event_helpdesk(event)}")
    query = str(event.get("rawQueryString") or "")
    url = f"{base_url.rstrip('/')}{path}" + (f"?{query}" if query else "")
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method") or "POST")
    parts = ["curl", "-sS", "-X", method, shlex.quote(url)]
    for name, value in (event.get("headers") or {}).items():
        if str(name).lower() not in _TRANSPORT_HEADERS:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
    return f"printf %s {shlex.quote(raw)} | {' '.join(parts)} --data-binary @-"
