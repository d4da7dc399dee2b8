"""Jira adapter: both proofs, both bodies, wiki-markup notes, and its simulator's contract."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from capture_bridge.access import Access
from capture_bridge.capture import requests_for
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import Headers, NoteOutcome, WebhookRequest, get_adapter
from capture_bridge.helpdesks.jira import (
    ADMIN_DELIVERY_MEMORY,
    AUTOMATION_DEDUPE_WINDOW,
    COMMENT_PAGE_SIZE,
    MAX_AGE,
    MAX_FUTURE,
    JiraAdapter,
    JiraSettings,
    escape_wiki,
    probe,
    sign_request,
    sign_webhook,
    wiki_note,
)
from capture_bridge.http import HttpClient
from capture_bridge.models import CaptureRequest, Delivery
from capture_bridge.notes import Note, note_of
from capture_bridge.settings import Settings, settings_from
from local_runner.simulators.jira import JiraSimulator
from tests.conftest import START, webhook_request

SECRET = "jira-test-secret"
EMAIL = "agent@example.com"
TOKEN = "jira-test-token"
REPORT = "https://dash.bugpilot.io/report/abc_def-1"
MARKER = "Capture session: 0b9a1c2e-4f5d-4e6a-9b7c-8d9e0f1a2b3c"
IDENTIFIER = "6a2e4b8c-1d3f-4a5b-9c7d-0e1f2a3b4c5d"
# Fast timeouts: a scripted delay longer than the read timeout is a timeout.
FAST = (1.0, 0.5)
SLOWER_THAN_FAST = 1.5
RETRY_AFTER = 17
# Characters Jira's renderer reads as markup unless a backslash precedes them.
WIKI_SPECIAL = "-#*_+?^~|%{}[]()!@"
HOSTILE = (
    "[click|javascript:alert(1)]",
    "[x|http://evil.test]",
    "{html}<script>alert(1)</script>{html}",
    "!http://evil.test/x.png!",
    '"><img src=x onerror=alert(1)>',
    "[x](javascript:alert(1))",
)


def make_settings(**values: str) -> Settings:
    return settings_from({"TABLE_NAME": "t", "JIRA_WEBHOOK_SECRET": SECRET} | values)


def adapter_for(jira: JiraSimulator | None = None, /, **values: str) -> JiraAdapter:
    if jira is not None:
        values = {"JIRA_API_URL": jira.url, "JIRA_EMAIL": EMAIL, "JIRA_API_TOKEN": TOKEN} | values
    return JiraAdapter(
        JiraSettings.from_settings(make_settings(**values)), HttpClient(), timeout=FAST
    )


def rule_body(**fields: Any) -> bytes:
    """The README's automation rule body, with `fields` changed (None removes a field)."""
    body: dict[str, Any] = {
        "ticket_id": "SUP-1001",
        "requester_email": "ada@example.com",
        "tags": "bugpilot_session, vip",
    }
    body.update(fields)
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def admin_body(sent_at: datetime = START, **changes: Any) -> bytes:
    """An admin webhook's issue payload sent at `sent_at`; `changes` replace top-level fields."""
    payload = json.loads(JiraSimulator().admin_webhook_body("SUP-1001", sent_at=sent_at))
    payload.update(changes)
    return json.dumps({key: value for key, value in payload.items() if value is not None}).encode()


def with_issue(**fields: Any) -> bytes:
    """An admin body whose `issue.fields` has `fields` changed (None removes one)."""
    payload = json.loads(admin_body())
    issue_fields = payload["issue"]["fields"]
    issue_fields.update(fields)
    payload["issue"]["fields"] = {k: v for k, v in issue_fields.items() if v is not None}
    return json.dumps(payload).encode()


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def signed(body: bytes, secret: str = SECRET, identifier: str = IDENTIFIER) -> dict[str, str]:
    return {
        "X-Hub-Signature": sign_webhook(secret, body),
        "X-Atlassian-Webhook-Identifier": identifier,
    }


def verify(headers: dict[str, str], body: bytes, now: datetime = START, **values: str) -> Delivery:
    return adapter_for(**values).verify(webhook_request(headers, body, helpdesk="jira"), now)


