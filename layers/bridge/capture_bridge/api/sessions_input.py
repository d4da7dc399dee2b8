"""What callers of the sessions API send, checked: the create body, the list query, headers.

Every problem is collected and answered at once (`BadInput`, a 400 listing each field with
`loc` and `msg`). A provider's own fields are read as its spec says (`ProviderSpec.api_fields`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from capture_bridge.capture import (
    DEFAULT_PROVIDER,
    provider_spec,
    provider_specs,
    supported_providers,
)
from capture_bridge.helpdesks import supported_helpdesks
from capture_bridge.models import SessionStatus, ticket_key
from capture_bridge.session_store import SessionIndex, SessionQuery

if TYPE_CHECKING:
    from capture_bridge.capture.spec import ApiField
    from capture_bridge.session_commands import NewSession

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 2048
MAX_IDEMPOTENCY_KEY = 255
MAX_TICKET_ID = 64

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_STATUSES = tuple(status.value for status in SessionStatus)
# The fields of every create body; the rest are the provider's own (`ProviderSpec.api_fields`).
_COMMON_FIELDS = ("helpdesk", "ticketId", "provider")


class FieldError(NamedTuple):
    """One field's problem: where it is (`loc`) and what is wrong (`msg`)."""

    loc: tuple[str | int, ...]
    msg: str


class BadInput(Exception):
    """Field-level 400."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(error.msg for error in errors))
        self.errors = errors


class Fields:
    """Reads the fields of one part of a request (`body`, `query`), collecting every problem."""

    def __init__(self, values: Mapping[str, Any], where: str) -> None:
        self.values = values
        self.where = where
        self.errors: list[FieldError] = []

    def error(self, name: str, msg: str) -> None:
        self.errors.append(FieldError((self.where, name[:64]), msg))

    def text(
        self,
        name: str,
        *,
        limit: int,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        """A string field, checked; on a problem it is recorded and "" returned."""
        value = self.values.get(name)
        if value is None:
            if required:
                self.error(name, "field required")
            return ""
        if not isinstance(value, str):
            self.error(name, "must be a string")
            return ""
        problem = None
        if not value.strip() or len(value) > limit:
            problem = f"must be 1 to {limit} characters"
        elif not value.isprintable():
            # Lone surrogates (which DynamoDB refuses) and control characters end here.
            problem = "must be printable text"
        elif pattern is not None and not pattern.match(value):
            problem = f"must match {pattern.pattern}"
        if problem:
            self.error(name, problem)
            return ""
        return value

    def check(self) -> None:
        if self.errors:
            raise BadInput(self.errors)


def new_session(body: bytes) -> NewSession:
    """The POST body as a `NewSession`; `BadInput` listing every problem."""
    try:
        payload = json.loads(body) if body else None
    except (ValueError, RecursionError):
        raise BadInput([FieldError(("body",), "body must be a JSON object")]) from None
    if not isinstance(payload, dict):
        raise BadInput([FieldError(("body",), "body must be a JSON object")])
    fields = Fields(payload, "body")
    helpdesk = fields.text("helpdesk", required=True, limit=32, pattern=_NAME)
    if helpdesk and helpdesk not in supported_helpdesks():
        fields.error("helpdesk", f"unknown helpdesk; supported: {', '.join(supported_helpdesks())}")
    ticket_id = fields.text("ticketId", required=True, limit=MAX_TICKET_ID)
    provider = fields.text("provider", limit=32, pattern=_NAME) or DEFAULT_PROVIDER
    if provider not in supported_providers():
        fields.error("provider", f"unknown provider; supported: {', '.join(supported_providers())}")
        fields.check()
    spec = provider_spec(provider)
    own = {field.name for field in spec.api_fields}
    # Another provider's field is "not used" here, not "unknown".
    others = {field.name for other in provider_specs() for field in other.api_fields}
    for name in payload:
        if name in _COMMON_FIELDS or name in own:
            continue
        fields.error(
            str(name), f"not used by provider {provider}" if name in others else "unknown field"
        )
    # Imported here: the spec types and the commands load with the first create, not at every
    # cold start.
    from capture_bridge.capture.spec import ApiTarget
    from capture_bridge.session_commands import NewSession

    values = dict.fromkeys(ApiTarget, "")
    for api_field in spec.api_fields:
        # The first field given wins a target (Bugpilot: the external id before the email).
        value = _read_api_field(fields, api_field)
        values[api_field.target] = values[api_field.target] or value
    # A null is no value: the document says null means the field is left out.
    if spec.api_one_of and all(payload.get(name) is None for name in spec.api_one_of):
        fields.error(spec.api_one_of[0], f"{' or '.join(spec.api_one_of)} is required")
    fields.check()
    return NewSession(
        helpdesk,
        ticket_id,
        provider,
        requester=values[ApiTarget.REQUESTER],
        action=values[ApiTarget.ACTION],
        description=values[ApiTarget.DESCRIPTION],
        external_session_id=values[ApiTarget.EXTERNAL_SESSION_ID],
    )


def _read_api_field(fields: Fields, api_field: ApiField) -> str:
    """One provider field of the create body, checked as its spec says."""
    value = fields.text(
        api_field.name,
        limit=api_field.max_length,
        required=api_field.required,
        pattern=api_field.pattern,
    )
    if value and api_field.choices and value not in api_field.choices:
        fields.error(api_field.name, f"must be one of {', '.join(api_field.choices)}")
    return value


def only(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Refuse query parameters other than `allowed`."""
    unknown = sorted(name for name in query if name not in allowed)
    if unknown:
        raise BadInput([FieldError(("query", name[:64]), "unknown parameter") for name in unknown])


