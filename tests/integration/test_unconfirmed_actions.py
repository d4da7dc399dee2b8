"""Bugpilot answering too late to be read: at most two captures per request, one for a prompt.

A read timeout after the action was sent leaves the bridge unsure whether Bugpilot carried it out
(it does, in the simulator: it captures, then answers late). The webhook waits briefly, the
resolver longer; the action timeouts are shortened here so that the tests stay fast.
"""

from __future__ import annotations

import pytest

from capture_bridge.capture import CallBudget
from capture_bridge.capture.bugpilot import EARLIER_UNCONFIRMED_NOTE, UNCONFIRMED_NOTE
from capture_bridge.models import NoteState, SessionStatus
from capture_bridge.resolver import RunOutcome
from tests.conftest import Desk, trigger_body

WEBHOOK_PATIENCE = 0.3
RESOLVER_PATIENCE = 0.9
# Later than the webhook waits, in time for the resolver; and later than either waits.
SLOW = 0.6
TOO_SLOW = 1.4
# The bounds: a silent capture is repeated at most once, a prompt never.
MAX_SILENT_CAPTURES = 2
MAX_PROMPTS = 1


@pytest.fixture(autouse=True)
def _short_action_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    from capture_bridge.capture import bugpilot

    monkeypatch.setitem(bugpilot.ACTION_TIMEOUTS, CallBudget.INTERACTIVE, (1.0, WEBHOOK_PATIENCE))
    monkeypatch.setitem(bugpilot.ACTION_TIMEOUTS, CallBudget.BACKGROUND, (1.0, RESOLVER_PATIENCE))


def request(desk: Desk, action: str, answer_delay: float, times: int = 2) -> str:
    """A capture request while Bugpilot answers its actions `answer_delay` seconds late."""
    desk.bugpilot.connect_user("user-42")
    desk.bugpilot.script("action", 200, delay=answer_delay, times=times)
    body = desk.send(trigger_body(tags="", action=action))
    session_id: str = body["session_id"]
    return session_id


def test_a_silent_capture_answered_late_is_asked_once_more_and_followed_to_its_report(
    desk: Desk,
) -> None:
    # Given Bugpilot answering later than the webhook waits, but in time for the resolver
    session_id = request(desk, "upload-session", SLOW)
    # Then the webhook stored the request, unconfirmed, after one action
    after_webhook = desk.session(session_id)
    assert (after_webhook.status, after_webhook.unconfirmed) == (SessionStatus.REQUESTED, 1)
    assert len(desk.bugpilot.requests("action")) == 1
    # When the resolver asks again, waiting longer, and the report becomes ready
    assert desk.run_when_due(session_id) == {RunOutcome.WAITING: 1}
    desk.bugpilot.complete_report(desk.bugpilot.tokens[-1])
    assert desk.run_when_due(session_id) == {RunOutcome.NOTED: 1}
    # Then one note links the report it followed, after two captures at most
    assert len(desk.bugpilot.requests("action")) == MAX_SILENT_CAPTURES
    [note] = desk.notes()
    assert desk.bugpilot.report_url(desk.bugpilot.tokens[-1]) in note
    assert desk.session(session_id).status is SessionStatus.RESOLVED


def test_a_silent_capture_never_answered_in_time_stops_after_two_and_says_so(
    desk: Desk,
) -> None:
    # Given Bugpilot carrying out every action but always answering too late
    session_id = request(desk, "upload-screenshot", TOO_SLOW, times=5)
    # When the resolver runs until the session is settled
    for _ in range(4):
        if desk.session(session_id).note_state is NoteState.POSTED:
            break
        desk.run_when_due(session_id)
    # Then Bugpilot was asked twice, never more, and the agent is told the truth
    assert len(desk.bugpilot.requests("action")) == MAX_SILENT_CAPTURES
    session = desk.session(session_id)
    assert (session.status, session.error) == (SessionStatus.FAILED, "UNCONFIRMED")
    [note] = desk.notes()
    assert UNCONFIRMED_NOTE in note
    assert "kept failing" not in note


def test_a_prompt_answered_late_is_never_shown_again(desk: Desk) -> None:
    # Given a screen-recording prompt that Bugpilot shows but confirms too late
    session_id = request(desk, "show-recording-ui", SLOW)
    # Then the webhook leaves the session failed, owing its note, without asking again
    after_webhook = desk.session(session_id)
    assert (after_webhook.status, after_webhook.error) == (SessionStatus.FAILED, "UNCONFIRMED")
    # When the resolver runs, then the note tells the agent, and the user saw one prompt
    assert desk.run() == {RunOutcome.NOTED: 1}
    assert len(desk.bugpilot.requests("action")) == MAX_PROMPTS
    [note] = desk.notes()
    assert UNCONFIRMED_NOTE in note


def test_a_failure_after_an_unconfirmed_try_still_says_a_report_may_appear(desk: Desk) -> None:
    # Given a first action answered too late, then Bugpilot refusing the key
    session_id = request(desk, "upload-session", SLOW, times=1)
    desk.bugpilot.script("action", 401, "INVALID_API_KEY")
    # When the resolver asks again
    assert desk.run_when_due(session_id) == {RunOutcome.NOTED: 1}
    # Then the note names the refusal and that the first try may still have captured
    [note] = desk.notes()
    assert "rejected the API key" in note
    assert EARLIER_UNCONFIRMED_NOTE in note