def read(body: bytes) -> CaptureRequest:
    """The one capture a body asks for, read as the webhook reads it: adapter, then providers."""
    [request] = requests_for(adapter_for().parse(body), make_settings(), HttpClient())
    return request


def live_markup(body: str, links: tuple[str, ...] = ()) -> list[str]:
    """Markup Jira's renderer would act on: an unescaped special character or line-start block.

    The session's own `[link]`s are taken out first: they are the only markup allowed.
    """
    for link in links:
        body = body.replace(f"[{link}]", "")
    found = [
        match.group() for match in re.finditer(r"(?<!\\)[" + re.escape(WIKI_SPECIAL) + "]", body)
    ]
    found += [line for line in body.splitlines() if re.match(r"\s*(h[1-6]|bq)\.", line, re.I)]
    return found + (["\\\\"] if "\\\\" in body else [])


@pytest.fixture
def jira() -> Iterator[JiraSimulator]:
    with JiraSimulator(email=EMAIL, api_token=TOKEN, webhook_secret=SECRET) as simulator:
        yield simulator


class TestSharedSecret:
    def test_a_bearer_secret_is_accepted_and_remembered_an_hour(self) -> None:
        delivery = verify(bearer(), rule_body())
        assert delivery.remember_for == AUTOMATION_DEDUPE_WINDOW == timedelta(hours=1)

    def test_the_secret_as_a_basic_password_is_accepted(self) -> None:
        basic = base64.b64encode(f"jira:{SECRET}".encode()).decode()
        assert verify({"Authorization": f"Basic {basic}"}, rule_body())

    def test_the_fingerprint_is_the_ticket_and_action(self) -> None:
        # given the same ticket and action sent twice, and another ticket or action
        first = verify(bearer(), rule_body(action="upload-session"))
        # then only the same ticket and action are the same delivery, whatever else differs
        assert first == verify(bearer(), rule_body(action="upload-session", tags="x"))
        assert first != verify(bearer(), rule_body(action="upload-screenshot"))
        assert first != verify(bearer(), rule_body(ticket_id="SUP-1002", action="upload-session"))

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({}, "missing X-Hub-Signature or Authorization"),
            ({"Authorization": "Bearer wrong"}, "does not match"),
            ({"Authorization": "Token " + SECRET}, "missing Authorization header"),
            ({"Authorization": "Basic !!!"}, "unreadable Basic"),
        ],
    )
    def test_missing_or_wrong_secrets_are_refused(
        self, headers: dict[str, str], reason: str
    ) -> None:
        with pytest.raises(Unauthenticated, match=reason):
            verify(headers, rule_body())

    def test_two_authorization_headers_that_disagree_are_refused(self) -> None:
        headers = Headers([("Authorization", f"Bearer {SECRET}"), ("authorization", "Bearer x")])
        request = WebhookRequest("POST", "/webhooks/jira", headers, rule_body())
        with pytest.raises(Unauthenticated, match="conflicting"):
            adapter_for().verify(request, START)

    @pytest.mark.parametrize("blank", ["", " ", "\n"])
    def test_without_a_configured_secret_everything_is_refused_naming_the_key(
        self, blank: str
    ) -> None:
        with pytest.raises(SecretNotConfigured, match="JIRA_WEBHOOK_SECRET"):
            verify(bearer(blank), rule_body(), JIRA_WEBHOOK_SECRET=blank)