def boolean(query: Mapping[str, str], name: str) -> bool:
    """A `true`/`false` query parameter, false when absent."""
    raw = query.get(name, "false").strip().lower()
    if raw not in ("true", "false"):
        raise BadInput([FieldError(("query", name), "must be true or false")])
    return raw == "true"


def _since(raw: str, fields: Fields) -> datetime | None:
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        fields.error("since", "must be an ISO 8601 date-time with a time zone")
        return None
    moment = moment.astimezone(UTC)
    # Stored times are whole seconds: a floor inside a second starts at the next one.
    whole = moment.replace(microsecond=0)
    return whole + timedelta(seconds=1) if moment.microsecond else whole


_LIST_PARAMETERS = frozenset({"helpdesk", "ticketId", "status", "since", "limit", "cursor"})


def session_query(query: Mapping[str, str]) -> tuple[SessionQuery, int, str | None]:
    """The listing, page size and cursor a GET /sessions asks for; `BadInput` otherwise."""
    only(query, _LIST_PARAMETERS)
    fields = Fields(query, "query")
    helpdesk = fields.text("helpdesk", limit=32, pattern=_NAME)
    ticket_id = fields.text("ticketId", limit=MAX_TICKET_ID)
    status = fields.text("status", limit=32)
    if status and status not in _STATUSES:
        fields.error("status", f"must be one of {', '.join(_STATUSES)}")
    by_ticket = "helpdesk" in query or "ticketId" in query
    if by_ticket == ("status" in query):
        fields.errors.append(FieldError(("query",), "give either helpdesk and ticketId, or status"))
    elif by_ticket:
        for name in ("helpdesk", "ticketId"):
            if name not in query:
                fields.error(name, "field required")
    limit = DEFAULT_LIMIT
    if "limit" in query:
        digits = query["limit"].strip()
        limit = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 3 else 0
        if not 1 <= limit <= MAX_LIMIT:
            fields.error("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    cursor = query.get("cursor")
    if cursor is not None and not 1 <= len(cursor) <= MAX_CURSOR_LENGTH:
        fields.error("cursor", "is not a valid cursor")
    since = _since(query["since"], fields) if "since" in query else None
    fields.check()
    if by_ticket:
        listing = SessionQuery(SessionIndex.BY_TICKET, ticket_key(helpdesk, ticket_id), since)
    else:
        listing = SessionQuery(SessionIndex.BY_STATUS, status, since)
    return listing, limit, cursor


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise BadInput(
            [FieldError(("header", "Idempotency-Key"), "must be 1 to 255 printable characters")]
        )
    return key
