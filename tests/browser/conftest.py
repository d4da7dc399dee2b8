"""The browser suite's set-up: headless Chromium from the machine's packages, driven by
Playwright, on the sidebar app served by the ZAF stand-in (local_runner.zaf), which forwards
the app's requests to the real sessions API of the local runner (embedded DynamoDB, the
Bugpilot and Zendesk simulators behind it).

Where Chromium or Playwright is missing, every test here is skipped with one line saying how
to get it; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from local_runner.demo import SESSIONS_API_TOKEN, start_stack
from local_runner.runner import LocalRunner
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from local_runner.zaf import SDK_URL, STANDIN_SCRIPT, Ticket, ZafStandin
from ops.app import manifest_for

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_REASON = (
    "browser suite skipped: no Chromium at {path} (install it with `apt-get install -y "
    "chromium`; `make test` does) {extra}"
)
RESOLVER = "ResolverFunction"
# Takes each due session from the work queue (the local runner's SQS event source mapping).
WORKER = "WorkerFunction"
TICKET = 1001
USER = "user-42"
EMAIL = "ada@example.com"
WAIT_SECONDS = 15.0


def _missing() -> str | None:
    """Why the suite cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return SKIP_REASON.format(
            path=CHROMIUM, extra="and Playwright: `make .venv/bin/.installed`"
        )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return SKIP_REASON.format(path=CHROMIUM, extra="").strip()
    return None


MISSING = _missing()
# Without a browser, only test_chromium.py is collected, and it skips with the reason: the
# whole suite is then one line of `pytest -ra` ("SKIPPED [1] …"), never silent.
collect_ignore = ["test_logic.py", "test_sidebar.py"] if MISSING else []


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Bridge:
    """The local runner's sessions API with the simulators behind it."""

    runner: LocalRunner
    bugpilot: BugpilotSimulator
    zendesk: ZendeskSimulator

    @property
    def url(self) -> str:
        return self.runner.url

    def sessions(self, ticket: int = TICKET) -> list[dict[str, Any]]:
        """The ticket's captures as the API lists them (newest first)."""
        answer = requests.get(
            f"{self.url}/sessions",
            params={"helpdesk": "zendesk", "ticketId": str(ticket)},
            headers={"Authorization": f"Bearer {SESSIONS_API_TOKEN}"},
            timeout=10,
        )
        answer.raise_for_status()
        sessions: list[dict[str, Any]] = answer.json()["sessions"]
        return sessions

    def resolve_until(self, status: str, ticket: int = TICKET) -> dict[str, Any]:
        """Deliver the work queue's due reminders to the worker, and run the resolver's sweep
        (as their mapping and schedule would), until the newest capture has `status`."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            self.runner.poll(WORKER)
            self.runner.tick(RESOLVER)
            [newest, *_] = self.sessions(ticket)
            if newest["status"] == status:
                return newest
            if time.monotonic() > deadline:
                raise AssertionError(f"the capture is {newest['status']}, never {status}")
            time.sleep(0.3)


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    """A fresh sessions API in token mode per test (its own embedded DynamoDB)."""
    with ExitStack() as stack:
        zendesk = ZendeskSimulator()
        env = {
            "SESSIONS_API_AUTH": "token",
            # A table of its own: the bridge keeps one store (and DynamoDB client) per table
            # name in the process, which must not outlive this test's embedded DynamoDB.
            "TABLE_NAME": f"sessions-browser-{uuid.uuid4().hex[:12]}",
        }
        started = start_stack(stack, zendesk, env=env, start_schedules=False)
        bugpilot = started.providers["bugpilot"]
        assert isinstance(bugpilot, BugpilotSimulator)
        yield Bridge(started.runner, bugpilot, zendesk)


@dataclass
class Panel:
    """The sidebar app open in a browser page, and what its page did."""

    page: Any
    standin: ZafStandin
    requests: list[dict[str, Any]] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def news(self) -> Any:
        return self.page.get_by_role("status")

    def captures(self) -> Any:
        return self.page.get_by_role("list").get_by_role("listitem")

    def request_button(self) -> Any:
        return self.page.get_by_role("button", name="Request capture", exact=True)

    def poll(self, milliseconds: int = 30_000) -> None:
        """Let the page's own timers run as if `milliseconds` had passed."""
        self.page.clock.run_for(milliseconds)

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        # The panel's own box: what an agent sees in the sidebar.
        self.page.locator("main").screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    def proxied(self, method: str) -> int:
        return sum(1 for entry in self.standin.proxied if entry.method == method)


OpenPanel = Callable[..., Panel]


@pytest.fixture
def open_panel(browser: Any, bridge: Bridge) -> Iterator[OpenPanel]:
    """Opens the committed iframe.html as Zendesk would, with the stand-in client answering
    Zendesk's SDK address; anything else from outside 127.0.0.1 is refused and recorded."""
    with ExitStack() as stack:

        def open_(
            *,
            ticket: Ticket | None = None,
            settings: dict[str, str] | None = None,
            color_scheme: str = "light",
            paused: bool = False,
            dev: bool = False,
        ) -> Panel:
            standin = ZafStandin(
                settings=settings or {"api_url": bridge.url, "api_token": SESSIONS_API_TOKEN},
                manifest=manifest_for(bridge.url),
                ticket=ticket or Ticket(TICKET, EMAIL, USER),
            )
            stack.enter_context(standin)
            context = browser.new_context(
                color_scheme=color_scheme, viewport={"width": 360, "height": 640}
            )
            stack.callback(context.close)
            page = context.new_page()
            panel = Panel(page, standin)
            sdk = STANDIN_SCRIPT.read_text(encoding="utf-8")

            def route(route: Any) -> None:
                url = route.request.url
                if url == SDK_URL:
                    route.fulfill(status=200, content_type="text/javascript", body=sdk)
                elif url.startswith("http://127.0.0.1:"):
                    route.continue_()
                else:
                    panel.outside.append(url)
                    route.abort()

            page.route("**/*", route)
            page.on(
                "request",
                lambda request: panel.requests.append(
                    {
                        "url": request.url,
                        "headers": request.all_headers(),
                        "body": request.post_data or "",
                    }
                ),
            )
            page.on("response", lambda response: panel.responses.append(response))
            page.clock.install()
            if paused:
                page.clock.pause_at(time.time() + 1)  # (Python: Unix time in seconds)
            # `dev`: the page `make dev` serves, whose SDK address is the stand-in's own
            page.goto(standin.panel_url if dev else standin.page_url)
            page.get_by_role("button", name="Request capture", exact=True).wait_for()
            return panel

        yield open_