class TestSignature:
    def test_matches_an_independently_computed_vector(self) -> None:
        # given the vector of `printf %s '{"a":1}' | openssl dgst -sha256 -hmac jira-test-secret`
        expected = hmac.new(SECRET.encode(), b'{"a":1}', hashlib.sha256).hexdigest()
        # then the header value is it, after the prefix Jira sends
        assert sign_webhook(SECRET, b'{"a":1}') == f"sha256={expected}"

    def test_a_signed_delivery_is_keyed_by_its_identifier_for_two_hours(self) -> None:
        body = admin_body()
        first = verify(signed(body), body)
        # when Jira retries the same delivery 20 minutes later, with its retry header
        retry = signed(body) | {"X-Atlassian-Webhook-Retry": "1"}
        again = verify(retry, body, START + timedelta(minutes=20))
        # then it is the same delivery, remembered longer than a body stays fresh
        assert first == again
        assert first.remember_for == ADMIN_DELIVERY_MEMORY > MAX_AGE + MAX_FUTURE
        assert first != verify(signed(body, identifier="other"), body)

    def test_without_an_identifier_the_signature_stands_for_the_delivery(self) -> None:
        body = admin_body()
        headers = {"X-Hub-Signature": sign_webhook(SECRET, body)}
        assert verify(headers, body) == verify(headers, body)
        other = admin_body(sent_at=START + timedelta(seconds=1))
        assert verify(headers, body) != verify(
            {"X-Hub-Signature": sign_webhook(SECRET, other)}, other
        )

    def test_an_uppercase_hex_digest_is_the_same_signature(self) -> None:
        body = admin_body()
        digest = sign_webhook(SECRET, body).removeprefix("sha256=").upper()
        assert verify({"X-Hub-Signature": f"sha256={digest}"}, body)

    @pytest.mark.parametrize(
        ("signature", "reason"),
        [
            ("deadbeef", "must be sha256=<hex>"),
            ("sha1=" + "0" * 40, "must be sha256=<hex>"),
            ("sha256=" + "0" * 64, "does not match"),
            ("sha256=\ud800", "must be sha256=<hex>"),
        ],
    )
    def test_forged_signatures_are_refused(self, signature: str, reason: str) -> None:
        with pytest.raises(Unauthenticated, match=reason):
            verify({"X-Hub-Signature": signature}, admin_body())

    def test_a_changed_body_or_other_secret_does_not_match(self) -> None:
        body = admin_body()
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(signed(body), body + b" ")
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(signed(body, secret="other"), body)

    def test_the_signature_decides_even_beside_a_right_bearer_secret(self) -> None:
        body = admin_body()
        headers = bearer() | {"X-Hub-Signature": "sha256=" + "0" * 64}
        with pytest.raises(Unauthenticated, match="does not match"):
            verify(headers, body)

    def test_two_signature_headers_that_disagree_are_refused(self) -> None:
        body = admin_body()
        pairs = [*signed(body).items(), ("x-hub-signature", "sha256=" + "0" * 64)]
        request = WebhookRequest("POST", "/webhooks/jira", Headers(pairs), body)
        with pytest.raises(Unauthenticated, match="conflicting"):
            adapter_for().verify(request, START)

    @pytest.mark.parametrize(
        "sent_at",
        [START - MAX_AGE - timedelta(seconds=1), START + MAX_FUTURE + timedelta(seconds=1)],
    )
    def test_stale_or_future_bodies_are_refused(self, sent_at: datetime) -> None:
        body = admin_body(sent_at=sent_at)
        with pytest.raises(Unauthenticated, match="too old or in the future"):
            verify(signed(body), body)

    @pytest.mark.parametrize("stamp", [None, "1795608000000", True, 1.5, 10**30])
    def test_a_signed_body_without_a_readable_timestamp_is_refused(self, stamp: object) -> None:
        body = admin_body(timestamp=stamp)
        with pytest.raises(Unauthenticated, match="no readable timestamp"):
            verify(signed(body), body)


