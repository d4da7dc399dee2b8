"""openapi/sessions.yaml describes each capture source's create body as the registry has it.

A provider added, an action renamed or a source that starts names existing sessions instead:
the document must follow, or a client built from it (and Schemathesis) would ask what the API
refuses. Kept to the few facts the registry gives, so that it follows the registry's form.
"""

from __future__ import annotations

from typing import Any

from capture_bridge.capture import (
    DEFAULT_PROVIDER,
    named_field,
    provider_module,
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


def test_sources_naming_sessions_require_their_id_in_the_registrys_form() -> None:
    for name, body in bodies().items():
        external = body["properties"].get("externalSessionId")
        if named_field(name) is None:
            # Then the body starts a capture and names none
            assert external is None, name
            continue
        assert "externalSessionId" in body["required"], name
        assert external["pattern"] == provider_module(name).NAMED.id_pattern.pattern, name
        assert set(body["properties"]) == {*BODY_FIELDS, "externalSessionId"}, name


def test_bugpilots_actions_and_the_helpdesks_are_the_registrys() -> None:
    action = bodies()[DEFAULT_PROVIDER]["properties"]["action"]
    actions = provider_module(DEFAULT_PROVIDER).ACTIONS
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
