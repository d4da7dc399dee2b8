"""The Notte HTTP simulator speaks the documented Sessions API contract."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from local_runner.simulators import RecordedRequest
from local_runner.simulators.notte import NotteSimulator, iso_duration

TIMEOUT = 2.0
API_KEY = "sk-notte-demo"
AUTH_FAILED = "Authentication failed. Please check your credentials."
RATE_LIMITED = "Rate limit exceeded"
RATE_LIMITED_DETAIL = "Please wait before making more requests"
OVERLOADED = "Cluster overloaded - Too many sessions"
SESSION_FIELDS = {
    "session_id",
    "idle_timeout_minutes",
    "created_at",
    "last_accessed_at",
    "status",
    "timeout_minutes",
    "max_duration_minutes",
    "closed_at",
    "duration",
    "steps",
    "error",
    "proxies",
    "browser_type",
    "use_file_storage",
    "network_request_bytes",
    "network_response_bytes",
    "user_agent",
    "viewport_width",
    "viewport_height",
    "headless",
    "solve_captchas",
    "cdp_url",
    "viewer_url",
    "web_bot_auth",
}
REPLAY_FIELDS = {"playlist_content", "mp4_url", "expires_at", "video_start_ms", "video_duration_ms"}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
ISO_DURATION = re.compile(r"P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")
SESSION_ID = "0d5b2f2f-0f6e-4c1e-9d4b-3a1f1f0b2c3d"
HOUR = 3600


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def notte() -> Iterator[NotteSimulator]:
    with NotteSimulator() as sim:
        yield sim


def bearer(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def get_status(
    sim: NotteSimulator,
    session_id: str,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> requests.Response:
    return requests.get(
        f"{sim.url}/sessions/{session_id}",
        headers=bearer() if headers is None else headers,
        timeout=timeout,
    )


def get_replay(
    sim: NotteSimulator,
    session_id: str,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> requests.Response:
    return requests.get(
        f"{sim.url}/sessions/{session_id}/replay",
        headers=bearer() if headers is None else headers,
        timeout=timeout,
    )


def parse_time(text: str) -> datetime:
    assert ISO_Z.fullmatch(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_notte_error(
    response: requests.Response, status: int, message: str, detail: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["message"] == message
    assert body.get("detail") == detail
    return body


# -- lifecycle -----------------------------------------------------------------------------


def test_lifecycle_binds_loopback_port_and_releases_it() -> None:
    # given a simulator that is not started
    sim = NotteSimulator()
    with pytest.raises(RuntimeError):
        _ = sim.url

    # when it runs as a context manager
    with sim:
        url = sim.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)

    # then the port is released afterwards
    assert not sim.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)


# -- status --------------------------------------------------------------------------------


def test_active_session_status_has_the_documented_shape(notte: NotteSimulator) -> None:
    # given an active session
    session_id = notte.add_session(SESSION_ID)

    # when its status is read
    response = get_status(notte, session_id)

    # then every documented field is there, with an active session's values
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SESSION_FIELDS
    assert body["session_id"] == SESSION_ID
    assert body["status"] == "active"
    assert body["closed_at"] is None
    assert body["error"] is None
    assert body["max_duration_minutes"] == 15
    assert body["idle_timeout_minutes"] == body["timeout_minutes"] == 3
    assert body["browser_type"] == "chromium"
    created = parse_time(body["created_at"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 5
    assert parse_time(body["last_accessed_at"]) >= created
    assert ISO_DURATION.fullmatch(body["duration"])
    assert [step["type"] for step in body["steps"]] == ["execution_result"] * 3
    assert body["steps"][0]["value"]["action"]["type"] == "goto"
    assert body["viewer_url"] == notte.viewer_url(SESSION_ID)
    assert body["viewer_url"].startswith("https://console.notte.cc/static/viewer?ws=wss://")
    assert f"/sessions/{SESSION_ID}/" in body["viewer_url"]
    assert body["cdp_url"].startswith("wss://")
    for flag in ("proxies", "use_file_storage", "headless", "web_bot_auth"):
        assert isinstance(body[flag], bool)
    for count in ("network_request_bytes", "network_response_bytes", "viewport_width"):
        assert isinstance(body[count], int)

    # and the call is recorded with its credentials
    [recorded] = notte.requests("status")
    assert isinstance(recorded, RecordedRequest)
    assert (recorded.method, recorded.path) == ("GET", f"/sessions/{SESSION_ID}")
    assert recorded.headers["authorization"] == f"Bearer {API_KEY}"
    assert notte.requests("replay") == []


def test_generated_session_ids_are_uuid4(notte: NotteSimulator) -> None:
    # given two sessions added without an id
    first, second = notte.add_session(), notte.add_session()

    # then each got a distinct uuid4
    assert first != second
    assert uuid.UUID(first).version == 4
    assert notte.session_ids == [first, second]


def test_active_duration_counts_from_created_at(notte: NotteSimulator) -> None:
    # given a session created 95 seconds ago
    created = datetime.now(UTC) - timedelta(seconds=95)
    session_id = notte.add_session(created_at=created, steps=0, browser_type="firefox")

    # when its status is read
    body = get_status(notte, session_id).json()

    # then its duration is an ISO 8601 duration of about 1 min 35 s
    assert re.fullmatch(r"PT1M3[5-7](\.\d+)?S", body["duration"])
    assert body["steps"] == []
    assert body["browser_type"] == "firefox"


def test_close_session_sets_closed_at_duration_and_error(notte: NotteSimulator) -> None:
    # given an active session
    session_id = notte.add_session()

    # when it is closed with an error
    notte.close_session(session_id, status="error", error="Browser crashed")
    body = get_status(notte, session_id).json()

    # then it reports the end and no longer exposes live URLs
    assert body["status"] == "error"
    assert body["error"] == "Browser crashed"
    closed = parse_time(body["closed_at"])
    assert closed >= parse_time(body["created_at"])
    assert body["last_accessed_at"] == body["closed_at"]
    assert ISO_DURATION.fullmatch(body["duration"])
    assert body["viewer_url"] is None
    assert body["cdp_url"] is None


def test_closed_at_is_capped_by_max_duration(notte: NotteSimulator) -> None:
    # given a session that started two hours ago with a 15 minute limit
    created = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)

    # when it is added as timed out
    session_id = notte.add_session(status="timed_out", created_at=created)
    body = get_status(notte, session_id).json()

    # then it closed at its deadline
    assert body["status"] == "timed_out"
    assert body["created_at"] == "2026-01-05T09:00:00Z"
    assert body["closed_at"] == "2026-01-05T09:15:00Z"
    assert body["duration"] == "PT15M"


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(minutes=1, seconds=35), "PT1M35S"),
        (timedelta(seconds=41.286072), "PT41.286072S"),
        (timedelta(minutes=1, seconds=0.25), "PT1M0.25S"),
        (timedelta(hours=2, minutes=3), "PT2H3M"),
        (timedelta(days=1, seconds=5), "P1DT5S"),
        (timedelta(days=2), "P2D"),
    ],
)
def test_durations_are_written_like_pydantic(span: timedelta, text: str) -> None:
    assert iso_duration(span) == text


# -- replay --------------------------------------------------------------------------------


def test_replay_of_closed_session_gives_presigned_urls(notte: NotteSimulator) -> None:
    # given a session that ran 95 seconds and was closed
    created = datetime.now(UTC) - timedelta(seconds=95)
    session_id = notte.add_session(created_at=created)
    notte.close_session(session_id)

    # when its replay is read
    response = get_replay(notte, session_id)

    # then it carries the ReplayResponse fields
    assert response.status_code == 200
    body = response.json()
    assert set(body) == REPLAY_FIELDS
    assert body["mp4_url"] == notte.mp4_url(session_id)
    url = urlsplit(body["mp4_url"])
    assert url.scheme == "https"
    assert url.path.endswith(f"/{session_id}/replay.mp4")
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == [str(HOUR)]
    assert "X-Amz-Signature" in query
    expires = datetime.fromisoformat(body["expires_at"])
    assert abs((expires - datetime.now(UTC)).total_seconds() - HOUR) < 10
    assert body["video_start_ms"] == 0
    assert 95_000 <= body["video_duration_ms"] < 98_000
    playlist = body["playlist_content"]
    assert playlist.startswith("#EXTM3U\n")
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
    assert playlist.count("#EXTINF:") == 10  # 10 s segments
    assert playlist.count("X-Amz-Signature=") == 10

    # and the call is recorded
    [recorded] = notte.requests("replay")
    assert recorded.path == f"/sessions/{session_id}/replay"
    assert notte.requests("status") == []


@pytest.mark.parametrize("status", ["closed", "error", "timed_out"])
def test_every_ended_status_has_a_replay(notte: NotteSimulator, status: str) -> None:
    session_id = notte.add_session(status=status)
    assert get_replay(notte, session_id).status_code == 200


def test_replay_is_not_found_while_session_is_active(notte: NotteSimulator) -> None:
    # given an active session
    session_id = notte.add_session()

    # when its replay is read, then 404 says it is still active
    message = (
        f"Session {session_id} is still active. Close the session first to generate the replay."
    )
    assert_notte_error(get_replay(notte, session_id), 404, message)

    # and once closed the replay is there
    notte.close_session(session_id)
    assert get_replay(notte, session_id).status_code == 200


def test_session_without_replay_answers_not_found(notte: NotteSimulator) -> None:
    # given a closed session that recorded nothing
    session_id = notte.add_session(status="closed", has_replay=False)

    # when its replay is read, then 404
    assert_notte_error(
        get_replay(notte, session_id), 404, f"Replay not found for session {session_id}"
    )
    with pytest.raises(ValueError, match="no replay"):
        notte.mp4_url(session_id)


def test_mp4_url_is_resigned_when_the_session_closes(notte: NotteSimulator) -> None:
    # given an active session whose url was read before the end
    session_id = notte.add_session()
    before = notte.mp4_url(session_id)

    # when it closes a second later
    time.sleep(1.05)
    notte.close_session(session_id)

    # then the replay endpoint returns the new signature
    assert notte.mp4_url(session_id) != before
    assert get_replay(notte, session_id).json()["mp4_url"] == notte.mp4_url(session_id)


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("sk-notte-wrong"), bearer(""), {"Authorization": API_KEY}, {"X-Api-Key": API_KEY}],
    ids=["missing", "wrong-key", "empty-key", "no-scheme", "other-header"],
)
def test_missing_or_wrong_api_key_is_refused(
    notte: NotteSimulator, headers: dict[str, str]
) -> None:
    # given a closed session
    session_id = notte.add_session(status="closed")

    # when it is read without the right bearer key, then both endpoints answer 401
    assert_notte_error(get_status(notte, session_id, headers), 401, AUTH_FAILED)
    assert_notte_error(get_replay(notte, session_id, headers), 401, AUTH_FAILED)


def test_bearer_scheme_is_case_insensitive() -> None:
    with NotteSimulator(api_key="sk-notte-other") as sim:
        session_id = sim.add_session()
        headers = {"Authorization": "bearer sk-notte-other"}
        assert get_status(sim, session_id, headers).status_code == 200


def test_unknown_session_answers_not_found(notte: NotteSimulator) -> None:
    message = f"Session {SESSION_ID} not found"
    assert_notte_error(get_status(notte, SESSION_ID), 404, message)
    assert_notte_error(get_replay(notte, SESSION_ID), 404, message)


def test_unknown_routes_and_methods_answer_json_not_found(notte: NotteSimulator) -> None:
    # given a known session
    session_id = notte.add_session()

    # when other routes are called
    calls = [
        ("GET", "/"),
        ("GET", "/sessions/"),
        ("GET", f"/sessions/{session_id}/debug"),
        ("GET", f"/sessions/{session_id}/replay/extra"),
        ("GET", "/sessions//replay"),
        ("POST", f"/sessions/{session_id}"),
        ("DELETE", f"/sessions/{session_id}/stop"),
    ]
    for method, path in calls:
        response = requests.request(method, notte.url + path, headers=bearer(), timeout=TIMEOUT)

        # then each is a JSON 404
        assert_notte_error(response, 404, "Not Found")

    # and only the catch-all log has them
    assert notte.requests("status") == notte.requests("replay") == []
    assert len(notte.requests()) == len(calls)


# -- scripted failures ---------------------------------------------------------------------


def test_scripted_429_carries_rate_limit_headers(notte: NotteSimulator) -> None:
    # given a session and a scripted rate limit resetting in 30 s
    session_id = notte.add_session()
    notte.script("status", 429, retry_after=30, rate_limit_reset=30)

    # when the status is read
    response = get_status(notte, session_id)

    # then the documented 429 body and headers come back
    assert_notte_error(response, 429, RATE_LIMITED, RATE_LIMITED_DETAIL)
    assert response.headers["X-RateLimit-Limit"] == "100"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert abs(int(response.headers["X-RateLimit-Reset"]) - (time.time() + 30)) <= 2
    assert response.headers["Retry-After"] == "30"

    # and the script is consumed
    assert get_status(notte, session_id).status_code == 200
    assert len(notte.requests("status")) == 2


def test_scripted_429_without_reset_still_sends_a_unix_timestamp(notte: NotteSimulator) -> None:
    notte.script("replay", 429)
    response = get_replay(notte, notte.add_session(status="closed"))
    assert response.status_code == 429
    assert 0 <= int(response.headers["X-RateLimit-Reset"]) - time.time() <= 2
    assert "Retry-After" not in response.headers


def test_scripted_failures_are_fifo_per_endpoint(notte: NotteSimulator) -> None:
    # given a closed session, two overloads on status and one 500 on replay
    session_id = notte.add_session(status="closed")
    notte.script("status", 529, times=2)
    notte.script("status", 404)
    notte.script("replay", 500, "Replay storage unavailable")

    # when the replay and then the status are read
    replay = get_replay(notte, session_id)
    statuses = [get_status(notte, session_id) for _ in range(4)]

    # then each endpoint consumed its own queue in order
    assert_notte_error(replay, 500, "Replay storage unavailable")
    for response in statuses[:2]:
        assert_notte_error(response, 529, OVERLOADED)
        assert "X-RateLimit-Limit" not in response.headers
    assert_notte_error(statuses[2], 404, f"Session {session_id} not found")
    assert statuses[3].status_code == 200
    assert get_replay(notte, session_id).status_code == 200


def test_scripted_failure_comes_before_authentication(notte: NotteSimulator) -> None:
    notte.script("status", 503)
    assert_notte_error(get_status(notte, SESSION_ID, headers={}), 503, "Service Unavailable")
    assert len(notte.requests("status")) == 1


def test_scripted_delay_provokes_client_timeout(notte: NotteSimulator) -> None:
    session_id = notte.add_session()
    notte.script("status", 500, delay=0.5)
    with pytest.raises(requests.Timeout):
        get_status(notte, session_id, timeout=0.1)
    assert get_status(notte, session_id).status_code == 200


def test_scripted_200_only_delays_and_may_add_rate_limit_headers(notte: NotteSimulator) -> None:
    # given a closed session and a delay-only entry announcing an exhausted window
    session_id = notte.add_session(status="closed")
    notte.script("replay", 200, delay=0.2, rate_limit_reset=5)

    # when the replay is read
    started = time.monotonic()
    response = get_replay(notte, session_id)

    # then the real answer arrives late with the rate-limit headers
    assert time.monotonic() - started >= 0.19
    assert response.status_code == 200
    assert response.json()["mp4_url"] == notte.mp4_url(session_id)
    assert response.headers["X-RateLimit-Remaining"] == "0"


@pytest.mark.parametrize(
    ("status", "error", "times", "delay", "reset"),
    [
        (200, "X", 1, 0.0, None),
        (302, None, 1, 0.0, None),
        (500, None, 0, 0.0, None),
        (500, None, 1, -1.0, None),
        (429, None, 1, 0.0, -1),
    ],
)
def test_invalid_scripts_are_refused(
    notte: NotteSimulator,
    status: int,
    error: str | None,
    times: int,
    delay: float,
    reset: int | None,
) -> None:
    with pytest.raises(ValueError, match="must be"):
        notte.script("status", status, error, times=times, delay=delay, rate_limit_reset=reset)
    with pytest.raises(ValueError, match="must be"):
        notte.script("replay", status, error, times=times, delay=delay, rate_limit_reset=reset)


# -- controls ------------------------------------------------------------------------------


def test_invalid_controls_are_refused(notte: NotteSimulator) -> None:
    session_id = notte.add_session(SESSION_ID)
    with pytest.raises(ValueError, match="already exists"):
        notte.add_session(SESSION_ID)
    with pytest.raises(ValueError, match="status must be"):
        notte.add_session(status="paused")
    with pytest.raises(ValueError, match="browser_type must be"):
        notte.add_session(browser_type="safari")
    with pytest.raises(ValueError, match="timezone-aware"):
        notte.add_session(created_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="status must be"):
        notte.close_session(session_id, status="active")
    notte.close_session(session_id)
    with pytest.raises(ValueError, match="already closed"):
        notte.close_session(session_id)
    with pytest.raises(KeyError):
        notte.close_session("nope")
    with pytest.raises(KeyError):
        notte.mp4_url("nope")


def test_concurrent_reads_are_all_answered(notte: NotteSimulator) -> None:
    ids = [notte.add_session(status="closed") for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda sid: get_replay(notte, sid).status_code, ids * 3))
    assert codes == [200] * 24
    assert len(notte.requests("replay")) == 24
