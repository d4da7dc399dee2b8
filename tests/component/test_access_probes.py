"""Each integration's read-only access probe, over real HTTP against its simulator."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from capture_bridge.access import Access, AccessCheck
from capture_bridge.capture import bugpilot, lambdatest, notte
from capture_bridge.helpdesks import zendesk
from capture_bridge.http import HttpClient
from capture_bridge.settings import Settings, settings_from
from local_runner.simulators import (
    BugpilotSimulator,
    LambdaTestSimulator,
    NotteSimulator,
    ZendeskSimulator,
)

TABLE = "sessions"
ZENDESK_EMAIL = "agent@example.com"
ZENDESK_TOKEN = "zd-probe-token"
WORKSPACE = "ws-probe"
BUGPILOT_KEY = "ws-probe-key"
LT_USER = "lt-probe"
LT_KEY = "lt-probe-key"
NOTTE_KEY = "sk-notte-probe"
WRONG = "wrong-credential"

Probe = Callable[[Settings, HttpClient], AccessCheck]


def settings(**values: str) -> Settings:
    return settings_from({"TABLE_NAME": TABLE, **values})


@pytest.fixture
def http() -> HttpClient:
    return HttpClient(pool_size=1)


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def zendesk_sim() -> Iterator[ZendeskSimulator]:
    with ZendeskSimulator(email=ZENDESK_EMAIL, api_token=ZENDESK_TOKEN) as simulator:
        yield simulator


@pytest.fixture
def bugpilot_sim() -> Iterator[BugpilotSimulator]:
    with BugpilotSimulator(workspace_id=WORKSPACE, api_key=BUGPILOT_KEY) as simulator:
        yield simulator


@pytest.fixture
def lambdatest_sim() -> Iterator[LambdaTestSimulator]:
    with LambdaTestSimulator(username=LT_USER, access_key=LT_KEY) as simulator:
        yield simulator


@pytest.fixture
def notte_sim() -> Iterator[NotteSimulator]:
    with NotteSimulator(api_key=NOTTE_KEY) as simulator:
        yield simulator


def zendesk_settings(url: str, token: str = ZENDESK_TOKEN) -> Settings:
    return settings(ZENDESK_API_URL=url, ZENDESK_EMAIL=ZENDESK_EMAIL, ZENDESK_API_TOKEN=token)


def lambdatest_settings(url: str, key: str = LT_KEY) -> Settings:
    return settings(LAMBDATEST_API_URL=url, LAMBDATEST_USERNAME=LT_USER, LAMBDATEST_ACCESS_KEY=key)


def notte_settings(url: str, key: str = NOTTE_KEY) -> Settings:
    return settings(NOTTE_API_URL=url, NOTTE_API_KEY=key)


def bugpilot_settings(url: str) -> Settings:
    return settings(
        BUGPILOT_API_URL=url, BUGPILOT_WORKSPACE_ID=WORKSPACE, BUGPILOT_API_KEY=BUGPILOT_KEY
    )


# -- Zendesk -------------------------------------------------------------------------------


def test_zendesk_ok_names_the_role(zendesk_sim: ZendeskSimulator, http: HttpClient) -> None:
    # given the right token, when probed, then ok as an admin, with one GET of Show Self
    check = zendesk.probe(zendesk_settings(zendesk_sim.url), http)
    assert check.access is Access.OK
    assert "signed in as admin" in check.detail
    [read] = zendesk_sim.requests("me")
    assert read.method == "GET"


def test_zendesk_wrong_token_is_rejected(zendesk_sim: ZendeskSimulator, http: HttpClient) -> None:
    check = zendesk.probe(zendesk_settings(zendesk_sim.url, WRONG), http)
    assert check.access is Access.REJECTED
    assert check.is_problem
    assert WRONG not in check.detail


def test_zendesk_end_user_token_is_rejected(
    zendesk_sim: ZendeskSimulator, http: HttpClient
) -> None:
    # given a token of an end user, who cannot write internal notes
    zendesk_sim.api_user_role = "end-user"
    check = zendesk.probe(zendesk_settings(zendesk_sim.url), http)
    assert check.access is Access.REJECTED
    assert "agent or admin" in check.detail


def test_zendesk_rate_limit_is_not_a_problem(
    zendesk_sim: ZendeskSimulator, http: HttpClient
) -> None:
    zendesk_sim.script("me", 429, retry_after=30)
    check = zendesk.probe(zendesk_settings(zendesk_sim.url), http)
    assert check.access is Access.RATE_LIMITED
    assert not check.is_problem


def test_zendesk_not_configured_names_what_is_missing(http: HttpClient) -> None:
    check = zendesk.probe(settings(), http)
    assert check.access is Access.NOT_CONFIGURED
    assert "ZENDESK_SUBDOMAIN (or ZENDESK_API_URL)" in check.detail


# -- Bugpilot ------------------------------------------------------------------------------


def test_bugpilot_reachable_but_unverifiable(
    bugpilot_sim: BugpilotSimulator, http: HttpClient
) -> None:
    # given a reachable Bugpilot, when probed, then it only proves reachability, capturing nothing
    check = bugpilot.probe(bugpilot_settings(bugpilot_sim.url), http)
    assert check.access is Access.UNVERIFIED
    assert not check.is_problem
    assert bugpilot_sim.requests("action") == []
    [read] = bugpilot_sim.requests("session_info")
    assert read.route == f"/api/v1/session-info/{WORKSPACE}/{bugpilot.PROBE_TOKEN}"


def test_bugpilot_rate_limited_and_failing(
    bugpilot_sim: BugpilotSimulator, http: HttpClient
) -> None:
    bugpilot_sim.script("session_info", 429)
    assert bugpilot.probe(bugpilot_settings(bugpilot_sim.url), http).access is Access.RATE_LIMITED
    bugpilot_sim.script("session_info", 500)
    assert bugpilot.probe(bugpilot_settings(bugpilot_sim.url), http).access is Access.FAILED


# -- LambdaTest and Notte ------------------------------------------------------------------


def test_lambdatest_ok_rejected_and_rate_limited(
    lambdatest_sim: LambdaTestSimulator, http: HttpClient
) -> None:
    assert lambdatest.probe(lambdatest_settings(lambdatest_sim.url), http).access is Access.OK
    [listing] = lambdatest_sim.requests("list")
    assert listing.query == {"limit": "1"}
    rejected = lambdatest.probe(lambdatest_settings(lambdatest_sim.url, WRONG), http)
    assert rejected.access is Access.REJECTED
    lambdatest_sim.script("list", 429)
    limited = lambdatest.probe(lambdatest_settings(lambdatest_sim.url), http)
    assert limited.access is Access.RATE_LIMITED


def test_notte_ok_rejected_and_rate_limited(notte_sim: NotteSimulator, http: HttpClient) -> None:
    notte_sim.add_session(status="closed")
    assert notte.probe(notte_settings(notte_sim.url), http).access is Access.OK
    [listing] = notte_sim.requests("list")
    assert listing.query == {"only_active": "false", "page": "1", "page_size": "1"}
    assert notte.probe(notte_settings(notte_sim.url, WRONG), http).access is Access.REJECTED
    notte_sim.script("list", 429)
    assert notte.probe(notte_settings(notte_sim.url), http).access is Access.RATE_LIMITED


def test_lambdatest_partly_configured_names_the_missing_setting(http: HttpClient) -> None:
    check = lambdatest.probe(settings(LAMBDATEST_ACCESS_KEY=LT_KEY), http)
    assert check.access is Access.NOT_CONFIGURED
    assert check.detail == "not set: LAMBDATEST_USERNAME"


# -- every probe: a closed port is unreachable ---------------------------------------------


@pytest.mark.parametrize(
    ("probe", "configured"),
    [
        (zendesk.probe, zendesk_settings),
        (bugpilot.probe, bugpilot_settings),
        (lambdatest.probe, lambdatest_settings),
        (notte.probe, notte_settings),
    ],
)
def test_a_closed_port_is_unreachable(
    probe: Probe, configured: Callable[[str], Settings], closed_url: str, http: HttpClient
) -> None:
    check = probe(configured(closed_url), http)
    assert check.access is Access.UNREACHABLE
    assert check.is_problem
