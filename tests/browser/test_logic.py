"""The panel's pure rules (apps/zendesk/assets/logic.js), imported as the page imports them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import OpenPanel


@pytest.fixture
def logic(open_panel: OpenPanel) -> Any:
    """Calls `logic.<expression>` in the panel's page and returns the result."""
    page = open_panel().page

    def run(expression: str) -> Any:
        return page.evaluate(
            f"async () => {{ const logic = await import('./logic.js'); return {expression}; }}"
        )

    return run


def test_the_polling_schedule_is_5_s_then_doubles_up_to_30_s(logic: Any) -> None:
    delays = logic("[0, 1, 2, 3, 4, 5, 20].map((round) => logic.pollDelay(round))")
    assert delays == [5000, 5000, 10000, 20000, 30000, 30000, 30000]


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("requested", "requested, being sent to Bugpilot"),
        ("waiting_for_user", "waiting for the user to open the app"),
        ("pending", "capturing, waiting for the report"),
        ("resolved", "report ready"),
        ("timed_out", "timed out: no report came in time"),
        ("cancelled", "cancelled"),
        ("failed", "failed: USER_DENIED"),
    ],
)
def test_each_status_has_plain_words(logic: Any, status: str, words: str) -> None:
    session = f'{{status: "{status}", provider: "bugpilot", data: {{error: "USER_DENIED"}}}}'
    assert logic(f"logic.statusWords({session})") == words


def test_a_notte_session_waits_for_its_session_not_a_report(logic: Any) -> None:
    words = logic('logic.statusWords({status: "pending", provider: "notte", data: {}})')
    assert words == "waiting for the session to finish"
    assert logic('logic.sourceName("lambdatest")') == "LambdaTest"


def test_the_requester_is_the_external_id_else_the_email_else_nobody(logic: Any) -> None:
    assert logic('logic.requesterOf({externalId: " u-1 ", email: "a@b.co"})') == {"userId": "u-1"}
    assert logic('logic.requesterOf({externalId: "", email: "a@b.co"})') == {"userEmail": "a@b.co"}
    assert logic("logic.requesterOf({externalId: null, email: null})") is None


def test_a_create_request_carries_the_placeholder_the_key_and_the_body(logic: Any) -> None:
    options = logic(
        'logic.createRequest("https://api.example.com/", {ticketId: 7, requester: {userId: "u"},'
        ' action: "upload-screenshot", description: "  ", key: "k-1"})'
    )
    assert options["url"] == "https://api.example.com/sessions"
    assert options["type"] == "POST"
    assert options["contentType"] == "application/json"
    assert options["secure"] is True
    assert options["headers"] == {
        "Authorization": "Bearer {{setting.api_token}}",
        "Idempotency-Key": "k-1",
    }
    assert options["data"] == (
        '{"helpdesk":"zendesk","ticketId":"7","provider":"bugpilot",'
        '"action":"upload-screenshot","userId":"u"}'
    )


def test_list_and_cancel_requests_are_secure_and_quote_what_they_carry(logic: Any) -> None:
    listing = logic('logic.listRequest("https://api.example.com", "12 3")')
    assert listing["url"] == "https://api.example.com/sessions?helpdesk=zendesk&ticketId=12+3"
    cancel = logic('logic.cancelRequest("https://api.example.com", "a/b")')
    assert (cancel["url"], cancel["type"]) == ("https://api.example.com/sessions/a%2Fb", "DELETE")
    assert listing["secure"] is cancel["secure"] is True


def test_only_http_links_are_shown(logic: Any) -> None:
    links = logic(
        'logic.safeLinks({data: {links: {report: "https://r.example/1", evil: "javascript:x",'
        ' video: "http://v.example/2"}}})'
    )
    assert links == [
        {"name": "report", "url": "https://r.example/1"},
        {"name": "video", "url": "http://v.example/2"},
    ]


def test_failures_read_as_what_to_do(logic: Any) -> None:
    down = logic('logic.failureWords({status: 0}, "the request")')
    assert down.startswith("The capture bridge cannot be reached, so the request did not happen.")
    assert logic('logic.failureWords({status: 502}, "x")') == logic(
        'logic.failureWords({status: 0}, "x")'
    )
    assert "check the app's settings" in logic('logic.failureWords({status: 401}, "x")')
    bad = logic(
        'logic.failureWords({status: 400, responseJSON: {detail: [{loc: ["body"], msg: "no"}]}},'
        ' "the request")'
    )
    assert bad == "The capture bridge turned down the request: no (HTTP 400)."
    assert logic("[0, 503, 400, 409].map((s) => logic.mayHaveLanded({status: s}))") == [
        True,
        True,
        False,
        False,
    ]
