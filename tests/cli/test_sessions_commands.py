"""`capture-bridge sessions list|show|create|cancel` against the test double of the API."""

from __future__ import annotations

import json
import uuid

import pytest

from capture_cli import exits
from tests.cli.api_double import SessionsApiDouble
from tests.cli.conftest import run_cli

HELPDESK = "zendesk"
TICKET = "1001"
USER_ID = "user-42"
ACTION = "upload-screenshot"
DESCRIPTION = "Checkout button does nothing"
IDEMPOTENCY_KEY = "retry-key-1"
UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"
REPORT_URL = "https://app.bugpilot.io/report/r-9"
TINY_INTERVAL = "0.01"
SESSIONS_ON_TICKET = 45
PAGE = 20


# --- list ----------------------------------------------------------------------------------


def test_list_by_ticket_sends_the_query_and_prints_a_table(api: SessionsApiDouble) -> None:
    # given two sessions of the ticket and one of another ticket
    older = api.add(status="resolved", noteState="posted")
    newer = api.add(status="waiting_for_user")
    api.add(ticketId="2002")

    # when they are listed by ticket
    run = run_cli("sessions", "list", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET)

    # then one GET with the ticket's query was sent, and a table shows both, newest first
    assert run.code == exits.OK
    [request] = api.requests
    assert (request.method, request.path) == ("GET", "/sessions")
    assert request.query == {"helpdesk": [HELPDESK], "ticketId": [TICKET]}
    header, first, second = run.out.splitlines()
    assert header == "  ".join(("SESSION ID".ljust(36), "STATUS".ljust(16))) + header[54:]
    assert header.split()[2:] == ["STATUS", "PROVIDER", "ACTION", "TICKET", "CREATED", "NOTE"]
    assert first.split()[:2] == [newer["sessionId"], "waiting_for_user"]
    assert second.split() == [
        older["sessionId"],
        "resolved",
        "bugpilot",
        "upload-session",
        HELPDESK,
        f"#{TICKET}",
        "2026-11-25",
        "12:00:00Z",
        "posted",
    ]


def test_list_by_status_sends_status_since_and_limit(api: SessionsApiDouble) -> None:
    # given a failed session
    api.add(status="failed")

    # when sessions are listed by status, since a time, with a page size
    since = "2026-11-25T00:00:00Z"
    run = run_cli(
        *("sessions", "list", "--url", api.url, "--status", "failed"),
        *("--since", since, "--limit", "5"),
    )

    # then the query carries all three
    assert run.code == exits.OK
    assert api.requests[0].query == {"status": ["failed"], "since": [since], "limit": ["5"]}


def test_list_all_follows_every_cursor_and_prints_one_json_document(
    api: SessionsApiDouble,
) -> None:
    # given more sessions on the ticket than three pages' worth minus a few
    stored = [api.add() for _ in range(SESSIONS_ON_TICKET)]

    # when every page is listed as JSON
    run = run_cli(
        *("sessions", "list", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET),
        *("--limit", str(PAGE), "--all", "--json"),
    )

    # then each page's cursor was followed, and one document holds every session exactly once
    assert run.code == exits.OK
    assert len(api.requests) == 3
    assert "cursor" not in api.requests[0].query
    for earlier, later in zip(api.requests, api.requests[1:], strict=False):
        assert later.query["cursor"] == [earlier.answer["nextCursor"]]
        assert later.query["limit"] == [str(PAGE)]
    document = json.loads(run.out)
    assert document["nextCursor"] is None
    ids = [session["sessionId"] for session in document["sessions"]]
    assert sorted(ids) == sorted(session["sessionId"] for session in stored)
    assert len(set(ids)) == SESSIONS_ON_TICKET


def test_list_one_page_says_how_to_get_more(api: SessionsApiDouble) -> None:
    # given more sessions than one page
    for _ in range(3):
        api.add()

    # when one page of two is listed
    run = run_cli(
        *("sessions", "list", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET),
        *("--limit", "2"),
    )

    # then the table has two rows, and the hint names --all and the next cursor
    assert run.code == exits.OK
    assert len(run.out.splitlines()) == 3
    assert "--all" in run.err
    assert api.requests[0].answer["nextCursor"] in run.err


def test_list_json_prints_the_page_exactly(api: SessionsApiDouble) -> None:
    # given one session
    api.add()

    # when listed as JSON
    run = run_cli(
        "sessions", "list", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET, "--json"
    )

    # then the output is the API's page, unchanged
    assert json.loads(run.out) == api.requests[0].answer


