"""Capture providers: who records what the end user sees.

Each provider sits in a module of its own behind `CaptureProvider`; the rest of the bridge only
sees the outcomes below, so LambdaTest or Notte sessions can be added beside Bugpilot.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from capture_bridge.http import HttpClient
    from capture_bridge.settings import Settings


class ActionOutcome(StrEnum):
    """What became of asking the provider to capture."""

    ACCEPTED = "accepted"
    # The user is not online right now; asking again later may work.
    USER_OFFLINE = "user_offline"
    # The provider refused for a reason only an operator can fix (credentials, access, input).
    REJECTED = "rejected"
    # The provider failed or was unreachable; asking again later is expected to work.
    RETRYABLE = "retryable"


class ReportOutcome(StrEnum):
    """What became of asking the provider for the finished report."""

    READY = "ready"
    NOT_READY = "not_ready"
    # The provider does not know this capture (bad token) or we refuse to ask (untrusted URL).
    INVALID = "invalid"
    RETRYABLE = "retryable"


@dataclass(frozen=True)
class ActionResult:
    outcome: ActionOutcome
    session_info_url: str | None = None
    error_code: str | None = None
    message: str = ""
    retry_after_seconds: int | None = None


@dataclass(frozen=True)
class ReportResult:
    outcome: ReportOutcome
    report_url: str | None = None
    error_code: str | None = None
    message: str = ""
    retry_after_seconds: int | None = None


class CaptureProvider(Protocol):
    """Asks for a capture of a user's session and later fetches the report it produced."""

    name: str

    def request_capture(self, *, user_id: str, action: str, description: str) -> ActionResult:
        """Ask for the capture; never raises for an upstream failure."""
        ...

    def fetch_report(self, session_info_url: str) -> ReportResult:
        """Ask whether the report exists yet; never raises for an upstream failure."""
        ...


def get_provider(settings: Settings, http: HttpClient) -> CaptureProvider:
    """The configured capture provider (Bugpilot, the only one so far)."""
    from capture_bridge.capture.bugpilot import BugpilotProvider

    return BugpilotProvider(
        api_url=settings.bugpilot_api_url,
        workspace_id=settings.bugpilot_workspace_id,
        api_key=settings.bugpilot_api_key,
        http=http,
    )
