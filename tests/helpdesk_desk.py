"""One helpdesk's webhook, the resolver and Bugpilot, as each helpdesk's flow tests drive them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

import boto3

from capture_bridge.models import NoteState
from capture_bridge.resolver import resolve_due_sessions
from capture_bridge.runtime import Runtime
from capture_bridge.webhook import WebhookAnswer, receive
from local_runner.simulators import BugpilotSimulator, HelpdeskSimulator
from tests.conftest import PLENTY_MS, Clock

HTTP_ACCEPTED = 202
S = TypeVar("S", bound=HelpdeskSimulator)


def stored(table: str) -> int:
    """How many items the table holds, whatever their key: 0 when a refusal stored nothing."""
    return int(boto3.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


@dataclass
class HelpdeskDesk(Generic[S]):
    """Sends deliveries to `/webhooks/<helpdesk>` as the Lambda handler would, and runs the rest.

    `simulator` is the helpdesk's write-back API; `proof` gives the headers that prove a body
    when a test passes none (the helpdesk's signature or secret).
    """

    runtime: Runtime
    clock: Clock
    simulator: S
    bugpilot: BugpilotSimulator
    table: str
    proof: Callable[[bytes, datetime], dict[str, str]]

    @property
    def helpdesk(self) -> str:
        return self.simulator.helpdesk

    def send(
        self, body: bytes, headers: dict[str, str] | None = None, runtime: Runtime | None = None
    ) -> WebhookAnswer:
        return receive(
            self.helpdesk,
            self.proof(body, self.clock()) if headers is None else headers,
            body.decode(),
            is_base64=False,
            runtime_factory=lambda: runtime or self.runtime,
            clock=self.clock,
        )

    def accepted(self, body: bytes, headers: dict[str, str] | None = None) -> str:
        """A delivery that must be accepted (new or a duplicate); its session id."""
        answer = self.send(body, headers)
        assert answer.status == HTTP_ACCEPTED, answer.body
        session_id: str = answer.body["session_id"]
        return session_id

    def created(self, body: bytes, headers: dict[str, str] | None = None) -> str:
        """A delivery that must make a new session; its id."""
        answer = self.send(body, headers)
        assert answer.status == HTTP_ACCEPTED, answer.body
        assert answer.body["duplicate"] is False, answer.body
        session_id: str = answer.body["session_id"]
        return session_id

    def run(self) -> None:
        resolve_due_sessions(self.runtime, lambda: PLENTY_MS, self.clock)

    def run_when_due(self, session_id: str) -> None:
        """Move the clock to the session's next check (if it has one ahead) and run the resolver."""
        session = self.runtime.store.get(session_id)
        assert session is not None
        if session.next_check_at is not None:
            self.clock.now = max(session.next_check_at, self.clock.now)
        self.run()

    def complete_report(self) -> str:
        """The latest capture's report exists in Bugpilot; its URL."""
        return self.bugpilot.complete_report(self.bugpilot.tokens[-1])

    def report_ready(self, session_id: str) -> str:
        """The user's report exists and the resolver has run; the report's URL."""
        report = self.complete_report()
        self.run_when_due(session_id)
        return report

    def notes(self, ticket: str) -> list[str]:
        """The ticket's internal notes as the helpdesk received them."""
        return self.simulator.internal_notes(ticket)

    def note_state(self, session_id: str) -> NoteState | None:
        session = self.runtime.store.get(session_id)
        assert session is not None
        return session.note_state
