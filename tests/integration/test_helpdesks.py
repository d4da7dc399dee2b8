"""What every helpdesk shares: the route, refusal when unconfigured, and the one-module checklist.

Each helpdesk's own flows are in its test file; these run over the whole registry, so a new
helpdesk is held to them by its registry line alone.
"""

from __future__ import annotations

import pytest

from capture_bridge import webhook as webhook_module
from capture_bridge.helpdesks import helpdesk_spec, supported_helpdesks
from capture_bridge.webhook import receive
from local_runner.simulators import HELPDESK_SIMULATORS
from tests.conftest import EVENTS, ROOT, Clock, load_event, runtime_with
from tests.helpdesk_desk import stored

HELPDESKS = supported_helpdesks()
README = (ROOT / "README.md").read_text()
# The README's table of helpdesks: its rows start with the helpdesk's name in bold.
HELPDESK_TABLE_HEADER = "| Helpdesk | Sender proof | Delivery id | Note | Rate limits |"


@pytest.mark.parametrize("name", HELPDESKS)
def test_an_unconfigured_helpdesk_refuses_every_delivery_and_logs_the_missing_key(
    name: str, env: dict[str, str], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a bridge with none of the helpdesk's secret keys, and its own sample delivery
    spec = helpdesk_spec(name)
    blank = dict.fromkeys((*spec.secret_keys, *spec.optional_keys), "")
    runtime = runtime_with(env, **blank)
    event = load_event(f"webhook_{name}")
    errors: list[str] = []
    monkeypatch.setattr(
        webhook_module.logger,
        "error",
        lambda message, *args, **kwargs: errors.append(f"{message} {kwargs.get('extra')}"),
    )
    # when it arrives
    answer = receive(
        name,
        event["headers"],
        event["body"],
        is_base64=bool(event.get("isBase64Encoded")),
        runtime_factory=lambda: runtime,
        clock=clock,
    )
    # then it is refused as unauthenticated (never accepted, never a 5xx), nothing is stored,
    # and an ERROR log names the key to set
    assert answer.status == 401, answer.body
    assert spec.webhook_secret_key in answer.body["error"]
    assert stored(env["TABLE_NAME"]) == 0
    assert any(spec.webhook_secret_key in line for line in errors), errors


def test_an_unknown_helpdesk_is_404_listing_the_supported_ones(
    env: dict[str, str], clock: Clock
) -> None:
    # given a delivery to a helpdesk the bridge has no module for
    runtime = runtime_with(env)
    # when it arrives
    answer = receive(
        "kayako", {}, "{}", is_base64=False, runtime_factory=lambda: runtime, clock=clock
    )
    # then it is a 404 naming every supported helpdesk, and nothing is stored
    assert answer.status == 404
    assert all(name in answer.body["error"] for name in HELPDESKS)
    assert stored(env["TABLE_NAME"]) == 0


@pytest.mark.parametrize("name", HELPDESKS)
def test_each_helpdesk_is_one_module_with_its_simulator_event_and_readme_section(
    name: str,
) -> None:
    # given the helpdesk's spec, from its module
    spec = helpdesk_spec(name)
    # then it declares what the rest of the bridge reads from it
    assert spec.name == name
    assert spec.webhook_secret_key in spec.secret_keys
    assert not set(spec.optional_keys) & set(spec.secret_keys)
    assert spec.longest_note_seconds > 0
    # and it has its simulator (for the demo and tests) and its sample event
    assert HELPDESK_SIMULATORS[name]().helpdesk == name
    assert (EVENTS / f"webhook_{name}.json").is_file()
    # and the README's table of helpdesks has its row, linking to its set-up section
    table = README[README.index(HELPDESK_TABLE_HEADER) :].split("\n\n")[0]
    [row] = [line for line in table.splitlines() if f"`{name}`" in line.split("|")[1]]
    assert f"](docs/helpdesks/{name}.md)" in row, row
    assert (ROOT / "docs" / "helpdesks" / f"{name}.md").is_file()
