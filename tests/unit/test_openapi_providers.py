"""openapi/sessions.yaml describes each capture source's create body as the registry has it.

A provider added, an action renamed or a source that starts names existing sessions instead:
the document must follow, or a client built from it (and Schemathesis) would ask what the API
refuses. Kept to the few facts the registry gives, so that it follows the registry's form.
"""

from __future__ import annotations

from typing import Any

from capture_bridge.capture import (
    DEFAULT_PROVIDER,
    provider_spec,
    provider_specs,
    supported_providers,
)
from capture_bridge.helpdesks import supported_helpdesks
from tests import openapi_contract as contract

BODY_FIELDS = {"helpdesk", "ticketId", "provider"}


def bodies() -> dict[str, dict[str, Any]]:
    """Each provider's create body in the document, by the `provider` it names."""
    found: dict[str, dict[str, Any]] = {}
    for branch in contract.document()["components"]["schemas"]["NewSession"]["oneOf"]:
        body = contract.resolved(branch)
        provider = contract.resolved(body["properties"]["provider"])
        # `const`, or for the default provider `enum: [name, null]` (null: left out).
        [name] = [value for value in provider.get("enum", [provider.get("const")]) if value]
        found[name] = body
    return found


def test_there_is_one_body_per_provider() -> None:
    assert set(bodies()) == set(supported_providers())
    assert len(contract.document()["components"]["schemas"]["NewSession"]["oneOf"]) == len(
        supported_providers()
    )


def test_only_the_default_provider_may_be_left_out_and_only_known_fields_are_taken() -> None:
    for name, body in bodies().items():
        assert body["additionalProperties"] is False, name
        assert ("provider" not in body["required"]) == (name == DEFAULT_PROVIDER), name


def test_each_body_takes_exactly_the_fields_its_spec_reads_bounded_as_the_api_checks() -> None:
    documented = bodies()
    for spec in provider_specs():
        # given the provider's spec and its body in the document
        body = documented[spec.name]
        # then the body has the common fields and the spec's own, no more
        assert set(body["properties"]) == {*BODY_FIELDS, *(f.name for f in spec.api_fields)}
        for field in spec.api_fields:
            schema = contract.resolved(body["properties"][field.name])
            # and each is bounded, patterned and required as the API checks it
            where = (spec.name, field.name)
            assert (field.name in body["required"]) == field.required, where
            if field.choices:
                choices = [value for value in schema["enum"] if value is not None]
                assert choices == list(field.choices), where
            elif spec.named is None:
                # (A named session's id is bounded by its pattern: the next test.)
                assert schema.get("maxLength") == field.max_length, where
            if field.pattern is not None:
                assert schema["pattern"] == field.pattern.pattern, where


def test_sources_naming_sessions_require_their_id_in_the_registrys_form() -> None:
    for name, body in bodies().items():
        external = body["properties"].get("externalSessionId")
        named = provider_spec(name).named
        if named is None:
            # Then the body starts a capture and names none
            assert external is None, name
            continue
        assert "externalSessionId" in body["required"], name
        assert external["pattern"] == named.id_pattern.pattern, name


def test_bugpilots_actions_and_the_helpdesks_are_the_registrys() -> None:
    action = bodies()[DEFAULT_PROVIDER]["properties"]["action"]
    actions = provider_spec(DEFAULT_PROVIDER).actions
    assert [value for value in action["enum"] if value is not None] == list(actions)
    helpdesk = contract.resolved({"$ref": "#/components/schemas/Helpdesk"})
    assert helpdesk["enum"] == list(supported_helpdesks())


def test_every_example_body_is_one_providers_body() -> None:
    operation = ["paths", "/sessions", "post", "requestBody", "content", "application/json"]
    examples = contract.document()
    for part in operation:
        examples = examples[part]
    assert set(examples["examples"]) == set(supported_providers())
    for example in examples["examples"].values():
        contract.validate(example["value"], [*operation, "schema"])
