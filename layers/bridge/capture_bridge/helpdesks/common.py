"""Rules several helpdesk adapters share: header proof, shared secrets, the rule body, note answers.

Not an integration: adapters import from here, never from each other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from capture_bridge.errors import ConfigurationError, InvalidRequest, Unauthenticated
from capture_bridge.helpdesks import (
    Headers,
    LookupOutcome,
    NoteOutcome,
    NoteResult,
    RequesterLookup,
)
from capture_bridge.http import HttpClient, HttpResponse, TransportError
from capture_bridge.models import TicketRequest, field_text, storable_text

MAX_FIELD_LENGTH = 320
# Plain http is allowed to these hosts only: the simulators and local runs serve it there.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The fields of the documented rule body that identify the ticket; every other top-level field is
# passed on to the capture providers (`action`, `description`, `lambdatest_session_id`, ...).
RULE_BODY_FIELDS = frozenset({"ticket_id", "requester_external_id", "requester_email", "tags"})


def single_header(headers: Headers, name: str) -> str:
    """A header matched case-insensitively; spellings that disagree prove nothing and refuse."""
    values = headers.all(name)
    if len({value.strip() for value in values}) > 1:
        raise Unauthenticated(f"conflicting {name} headers")
    return values[0] if values else ""


def _same(expected: str, given: str) -> bool:
    # Compared as bytes in constant time; non-ASCII input is simply a mismatch.
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class HmacHeader:
    """A signature header carrying an HMAC: `<prefix><hex or base64 of HMAC(secret, message)>`.

    What each vendor signs (the body; or method, URL, body and time) is the caller's `message`.
    Jira's admin webhooks: `HmacHeader("x-hub-signature", prefix="sha256=")`.
    """

    header: str
    algorithm: Literal["sha1", "sha256"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""

    def sign(self, secret: str, message: bytes) -> str:
        """The header value a sender holding `secret` puts on `message`."""
        digest = hmac.new(secret.encode(), message, getattr(hashlib, self.algorithm)).digest()
        encoded = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        return self.prefix + encoded

    def verify(self, presented: str, secret: str, message: bytes) -> str:
        """Accept `presented` if it signs `message` with `secret`, and return the expected value.

        Compared in constant time; hex in either case. Raises `Unauthenticated` otherwise.
        """
        given = presented.strip()
        if not given.isascii() or not given.startswith(self.prefix):
            raise Unauthenticated(f"webhook signature must be {self.prefix}<{self.encoding}>")
        expected = self.sign(secret, message)
        if self.encoding == "hex":
            given = self.prefix + given[len(self.prefix) :].lower()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise Unauthenticated("webhook signature does not match")
        return expected


def presented_secret(headers: Headers) -> str:
    """The secret a sender put in `Authorization`: a Bearer token, or a Basic password."""
    authorization = single_header(headers, "authorization").strip()
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise Unauthenticated("unreadable Basic credentials") from None
        # Any user name: the rule's form asks for one, the password carries the secret.
        return decoded.partition(":")[2]
    return ""


def check_shared_secret(headers: Headers, secret: str) -> None:
    """Accept a call whose `Authorization` carries `secret`; raise `Unauthenticated` otherwise."""
    given = presented_secret(headers)
    if not given:
        raise Unauthenticated("missing Authorization header with the webhook secret")
    if not _same(secret, given):
        raise Unauthenticated("webhook secret does not match")


def text_field(payload: Mapping[str, Any], name: str) -> str:
    """A string (or number) field, stripped and bounded; a 400 naming it otherwise."""
    return field_text(payload, name, MAX_FIELD_LENGTH)


def tags_field(payload: Mapping[str, Any], name: str = "tags") -> tuple[str, ...]:
    """Tags as a space- or comma-separated string (how rules render them) or a list of strings."""
    value = payload.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(storable_text(name, value).replace(",", " ").split())
    if isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        return tuple(tag for tag in (storable_text(name, item).strip() for item in value) if tag)
    raise InvalidRequest(
        f"{name} must be a string of space- or comma-separated tags or a list of strings"
    )


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; a 400 saying what is wrong otherwise."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: absurdly deep nesting is no webhook body either.
        raise InvalidRequest("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("body must be a JSON object")
    return payload


def rule_body(
    body: bytes,
    *,
    helpdesk: str,
    ticket_id: re.Pattern[str],
    ticket_hint: str,
    label: str,
) -> TicketRequest:
    """The documented body a rule or trigger posts, read; every problem is a 400 naming the field.

    `ticket_id` is the pattern of the helpdesk's ticket ids (`ticket_hint` says it in words) and
    `label` names the ticket in notes, with `{ticket_id}` in it.
    """
    payload = json_object(body)
    return ticket_request(
        payload, helpdesk=helpdesk, ticket_id=ticket_id, hint=ticket_hint, label=label
    )


def ticket_request(
    payload: Mapping[str, Any],
    *,
    helpdesk: str,
    ticket_id: re.Pattern[str],
    hint: str,
    label: str,
) -> TicketRequest:
    """A rule body already read as JSON (see `rule_body`)."""
    ticket = text_field(payload, "ticket_id")
    if not ticket:
        raise InvalidRequest("ticket_id is required")
    if not ticket_id.match(ticket):
        raise InvalidRequest(f"ticket_id must be {hint}")
    # Both read, so that a bad one is refused even when the other would do.
    external_id = text_field(payload, "requester_external_id")
    email = text_field(payload, "requester_email")
    return TicketRequest(
        helpdesk=helpdesk,
        ticket_id=ticket,
        requester=external_id or email,
        label=label.format(ticket_id=ticket),
        fields={key: value for key, value in payload.items() if key not in RULE_BODY_FIELDS},
        tags=tags_field(payload),
        requester_fields="requester_external_id or requester_email",
    )


def retry_after(raw: str | None) -> int | None:
    """A `Retry-After` header in whole seconds; None for a date or anything unreadable."""
    text = (raw or "").strip()
    return int(text) if text.isdigit() and len(text) <= 9 else None


# The rate-limit headers helpdesks send: the calls left, and what says when they are counted
# afresh (None: nothing does). Zendesk's general and ticketing limits; the IETF draft's names;
# Intercom, Jira, Front, Freshdesk; Help Scout's per-minute ones; HubSpot's 10-second ones.
RATE_LIMIT_HEADERS: tuple[tuple[str, str | None], ...] = (
    ("x-rate-limit-remaining", None),
    ("ratelimit-remaining", "ratelimit-reset"),
    ("x-ratelimit-remaining", "x-ratelimit-reset"),
    ("x-ratelimit-remaining-minute", "x-ratelimit-retry-after"),
    ("x-hubspot-ratelimit-remaining", None),
)
# A reset further off than a day is no reset we can read.
_LONGEST_RESET_SECONDS = 86_400.0


def _reset_seconds(raw: str | None, now: float) -> float | None:
    """Seconds until a reset header's moment: delta seconds, epoch (s or ms), or ISO 8601."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        number = moment.timestamp() - now
    else:
        if number >= 1e12:  # epoch milliseconds
            number = number / 1000 - now
        elif number >= 1e9:  # epoch seconds
            number -= now
    return number if 0 <= number <= _LONGEST_RESET_SECONDS else None