def test_an_empty_list_says_so(api: SessionsApiDouble) -> None:
    run = run_cli("sessions", "list", "--url", api.url, "--status", "cancelled")
    assert (run.code, run.out.strip()) == (exits.OK, "No sessions.")


# --- show ----------------------------------------------------------------------------------


def test_show_prints_the_detail_view(api: SessionsApiDouble) -> None:
    # given a resolved session with a link, a detail and its note posted
    session = api.add(
        status="resolved",
        noteState="posted",
        data={"links": {"report": REPORT_URL}, "details": {"duration": "42s"}, "error": None},
    )

    # when it is shown
    run = run_cli("sessions", "show", "--url", api.url, session["sessionId"])

    # then one GET of its path was sent and the view shows its links, details and error
    assert run.code == exits.OK
    assert (api.requests[0].method, api.requests[0].path) == (
        "GET",
        f"/sessions/{session['sessionId']}",
    )
    assert api.requests[0].query == {}
    assert f"Session:   {session['sessionId']}" in run.out
    assert "Status:    resolved (closed 2026-11-25 12:00:00Z)" in run.out
    assert f"  report  {REPORT_URL}" in run.out
    assert "  duration  42s" in run.out
    assert "Error:     -" in run.out


def test_show_refresh_asks_for_fresh_links_and_json_is_exact(api: SessionsApiDouble) -> None:
    # given a finished session
    session = api.add(status="resolved", noteState="posted")

    # when it is shown with --refresh as JSON
    run = run_cli("sessions", "show", "--url", api.url, session["sessionId"], "--refresh", "--json")

    # then refresh=true was asked, and the output is the API's document
    assert api.requests[0].query == {"refresh": ["true"]}
    assert json.loads(run.out) == session


def test_show_an_unknown_session_is_not_found(api: SessionsApiDouble) -> None:
    # when a session that does not exist is shown
    run = run_cli("sessions", "show", "--url", api.url, UNKNOWN_ID)

    # then the exit status is 3 and the API's detail is printed
    assert run.code == exits.NOT_FOUND
    assert f"Session {UNKNOWN_ID} not found (404)" in run.err
    assert run.out == ""


def test_show_escapes_control_characters_from_the_api(api: SessionsApiDouble) -> None:
    # given a session whose error carries a terminal escape sequence
    session = api.add(status="failed", data={"links": {}, "details": {}, "error": "\x1b[2Jgone"})

    # when it is shown, then the escape is printed as text, not sent to the terminal
    run = run_cli("sessions", "show", "--url", api.url, session["sessionId"])
    assert "\x1b" not in run.out
    assert "\\x1b[2Jgone" in run.out


# --- show --watch --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("final", "code"),
    [
        ("resolved", exits.OK),
        ("failed", exits.CAPTURE_DID_NOT_RESOLVE),
        ("timed_out", exits.CAPTURE_DID_NOT_RESOLVE),
        ("cancelled", exits.CAPTURE_DID_NOT_RESOLVE),
    ],
)
def test_watch_prints_each_change_and_stops_on_a_final_status(
    api: SessionsApiDouble, final: str, code: int
) -> None:
    # given a capture that waits for its user, then is pending, then ends
    session = api.add(status="requested")
    api.progress[session["sessionId"]] = ["waiting_for_user", "waiting_for_user", "pending", final]

    # when it is watched with a tiny interval
    run = run_cli(
        "sessions", "show", "--url", api.url, session["sessionId"], "--watch",
        "--interval", TINY_INTERVAL,
    )  # fmt: skip

    # then each status change was printed once, it stopped at the final status, with its code
    assert run.code == code
    changes = [line.split()[2] for line in run.out.splitlines() if line.startswith("2026-")]
    assert changes == ["waiting_for_user", "waiting_for_user", "pending", final]
    assert len(api.requests) == 4
    assert f"Status:    {final}" in run.out


def test_watch_prints_an_unchanged_session_once(api: SessionsApiDouble) -> None:
    # given a session answered unchanged three times, then resolved
    session = api.add()
    for _ in range(3):
        api.answer_next(200, dict(session))
    api.progress[session["sessionId"]] = ["resolved"]

    # when it is watched as JSON lines
    run = run_cli(
        "sessions", "show", "--url", api.url, session["sessionId"], "--watch",
        "--interval", TINY_INTERVAL, "--json",
    )  # fmt: skip

    # then four polls gave two lines: the pending session once, then the resolved one
    assert run.code == exits.OK
    assert len(api.requests) == 4
    assert [json.loads(line)["status"] for line in run.out.splitlines()] == ["pending", "resolved"]


