"""Help Scout's token, notes, look-ups and probe over real HTTP, against its simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from capture_bridge.access import Access
from capture_bridge.capture import requests_for
from capture_bridge.helpdesks import LookupOutcome, NoteOutcome
from capture_bridge.helpdesks.helpscout import (
    RENEW_BEFORE_SECONDS,
    HelpScoutAdapter,
    HelpScoutSettings,
    probe,
)
from capture_bridge.http import HttpClient
from local_runner.simulators import HelpScoutSimulator
from local_runner.simulators._server import JsonHttpServer, RecordedRequest, Reply
from tests.unit.test_helpscout_adapter import (
    APP_ID,
    APP_SECRET,
    CONVERSATION,
    HTTP_CREATED,
    NOTTE_SESSION,
    SECRET,
    TOKEN_LIFETIME,
    X_NOTE,
    FakeClock,
    conversation,
    make_settings,
    text_note,
)

# A client read timeout shorter than the simulator's scripted delay: the call times out.
SHORT_TIMEOUT = (1.0, 0.5)
SLOW_ANSWER_SECONDS = 1.5
RETRY_AFTER = 17
RESOLVER_THREADS = 8
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_NOT_FOUND = 404
HTTP_TOO_MANY = 429


@pytest.fixture
def desk() -> Iterator[HelpScoutSimulator]:
    with HelpScoutSimulator(
        app_id=APP_ID, app_secret=APP_SECRET, webhook_secret=SECRET
    ) as simulator:
        yield simulator


def adapter_for(
    simulator: HelpScoutSimulator | None = None, clock: FakeClock | None = None, **values: str
) -> HelpScoutAdapter:
    if simulator is not None:
        values = simulator.bridge_settings() | values
    settings = HelpScoutSettings.from_settings(make_settings(**values))
    return HelpScoutAdapter(
        settings, HttpClient(), timeout=SHORT_TIMEOUT, clock=clock or FakeClock()
    )


class OddAnswers(JsonHttpServer):
    """Grants tokens, and answers every other call with one fixed reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply

    def handle(self, request: RecordedRequest) -> Reply:
        if request.route == "/v2/oauth2/token":
            return Reply(200, {"access_token": "t", "expires_in": TOKEN_LIFETIME})
        return self.reply


class TestNotes:
    def test_posts_the_note_as_html_text_with_a_bearer_token(
        self, desk: HelpScoutSimulator
    ) -> None:
        # When a note is posted
        result = adapter_for(desk).post_note(CONVERSATION, text_note("hello agents"))
        # Then it is one note, its text the note's HTML, posted with the token just granted
        assert (result.outcome, result.status) == (NoteOutcome.POSTED, HTTP_CREATED)
        [token] = desk.requests("token")
        [post] = desk.requests("note")
        assert post.route == f"/v2/conversations/{CONVERSATION}/notes"
        assert post.json() == {"text": "<p>hello agents</p>"}
        assert token.body.startswith(b"grant_type=client_credentials&")
        assert post.headers["authorization"].startswith("Bearer ")
        assert desk.internal_notes(CONVERSATION) == ["<p>hello agents</p>"]

    def test_payload_markup_stays_text_and_the_report_is_a_link(
        self, desk: HelpScoutSimulator
    ) -> None:
        report = "https://dash.bugpilot.io/report/abc"
        note = text_note(
            'Said: <script>alert(1)</script> "><img src=x onerror=alert(1)>',
            f"Report: {report}",
            links=(report,),
        )
        adapter_for(desk).post_note(CONVERSATION, note)
        [sent] = desk.internal_notes(CONVERSATION)
        assert "<script>" not in sent and "<img" not in sent
        assert "&lt;script&gt;" in sent
        assert sent.count("<a ") == 1
        assert f'<a href="{report}">' in sent

    def test_rate_limit_is_retryable_after_x_ratelimit_retry_after(
        self, desk: HelpScoutSimulator
    ) -> None:
        desk.script("note", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        result = adapter_for(desk).post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.retry_after_seconds, result.status) == (
            NoteOutcome.RETRYABLE,
            RETRY_AFTER,
            HTTP_TOO_MANY,
        )
        assert desk.internal_notes(CONVERSATION) == []

    @pytest.mark.parametrize("status", [500, 503])
    def test_server_errors_are_retryable(self, desk: HelpScoutSimulator, status: int) -> None:
        desk.script("note", status)
        assert adapter_for(desk).post_note(CONVERSATION, X_NOTE).outcome is NoteOutcome.RETRYABLE

    def test_timeouts_are_retryable(self, desk: HelpScoutSimulator) -> None:
        desk.script("note", 200, delay=SLOW_ANSWER_SECONDS)
        assert adapter_for(desk).post_note(CONVERSATION, X_NOTE).outcome is NoteOutcome.RETRYABLE

    def test_a_wrong_app_secret_is_rejected_without_a_post(self, desk: HelpScoutSimulator) -> None:
        result = adapter_for(desk, HELPSCOUT_APP_SECRET="wrong").post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, HTTP_UNAUTHORIZED)
        assert desk.requests("note") == []

    def test_a_missing_conversation_is_rejected(self) -> None:
        with HelpScoutSimulator(known_conversations={"1"}) as desk:
            result = adapter_for(desk).post_note("2", X_NOTE)
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, HTTP_NOT_FOUND)


