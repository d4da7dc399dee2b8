"""The sessions API route by route, through the local runner's API Gateway, on moto.

Every answer is checked against openapi/sessions.yaml: its status must be documented for the
operation (405 and the generic errors against `Error`) and its body must match the schema.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from capture_bridge.api.sessions import MAX_BODY_BYTES, ROUTES, handle
from capture_bridge.capture.lambdatest import LambdaTestProvider
from capture_bridge.errors import StoreUnavailable
from capture_bridge.models import CaptureRequest, CaptureSession
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import to_item
from local_runner.apigw import ApiGateway
from local_runner.runner import openapi_documents
from local_runner.simulators import BugpilotSimulator
from local_runner.template import FunctionDef, load_template
from tests import openapi_contract as contract
from tests.conftest import ROOT, START, Clock, Desk, FakeLambdaContext, runtime_with

TOKEN = "sessions-api-test-token"
USER = "user-42"
TICKET = "1001"
LT_SESSION = "bc02fd99593f14e37850745d66197f89"
UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"
MANY_SESSIONS = 250
PAGE_SIZES = (100, 7)
BUGPILOT_BODY = {"helpdesk": "zendesk", "ticketId": TICKET, "userId": USER}
LAMBDATEST_BODY = {
    "helpdesk": "zendesk",
    "ticketId": TICKET,
    "provider": "lambdatest",
    "externalSessionId": LT_SESSION,
}


# -- the contract --------------------------------------------------------------------------------


# -- the client ----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Api:
    """Calls the sessions routes through the local runner's API Gateway and the handler."""

    def __init__(self, runtime: Runtime, clock: Clock) -> None:
        self.runtime = runtime
        self.clock = clock
        self.token: str | None = TOKEN
        self.pauses: list[float] = []
        template = load_template(ROOT / "template.yaml")
        routes = [(r, f) for r, f in template.routes if f.logical_id == "SessionsFunction"]
        self.gateway = ApiGateway(routes, self._invoke)

    def _invoke(self, function: FunctionDef, event: dict[str, Any]) -> dict[str, Any]:
        answer = handle(
            event,
            runtime_factory=lambda: self.runtime,
            clock=self.clock,
            pause=self.pauses.append,
        )
        return answer.as_response()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        target = path + (f"?{urlencode(query)}" if query else "")
        response = self.gateway.handle(method, target, sent.items(), data, "127.0.0.1")
        reply = Reply(response.status, json.loads(response.body), dict(response.headers))
        contract.check_answer(method, path, reply.status, reply.body)
        return reply

    def create(self, body: dict[str, Any], key: str | None = None) -> Reply:
        headers = {"Idempotency-Key": key} if key else {}
        return self.call("POST", "/sessions", body=body, headers=headers)


@pytest.fixture
def api(env: dict[str, str], clock: Clock) -> Api:
    runtime = runtime_with(env, SESSIONS_API_TOKEN=TOKEN, SESSIONS_API_AUTH="token")
    return Api(runtime, clock)


@pytest.fixture
def connected(desk: Desk) -> Desk:
    desk.bugpilot.connect_user(USER)
    return desk


# -- POST /sessions ------------------------------------------------------------------------------


