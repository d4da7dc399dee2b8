"""``python -m local_runner panel`` (``make panel``): the Zendesk sidebar app on the demo's stack.

No account is needed: the demo's simulators and embedded DynamoDB run behind the local API (in
token mode, with the demo's token), the work queue's worker and the resolver's sweep run, and
the sidebar app is served on the stand-in ZAF client (local_runner.zaf) for a ticket whose
requester is online in the Bugpilot simulator, which completes each report a few seconds after
it is asked for. Each capture request and each internal note on the simulated ticket is printed
as it happens.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack

from local_runner.demo import (
    SCHEDULE_SECONDS,
    SESSIONS_API_TOKEN,
    say,
    start_stack,
)
from local_runner.logs import make_handler_logs_readable
from local_runner.simulators import PROVIDER_SIMULATORS, BugpilotSimulator, ZendeskSimulator
from local_runner.zaf import Ticket, ZafStandin

TICKET = 1001
USER = "user-42"
EMAIL = "ada@example.com"
AUTO_COMPLETE_SECONDS = 5.0
WATCH_SECONDS = 0.5


def run_panel(
    stopped: threading.Event,
    *,
    port: int = 0,
    panel_port: int = 3001,
    auto_complete_seconds: float = AUTO_COMPLETE_SECONDS,
    verbose: bool = False,
) -> int:
    """Serve the panel on the simulators until `stopped` is set; the exit code."""
    from ops.app import manifest_for

    if not verbose:
        logging.getLogger("local_runner").setLevel(logging.WARNING)
    bugpilot = BugpilotSimulator(
        reports_after_polls=None, auto_complete_seconds=auto_complete_seconds
    )
    providers = {**PROVIDER_SIMULATORS, "bugpilot": lambda: bugpilot}
    with ExitStack() as stack:
        desk = ZendeskSimulator()
        started = start_stack(
            stack,
            desk,
            providers=providers,
            env={"SESSIONS_API_AUTH": "token"},
            verbose=verbose,
            port=port,
            schedule_interval=SCHEDULE_SECONDS,
        )
        if verbose:
            make_handler_logs_readable()
        # The requester is known to Bugpilot by id and by email, and online.
        bugpilot.connect_user(USER)
        bugpilot.connect_user(EMAIL)
        api = started.runner.url
        standin = ZafStandin(
            settings={"api_url": api, "api_token": SESSIONS_API_TOKEN},
            manifest=manifest_for(api),
            ticket=Ticket(TICKET, EMAIL, USER),
            port=panel_port,
        )
        try:
            stack.enter_context(standin)
        except OSError as error:
            say(f"error: cannot serve the panel on port {panel_port} ({error}); --panel-port N")
            return 1
        say("The Zendesk sidebar app on simulators: no Zendesk, Bugpilot or AWS account.")
        say(f"   Panel               {standin.panel_url}")
        say(f"   Local API           {api}  (token mode, token {SESSIONS_API_TOKEN})")
        say(f"   Zendesk simulator   {desk.url}  (ticket {TICKET})")
        say(f"   Bugpilot simulator  {bugpilot.url}  (requester {USER} / {EMAIL}, online)")
        say()
        say("What to try:")
        say(f"   1. Open {standin.panel_url} and press Request capture.")
        say(
            f"   2. Watch it go from requested to ready: the simulated user sends the report "
            f"{auto_complete_seconds:g} s later,"
        )
        say("      and the worker fetches it: the work queue hands it the session at each check.")
        say("   3. Open the report link (an address on dash.bugpilot.io: the report itself is")
        say("      simulated, so the page does not exist).")
        say(f"   4. See the internal note the bridge wrote on Zendesk ticket {TICKET}, below.")
        say("Ctrl-C stops everything.")
        watch(stopped, desk, bugpilot)
    say("Stopped.")
    return 0


def watch(stopped: threading.Event, desk: ZendeskSimulator, bugpilot: BugpilotSimulator) -> None:
    """Print each capture request Bugpilot gets and each note the ticket gets, until stopped."""
    asked = notes = 0
    ticket = desk.ticket_id(TICKET)
    while not stopped.wait(WATCH_SECONDS):
        actions = bugpilot.requests("action")
        for action in actions[asked:]:
            say(f"Bugpilot was asked for a capture: {action.json()}")
        asked = len(actions)
        landed = desk.internal_notes(ticket)
        for note in landed[notes:]:
            say(f"Internal note on Zendesk ticket {TICKET}:")
            for line in note.splitlines() or [""]:
                say(f"   | {line}")
        notes = len(landed)
