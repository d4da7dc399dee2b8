"""Help Scout end to end: webhook, resolver and note against moto and the simulators; the shared
token across warm calls and the resolver's threads, redeliveries, the rate limit, hostile
payloads, the requester look-up, LambdaTest and Notte sessions asked for with `capture_links`,
the events file and `sign-event`."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from capture_bridge.helpdesks.helpscout import DEDUPE_WINDOW
from capture_bridge.models import NoteState
from capture_bridge.observability import logger
from capture_bridge.webhook import receive, receive_event
from local_runner.simulators import (
    BugpilotSimulator,
    HelpScoutSimulator,
    LambdaTestSimulator,
    NotteSimulator,
)
from tests.conftest import EVENTS, ROOT, START, Clock, load_event, runtime_with
from tests.helpdesk_desk import HelpdeskDesk, stored
from tests.unit.test_helpscout_adapter import (
    APP_ID,
    APP_SECRET,
    CONVERSATION,
    CUSTOMER_ID,
    EMAIL,
    LAMBDATEST_LINK,
    LAMBDATEST_SESSION,
    NOTTE_LINK,
    NOTTE_SESSION,
    SECRET,
    signed,
    tags_body,
)

RETRY_AFTER = 90
HOUR_LATER_RETRY = timedelta(minutes=65)
WELL_AFTER_THE_WINDOW = timedelta(hours=3)
# Conversations asking at once, more than the resolver's threads.
MANY = 6
HTTP_OK = 200
HTTP_ACCEPTED = 202
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_TOO_MANY = 429
HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<a href='javascript:alert(1)'>x</a>",
)


@pytest.fixture
def helpscout() -> Iterator[HelpScoutSimulator]:
    with HelpScoutSimulator(app_id=APP_ID, app_secret=APP_SECRET, webhook_secret=SECRET) as sim:
        yield sim


@pytest.fixture
def hs_env(env: dict[str, str], helpscout: HelpScoutSimulator) -> dict[str, str]:
    return env | helpscout.bridge_settings()


Desk = HelpdeskDesk[HelpScoutSimulator]


@pytest.fixture
def desk(
    hs_env: dict[str, str], clock: Clock, helpscout: HelpScoutSimulator, bugpilot: BugpilotSimulator
) -> Desk:
    bugpilot.connect_user(EMAIL)
    return Desk(
        runtime_with(hs_env),
        clock,
        helpscout,
        bugpilot,
        hs_env["TABLE_NAME"],
        proof=lambda body, at: signed(body),
    )


def notes_on(desk: Desk, conversation: str = CONVERSATION) -> list[str]:
    return desk.notes(conversation)


class TestOneNotePerCapture:
    def test_a_tagged_conversation_gets_one_capture_and_exactly_one_note(self, desk: Desk) -> None:
        # Given Help Scout's convo.tags delivery for a conversation tagged bugpilot_session
        session_id = desk.created(tags_body())
        # Then one session is stored and Bugpilot is asked once, for the customer's email
        assert desk.runtime.store.get(session_id) is not None
        [action] = desk.bugpilot.requests("action")
        assert action.json()["userId"] == EMAIL
        # When the user's report exists and the resolver runs
        report = desk.report_ready(session_id)
        # Then exactly one note holds the marker and the report as a link
        [post] = desk.simulator.requests("note")
        assert post.route == f"/v2/conversations/{CONVERSATION}/notes"
        assert set(post.json()) == {"text"}
        [note] = notes_on(desk)
        assert f"Capture session: {session_id}" in note
        assert f'<a href="{report}">' in note
        assert desk.note_state(session_id) is NoteState.POSTED
        # And another resolver run later adds nothing
        desk.clock.advance(hours=1)
        desk.run()
        assert len(desk.simulator.threads(CONVERSATION)) == 1

    def test_a_customer_named_by_id_only_is_looked_up_once(self, desk: Desk) -> None:
        # Given a payload whose primary customer has no email, only its id
        customer = desk.simulator.add_customer(EMAIL)
        body = tags_body(primaryCustomer={"id": customer, "type": "customer"})
        # When it is delivered, and delivered again
        session_id = desk.created(body)
        desk.send(body)
        # Then Help Scout was asked once who that is, and Bugpilot once for that email
        [lookup] = desk.simulator.requests("customer")
        assert lookup.route == f"/v2/customers/{customer}"
        [action] = desk.bugpilot.requests("action")
        assert action.json()["userId"] == EMAIL
        # And the note lands once
        desk.report_ready(session_id)
        assert len(notes_on(desk)) == 1
        assert len(desk.simulator.requests("customer")) == 1

    def test_a_customer_without_any_email_fails_with_a_note_saying_why(self, desk: Desk) -> None:
        customer = desk.simulator.add_customer()
        session_id = desk.created(tags_body(primaryCustomer={"id": customer}))
        desk.run_when_due(session_id)
        assert desk.bugpilot.requests("action") == []
        [note] = notes_on(desk)
        assert f"Capture session: {session_id}" in note
        assert len(desk.simulator.requests("customer")) == 1


class TestTheToken:
    def test_warm_invocations_with_equal_settings_share_one_token(
        self, desk: Desk, hs_env: dict[str, str]
    ) -> None:
        # Given conversations naming their customer by id (so each webhook call asks Help Scout
        # who that is), each delivered to a runtime built afresh from equal settings, as a warm
        # function re-reads its settings between invocations
        customer = desk.simulator.add_customer(EMAIL)
        sessions = []
        for number in range(MANY):
            body = tags_body(id=1001 + number, primaryCustomer={"id": customer})
            answer = desk.send(body, runtime=runtime_with(hs_env))
            assert answer.status == HTTP_ACCEPTED, answer.body
            sessions.append(answer.body["session_id"])
        # When each report is ready and a resolver invocation, again with its own runtime,
        # writes its note
        for session_id, token in zip(sessions, desk.bugpilot.tokens, strict=True):
            desk.bugpilot.complete_report(token)
            desk.runtime = runtime_with(hs_env)
            desk.run_when_due(session_id)
        # Then every look-up and note was made, with the one token Help Scout granted
        assert len(desk.simulator.requests("customer")) == MANY
        for number in range(MANY):
            assert len(notes_on(desk, str(1001 + number))) == 1
        assert desk.simulator.token_requests == 1
        calls = desk.simulator.requests("customer") + desk.simulator.requests("note")
        assert len({call.headers["authorization"] for call in calls}) == 1

    def test_the_resolvers_threads_ask_for_one_token(
        self, desk: Desk, hs_env: dict[str, str]
    ) -> None:
        # Given a resolver running many notes on its threads at once
        runtime = runtime_with(hs_env, RESOLVER_CONCURRENCY=str(MANY))
        desk.runtime = runtime
        sessions = [desk.created(tags_body(id=2001 + number)) for number in range(MANY)]
        for token in desk.bugpilot.tokens:
            desk.bugpilot.complete_report(token)
        desk.simulator.script("note", 200, delay=0.2, times=MANY)
        for session_id in sessions:
            session = runtime.store.get(session_id)
            assert session is not None and session.next_check_at is not None
            desk.clock.now = max(desk.clock.now, session.next_check_at)
        # When it runs
        desk.run()
        # Then all notes landed with one token
        assert [desk.note_state(session_id) for session_id in sessions] == [NoteState.POSTED] * MANY
        assert desk.simulator.token_requests == 1

    def test_a_token_help_scout_expired_is_renewed_once_and_the_note_lands_once(
        self, desk: Desk
    ) -> None:
        # Given a token the bridge holds (its first note), then expired by Help Scout
        first = desk.created(tags_body())
        desk.report_ready(first)
        desk.simulator.expire_tokens()
        # When the next note is due
        second = desk.created(tags_body(id=1002))
        desk.report_ready(second)
        # Then one new token, and the note posted once with it
        assert desk.simulator.token_requests == 2
        assert len(notes_on(desk, "1002")) == 1
        assert desk.note_state(second) is NoteState.POSTED


class TestRefusals:
    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({"Content-Type": "application/json"}, "missing X-HelpScout-Signature"),
            ({"X-HelpScout-Event": "convo.tags"}, "missing X-HelpScout-Signature"),
            (signed(tags_body(), "wrong-secret"), "does not match"),
            (signed(tags_body(subject="what was signed")), "does not match"),
            ({"X-HelpScout-Signature": "sha1=abc", "X-HelpScout-Event": "convo.tags"}, "match"),
        ],
    )
    def test_forged_or_unsigned_deliveries_are_401_and_touch_nothing(
        self, desk: Desk, headers: dict[str, str], reason: str
    ) -> None:
        answer = desk.send(tags_body(), headers)
        assert answer.status == HTTP_UNAUTHORIZED
        assert reason in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []
        assert desk.simulator.requests() == []

    def test_without_a_webhook_secret_every_delivery_is_401_naming_the_key(
        self,
        hs_env: dict[str, str],
        clock: Clock,
        bugpilot: BugpilotSimulator,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        runtime = runtime_with(hs_env, HELPSCOUT_WEBHOOK_SECRET="")
        errors: list[str] = []
        monkeypatch.setattr(
            logger,
            "error",
            lambda message, *args, **kwargs: errors.append(f"{message} {kwargs.get('extra')}"),
        )
        answer = receive(
            "helpscout",
            signed(tags_body(), ""),
            tags_body().decode(),
            is_base64=False,
            runtime_factory=lambda: runtime,
            clock=clock,
        )
        assert answer.status == HTTP_UNAUTHORIZED
        assert "HELPSCOUT_WEBHOOK_SECRET" in answer.body["error"]
        assert any("HELPSCOUT_WEBHOOK_SECRET" in line for line in errors), errors
        assert stored(hs_env["TABLE_NAME"]) == 0
        assert bugpilot.requests("action") == []

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "body is not valid JSON"),
            (b"[1001]", "body must be a JSON object"),
            (tags_body(id=None), "id (the conversation's) is required"),
            (tags_body(id="1001; DROP"), "id must be a Help Scout conversation id"),
            (tags_body(tags="bugpilot_session"), "tags must be a list"),
            (tags_body(tags=[{"color": "red"}]), "tags must be a list"),
            (tags_body(primaryCustomer=[EMAIL]), "primaryCustomer must be an object"),
            (tags_body(primaryCustomer={"email": 7.5}), "primaryCustomer.email must be a string"),
            (tags_body(primaryCustomer={"id": "x"}), "primaryCustomer.id must be"),
            (tags_body(primaryCustomer=None), "primaryCustomer.email (or primaryCustomer.id)"),
        ],
    )
    def test_malformed_bodies_are_400_naming_the_field(
        self, desk: Desk, body: bytes, message: str
    ) -> None:
        answer = desk.send(body)
        assert answer.status == HTTP_BAD_REQUEST
        assert message in answer.body["error"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []


class TestNothingAsked:
    @pytest.mark.parametrize(
        "event", ["convo.created", "convo.note.created", "convo.status", "customer.created"]
    )
    def test_other_events_are_200_and_store_nothing(self, desk: Desk, event: str) -> None:
        answer = desk.send(tags_body(), signed(tags_body(), event=event))
        assert answer.status == HTTP_OK
        assert event in answer.body["ignored"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []

    def test_tags_without_a_capture_tag_are_200_and_store_nothing(self, desk: Desk) -> None:
        body = tags_body(tags=[{"id": 1, "tag": "vip"}, {"id": 2, "tag": "billing"}])
        answer = desk.send(body)
        assert answer.status == HTTP_OK
        assert "bugpilot_" in answer.body["ignored"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []


class TestRedeliveries:
    def test_a_redelivery_an_hour_later_captures_and_notes_nothing_more(self, desk: Desk) -> None:
        # Given a capture whose note is on the conversation
        session_id = desk.created(tags_body())
        desk.report_ready(session_id)
        # When Help Scout delivers the same event again 65 minutes later
        desk.clock.now = START + HOUR_LATER_RETRY
        answer = desk.send(tags_body())
        # Then it is the same session: no new capture, still one note
        assert answer.status == HTTP_ACCEPTED
        assert (answer.body["session_id"], answer.body["duplicate"]) == (session_id, True)
        desk.run()
        assert len(desk.bugpilot.requests("action")) == 1
        assert len(notes_on(desk)) == 1
        assert len(desk.simulator.requests("note")) == 1

    def test_another_tag_added_while_the_capture_tag_stays_is_the_same_ask(
        self, desk: Desk
    ) -> None:
        # Given a capture asked for; when an agent adds another tag (a new convo.tags event
        # whose conversation still carries bugpilot_session)
        session_id = desk.created(tags_body())
        desk.clock.advance(minutes=10)
        again = desk.send(tags_body(tags=["bugpilot_session", "vip", "billing"], status="pending"))
        # Then nothing new is captured
        assert (again.body["session_id"], again.body["duplicate"]) == (session_id, True)
        assert len(desk.bugpilot.requests("action")) == 1

    def test_after_the_window_the_same_conversation_and_tag_is_a_new_capture(
        self, desk: Desk
    ) -> None:
        session_id = desk.created(tags_body())
        desk.report_ready(session_id)
        assert WELL_AFTER_THE_WINDOW > DEDUPE_WINDOW
        desk.clock.now = START + WELL_AFTER_THE_WINDOW
        assert desk.created(tags_body()) != session_id
        assert len(desk.bugpilot.requests("action")) == 2

    def test_another_capture_tag_is_another_capture(self, desk: Desk) -> None:
        first = desk.created(tags_body())
        desk.clock.advance(minutes=10)
        second = desk.created(tags_body(tags=["bugpilot_session", "bugpilot_screenshot"]))
        assert second != first
        assert len(desk.bugpilot.requests("action")) == 2


class TestNoteDelivery:
    def test_a_rate_limited_note_is_retried_after_the_wait_and_lands_once(self, desk: Desk) -> None:
        # Given Help Scout answers the first note 429 with X-RateLimit-Retry-After
        session_id = desk.created(tags_body())
        desk.simulator.script("note", HTTP_TOO_MANY, retry_after=RETRY_AFTER)
        before = desk.clock()
        desk.report_ready(session_id)
        # Then no note yet, and the next try waits at least that long
        assert notes_on(desk) == []
        session = desk.runtime.store.get(session_id)
        assert session is not None and session.next_check_at is not None
        assert session.next_check_at >= before + timedelta(seconds=RETRY_AFTER)
        # When the resolver runs once it is due, and again later
        desk.run_when_due(session_id)
        desk.clock.advance(hours=1)
        desk.run()
        # Then the note landed exactly once, after a look for an earlier one
        assert len(notes_on(desk)) == 1
        assert len(desk.simulator.requests("note")) == 2
        assert len(desk.simulator.requests("threads")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED

    def test_a_note_that_landed_although_its_answer_failed_is_not_posted_again(
        self, desk: Desk
    ) -> None:
        session_id = desk.created(tags_body())
        desk.simulator.script("note", 503)
        desk.report_ready(session_id)
        desk.simulator.add_thread(CONVERSATION, f"Capture session: {session_id}", kind="note")
        desk.run_when_due(session_id)
        assert len(desk.simulator.requests("note")) == 1
        assert desk.note_state(session_id) is NoteState.POSTED


class TestHostilePayloads:
    @pytest.mark.parametrize("hostile", HOSTILE)
    def test_payload_markup_never_becomes_live_in_the_posted_note(
        self, desk: Desk, hostile: str
    ) -> None:
        # Given a customer "email" and a subject carrying markup
        desk.bugpilot.connect_user(hostile)
        body = tags_body(subject=hostile, primaryCustomer={"id": CUSTOMER_ID, "email": hostile})
        session_id = desk.created(body)
        # When the note is posted
        report = desk.report_ready(session_id)
        # Then what Help Scout received shows it as escaped text; the report is the only link
        [post] = desk.simulator.requests("note")
        sent = post.json()["text"]
        assert html.escape(hostile) in sent
        assert "<script" not in sent and "<img" not in sent
        assert "javascript:" not in sent.replace(html.escape(hostile), "")
        assert sent.count("<a ") == 1
        assert f'<a href="{report}">' in sent


LINKS_TAG = [{"id": 9152, "color": "#929499", "tag": "capture_links"}]
_HREF = re.compile(r'<a href="([^"]*)"')


class TestLinkedSessions:
    def test_a_linked_lambdatest_session_gets_its_capture_and_one_note(
        self, desk: Desk, lambdatest: LambdaTestSimulator
    ) -> None:
        # Given a running LambdaTest test, and a conversation tagged capture_links whose
        # subject links it
        lambdatest.add_session(LAMBDATEST_SESSION, status="running")
        body = tags_body(tags=LINKS_TAG, subject=f"Checkout test failed: {LAMBDATEST_LINK}")
        # When Help Scout delivers convo.tags
        answer = desk.send(body)
        # Then that session alone is the capture: Bugpilot is asked for nothing
        assert answer.status == HTTP_ACCEPTED, answer.body
        [opened] = answer.body["sessions"]
        assert (opened["provider"], opened["status"]) == ("lambdatest", "pending")
        assert desk.bugpilot.requests("action") == []
        # And while the test runs there is no note
        desk.run()
        assert notes_on(desk) == []
        # When it finishes, then exactly one note carries its facts and its video as a link
        lambdatest.finish_session(LAMBDATEST_SESSION, status="failed")
        desk.run_when_due(opened["session_id"])
        [note] = notes_on(desk)
        assert f"Capture session: {opened['session_id']}" in note
        assert "Status: failed" in note
        assert f'<a href="{html.escape(lambdatest.view_video_url(LAMBDATEST_SESSION))}">' in note
        # And the redelivery of the same ask adds nothing
        again = desk.send(body)
        assert again.status == HTTP_ACCEPTED and again.body["duplicate"] is True
        desk.clock.advance(hours=1)
        desk.run()
        assert len(notes_on(desk)) == 1

    def test_a_linked_notte_session_gets_its_capture_and_one_note(
        self, desk: Desk, notte: NotteSimulator
    ) -> None:
        # Given a closed Notte browser session, and a conversation tagged capture_links whose
        # newest thread (its preview) links it
        notte.add_session(NOTTE_SESSION, created_at=START)
        notte.close_session(NOTTE_SESSION)
        body = tags_body(tags=LINKS_TAG, preview=f"Reproduced in {NOTTE_LINK}")
        # When Help Scout delivers convo.tags
        answer = desk.send(body)
        assert answer.status == HTTP_ACCEPTED, answer.body
        [opened] = answer.body["sessions"]
        assert opened["provider"] == "notte"
        # Then the resolver notes its replay once
        desk.run()
        [note] = notes_on(desk)
        assert f"Notte browser session {NOTTE_SESSION}" in note
        assert f"Capture session: {opened['session_id']}" in note
        assert desk.bugpilot.requests("action") == []

    def test_capture_links_on_a_conversation_linking_nothing_is_200_and_stores_nothing(
        self, desk: Desk, lambdatest: LambdaTestSimulator
    ) -> None:
        # Given a conversation tagged capture_links alone whose subject and preview link nothing
        body = tags_body(tags=LINKS_TAG, subject="Checkout broken", preview="See the log")
        # When it is delivered
        answer = desk.send(body)
        # Then it is answered 200 ignored, saying why, and nothing is stored or asked for
        assert answer.status == HTTP_OK
        assert "link no LambdaTest or Notte session" in answer.body["ignored"]
        assert stored(desk.table) == 0
        assert desk.bugpilot.requests("action") == []
        assert lambdatest.requests() == []

    @pytest.mark.parametrize("hostile", HOSTILE)
    def test_markup_around_the_link_never_becomes_live_in_the_note(
        self, desk: Desk, lambdatest: LambdaTestSimulator, hostile: str
    ) -> None:
        # Given a subject that wraps the session's link in markup, and a test whose remark (the
        # vendor's text the note shows) carries the same markup
        lambdatest.add_session(LAMBDATEST_SESSION, status="running")
        body = tags_body(tags=LINKS_TAG, subject=f"{hostile} {LAMBDATEST_LINK} {hostile}")
        [opened] = desk.send(body).body["sessions"]
        lambdatest.finish_session(LAMBDATEST_SESSION, remark=hostile)
        desk.run_when_due(opened["session_id"])
        # Then what Help Scout received shows the markup as escaped text
        [post] = desk.simulator.requests("note")
        sent = post.json()["text"]
        assert html.escape(hostile) in sent
        assert "<script" not in sent and "<img" not in sent
        assert "javascript:" not in sent.replace(html.escape(hostile), "")
        # And its only links are the session's own, on LambdaTest's (simulated) hosts
        links = _HREF.findall(sent)
        assert links
        assert all(link.startswith(("http://127.0.0.1", "https://")) for link in links), links
        assert not any("alert" in link for link in links), links


class TestEventsFile:
    def test_the_event_signed_by_the_cli_is_accepted_by_the_handler(
        self,
        hs_env: dict[str, str],
        bugpilot: BugpilotSimulator,
        lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from capture_bridge.settings import reset_settings_cache
        from webhook_handler import lambda_handler

        bugpilot.connect_user(EMAIL)
        result = _sign_event_cli(hs_env["HELPSCOUT_WEBHOOK_SECRET"])
        assert result.returncode == 0, result.stderr
        event = json.loads(result.stdout)
        assert event["headers"]["X-HelpScout-Event"] == "convo.tags"
        for key, value in hs_env.items():
            monkeypatch.setenv(key, value)
        reset_settings_cache()
        response = lambda_handler(event, lambda_context)
        assert response["statusCode"] == HTTP_ACCEPTED, response["body"]
        assert len(bugpilot.requests("action")) == 1

    def test_the_event_as_stored_is_signed_with_a_placeholder_secret_and_refused(
        self, desk: Desk
    ) -> None:
        answer = receive_event(
            load_event("webhook_helpscout"), runtime_factory=lambda: desk.runtime, clock=desk.clock
        )
        assert answer.status == HTTP_UNAUTHORIZED
        assert stored(desk.table) == 0

    def test_without_a_secret_sign_event_names_the_key(self) -> None:
        result = _sign_event_cli("")
        assert result.returncode == 2
        assert "HELPSCOUT_WEBHOOK_SECRET" in result.stderr


def _sign_event_cli(secret: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin"} | (
        {"HELPSCOUT_WEBHOOK_SECRET": secret} if secret else {}
    )
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "local_runner",
            "sign-event",
            str(EVENTS / "webhook_helpscout.json"),
            "--helpdesk",
            "helpscout",
            "--env-file",
            "/nonexistent/.env",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestLookupFailures:
    def test_a_failing_look_up_keeps_the_request_and_the_resolver_asks_again(
        self, desk: Desk
    ) -> None:
        # Given Help Scout failing the customer look-up at the webhook
        customer = desk.simulator.add_customer(EMAIL)
        desk.simulator.script("customer", 503)
        answer = desk.send(tags_body(primaryCustomer={"id": customer}))
        # Then the request is stored, not lost, and Bugpilot not asked yet
        assert answer.status == HTTP_ACCEPTED, answer.body
        session_id = answer.body["session_id"]
        assert desk.bugpilot.requests("action") == []
        # When the resolver comes back to it, the customer is found; then the capture starts
        desk.run_when_due(session_id)
        desk.run_when_due(session_id)
        [action] = desk.bugpilot.requests("action")
        assert action.json()["userId"] == EMAIL
        assert len(desk.simulator.requests("customer")) == 2
