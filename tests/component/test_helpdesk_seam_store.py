"""The helpdesk seam against the store: a delivery remembered as long as its adapter says."""

from __future__ import annotations

import boto3

from capture_bridge.helpdesks import zendesk
from tests.conftest import START, Webhook, signed_headers, trigger_body
from tests.unit.test_helpdesk_seam import WITHIN_WINDOW


def test_a_redelivery_within_the_window_is_a_duplicate_remembered_as_the_adapter_says(
    webhook: Webhook, table: str
) -> None:
    # Given a delivery Zendesk sent, and the same delivery sent again four minutes later
    body = trigger_body()
    headers = signed_headers(body, webhook.clock())
    first = webhook.send(body, headers)
    webhook.clock.now += WITHIN_WINDOW
    again = webhook.send(body, headers)
    # Then the second is the first's duplicate
    assert (first.status, again.status) == (202, 202)
    assert again.body["duplicate"] is True
    assert again.body["session_id"] == first.body["session_id"]
    # And the store keeps the delivery's pointer exactly as long as the adapter said
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    [pointer] = [item for item in items if item["pk"]["S"].startswith("delivery#zendesk#")]
    assert int(pointer["expires_at"]["N"]) == int((START + zendesk.DELIVERY_MEMORY).timestamp())
