"""Bugpilot provider against the simulator: every documented answer maps to a defined outcome."""

from __future__ import annotations

import pytest

from capture_bridge.capture import Outcome, is_safe_link
from capture_bridge.capture.bugpilot import BugpilotProvider, BugpilotSettings
from capture_bridge.http import HttpClient
from local_runner.simulators import BugpilotSimulator


def provider_for(bugpilot: BugpilotSimulator, **overrides: str) -> BugpilotProvider:
    values = {"api_url": bugpilot.url, "workspace_id": bugpilot.workspace_id}
    values |= {"api_key": bugpilot.api_key}
    values |= overrides
    return BugpilotProvider(
        BugpilotSettings(**values),
        HttpClient(),
        action_timeout=(1.0, 0.5),
        session_info_timeout=(1.0, 0.5),
    )


def capture(provider: BugpilotProvider, user: str = "user-42", action: str = "upload-session"):  # type: ignore[no-untyped-def]
    return provider.request_capture(user_id=user, action=action, description="Ticket #1")


class TestAction:
    def test_sends_the_documented_request(self, bugpilot: BugpilotSimulator) -> None:
        bugpilot.connect_user("user-42")
        result = capture(provider_for(bugpilot))
        assert result.outcome is Outcome.STARTED
        assert result.reference == bugpilot.session_info_url(
            bugpilot.workspace_id, bugpilot.tokens[0]
        )
        [call] = bugpilot.requests("action")
        assert call.headers["user-agent"] == "Bugpilot API Client/1.0"
        assert call.headers["x-bugpilot-api-key"] == bugpilot.api_key
        assert call.headers["content-type"] == "application/json"
        assert call.json() == {
            "workspaceId": bugpilot.workspace_id,
            "userId": "user-42",
            "action": "upload-session",
            "userProvidedDescription": "Ticket #1",
        }

    def test_offline_user(self, bugpilot: BugpilotSimulator) -> None:
        result = capture(provider_for(bugpilot))
        assert (result.outcome, result.error_code) == (
            Outcome.USER_OFFLINE,
            "USER_NOT_CONNECTED",
        )

    @pytest.mark.parametrize(
        ("provider_args", "code"),
        [
            ({"api_key": "wrong"}, "INVALID_API_KEY"),
            ({"workspace_id": "ws-other"}, "NO_ACCESS"),
        ],
    )
    def test_configuration_errors_are_rejected(
        self, bugpilot: BugpilotSimulator, provider_args: dict[str, str], code: str
    ) -> None:
        bugpilot.connect_user("user-42")
        result = capture(provider_for(bugpilot, **provider_args))
        assert (result.outcome, result.error_code) == (Outcome.REJECTED, code)

    def test_invalid_action_is_rejected(self, bugpilot: BugpilotSimulator) -> None:
        bugpilot.connect_user("user-42")
        result = capture(provider_for(bugpilot), action="dance")
        assert (result.outcome, result.error_code) == (Outcome.REJECTED, "INVALID_ACTION")

    def test_missing_fields_is_rejected(self, bugpilot: BugpilotSimulator) -> None:
        result = capture(provider_for(bugpilot), user="")
        assert (result.outcome, result.error_code) == (Outcome.REJECTED, "MISSING_FIELDS")

    def test_unconfigured_provider_makes_no_call(self, bugpilot: BugpilotSimulator) -> None:
        result = capture(provider_for(bugpilot, api_key=""))
        assert (result.outcome, result.error_code) == (Outcome.REJECTED, "NOT_CONFIGURED")
        assert bugpilot.requests("action") == []

    @pytest.mark.parametrize(
        ("status", "error", "code"),
        [
            (500, "INTERNAL_ERROR", "INTERNAL_ERROR"),
            (502, None, "INTERNAL_ERROR"),
            (429, None, "TOO_MANY_REQUESTS"),
        ],
    )
    def test_upstream_failures_are_retryable(
        self, bugpilot: BugpilotSimulator, status: int, error: str | None, code: str
    ) -> None:
        bugpilot.script("action", status, error, retry_after=30 if status == 429 else None)
        result = capture(provider_for(bugpilot))
        assert (result.outcome, result.error_code) == (Outcome.RETRYABLE, code)
        assert result.retry_after_seconds == (30 if status == 429 else None)

    @pytest.mark.parametrize(
        ("action", "repeatable"),
        [("upload-session", True), ("upload-screenshot", True), ("show-recording-ui", False)],
    )
    def test_an_answer_that_never_comes_leaves_the_action_unconfirmed(
        self, bugpilot: BugpilotSimulator, action: str, repeatable: bool
    ) -> None:
        # Given Bugpilot carrying the action out but answering after the read timeout
        bugpilot.connect_user("user-42")
        bugpilot.script("action", 200, delay=1.5)
        # When the capture is requested
        result = capture(provider_for(bugpilot), action=action)
        # Then it is unconfirmed, not retryable: Bugpilot did capture
        assert (result.outcome, result.error_code) == (Outcome.UNCONFIRMED, "UNCONFIRMED")
        assert len(bugpilot.tokens) == 1
        # And only a capture the user does not see may ever be asked for again
        assert result.repeatable is repeatable

    def test_a_gateway_timeout_is_unconfirmed_but_bugpilots_own_errors_are_not(self) -> None:
        from capture_bridge.http import HttpResponse

        provider = BugpilotProvider(
            BugpilotSettings(api_url="http://x", workspace_id="w", api_key="k"), HttpClient()
        )
        answer = BugpilotProvider._action_result  # a parsing rule, tested without a server
        gateway = answer(provider, HttpResponse(504, {}, b"<html>Gateway Timeout</html>"), "x")
        assert gateway.outcome is Outcome.UNCONFIRMED
        own = HttpResponse(504, {}, b'{"error": "INTERNAL_ERROR"}')
        assert answer(provider, own, "x").outcome is Outcome.RETRYABLE

    def test_refused_connection_is_retryable(self) -> None:
        with BugpilotSimulator() as gone:
            url = gone.url
        provider = BugpilotProvider(
            BugpilotSettings(api_url=url, workspace_id="ws", api_key="k"), HttpClient()
        )
        assert capture(provider).outcome is Outcome.RETRYABLE

    def test_unknown_client_error_is_rejected_with_its_status(
        self, bugpilot: BugpilotSimulator
    ) -> None:
        bugpilot.script("action", 418, "TEAPOT")
        result = capture(provider_for(bugpilot))
        assert (result.outcome, result.error_code) == (Outcome.REJECTED, "TEAPOT")

    def test_ok_without_session_info_url_is_not_retried(self) -> None:
        from capture_bridge.http import HttpResponse

        answer = BugpilotProvider._action_result  # a parsing rule, tested without a server
        provider = BugpilotProvider(
            BugpilotSettings(api_url="http://x", workspace_id="w", api_key="k"), HttpClient()
        )
        result = answer(provider, HttpResponse(200, {}, b'{"ok": true}'), "upload-session")
        assert (result.outcome, result.error_code) == (
            Outcome.REJECTED,
            "UNEXPECTED_RESPONSE",
        )
        result = answer(provider, HttpResponse(401, {}, b"<html>"), "upload-session")
        assert (result.outcome, result.error_code) == (Outcome.REJECTED, "INVALID_API_KEY")