def test_watch_gives_up_after_its_timeout(api: SessionsApiDouble) -> None:
    # given a capture that never finishes
    session = api.add(status="waiting_for_user")

    # when it is watched with a short timeout
    run = run_cli(
        "sessions", "show", "--url", api.url, session["sessionId"], "--watch",
        "--interval", TINY_INTERVAL, "--timeout", "0.1",
    )  # fmt: skip

    # then it stops with 8, having printed the status once, and says why
    assert run.code == exits.WATCH_TIMED_OUT
    assert run.out.count("waiting_for_user") == 1
    assert "still waiting_for_user after 0.1 seconds" in run.err
    assert len(api.requests) > 1


def test_watch_keeps_polling_through_an_unavailable_api(api: SessionsApiDouble) -> None:
    # given an API that is unavailable once, between two polls
    session = api.add()
    api.progress[session["sessionId"]] = ["pending", "resolved"]
    api.answer_next(503, {"detail": "the session store cannot be reached"})

    # when the session is watched as JSON lines
    run = run_cli(
        "sessions", "show", "--url", api.url, session["sessionId"], "--watch",
        "--interval", TINY_INTERVAL, "--json",
    )  # fmt: skip

    # then the blip was a warning, and the watch ended on the resolved session
    assert run.code == exits.OK
    assert "the session store cannot be reached (503); polling again" in run.err
    documents = [json.loads(line) for line in run.out.splitlines()]
    assert [document["status"] for document in documents] == ["pending", "resolved"]


def test_watch_stops_at_once_on_not_found(api: SessionsApiDouble) -> None:
    run = run_cli(
        "sessions", "show", "--url", api.url, UNKNOWN_ID, "--watch", "--interval", TINY_INTERVAL
    )
    assert run.code == exits.NOT_FOUND
    assert len(api.requests) == 1


# --- create --------------------------------------------------------------------------------


def test_create_posts_the_body_with_a_generated_key_and_prints_it(api: SessionsApiDouble) -> None:
    # when a Bugpilot capture is created
    run = run_cli(
        *("sessions", "create", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET),
        *("--user-id", USER_ID, "--action", ACTION, "--description", DESCRIPTION),
    )

    # then one POST carried exactly the given fields, as JSON, with a fresh idempotency key
    assert run.code == exits.OK
    [request] = api.requests
    assert (request.method, request.path) == ("POST", "/sessions")
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "helpdesk": HELPDESK,
        "ticketId": TICKET,
        "userId": USER_ID,
        "action": ACTION,
        "description": DESCRIPTION,
    }
    key = request.headers["idempotency-key"]
    assert uuid.UUID(key)
    # and the key is printed (on stderr, so that --json output stays one document)
    assert f"--idempotency-key {key}" in run.err
    assert key not in run.out
    assert run.out.startswith(f"Created session {request.answer['sessionId']}.")
    assert api.requests[0].status == 201


def test_create_with_the_same_key_again_returns_the_same_session(api: SessionsApiDouble) -> None:
    # given a LambdaTest capture created with a chosen key
    create = (
        *("sessions", "create", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET),
        *("--provider", "lambdatest", "--external-session-id", "DA-WIN-123456"),
        *("--idempotency-key", IDEMPOTENCY_KEY),
    )
    first = run_cli(*create, "--json")

    # when the same command line runs again
    again = run_cli(*create, "--json")

    # then the key was sent both times and the API answered the same session (201, then 200)
    assert (first.code, again.code) == (exits.OK, exits.OK)
    assert [r.headers["idempotency-key"] for r in api.requests] == [IDEMPOTENCY_KEY] * 2
    assert [r.status for r in api.requests] == [201, 200]
    assert json.loads(first.out) == json.loads(again.out)
    assert len(api.sessions) == 1
    # and a chosen key is not echoed back as a new one
    assert "Idempotency-Key:" not in first.err


def test_create_says_when_the_session_already_existed(api: SessionsApiDouble) -> None:
    create = (
        *("sessions", "create", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET),
        *("--user-email", "user@example.com", "--idempotency-key", IDEMPOTENCY_KEY),
    )
    run_cli(*create)
    again = run_cli(*create)
    assert again.code == exits.OK
    assert "already exists for this request" in again.out
    assert api.requests[0].json["userEmail"] == "user@example.com"


def test_create_with_a_reused_key_and_another_body_is_a_conflict(api: SessionsApiDouble) -> None:
    # given a key used for one ticket
    base = ("sessions", "create", "--url", api.url, "--helpdesk", HELPDESK, "--user-id", USER_ID)
    run_cli(*base, "--ticket", TICKET, "--idempotency-key", IDEMPOTENCY_KEY)

    # when it is used for another ticket
    run = run_cli(*base, "--ticket", "2002", "--idempotency-key", IDEMPOTENCY_KEY)

    # then the exit status is 4 with the API's detail
    assert run.code == exits.CONFLICT
    assert "Idempotency-Key was used with another body (409)" in run.err