def rate_limit_left(
    headers: Mapping[str, str], now: float | None = None
) -> tuple[int | None, float | None]:
    """The fewest calls any rate-limit header says are left, and when that limit resets.

    (None, None) when no header says; the reset is None when its header is absent or unreadable.
    """
    found = Headers(headers)
    current = time.time() if now is None else now
    best: tuple[int | None, float | None] = (None, None)
    for remaining_name, reset_name in RATE_LIMIT_HEADERS:
        raw = found.get(remaining_name, "").strip()
        if not raw.isdigit() or len(raw) > 9:
            continue
        remaining = int(raw)
        if best[0] is None or remaining < best[0]:
            reset = _reset_seconds(found.get(reset_name), current) if reset_name else None
            best = (remaining, reset)
    return best


def note_answer(
    vendor: str,
    status: int,
    retry_after_header: str | None,
    headers: Mapping[str, str] | None = None,
) -> NoteResult:
    """What a helpdesk's answer to a note means: 2xx posted, 429 and 5xx retried, else rejected.

    With the answer's `headers`, what its rate-limit headers say comes along (`rate_limit_left`).
    """
    remaining, reset = rate_limit_left(headers or {})
    if 200 <= status < 300:
        return NoteResult(
            NoteOutcome.POSTED, status=status, rate_remaining=remaining, rate_reset_seconds=reset
        )
    message = f"{vendor} answered HTTP {status}"
    if status == 429 or status >= 500:
        return NoteResult(
            NoteOutcome.RETRYABLE,
            message,
            retry_after(retry_after_header),
            status,
            rate_remaining=remaining,
            rate_reset_seconds=reset,
        )
    return NoteResult(
        NoteOutcome.REJECTED,
        message,
        status=status,
        rate_remaining=remaining,
        rate_reset_seconds=reset,
    )


