"""Logging shared by the package; the handlers' Powertools Logger formats and ships the records.

Every line about a capture session carries the same fields (`session_fields`), passed per call
as `extra`: the resolver works on sessions in a thread pool, where keys appended to the shared
logger would leak from one session's line into another's. Requester emails never reach a log
line as they are: the handlers' logger masks every address in what it writes (`redacted_json`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    from capture_bridge.models import CaptureSession

SERVICE = "capture-bridge"
# A child logger: it reuses the handler's JSON formatter and Lambda context keys.
logger = Logger(service=SERVICE, child=True)

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# Setting names whose values are credentials; they are cut out of any error text we keep.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)")
# Values this short are no credential, and replacing them would garble ordinary text.
_MIN_SECRET_LENGTH = 6
MAX_ERROR_TEXT = 200


def mask_email(text: str) -> str:
    """Every email address in `text` with its local part hidden: `j***@example.com`."""
    return _EMAIL.sub(r"\1***@\2", text)


def redacted_json(record: Mapping[str, Any]) -> str:
    """The handlers' log serializer: JSON with every email address masked."""
    return mask_email(json.dumps(record, default=str, separators=(",", ":")))


def handler_logger() -> Logger:
    """The Logger a Lambda handler creates: Powertools JSON, emails masked."""
    return Logger(service=SERVICE, json_serializer=redacted_json)


def secret_values(values: Mapping[str, str]) -> list[str]:
    """The credential values among settings, by their names (API keys, tokens, secrets)."""
    found = (value.strip() for name, value in values.items() if _SECRET_NAME.search(name.upper()))
    return [value for value in found if len(value) >= _MIN_SECRET_LENGTH]


def error_text(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """`Type: message` of an exception, short, one line, with credentials and emails cut out."""
    message = " ".join(str(exc).split())
    for secret in secrets:
        message = message.replace(secret, "***")
    text = f"{type(exc).__name__}: {mask_email(message)}" if message else type(exc).__name__
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def session_fields(session: CaptureSession, **more: Any) -> dict[str, Any]:
    """The `extra` of a log line about `session`: who and what it is, where it stands."""
    return {
        "session_id": session.session_id,
        "helpdesk": session.helpdesk,
        "ticket_id": session.ticket_id,
        "provider": session.provider,
        "action": session.action,
        "status": session.status.value,
        **more,
    }