def test_field_errors_are_printed_one_per_line(api: SessionsApiDouble) -> None:
    # when a Bugpilot capture names no user and a bad helpdesk
    run = run_cli("sessions", "create", "--url", api.url, "--helpdesk", "Zen!", "--ticket", TICKET)

    # then the exit status is 6 and each field's problem has its own line
    assert run.code == exits.BAD_INPUT
    lines = run.err.splitlines()
    assert "error: the API refused the input (400)" in lines
    assert "  body.helpdesk: must be a helpdesk name" in lines
    assert "  body.userId: userId or userEmail is required" in lines


def test_a_body_too_large_is_bad_input(api: SessionsApiDouble) -> None:
    api.answer_next(413, {"detail": "The body is over 64 KiB"})
    run = run_cli(
        *("sessions", "create", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET),
        *("--user-id", USER_ID, "--description", "x" * 900),
    )
    assert run.code == exits.BAD_INPUT
    assert "The body is over 64 KiB (413)" in run.err


# --- cancel --------------------------------------------------------------------------------


def test_cancel_deletes_the_session_and_prints_it(api: SessionsApiDouble) -> None:
    # given an open capture
    session = api.add(status="waiting_for_user")

    # when it is cancelled
    run = run_cli("sessions", "cancel", "--url", api.url, session["sessionId"])

    # then one DELETE of its path was sent, and the cancelled session is shown
    assert run.code == exits.OK
    [request] = api.requests
    assert (request.method, request.path, request.body) == (
        "DELETE",
        f"/sessions/{session['sessionId']}",
        b"",
    )
    assert run.out.startswith(f"Cancelled session {session['sessionId']}.")
    assert "Status:    cancelled" in run.out


def test_cancel_json_prints_the_cancelled_session(api: SessionsApiDouble) -> None:
    session = api.add()
    run = run_cli("sessions", "cancel", "--url", api.url, session["sessionId"], "--json")
    assert json.loads(run.out)["status"] == "cancelled"


def test_cancel_a_finished_session_is_a_conflict(api: SessionsApiDouble) -> None:
    # given a resolved capture, when it is cancelled, then the exit status is 4
    session = api.add(status="resolved", noteState="posted")
    run = run_cli("sessions", "cancel", "--url", api.url, session["sessionId"])
    assert run.code == exits.CONFLICT
    assert "has already finished (resolved) (409)" in run.err


def test_cancel_an_unknown_session_is_not_found(api: SessionsApiDouble) -> None:
    run = run_cli("sessions", "cancel", "--url", api.url, UNKNOWN_ID)
    assert run.code == exits.NOT_FOUND


def test_a_session_id_cannot_reach_another_route(api: SessionsApiDouble) -> None:
    # when an id with path characters is shown
    run = run_cli("sessions", "show", "--url", api.url, "../sessions?status=failed")

    # then it stayed one path segment of /sessions/{id}: a 404 for that id
    assert run.code == exits.NOT_FOUND
    assert api.requests[0].raw_path == "/sessions/..%2Fsessions%3Fstatus%3Dfailed"


def test_list_cursor_asks_for_the_next_page(api: SessionsApiDouble) -> None:
    # given a first page's cursor
    for _ in range(3):
        api.add()
    first = run_cli(
        *("sessions", "list", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET),
        *("--limit", "2", "--json"),
    )
    cursor = json.loads(first.out)["nextCursor"]

    # when the next page is asked with it, then the cursor is sent and the last session comes
    run = run_cli(
        *("sessions", "list", "--url", api.url, "--helpdesk", HELPDESK, "--ticket", TICKET),
        *("--limit", "2", "--cursor", cursor, "--json"),
    )
    assert api.requests[1].query["cursor"] == [cursor]
    assert len(json.loads(run.out)["sessions"]) == 1


def test_list_all_stops_on_a_cursor_that_repeats(api: SessionsApiDouble) -> None:
    # given an API that hands out the same cursor again and again
    for _ in range(3):
        api.answer_next(200, {"sessions": [], "nextCursor": "same"})

    # when every page is asked for, then it stops with 7 instead of looping
    run = run_cli("sessions", "list", "--url", api.url, "--status", "failed", "--all")
    assert run.code == exits.UNAVAILABLE
    assert "the same cursor twice" in run.err
    assert len(api.requests) == 2
