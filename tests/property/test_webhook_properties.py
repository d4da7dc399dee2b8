"""Properties of the webhook's door: Zendesk's signature check, its parser, and the HTTP path.

Whatever arrives, the bridge answers 2xx or 4xx, never 5xx; every 4xx is a JSON object with a
string "error" and leaves DynamoDB and every simulator untouched; only a correctly signed body
reaches the parser, and whatever the parser lets through can be stored.

Function-scoped fixtures live across Hypothesis examples, so the table would fill up with the
accepted examples: each end-to-end example starts by emptying it and noting how many requests each
simulator has had, and a refusal must leave both as they were. Properties that must reach both
sides of a check run their examples inside the test, then assert the share of the run each side
got (shares, so that `make fuzz` holds them too), or that each kind of input came up.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import boto3
import pytest
from hypothesis import Phase, assume, event, example, given, settings
from hypothesis import strategies as st

from capture_bridge.capture import TEXT_FIELD, requests_for
from capture_bridge.capture.bugpilot import ACTION_TAGS, ACTIONS
from capture_bridge.capture.lambdatest import NAMED as LAMBDATEST_SESSIONS
from capture_bridge.capture.notte import NAMED as NOTTE_SESSIONS
from capture_bridge.errors import InvalidRequest, Unauthenticated
from capture_bridge.helpdesks.zendesk import (
    DELIVERY_MEMORY,
    MAX_SKEW,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ZendeskAdapter,
    ZendeskSettings,
    sign_webhook,
)
from capture_bridge.http import HttpClient
from capture_bridge.models import CaptureRequest
from capture_bridge.runtime import Runtime
from capture_bridge.settings import settings_from
from capture_bridge.webhook import MAX_BODY_BYTES, WebhookAnswer, receive
from local_runner.simulators import (
    BugpilotSimulator,
    LambdaTestSimulator,
    NotteSimulator,
    RecordedRequest,
    ZendeskSimulator,
)
from tests.conftest import (
    START,
    WEBHOOK_SECRET,
    Clock,
    Webhook,
    signed_headers,
    trigger_body,
    webhook_request,
)

# -- budgets -------------------------------------------------------------------------------------

# Pure properties run the profile's examples (200 in `make test`, 5,000 in `make fuzz`). End to
# end ones go through moto and the HTTP simulators: half of that, and a quarter where every call
# is accepted (each one stores sessions and calls Bugpilot).
PROFILE_EXAMPLES = settings().max_examples
END_TO_END_EXAMPLES = max(PROFILE_EXAMPLES // 2, 1)
ACCEPTED_END_TO_END_EXAMPLES = max(PROFILE_EXAMPLES // 4, 1)
# The share of a run each side of a check must get, or its generator proves nothing there:
# many (the common outcome), some (a side that matters but is rarer), a few (about 1 in 100).
MANY = 0.1
SOME = 0.05
FEW = 0.01
# Each kind of forgery or duplicate header must come up at least this many times.
MIN_PER_KIND = 3
# DynamoDB's BatchWriteItem takes at most 25 requests.
BATCH_SIZE = 25

# -- answers -------------------------------------------------------------------------------------

ACCEPTED = 202
BAD_REQUEST = 400
UNAUTHENTICATED = 401
NOT_FOUND = 404
TOO_LARGE = 413

# -- the request ---------------------------------------------------------------------------------

SKEW_SECONDS = int(MAX_SKEW.total_seconds())
CENTURY_SECONDS = 100 * 365 * 24 * 3600
# Epoch numbers this many digits long or longer are read as milliseconds.
MILLIS_DIGITS = 12
# Real UTC offsets range from -12:00 to +14:00; Python accepts anything under a day.
MAX_ZONE_MINUTES = 14 * 60
FINGERPRINT = re.compile(r"[0-9a-f]{64}")
TICKET_NUMBER = re.compile(r"[1-9][0-9]{0,19}")
MAX_TICKET_NUMBER = 10**20 - 1
GENUINE_HELPDESK = "zendesk"

LAMBDATEST_FIELD = LAMBDATEST_SESSIONS.field
NOTTE_FIELD = NOTTE_SESSIONS.field
# The fields of a trigger body the bridge reads as text; every other one is passed on unread.
TEXT_FIELDS = (
    "ticket_id",
    "requester_external_id",
    "requester_email",
    "action",
    "description",
    LAMBDATEST_FIELD,
    NOTTE_FIELD,
    TEXT_FIELD,
)
KNOWN_FIELDS = (*TEXT_FIELDS, "tags")
TAG_WORDS = (*ACTION_TAGS, "vip", "billing", "")

# -- generator sizes -----------------------------------------------------------------------------

SHORT_TEXT = 20
MAX_REQUESTER_LENGTH = 40
MAX_JSON_LEAVES = 10
MAX_RANDOM_BYTES = 512
MAX_FLIPS = 4
# Past about a thousand levels Python's JSON reader gives up; past ~32,000 the body is too large.
MAX_DEPTH = 40_000
SIZE_SLACK = 256
# Past 4,300 digits Python refuses to read a JSON number at all.
MAX_NUMBER_DIGITS = 5_000

# -- text ----------------------------------------------------------------------------------------

LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")
AWKWARD_CHARACTERS = (
    "\x00",
    "\x01",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffe",
    "\U0010ffff",
    "é",
    "中",
    "😀",
    "\\",
    '"',
    "'",
    " ",
    "\t",
    "\n",
    "\r",
)
# Any character DynamoDB can store, with the awkward ones more often than chance gives them.
clean_characters = st.characters(exclude_categories=["Cs"]) | st.sampled_from(AWKWARD_CHARACTERS)
# Any character at all, lone surrogates included.
any_characters = st.characters(exclude_categories=()) | st.sampled_from(
    AWKWARD_CHARACTERS + LONE_SURROGATES
)
clean_text = st.text(clean_characters, max_size=SHORT_TEXT)
any_text = st.text(any_characters, max_size=SHORT_TEXT)
# Exactly one lone surrogate: two adjacent ones could pair up into a valid character.
surrogate_text = st.tuples(clean_text, st.sampled_from(LONE_SURROGATES), clean_text).map("".join)

# -- JSON ----------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=MAX_JSON_LEAVES,
)
non_strings = json_values.filter(lambda value: not isinstance(value, str))
# Anything a text field (a string, or a number read as one) must refuse.
not_text = (
    st.booleans()
    | st.floats()
    | st.lists(json_values, max_size=3)
    | st.dictionaries(clean_text, json_values, max_size=3)
)
# Anything `tags` (one space-separated string, or a list of strings) must refuse.
not_tags = (
    st.booleans()
    | st.integers()
    | st.floats()
    | st.dictionaries(clean_text, json_values, max_size=3)
    | st.tuples(
        st.lists(clean_text, max_size=2), non_strings, st.lists(clean_text, max_size=2)
    ).map(lambda parts: [*parts[0], parts[1], *parts[2]])
)
# Right type, wrong content: the values a careless trigger template produces.
WRONG_VALUES = (
    "",
    " ",
    "0",
    "-1",
    "abc",
    "1" * 21,
    "x" * 321,
    "format-disk",
    "g" * 65,
    "not-a-uuid",
    "bugpilot_session",
    "https://console.notte.cc/sessions/not-a-uuid",
)
hostile_values = (
    st.none() | json_values | not_text | any_text | surrogate_text | st.sampled_from(WRONG_VALUES)
)

ENCODINGS = ("escaped", "raw", "utf-16")
# The two ways a lone surrogate reaches the parser unpaired: a JSON escape, or raw bytes.
SURROGATE_ENCODINGS = ("escaped", "raw")


def encoded(payload: Any, encoding: str) -> bytes:
    """`payload` as JSON; lone surrogates as "\\ud800" escapes, raw bytes (ed a0 80), or UTF-16."""
    if encoding == "escaped":
        return json.dumps(payload).encode()
    text = json.dumps(payload, ensure_ascii=False)
    return text.encode("utf-16" if encoding == "utf-16" else "utf-8", "surrogatepass")


# -- trigger bodies ------------------------------------------------------------------------------

ticket_numbers = st.integers(1, MAX_TICKET_NUMBER)
requesters = st.text(clean_characters, min_size=1, max_size=MAX_REQUESTER_LENGTH).filter(
    lambda text: bool(text.strip())
)
lambdatest_ids = st.from_regex(r"[A-Za-z0-9-]{1,64}", fullmatch=True)
notte_ids = st.uuids().map(str) | st.uuids().map(lambda uuid: str(uuid).upper())
session_links = st.one_of(
    lambdatest_ids.map(lambda lt: f"https://automation.lambdatest.com/logs/?sessionID={lt}"),
    lambdatest_ids.map(lambda lt: f"https://api.lambdatest.com/automation/api/v1/sessions/{lt}"),
    st.uuids().map(lambda notte: f"https://console.notte.cc/sessions/{notte}"),
)
# The optional fields of a valid body, each with the values the bridge must accept.
OPTIONAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "action": st.sampled_from(ACTIONS),
    "description": clean_text,
    LAMBDATEST_FIELD: lambdatest_ids,
    NOTTE_FIELD: notte_ids,
    TEXT_FIELD: st.lists(clean_text | session_links, max_size=4).map(" ".join),
}


@st.composite
def trigger_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A body the bridge must accept: a ticket, its requester, and any captures it names."""
    number = draw(ticket_numbers)
    payload: dict[str, Any] = {
        "ticket_id": draw(st.sampled_from([str(number), number, f" {number} "])),
        draw(st.sampled_from(["requester_external_id", "requester_email"])): draw(requesters),
    }
    tags = draw(st.lists(st.sampled_from(TAG_WORDS), max_size=4))
    payload["tags"] = draw(st.sampled_from([" ".join(tags), tags]))
    for name, values in OPTIONAL_FIELDS.items():
        if draw(st.booleans()):
            payload[name] = draw(values)
    return payload