def send_note(
    http: HttpClient,
    vendor: str,
    method: str,
    url: str,
    *,
    timeout: tuple[float, float],
    headers: Mapping[str, str],
    json_body: Any = None,
    body: bytes | None = None,
    auth: tuple[str, str] | None = None,
) -> NoteResult:
    """Send a note and say what came of it (`note_answer`); no answer at all is retryable."""
    try:
        response = http.request(
            method, url, headers=headers, json_body=json_body, body=body, auth=auth, timeout=timeout
        )
    except TransportError as exc:
        return NoteResult(NoteOutcome.RETRYABLE, str(exc))
    return note_answer(
        vendor, response.status, response.header("Retry-After"), headers=response.headers
    )


def read_json(
    http: HttpClient, url: str, *, auth: tuple[str, str], timeout: tuple[float, float]
) -> Any:
    """`GET url` as JSON: the parsed answer of a 200, else None (no answer, an error, not JSON)."""
    try:
        response = http.request(
            "GET", url, headers={"Accept": "application/json"}, auth=auth, timeout=timeout
        )
    except TransportError:
        return None
    return response.json() if response.status == 200 else None


def secure_url(key: str, raw: str, *, base: bool = True) -> str:
    """Setting `key` as a URL credentials may travel to: https, or plain http on loopback only.

    Empty when unset. A `base` URL (an API's) loses its trailing slash and may have no query or
    fragment. Anything else raises `ConfigurationError` naming the key.
    """
    url = raw.strip()
    if base:
        url = url.rstrip("/")
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise ConfigurationError(f"{key} is not a URL") from None
    loopback = parts.scheme == "http" and host in LOOPBACK_HOSTS
    if not host or not (parts.scheme == "https" or loopback):
        raise ConfigurationError(
            f"{key} must be an https:// URL (http:// only for 127.0.0.1 or localhost)"
        )
    if any(char.isspace() or not char.isprintable() for char in url):
        raise ConfigurationError(f"{key} must not contain spaces or control characters")
    if base and (parts.query or parts.fragment):
        raise ConfigurationError(f"{key} must be a plain base URL, without query or fragment")
    return url


class RequesterInBody:
    """For helpdesks whose webhook body names the requester: there is never one to look up."""

    name: str

    def find_requester(self, reference: str) -> RequesterLookup:
        """Never asked (their `parse` gives no `requester_ref`): not found, saying why."""
        return RequesterLookup(
            LookupOutcome.NOT_FOUND, message=f"{self.name} names the requester in its body"
        )


def requester_of(external_id: object, email: object) -> str:
    """The requester as capture sources know them: the external id when set, else the email."""
    for value in (external_id, email):
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:MAX_FIELD_LENGTH]
    return ""


def lookup_failure(
    vendor: str, status: int, retry_after_seconds: int | None = None
) -> RequesterLookup:
    """What a helpdesk's answer other than 200 to a requester look-up means.

    404 (and 410): nobody to find; 429 and 5xx: try again later; any other: refused.
    """
    message = f"{vendor} answered HTTP {status}"
    if status in (404, 410):
        return RequesterLookup(LookupOutcome.NOT_FOUND, message=message)
    if status == 429 or status >= 500:
        return RequesterLookup(
            LookupOutcome.RETRYABLE, message=message, retry_after_seconds=retry_after_seconds
        )
    return RequesterLookup(LookupOutcome.REJECTED, message=message)


def lookup_json(
    http: HttpClient,
    vendor: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: tuple[float, float],
    auth: tuple[str, str] | None = None,
    wait: Callable[[HttpResponse], int | None] | None = None,
) -> Any | RequesterLookup:
    """`GET url` for a requester look-up: the JSON of a 200, else what the failure means.

    A look-up only reads, so no answer at all is simply retryable; a 200 that is not JSON is
    an answer we cannot read, taken as a passing fault (retryable). `wait` reads how long the
    helpdesk asks us to wait from a failed answer (its own headers); `Retry-After` by default.
    """
    try:
        response: HttpResponse = http.request(
            "GET", url, headers=headers, auth=auth, timeout=timeout
        )
    except TransportError as exc:
        return RequesterLookup(LookupOutcome.RETRYABLE, message=str(exc))
    if response.status != 200:
        waited = wait(response) if wait else retry_after(response.header("Retry-After"))
        return lookup_failure(vendor, response.status, waited)
    payload = response.json()
    if payload is None:
        return RequesterLookup(LookupOutcome.RETRYABLE, message=f"{vendor} answered with no JSON")
    return payload