class TestSessionInfo:
    def _accepted_url(self, bugpilot: BugpilotSimulator, provider: BugpilotProvider) -> str:
        bugpilot.connect_user("user-42")
        url = capture(provider).reference
        assert url is not None
        return url

    def test_not_found_then_ready(self, bugpilot: BugpilotSimulator) -> None:
        provider = provider_for(bugpilot)
        url = self._accepted_url(bugpilot, provider)
        first = provider.fetch_report(url)
        assert (first.outcome, first.error_code) == (Outcome.NOT_READY, "REPORT_NOT_FOUND")
        second = provider.fetch_report(url)
        assert second.outcome is Outcome.READY
        assert second.links["report"] == bugpilot.report_url(bugpilot.tokens[0])
        assert bugpilot.requests("session_info")[-1].headers["accept"] == "application/json"

    def test_invalid_session_token(self, bugpilot: BugpilotSimulator) -> None:
        provider = provider_for(bugpilot)
        result = provider.fetch_report(
            f"{bugpilot.url}/api/v1/session-info/{bugpilot.workspace_id}/unknown"
        )
        assert (result.outcome, result.error_code) == (
            Outcome.INVALID,
            "INVALID_SESSION_TOKEN",
        )

    @pytest.mark.parametrize("status", [500, 503, 429])
    def test_upstream_failures_are_retryable(
        self, bugpilot: BugpilotSimulator, status: int
    ) -> None:
        provider = provider_for(bugpilot)
        url = self._accepted_url(bugpilot, provider)
        bugpilot.script("session_info", status, retry_after=9)
        result = provider.fetch_report(url)
        assert (result.outcome, result.retry_after_seconds) == (Outcome.RETRYABLE, 9)

    def test_timeout_is_retryable(self, bugpilot: BugpilotSimulator) -> None:
        provider = provider_for(bugpilot)
        url = self._accepted_url(bugpilot, provider)
        bugpilot.script("session_info", 404, delay=1.5)
        assert provider.fetch_report(url).outcome is Outcome.RETRYABLE

    @pytest.mark.parametrize(
        "url",
        [
            "https://evil.example/api/v1/session-info/{ws}/tok",
            "{base}/api/v1/session-info/ws-other/tok",
            "{base}/api/v1/session-info/{ws}/",
            "{base}/api/v1/session-info/{ws}/tok/../../admin",
            "{base}/api/v1/session-info/{ws}/tok?redirect=x",
            "{base}/api/v1/session-info/{ws}/tok#frag",
            "{base}/api/v1/action",
            "ftp://127.0.0.1/api/v1/session-info/{ws}/tok",
        ],
    )
    def test_never_follows_a_url_off_the_configured_host(
        self, bugpilot: BugpilotSimulator, url: str
    ) -> None:
        provider = provider_for(bugpilot)
        result = provider.fetch_report(url.format(base=bugpilot.url, ws=bugpilot.workspace_id))
        assert (result.outcome, result.error_code) == (
            Outcome.INVALID,
            "UNTRUSTED_SESSION_INFO_URL",
        )
        assert bugpilot.requests("session_info") == []

    def test_userinfo_in_url_is_untrusted(self, bugpilot: BugpilotSimulator) -> None:
        provider = provider_for(bugpilot)
        sneaky = (
            bugpilot.url.replace("http://", "http://user@")
            + f"/api/v1/session-info/{bugpilot.workspace_id}/t"
        )
        assert not provider.is_trusted_session_info_url(sneaky)

    def test_answers_without_a_usable_link_are_retried(self) -> None:
        from capture_bridge.http import HttpResponse

        parse = BugpilotProvider._report_result
        odd = parse(HttpResponse(200, {}, b'{"ok": true, "reportUrl": "javascript:alert(1)"}'))
        assert odd.outcome is Outcome.RETRYABLE
        moved = parse(HttpResponse(302, {"Location": "https://dash.bugpilot.io/report/r1"}, b""))
        assert (moved.outcome, moved.links.get("report")) == (
            Outcome.READY,
            "https://dash.bugpilot.io/report/r1",
        )
        teapot = parse(HttpResponse(418, {}, b""))
        assert (teapot.outcome, teapot.error_code) == (Outcome.INVALID, "HTTP_418")


@pytest.mark.parametrize(
    ("link", "safe"),
    [
        ("https://dash.bugpilot.io/report/r1", True),
        ("http://x/y", True),
        ("javascript:alert(1)", False),
        ("https://x/\nInjected line", False),
        ("https://x/ y", False),
        (None, False),
        ("https://" + "a" * 3000, False),
    ],
)
def test_safe_links(link: object, safe: bool) -> None:
    assert is_safe_link(link) is safe