@st.composite
def mutated_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one to three known fields replaced by anything at all (None: removed)."""
    payload = draw(trigger_payloads())
    for name in draw(st.lists(st.sampled_from(KNOWN_FIELDS), min_size=1, max_size=3, unique=True)):
        value = draw(hostile_values)
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


def reading(payload: dict[str, Any], field: str) -> dict[str, Any]:
    """`payload` changed, if needed, so that the bridge reads `field`.

    The email is only read without an external id, the description only for a Bugpilot capture.
    """
    changed = dict(payload)
    if field == "requester_email":
        changed.pop("requester_external_id", None)
    if field == "description":
        changed.setdefault("action", ACTIONS[0])
    return changed


@st.composite
def surrogate_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body but for a lone surrogate in one field the bridge reads (some it stores)."""
    field = draw(st.sampled_from(KNOWN_FIELDS))
    text = draw(surrogate_text)
    value = [text] if field == "tags" and draw(st.booleans()) else text
    return reading(draw(trigger_payloads()), field) | {field: value}


@st.composite
def flipped_bytes(draw: st.DrawFn) -> bytes:
    """A valid body with a few bytes overwritten."""
    raw = bytearray(encoded(draw(trigger_payloads()), "escaped"))
    for _ in range(draw(st.integers(1, MAX_FLIPS))):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


_VALID_PREFIX = b'{"ticket_id": "1001", "requester_external_id": "user-42", '


def padded_to(size: int) -> bytes:
    """A valid body of exactly `size` bytes: an unread field takes up the slack."""
    prefix, suffix = _VALID_PREFIX + b'"padding": "', b'"}'
    return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix


def nested(depth: int) -> bytes:
    """A valid body carrying an unread value `depth` lists deep."""
    return _VALID_PREFIX + b'"nested": ' + b"[" * depth + b"]" * depth + b"}"


def long_number(digits: int) -> bytes:
    """A body whose ticket number is `digits` nines, as a JSON number."""
    return b'{"ticket_id": ' + b"9" * digits + b', "requester_external_id": "user-42"}'


# Every kind of body the webhook may be sent, from genuine triggers to noise.
hostile_bodies = st.one_of(
    st.builds(encoded, trigger_payloads(), st.sampled_from(ENCODINGS)),
    st.builds(encoded, mutated_payloads(), st.sampled_from(ENCODINGS)),
    st.builds(encoded, surrogate_payloads(), st.sampled_from(SURROGATE_ENCODINGS)),
    st.builds(encoded, json_values, st.sampled_from(ENCODINGS)),
    st.binary(max_size=MAX_RANDOM_BYTES),
    flipped_bytes(),
    st.integers(1, MAX_DEPTH).map(nested),
    st.integers(MAX_BODY_BYTES - SIZE_SLACK, MAX_BODY_BYTES + SIZE_SLACK).map(padded_to),
    st.integers(1, MAX_NUMBER_DIGITS).map(long_number),
)
valid_bodies = st.builds(encoded, trigger_payloads(), st.sampled_from(ENCODINGS))
# The README's body for any ticket: one Bugpilot capture, the cheapest call that is accepted.
readme_bodies = ticket_numbers.map(lambda number: trigger_body(ticket_id=str(number)))

# -- timestamps and headers ----------------------------------------------------------------------

TIMESTAMP_FORMS = ("iso", "iso-offset", "iso-fraction", "padded", "epoch-seconds", "epoch-millis")
# Timestamps hours to millennia away from now (2026-11-25T12:00Z), or no time at all.
EXTREME_TIMESTAMPS = (
    "0",
    "1",
    "-1",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "1970-01-01T00:00:00Z",
    "2026-11-25",
    "12:00:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",
    "99999999999",
    "999999999999999999999999",
    "9" * MAX_NUMBER_DIGITS,
    "1e10",
    "NaN",
    "²",
)


def written(moment: datetime, form: str, zone_minutes: int = 0) -> str:
    """`moment` in one of the forms the bridge reads (an epoch number only where it fits)."""
    seconds = int(moment.timestamp())
    if form == "epoch-seconds" and seconds >= 0 and len(str(seconds)) < MILLIS_DIGITS:
        return str(seconds)
    if form == "epoch-millis" and seconds >= 0 and len(str(seconds * 1000)) >= MILLIS_DIGITS:
        return str(seconds * 1000)
    if form == "iso-offset":
        return moment.astimezone(timezone(timedelta(minutes=zone_minutes))).isoformat()
    if form == "iso-fraction":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    plain = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f" {plain}\t" if form == "padded" else plain


forms = st.sampled_from(TIMESTAMP_FORMS)
zones = st.integers(-MAX_ZONE_MINUTES, MAX_ZONE_MINUTES)
# Offsets from now, in seconds: within the skew, near its edges, and anywhere in a century.
fresh_offsets = st.integers(-SKEW_SECONDS, SKEW_SECONDS)
stale_offsets = st.builds(
    lambda seconds, past: -seconds if past else seconds,
    st.integers(SKEW_SECONDS + 1, CENTURY_SECONDS),
    st.booleans(),
)
any_offsets = st.integers(-2 * SKEW_SECONDS, 2 * SKEW_SECONDS) | stale_offsets


