"""The LambdaTest Automation API simulator speaks the documented sessions contract."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests

from local_runner.simulators import RecordedRequest
from local_runner.simulators.lambdatest import LambdaTestSimulator

TIMEOUT = 2.0
USERNAME = "lt-demo"
ACCESS_KEY = "lt-demo-key"
SESSION_ID = "bc02fd99593f14e37850745d66197f89"
OTHER_SESSION_ID = "e7f2d78de1a8822c98e91e49428d0569"
UNKNOWN_SESSION_ID = "00000000000000000000000000000000"
ACCESS_DENIED = "HTTP Basic: Access denied."
SESSION_NOT_FOUND = {"message": "Either resource not found or already deleted", "status": "fail"}
TEST_ID_PATTERN = r"[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}"
TIMESTAMP_PATTERN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
SHARE_URL_PATTERN = r"https://automation\.lambdatest\.com/share\?shareId=[0-9a-f]+"
SESSION_FIELDS = [
    "test_id",
    "build_id",
    "name",
    "user_id",
    "username",
    "duration",
    "platform",
    "browser",
    "browser_version",
    "device",
    "status_ind",
    "session_id",
    "build_name",
    "create_timestamp",
    "start_timestamp",
    "end_timestamp",
    "remark",
    "console_logs_url",
    "network_logs_url",
    "command_logs_url",
    "selenium_logs_url",
    "screenshot_url",
    "video_url",
    "customData",
]


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def lambdatest() -> Iterator[LambdaTestSimulator]:
    with LambdaTestSimulator() as sim:
        sim.add_session(SESSION_ID)
        yield sim


def basic(username: str = USERNAME, key: str = ACCESS_KEY) -> str:
    return "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()


def get(
    sim: LambdaTestSimulator,
    path: str,
    auth: str | None = None,
    timeout: float = TIMEOUT,
    **params: str,
) -> requests.Response:
    headers = {"Authorization": basic() if auth is None else auth}
    return requests.get(
        f"{sim.url}/automation/api/v1{path}", params=params, headers=headers, timeout=timeout
    )


def get_session(
    sim: LambdaTestSimulator,
    session_id: str = SESSION_ID,
    auth: str | None = None,
    timeout: float = TIMEOUT,
    **params: str,
) -> requests.Response:
    return get(sim, f"/sessions/{session_id}", auth, timeout, **params)


def get_video(
    sim: LambdaTestSimulator,
    session_id: str = SESSION_ID,
    auth: str | None = None,
    timeout: float = TIMEOUT,
) -> requests.Response:
    return get(sim, f"/sessions/{session_id}/video", auth, timeout)


def assert_fail(response: requests.Response, status: int, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "fail"
    assert isinstance(body["message"], str)
    if message is not None:
        assert body["message"] == message


def assert_access_denied(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == ACCESS_DENIED
    assert response.headers["WWW-Authenticate"].startswith("Basic")


# -- lifecycle -----------------------------------------------------------------------------


def test_lifecycle_binds_loopback_and_releases_the_port() -> None:
    # given a simulator that is not started
    sim = LambdaTestSimulator()
    with pytest.raises(RuntimeError):
        _ = sim.url

    # when it runs inside a with block
    with sim:
        url = sim.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert sim.running

    # then it no longer serves
    assert not sim.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)


# -- session details -----------------------------------------------------------------------


def test_running_session_has_the_documented_shape(lambdatest: LambdaTestSimulator) -> None:
    # given a running session (the fixture)
    # when its details are fetched
    response = get_session(lambdatest)

    # then the body is the documented envelope with every documented field
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"data", "message", "status"}
    assert body["message"] == "Retrieve session was successful"
    assert body["status"] == "success"
    data = body["data"]
    assert list(data) == SESSION_FIELDS
    assert "public_url" not in data
    assert re.fullmatch(TEST_ID_PATTERN, data["test_id"])
    assert data["test_id"] == lambdatest.test_id(SESSION_ID)
    assert isinstance(data["build_id"], int)
    assert isinstance(data["user_id"], int)
    assert data["session_id"] == SESSION_ID
    assert data["username"] == USERNAME
    assert data["status_ind"] == "running"
    assert data["name"] == "checkout flow"
    assert data["build_name"] == "nightly-build"
    assert (data["browser"], data["browser_version"], data["platform"]) == (
        "chrome",
        "120.0",
        "win10",
    )
    assert data["duration"] == 0
    assert data["remark"] == ""
    assert re.fullmatch(TIMESTAMP_PATTERN, data["create_timestamp"])
    assert re.fullmatch(TIMESTAMP_PATTERN, data["start_timestamp"])
    assert data["end_timestamp"] is None
    assert data["customData"] == {}
    assert data["video_url"] == lambdatest.video_url(SESSION_ID)
    assert data["screenshot_url"].startswith("https://")


def test_log_urls_point_at_the_simulator(lambdatest: LambdaTestSimulator) -> None:
    # when the session details are fetched
    data = get_session(lambdatest).json()["data"]

    # then each log URL is this simulator's own log route for the session
    base = f"{lambdatest.url}/automation/api/v1/sessions/{SESSION_ID}/log"
    for kind in ("console", "network", "command", "selenium"):
        assert data[f"{kind}_logs_url"] == f"{base}/{kind}"


def test_custom_session_attributes_are_reported() -> None:
    with LambdaTestSimulator(username="alice", access_key="k-1") as sim:
        # given a session registered with non-default attributes
        sim.add_session(
            SESSION_ID,
            status="queued",
            name="login",
            build_name="release-7",
            remark="waiting",
            browser="firefox",
            browser_version="121.0",
            platform="macos sonoma",
            duration=12,
            has_video=False,
        )

        # when fetched with that account's credentials
        response = get_session(sim, auth=basic("alice", "k-1"))

        # then they are reported as given
        data = response.json()["data"]
        assert data["status_ind"] == "queued"
        assert data["name"] == "login"
        assert data["build_name"] == "release-7"
        assert data["remark"] == "waiting"
        assert (data["browser"], data["browser_version"], data["platform"]) == (
            "firefox",
            "121.0",
            "macos sonoma",
        )
        assert data["duration"] == 12
        assert data["username"] == "alice"
        assert data["video_url"] == ""


def test_sessions_of_one_build_share_its_build_id(lambdatest: LambdaTestSimulator) -> None:
    # given a second session in the same build and a third in another build
    lambdatest.add_session(OTHER_SESSION_ID)
    lambdatest.add_session("third", build_name="other-build")

    # when all three are fetched
    first, second, third = (
        get_session(lambdatest, sid).json()["data"]
        for sid in (SESSION_ID, OTHER_SESSION_ID, "third")
    )

    # then build ids follow build names and test ids are distinct
    assert first["build_id"] == second["build_id"] != third["build_id"]
    assert len({first["test_id"], second["test_id"], third["test_id"]}) == 3


def test_finish_session_reports_the_final_state(lambdatest: LambdaTestSimulator) -> None:
    # given the session finishes
    lambdatest.finish_session(SESSION_ID)

    # when its details are fetched
    data = get_session(lambdatest).json()["data"]

    # then the final status, remark, duration and end time are reported
    assert data["status_ind"] == "failed"
    assert data["remark"] == "Assertion failed: cart total"
    assert data["duration"] == 95
    assert re.fullmatch(TIMESTAMP_PATTERN, data["end_timestamp"])
    ended = datetime.strptime(data["end_timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(ended.timestamp() - time.time()) < 60


def test_finish_session_accepts_any_final_status(lambdatest: LambdaTestSimulator) -> None:
    lambdatest.finish_session(SESSION_ID, status="passed", remark="all good", duration=3)
    data = get_session(lambdatest).json()["data"]
    assert (data["status_ind"], data["remark"], data["duration"]) == ("passed", "all good", 3)


def test_unknown_session_is_not_found(lambdatest: LambdaTestSimulator) -> None:
    response = get_session(lambdatest, UNKNOWN_SESSION_ID)
    assert_fail(response, 404)
    assert response.json() == SESSION_NOT_FOUND
    assert len(lambdatest.requests("session")) == 1


def test_session_is_looked_up_by_session_id_not_test_id(lambdatest: LambdaTestSimulator) -> None:
    test_id = lambdatest.test_id(SESSION_ID)
    assert get_session(lambdatest, test_id).json() == SESSION_NOT_FOUND


def test_controls_refuse_unknown_and_duplicate_sessions(lambdatest: LambdaTestSimulator) -> None:
    with pytest.raises(KeyError):
        lambdatest.finish_session(UNKNOWN_SESSION_ID)
    with pytest.raises(KeyError):
        lambdatest.video_url(UNKNOWN_SESSION_ID)
    with pytest.raises(KeyError):
        lambdatest.view_video_url(UNKNOWN_SESSION_ID)
    with pytest.raises(ValueError, match="already exists"):
        lambdatest.add_session(SESSION_ID)
    with pytest.raises(ValueError, match="empty"):
        lambdatest.add_session("")


# -- shareExpiryLimit ----------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["3", "7", "10", "30"])
def test_share_expiry_limit_adds_a_public_url(lambdatest: LambdaTestSimulator, limit: str) -> None:
    # when the details are fetched with a valid shareExpiryLimit
    response = get_session(lambdatest, shareExpiryLimit=limit)

    # then a share link is included, stable across calls with the same limit
    assert response.status_code == 200, response.text
    public_url = response.json()["data"]["public_url"]
    assert re.fullmatch(SHARE_URL_PATTERN, public_url)
    again = get_session(lambdatest, shareExpiryLimit=limit).json()["data"]["public_url"]
    assert again == public_url
    [recorded, _] = lambdatest.requests("session")
    assert recorded.query == {"shareExpiryLimit": limit}


def test_share_links_differ_per_limit_and_per_session(lambdatest: LambdaTestSimulator) -> None:
    lambdatest.add_session(OTHER_SESSION_ID)
    urls = {
        get_session(lambdatest, sid, shareExpiryLimit=limit).json()["data"]["public_url"]
        for sid in (SESSION_ID, OTHER_SESSION_ID)
        for limit in ("3", "30")
    }
    assert len(urls) == 4


def test_unshareable_session_gets_no_public_url(lambdatest: LambdaTestSimulator) -> None:
    lambdatest.add_session(OTHER_SESSION_ID, shareable=False)
    response = get_session(lambdatest, OTHER_SESSION_ID, shareExpiryLimit="7")
    assert response.status_code == 200
    assert "public_url" not in response.json()["data"]


@pytest.mark.parametrize("limit", ["", "0", "1", "5", "31", "abc", "7.0", " 7"])
def test_invalid_share_expiry_limit_is_a_bad_request(
    lambdatest: LambdaTestSimulator, limit: str
) -> None:
    assert_fail(get_session(lambdatest, shareExpiryLimit=limit), 400)


# -- video ---------------------------------------------------------------------------------


def test_video_returns_the_mp4_and_viewer_urls(lambdatest: LambdaTestSimulator) -> None:
    # when the video of the session is fetched
    response = get_video(lambdatest)

    # then both URLs are returned in the documented envelope
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "message": "Retrieve video url was successful",
        "status": "success",
        "url": lambdatest.video_url(SESSION_ID),
        "view_video_url": lambdatest.view_video_url(SESSION_ID),
    }
    assert re.fullmatch(r"https://\S+\.mp4", body["url"])
    test_id = lambdatest.test_id(SESSION_ID)
    assert re.fullmatch(
        rf"https://automation\.lambdatest\.com/public/video\?testID={test_id}&token=[0-9a-f]+",
        body["view_video_url"],
    )
    [recorded] = lambdatest.requests("video")
    assert recorded.method == "GET"
    assert recorded.path == f"/automation/api/v1/sessions/{SESSION_ID}/video"
    assert lambdatest.requests("session") == []


def test_video_is_not_found_for_unknown_session_or_missing_video(
    lambdatest: LambdaTestSimulator,
) -> None:
    lambdatest.add_session(OTHER_SESSION_ID, has_video=False)
    assert get_video(lambdatest, UNKNOWN_SESSION_ID).json() == SESSION_NOT_FOUND
    assert_fail(get_video(lambdatest, OTHER_SESSION_ID), 404)
    assert get_video(lambdatest).status_code == 200
    assert len(lambdatest.requests("video")) == 3


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        "",
        basic(key="wrong"),
        basic(username="other"),
        basic(key=f"{ACCESS_KEY}x"),
        "Basic !!!not-base64!!!",
        f"Bearer {ACCESS_KEY}",
        "Basic " + base64.b64encode(ACCESS_KEY.encode()).decode(),
    ],
)
def test_bad_credentials_are_denied(lambdatest: LambdaTestSimulator, auth: str) -> None:
    assert_access_denied(get_session(lambdatest, auth=auth))
    assert_access_denied(get_video(lambdatest, auth=auth))
    assert len(lambdatest.requests("session")) == 1  # denied calls are recorded too
    assert len(lambdatest.requests("video")) == 1


def test_missing_credentials_are_denied_even_for_unknown_sessions(
    lambdatest: LambdaTestSimulator,
) -> None:
    response = requests.get(
        f"{lambdatest.url}/automation/api/v1/sessions/{UNKNOWN_SESSION_ID}", timeout=TIMEOUT
    )
    assert_access_denied(response)
    [recorded] = lambdatest.requests("session")
    assert "authorization" not in recorded.headers


def test_credentials_are_recorded_as_sent(lambdatest: LambdaTestSimulator) -> None:
    get_session(lambdatest)
    [recorded] = lambdatest.requests("session")
    assert isinstance(recorded, RecordedRequest)
    assert recorded.path == f"/automation/api/v1/sessions/{SESSION_ID}"
    assert recorded.headers["authorization"] == basic()


# -- routing -------------------------------------------------------------------------------


def test_other_routes_and_methods_answer_not_found(lambdatest: LambdaTestSimulator) -> None:
    # given requests to routes the simulator does not serve
    cases = [
        ("GET", "/"),
        ("GET", "/automation/api/v1/sessions/"),
        ("GET", f"/automation/api/v1/sessions/{SESSION_ID}/"),
        ("GET", f"/automation/api/v1/sessions/{SESSION_ID}/log/console"),
        ("GET", f"/automation/api/v1/sessions/{SESSION_ID}/screenshots"),
        ("GET", f"/automation/api/v2/sessions/{SESSION_ID}"),
        ("PATCH", f"/automation/api/v1/sessions/{SESSION_ID}"),
        ("DELETE", f"/automation/api/v1/sessions/{SESSION_ID}"),
        ("POST", f"/automation/api/v1/sessions/{SESSION_ID}/video"),
    ]

    # when each is sent with valid credentials
    for method, path in cases:
        response = requests.request(
            method, lambdatest.url + path, headers={"Authorization": basic()}, timeout=TIMEOUT
        )

        # then each answers 404 JSON and none counts as a session or video call
        assert_fail(response, 404)
    assert lambdatest.requests("session") == []
    assert lambdatest.requests("video") == []
    assert len(lambdatest.requests()) == len(cases)


def test_url_encoded_session_ids_are_decoded() -> None:
    with LambdaTestSimulator() as sim:
        sim.add_session("a b")
        response = get_session(sim, "a%20b")
        assert response.status_code == 200, response.text
        assert response.json()["data"]["session_id"] == "a b"
        assert response.json()["data"]["console_logs_url"].endswith("/sessions/a%20b/log/console")


# -- scripted failures ---------------------------------------------------------------------


def test_scripted_session_failures_are_fifo_and_then_consumed(
    lambdatest: LambdaTestSimulator,
) -> None:
    # given two throttled answers then one server error
    lambdatest.script("session", 429, "Too many requests", times=2, retry_after=7)
    lambdatest.script("session", 500)

    # when the session is fetched four times
    for _ in range(2):
        response = get_session(lambdatest)
        assert_fail(response, 429, "Too many requests")
        assert response.headers["Retry-After"] == "7"
    response = get_session(lambdatest)

    # then the scripted answers come in order, then the real one
    assert_fail(response, 500, "Internal Server Error")
    assert "Retry-After" not in response.headers
    assert get_session(lambdatest).status_code == 200
    assert len(lambdatest.requests("session")) == 4


@pytest.mark.parametrize(
    ("status", "message"),
    [(429, "Too Many Requests"), (502, "Bad Gateway"), (503, "Service Unavailable")],
)
def test_scripted_failure_without_message_gets_the_status_phrase(
    lambdatest: LambdaTestSimulator, status: int, message: str
) -> None:
    lambdatest.script("video", status, retry_after=3)
    response = get_video(lambdatest)
    assert_fail(response, status, message)
    assert response.headers["Retry-After"] == "3"


def test_scripted_401_and_404_use_the_documented_bodies(lambdatest: LambdaTestSimulator) -> None:
    lambdatest.script("session", 401)
    lambdatest.script("session", 404)
    assert_access_denied(get_session(lambdatest))
    assert get_session(lambdatest).json() == SESSION_NOT_FOUND
    assert get_session(lambdatest).status_code == 200


def test_scripted_failures_apply_before_authentication(lambdatest: LambdaTestSimulator) -> None:
    lambdatest.script("session", 503)
    assert_fail(get_session(lambdatest, auth=basic(key="wrong")), 503)


def test_session_and_video_scripts_are_independent(lambdatest: LambdaTestSimulator) -> None:
    lambdatest.script("video", 500)
    assert get_session(lambdatest).status_code == 200
    assert get_video(lambdatest).status_code == 500
    assert get_video(lambdatest).status_code == 200


def test_scripted_delay_provokes_a_client_timeout(lambdatest: LambdaTestSimulator) -> None:
    lambdatest.script("session", 500, delay=0.5)
    with pytest.raises(requests.Timeout):
        get_session(lambdatest, timeout=0.1)
    assert get_session(lambdatest).status_code == 200


def test_scripted_200_only_delays_the_real_answer(lambdatest: LambdaTestSimulator) -> None:
    lambdatest.script("video", 200, delay=0.2, retry_after=1)
    started = time.monotonic()
    response = get_video(lambdatest)
    assert time.monotonic() - started >= 0.19
    assert response.status_code == 200
    assert response.json()["url"] == lambdatest.video_url(SESSION_ID)
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("status", "error", "times", "delay"),
    [(200, "X", 1, 0.0), (302, None, 1, 0.0), (500, None, 0, 0.0), (500, None, 1, -1.0)],
)
def test_invalid_scripts_are_refused(
    lambdatest: LambdaTestSimulator, status: int, error: str | None, times: int, delay: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        lambdatest.script("session", status, error, times=times, delay=delay)
    with pytest.raises(ValueError, match="must be"):
        lambdatest.script("video", status, error, times=times, delay=delay)


# -- thread safety -------------------------------------------------------------------------


def test_concurrent_reads_are_all_answered_and_recorded(lambdatest: LambdaTestSimulator) -> None:
    def fetch(i: int) -> int:
        call = get_session if i % 2 else get_video
        return call(lambdatest).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(fetch, range(30)))

    assert statuses == [200] * 30
    assert len(lambdatest.requests("session")) == 15
    assert len(lambdatest.requests("video")) == 15
    assert len(lambdatest.requests()) == 30
