"""The Zendesk sidebar app as an agent uses it, in headless Chromium, against the real sessions
API of the local runner (token mode), through the ZAF stand-in's server-side proxy."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from local_runner.demo import SESSIONS_API_TOKEN
from local_runner.zaf import SDK_URL, Ticket
from tests.browser.conftest import EMAIL, TICKET, USER, Bridge, OpenPanel, Panel

REPORT_LINK = re.compile(r"^https://dash\.bugpilot\.io/report/")


def captures_named(panel: Panel, text: str) -> Any:
    return panel.captures().filter(has_text=text)


# -- request, follow, ready ----------------------------------------------------------------------


def test_a_request_goes_from_requested_to_waiting_to_ready_with_its_link_and_one_note(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given a requester who is offline, and Bugpilot failing the first call, slowly
    bridge.bugpilot.script("action", 503, delay=1.0)
    panel = open_panel()
    expect(panel.page.get_by_text("No captures yet.")).to_be_visible()
    panel.screenshot("01-empty")

    # When the agent asks for a session recording with a description
    panel.page.get_by_role("textbox", name="Description", exact=True).fill("The checkout page")
    panel.request_button().click()

    # Then the panel says at once that the request is on its way
    expect(panel.news()).to_have_text("Asking for a session recording…")
    # and, once stored, shows the capture as requested (Bugpilot not reached yet)
    capture = panel.captures().first
    expect(capture).to_contain_text("requested, being sent to Bugpilot")
    expect(capture).to_contain_text("Bugpilot · Session recording")
    expect(capture.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    panel.screenshot("02-requested")

    # When the resolver runs and Bugpilot says the user has not opened the app
    bridge.resolve_until("waiting_for_user")
    panel.poll()
    # Then the panel, re-reading the list, says so
    expect(capture).to_contain_text("waiting for the user to open the app")
    panel.screenshot("03-waiting")

    # When the user opens the app and the resolver runs until the report is there
    bridge.bugpilot.connect_user(USER)
    bridge.resolve_until("pending")
    panel.poll()
    expect(capture).to_contain_text("capturing, waiting for the report")
    bridge.resolve_until("resolved")
    panel.poll()

    # Then the capture is ready, with its link opening in a new tab, and cannot be cancelled
    expect(capture).to_contain_text("report ready")
    link = capture.get_by_role("link", name="Open report", exact=True)
    expect(link).to_have_attribute("href", REPORT_LINK)
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(capture.get_by_role("button", name="Cancel capture")).to_have_count(0)
    panel.screenshot("04-ready")

    # And one request made exactly one capture, one Bugpilot report and one internal note
    [session] = bridge.sessions()
    assert session["noteState"] == "posted" or session["status"] == "resolved"
    assert len(bridge.bugpilot.tokens) == 1
    assert len(bridge.zendesk.internal_notes(str(TICKET))) == 1
    [action, *_] = [r.json() for r in bridge.bugpilot.requests("action")]
    assert action.get("userProvidedDescription") == "The checkout page"

    # When the agent then asks for a screenshot of the same ticket
    panel.page.get_by_role("combobox", name="Capture type").select_option(label="Screenshot")
    panel.request_button().click()
    # Then it is listed first (newest first), open, beside the ready recording
    expect(panel.captures()).to_have_count(2)
    expect(panel.captures().first).to_contain_text("Bugpilot · Screenshot")
    expect(panel.captures().first).to_contain_text("capturing, waiting for the report")
    expect(panel.captures().nth(1)).to_contain_text("report ready")
    # (this state is docs/images/sidebar.png, copied from the screenshots folder)
    panel.screenshot("10-panel")


def test_a_double_click_makes_one_capture_and_says_the_second_started_nothing(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given a requester with the app open
    bridge.bugpilot.connect_user(USER)
    panel = open_panel()

    # When the agent double-clicks Request capture
    panel.request_button().dblclick()

    # Then there is one capture, and the panel says the second click started nothing
    expect(panel.captures()).to_have_count(1)
    expect(panel.news()).to_contain_text(re.compile("second click started nothing|already open"))
    assert len(bridge.sessions()) == 1
    assert len(bridge.bugpilot.requests("action")) == 1
    assert panel.proxied("POST") == 1

    # When the agent clicks once more later, while that capture is still open
    panel.request_button().click()
    # Then again nothing new starts
    expect(panel.news()).to_have_text(
        "A session recording is already open for this ticket: nothing new was started."
    )
    assert panel.proxied("POST") == 1
    assert len(bridge.sessions()) == 1


def test_a_capture_of_another_kind_is_its_own_and_can_be_cancelled(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given an open session recording, with the requester offline
    panel = open_panel()
    panel.request_button().click()
    expect(panel.captures()).to_have_count(1)

    # When the agent asks for a screenshot too, then cancels it
    panel.page.get_by_role("combobox", name="Capture type", exact=True).select_option(
        label="Screenshot"
    )
    panel.request_button().click()
    expect(panel.captures()).to_have_count(2)
    screenshot = captures_named(panel, "Screenshot")
    screenshot.get_by_role("button", name="Cancel capture", exact=True).click()

    # Then the screenshot reads cancelled, with no Cancel button; the recording stays open
    expect(screenshot).to_contain_text("cancelled")
    expect(screenshot.get_by_role("button", name="Cancel capture")).to_have_count(0)
    expect(panel.news()).to_have_text("The screenshot is cancelled.")
    recording = captures_named(panel, "Session recording")
    expect(recording.get_by_role("button", name="Cancel capture", exact=True)).to_be_visible()
    statuses = {s["action"]: s["status"] for s in bridge.sessions()}
    assert statuses == {"upload-screenshot": "cancelled", "upload-session": "waiting_for_user"}
    panel.screenshot("05-cancelled")
    # and a cancelled capture gets no note
    bridge.runner.tick("ResolverFunction")
    assert bridge.zendesk.internal_notes(str(TICKET)) == []


# -- errors ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_bridge_is_an_alert_saying_so(open_panel: OpenPanel) -> None:
    # Given an API URL where nothing answers
    panel = open_panel(
        settings={"api_url": f"http://127.0.0.1:{free_port()}", "api_token": SESSIONS_API_TOKEN}
    )
    # Then the panel is not blank: the form is there, and the alert says what happened
    alert = panel.page.get_by_role("alert")
    expect(alert).to_contain_text("The capture bridge cannot be reached")
    expect(panel.request_button()).to_be_visible()
    # When the agent asks for a capture anyway, the alert says that it did not happen
    panel.request_button().click()
    expect(alert).to_contain_text("the session recording request did not happen")
    panel.screenshot("06-unreachable")


@pytest.fixture
def failing_api() -> Iterator[str]:
    """An API that answers every call 503, as a bridge whose DynamoDB is down does."""

    class Failing(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _fail(self) -> None:
            body = json.dumps({"detail": "Service Unavailable"}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _fail

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_bridge_answering_5xx_is_the_same_alert(open_panel: OpenPanel, failing_api: str) -> None:
    panel = open_panel(settings={"api_url": failing_api, "api_token": SESSIONS_API_TOKEN})
    expect(panel.page.get_by_role("alert")).to_contain_text("The capture bridge cannot be reached")


@pytest.fixture
def flaky_api() -> Iterator[tuple[str, list[str]]]:
    """An API whose first two POSTs fail with 503 (they may have landed); it records the
    Idempotency-Key of every POST."""
    keys: list[str] = []

    class Flaky(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, {"sessions": [], "nextCursor": None})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            keys.append(self.headers.get("Idempotency-Key", ""))
            if len(keys) <= 2:
                self._send(503, {"detail": "Service Unavailable"})
                return
            self._send(201, {"status": "requested", "provider": "bugpilot", "data": {}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", keys
    server.shutdown()
    server.server_close()


def test_a_request_that_may_have_landed_is_retried_with_its_key_and_a_new_one_gets_a_new_key(
    open_panel: OpenPanel, flaky_api: tuple[str, list[str]]
) -> None:
    url, keys = flaky_api
    panel = open_panel(settings={"api_url": url, "api_token": SESSIONS_API_TOKEN})
    alert = panel.page.get_by_role("alert")
    # When a request fails with a 5xx, and the agent tries the very same request again
    panel.request_button().click()
    expect(alert).to_contain_text("cannot be reached")
    panel.request_button().click()
    # (the answer is in once the panel no longer says it is asking)
    expect(panel.news()).not_to_contain_text("Asking")
    # Then both carried the same Idempotency-Key: at most one capture can come of them
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert re.fullmatch(r"zendesk-1001-upload-session-[0-9a-f-]{36}", keys[0])
    # When the agent changes the description and asks again, it is a new request, a new key
    panel.page.get_by_role("textbox", name="Description").fill("Another view")
    panel.request_button().click()
    expect(panel.news()).to_contain_text("Session recording requested")
    assert len(keys) == 3
    assert keys[2] != keys[0]


def test_a_refused_token_says_to_check_the_apps_settings(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given the app's token setting is not the stack's
    panel = open_panel(settings={"api_url": bridge.url, "api_token": "not-the-token"})
    # Then the alert says the token was refused and where to fix it
    alert = panel.page.get_by_role("alert")
    expect(alert).to_contain_text("refused the app's token: check the app's settings")
    panel.request_button().click()
    expect(alert).to_contain_text("check the app's settings")
    # and nothing was captured
    assert bridge.sessions() == []
    panel.screenshot("07-token-refused")


def test_a_requester_without_email_is_an_alert_and_starts_nothing(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given a ticket whose requester has neither an email nor an external id
    panel = open_panel(ticket=Ticket(TICKET, None, None))
    alert = panel.page.get_by_role("alert")
    expect(alert).to_contain_text("requester has no email address")
    # When the agent asks for a capture anyway
    panel.request_button().click()
    # Then the alert stays, and nothing was sent
    expect(alert).to_contain_text("requester has no email address")
    assert panel.proxied("POST") == 0
    assert bridge.sessions() == []
    panel.screenshot("08-no-email")


def test_a_requester_with_only_an_email_is_captured_by_email(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    bridge.bugpilot.connect_user(EMAIL)
    panel = open_panel(ticket=Ticket(TICKET, EMAIL, None))
    panel.request_button().click()
    expect(panel.captures().first).to_contain_text("capturing, waiting for the report")
    [action] = [r.json() for r in bridge.bugpilot.requests("action")]
    assert EMAIL in json.dumps(action)


# -- keyboard, names, themes, size ----------------------------------------------------------


def focused(panel: Panel) -> dict[str, str]:
    result: dict[str, str] = panel.page.evaluate(
        """() => {
          const el = document.activeElement;
          const style = getComputedStyle(el);
          return {id: el.id, text: el.textContent.trim(), outline: style.outlineStyle,
                  width: style.outlineWidth};
        }"""
    )
    return result


def test_keyboard_only_requests_and_cancels_with_visible_focus(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    panel = open_panel()
    keyboard = panel.page.keyboard

    # When the agent tabs through the panel: type, description, then the button
    keyboard.press("Tab")
    assert focused(panel)["id"] == "capture-type"
    keyboard.press("ArrowDown")  # Session recording -> Screenshot
    expect(panel.page.get_by_role("combobox", name="Capture type")).to_have_value(
        "upload-screenshot"
    )
    keyboard.press("Tab")
    assert focused(panel)["id"] == "description"
    keyboard.type("Keyboard only")
    keyboard.press("Tab")
    state = focused(panel)
    # Then each control shows where the focus is
    assert state["id"] == "request-capture"
    assert state["outline"] != "none"
    assert float(state["width"].removesuffix("px")) >= 2

    # When Enter presses the button
    keyboard.press("Enter")
    expect(panel.captures()).to_have_count(1)
    expect(panel.captures().first).to_contain_text("Screenshot")

    # And Tab reaches the capture's Cancel button, which Space presses
    keyboard.press("Tab")
    state = focused(panel)
    assert state["text"] == "Cancel capture"
    assert state["outline"] != "none"
    keyboard.press("Space")
    expect(panel.captures().first).to_contain_text("cancelled")
    [session] = bridge.sessions()
    assert (session["action"], session["status"]) == ("upload-screenshot", "cancelled")
    [action] = [r.json() for r in bridge.bugpilot.requests("action")]
    assert action["userProvidedDescription"] == "Keyboard only"


def test_the_accessible_names_are_the_ones_agents_and_screen_readers_rely_on(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    bridge.bugpilot.connect_user(USER)
    panel = open_panel()
    page = panel.page
    kind = page.get_by_role("combobox", name="Capture type", exact=True)
    expect(kind.locator("option")).to_have_text(
        ["Session recording", "Screenshot", "Screen recording"]
    )
    expect(page.get_by_role("textbox", name="Description", exact=True)).to_be_visible()
    panel.request_button().click()
    expect(page.get_by_role("list")).to_have_count(1)
    expect(panel.captures()).to_have_count(1)
    expect(page.get_by_role("button", name="Cancel capture", exact=True)).to_have_count(1)


def test_the_panel_is_readable_in_dark_and_light_themes(open_panel: OpenPanel) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        panel = open_panel(color_scheme=scheme)
        colours[scheme] = panel.page.evaluate(
            "() => [getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color]"
        )
        panel.screenshot(f"09-theme-{scheme}")
    assert colours["light"][0] == "rgb(255, 255, 255)"
    assert colours["dark"][0] == "rgb(31, 37, 41)"
    assert colours["dark"][1] != colours["light"][1]


def test_the_panel_asks_the_host_to_resize_it_to_its_content(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    panel = open_panel()
    expect(panel.page.get_by_text("No captures yet.")).to_be_visible()
    first = panel.page.evaluate("() => ZAFStandin.resizes.at(-1)")
    panel.request_button().click()
    expect(panel.captures()).to_have_count(1)
    panel.page.wait_for_function(
        "(before) => ZAFStandin.resizes.at(-1).height !== before", arg=first["height"]
    )
    last = panel.page.evaluate("() => ZAFStandin.resizes.at(-1)")
    height = panel.page.evaluate(
        "() => Math.ceil(document.documentElement.getBoundingClientRect().height)"
    )
    assert first["width"] == "100%"
    assert last["height"] == f"{height}px"
    assert int(last["height"].removesuffix("px")) > int(first["height"].removesuffix("px"))


# -- live updates ----------------------------------------------------------------------------------


def settle(panel: Panel, reads: int) -> None:
    """Wait (real time) until the page has read the list `reads` times, has taken the last
    answer in and planned its next read (the list is no longer aria-busy), and read no more."""
    busy = "() => document.getElementById('captures').getAttribute('aria-busy')"
    deadline = time.monotonic() + 10
    # A timer the fake clock fired runs its callback once the page is next called into.
    panel.page.evaluate("() => 0")
    while panel.proxied("GET") < reads and time.monotonic() < deadline:
        panel.page.evaluate("() => 0")
        time.sleep(0.05)
    while panel.page.evaluate(busy) != "false" and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert panel.page.evaluate(busy) == "false"
    assert panel.proxied("GET") == reads


def test_live_updates_start_at_5_s_back_off_to_30_s_and_pause_while_hidden(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given the panel on a paused clock, and an open capture (the requester is offline)
    panel = open_panel(paused=True)
    panel.request_button().click()
    expect(panel.captures()).to_have_count(1)
    reads = panel.proxied("GET")  # the first read, and the one after the request
    settle(panel, reads)

    # When time passes with nothing changing, the list is re-read after 5, 5, 10, 20, 30, 30 s
    for gap in (5_000, 5_000, 10_000, 20_000, 30_000, 30_000):
        panel.poll(gap - 100)
        settle(panel, reads)  # not a moment early
        panel.poll(100)
        reads += 1
        settle(panel, reads)

    # When the agent leaves the ticket (the app is deactivated), nothing is read, however long
    panel.page.evaluate("() => ZAFStandin.trigger('app.deactivated', {})")
    panel.poll(300_000)
    settle(panel, reads)

    # When the agent comes back, the list is read at once, then again after 5 s
    panel.page.evaluate("() => ZAFStandin.trigger('app.activated', {})")
    reads += 1
    settle(panel, reads)
    panel.poll(5_000)
    reads += 1
    settle(panel, reads)


def test_with_no_open_capture_nothing_is_re_read(open_panel: OpenPanel) -> None:
    panel = open_panel(paused=True)
    settle(panel, 1)
    panel.poll(300_000)
    settle(panel, 1)


# -- the token -----------------------------------------------------------------------------


def test_the_token_is_nowhere_in_the_page_its_storage_or_its_requests(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given the panel used as an agent would: a list read, a request, a cancel
    bridge.bugpilot.connect_user(USER)
    panel = open_panel()
    panel.request_button().click()
    panel.page.get_by_role("button", name="Cancel capture", exact=True).click()
    expect(panel.captures().first).to_contain_text("cancelled")
    page = panel.page

    # Then the settings the app sees leave the secure one out
    settings = page.evaluate("() => ZAFClient.init().metadata().then((m) => m.settings)")
    assert settings == {"api_url": bridge.url}
    # and the token is in no DOM, storage, cookie, request the page made or answer it got
    seen = [
        page.content(),
        page.evaluate(
            "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),"
            " document.cookie])"
        ),
        json.dumps(page.context.cookies()),
        json.dumps(panel.requests),
        *(response.text() for response in panel.responses if response.url.startswith("http://")),
    ]
    assert not [text for text in seen if SESSIONS_API_TOKEN in text]
    # while every call carried only the placeholder, which the stand-in's proxy filled in
    calls = [r for r in panel.requests if r["url"].endswith("/zaf/request")]
    assert len(calls) >= 3
    assert all("Bearer {{setting.api_token}}" in call["body"] for call in calls)
    assert all(entry.secure and entry.filled for entry in panel.standin.proxied)


def test_the_stand_in_client_resolves_and_rejects_as_zaf_does(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given the stand-in client in the page
    panel = open_panel()
    call = """(options) => ZAFClient.init().request(options).then(
        (value) => ({resolved: value}), (error) => ({rejected: error}))"""
    secure = {"secure": True, "headers": {"Authorization": "Bearer {{setting.api_token}}"}}
    listing = f"{bridge.url}/sessions?helpdesk=zendesk&ticketId={TICKET}"
    # When a request succeeds without httpCompleteResponse, its promise gives the parsed body
    assert panel.page.evaluate(call, {"url": listing, **secure}) == {
        "resolved": {"sessions": [], "nextCursor": None}
    }
    # When the API refuses it, the promise is rejected with status and responseJSON
    refused = panel.page.evaluate(call, {"url": f"{bridge.url}/sessions?status=nope", **secure})
    assert refused["rejected"]["status"] == 400
    assert refused["rejected"]["responseJSON"]["detail"][0]["loc"] == ["query", "status"]
    assert json.loads(refused["rejected"]["responseText"]) == refused["rejected"]["responseJSON"]
    # and without `secure` the placeholder is not filled in, so the token is refused
    plain = panel.page.evaluate(call, {"url": listing, "headers": secure["headers"]})
    assert plain["rejected"]["status"] == 401
    # and a host nothing answers on is status 0
    nothing = panel.page.evaluate(call, {"url": "http://127.0.0.1:9/sessions", **secure})
    assert nothing["rejected"]["status"] == 0


def test_the_page_make_dev_serves_works_with_no_routing_at_all(
    open_panel: OpenPanel, bridge: Bridge
) -> None:
    # Given the panel as `make dev` serves it (the stand-in's SDK address, nothing routed)
    bridge.bugpilot.connect_user(USER)
    panel = open_panel(dev=True)
    # When the agent asks for a capture
    panel.request_button().click()
    # Then it is made, and the page asked nothing of any other host
    expect(panel.captures().first).to_contain_text("capturing, waiting for the report")
    assert len(bridge.sessions()) == 1
    assert all(r["url"].startswith(panel.standin.url) for r in panel.requests)


def test_the_page_loads_nothing_from_the_network_but_zendesks_sdk(open_panel: OpenPanel) -> None:
    panel = open_panel()
    expect(panel.page.get_by_text("No captures yet.")).to_be_visible()
    outside = [r["url"] for r in panel.requests if not r["url"].startswith("http://127.0.0.1:")]
    assert outside == [SDK_URL]
    assert panel.outside == []
