"""The note's two forms: plain text as providers write it, HTML where nothing becomes markup."""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from capture_bridge.capture import CaptureProvider, get_provider
from capture_bridge.http import HttpClient
from capture_bridge.models import CaptureRequest, CaptureSession, SessionStatus
from capture_bridge.notes import Note, html_lines, is_web_link, marker, note_of, render_note
from capture_bridge.settings import settings_from
from tests.conftest import START

REPORT_LINK = "https://app.bugpilot.io/reports/r-1?view=full&tab=1"
SCRIPT = "<script>alert(1)</script>"
BROKEN_OUT = '"><img src=x onerror=alert(1)>'
MARKDOWN_LINK = "[click](javascript:alert(1))"
HOSTILE_VALUES = (SCRIPT, BROKEN_OUT, MARKDOWN_LINK)


class Markup(HTMLParser):
    """The tags and attributes an HTML renderer would see in a note."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [value or "" for name, value in attrs if name == "href"]


def markup_of(text: str) -> Markup:
    parser = Markup()
    parser.feed(text)
    parser.close()
    return parser


def session_for(user_id: str, links: dict[str, str] | None = None) -> CaptureSession:
    request = CaptureRequest(
        helpdesk="zendesk",
        ticket_id="1001",
        provider="bugpilot",
        action="upload-session",
        subject="upload-session",
        user_id=user_id,
        description="Ticket",
    )
    opened = CaptureSession.open(
        request, now=START, max_wait=timedelta(minutes=30), claim_id=None, next_check_at=START
    )
    return replace(
        opened.finish(SessionStatus.RESOLVED, now=START), links=links or {"report": REPORT_LINK}
    )


def bugpilot() -> CaptureProvider:
    return get_provider("bugpilot", settings_from({"TABLE_NAME": "t"}), HttpClient())


def bugpilot_note(session: CaptureSession) -> Note:
    return render_note(session, bugpilot())


@pytest.mark.parametrize("hostile", HOSTILE_VALUES)
def test_payload_values_never_become_markup_in_the_html_form(hostile: str) -> None:
    # Given a ticket whose requester (a payload value) is markup or a markdown link
    session = session_for(hostile)
    # When its note is rendered
    note = bugpilot_note(session)
    # Then the HTML holds only the bridge's own paragraphs and the report's link
    seen = markup_of(note.html)
    assert set(seen.tags) == {"p", "a"}
    assert seen.hrefs == [REPORT_LINK]
    # And the value reads back exactly as sent: escaped, and (markdown being no HTML) inert
    assert html.escape(hostile) in note.html


@pytest.mark.parametrize("hostile", HOSTILE_VALUES)
def test_the_text_form_is_the_providers_lines_unchanged(hostile: str) -> None:
    # Given a hostile payload value; when the note is rendered
    session = session_for(hostile)
    note = bugpilot_note(session)
    # Then the text is what the provider wrote, line for line, as the bridge always sent it
    assert note.text == "\n".join([*bugpilot().render_note(session), marker(session)])


def test_the_marker_line_is_in_both_forms() -> None:
    # Given a note; then has_note finds it whichever form the helpdesk stored
    session = session_for("user-42")
    note = bugpilot_note(session)
    assert marker(session) in note.text
    assert marker(session) in note.html


def test_web_links_are_anchors_with_escaped_hrefs() -> None:
    # Given a vendor link with characters HTML must escape (`&`, a quote)
    link = 'https://example.test/r?a=1&b="2"'
    # When a line carrying it is rendered
    rendered = html_lines([f"Report: {link}"], [link])
    # Then it is one anchor whose href and text are the escaped link
    escaped = html.escape(link, quote=True)
    assert rendered == f'<p>Report: <a href="{escaped}">{escaped}</a></p>'
    assert markup_of(rendered).hrefs == [link]


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.test/file",
        "https://",
        "https://example.test/a b",
        "//example.test/no-scheme",
    ],
)
def test_only_http_and_https_links_become_anchors(link: str) -> None:
    # Given a "link" from a vendor that is no web link
    assert not is_web_link(link)
    # When it is rendered, then it stays escaped text
    rendered = html_lines([f"Report: {link}"], [link])
    assert markup_of(rendered).tags == ["p"]
    assert rendered == f"<p>{html.escape(f'Report: {link}')}</p>"


def test_a_payload_value_that_is_a_url_is_not_made_a_link() -> None:
    # Given a requester id that is a URL, not one of the session's links
    lure = "https://evil.example/login"
    session = session_for(lure)
    # When the note is rendered, then only the session's own link is an anchor
    assert markup_of(bugpilot_note(session).html).hrefs == [REPORT_LINK]


def test_note_of_joins_lines_and_marker() -> None:
    # Given two lines; when made a note; then each form has three lines
    session = session_for("user-42")
    note = note_of(["one", "two"], session)
    assert note.text.splitlines() == ["one", "two", marker(session)]
    assert note.html.splitlines() == ["<p>one</p>", "<p>two</p>", f"<p>{marker(session)}</p>"]
