"""``python -m local_runner demo``: the whole capture flow on one machine, no account needed.

The capture sources and the helpdesk (Zendesk unless ``--helpdesk`` names another) are local
simulators, DynamoDB is embedded, and the real handlers run in the local runner. Each step
prints what is sent and what comes back, and checks that it did what it should within a bound,
so the demo doubles as an end-to-end smoke test.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests

from local_runner.dynamodb import dynamodb_client
from local_runner.logs import make_handler_logs_readable
from local_runner.runner import DEFAULT_TEMPLATE, LocalRunner
from local_runner.simulators import (
    HELPDESK_SIMULATORS,
    PROVIDER_SIMULATORS,
    BugpilotSimulator,
    HelpdeskSimulator,
    LambdaTestSimulator,
    NotteSimulator,
    ProviderSimulator,
    Simulator,
)

T = TypeVar("T")
S = TypeVar("S", bound=Simulator)
#: A webhook delivery: its headers and its exact body bytes (the signature covers them).
Delivery = tuple[dict[str, str], bytes]

LAMBDATEST_SESSION = "bc02fd99593f14e37850745d66197f89"
NOTTE_SESSION = "33c3c8bf-9d6d-4dff-8248-142eaf347f59"
SESSIONS_API_TOKEN = "demo-sessions-token"  # noqa: S105 - credential of the local demo only
DEFAULT_HELPDESK = "zendesk"
SCHEDULE_SECONDS = 1.0
# The template's work queue and the function its event source mapping invokes.
WORK_QUEUE = "WorkQueue"
WORKER = "WorkerFunction"
NOTE_TIMEOUT = 30.0
STATUS_TIMEOUT = 10.0
POLL_SECONDS = 0.2
# Said once, before a helpdesk's first note, where the note's raw body reads oddly: the demo
# prints the body the bridge sent, not the page the helpdesk renders from it.
NOTE_MARKUP: dict[str, tuple[str, ...]] = {
    "jira": (
        "(Jira reads a comment as wiki markup, so the bridge escapes every markup character",
        "with a backslash: no text from a ticket or a vendor can become markup. Jira shows",
        "the text without the backslashes.)",
    ),
}
HTTP_TIMEOUT = 15.0
# The demo's last words: where to try the Zendesk sidebar app (apps/zendesk) on this machine.
PANEL_HINT = (
    "Try the Zendesk sidebar app (apps/zendesk) on this stack, still with no account: run",
    "`make panel` and open the address it prints (a stand-in for Zendesk's ticket sidebar).",
    "With real Zendesk and Bugpilot accounts in .env, `make dev` serves it too. See",
    "docs/sidebar-app.md.",
)


class DemoError(Exception):
    """A step did not happen as it should (the message says which and why)."""


def say(text: str = "") -> None:
    """Print one line of the demo and show it at once."""
    print(text, flush=True)


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Poll ``check`` until it returns something, or fail the step after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise DemoError(f"{what} did not happen within {timeout:g} s")
        time.sleep(POLL_SECONDS)


@contextmanager
def running(simulator: S) -> Iterator[S]:
    """The simulator, serving until the block ends."""
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


class SessionWatch:
    """Reads a session from the table and prints its status each time it changes."""

    def __init__(self, table_name: str, session_id: str):
        self.session_id = session_id
        self._client = dynamodb_client()
        self._table = table_name
        self._key = {"pk": {"S": f"session#{session_id}"}}
        self.status: str | None = None

    def item(self) -> dict[str, str]:
        """The session's attributes as plain strings (empty if there is no item)."""
        answer = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True)
        item = answer.get("Item") or {}
        return {name: next(iter(value.values())) for name, value in item.items()}

    def poll(self) -> str | None:
        """Read the status, print it when it changed, and return it."""
        item = self.item()
        status = item.get("status")
        if status and status != self.status:
            self.status = status
            details = [f"attempts {item.get('attempts', '0')}"]
            if item.get("next_check_at"):
                details.append(f"next check {item['next_check_at']}")
            if item.get("report_url"):
                details.append(f"report {item['report_url']}")
            say(f"   session status: {status}  ({', '.join(details)})")
        return status

    def wait_status(self, wanted: str, timeout: float = STATUS_TIMEOUT) -> None:
        """Print status changes until the session reaches ``wanted``."""
        wait_for(
            f"session status {wanted!r}",
            lambda: True if self.poll() == wanted else None,
            timeout,
        )