def timestamps(offsets: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """Timestamps of moments `offsets` seconds from now, in any form the bridge reads."""
    return st.builds(
        lambda offset, form, zone: written(START + timedelta(seconds=offset), form, zone),
        offsets,
        forms,
        zones,
    )


def readable_time(text: str) -> bool:
    """Whether `text` looks like a time at all (an epoch number or ISO 8601)."""
    stripped = text.strip()
    if stripped.isdigit():
        return True
    try:
        datetime.fromisoformat(stripped)
    except ValueError:
        return False
    return True


def signed(body: bytes, timestamp: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """Zendesk's two headers for `body` sent with `timestamp`, which may be any string."""
    return {SIGNATURE_HEADER: sign_webhook(secret, timestamp, body), TIMESTAMP_HEADER: timestamp}


def any_case(name: str) -> st.SearchStrategy[str]:
    """`name` with each letter in either case (bit i of a mask: character i in upper case)."""
    return st.integers(0, 2 ** len(name) - 1).map(
        lambda mask: "".join(
            char.upper() if mask >> at & 1 else char for at, char in enumerate(name)
        )
    )


def values_of(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value given for header `name`, whatever the case of its spelling."""
    return [value for key, value in headers.items() if key.lower() == name]


MUTATIONS = (
    "replace",
    "delete",
    "insert",
    "truncate",
    "swapcase",
    "hex",
    "urlsafe",
    "unpadded",
    "repeated",
    "comma-joined",
)


@st.composite
def mutations(draw: st.DrawFn, genuine: str) -> str:
    """`genuine` changed in a way no reading of it may take for the same signature."""
    kind = draw(st.sampled_from(MUTATIONS))
    at = draw(st.integers(0, len(genuine) - 1))
    char = draw(clean_characters)
    digest = base64.b64decode(genuine)
    forged = {
        "replace": genuine[:at] + char + genuine[at + 1 :],
        "delete": genuine[:at] + genuine[at + 1 :],
        "insert": genuine[:at] + char + genuine[at:],
        "truncate": genuine[:at],
        "swapcase": genuine.swapcase(),
        "hex": digest.hex(),
        "urlsafe": base64.urlsafe_b64encode(digest).decode(),
        "unpadded": genuine.rstrip("="),
        "repeated": genuine + genuine,
        # How API Gateway passes a header sent twice.
        "comma-joined": f"{genuine}, {genuine}",
    }[kind]
    assume(forged.strip() != genuine)
    return forged


# A second spelling of the signature header: none, the genuine value, padded, or another value.
DUPLICATES = ("none", "same", "padded", "forged")
HEADER_EDITS = ("drop", "replace", "forge", "recase", "duplicate", "extra")
header_values = clean_text | st.sampled_from(EXTREME_TIMESTAMPS) | timestamps(any_offsets)


@st.composite
def header_maps(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    """Zendesk's headers for `body`, sent near now, then edited: dropped, replaced by anything,
    the signature forged, spelled in another case, repeated in another case, or joined by others."""
    headers = signed(body, draw(timestamps(fresh_offsets | any_offsets)))
    genuine = headers[SIGNATURE_HEADER]
    for edit in draw(st.lists(st.sampled_from(HEADER_EDITS), max_size=3)):
        names = sorted(headers)
        if edit == "forge":
            headers[SIGNATURE_HEADER] = draw(mutations(genuine))
        elif edit == "replace":
            headers[draw(st.sampled_from([SIGNATURE_HEADER, TIMESTAMP_HEADER]))] = draw(
                header_values
            )
        elif edit == "extra":
            headers[draw(clean_text)] = draw(header_values)
        elif names and edit == "drop":
            del headers[draw(st.sampled_from(names))]
        elif names and edit == "recase":
            name = draw(st.sampled_from(names))
            headers[draw(any_case(name))] = headers.pop(name)
        elif names:
            name = draw(st.sampled_from(names))
            headers[name.swapcase()] = draw(header_values | st.just(headers[name]))
    return headers


@st.composite
def forged_maps(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    """Zendesk's headers for `body`, fresh, with the signature forged: refused for it alone."""
    headers = signed(body, draw(timestamps(fresh_offsets)))
    headers[SIGNATURE_HEADER] = draw(mutations(headers[SIGNATURE_HEADER]))
    return headers


FORGERIES = (
    "missing",
    "empty",
    "garbled signature",
    "wrong secret",
    "mutated signature",
    "other body",
    "other timestamp",
    "stale or future",
    "unreadable timestamp",
    "extreme timestamp",
    "forged duplicates",
)


@st.composite
def forged_headers(draw: st.DrawFn, body: bytes, kind: str) -> dict[str, str]:
    """Headers of the `kind` of forgery: a call that is not Zendesk's, or not fresh."""
    fresh = draw(timestamps(fresh_offsets))
    genuine = signed(body, fresh)
    signature = genuine[SIGNATURE_HEADER]
    if kind == "missing":
        headers = draw(
            st.sampled_from([{}, {TIMESTAMP_HEADER: fresh}, {SIGNATURE_HEADER: signature}])
        )
    elif kind == "empty":
        headers = genuine | {draw(st.sampled_from(sorted(genuine))): ""}
    elif kind == "garbled signature":
        headers = genuine | {SIGNATURE_HEADER: draw(clean_text)}
    elif kind == "wrong secret":
        secret = draw(clean_text.filter(lambda text: text != WEBHOOK_SECRET))
        headers = signed(body, fresh, secret)
    elif kind == "mutated signature":
        headers = genuine | {SIGNATURE_HEADER: draw(mutations(signature))}
    elif kind == "other body":
        other = draw(st.binary(max_size=MAX_RANDOM_BYTES) | valid_bodies)
        assume(other != body)
        headers = signed(other, fresh)
    elif kind == "other timestamp":
        other_time = draw(timestamps(fresh_offsets))
        assume(other_time != fresh)
        headers = genuine | {TIMESTAMP_HEADER: other_time}
    elif kind == "stale or future":
        headers = signed(body, draw(timestamps(stale_offsets)))
    elif kind == "unreadable timestamp":
        garbled = draw(clean_text)
        assume(not readable_time(garbled))
        headers = signed(body, garbled)
    elif kind == "extreme timestamp":
        headers = signed(body, draw(st.sampled_from(EXTREME_TIMESTAMPS)))
    else:
        # The signature header twice, in two spellings, neither of them genuine.
        name = draw(any_case(SIGNATURE_HEADER))
        first, second = draw(mutations(signature)), draw(clean_text)
        return {TIMESTAMP_HEADER: fresh, name: first, name.swapcase(): second}
    return {draw(any_case(name)): value for name, value in headers.items()}


# -- reading bodies without the store ------------------------------------------------------------

READ_SETTINGS = settings_from(
    {"TABLE_NAME": "sessions-test", "ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET}
)
HTTP = HttpClient()
ADAPTER = ZendeskAdapter(ZendeskSettings.from_settings(READ_SETTINGS), HTTP)


def verify(headers: Mapping[str, str], body: bytes, now: datetime) -> str:
    """`ADAPTER.verify` on a POST to /webhooks/zendesk: the delivery's fingerprint."""
    delivery = ADAPTER.verify(webhook_request(dict(headers), body), now)
    assert delivery.remember_for == DELIVERY_MEMORY
    return delivery.fingerprint


def read(body: bytes) -> list[CaptureRequest]:
    """What the webhook reads from a verified body, without storing it: adapter, then providers."""
    return requests_for(ADAPTER.parse(body), READ_SETTINGS, HTTP)


def storable(text: str) -> bool:
    """Whether DynamoDB can keep `text`: it must be valid UTF-8, so hold no lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parser_verdict(body: bytes) -> tuple[int, str | None]:
    """The answer a correctly signed `body` must get, from its size and the parser alone."""
    if len(body) > MAX_BODY_BYTES:
        return TOO_LARGE, None
    try:
        read(body)
    except InvalidRequest as exc:
        return BAD_REQUEST, str(exc)
    return ACCEPTED, None


# -- outcomes ------------------------------------------------------------------------------------


def record(seen: Counter[str], outcome: str) -> None:
    """Count an example's outcome (properties run inside a test report no statistics)."""
    seen[outcome] += 1


def require_shares(seen: Counter[str], minimum: Mapping[str, float]) -> None:
    """Each outcome got at least its share of the run: the generator reached that side."""
    total = sum(seen.values())
    for outcome, share in minimum.items():
        assert seen[outcome] >= share * total, f"{outcome!r}: {seen[outcome]} of {dict(seen)}"


def require_each(seen: Counter[str], kinds: tuple[str, ...]) -> None:
    """Each kind of input came up often enough to count."""
    for kind in kinds:
        assert seen[kind] >= MIN_PER_KIND, f"{kind!r}: {seen[kind]} of {dict(seen)}"


class RequestLog(Protocol):
    """A simulator, as far as these tests look at it: what it was sent."""

    @property
    def requests(self) -> list[RecordedRequest]: ...


# The stored items (as sorted canonical JSON) and how many requests each simulator has had.
Footprint = tuple[list[str], tuple[int, ...]]


@dataclass(frozen=True)
class Outside:
    """Whatever a webhook call can change: the sessions table and each simulator's request log."""

    client: Any
    table: str
    simulators: tuple[RequestLog, ...]

    def items(self, **scan: Any) -> list[dict[str, Any]]:
        """Every item in the table, as DynamoDB returns it."""
        pages = self.client.get_paginator("scan").paginate(TableName=self.table, **scan)
        return [item for page in pages for item in page["Items"]]

    def footprint(self) -> Footprint:
        """The stored items and the simulators' request counts, to compare before and after."""
        items = sorted(
            json.dumps(item, sort_keys=True, ensure_ascii=False) for item in self.items()
        )
        return items, tuple(len(simulator.requests()) for simulator in self.simulators)

    def emptied(self) -> Footprint:
        """Empty the table, left over from earlier examples; the footprint of the empty table."""
        keys = self.items(ProjectionExpression="pk")
        for start in range(0, len(keys), BATCH_SIZE):
            batch = keys[start : start + BATCH_SIZE]
            self.client.batch_write_item(
                RequestItems={self.table: [{"DeleteRequest": {"Key": key}} for key in batch]}
            )
        return [], tuple(len(simulator.requests()) for simulator in self.simulators)


@pytest.fixture
def outside(
    table: str,
    bugpilot: BugpilotSimulator,
    zendesk: ZendeskSimulator,
    lambdatest: LambdaTestSimulator,
    notte: NotteSimulator,
) -> Outside:
    return Outside(boto3.client("dynamodb"), table, (bugpilot, zendesk, lambdatest, notte))


def assert_json_object(answer: WebhookAnswer) -> None:
    """The handler can send the answer: a JSON object, with a string "error" on every 4xx."""
    assert isinstance(answer.body, dict)
    json.dumps(answer.body)
    if answer.status >= BAD_REQUEST:
        assert isinstance(answer.body.get("error"), str)
        assert answer.body["error"]


def assert_refused_without_trace(
    answer: WebhookAnswer, before: Footprint, outside: Outside
) -> None:
    """A 4xx, a JSON error, and nothing stored or sent by this call."""
    assert BAD_REQUEST <= answer.status < 500, answer
    assert_json_object(answer)
    assert outside.footprint() == before


def assert_stored(answer: WebhookAnswer, outside: Outside) -> None:
    """A 202 whose every session is in the table, which holds only text real DynamoDB can keep.

    (moto keeps the lone surrogates DynamoDB refuses; there they would make a 503.)
    """
    assert answer.status == ACCEPTED, answer
    assert_json_object(answer)
    assert "error" not in answer.body
    items = outside.items()
    # Sessions are stored as `session#<id>` (see session_store).
    stored = {item["pk"]["S"] for item in items}
    assert answer.body["sessions"]
    assert {f"session#{session['session_id']}" for session in answer.body["sessions"]} <= stored
    assert storable(json.dumps(items, ensure_ascii=False))


# -- the parser, pure ----------------------------------------------------------------------------


class TestParser:
    """`ZendeskAdapter.parse` and the providers reading its fields: no store, no HTTP."""

    @pytest.mark.property
    def test_parse_returns_a_ticket_or_refuses_with_invalid_request(self) -> None:
        """For any bytes: a TicketRequest holding a ticket number and storable text, or a 400."""
        seen: Counter[str] = Counter()

        @given(body=hostile_bodies | st.binary())
        def parse_any(body: bytes) -> None:
            # When
            try:
                ticket = ADAPTER.parse(body)
            except InvalidRequest:
                # Then: a refusal, never another exception
                record(seen, "refused")
                return
            # Then
            assert TICKET_NUMBER.fullmatch(ticket.ticket_id)
            assert storable(ticket.requester)
            assert all(storable(tag) for tag in ticket.tags)
            record(seen, "parsed")

        parse_any()
        require_shares(seen, {"parsed": MANY, "refused": MANY})

    @pytest.mark.property
    def test_what_a_body_asks_for_is_storable_or_refused(self) -> None:
        """For any trigger-like body: captures whose every text DynamoDB can keep, or a 400."""
        seen: Counter[str] = Counter()

        @given(
            payload=trigger_payloads() | mutated_payloads(),
            encoding=st.sampled_from(ENCODINGS),
        )
        def read_any(payload: dict[str, Any], encoding: str) -> None:
            # When
            try:
                captures = read(encoded(payload, encoding))
            except InvalidRequest:
                record(seen, "refused")
                return
            # Then
            assert captures
            for capture in captures:
                texts = [
                    capture.ticket_id,
                    capture.provider,
                    capture.action,
                    capture.subject,
                    capture.user_id,
                    capture.description,
                    capture.reference or "",
                    capture.capture_key,
                ]
                assert all(storable(text) for text in texts), capture
                assert TICKET_NUMBER.fullmatch(capture.ticket_id)
            record(seen, "read")

        read_any()
        require_shares(seen, {"read": MANY, "refused": MANY})

    @pytest.mark.property
    @given(
        payload=trigger_payloads(),
        field=st.sampled_from(KNOWN_FIELDS),
        encoding=st.sampled_from(ENCODINGS),
        data=st.data(),
    )
    def test_a_wrongly_typed_field_is_refused_naming_it(
        self, payload: dict[str, Any], field: str, encoding: str, data: st.DataObject
    ) -> None:
        """A field the bridge reads, given a boolean, float, list or object: a 400 naming it."""
        # Given: an acceptable body, but one field it reads has the wrong type
        wrong = data.draw(not_tags if field == "tags" else not_text, label="wrong value")
        body = encoded(reading(payload, field) | {field: wrong}, encoding)
        # When / Then
        with pytest.raises(InvalidRequest, match=re.escape(field)):
            read(body)

    @pytest.mark.property
    @given(
        payload=trigger_payloads(),
        field=st.sampled_from(KNOWN_FIELDS),
        text=surrogate_text,
        as_list=st.booleans(),
        encoding=st.sampled_from(SURROGATE_ENCODINGS),
    )
    @example(
        payload={"ticket_id": "1001", "requester_email": "ada@example.com"},
        field="requester_email",
        text="x\ud800y",
        as_list=False,
        encoding="raw",
    )
    def test_a_lone_surrogate_in_a_field_is_refused_naming_it(
        self, payload: dict[str, Any], field: str, text: str, as_list: bool, encoding: str
    ) -> None:
        """No store can keep a lone surrogate: as "\\ud800" or as bytes ed a0 80, it is a 400."""
        # Given: a lone surrogate in one field the bridge reads, really in the body's bytes
        value: Any = [text] if field == "tags" and as_list else text
        body = encoded(reading(payload, field) | {field: value}, encoding)
        if encoding == "escaped":
            assert re.search(rb"\\ud[89a-f]", body)
        else:
            assert re.search(rb"\xed[\xa0-\xbf][\x80-\xbf]", body)
        # When / Then
        with pytest.raises(InvalidRequest, match=f"{re.escape(field)} is not valid UTF-8"):
            read(body)


# -- the signature check, pure -------------------------------------------------------------------


class TestSignature:
    """`ZendeskAdapter.verify`: no store, no HTTP."""

    @pytest.mark.property
    def test_verify_returns_a_fingerprint_or_refuses(self) -> None:
        """For any headers: a fingerprint when a signature header signs a timestamp header and
        the body, else Unauthenticated, never another exception."""
        seen: Counter[str] = Counter()

        @given(body=st.binary(max_size=MAX_RANDOM_BYTES), data=st.data())
        def verify_any(body: bytes, data: st.DataObject) -> None:
            # Given
            # (forged fresh ones drawn on their own too, so that whatever the seed, a good share
            # of the run is refused for the signature alone)
            headers = data.draw(header_maps(body) | forged_maps(body), label="headers")
            # When
            try:
                fingerprint = verify(headers, body, START)
            except Unauthenticated as exc:
                # Then: a refusal, never another exception
                record(seen, str(exc))
                return
            # Then
            assert FINGERPRINT.fullmatch(fingerprint)
            assert any(
                signature.strip() == sign_webhook(WEBHOOK_SECRET, stamp, body)
                for signature in values_of(headers, SIGNATURE_HEADER)
                for stamp in values_of(headers, TIMESTAMP_HEADER)
            )
            record(seen, "verified")

        verify_any()
        # Both sides, and fresh calls refused for their signature alone among the refusals.
        require_shares(seen, {"verified": MANY, "webhook signature does not match": SOME})

    @pytest.mark.property
    @given(
        body=st.binary(max_size=MAX_RANDOM_BYTES),
        other_body=st.binary(max_size=MAX_RANDOM_BYTES),
        sent=st.integers(-SKEW_SECONDS // 2, 0),
        sent_again=st.integers(1, SKEW_SECONDS // 2),
        checked_after=st.integers(-SKEW_SECONDS // 2, SKEW_SECONDS // 2),
        form=forms,
        zone=zones,
        data=st.data(),
    )
    def test_a_fingerprint_names_one_delivery(
        self,
        body: bytes,
        other_body: bytes,
        sent: int,
        sent_again: int,
        checked_after: int,
        form: str,
        zone: int,
        data: st.DataObject,
    ) -> None:
        """Equal for equal (timestamp, body), however the headers are spelled and whenever they
        are checked; different when the body or the timestamp differs."""
        assume(other_body != body)
        # Given: one delivery, the same one again with its headers spelled differently, and one
        # sent a moment later
        timestamp = written(START + timedelta(seconds=sent), form, zone)
        other_timestamp = written(START + timedelta(seconds=sent_again), form, zone)
        headers = signed(body, timestamp)
        respelled = {
            data.draw(any_case(SIGNATURE_HEADER)): f" {headers[SIGNATURE_HEADER]}\n",
            data.draw(any_case(TIMESTAMP_HEADER)): timestamp,
        }
        # When
        first = verify(headers, body, START)
        again = verify(respelled, body, START + timedelta(seconds=checked_after))
        of_other_body = verify(signed(other_body, timestamp), other_body, START)
        of_other_time = verify(signed(body, other_timestamp), body, START)
        # Then
        assert FINGERPRINT.fullmatch(first)
        assert again == first
        assert of_other_body != first
        assert of_other_time != first

    @pytest.mark.property
    @given(
        body=st.binary(max_size=MAX_RANDOM_BYTES),
        timestamp=timestamps(fresh_offsets),
        data=st.data(),
    )
    def test_any_other_signature_is_refused(
        self, body: bytes, timestamp: str, data: st.DataObject
    ) -> None:
        """A character changed, added or removed, another encoding of the digest: a 401."""
        # Given
        genuine = sign_webhook(WEBHOOK_SECRET, timestamp, body)
        forged = data.draw(mutations(genuine), label="forged signature")
        # When / Then
        # (cut to nothing, the header counts as missing)
        with pytest.raises(Unauthenticated, match=r"does not match|missing"):
            verify({SIGNATURE_HEADER: forged, TIMESTAMP_HEADER: timestamp}, body, START)

    @pytest.mark.property
    @given(
        body=st.binary(min_size=1, max_size=MAX_RANDOM_BYTES),
        timestamp=timestamps(fresh_offsets),
        data=st.data(),
    )
    def test_a_signature_covers_every_byte_of_the_body(
        self, body: bytes, timestamp: str, data: st.DataObject
    ) -> None:
        """The genuine headers of one body refuse any other body, however close."""
        # Given: the body with one byte changed, removed or added
        at = data.draw(st.integers(0, len(body) - 1), label="position")
        byte = data.draw(st.binary(min_size=1, max_size=1), label="byte")
        other = data.draw(
            st.sampled_from([body[:at] + byte + body[at + 1 :], body[:at] + body[at + 1 :]])
            | st.just(body[:at] + byte + body[at:]),
            label="other body",
        )
        assume(other != body)
        # When / Then
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(signed(body, timestamp), other, START)

    @pytest.mark.property
    @given(offset=any_offsets, form=forms, zone=zones, body=st.binary(max_size=MAX_RANDOM_BYTES))
    @example(offset=SKEW_SECONDS, form="iso", zone=0, body=b"{}")
    @example(offset=-SKEW_SECONDS, form="epoch-millis", zone=0, body=b"{}")
    @example(offset=SKEW_SECONDS + 1, form="epoch-seconds", zone=0, body=b"{}")
    @example(offset=-SKEW_SECONDS - 1, form="iso-offset", zone=-MAX_ZONE_MINUTES, body=b"{}")
    def test_only_a_timestamp_within_the_skew_is_accepted(
        self, offset: int, form: str, zone: int, body: bytes
    ) -> None:
        """Genuinely signed at any moment, in any form: accepted iff within MAX_SKEW of now."""
        # Given
        timestamp = written(START + timedelta(seconds=offset), form, zone)
        # When
        refusal = ""
        try:
            verify(signed(body, timestamp), body, START)
        except Unauthenticated as exc:
            refusal = str(exc)
        # Then
        accepted = not refusal
        event("accepted" if accepted else "refused")
        assert accepted == (abs(offset) <= SKEW_SECONDS), (timestamp, refusal)
        assert accepted or "too old or in the future" in refusal


# -- the whole HTTP path: moto and the simulators ------------------------------------------------


class TestWebhook:
    """`receive`, as the Lambda handler calls it, on moto and the API simulators."""

    @pytest.mark.property
    def test_signed_bodies_reach_the_parser_and_never_cause_a_server_error(
        self, webhook: Webhook, outside: Outside
    ) -> None:
        """Signed, any body gets the parser's verdict: 202 with its sessions stored, 400 with
        the parser's reason, 413 past the size limit; a refusal leaves no trace."""
        seen: Counter[str] = Counter()

        @settings(max_examples=END_TO_END_EXAMPLES)
        @given(body=hostile_bodies)
        def send_signed(body: bytes) -> None:
            # Given: what the parser alone makes of the body, and an empty table
            status, error = parser_verdict(body)
            before = outside.emptied()
            # When: Zendesk signs and sends it
            answer = webhook.send(body)
            # Then
            assert answer.status == status, (answer, body[:200])
            if status == ACCEPTED:
                assert_stored(answer, outside)
            else:
                assert_refused_without_trace(answer, before, outside)
                assert error is None or answer.body["error"] == error
            record(seen, str(answer.status))

        send_signed()
        require_shares(
            seen,
            {
                str(ACCEPTED): SOME,
                str(BAD_REQUEST): MANY,
                str(TOO_LARGE): FEW,
            },
        )

    @pytest.mark.property
    def test_unsigned_or_forged_calls_are_refused_with_401(
        self, webhook: Webhook, outside: Outside
    ) -> None:
        """Bodies the bridge would accept, sent without Zendesk's fresh signature: 401, no trace."""
        seen: Counter[str] = Counter()

        def forged_calls(kind: str) -> Callable[[], None]:
            """The property for one kind of forgery: every kind gets its share of the examples."""

            @settings(max_examples=max(END_TO_END_EXAMPLES // len(FORGERIES), MIN_PER_KIND))
            @given(body=valid_bodies, data=st.data())
            def send_forged(body: bytes, data: st.DataObject) -> None:
                # Given: a body that signed would be accepted, and headers that do not prove it
                assert read(body)
                headers = data.draw(forged_headers(body, kind), label="headers")
                before = outside.emptied()
                # When
                answer = webhook.send(body, headers)
                # Then
                assert answer.status == UNAUTHENTICATED, (kind, headers, answer)
                assert answer.body["error"].startswith("unauthenticated: ")
                assert_refused_without_trace(answer, before, outside)
                record(seen, kind)

            return send_forged

        for kind in FORGERIES:
            forged_calls(kind)()
        require_each(seen, FORGERIES)

    @pytest.mark.property
    def test_header_case_and_duplicates_never_cause_a_server_error(
        self, webhook: Webhook, clock: Clock, outside: Outside
    ) -> None:
        """Header names in any case are accepted; a second spelling of the signature header with
        the same value too; one with another value is a 401 without trace, in either order."""
        seen: Counter[str] = Counter()

        def respelled_calls(duplicate: str) -> Callable[[], None]:
            """The property for one kind of duplicate: each gets its share of the examples."""
            examples = max(ACCEPTED_END_TO_END_EXAMPLES // len(DUPLICATES), MIN_PER_KIND)

            @settings(max_examples=examples)
            @given(body=readme_bodies, duplicate_first=st.booleans(), data=st.data())
            def send_respelled(body: bytes, duplicate_first: bool, data: st.DataObject) -> None:
                # Given: Zendesk's headers, each name spelled in any case
                genuine = signed_headers(body, clock())
                headers = {data.draw(any_case(name)): value for name, value in genuine.items()}
                # ... and maybe the signature header again, in another spelling
                if duplicate != "none":
                    [spelling] = [name for name in headers if name.lower() == SIGNATURE_HEADER]
                    signature = genuine[SIGNATURE_HEADER]
                    again = {
                        "same": signature,
                        "padded": f"\t{signature} ",
                        "forged": data.draw(mutations(signature) | clean_text, label="forged"),
                    }[duplicate]
                    extra = {spelling.swapcase(): again}
                    headers = extra | headers if duplicate_first else headers | extra
                before = outside.emptied()
                # When
                answer = webhook.send(body, headers)
                # Then: only a forged duplicate is refused, always, and without a trace
                if duplicate == "forged":
                    assert answer.status == UNAUTHENTICATED
                    assert_refused_without_trace(answer, before, outside)
                else:
                    assert_stored(answer, outside)
                record(seen, duplicate)

            return send_respelled

        for duplicate in DUPLICATES:
            respelled_calls(duplicate)()
        require_each(seen, DUPLICATES)

    @pytest.mark.property
    def test_any_transport_gets_a_client_error_or_the_parsers_verdict(
        self, webhook: Webhook, runtime: Runtime, clock: Clock, outside: Outside
    ) -> None:
        """Any helpdesk name, any text or base64 body (or none), signed or not: 400 for a body
        that is no UTF-8 or no base64, 413, 404 for another helpdesk, 401 unsigned; else the
        parser's verdict."""
        seen: Counter[str] = Counter()

        @settings(max_examples=END_TO_END_EXAMPLES)
        @given(
            to_genuine_helpdesk=st.booleans(),
            other_helpdesk=st.sampled_from(["Zendesk", "kayako", ""]) | any_text,
            form=st.sampled_from(["none", "text", "base64", "bad base64"]),
            sign=st.booleans(),
            data=st.data(),
        )
        def deliver(
            to_genuine_helpdesk: bool,
            other_helpdesk: str,
            form: str,
            sign: bool,
            data: st.DataObject,
        ) -> None:
            # Given: a helpdesk name, a body as API Gateway passes it, and the bytes it stands
            # for (None: no bytes at all)
            helpdesk = GENUINE_HELPDESK if to_genuine_helpdesk else other_helpdesk
            text: str | None
            raw: bytes | None
            if form == "none":
                text, raw, is_base64 = None, b"", data.draw(st.booleans(), label="is_base64")
            elif form == "text":
                text = data.draw(
                    any_text
                    | st.one_of(valid_bodies, hostile_bodies).map(
                        lambda body: body.decode("utf-8", "surrogateescape")
                    ),
                    label="text body",
                )
                raw, is_base64 = (text.encode() if storable(text) else None), False
            elif form == "base64":
                raw = data.draw(valid_bodies | hostile_bodies, label="raw body")
                text, is_base64 = base64.b64encode(raw).decode(), True
            else:
                text, is_base64 = data.draw(any_text, label="base64 body"), True
                try:
                    raw = base64.b64decode(text, validate=True)
                except (binascii.Error, ValueError):
                    raw = None
            headers = signed_headers(raw, clock()) if sign and raw is not None else {}
            # ... and the answer each layer owes it, outermost first
            if raw is None:
                expected = BAD_REQUEST
            elif len(raw) > MAX_BODY_BYTES:
                expected = TOO_LARGE
            elif helpdesk != GENUINE_HELPDESK:
                expected = NOT_FOUND
            elif not headers:
                expected = UNAUTHENTICATED
            else:
                expected = parser_verdict(raw)[0]
            before = outside.emptied()
            # When
            answer = receive(
                helpdesk,
                headers,
                text,
                is_base64=is_base64,
                runtime_factory=lambda: runtime,
                clock=clock,
            )
            # Then
            assert answer.status == expected, (answer, helpdesk, form, text)
            if expected == ACCEPTED:
                assert_stored(answer, outside)
            else:
                assert_refused_without_trace(answer, before, outside)
            record(seen, str(answer.status))

        deliver()
        require_shares(
            seen,
            {
                str(ACCEPTED): FEW,
                str(BAD_REQUEST): MANY,
                str(UNAUTHENTICATED): SOME,
                str(NOT_FOUND): SOME,
            },
        )

    @pytest.mark.property
    def test_a_lone_surrogate_in_the_signature_header_is_refused(
        self, webhook: Webhook, clock: Clock, outside: Outside
    ) -> None:
        """A signature header no UTF-8 can carry is no signature: a 401, not a crash."""

        # Seeing it fail is enough: no shrinking, no explaining.
        @settings(
            max_examples=ACCEPTED_END_TO_END_EXAMPLES, phases=[Phase.explicit, Phase.generate]
        )
        @given(signature=surrogate_text, name=any_case(SIGNATURE_HEADER))
        @example(signature="\ud800", name=SIGNATURE_HEADER)
        def send_surrogate(signature: str, name: str) -> None:
            # Given: a fresh timestamp, and a signature holding a lone surrogate
            body = trigger_body()
            headers = {TIMESTAMP_HEADER: signed_headers(body, clock())[TIMESTAMP_HEADER]}
            headers[name] = signature
            before = outside.emptied()
            # When
            answer = webhook.send(body, headers)
            # Then
            assert answer.status == UNAUTHENTICATED
            assert_refused_without_trace(answer, before, outside)

        send_surrogate()
