"""Every helpdesk, any input: a delivery is read or refused as a client error, never a crash.

The webhook maps `Unauthenticated` to 401, `InvalidRequest` to 400 and `NothingToCapture` to 200;
any other exception from an adapter or the providers reading its request would be a 5xx. These
run over the registry, so a new helpdesk is held to them without a line here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capture_bridge.capture import requests_for
from capture_bridge.errors import InvalidRequest, NothingToCapture, Unauthenticated
from capture_bridge.helpdesks import (
    Headers,
    WebhookRequest,
    get_adapter,
    helpdesk_spec,
    supported_helpdesks,
)
from capture_bridge.http import HttpClient
from capture_bridge.settings import settings_from
from local_runner.simulators import HELPDESK_SIMULATORS, HelpdeskSimulator
from tests.conftest import START
from tests.property.test_webhook_properties import hostile_bodies

HELPDESKS = supported_helpdesks()
HTTP = HttpClient()
# Text a field of a rule body might be given: markup, separators, non-ASCII, control characters.
field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from("<>\"'[]|{}!\\"),
    max_size=60,
)
header_names = st.sampled_from(
    [
        "authorization",
        "x-hub-signature",
        "x-atlassian-webhook-identifier",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-zendesk-webhook-signature",
        "x-zendesk-webhook-signature-timestamp",
        "x-helpscout-signature",
        "x-helpscout-event",
        "x-hubspot-signature-v3",
        "x-hubspot-request-timestamp",
    ]
)
any_headers = st.lists(st.tuples(header_names, st.text(max_size=80)), max_size=6)


@pytest.fixture(scope="module")
def desks() -> Iterator[dict[str, HelpdeskSimulator]]:
    """Every helpdesk's simulator, running: their settings point the adapters at them."""
    started = {name: make() for name, make in HELPDESK_SIMULATORS.items()}
    for desk in started.values():
        desk.start()
    yield started
    for desk in started.values():
        desk.stop()


def _rule_bodies(desk: HelpdeskSimulator) -> st.SearchStrategy[bytes]:
    """The helpdesk's own body shape, with every value drawn from awkward text."""
    return st.builds(
        lambda number, user, email, tags, action, description: desk.webhook_body(
            desk.ticket_id(number),
            user_id=user,
            email=email,
            tags=tags,
            fields={"action": action, "description": description},
        ),
        st.integers(1, 10**6),
        field_text,
        field_text,
        field_text,
        st.sampled_from(["", "upload-session", "upload-screenshot", "format-disk"]) | field_text,
        field_text,
    )


@pytest.mark.parametrize("name", HELPDESKS)
def test_a_proven_delivery_of_any_body_is_read_or_refused_as_a_client_error(
    name: str, desks: dict[str, HelpdeskSimulator]
) -> None:
    # given the helpdesk configured as its simulator says, and its own way of proving a call
    desk = desks[name]
    values = {"TABLE_NAME": "sessions", **desk.bridge_settings()}
    settings = settings_from(values)
    adapter = get_adapter(name, settings, HTTP)
    sign = helpdesk_spec(name).sign_request

    @given(body=hostile_bodies | _rule_bodies(desk))
    def check(body: bytes) -> None:
        # when any body arrives with a valid proof for it
        request = WebhookRequest("POST", f"/webhooks/{name}", Headers(desk.webhook_headers()), body)
        proof = sign(values, request, START)
        request = replace(request, headers=Headers({**desk.webhook_headers(), **proof}))
        # then it is verified and read into captures, refused as 401 or 400, or (a proven call
        # asking for nothing: another event, another tag) answered 200: nothing else
        try:
            adapter.verify(request, START)
            parsed = adapter.parse(body)
            for ticket in parsed if isinstance(parsed, list) else [parsed]:
                requests_for(ticket, settings, HTTP)
        except (Unauthenticated, InvalidRequest, NothingToCapture):
            pass

    check()


@pytest.mark.parametrize("name", HELPDESKS)
def test_headers_that_carry_no_valid_proof_are_always_refused(
    name: str, desks: dict[str, HelpdeskSimulator]
) -> None:
    # given the helpdesk configured, and a body it would accept
    desk = desks[name]
    settings = settings_from({"TABLE_NAME": "sessions", **desk.bridge_settings()})
    adapter = get_adapter(name, settings, HTTP)

    @given(body=_rule_bodies(desk), headers=any_headers)
    def check(body: bytes, headers: list[tuple[str, str]]) -> None:
        # when it arrives with headers made up by someone without the secret
        request = WebhookRequest("POST", f"/webhooks/{name}", Headers(headers), body)
        # then it is refused as unauthenticated, whatever they are
        with pytest.raises(Unauthenticated):
            adapter.verify(request, START)

    check()