class Demo:
    """The demo's steps, sharing the simulators and the runner."""

    def __init__(
        self,
        runner: LocalRunner,
        desk: HelpdeskSimulator,
        providers: Mapping[str, ProviderSimulator],
    ):
        self.runner = runner
        self.desk = desk
        self.providers = providers
        # The steps below drive these three; any other capture source only serves.
        self.bugpilot = self.provider("bugpilot", BugpilotSimulator)
        self.lambdatest = self.provider("lambdatest", LambdaTestSimulator)
        self.notte = self.provider("notte", NotteSimulator)
        self.table_name = runner.environment["TABLE_NAME"]
        self.path = f"/webhooks/{desk.helpdesk}"
        self.tickets = [desk.ticket_id(number) for number in (1001, 1002, 1003, 1004)]
        self.markup_explained = False

    def run(self) -> None:
        """All steps in order; raises :class:`DemoError` at the first one that fails."""
        say("Capture bridge demo: everything runs on this machine, no AWS or vendor account.")
        urls = {name: simulator.url for name, simulator in self.providers.items()}
        for name, url in {**urls, self.desk.helpdesk: self.desk.url}.items():
            say(f"   {name:<19} {url}")
        say(f"   Local API           {self.runner.url}")
        queue = self.runner.queue_urls.get(WORK_QUEUE)
        if queue:
            say(f"   Work queue          {queue}")
            say(
                "   (each session waits there for its next check, then the worker takes it; the"
                f" resolver sweeps every {SCHEDULE_SECONDS:g} s for reminders lost)"
            )
        watch, delivery = self.step_online_user()
        self.step_duplicate(watch.session_id, delivery)
        self.step_note(watch)
        self.step_offline_user()
        self.step_lambdatest()
        self.step_notte()
        self.step_command_line(watch.session_id)
        say()
        say("Done: every step happened as expected.")
        say()
        for line in PANEL_HINT:
            say(line)

    # --- the steps ------------------------------------------------------------------------

    def step_online_user(self) -> tuple[SessionWatch, Delivery]:
        """(1) A ticket whose requester is online: Bugpilot gets a capture request."""
        say()
        say("1. user-42 has the app open, so Bugpilot can reach them.")
        # Known to Bugpilot by its id, or by its email where the helpdesk only knows that.
        self.bugpilot.connect_user("user-42")
        self.bugpilot.connect_user("ada@example.com")
        ticket = self.tickets[0]
        delivery = self.make_delivery(ticket, "user-42", "ada@example.com")
        say(f"   {self.desk.sender} calls the webhook for ticket {ticket} (with its proof):")
        answer = self.post(delivery)
        self.expect(answer, 202)
        watch = SessionWatch(self.table_name, self.session_id(answer))
        watch.poll()
        actions = self.bugpilot.requests("action")
        if len(actions) != 1:
            raise DemoError(f"Bugpilot should have 1 capture request, it has {len(actions)}")
        say(f"   Bugpilot received: {json.dumps(actions[0].json())}")
        return watch, delivery

    def step_duplicate(self, session_id: str, delivery: Delivery) -> None:
        """(2) The helpdesk retries the same delivery: nothing is done twice."""
        say()
        say(f"2. {self.desk.sender} delivers the very same webhook again (as its retries do).")
        answer = self.post(delivery)
        if not 200 <= answer["status"] < 300:
            raise DemoError(f"the repeated delivery got HTTP {answer['status']}")
        again = self.session_id(answer)
        if again != session_id:
            raise DemoError(f"the repeated delivery made a new session {again} ({session_id})")
        count = len(self.bugpilot.requests("action"))
        if count != 1:
            raise DemoError(f"Bugpilot got {count} capture requests instead of 1")
        say("   Same session, and Bugpilot still has 1 capture request: deduplicated.")

    def step_note(self, watch: SessionWatch) -> None:
        """(3) The worker, handed the session by the work queue, writes the internal note."""
        say()
        say("3. The work queue hands the session to the worker when its check is due; the worker")
        say("   asks Bugpilot for the report and writes it back.")
        self.wait_for_note(self.tickets[0], watch)
        stats = self.runner.mapping_stats(WORKER)
        say(
            f"   (so far the worker took {stats.records} reminders from the queue in"
            f" {stats.batches} batches)"
        )

    def step_offline_user(self) -> None:
        """(4) A requester who is offline: the bridge waits, then captures once they connect."""
        say()
        ticket = self.tickets[1]
        say(f"4. Ticket {ticket}: its requester user-7 does not have the app open.")
        self.bugpilot.disconnect_user("user-7")
        self.bugpilot.disconnect_user("grace@example.com")
        delivery = self.make_delivery(ticket, "user-7", "grace@example.com")
        answer = self.post(delivery)
        self.expect(answer, 202)
        watch = SessionWatch(self.table_name, self.session_id(answer))
        watch.wait_status("waiting_for_user")
        say("   user-7 opens the app; the worker retries the capture request when it is due...")
        self.bugpilot.connect_user("user-7")
        self.bugpilot.connect_user("grace@example.com")
        self.wait_for_note(ticket, watch)

    def step_lambdatest(self) -> None:
        """(5) A ticket names a LambdaTest test session: its results reach the ticket."""
        say()
        ticket = self.tickets[2]
        say(f"5. Ticket {ticket} names a LambdaTest test session that is still running.")
        self.lambdatest.add_session(LAMBDATEST_SESSION, status="running")
        delivery = self.make_delivery(
            ticket,
            "",
            "qa@example.com",
            tags="qa",
            lambdatest_session_id=LAMBDATEST_SESSION,
        )
        answer = self.post(delivery)
        self.expect(answer, 202)
        watch = SessionWatch(self.table_name, self.session_id(answer))
        watch.wait_status("pending")
        say("   The test finishes (failed); the worker reads it and writes the note...")
        self.lambdatest.finish_session(LAMBDATEST_SESSION, status="failed")
        self.wait_for_note(ticket, watch)

    def step_notte(self) -> None:
        """(6) A ticket links a Notte browser session: its replay reaches the ticket."""
        say()
        ticket = self.tickets[3]
        say(f"6. Ticket {ticket} links the Notte browser session an agent reproduced the bug in.")
        self.notte.add_session(NOTTE_SESSION, status="active")
        delivery = self.make_delivery(
            ticket,
            "user-7",
            "grace@example.com",
            tags="notte",
            text=f"Reproduced in https://console.notte.cc/sessions/{NOTTE_SESSION}",
        )
        answer = self.post(delivery)
        self.expect(answer, 202)
        watch = SessionWatch(self.table_name, self.session_id(answer))
        watch.wait_status("pending")
        say("   The browser session closes; the worker fetches its replay...")
        self.notte.close_session(NOTTE_SESSION)
        self.wait_for_note(ticket, watch)

    def step_command_line(self, first_session_id: str) -> None:
        """(7) The same captures as an agent's tool sees them: the sessions API, via its CLI."""
        # Imported here: the CLI is the project's installed package, not the runner's.
        from capture_cli.main import main as capture_bridge

        say()
        say("7. The sessions API shows the same captures; here through `capture-bridge`:")
        commands = [
            ["sessions", "list", "--status", "resolved"],
            ["sessions", "show", first_session_id],
        ]
        for command in commands:
            # The path a fresh clone has (`make` installs the command into .venv, not on PATH).
            say(f"   $ .venv/bin/capture-bridge {' '.join(command)} --url {self.runner.url}")
            status = capture_bridge(
                [*command, "--url", self.runner.url, "--token", SESSIONS_API_TOKEN]
            )
            if status != 0:
                raise DemoError(f"capture-bridge {' '.join(command)} exited with {status}")

    # --- helpers --------------------------------------------------------------------------

    def provider(self, name: str, kind: type[T]) -> T:
        """The capture source's simulator registered as `name`, as the class its step drives."""
        simulator = self.providers.get(name)
        if not isinstance(simulator, kind):
            raise DemoError(f"PROVIDER_SIMULATORS[{name!r}] is not a {kind.__name__}")
        return simulator

    def wait_for_note(self, ticket_id: str, watch: SessionWatch) -> None:
        """Wait until the ticket has its internal note and the session is resolved; show it."""
        note = wait_for(
            f"an internal note on ticket {ticket_id}",
            lambda: watch.poll() and self.internal_note(ticket_id),
            NOTE_TIMEOUT,
        )
        watch.wait_status("resolved")
        self.show_note(ticket_id, note)

    def make_delivery(
        self,
        ticket_id: str,
        user_id: str,
        email: str,
        *,
        tags: str = "bugpilot_session vip",
        **extra: str,
    ) -> Delivery:
        """Headers and body of a delivery as the helpdesk's rule makes it, with its proof."""
        # Imported only now: the runner has put the layer (layers/bridge) on sys.path.
        from capture_bridge.helpdesks import WebhookRequest, helpdesk_spec

        body = self.desk.webhook_body(
            ticket_id, user_id=user_id, email=email, tags=tags, fields=extra
        )
        sign = helpdesk_spec(self.desk.helpdesk).sign_request
        proof = sign(
            self.desk.bridge_settings(),
            WebhookRequest("POST", self.path, body=body),
            datetime.now(UTC),
        )
        return {**self.desk.webhook_headers(), **proof}, body

    def post(self, delivery: Delivery) -> dict[str, Any]:
        """Send a delivery to the local API; print and return status and JSON answer."""
        headers, body = delivery
        say(f"     POST {self.path}")
        say(f"     {body.decode()}")
        try:
            response = requests.post(
                f"{self.runner.url}{self.path}",
                data=body,
                headers=headers,
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as error:
            raise DemoError(f"the webhook call failed: {error}") from error
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        say(f"   -> {response.status_code} {json.dumps(payload)}")
        return {"status": response.status_code, "body": payload}

    @staticmethod
    def expect(answer: dict[str, Any], status: int) -> None:
        """Fail the step unless the answer has ``status``."""
        if answer["status"] != status:
            raise DemoError(f"expected HTTP {status}, got {answer['status']}: {answer['body']}")

    @staticmethod
    def session_id(answer: dict[str, Any]) -> str:
        """The session id of a webhook answer."""
        body = answer["body"]
        session_id = body.get("session_id") if isinstance(body, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise DemoError(f"the answer has no session_id: {body}")
        return session_id

    def internal_note(self, ticket_id: str) -> str | None:
        """The first internal (agent-only) note of a ticket, if any."""
        notes = self.desk.internal_notes(ticket_id)
        return notes[0] if notes else None

    def show_note(self, ticket_id: str, note: str) -> None:
        """Print an internal note, indented."""
        say(f"   Internal note on {self.desk.helpdesk.capitalize()} ticket {ticket_id}:")
        if not self.markup_explained:
            for line in NOTE_MARKUP.get(self.desk.helpdesk, ()):
                say(f"     {line}")
            self.markup_explained = True
        for line in note.splitlines() or [""]:
            say(f"     | {line}")


def demo_env(
    desk: HelpdeskSimulator, providers: Mapping[str, ProviderSimulator], *, verbose: bool
) -> dict[str, str]:
    """Settings that point the handlers at the simulators, with short demo timings."""
    return {
        **{
            key: value
            for simulator in providers.values()
            for key, value in simulator.bridge_settings().items()
        },
        **desk.bridge_settings(),
        "SESSIONS_API_TOKEN": SESSIONS_API_TOKEN,
        "CAPTURE_MAX_WAIT_MINUTES": "30",
        # Production waits minutes between retries and polls; the demo must not.
        "CAPTURE_USER_RETRY_SECONDS": "1",
        "CAPTURE_POLL_SECONDS": "1",
        # The handlers' JSON logs would drown the demo's story; --verbose shows them.
        "POWERTOOLS_LOG_LEVEL": "INFO" if verbose else "WARNING",
        # Metrics are lines for CloudWatch to read; locally they are noise.
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


@dataclass
class Stack:
    """The local runner and the simulators behind it."""

    runner: LocalRunner
    desk: HelpdeskSimulator
    providers: dict[str, ProviderSimulator]


def start_stack(
    stack: ExitStack,
    desk: HelpdeskSimulator,
    *,
    providers: Mapping[str, Callable[[], ProviderSimulator]] = PROVIDER_SIMULATORS,
    env: Mapping[str, str] | None = None,
    verbose: bool = False,
    **runner_options: Any,
) -> Stack:
    """Start the capture sources' simulators, `desk` and the local runner on them (the demo's
    settings, then `env`) with an embedded DynamoDB of its own; `stack` stops them all."""
    started = {name: stack.enter_context(running(make())) for name, make in providers.items()}
    stack.enter_context(running(desk))
    runner_options.setdefault("port", 0)
    runner = stack.enter_context(
        LocalRunner(
            env={**demo_env(desk, started, verbose=verbose), **(env or {})},
            # A fresh table every run, even if AWS_ENDPOINT_URL_DYNAMODB points elsewhere.
            embedded_dynamodb=True,
            **runner_options,
        )
    )
    return Stack(runner, desk, started)


def run_demo(
    *,
    verbose: bool = False,
    template_path: str | Path = DEFAULT_TEMPLATE,
    helpdesk: str = DEFAULT_HELPDESK,
) -> int:
    """Run the demo with `helpdesk`'s simulator; the exit code is 0 when every step happened."""
    make_desk = HELPDESK_SIMULATORS.get(helpdesk)
    if make_desk is None:
        known = ", ".join(sorted(HELPDESK_SIMULATORS))
        print(f"Unknown helpdesk {helpdesk!r}; the demo runs {known}", file=sys.stderr)
        return 2
    if not verbose:
        # Keep errors (with their tracebacks) but not the one line per request.
        logging.getLogger("local_runner").setLevel(logging.WARNING)
    try:
        with ExitStack() as stack:
            started = start_stack(
                stack,
                make_desk(),
                verbose=verbose,
                template_path=template_path,
                schedule_interval=SCHEDULE_SECONDS,
            )
            if verbose:
                make_handler_logs_readable()
            Demo(started.runner, started.desk, started.providers).run()
    except DemoError as error:
        print(f"\nDemo failed: {error}", file=sys.stderr)
        return 1
    except ImportError as error:
        print(
            f"\nDemo failed: the Lambda code could not be imported ({error}).\n"
            "Are layers/bridge/capture_bridge and functions/*/ in place?",
            file=sys.stderr,
        )
        return 1
    return 0
