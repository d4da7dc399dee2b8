"""openapi/sessions.yaml as a checker: is this request, or this answer, what the document says?

The API's route tests check every answer of the real handler here; the CLI's tests talk to a test
double of the API (tests/cli/api_double.py) whose every exchange is checked here too, so neither
the API, the double nor the CLI can drift from the contract unnoticed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_PATH = Path(__file__).resolve().parents[1] / "openapi" / "sessions.yaml"
DOCUMENT_URI = "urn:capture-bridge:openapi:sessions"
COLLECTION = "/sessions"
ONE_SESSION = "/sessions/{sessionId}"
METHOD_NOT_ALLOWED = 405


@cache
def document() -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = yaml.safe_load(DOCUMENT_PATH.read_text())
    except yaml.YAMLError as exc:
        raise AssertionError(f"{DOCUMENT_PATH.name} is not valid YAML: {exc}") from None
    return loaded


def readable() -> bool:
    """Whether the document parses; when it does not, test_contract.py fails and says why."""
    try:
        document()
    except AssertionError:
        return False
    return True


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    return Registry().with_resource(DOCUMENT_URI, resource)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _node(location: list[str]) -> Any:
    node: Any = document()
    for part in location:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _follow(location: list[str]) -> list[str]:
    """The location itself, or where its `$ref` (within the document) points."""
    node = _node(location)
    if isinstance(node, dict) and "$ref" in node:
        return _follow_ref(str(node["$ref"]))
    return location


def validate(instance: Any, location: list[str]) -> None:
    """Validate against the schema at `location` in the document (its `$ref`s resolved)."""
    pointer = "/".join(_escape(part) for part in location)
    validator = OAS31Validator(
        {"$ref": f"{DOCUMENT_URI}#/{pointer}"},
        registry=_registry(),
        format_checker=oas31_format_checker,
    )
    validator.validate(instance)


def resolved(schema: Any) -> dict[str, Any]:
    """A schema of the document, its `$ref` followed."""
    while isinstance(schema, dict) and "$ref" in schema:
        schema = _node(_follow_ref(str(schema["$ref"])))
    return schema if isinstance(schema, dict) else {}


def _follow_ref(ref: str) -> list[str]:
    assert ref.startswith("#/"), f"only local references are expected, not {ref}"
    return [part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/")]


@cache
def printable_fields() -> frozenset[tuple[str, str]]:
    """Every (`query`, `header` or `body`, name) whose schema says `x-printable`."""
    found: set[tuple[str, str]] = set()
    for item in document()["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                parameter = resolved(parameter)
                if resolved(parameter.get("schema")).get("x-printable"):
                    found.add((parameter["in"], parameter["name"]))
    for schema in document()["components"]["schemas"].values():
        for name, field in schema.get("properties", {}).items():
            if resolved(field).get("x-printable"):
                found.add(("body", name))
    return frozenset(found)


def unprintable(where: str, values: Any) -> set[str]:
    """The names of `x-printable` values (of the query or the body) that are not printable."""
    if not isinstance(values, dict):
        return set()
    return {
        str(name)
        for name, value in values.items()
        if isinstance(value, str)
        and not value.isprintable()
        and (where, name) in printable_fields()
    }


def query_schema(method: str, path: str) -> dict[str, Any] | None:
    """The operation's `x-query-schema`: which of its query parameters go together."""
    operation = document()["paths"][route(path)][method.lower()]
    rule: dict[str, Any] | None = operation.get("x-query-schema")
    return rule


def route(path: str) -> str:
    """The document's path template for a request path."""
    if path == COLLECTION:
        return COLLECTION
    assert path.startswith(COLLECTION + "/") and path.count("/") == 2, f"no route for {path}"
    return ONE_SESSION


def check_request(
    method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
) -> None:
    """The request uses only documented parameters, and its body is a valid NewSession."""
    template = route(path)
    operation = document()["paths"][template][method.lower()]
    parameters = [
        _node(_follow(["paths", template, method.lower(), "parameters", str(index)]))
        for index in range(len(operation.get("parameters", [])))
    ]
    documented_query = {item["name"] for item in parameters if item["in"] == "query"}
    assert set(query) <= documented_query, f"undocumented query {set(query) - documented_query}"
    for item in parameters:
        if item["in"] == "header" and item["name"].lower() in headers:
            value = headers[item["name"].lower()]
            assert item["schema"]["minLength"] <= len(value) <= item["schema"]["maxLength"]
    # A repeated parameter arrives comma-joined; its presence is what the combinations are about.
    single = {name: ",".join(values) for name, values in query.items()}
    combinations = query_schema(method, path)
    if combinations is not None:
        Draft202012Validator(combinations).validate(single)
    assert not unprintable("query", single), f"unprintable {unprintable('query', single)}"
    if "requestBody" in operation:
        schema = ["paths", template, method.lower(), "requestBody"]
        payload = json.loads(body)
        validate(payload, [*schema, "content", "application/json", "schema"])
        assert not unprintable("body", payload), f"unprintable {unprintable('body', payload)}"


def check_answer(method: str, path: str, status: int, answer: Any) -> None:
    """The status is documented for the operation, and the JSON matches its schema.

    A method the document has no operation for must be a 405 whose body is its `Error`.
    """
    template = COLLECTION if path.rstrip("/") == COLLECTION else ONE_SESSION
    if method.lower() not in _node(["paths", template]):
        assert status == METHOD_NOT_ALLOWED, (method, path, status)
        validate(answer, ["components", "schemas", "Error"])
        return
    responses = ["paths", template, method.lower(), "responses"]
    assert str(status) in _node(responses), f"{method} {template} does not document {status}"
    response = _follow([*responses, str(status)])
    validate(answer, [*response, "content", "application/json", "schema"])