class TestToken:
    def test_one_token_for_many_notes(self, desk: HelpScoutSimulator) -> None:
        adapter = adapter_for(desk)
        for _ in range(5):
            assert adapter.post_note(CONVERSATION, X_NOTE).outcome is NoteOutcome.POSTED
        assert desk.token_requests == 1
        assert len(desk.internal_notes(CONVERSATION)) == 5

    def test_the_resolvers_threads_share_one_token_request(self, desk: HelpScoutSimulator) -> None:
        # Given one adapter, as the resolver's threads share it, and no token yet
        adapter = adapter_for(desk)
        # When its threads post notes at the same moment
        with ThreadPoolExecutor(RESOLVER_THREADS) as pool:
            results = list(
                pool.map(
                    lambda number: adapter.post_note(str(1000 + number), X_NOTE),
                    range(RESOLVER_THREADS),
                )
            )
        # Then every note is posted, and Help Scout was asked for one token
        assert {result.outcome for result in results} == {NoteOutcome.POSTED}
        assert desk.token_requests == 1
        assert len({post.headers["authorization"] for post in desk.requests("note")}) == 1

    def test_an_expiring_token_is_renewed_before_it_is_refused(
        self, desk: HelpScoutSimulator
    ) -> None:
        # Given a token granted for two days
        clock = FakeClock()
        adapter = adapter_for(desk, clock)
        adapter.post_note(CONVERSATION, X_NOTE)
        # When two days, all but the renewal margin, have passed
        clock.now += TOKEN_LIFETIME - RENEW_BEFORE_SECONDS
        adapter.post_note(CONVERSATION, X_NOTE)
        # Then a new token was asked for before the post, which Help Scout never refused
        assert desk.token_requests == 2
        first, second = (post.headers["authorization"] for post in desk.requests("note"))
        assert first != second
        assert [request.route.rsplit("/", 1)[-1] for request in desk.requests()] == [
            "token",
            "notes",
            "token",
            "notes",
        ]

    def test_a_token_help_scout_let_expire_is_renewed_after_its_401(
        self, desk: HelpScoutSimulator
    ) -> None:
        # Given a token in hand that Help Scout has since expired (short-lived, or revoked)
        adapter = adapter_for(desk)
        adapter.post_note(CONVERSATION, X_NOTE)
        desk.expire_tokens()
        # When the next note is posted
        result = adapter.post_note(CONVERSATION, X_NOTE)
        # Then the 401 brings one new token, and the note lands once with it
        assert result.outcome is NoteOutcome.POSTED
        assert desk.token_requests == 2
        assert len(desk.internal_notes(CONVERSATION)) == 2
        assert len(desk.requests("note")) == 3

    def test_a_token_short_lived_by_help_scout_is_renewed_at_half_its_life(self) -> None:
        with HelpScoutSimulator(app_id=APP_ID, app_secret=APP_SECRET, token_lifetime=60) as desk:
            clock = FakeClock()
            adapter = adapter_for(desk, clock)
            adapter.post_note(CONVERSATION, X_NOTE)
            clock.now += 29
            adapter.post_note(CONVERSATION, X_NOTE)
            assert desk.token_requests == 1
            clock.now += 1
            adapter.post_note(CONVERSATION, X_NOTE)
            assert desk.token_requests == 2

    def test_a_revoked_app_is_rejected_after_one_new_token(self, desk: HelpScoutSimulator) -> None:
        # Given Help Scout refusing every token (the app's access was revoked)
        adapter = adapter_for(desk)
        adapter.post_note(CONVERSATION, X_NOTE)
        desk.script("note", HTTP_UNAUTHORIZED, times=2)
        # Then the note is tried with one new token, and rejected
        result = adapter.post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.status) == (NoteOutcome.REJECTED, HTTP_UNAUTHORIZED)
        assert desk.token_requests == 2

    def test_a_rate_limited_token_request_is_retryable(self, desk: HelpScoutSimulator) -> None:
        desk.script("token", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        result = adapter_for(desk).post_note(CONVERSATION, X_NOTE)
        assert (result.outcome, result.retry_after_seconds) == (NoteOutcome.RETRYABLE, RETRY_AFTER)
        assert desk.requests("note") == []


class TestHasNote:
    def test_finds_the_marker_once_the_note_is_there(self, desk: HelpScoutSimulator) -> None:
        adapter = adapter_for(desk)
        assert adapter.has_note(CONVERSATION, "Capture session: s-1") is False
        adapter.post_note(CONVERSATION, text_note("text", "Capture session: s-1"))
        assert adapter.has_note(CONVERSATION, "Capture session: s-1") is True
        assert adapter.has_note(CONVERSATION, "Capture session: s-2") is False
        assert (
            desk.requests("threads")[-1].path == f"/v2/conversations/{CONVERSATION}/threads?page=1"
        )

    def test_reads_the_newest_threads_first(self, desk: HelpScoutSimulator) -> None:
        # Given a conversation with more than a page of threads before our note
        for number in range(40):
            desk.add_thread(CONVERSATION, f"reply {number}")
        adapter = adapter_for(desk)
        adapter.post_note(CONVERSATION, text_note("Capture session: s-1"))
        # Then the note is found on the first page, which holds the newest
        assert adapter.has_note(CONVERSATION, "Capture session: s-1") is True
        assert len(desk.requests("threads")) == 1

    def test_more_threads_than_a_page_without_the_marker_is_unknown(
        self, desk: HelpScoutSimulator
    ) -> None:
        for number in range(40):
            desk.add_thread(CONVERSATION, f"reply {number}")
        assert adapter_for(desk).has_note(CONVERSATION, "Capture session: s-1") is None

    def test_a_marker_in_a_reply_counts_too(self, desk: HelpScoutSimulator) -> None:
        desk.add_thread(CONVERSATION, "FYI Capture session: s-1", kind="message")
        assert adapter_for(desk).has_note(CONVERSATION, "Capture session: s-1") is True

    @pytest.mark.parametrize("status", [401, 404, 429, 500])
    def test_an_error_answer_is_unknown(self, desk: HelpScoutSimulator, status: int) -> None:
        desk.script("threads", status)
        assert adapter_for(desk).has_note(CONVERSATION, "m") is None

    def test_a_401_drops_the_token_for_the_next_call(self, desk: HelpScoutSimulator) -> None:
        adapter = adapter_for(desk)
        adapter.post_note(CONVERSATION, X_NOTE)
        desk.expire_tokens()
        assert adapter.has_note(CONVERSATION, "m") is None
        assert desk.token_requests == 1
        assert adapter.has_note(CONVERSATION, "m") is False
        assert desk.token_requests == 2

    def test_a_timeout_is_unknown(self, desk: HelpScoutSimulator) -> None:
        desk.script("threads", 200, delay=SLOW_ANSWER_SECONDS)
        assert adapter_for(desk).has_note(CONVERSATION, "m") is None

    @pytest.mark.parametrize(
        "body", [{"_embedded": {"threads": []}}, {"page": {}}, None, [], {"_embedded": []}]
    )
    def test_an_answer_it_cannot_read_is_unknown(self, body: Any) -> None:
        with OddAnswers(Reply(200, body)) as server:
            adapter = adapter_for(
                HELPSCOUT_API_URL=server.url, HELPSCOUT_APP_ID=APP_ID, HELPSCOUT_APP_SECRET="s"
            )
            assert adapter.has_note(CONVERSATION, "m") is None


class TestFindRequester:
    def test_the_customers_first_email_is_the_requester(self, desk: HelpScoutSimulator) -> None:
        customer = desk.add_customer("ada@example.com", "ada@home.example")
        found = adapter_for(desk).find_requester(str(customer))
        assert (found.outcome, found.user) == (LookupOutcome.FOUND, "ada@example.com")
        [call] = desk.requests("customer")
        assert call.route == f"/v2/customers/{customer}"

    def test_a_customer_without_email_is_not_found(self, desk: HelpScoutSimulator) -> None:
        customer = desk.add_customer()
        found = adapter_for(desk).find_requester(str(customer))
        assert found.outcome is LookupOutcome.NOT_FOUND
        assert "no email" in found.message

    def test_an_unknown_customer_is_not_found(self, desk: HelpScoutSimulator) -> None:
        assert adapter_for(desk).find_requester("99").outcome is LookupOutcome.NOT_FOUND

    def test_a_rate_limit_is_retryable_with_its_wait(self, desk: HelpScoutSimulator) -> None:
        desk.script("customer", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        found = adapter_for(desk).find_requester(str(desk.add_customer("a@example.com")))
        assert (found.outcome, found.retry_after_seconds) == (LookupOutcome.RETRYABLE, RETRY_AFTER)

    def test_refused_app_credentials_are_rejected(self, desk: HelpScoutSimulator) -> None:
        adapter = adapter_for(desk, HELPSCOUT_APP_SECRET="wrong")
        assert adapter.find_requester("1").outcome is LookupOutcome.REJECTED

    def test_an_unreachable_help_scout_is_retryable(self) -> None:
        with HelpScoutSimulator() as desk:
            adapter = adapter_for(desk)
        assert adapter.find_requester("1").outcome is LookupOutcome.RETRYABLE

    def test_a_reference_that_is_no_customer_id_is_not_looked_up(
        self, desk: HelpScoutSimulator
    ) -> None:
        assert adapter_for(desk).find_requester("1/../users").outcome is LookupOutcome.NOT_FOUND
        assert desk.requests() == []


class TestProbe:
    def test_names_the_user_the_app_writes_as(self, desk: HelpScoutSimulator) -> None:
        check = probe(make_settings(**desk.bridge_settings()), HttpClient())
        assert check.access is Access.OK
        assert "bridge-agent@example.com" in check.detail
        assert desk.token_requests == 1

    def test_a_wrong_app_secret_is_rejected(self, desk: HelpScoutSimulator) -> None:
        values = desk.bridge_settings() | {"HELPSCOUT_APP_SECRET": "wrong"}
        check = probe(make_settings(**values), HttpClient())
        assert check.access is Access.REJECTED
        assert "HELPSCOUT_APP_SECRET" in check.detail

    def test_rate_limiting_is_reported_as_such(self, desk: HelpScoutSimulator) -> None:
        desk.script("me", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        check = probe(make_settings(**desk.bridge_settings()), HttpClient())
        assert check.access is Access.RATE_LIMITED

    def test_unconfigured_names_what_is_missing_without_a_call(self) -> None:
        check = probe(make_settings(), HttpClient())
        assert check.access is Access.NOT_CONFIGURED
        assert "HELPSCOUT_APP_ID" in check.detail and "HELPSCOUT_APP_SECRET" in check.detail


class TestSimulator:
    def call(
        self, desk: HelpScoutSimulator, method: str, path: str, **request: Any
    ) -> tuple[int, Any, dict[str, str]]:
        answer = HttpClient().request(method, f"{desk.url}{path}", timeout=(1.0, 2.0), **request)
        return answer.status, answer.json(), dict(answer.headers)

    def token(self, desk: HelpScoutSimulator, secret: str = APP_SECRET) -> tuple[int, Any]:
        form = f"grant_type=client_credentials&client_id={APP_ID}&client_secret={secret}"
        status, body, _ = self.call(
            desk,
            "POST",
            "/v2/oauth2/token",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=form.encode(),
        )
        return status, body

    def test_grants_expiring_tokens_for_the_app_credentials_only(
        self, desk: HelpScoutSimulator
    ) -> None:
        status, body = self.token(desk)
        assert status == 200
        assert body["expires_in"] == TOKEN_LIFETIME
        assert self.token(desk, "wrong") == (HTTP_UNAUTHORIZED, {"error": "invalid_client"})
        status, _, _ = self.call(
            desk, "POST", "/v2/oauth2/token", json_body={"grant_type": "client_credentials"}
        )
        assert status == HTTP_BAD_REQUEST
        assert desk.token_requests == 3

    def test_refuses_calls_without_a_live_token(self, desk: HelpScoutSimulator) -> None:
        _, body = self.token(desk)
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        path = "/v2/conversations/1/notes"
        assert self.call(desk, "POST", path, json_body={"text": "x"}, headers=bearer)[0] == 201
        desk.revoke_tokens()
        status, error, _ = self.call(desk, "POST", path, json_body={"text": "x"}, headers=bearer)
        assert status == HTTP_UNAUTHORIZED and "logRef" in error
        assert self.call(desk, "POST", path, json_body={"text": "x"})[0] == HTTP_UNAUTHORIZED

    def test_a_note_is_201_without_a_body_and_names_its_thread(
        self, desk: HelpScoutSimulator
    ) -> None:
        _, body = self.token(desk)
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        status, answer, headers = self.call(
            desk, "POST", "/v2/conversations/1/notes", json_body={"text": "x"}, headers=bearer
        )
        assert (status, answer) == (HTTP_CREATED, None)
        assert headers["Resource-ID"] == str(desk.threads("1")[0]["id"])
        status, _, _ = self.call(
            desk, "POST", "/v2/conversations/1/notes", json_body={"text": " "}, headers=bearer
        )
        assert status == HTTP_BAD_REQUEST

    def test_a_scripted_429_says_when_to_come_back(self, desk: HelpScoutSimulator) -> None:
        desk.script("note", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        status, _, headers = self.call(desk, "POST", "/v2/conversations/1/notes")
        assert status == HTTP_TOO_MANY
        assert headers["X-RateLimit-Retry-After"] == str(RETRY_AFTER)

    def test_its_webhook_body_is_the_conversation_object(self, desk: HelpScoutSimulator) -> None:
        made = json.loads(
            desk.webhook_body(
                CONVERSATION, user_id="user-42", email="ada@example.com", tags="a b", fields={}
            )
        )
        assert set(made) <= set(conversation()) | {"state", "createdAt"}
        assert [tag["tag"] for tag in made["tags"]] == ["a", "b"]
        # Named by id only: the customer's email (the demo's user id) is looked up
        assert "email" not in made["primaryCustomer"]
        customer = str(made["primaryCustomer"]["id"])
        assert adapter_for(desk).find_requester(customer).user == "user-42"

    @pytest.mark.parametrize(
        ("fields", "provider"),
        [
            ({"lambdatest_session_id": "bc02fd99593f14e37850745d66197f89"}, "lambdatest"),
            ({"text": f"Reproduced in https://console.notte.cc/sessions/{NOTTE_SESSION}"}, "notte"),
        ],
    )
    def test_the_demo_links_a_named_session_in_the_subject_and_tags_capture_links(
        self, desk: HelpScoutSimulator, fields: dict[str, str], provider: str
    ) -> None:
        # given the demo naming a LambdaTest session, or linking a Notte one in its text
        body = desk.webhook_body(
            CONVERSATION, user_id="", email="qa@example.com", tags="qa", fields=fields
        )
        # when the adapter reads the body Help Scout would send
        ticket = adapter_for(desk).parse(body)
        # then the subject links the session and the conversation is tagged capture_links
        assert ticket.tags == ("qa", "capture_links")
        [capture] = requests_for(ticket, make_settings(), HttpClient())
        assert capture.provider == provider
        assert capture.reference in ticket.fields["text"]

    def test_a_demo_body_naming_no_session_gets_no_capture_links_tag(
        self, desk: HelpScoutSimulator
    ) -> None:
        made = json.loads(
            desk.webhook_body(
                CONVERSATION,
                user_id="user-42",
                email="",
                tags="bugpilot_session vip",
                fields={"description": "Checkout freezes"},
            )
        )
        assert [tag["tag"] for tag in made["tags"]] == ["bugpilot_session", "vip"]
        assert made["subject"] == "Checkout freezes"
