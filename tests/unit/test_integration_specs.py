"""The integration specs: what each registry line gives, and the page that describes them."""

from __future__ import annotations

import dataclasses
import re

import pytest

from capture_bridge.capture import (
    DEFAULT_PROVIDER,
    body_field_names,
    provider_spec,
    provider_specs,
    supported_providers,
)
from capture_bridge.capture.spec import ApiTarget, ProviderSpec
from capture_bridge.errors import UnknownHelpdesk, UnknownProvider
from capture_bridge.helpdesks import helpdesk_spec, helpdesk_specs, notes_per_minute_key
from capture_bridge.helpdesks.spec import HelpdeskSpec
from tests.conftest import ROOT

EXTENDING = (ROOT / "docs" / "extending.md").read_text()


def documented_fields(heading: str) -> list[str]:
    """The first column of the table under `## <heading>` in docs/extending.md."""
    section = EXTENDING.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)


@pytest.mark.parametrize("spec_type", [HelpdeskSpec, ProviderSpec])
def test_the_contract_page_lists_every_field_of_each_spec_in_order(spec_type: type) -> None:
    # given the dataclass and its table on docs/extending.md
    fields = [field.name for field in dataclasses.fields(spec_type)]
    # then the page names each field once, as the dataclass declares them
    assert documented_fields(spec_type.__name__) == fields


def test_each_helpdesk_module_declares_the_spec_its_registry_line_names() -> None:
    for spec in helpdesk_specs():
        assert isinstance(spec, HelpdeskSpec)
        assert helpdesk_spec(spec.name) is spec
        assert spec.webhook_secret_key in spec.secret_keys
        assert not set(spec.optional_keys) & set(spec.secret_keys)
        assert spec.longest_note_seconds > 0


def test_each_helpdesk_paces_its_notes_by_a_key_of_its_own_with_a_default_the_bucket_keeps() -> (
    None
):
    from capture_bridge.pacing import MAX_PER_MINUTE, MIN_PER_MINUTE

    for spec in helpdesk_specs():
        # read from the secret (or the environment), so no template changes
        assert notes_per_minute_key(spec.name) in spec.optional_keys
        assert notes_per_minute_key(spec.name) not in spec.settings
        assert MIN_PER_MINUTE <= spec.notes_per_minute <= MAX_PER_MINUTE


def test_each_capture_module_declares_the_spec_its_registry_line_names() -> None:
    assert [spec.name for spec in provider_specs()] == list(supported_providers())
    for spec in provider_specs():
        assert provider_spec(spec.name) is spec
        assert spec.longest_step_seconds > 0
        # A source names existing sessions (one required id) or starts captures (for a user).
        if spec.named is not None:
            assert [field.name for field in spec.api_fields] == ["externalSessionId"]
            assert spec.api_fields[0].target is ApiTarget.EXTERNAL_SESSION_ID
            assert spec.api_fields[0].required
            assert [field.rule for field in spec.body_fields] == [spec.named.field]
        else:
            assert set(spec.api_one_of) <= {field.name for field in spec.api_fields}
    assert provider_spec(DEFAULT_PROVIDER).named is None


def test_every_declared_body_field_is_read_in_both_spellings() -> None:
    # given every source's declared fields
    names = body_field_names()
    # then each spelling leads to the rule body's name, and no two sources claim one name
    rules = [field.rule for spec in provider_specs() for field in spec.body_fields]
    assert len(rules) == len(set(rules))
    for spec in provider_specs():
        for field in spec.body_fields:
            assert names[field.generic] == names[field.rule] == field.rule
    assert names["text"] == "text"


def test_unknown_names_are_refused_by_the_registries() -> None:
    with pytest.raises(UnknownHelpdesk, match="supported: freshdesk"):
        helpdesk_spec("kayako")
    with pytest.raises(UnknownProvider):
        provider_spec("loom")