class TestParse:
    def test_reads_the_readme_rule_body(self) -> None:
        ticket = adapter_for().parse(rule_body())
        assert (ticket.ticket_id, ticket.requester, ticket.label) == (
            "SUP-1001",
            "ada@example.com",
            "Jira issue SUP-1001",
        )
        assert ticket.tags == ("bugpilot_session", "vip")
        request = read(rule_body())
        assert (request.helpdesk, request.user_id, request.action) == (
            "jira",
            "ada@example.com",
            "upload-session",
        )

    @pytest.mark.parametrize(
        "tags", ["bugpilot_screenshot, vip", "vip bugpilot_screenshot", ["bugpilot_screenshot"]]
    )
    def test_labels_as_jira_renders_them_pick_the_action(self, tags: object) -> None:
        assert read(rule_body(tags=tags)).action == "upload-screenshot"

    def test_reads_the_admin_payload(self) -> None:
        ticket = adapter_for().parse(admin_body())
        assert (ticket.ticket_id, ticket.requester, ticket.label) == (
            "SUP-1001",
            "ada@example.com",
            "Jira issue SUP-1001",
        )
        assert ticket.tags == ("bugpilot_session",)
        request = read(admin_body())
        assert (request.action, request.description) == (
            "upload-session",
            "Checkout button does nothing",
        )

    def test_a_hidden_reporter_email_leaves_no_bugpilot_user(self) -> None:
        # given an admin payload whose reporter hides their email (accountId only)
        body = with_issue(reporter={"accountId": "712020:abc"})
        # then the requester is empty, and Bugpilot's 400 says what it needs
        assert adapter_for().parse(body).requester == ""
        with pytest.raises(InvalidRequest, match="external id or email is required"):
            read(body)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (rule_body(ticket_id=None), "ticket_id is required"),
            (rule_body(ticket_id="sup-1"), "ticket_id must be a Jira issue key"),
            (rule_body(ticket_id="SUP-0"), "ticket_id must be a Jira issue key"),
            (rule_body(ticket_id="SUP-1/../../x"), "ticket_id must be a Jira issue key"),
            (rule_body(ticket_id=1001), "ticket_id must be a Jira issue key"),
            (rule_body(ticket_id=["SUP-1"]), "ticket_id must be a string"),
            (rule_body(tags=7), "tags must be"),
            (rule_body(requester_email={"a": 1}), "requester_email must be a string"),
            (admin_body(webhookEvent=3), "webhookEvent must be a string"),
            (admin_body(issue=None), "issue is required"),
            (admin_body(issue="SUP-1"), "issue must be an object"),
            (admin_body(issue={"fields": {}}), "issue.key is required"),
            (admin_body(issue={"key": 42}), "issue.key must be a Jira issue key"),
            (admin_body(issue={"key": ["SUP-1"]}), "issue.key must be a string"),
            (admin_body(issue={"key": "SUP-1", "fields": []}), "issue.fields must be an object"),
            (
                with_issue(labels="bugpilot_session"),
                "issue.fields.labels must be a list of strings",
            ),
            (with_issue(labels=["ok", 1]), "issue.fields.labels must be a list of strings"),
            (with_issue(reporter="ada"), "issue.fields.reporter must be an object"),
            (
                with_issue(reporter={"emailAddress": 5.5}),
                "issue.fields.reporter.emailAddress must be a string",
            ),
            (with_issue(summary={"t": 1}), "issue.fields.summary must be a string"),
        ],
    )
    def test_bad_bodies_name_the_field(self, body: bytes, message: str) -> None:
        with pytest.raises(InvalidRequest, match=re.escape(message)):
            adapter_for().parse(body)

    def test_a_bad_body_behind_a_good_secret_is_a_400_not_a_401(self) -> None:
        with pytest.raises(InvalidRequest, match="ticket_id is required"):
            verify(bearer(), rule_body(ticket_id=None))


class TestWikiMarkup:
    @pytest.mark.parametrize("hostile", HOSTILE)
    def test_payload_markup_is_escaped_and_the_report_link_stays_a_link(self, hostile: str) -> None:
        # given a note whose text carries a payload's would-be markup, and the session's link
        lines = (f"for user {hostile}.", f"The capture is ready: {REPORT}")
        note = Note("\n".join(lines), "", lines, {"report": REPORT})
        # when it is rendered for Jira
        body = wiki_note(note)
        # then nothing of the payload's is markup, and the report is Jira's `[url]` link
        assert live_markup(body, (REPORT,)) == []
        assert f"[{REPORT}]" in body

    def test_escaping_keeps_the_text_readable(self) -> None:
        assert escape_wiki("[x|http://evil.test]") == "\\[x\\|http://evil.test\\]"
        assert escape_wiki("a\\[b") == "a\u29f5\\[b"

    @pytest.mark.parametrize("text", ["a\nh1. Big", "x\r\nbq. quoted", "a\\\\b", "tab\there"])
    def test_payload_line_breaks_and_backslashes_start_nothing(self, text: str) -> None:
        body = wiki_note(Note(text, "", (f"user {text}",)))
        assert "\n" not in body
        assert live_markup(body) == []

    def test_a_line_starting_with_a_heading_is_kept_text(self) -> None:
        body = wiki_note(Note("", "", ("h1. Shout", "  BQ. quoted")))
        assert live_markup(body) == []

    def test_link_characters_that_would_break_the_link_are_percent_encoded(self) -> None:
        link = "https://dash.bugpilot.io/r?a=[1]|{2}!"
        body = wiki_note(Note("", "", (f"see {link}",), {"report": link}))
        assert body == "see [https://dash.bugpilot.io/r?a=%5B1%5D%7C%7B2%7D%21]"

    def test_a_link_a_payload_wrote_is_not_made_a_wiki_link(self) -> None:
        body = wiki_note(Note("", "", ("Said: https://evil.test/x",), {"report": REPORT}))
        assert "[https://evil.test" not in body


