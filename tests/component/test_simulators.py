"""The Bugpilot and Zendesk HTTP simulators speak their documented contracts."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from local_runner.simulators import BugpilotSimulator, RecordedRequest, ZendeskSimulator

TIMEOUT = 2.0
UA = "Bugpilot API Client/1.0"
REPORT_NOT_FOUND_MESSAGE = (
    "The report identified by the session token was not found. Probably the report was "
    "deleted, not correctly saved from the client, or canceled by the user."
)


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def bugpilot() -> Iterator[BugpilotSimulator]:
    with BugpilotSimulator() as sim:
        sim.connect_user("u-1")
        yield sim


@pytest.fixture
def zendesk() -> Iterator[ZendeskSimulator]:
    with ZendeskSimulator() as sim:
        yield sim


def bp_headers(**overrides: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "User-Agent": UA,
        "X-Bugpilot-Api-Key": "ws-demo-key",
        "Content-Type": "application/json",
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


def action_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"workspaceId": "ws-demo", "userId": "u-1", "action": "upload-session"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def post_action(
    sim: BugpilotSimulator,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> requests.Response:
    return requests.post(
        f"{sim.url}/api/v1/action",
        json=action_body() if body is None else body,
        headers=bp_headers() if headers is None else headers,
        timeout=timeout,
    )


def start_session(sim: BugpilotSimulator) -> tuple[str, str]:
    """A successful action; returns (sessionInfoUrl, token)."""
    response = post_action(sim)
    assert response.status_code == 200, response.text
    return response.json()["sessionInfoUrl"], sim.tokens[-1]


def get_info(url: str, accept: str = "application/json") -> requests.Response:
    return requests.get(url, headers={"Accept": accept}, timeout=TIMEOUT, allow_redirects=False)


def assert_bp_error(response: requests.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert body["error_message"] == message
    assert isinstance(body["ts"], int)
    assert abs(body["ts"] - time.time() * 1000) < 60_000


def zd_auth(email: str = "agent@example.com", key: str = "zd-demo-token") -> str:
    raw = f"{email}/token:{key}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def put_comment(
    sim: ZendeskSimulator,
    ticket: str | int = 42,
    body: Any = None,
    auth: str | None = None,
    timeout: float = TIMEOUT,
) -> requests.Response:
    payload = {"ticket": {"comment": {"body": "hello", "public": False}}} if body is None else body
    headers = {"Authorization": zd_auth() if auth is None else auth}
    return requests.put(
        f"{sim.url}/api/v2/tickets/{ticket}.json", json=payload, headers=headers, timeout=timeout
    )


def get_comments(
    sim: ZendeskSimulator, ticket: str | int = 42, auth: str | None = None, **params: str
) -> requests.Response:
    headers = {"Authorization": zd_auth() if auth is None else auth}
    return requests.get(
        f"{sim.url}/api/v2/tickets/{ticket}/comments.json",
        params=params,
        headers=headers,
        timeout=TIMEOUT,
    )


# -- lifecycle -----------------------------------------------------------------------------


def test_lifecycle_binds_loopback_ephemeral_port_and_releases_it() -> None:
    sim = BugpilotSimulator()
    with pytest.raises(RuntimeError):
        _ = sim.url
    assert sim.start() is sim
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.url)
        assert sim.port > 0
        with pytest.raises(RuntimeError):
            sim.start()
        url = sim.url
    finally:
        sim.stop()
    sim.stop()  # idempotent
    assert not sim.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)


def test_context_manager_stops_zendesk() -> None:
    with ZendeskSimulator() as sim:
        url = sim.url
        assert sim.running
    assert not sim.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)


def test_two_simulators_get_distinct_ports() -> None:
    with BugpilotSimulator() as a, BugpilotSimulator() as b:
        assert a.port != b.port


# -- Bugpilot: action ----------------------------------------------------------------------


def test_action_success_issues_token_and_session_info_url(bugpilot: BugpilotSimulator) -> None:
    response = post_action(bugpilot, action_body(userProvidedDescription="It broke"))

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["message"] == "The request has been sent to the client"
    assert isinstance(body["ts"], int)
    [token] = bugpilot.tokens
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert body["sessionInfoUrl"] == f"{bugpilot.url}/api/v1/session-info/ws-demo/{token}"

    [recorded] = bugpilot.requests("action")
    assert isinstance(recorded, RecordedRequest)
    assert recorded.method == "POST"
    assert recorded.path == "/api/v1/action"
    assert recorded.headers["x-bugpilot-api-key"] == "ws-demo-key"
    assert recorded.headers["user-agent"] == UA
    assert recorded.json() == action_body(userProvidedDescription="It broke")


@pytest.mark.parametrize("action", ["show-recording-ui", "upload-screenshot", "upload-session"])
def test_every_documented_action_is_accepted(bugpilot: BugpilotSimulator, action: str) -> None:
    assert post_action(bugpilot, action_body(action=action)).status_code == 200


def test_each_success_gets_a_new_token(bugpilot: BugpilotSimulator) -> None:
    urls = {post_action(bugpilot).json()["sessionInfoUrl"] for _ in range(3)}
    assert len(urls) == 3
    assert len(set(bugpilot.tokens)) == 3


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
def test_action_rejects_missing_or_wrong_api_key(
    bugpilot: BugpilotSimulator, key: str | None
) -> None:
    response = post_action(bugpilot, headers=bp_headers(**{"X-Bugpilot-Api-Key": key}))
    assert_bp_error(
        response, 401, "INVALID_API_KEY", "Please verify that provided api key is valid"
    )
    assert bugpilot.tokens == []
    assert len(bugpilot.requests("action")) == 1  # failed calls are recorded too


@pytest.mark.parametrize("field", ["workspaceId", "userId", "action"])
def test_action_requires_each_field(bugpilot: BugpilotSimulator, field: str) -> None:
    body = action_body()
    del body[field]
    assert_bp_error(
        post_action(bugpilot, body), 400, "MISSING_FIELDS", "Required fields are missing"
    )


@pytest.mark.parametrize(
    "headers",
    [
        bp_headers(**{"User-Agent": None}),
        bp_headers(**{"User-Agent": "python-requests/2"}),
        bp_headers(**{"Content-Type": "text/plain"}),
    ],
    ids=["no-user-agent", "other-user-agent", "not-json-content-type"],
)
def test_action_requires_documented_headers(
    bugpilot: BugpilotSimulator, headers: dict[str, str]
) -> None:
    assert_bp_error(
        post_action(bugpilot, headers=headers), 400, "MISSING_FIELDS", "Required fields are missing"
    )


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"'])
def test_action_rejects_non_object_body(bugpilot: BugpilotSimulator, raw: bytes) -> None:
    response = requests.post(
        f"{bugpilot.url}/api/v1/action", data=raw, headers=bp_headers(), timeout=TIMEOUT
    )
    assert_bp_error(response, 400, "MISSING_FIELDS", "Required fields are missing")


def test_action_rejects_unknown_action(bugpilot: BugpilotSimulator) -> None:
    response = post_action(bugpilot, action_body(action="delete-everything"))
    assert_bp_error(response, 400, "INVALID_ACTION", "Please verify that provided action is valid")


def test_action_rejects_other_workspace(bugpilot: BugpilotSimulator) -> None:
    response = post_action(bugpilot, action_body(workspaceId="ws-other"))
    assert_bp_error(response, 403, "NO_ACCESS", "You don't have access to this resource")


def test_action_requires_connected_user(bugpilot: BugpilotSimulator) -> None:
    response = post_action(bugpilot, action_body(userId="u-offline"))
    assert_bp_error(response, 400, "USER_NOT_CONNECTED", "The user is not connected to Bugpilot")

    bugpilot.connect_user("u-offline")
    assert post_action(bugpilot, action_body(userId="u-offline")).status_code == 200
    bugpilot.disconnect_user("u-offline")
    assert post_action(bugpilot, action_body(userId="u-offline")).status_code == 400
    assert bugpilot.connected_users == {"u-1"}


def test_unknown_paths_and_methods_answer_not_found(bugpilot: BugpilotSimulator) -> None:
    for method, path in [
        ("GET", "/"),
        ("GET", "/api/v1/action"),
        ("POST", "/api/v1/other"),
        ("GET", "/api/v1/session-info/ws-demo"),
    ]:
        response = requests.request(method, bugpilot.url + path, timeout=TIMEOUT)
        assert response.status_code == 404, path
        assert response.json()["error"] == "NOT_FOUND"
        assert isinstance(response.json()["ts"], int)
    assert bugpilot.requests("action") == []
    assert len(bugpilot.requests()) == 4


# -- Bugpilot: scripted action failures ----------------------------------------------------


def test_scripted_internal_error_uses_documented_message(bugpilot: BugpilotSimulator) -> None:
    bugpilot.script("action", 500, "INTERNAL_ERROR")
    assert_bp_error(
        post_action(bugpilot),
        500,
        "INTERNAL_ERROR",
        "The request cannot be processed due to an internal error",
    )
    assert post_action(bugpilot).status_code == 200  # consumed


def test_scripted_failures_are_fifo_and_counted(bugpilot: BugpilotSimulator) -> None:
    bugpilot.script("action", 429, "RATE_LIMITED", times=2, retry_after=7)
    bugpilot.script("action", 400, "USER_NOT_CONNECTED")

    for _ in range(2):
        response = post_action(bugpilot)
        assert_bp_error(response, 429, "RATE_LIMITED", "Simulated error")
        assert response.headers["Retry-After"] == "7"
    response = post_action(bugpilot)
    assert_bp_error(response, 400, "USER_NOT_CONNECTED", "The user is not connected to Bugpilot")
    assert "Retry-After" not in response.headers
    assert post_action(bugpilot).status_code == 200
    assert len(bugpilot.requests("action")) == 4
    assert len(bugpilot.tokens) == 1


def test_scripted_failure_without_code_gets_a_default(bugpilot: BugpilotSimulator) -> None:
    bugpilot.script("action", 503)
    response = post_action(bugpilot)
    assert response.status_code == 503
    assert response.json()["error"] == "INTERNAL_ERROR"


def test_scripted_delay_provokes_client_timeout(bugpilot: BugpilotSimulator) -> None:
    bugpilot.script("action", 500, "INTERNAL_ERROR", delay=0.5)
    with pytest.raises(requests.Timeout):
        post_action(bugpilot, timeout=0.1)
    assert post_action(bugpilot).status_code == 200


def test_scripted_200_only_delays_the_real_answer(bugpilot: BugpilotSimulator) -> None:
    bugpilot.script("action", 200, delay=0.2)
    started = time.monotonic()
    response = post_action(bugpilot)
    assert time.monotonic() - started >= 0.19
    assert response.status_code == 200
    assert response.json()["ok"] is True


@pytest.mark.parametrize(
    ("status", "error", "times", "delay"),
    [(200, "X", 1, 0.0), (302, None, 1, 0.0), (500, None, 0, 0.0), (500, None, 1, -1.0)],
)
def test_invalid_scripts_are_refused(
    bugpilot: BugpilotSimulator, status: int, error: str | None, times: int, delay: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        bugpilot.script("action", status, error, times=times, delay=delay)


# -- Bugpilot: session info ----------------------------------------------------------------


def test_report_ready_after_one_not_found_poll_by_default(bugpilot: BugpilotSimulator) -> None:
    url, token = start_session(bugpilot)

    assert_bp_error(get_info(url), 404, "REPORT_NOT_FOUND", REPORT_NOT_FOUND_MESSAGE)
    response = get_info(url)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["reportUrl"].startswith("https://dash.bugpilot.io/report/")
    assert body["reportUrl"] == bugpilot.report_url(token)
    assert isinstance(body["ts"], int)
    assert get_info(url).json()["reportUrl"] == body["reportUrl"]  # stays ready

    [first, *_] = bugpilot.requests("session_info")
    assert first.method == "GET"
    assert first.path == f"/api/v1/session-info/ws-demo/{token}"
    assert "x-bugpilot-api-key" not in first.headers
    assert len(bugpilot.requests("session_info")) == 3


@pytest.mark.parametrize("polls", [0, 3])
def test_report_readiness_follows_reports_after_polls(polls: int) -> None:
    with BugpilotSimulator(reports_after_polls=polls) as sim:
        sim.connect_user("u-1")
        url, _ = start_session(sim)
        for _ in range(polls):
            assert get_info(url).status_code == 404
        assert get_info(url).status_code == 200


def test_report_never_ready_until_completed() -> None:
    with BugpilotSimulator(
        reports_after_polls=None, report_base_url="https://reports.test/r"
    ) as sim:
        sim.connect_user("u-1")
        url, token = start_session(sim)
        for _ in range(3):
            assert get_info(url).status_code == 404
        report_url = sim.complete_report(token)
        assert report_url.startswith("https://reports.test/r/")
        assert get_info(url).json()["reportUrl"] == report_url


def test_report_completes_itself_after_auto_complete_seconds() -> None:
    # Given a simulator whose reports complete on their own 0.3 s after the action (`make panel`)
    with BugpilotSimulator(reports_after_polls=None, auto_complete_seconds=0.3) as sim:
        sim.connect_user("u-1")
        url, token = start_session(sim)
        # Then the report is not found at first, however often it is asked for
        assert get_info(url).status_code == 404
        assert get_info(url).status_code == 404
        # And ready once the time has passed, with no call to complete_report
        time.sleep(0.35)
        assert get_info(url).json()["reportUrl"] == sim.report_url(token)


def test_auto_complete_is_off_by_default(bugpilot: BugpilotSimulator) -> None:
    assert bugpilot.auto_complete_seconds is None
    with pytest.raises(ValueError, match="auto_complete_seconds"):
        BugpilotSimulator(auto_complete_seconds=-1)


def test_cancelled_report_stays_not_found(bugpilot: BugpilotSimulator) -> None:
    url, token = start_session(bugpilot)
    bugpilot.cancel_report(token)
    for _ in range(4):
        assert_bp_error(get_info(url), 404, "REPORT_NOT_FOUND", REPORT_NOT_FOUND_MESSAGE)


def test_unknown_token_controls_raise(bugpilot: BugpilotSimulator) -> None:
    with pytest.raises(KeyError):
        bugpilot.complete_report("nope")
    with pytest.raises(KeyError):
        bugpilot.cancel_report("nope")


def test_html_clients_are_redirected_to_the_report(bugpilot: BugpilotSimulator) -> None:
    url, token = start_session(bugpilot)
    report_url = bugpilot.complete_report(token)

    response = get_info(url, accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 302
    assert response.headers["Location"] == report_url


@pytest.mark.parametrize(
    "path",
    ["/api/v1/session-info/ws-demo/unknown-token", "/api/v1/session-info/ws-other/{token}"],
)
def test_unknown_workspace_or_token_is_invalid(bugpilot: BugpilotSimulator, path: str) -> None:
    _, token = start_session(bugpilot)
    response = get_info(bugpilot.url + path.format(token=token))
    assert_bp_error(response, 400, "INVALID_SESSION_TOKEN", "Invalid workspace or session token")


def test_scripted_session_info_failures_do_not_count_as_polls(
    bugpilot: BugpilotSimulator,
) -> None:
    url, _ = start_session(bugpilot)
    bugpilot.script("session_info", 500, "INTERNAL_ERROR", times=2)
    bugpilot.script("session_info", 200, delay=0.5)

    for _ in range(2):
        assert get_info(url).status_code == 500
    # A delay-only entry still processes the poll (answering 404, late): the report is now due.
    with pytest.raises(requests.Timeout):
        requests.get(url, timeout=0.1)
    assert get_info(url).status_code == 200
    assert len(bugpilot.requests("session_info")) == 4


# -- Bugpilot: thread safety ---------------------------------------------------------------


def test_concurrent_actions_are_all_recorded(bugpilot: BugpilotSimulator) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: post_action(bugpilot).status_code, range(30)))

    assert statuses == [200] * 30
    assert len(bugpilot.requests("action")) == 30
    assert len(set(bugpilot.tokens)) == 30


# -- Zendesk: update -----------------------------------------------------------------------


def test_update_adds_a_private_comment(zendesk: ZendeskSimulator) -> None:
    response = put_comment(zendesk, 42, {"ticket": {"comment": {"body": "hi", "public": False}}})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ticket"]["id"] == 42
    assert body["audit"]["ticket_id"] == 42
    [event] = body["audit"]["events"]
    assert event["type"] == "Comment"
    assert event["body"] == "hi"
    assert event["public"] is False

    [comment] = zendesk.comments(42)
    assert comment["body"] == "hi"
    assert comment["public"] is False
    assert comment["type"] == "Comment"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", comment["created_at"])
    assert zendesk.comments("42") == [comment]

    [recorded] = zendesk.requests("update")
    assert recorded.method == "PUT"
    assert recorded.path == "/api/v2/tickets/42.json"
    assert recorded.headers["authorization"] == zd_auth()
    assert recorded.json() == {"ticket": {"comment": {"body": "hi", "public": False}}}


def test_comments_returns_copies_oldest_first(zendesk: ZendeskSimulator) -> None:
    for text in ("one", "two"):
        assert put_comment(zendesk, 7, {"ticket": {"comment": {"body": text}}}).ok
    comments = zendesk.comments(7)
    assert [c["body"] for c in comments] == ["one", "two"]
    assert comments[0]["public"] is True  # Zendesk's default
    comments[0]["body"] = "mutated"
    assert zendesk.comments(7)[0]["body"] == "one"
    assert zendesk.comments(8) == []


@pytest.mark.parametrize(
    "auth",
    [
        "",
        zd_auth(key="wrong"),
        zd_auth(email="other@example.com"),
        "Basic !!!not-base64!!!",
        "Bearer zd-demo-token",
    ],
)
def test_update_rejects_bad_auth(zendesk: ZendeskSimulator, auth: str) -> None:
    response = put_comment(zendesk, auth=auth)
    assert response.status_code == 401
    assert response.json() == {"error": "Couldn't authenticate you"}
    assert zendesk.comments(42) == []


def test_update_of_unknown_ticket_is_not_found() -> None:
    with ZendeskSimulator(known_tickets={"42"}) as sim:
        assert put_comment(sim, 42).status_code == 200
        for ticket in ("43", "abc"):
            response = put_comment(sim, ticket)
            assert response.status_code == 404
            assert response.json() == {"error": "RecordNotFound", "description": "Not found"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ticket": {}},
        {"ticket": {"comment": {}}},
        {"ticket": {"comment": {"body": "  "}}},
        {"ticket": {"comment": "text"}},
        {"ticket": {"comment": {"body": "x", "public": "no"}}},
        ["not", "an", "object"],
    ],
)
def test_update_without_comment_body_is_invalid(zendesk: ZendeskSimulator, body: Any) -> None:
    response = put_comment(zendesk, body=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == "RecordInvalid"
    assert payload["description"] == "Record validation errors"
    assert isinstance(payload["details"], dict)


def test_update_with_non_json_body_is_invalid(zendesk: ZendeskSimulator) -> None:
    response = requests.put(
        f"{zendesk.url}/api/v2/tickets/42.json",
        data=b"not json",
        headers={"Authorization": zd_auth(), "Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 422


def test_comment_limit_is_enforced() -> None:
    assert ZendeskSimulator().comment_limit == 5000
    with ZendeskSimulator(comment_limit=2) as sim:
        assert put_comment(sim).status_code == 200
        assert put_comment(sim).status_code == 200
        response = put_comment(sim)
        assert response.status_code == 422
        assert response.json()["error"] == "RecordInvalid"
        assert len(sim.comments(42)) == 2


# -- Zendesk: comment listing --------------------------------------------------------------


def test_list_comments_in_both_orders(zendesk: ZendeskSimulator) -> None:
    for text in ("a", "b", "c"):
        put_comment(zendesk, 5, {"ticket": {"comment": {"body": text, "public": False}}})

    asc = get_comments(zendesk, 5)
    assert asc.status_code == 200
    body = asc.json()
    assert [c["body"] for c in body["comments"]] == ["a", "b", "c"]
    assert body["count"] == 3
    assert body["next_page"] is None
    assert body["previous_page"] is None
    ids = [c["id"] for c in body["comments"]]
    assert ids == sorted(ids)
    for comment in body["comments"]:
        assert comment["type"] == "Comment"
        assert comment["public"] is False
        assert comment["created_at"].endswith("Z")

    desc = get_comments(zendesk, 5, sort_order="desc").json()
    assert [c["body"] for c in desc["comments"]] == ["c", "b", "a"]
    assert get_comments(zendesk, 5, sort_order="asc").json()["comments"] == body["comments"]

    assert get_comments(zendesk, 6).json() == {
        "comments": [],
        "next_page": None,
        "previous_page": None,
        "count": 0,
    }
    assert [r.query for r in zendesk.requests("comments")] == [
        {},
        {"sort_order": "desc"},
        {"sort_order": "asc"},
        {},
    ]


def test_list_comments_auth_and_unknown_ticket() -> None:
    with ZendeskSimulator(known_tickets={"1"}) as sim:
        unauthorised = get_comments(sim, 1, auth=zd_auth(key="nope"))
        assert unauthorised.status_code == 401
        assert unauthorised.json() == {"error": "Couldn't authenticate you"}
        missing = get_comments(sim, 2)
        assert missing.status_code == 404
        assert missing.json()["error"] == "RecordNotFound"
        assert get_comments(sim, 1).status_code == 200


def test_zendesk_unknown_endpoint(zendesk: ZendeskSimulator) -> None:
    response = requests.get(f"{zendesk.url}/api/v2/users.json", timeout=TIMEOUT)
    assert response.status_code == 404
    assert zendesk.requests("update") == []
    assert zendesk.requests("comments") == []


# -- Zendesk: scripted failures ------------------------------------------------------------


def test_scripted_rate_limit_then_success(zendesk: ZendeskSimulator) -> None:
    zendesk.script("update", 429, times=2, retry_after=3)

    for _ in range(2):
        response = put_comment(zendesk)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json() == {"error": "TooManyRequests"}
    assert put_comment(zendesk).status_code == 200
    assert len(zendesk.requests("update")) == 3
    assert len(zendesk.comments(42)) == 1  # throttled calls did not write


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, "InternalServerError"), (502, "BadGateway"), (503, "ServiceUnavailable")],
)
def test_scripted_server_errors(zendesk: ZendeskSimulator, status: int, error: str) -> None:
    zendesk.script("update", status)
    response = put_comment(zendesk)
    assert response.status_code == status
    assert response.json() == {"error": error}
    assert "Retry-After" not in response.headers
    assert zendesk.comments(42) == []


def test_scripted_update_delay_provokes_client_timeout(zendesk: ZendeskSimulator) -> None:
    zendesk.script("update", 503, delay=0.5)
    with pytest.raises(requests.Timeout):
        put_comment(zendesk, timeout=0.1)
    assert put_comment(zendesk).status_code == 200


def test_scripted_comment_listing_failure(zendesk: ZendeskSimulator) -> None:
    zendesk.script("comments", 429, times=1)
    zendesk.script("comments", 500)
    assert get_comments(zendesk).status_code == 429
    assert get_comments(zendesk).status_code == 500
    assert get_comments(zendesk).status_code == 200


# -- Zendesk: thread safety ----------------------------------------------------------------


def test_concurrent_updates_keep_every_comment(zendesk: ZendeskSimulator) -> None:
    def send(i: int) -> int:
        body = {"ticket": {"comment": {"body": f"c{i}", "public": False}}}
        return put_comment(zendesk, 9, body).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(send, range(30)))

    assert statuses == [200] * 30
    comments = zendesk.comments(9)
    assert sorted(c["body"] for c in comments) == sorted(f"c{i}" for i in range(30))
    assert len({c["id"] for c in comments}) == 30
    assert len(zendesk.requests("update")) == 30
