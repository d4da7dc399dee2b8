"""Each integration's page can be followed alone: its set-up steps name everything to set, and
what the vendor's documentation does not confirm sits in one "Verify" box, not among the steps.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from capture_bridge.capture import provider_specs
from capture_bridge.helpdesks import helpdesk_specs
from local_runner.template import Intrinsic, load_yaml

ROOT = Path(__file__).resolve().parents[2]
SET_UP = "## Setting it up"
VERIFY_BOX = re.compile(r"^> \*\*Verify (on your account|with your tool)\.\*\*")
# How the docs flag a vendor fact they could not confirm (code spans, like `UNCONFIRMED`, the
# error code, are left out before looking).
UNVERIFIED = re.compile(r"UNCONFIRMED|[Nn]ot confirmed")
_CODE = re.compile(r"`[^`]*`")

PAGES = [
    pytest.param(
        ROOT / "docs" / kind / f"{spec.name}.md",
        spec.secret_keys,
        spec.settings,
        id=f"docs/{kind}/{spec.name}.md",
    )
    for kind, specs in (("helpdesks", helpdesk_specs()), ("sources", provider_specs()))
    for spec in specs
]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def section(text: str, heading: str) -> str:
    """The text under a `## ` heading, up to the next one."""
    found = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    return found.group(1) if found else ""


def optional(text: str, key: str) -> bool:
    """Whether the page's table of settings calls `key` optional."""
    return any(
        line.startswith(f"| `{key}`") and "optional" in line.lower() for line in text.splitlines()
    )


def parameters_without_default() -> dict[str, str]:
    """Each setting the template passes from a parameter with an empty default: its parameter."""
    template = load_yaml(ROOT / "template.yaml")
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return {
        key: value.value
        for key, value in variables.items()
        if isinstance(value, Intrinsic)
        and value.name == "Ref"
        and template["Parameters"].get(value.value, {}).get("Default", "") == ""
    }


@pytest.mark.parametrize(("page", "keys", "settings"), PAGES)
def test_the_set_up_steps_name_every_key_and_every_setting_without_a_default(
    page: Path, keys: tuple[str, ...], settings: tuple[str, ...]
) -> None:
    # given the page's set-up steps
    text = page.read_text()
    steps = section(text, SET_UP)
    assert steps, f"{page_id(page)} has no {SET_UP!r}"
    # then they name each secret key, and each required setting without a default (or its
    # parameter): the settings table alone does not say where to set it
    required = {
        setting: parameter
        for setting, parameter in parameters_without_default().items()
        if setting in settings and not optional(text, setting)
    }
    missing = [key for key in keys if key not in steps]
    missing += [
        f"{setting} ({parameter})"
        for setting, parameter in required.items()
        if setting not in steps and parameter not in steps
    ]
    assert not missing, missing


@pytest.mark.parametrize(("page", "keys", "settings"), PAGES)
def test_unconfirmed_vendor_facts_are_in_one_verify_box(
    page: Path, keys: tuple[str, ...], settings: tuple[str, ...]
) -> None:
    # given the page's lines, and its "Verify" boxes (block quotes opening with **Verify …**)
    lines = page.read_text().splitlines()
    boxes = [number for number, line in enumerate(lines) if VERIFY_BOX.match(line)]
    # then there is at most one box
    assert len(boxes) <= 1, boxes
    boxed = set()
    for start in boxes:
        end = start
        while end < len(lines) and lines[end].startswith(">"):
            boxed.add(end)
            end += 1
    # and no other line says a fact is unconfirmed: such facts go into the box, not the steps
    loose = [
        f"line {number + 1}: {line}"
        for number, line in enumerate(lines)
        if number not in boxed and UNVERIFIED.search(_CODE.sub("", line))
    ]
    assert not loose, loose