class TestNotes:
    def test_posts_an_internal_comment_with_basic_auth(self, jira: JiraSimulator) -> None:
        # when a note is posted
        result = adapter_for(jira).post_note("SUP-1001", Note("", "", ("hello agents",)))
        # then it is one internal comment, in the servicedeskapi's form
        assert (result.outcome, result.status) == (NoteOutcome.POSTED, 201)
        [post] = jira.requests("post")
        assert post.route == "/rest/servicedeskapi/request/SUP-1001/comment"
        assert post.json() == {"body": "hello agents", "public": False}
        expected = base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
        assert post.headers["authorization"] == f"Basic {expected}"
        assert jira.internal_notes("SUP-1001") == ["hello agents"]

    def test_rate_limit_is_retryable_with_retry_after(self, jira: JiraSimulator) -> None:
        jira.script("post", 429, retry_after=RETRY_AFTER)
        result = adapter_for(jira).post_note("SUP-1001", Note("x", "", ("x",)))
        assert (result.outcome, result.retry_after_seconds) == (NoteOutcome.RETRYABLE, RETRY_AFTER)
        assert jira.comments("SUP-1001") == []

    @pytest.mark.parametrize("status", [500, 503])
    def test_server_errors_are_retryable(self, jira: JiraSimulator, status: int) -> None:
        jira.script("post", status, retry_after=RETRY_AFTER)
        result = adapter_for(jira).post_note("SUP-1001", Note("x", "", ("x",)))
        assert (result.outcome, result.retry_after_seconds) == (NoteOutcome.RETRYABLE, RETRY_AFTER)

    def test_timeouts_are_retryable(self, jira: JiraSimulator) -> None:
        jira.script("post", 200, delay=SLOWER_THAN_FAST)
        outcome = adapter_for(jira).post_note("SUP-1001", Note("x", "", ("x",))).outcome
        assert outcome is NoteOutcome.RETRYABLE

    def test_wrong_credentials_and_missing_issues_are_rejected(self) -> None:
        with JiraSimulator(email=EMAIL, api_token=TOKEN, known_issues={"SUP-1"}) as jira:
            wrong = adapter_for(jira, JIRA_API_TOKEN="wrong").post_note("SUP-1", Note("x", ""))
            missing = adapter_for(jira).post_note("SUP-2", Note("x", ""))
        assert (wrong.outcome, wrong.status) == (NoteOutcome.REJECTED, 401)
        assert (missing.outcome, missing.status) == (NoteOutcome.REJECTED, 404)

    def test_unconfigured_credentials_are_rejected_without_a_call(self) -> None:
        result = adapter_for().post_note("SUP-1", Note("x", ""))
        assert result.outcome is NoteOutcome.REJECTED
        assert "JIRA_API_TOKEN" in result.message

    def test_has_note_finds_the_marker_as_it_was_posted(self, jira: JiraSimulator) -> None:
        # given an issue without the note, then with it (its marker escaped as posted)
        adapter = adapter_for(jira)
        assert adapter.has_note("SUP-1001", MARKER) is False
        adapter.post_note("SUP-1001", Note("", "", ("text", MARKER)))
        assert "\\-" in jira.internal_notes("SUP-1001")[0]
        # then it is found, asking for internal comments only
        assert adapter.has_note("SUP-1001", MARKER) is True
        query = jira.requests("list")[-1].query
        assert (query["internal"], query["public"]) == ("true", "false")

    def test_has_note_reads_every_page_it_may(self, jira: JiraSimulator) -> None:
        # given a full first page of other internal comments, then the note on the second
        for number in range(COMMENT_PAGE_SIZE):
            jira.add_comment("SUP-1001", f"agent note {number}", public=False)
        jira.add_comment("SUP-1001", MARKER, public=False)
        # then the second page is read and the note is found
        assert adapter_for(jira).has_note("SUP-1001", MARKER) is True
        assert [r.query["start"] for r in jira.requests("list")] == ["0", str(COMMENT_PAGE_SIZE)]

    def test_has_note_is_unknown_past_the_pages_it_reads(self, jira: JiraSimulator) -> None:
        for number in range(3 * COMMENT_PAGE_SIZE):
            jira.add_comment("SUP-1001", f"agent note {number}", public=False)
        assert adapter_for(jira).has_note("SUP-1001", MARKER) is None

    def test_public_comments_do_not_count(self, jira: JiraSimulator) -> None:
        jira.add_comment("SUP-1001", MARKER, public=True)
        assert adapter_for(jira).has_note("SUP-1001", MARKER) is False

    def test_has_note_is_unknown_when_jira_fails_or_is_slow(self, jira: JiraSimulator) -> None:
        jira.script("list", 500)
        assert adapter_for(jira).has_note("SUP-1001", MARKER) is None
        jira.script("list", 200, delay=SLOWER_THAN_FAST)
        assert adapter_for(jira).has_note("SUP-1001", MARKER) is None
        assert adapter_for().has_note("SUP-1001", MARKER) is None