class TestCreate:
    def test_a_capture_on_a_helpdesk_that_is_not_configured_is_refused_before_anything(
        self, env: dict[str, str], clock: Clock, bugpilot: BugpilotSimulator
    ) -> None:
        # Given a bridge whose Zendesk has no API token (its notes could never be written)
        runtime = runtime_with(env, SESSIONS_API_TOKEN=TOKEN, ZENDESK_API_TOKEN="")
        api = Api(runtime, clock)
        # When a capture on a Zendesk ticket is asked for
        reply = api.create(BUGPILOT_BODY)
        # Then it is a 400 naming the helpdesk and what to set; nothing is stored or started
        assert reply.status == 400
        [error] = reply.body["detail"]
        assert error["loc"] == ["body", "helpdesk"]
        assert "ZENDESK_API_TOKEN" in error["msg"]
        assert api.call("GET", "/sessions", query={"status": "pending"}).body["sessions"] == []
        assert bugpilot.requests() == []

    def test_a_new_capture_is_201_with_its_location_and_is_started(
        self, api: Api, connected: Desk
    ) -> None:
        # When a Bugpilot capture is asked for
        reply = api.create(BUGPILOT_BODY)
        # Then it is created, started like a webhook's, and found at its Location
        assert reply.status == 201
        session_id = reply.body["sessionId"]
        assert reply.headers["Location"] == f"/sessions/{session_id}"
        assert reply.body["status"] == "pending"
        assert reply.body["attempts"] == 1
        assert len(connected.bugpilot.requests("action")) == 1
        assert api.call("GET", reply.headers["Location"]).body == reply.body

    def test_a_capture_still_open_on_the_ticket_is_returned_with_200(
        self, api: Api, connected: Desk
    ) -> None:
        first = api.create(BUGPILOT_BODY)
        again = api.create({**BUGPILOT_BODY, "userEmail": "ada@example.com"})
        assert again.status == 200
        assert again.body["sessionId"] == first.body["sessionId"]
        assert len(connected.bugpilot.requests("action")) == 1

    def test_the_same_idempotency_key_and_body_give_the_same_session_for_a_day(
        self, api: Api, connected: Desk
    ) -> None:
        # Given a capture created under a key, which has since been cancelled
        first = api.create(LAMBDATEST_BODY, key="req-1")
        assert first.status == 201
        api.call("DELETE", f"/sessions/{first.body['sessionId']}")
        # When the same request is sent again within the day
        api.clock.advance(hours=23)
        again = api.create(LAMBDATEST_BODY, key="req-1")
        # Then it is that session, not a new capture
        assert (again.status, again.body["sessionId"]) == (200, first.body["sessionId"])
        assert again.body["status"] == "cancelled"

    def test_the_same_idempotency_key_with_another_body_is_409(
        self, api: Api, connected: Desk
    ) -> None:
        api.create(BUGPILOT_BODY, key="req-1")
        reply = api.create({**BUGPILOT_BODY, "ticketId": "2002"}, key="req-1")
        assert reply.status == 409
        assert "Idempotency-Key" in reply.body["detail"]

    def test_a_lambdatest_session_is_named_not_started(self, api: Api, connected: Desk) -> None:
        connected.lambdatest.add_session(LT_SESSION, status="failed")
        reply = api.create(LAMBDATEST_BODY)
        assert (reply.status, reply.body["provider"], reply.body["status"]) == (
            201,
            "lambdatest",
            "pending",
        )
        assert reply.body["action"] == "test-session"
        assert connected.bugpilot.requests("action") == []

    def test_api_captures_are_counted_like_the_webhooks(
        self, api: Api, connected: Desk, capsys: pytest.CaptureFixture[str]
    ) -> None:
        api.create(BUGPILOT_BODY)
        emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
        names = {
            metric["Name"]
            for line in emitted
            if "_aws" in line
            for group in line["_aws"]["CloudWatchMetrics"]
            for metric in group["Metrics"]
        }
        assert {"CapturesRequested", "ActionsSent"} <= names

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({**BUGPILOT_BODY, "ticketId": None}, ["body", "ticketId"]),
            ({"ticketId": TICKET, "userId": USER}, ["body", "helpdesk"]),
            ({**BUGPILOT_BODY, "helpdesk": "kayako"}, ["body", "helpdesk"]),
            ({**BUGPILOT_BODY, "helpdesk": "Zen Desk"}, ["body", "helpdesk"]),
            ({**BUGPILOT_BODY, "ticketId": 1001}, ["body", "ticketId"]),
            ({**BUGPILOT_BODY, "ticketId": "x" * 65}, ["body", "ticketId"]),
            ({**BUGPILOT_BODY, "ticketId": "  "}, ["body", "ticketId"]),
            ({**BUGPILOT_BODY, "ticketId": "\ud800"}, ["body", "ticketId"]),
            ({**BUGPILOT_BODY, "provider": "loom"}, ["body", "provider"]),
            ({"helpdesk": "zendesk", "ticketId": TICKET}, ["body", "userId"]),
            ({"helpdesk": "zendesk", "ticketId": TICKET, "userId": None}, ["body", "userId"]),
            ({**BUGPILOT_BODY, "userEmail": "not-an-email"}, ["body", "userEmail"]),
            ({**BUGPILOT_BODY, "action": "upload-everything"}, ["body", "action"]),
            ({**BUGPILOT_BODY, "description": "x" * 1001}, ["body", "description"]),
            ({**BUGPILOT_BODY, "externalSessionId": LT_SESSION}, ["body", "externalSessionId"]),
            ({**BUGPILOT_BODY, "ticket_id": TICKET}, ["body", "ticket_id"]),
            ({**LAMBDATEST_BODY, "externalSessionId": None}, ["body", "externalSessionId"]),
            ({**LAMBDATEST_BODY, "externalSessionId": "no/slash"}, ["body", "externalSessionId"]),
            ({**LAMBDATEST_BODY, "userId": USER}, ["body", "userId"]),
            ({**LAMBDATEST_BODY, "provider": "notte"}, ["body", "externalSessionId"]),
        ],
    )
    def test_bad_fields_are_400_naming_each_and_store_nothing(
        self, api: Api, connected: Desk, body: dict[str, Any], loc: list[str]
    ) -> None:
        reply = api.create({name: value for name, value in body.items() if value is not None})
        assert reply.status == 400
        assert loc in [error["loc"] for error in reply.body["detail"]], reply.body
        assert connected.runtime.store.due_session_ids(START + timedelta(days=1), 5) == []

    @pytest.mark.parametrize("raw", [b"", b"[1]", b"{", b'"text"', b"\xff\xfe", b"[" * 60_000])
    def test_a_body_that_is_not_a_json_object_is_400(self, api: Api, raw: bytes) -> None:
        reply = api.call("POST", "/sessions", raw=raw)
        assert reply.status == 400
        assert reply.body["detail"][0]["loc"] == ["body"]

    @pytest.mark.parametrize("key", ["", "x" * 256, "tab\tin", "clé"])
    def test_a_bad_idempotency_key_is_400(self, api: Api, key: str) -> None:
        reply = api.call("POST", "/sessions", body=BUGPILOT_BODY, headers={"Idempotency-Key": key})
        assert reply.status == 400
        assert reply.body["detail"][0]["loc"] == ["header", "Idempotency-Key"]

    def test_a_body_over_64_kib_is_413(self, api: Api) -> None:
        padding = "x" * MAX_BODY_BYTES
        reply = api.call("POST", "/sessions", body={**BUGPILOT_BODY, "description": padding})
        assert reply.status == 413

    def test_a_body_api_gateway_could_not_have_encoded_is_400(self, api: Api) -> None:
        event = {
            "routeKey": "ANY /sessions",
            "headers": {"authorization": f"Bearer {TOKEN}"},
            "requestContext": {"http": {"method": "POST"}},
            "body": "not base64!",
            "isBase64Encoded": True,
        }
        answer = handle(event, runtime_factory=lambda: api.runtime)
        assert answer.status == 400
        contract.check_answer("POST", "/sessions", answer.status, answer.body)

    def test_only_post_reads_a_body(self, api: Api) -> None:
        reply = api.call("GET", f"/sessions/{UNKNOWN_ID}", raw=b"x" * (MAX_BODY_BYTES + 1))
        assert reply.status == 404

    def test_an_unusable_store_is_503(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        def down(*_: Any, **__: Any) -> Any:
            raise StoreUnavailable("DynamoDB is down")

        monkeypatch.setattr(api.runtime.store, "create", down)
        assert api.create(BUGPILOT_BODY).status == 503


# -- GET /sessions/{sessionId} -------------------------------------------------------------------


class TestShow:
    def test_a_session_is_shown_as_the_document_says(self, api: Api, connected: Desk) -> None:
        created = api.create(BUGPILOT_BODY).body
        reply = api.call("GET", f"/sessions/{created['sessionId']}")
        assert reply.status == 200
        assert reply.body["helpdesk"] == "zendesk" and reply.body["ticketId"] == TICKET
        assert reply.body["closedAt"] is None and reply.body["noteState"] is None

    def test_an_uppercase_id_is_the_same_session(self, api: Api, connected: Desk) -> None:
        created = api.create(BUGPILOT_BODY).body
        reply = api.call("GET", f"/sessions/{created['sessionId'].upper()}")
        assert reply.body["sessionId"] == created["sessionId"]

    @pytest.mark.parametrize("session_id", [UNKNOWN_ID, "not-a-uuid", "1", "%E2%9C%93"])
    def test_unknown_or_malformed_ids_are_404_naming_the_id(
        self, api: Api, session_id: str
    ) -> None:
        reply = api.call("GET", f"/sessions/{session_id}")
        assert reply.status == 404
        shown = "✓" if session_id == "%E2%9C%93" else session_id
        assert reply.body == {"detail": f"Session {shown} not found"}

    @pytest.mark.parametrize("query", [{"refresh": "yes"}, {"expand": "all"}])
    def test_bad_query_parameters_are_400(self, api: Api, query: dict[str, str]) -> None:
        reply = api.call("GET", f"/sessions/{UNKNOWN_ID}", query=query)
        assert reply.status == 400

    def test_refresh_reads_fresh_links_of_a_finished_session_without_a_note(
        self, api: Api, connected: Desk
    ) -> None:
        # Given a resolved LambdaTest session with its note posted, whose link has expired
        connected.lambdatest.add_session(LT_SESSION, status="failed")
        session_id = api.create(LAMBDATEST_BODY).body["sessionId"]
        connected.run()
        session = connected.session(session_id)
        expired = {**session.links, "share": "https://automation.lambdatest.com/share?x=old"}
        connected.runtime.store.save_links(replace(session, links=expired), seen=session.status)
        # When it is read with refresh=true
        reply = api.call("GET", f"/sessions/{session_id}", query={"refresh": "true"})
        # Then the fresh link is back, status and note unchanged, and no second note
        assert reply.status == 200
        assert reply.body["data"]["links"]["share"] == session.links["share"]
        assert (reply.body["status"], reply.body["noteState"]) == ("resolved", "posted")
        assert len(connected.notes()) == 1

    def test_refresh_with_the_source_down_is_503(
        self, api: Api, connected: Desk, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connected.lambdatest.add_session(LT_SESSION, status="failed")
        session_id = api.create(LAMBDATEST_BODY).body["sessionId"]
        connected.run()
        connected.lambdatest.script("session", 503)
        reply = api.call("GET", f"/sessions/{session_id}", query={"refresh": "true"})
        assert reply.status == 503


# -- GET /sessions -------------------------------------------------------------------------------


def put_sessions(table: str, count: int) -> list[CaptureSession]:
    """`count` pending sessions on one ticket, some created in the same second (plain PutItem)."""
    sessions = []
    with boto3.resource("dynamodb").Table(table).batch_writer() as batch:
        for number in range(count):
            request = CaptureRequest(
                helpdesk="zendesk",
                ticket_id=TICKET,
                provider="lambdatest",
                action="test-session",
                subject=f"lt-{number}",
                reference=f"lt-{number}",
            )
            # Two sessions per second: ties in the sort key must not lose or repeat one.
            created = START + timedelta(seconds=number // 2)
            session = CaptureSession.open(
                request,
                now=created,
                max_wait=timedelta(minutes=30),
                claim_id=None,
                next_check_at=created,
            )
            batch.put_item(Item=to_item(session))
            sessions.append(session)
    return sessions


class TestList:
    @pytest.mark.parametrize("page_size", PAGE_SIZES)
    @pytest.mark.parametrize("listing", ["ticket", "status"])
    def test_every_session_comes_exactly_once_newest_first(
        self, api: Api, env: dict[str, str], page_size: int, listing: str
    ) -> None:
        # Given 250 sessions on one ticket
        stored = put_sessions(env["TABLE_NAME"], MANY_SESSIONS)
        query = (
            {"helpdesk": "zendesk", "ticketId": TICKET}
            if listing == "ticket"
            else {"status": "pending"}
        )
        # When every page is read, following nextCursor
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = api.call(
                "GET",
                "/sessions",
                query={**query, "limit": str(page_size), **({"cursor": cursor} if cursor else {})},
            )
            assert page.status == 200 and len(page.body["sessions"]) <= page_size
            seen += page.body["sessions"]
            cursor = page.body["nextCursor"]
            if cursor is None:
                break
        # Then each session came exactly once, newest first
        ids = [session["sessionId"] for session in seen]
        assert len(ids) == len(set(ids)) == MANY_SESSIONS
        assert set(ids) == {session.session_id for session in stored}
        created = [session["createdAt"] for session in seen]
        assert created == sorted(created, reverse=True)

    def test_the_default_page_is_20_and_since_is_a_floor(
        self, api: Api, env: dict[str, str]
    ) -> None:
        put_sessions(env["TABLE_NAME"], 30)
        assert len(api.call("GET", "/sessions", query={"status": "pending"}).body["sessions"]) == 20
        since = (START + timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        page = api.call("GET", "/sessions", query={"status": "pending", "since": since}).body
        assert len(page["sessions"]) == 10 and page["nextCursor"] is None

    def test_a_cursor_cannot_be_taken_to_another_query(self, api: Api, env: dict[str, str]) -> None:
        put_sessions(env["TABLE_NAME"], 5)
        cursor = api.call(
            "GET", "/sessions", query={"helpdesk": "zendesk", "ticketId": TICKET, "limit": "2"}
        ).body["nextCursor"]
        for other in (
            {"helpdesk": "zendesk", "ticketId": "2002"},
            {"status": "pending"},
            {"status": "resolved"},
        ):
            reply = api.call("GET", "/sessions", query={**other, "cursor": cursor})
            assert reply.status == 400
            assert reply.body["detail"][0]["loc"] == ["query", "cursor"]

    @pytest.mark.parametrize(
        ("query", "loc"),
        [
            ({}, ["query"]),
            ({"helpdesk": "zendesk", "ticketId": TICKET, "status": "pending"}, ["query"]),
            ({"helpdesk": "zendesk"}, ["query", "ticketId"]),
            ({"status": "done"}, ["query", "status"]),
            ({"status": "pending", "limit": "0"}, ["query", "limit"]),
            ({"status": "pending", "limit": "101"}, ["query", "limit"]),
            ({"status": "pending", "limit": "ten"}, ["query", "limit"]),
            ({"status": "pending", "since": "yesterday"}, ["query", "since"]),
            ({"status": "pending", "since": "2026-11-25T12:00:00"}, ["query", "since"]),
            ({"status": "pending", "cursor": "x" * 2049}, ["query", "cursor"]),
            ({"status": "pending", "cursor": "bm90IGpzb24"}, ["query", "cursor"]),
            ({"status": "pending", "page": "2"}, ["query", "page"]),
        ],
    )
    def test_bad_queries_are_400_naming_the_parameter(
        self, api: Api, query: dict[str, str], loc: list[str]
    ) -> None:
        reply = api.call("GET", "/sessions", query=query)
        assert reply.status == 400
        assert loc in [error["loc"] for error in reply.body["detail"]], reply.body


# -- DELETE /sessions/{sessionId} ----------------------------------------------------------------


class TestCancel:
    def test_an_open_capture_is_cancelled_and_a_new_one_may_start(
        self, api: Api, connected: Desk
    ) -> None:
        created = api.create(BUGPILOT_BODY).body
        reply = api.call("DELETE", f"/sessions/{created['sessionId']}")
        assert reply.status == 200
        assert reply.body["status"] == "cancelled" and reply.body["noteState"] is None
        assert reply.body["closedAt"] is not None
        # And the ticket may ask again at once; the cancelled one never gets a note
        assert api.create(BUGPILOT_BODY).status == 201
        connected.bugpilot.complete_report(connected.bugpilot.tokens[0])
        connected.clock.advance(minutes=5)
        connected.run()
        assert all(created["sessionId"] not in note for note in connected.notes())

    def test_a_finished_session_is_409(self, api: Api, connected: Desk) -> None:
        connected.lambdatest.add_session(LT_SESSION, status="failed")
        session_id = api.create(LAMBDATEST_BODY).body["sessionId"]
        connected.run()
        reply = api.call("DELETE", f"/sessions/{session_id}")
        assert reply.status == 409
        assert "already finished" in reply.body["detail"]

    def test_a_session_held_by_a_holder_is_409_saying_to_try_again(
        self, api: Api, connected: Desk, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a resolver run holding the session, stuck in its check
        connected.lambdatest.add_session(LT_SESSION, status="running")
        session_id = api.create(LAMBDATEST_BODY).body["sessionId"]
        release, entered = threading.Event(), threading.Event()
        check = LambdaTestProvider.check

        def stuck(self: LambdaTestProvider, session: CaptureSession) -> Any:
            entered.set()
            release.wait(10)
            return check(self, session)

        monkeypatch.setattr(LambdaTestProvider, "check", stuck)
        holder = threading.Thread(target=connected.run)
        holder.start()
        assert entered.wait(10)
        try:
            # When it is cancelled meanwhile
            reply = api.call("DELETE", f"/sessions/{session_id}")
        finally:
            release.set()
            holder.join(10)
        # Then the caller is told to try again, after the cancel's pauses
        assert reply.status == 409
        assert "try again" in reply.body["detail"]
        assert reply.headers["Retry-After"]
        assert api.pauses
        # And once the holder is done, the cancel goes through
        assert api.call("DELETE", f"/sessions/{session_id}").status == 200

    @pytest.mark.parametrize("session_id", [UNKNOWN_ID, "nope"])
    def test_unknown_sessions_are_404(self, api: Api, session_id: str) -> None:
        reply = api.call("DELETE", f"/sessions/{session_id}")
        assert reply.body == {"detail": f"Session {session_id} not found"}


# -- methods, authorisation ----------------------------------------------------------------------


class TestMethodsAndAuthorization:
    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("PUT", "/sessions", "GET, POST"),
            ("DELETE", "/sessions", "GET, POST"),
            ("PATCH", f"/sessions/{UNKNOWN_ID}", "DELETE, GET"),
            ("POST", f"/sessions/{UNKNOWN_ID}", "DELETE, GET"),
        ],
    )
    def test_a_wrong_method_is_405_with_allow(
        self, api: Api, method: str, path: str, allowed: str
    ) -> None:
        reply = api.call(method, path)
        assert reply.status == 405
        assert reply.headers["Allow"] == allowed

    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "Bearer wrong-token",
            f"Basic {TOKEN}",
            "Bearer",
            f"Bearer {TOKEN}x",
            "Bearer \ud800",
        ],
    )
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/sessions"),
            ("GET", "/sessions"),
            ("GET", f"/sessions/{UNKNOWN_ID}"),
            ("DELETE", f"/sessions/{UNKNOWN_ID}"),
        ],
    )
    def test_a_missing_or_wrong_token_is_401_on_every_route(
        self, api: Api, authorization: str | None, method: str, path: str
    ) -> None:
        api.token = None
        headers = {} if authorization is None else {"Authorization": authorization}
        reply = api.call(method, path, body=BUGPILOT_BODY, headers=headers)
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"] == "Bearer"

    @pytest.mark.parametrize("configured", ["", "   "])
    def test_token_mode_without_a_token_refuses_every_call(
        self, env: dict[str, str], clock: Clock, configured: str
    ) -> None:
        # Given a token stack whose secret has no (or a blank) token
        runtime = runtime_with(env, SESSIONS_API_TOKEN=configured, SESSIONS_API_AUTH="token")
        api = Api(runtime, clock)
        # Then even an empty bearer is refused, never let through
        for token in (None, "", configured):
            api.token = None if token is None else token
            reply = api.call("GET", "/sessions", query={"status": "pending"})
            assert reply.status == 401

    def test_an_unknown_mode_is_token_mode(self, env: dict[str, str], clock: Clock) -> None:
        api = Api(runtime_with(env, SESSIONS_API_AUTH="open"), clock)
        api.token = None
        assert api.call("GET", "/sessions", query={"status": "pending"}).status == 401

    def test_iam_mode_without_a_token_refuses_every_call_iam_did_not_verify(
        self, env: dict[str, str], clock: Clock
    ) -> None:
        # Given an IAM stack without a token, and a call no IAM authorizer verified (as on the
        # local runner, which has none)
        api = Api(runtime_with(env, SESSIONS_API_AUTH="iam"), clock)
        api.token = None
        # Then it is refused, naming the token: the API is never open
        reply = api.call("GET", "/sessions", query={"status": "pending"})
        assert reply.status == 401
        assert "SESSIONS_API_TOKEN" in reply.body["detail"]
        # Given an IAM stack with a token: the token is enforced on unsigned calls
        api.runtime = runtime_with(env, SESSIONS_API_AUTH="iam", SESSIONS_API_TOKEN=TOKEN)
        assert api.call("GET", "/sessions", query={"status": "pending"}).status == 401

    @pytest.mark.parametrize("token", [TOKEN, ""], ids=["token-set", "no-token"])
    def test_a_call_api_gateway_verified_by_iam_needs_no_token(
        self, env: dict[str, str], token: str
    ) -> None:
        runtime = runtime_with(env, SESSIONS_API_AUTH="iam", SESSIONS_API_TOKEN=token)
        event = {
            "routeKey": "ANY /sessions",
            "rawPath": "/sessions",
            "queryStringParameters": {"status": "pending"},
            "headers": {"authorization": "AWS4-HMAC-SHA256 Credential=..."},
            "requestContext": {
                "http": {"method": "GET"},
                "authorizer": {"iam": {"accountId": "123456789012", "userArn": "arn:aws:iam::1"}},
            },
        }
        answer = handle(event, runtime_factory=lambda: runtime)
        assert answer.status == 200


