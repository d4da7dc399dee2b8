"""Jira's internal comments and probe over real HTTP, against its simulator."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from capture_bridge.access import Access
from capture_bridge.helpdesks import NoteOutcome, get_adapter
from capture_bridge.helpdesks.jira import (
    COMMENT_PAGE_SIZE,
    probe,
)
from capture_bridge.http import HttpClient
from capture_bridge.notes import Note, note_of
from local_runner.simulators.jira import JiraSimulator
from tests.unit.test_jira_adapter import (
    EMAIL,
    MARKER,
    RETRY_AFTER,
    SECRET,
    SLOWER_THAN_FAST,
    TOKEN,
    _session,
    adapter_for,
    make_settings,
)


@pytest.fixture
def jira() -> Iterator[JiraSimulator]:
    with JiraSimulator(email=EMAIL, api_token=TOKEN, webhook_secret=SECRET) as simulator:
        yield simulator


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