class TestSettings:
    def test_the_site_url_loses_its_trailing_slash(self) -> None:
        settings = make_settings(JIRA_API_URL="https://acme.atlassian.net/")
        assert JiraSettings.from_settings(settings).api_url == "https://acme.atlassian.net"

    @pytest.mark.parametrize(
        "url", ["http://acme.atlassian.net", "ftp://acme.atlassian.net", "acme.atlassian.net"]
    )
    def test_a_url_that_is_not_https_is_a_configuration_error(self, url: str) -> None:
        with pytest.raises(ConfigurationError, match="JIRA_API_URL"):
            JiraSettings.from_settings(make_settings(JIRA_API_URL=url))

    def test_credentials_stay_out_of_its_repr(self) -> None:
        settings = JiraSettings.from_settings(make_settings(JIRA_API_TOKEN=TOKEN))
        assert TOKEN not in repr(settings) and SECRET not in repr(settings)

    def test_the_registry_finds_jira(self) -> None:
        assert get_adapter("jira", make_settings(), HttpClient()).name == "jira"


class TestSignRequest:
    def test_a_rule_body_gets_the_bearer_secret_that_verifies(self) -> None:
        request = webhook_request({}, rule_body(), helpdesk="jira")
        headers = sign_request({"JIRA_WEBHOOK_SECRET": SECRET}, request, START)
        assert headers == {"Authorization": f"Bearer {SECRET}"}
        assert verify(headers, rule_body())

    def test_an_admin_body_is_signed_with_a_fresh_identifier_unless_it_has_one(self) -> None:
        body = admin_body()
        fresh = sign_request({"JIRA_WEBHOOK_SECRET": SECRET}, webhook_request({}, body), START)
        assert fresh["X-Atlassian-Webhook-Identifier"]
        assert verify(fresh, body)
        kept = webhook_request({"X-Atlassian-Webhook-Identifier": IDENTIFIER}, body)
        again = sign_request({"JIRA_WEBHOOK_SECRET": SECRET}, kept, START)
        assert again["X-Atlassian-Webhook-Identifier"] == IDENTIFIER

    def test_without_a_secret_it_names_the_key(self) -> None:
        with pytest.raises(SecretNotConfigured, match="set JIRA_WEBHOOK_SECRET"):
            sign_request({}, webhook_request({}, rule_body()), START)


