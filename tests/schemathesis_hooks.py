"""Schemathesis hooks: the document's two rules no JSON Schema keyword states, for its checks.

Loaded by the `st` run of tests/integration/test_schemathesis.py (`SCHEMATHESIS_HOOKS`). A
schema-valid request the API refuses fails the run (ST202), unless every field error of the
`400` is one the document itself announces and this request really earns:

- `x-query-schema`: the query breaks the operation's combinations of parameters;
- `x-printable`: the value named is text that is not printable (`str.isprintable`);
- a cursor the API never issued for this very query ("any other is a `400`").

Nothing else is let through: a refusal that names another field, or a rule the request keeps,
still fails the run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import schemathesis
from jsonschema import Draft202012Validator

from tests import openapi_contract as contract

LIST_PATH = "/sessions"
BAD_INPUT = 400
OK = 200
# A field error's loc: where, then the field's name.
FIELD_LOC = 2
# Cursors the API handed out in this run, with the query (less the cursor) each belongs to.
_issued: dict[str, frozenset[tuple[str, str]]] = {}
_lock = threading.Lock()


def _listing(query: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """What a cursor is bound to: the listing and `since` (not the page size)."""
    return frozenset((k, str(v)) for k, v in query.items() if k not in ("cursor", "limit"))


def _unprintable(case: Any) -> set[tuple[str, str]]:
    """The (where, name) of the case's `x-printable` values that are not printable text."""
    return {
        (where, name)
        for where, values in (("query", case.query), ("body", case.body))
        for name in contract.unprintable(where, values)
    }


def _breaks_combinations(case: Any) -> bool:
    rule = contract.query_schema(case.method, case.operation.path)
    return rule is not None and not Draft202012Validator(rule).is_valid(dict(case.query or {}))


def _unknown_cursor(case: Any) -> bool:
    """A cursor the API did not hand out for this very query (so a documented `400`)."""
    query = dict(case.query or {})
    with _lock:
        bound = _issued.get(str(query.get("cursor")))
    return "cursor" in query and bound != _listing(query)


def _combination_error(case: Any, loc: tuple[Any, ...], msg: str) -> bool:
    """The API's words for a query outside the combinations: the whole query, or a missing half."""
    if loc == ("query",):
        return True
    query = case.query or {}
    missing = loc[:1] == ("query",) and len(loc) == FIELD_LOC
    return missing and msg == "field required" and loc[-1] not in query


def explained(case: Any, status: int, body: bytes) -> bool:
    """Whether a refusal of a schema-valid request is one the document announces for it."""
    if status != BAD_INPUT:
        return False
    try:
        errors = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    if not isinstance(errors, list) or not errors:
        return False
    unprintable = _unprintable(case)
    combination = case.operation.path == LIST_PATH and _breaks_combinations(case)
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if combination and _combination_error(case, loc, str(error.get("msg"))):
            continue
        if loc == ("query", "cursor") and _unknown_cursor(case):
            continue
        if loc in unprintable:
            continue
        return False
    return True


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Remember each cursor the API hands out, with the query it belongs to."""
    if case.method == "GET" and case.operation.path == LIST_PATH and response.status_code == OK:
        cursor = response.json().get("nextCursor")
        if cursor:
            with _lock:
                _issued[cursor] = _listing(dict(case.query or {}))


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but a refused schema-valid request the document explains."""
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    return not explained(case, response.status_code, response.content)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Most schema-valid listings keep to the combinations, so that listing itself is tested.

    A valid listing with `status` and `helpdesk` both is the exception, not what a query's
    parameters mostly come to; a query naming only half a ticket is left as generated, so the
    documented `400`s are still asked for.
    """
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if not positive or case.method != "GET" or case.operation.path != LIST_PATH:
        return case
    query = dict(case.query or {})
    if "helpdesk" in query and "ticketId" in query:
        query.pop("status", None)
    elif "status" in query:
        query.pop("helpdesk", None)
        query.pop("ticketId", None)
    if "cursor" in query and _unknown_cursor(case):
        query.pop("cursor")
    case.query = query
    return case
