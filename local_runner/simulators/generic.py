"""HTTP simulator of a note receiver for the generic (Standard Webhooks) helpdesk.

It checks each note as the standard asks a receiver to: the signature over id, timestamp and
body with the shared `whsec_` key, a five-minute window, and de-duplication on `webhook-id`. It is
written without the bridge's code, so that it checks the adapter rather than agreeing with it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from ._server import JsonHttpServer, RecordedRequest, Reply, Route, phrase

NOTES_PATH = "/capture-notes"
# A demo key of 32 bytes, in the standard's `whsec_<base64>` form.
DEMO_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"capture-bridge-generic-demo-key!").decode()
# The standard's replay window, as the receiver enforces it.
TOLERANCE_SECONDS = 300
NOTE_TYPE = "capture.note"
_NOTE_TEXT_FIELDS = ("ticketId", "sessionId", "status", "text", "html")


def _camel_case(name: str) -> str:
    """`lambdatest_session_id` → `lambdatestSessionId`, as the generic body spells its fields."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class GenericSimulator(JsonHttpServer):
    """A tool's note receiver over real HTTP: verifies, de-duplicates and keeps notes per ticket.

    Its one route, "note", checks the signature itself (so a refusal can say why).
    """

    helpdesk = "generic"
    sender = "The in-house tool"

    def __init__(
        self,
        *,
        secret: str = DEMO_WEBHOOK_SECRET,
        port: int = 0,
        known_tickets: set[str] | None = None,
    ) -> None:
        """`known_tickets` None means every ticket id exists."""
        super().__init__(
            port=port, routes=[Route("note", "POST", NOTES_PATH, self._receive, auth=False)]
        )
        self.secret = secret
        self._known = None if known_tickets is None else set(known_tickets)
        self._notes: dict[str, list[dict[str, Any]]] = {}
        self._seen_ids: set[str] = set()

    # -- the demo's view (HelpdeskSimulator) -------------------------------------------------

    def bridge_settings(self) -> dict[str, str]:
        return {
            "GENERIC_NOTE_URL": f"{self.url}{NOTES_PATH}",
            "GENERIC_WEBHOOK_SECRET": self.secret,
        }

    def ticket_id(self, number: int) -> str:
        return f"CASE-{number}"

    def webhook_body(
        self, ticket_id: str, *, user_id: str, email: str, tags: str, fields: Mapping[str, str]
    ) -> bytes:
        # The README's documented camelCase body.
        payload = {
            "ticketId": ticket_id,
            "userId": user_id,
            "userEmail": email,
            "tags": tags,
            **{_camel_case(name): value for name, value in fields.items()},
        }
        return json.dumps(payload).encode()

    def webhook_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def internal_notes(self, ticket_id: str) -> list[str]:
        return [str(note.get("text", "")) for note in self.notes(ticket_id)]

    # -- test controls ---------------------------------------------------------------------

    def notes(self, ticket_id: str) -> list[dict[str, Any]]:
        """Copies of the notes kept for the ticket, oldest first, each with its `webhook-id`."""
        with self._lock:
            return copy.deepcopy(self._notes.get(ticket_id, []))

    # -- HTTP ------------------------------------------------------------------------------

    def error(self, status: int, message: str | None = None) -> Reply:
        """``{"error": "NotFound"}``: the status phrase in CamelCase unless named."""
        return Reply(status, {"error": message or phrase(status).replace(" ", "")})

    def verified(self, request: RecordedRequest, now: float | None = None) -> str | None:
        """Why the request's signature fails the standard's check, or None when it passes."""
        headers = request.headers
        message_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (message_id and timestamp and signatures):
            return "missing webhook headers"
        if not timestamp.isascii() or not timestamp.isdigit():
            return "invalid webhook-timestamp"
        if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_SECONDS:
            return "webhook-timestamp outside the tolerance"
        try:
            key = base64.b64decode(self.secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            return "the receiver's secret is not whsec_<base64>"
        content = f"{message_id}.{timestamp}.".encode() + request.body
        expected = hmac.new(key, content, hashlib.sha256).digest()
        for entry in signatures.split(" "):
            version, _, encoded = entry.partition(",")
            if version != "v1":
                continue
            try:
                given = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                continue
            if hmac.compare_digest(expected, given):
                return None
        return "no matching signature"

    def _receive(self, request: RecordedRequest) -> Reply:
        problem = self.verified(request)
        if problem is not None:
            return Reply(401, {"error": "Unauthorized", "detail": problem})
        note = request.json()
        if not isinstance(note, dict) or note.get("type") != NOTE_TYPE:
            return Reply(400, {"error": "BadRequest", "detail": f"type must be {NOTE_TYPE}"})
        blank = [name for name in _NOTE_TEXT_FIELDS if not isinstance(note.get(name), str)]
        if blank or not note["text"].strip() or not isinstance(note.get("links"), dict):
            return Reply(400, {"error": "BadRequest", "detail": f"invalid fields: {blank}"})
        ticket_id = note["ticketId"]
        if self._known is not None and ticket_id not in self._known:
            return Reply(404, {"error": "NotFound", "detail": f"no ticket {ticket_id}"})
        message_id = request.headers["webhook-id"]
        with self._lock:
            # The standard's idempotency: a repeated id is acknowledged, not kept again.
            if message_id in self._seen_ids:
                return Reply(200, {"duplicate": True})
            self._seen_ids.add(message_id)
            self._notes.setdefault(ticket_id, []).append({**note, "webhook_id": message_id})
        return Reply(200, {"duplicate": False})