class TestProbe:
    def test_names_the_account_the_token_signs_in(self, jira: JiraSimulator) -> None:
        check = probe(make_settings(**jira.bridge_settings()), HttpClient())
        assert (check.access, check.detail) == (Access.OK, f"signed in as {EMAIL}")
        assert len(jira.requests("myself")) == 1

    def test_wrong_credentials_and_deactivated_accounts_are_rejected(
        self, jira: JiraSimulator
    ) -> None:
        wrong = make_settings(**jira.bridge_settings() | {"JIRA_API_TOKEN": "wrong"})
        assert probe(wrong, HttpClient()).access is Access.REJECTED
        jira.account_active = False
        assert (
            probe(make_settings(**jira.bridge_settings()), HttpClient()).access is Access.REJECTED
        )

    def test_rate_limits_and_missing_keys_are_reported(self, jira: JiraSimulator) -> None:
        jira.script("myself", 429)
        assert probe(make_settings(**jira.bridge_settings()), HttpClient()).access is (
            Access.RATE_LIMITED
        )
        check = probe(make_settings(), HttpClient())
        assert check.access is Access.NOT_CONFIGURED
        assert "JIRA_API_URL, JIRA_EMAIL, JIRA_API_TOKEN" in check.detail

    def test_an_invalid_url_is_a_finding_not_a_crash(self) -> None:
        check = probe(make_settings(JIRA_API_URL="http://acme.test"), HttpClient())
        assert check.access is Access.FAILED
        assert "JIRA_API_URL" in check.detail


class TestSimulator:
    def _post(self, jira: JiraSimulator, key: str, auth: tuple[str, str]) -> requests.Response:
        return requests.post(
            f"{jira.url}/rest/servicedeskapi/request/{key}/comment",
            json={"body": "b", "public": False},
            auth=auth,
            timeout=5,
        )

    def test_refuses_wrong_credentials_and_unknown_issues(self) -> None:
        with JiraSimulator(email=EMAIL, api_token=TOKEN, known_issues={"SUP-1"}) as jira:
            assert self._post(jira, "SUP-1", (EMAIL, "wrong")).status_code == 401
            assert self._post(jira, "SUP-2", (EMAIL, TOKEN)).status_code == 404
            assert self._post(jira, "not-a-key", (EMAIL, TOKEN)).status_code == 404
            assert self._post(jira, "SUP-1", (EMAIL, TOKEN)).status_code == 201
            assert jira.comments("SUP-2") == []

    def test_a_scripted_rate_limit_says_when_to_come_back(self, jira: JiraSimulator) -> None:
        jira.script("post", 429, retry_after=RETRY_AFTER)
        limited = self._post(jira, "SUP-1", (EMAIL, TOKEN))
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == str(RETRY_AFTER)
        reset = datetime.strptime(limited.headers["X-RateLimit-Reset"], "%Y-%m-%dT%H:%MZ")
        assert reset.replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(minutes=1)
        assert self._post(jira, "SUP-1", (EMAIL, TOKEN)).status_code == 201

    def test_listing_pages_and_filters_by_visibility(self, jira: JiraSimulator) -> None:
        jira.add_comment("SUP-1", "public one", public=True)
        jira.add_comment("SUP-1", "internal one", public=False)
        answer = requests.get(
            f"{jira.url}/rest/servicedeskapi/request/SUP-1/comment?public=false&limit=1",
            auth=(EMAIL, TOKEN),
            timeout=5,
        ).json()
        assert [c["body"] for c in answer["values"]] == ["internal one"]
        assert answer["isLastPage"] is True

    def test_demo_defaults_work_and_notes_are_the_internal_bodies(self) -> None:
        with JiraSimulator() as jira:
            settings = make_settings(**jira.bridge_settings())
            note = note_of(["hello"], _session())
            assert get_adapter("jira", settings, HttpClient()).post_note("SUP-7", note).outcome is (
                NoteOutcome.POSTED
            )
            jira.add_comment("SUP-7", "customer reply", public=True)
            assert len(jira.internal_notes("SUP-7")) == 1


def _session() -> Any:
    """A finished capture session, as the resolver hands it to the note."""
    from capture_bridge.models import CaptureRequest as Request
    from capture_bridge.models import CaptureSession, SessionStatus

    request = Request("jira", "SUP-7", "bugpilot", "upload-session", "upload-session")
    opened = CaptureSession.open(
        request, now=START, max_wait=timedelta(minutes=30), claim_id=None, next_check_at=START
    )
    return opened.finish(SessionStatus.RESOLVED, now=START, links={"report": REPORT})
