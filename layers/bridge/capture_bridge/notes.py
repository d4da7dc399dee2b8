"""The internal notes agents read: one per capture session, saying what happened and what to do."""

from __future__ import annotations

from capture_bridge.models import CaptureSession, SessionStatus

ACTION_LABELS = {
    "upload-session": "session recording (last minutes of activity)",
    "upload-screenshot": "screenshot",
    "show-recording-ui": "screen recording by the user",
}


def marker(session: CaptureSession) -> str:
    """A line unique to the session, so that a note already posted can be recognised."""
    return f"Capture session: {session.session_id}"


def render_note(session: CaptureSession) -> str:
    """The note for a session in a final status."""
    label = ACTION_LABELS.get(session.action, session.action)
    requested = session.created_at.strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Bugpilot {label} ({session.action}) requested {requested} for user {session.user_id}."
    )
    if session.status is SessionStatus.RESOLVED:
        body = f"The capture is ready: {session.report_url}"
    elif session.status is SessionStatus.TIMED_OUT:
        if session.error == "USER_NOT_CONNECTED":
            body = (
                "No capture was taken: the user was not online in the app while we kept asking. "
                "Ask them to open the app, then request the capture again."
            )
        else:
            body = (
                "No report arrived in time: the user may have cancelled the recording or closed "
                "the page. Request the capture again if you still need it."
            )
    else:
        body = (
            f"The capture could not be completed: {_failure_reason(session)} "
            "Request it again once this is fixed."
        )
    return f"{header}\n{body}\n{marker(session)}"


def _failure_reason(session: CaptureSession) -> str:
    code = session.error or "UNKNOWN"
    reasons = {
        "INVALID_API_KEY": (
            "Bugpilot rejected the API key (an administrator must check BUGPILOT_API_KEY)."
        ),
        "NO_ACCESS": "Bugpilot denied access to the workspace (check BUGPILOT_WORKSPACE_ID).",
        "MISSING_FIELDS": "Bugpilot said required fields were missing.",
        "INVALID_ACTION": "Bugpilot does not know this action.",
        "NOT_CONFIGURED": "the Bugpilot workspace or API key is not configured.",
        "INVALID_SESSION_TOKEN": "Bugpilot no longer knows this capture session.",
        "UNTRUSTED_SESSION_INFO_URL": "Bugpilot returned a link we do not trust.",
        "INTERRUPTED": (
            "the request was interrupted and we cannot tell whether Bugpilot received it; "
            "if a report shows up in Bugpilot, it belongs to this ticket."
        ),
    }
    return reasons.get(code, f"Bugpilot kept failing ({code}).")