# -- the document and the template ---------------------------------------------------------------


def test_the_documents_paths_and_methods_are_the_templates_routes_and_the_handlers() -> None:
    template = load_template(ROOT / "template.yaml")
    routed = {r.path for r, f in template.routes if f.logical_id == "SessionsFunction"}
    # Every path is routed to the function with ANY (the function answers 405 itself) ...
    assert {r.method for r, f in template.routes if f.logical_id == "SessionsFunction"} == {"ANY"}
    assert set(contract.document()["paths"]) == routed == set(ROUTES)
    # ... and the document's operations are exactly the handler's route table
    for path, item in contract.document()["paths"].items():
        methods = {name.upper() for name in item if name != "parameters"}
        assert methods == set(ROUTES[path]), path


def test_the_lambda_handler_answers_through_the_same_function(
    api: Api, connected: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessions_handler import lambda_handler

    monkeypatch.setattr("capture_bridge.api.edge.get_runtime", lambda: api.runtime)
    event = {
        "routeKey": "ANY /sessions/{sessionId}",
        "pathParameters": {"sessionId": UNKNOWN_ID},
        "headers": {"authorization": f"Bearer {TOKEN}"},
        "requestContext": {"http": {"method": "GET"}},
    }
    response = lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 404
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == {"detail": f"Session {UNKNOWN_ID} not found"}


def test_the_local_runner_serves_the_document_as_json() -> None:
    # Given the local runner's gateway with the project's documents
    documents = openapi_documents(ROOT)
    gateway = ApiGateway([], lambda *_: None, documents)
    # When GET /openapi.json is asked for
    response = gateway.handle("GET", "/openapi.json", [], b"", "127.0.0.1")
    # Then the answer is the YAML document as JSON
    assert response.status == 200
    assert json.loads(response.body) == contract.document()
    assert gateway.handle("POST", "/openapi.json", [], b"", "127.0.0.1").status == 404
