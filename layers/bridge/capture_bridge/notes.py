"""The internal notes agents read: one per capture session, saying what happened and what to do.

The provider writes what it found or why it failed; this module adds what every note carries and
gives it in the two forms helpdesks take: plain text and HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from capture_bridge.models import CaptureSession, ErrorCode

if TYPE_CHECKING:
    from capture_bridge.capture import CaptureProvider


def marker(session: CaptureSession) -> str:
    """A line unique to the session, so that a note already posted can be recognised."""
    return f"Capture session: {session.session_id}"


def requested_at(session: CaptureSession) -> str:
    """When the capture was asked for, as agents read it."""
    return session.created_at.strftime("%Y-%m-%d %H:%M UTC")


def labelled_lines(labels: Mapping[str, str], values: Mapping[str, str]) -> list[str]:
    """`- Label: value` for each key of `labels` that has a value, in the order of `labels`."""
    return [f"- {label}: {values[key]}" for key, label in labels.items() if values.get(key)]


def format_seconds(total: int) -> str:
    """A duration as agents read it: `1 min 35 s`, `42 s`."""
    minutes, seconds = divmod(max(total, 0), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


@dataclass(frozen=True)
class Note:
    """One note in the forms helpdesks take; each carries the session's marker line.

    `text` is the lines as providers wrote them. `html` is the same lines with every character
    escaped, so that nothing a payload or a vendor sent becomes markup, and with the session's
    own web links (http and https only) made into `<a href>` links. A helpdesk with a markup of
    its own renders `lines` and `links` with `marked_up`.
    """

    text: str
    html: str
    lines: tuple[str, ...] = ()
    # The session's own links by name: the only text of a note that may become a link.
    links: Mapping[str, str] = field(default_factory=dict)
    # Which session the note is about, and its final status, for helpdesks that take them apart.
    session_id: str = ""
    status: str = ""


# Only these schemes are ever made clickable: `javascript:`, `data:` and the like stay text.
WEB_SCHEMES = frozenset({"http", "https"})


def is_web_link(url: str) -> bool:
    """An absolute http(s) URL with a host and no whitespace or control characters."""
    if not url or any(char.isspace() or not char.isprintable() for char in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in WEB_SCHEMES and bool(parts.hostname)


def _anchor(url: str) -> str:
    escaped = html.escape(url, quote=True)
    return f'<a href="{escaped}">{escaped}</a>'


def marked_up(
    lines: Iterable[str],
    links: Iterable[str],
    escape: Callable[[str], str],
    link: Callable[[str], str],
) -> list[str]:
    """Each line in a markup: every piece `escape`d except the web links in `links`, `link`ed."""
    web = sorted({url for url in links if is_web_link(url)}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(url) for url in web)) if web else None
    rendered = []
    for line in lines:
        if pattern is None:
            rendered.append(escape(line))
            continue
        pieces, start = [], 0
        for found in pattern.finditer(line):
            pieces.append(escape(line[start : found.start()]))
            pieces.append(link(found.group()))
            start = found.end()
        pieces.append(escape(line[start:]))
        rendered.append("".join(pieces))
    return rendered


def html_lines(lines: Iterable[str], links: Iterable[str]) -> str:
    """`lines` as HTML paragraphs: every character escaped, each web link in `links` an anchor."""
    return "\n".join(f"<p>{line}</p>" for line in marked_up(lines, links, html.escape, _anchor))


# What opens a Markdown link or image (`[`), inline HTML or an autolink (`<`), or a code span,
# and the backslash that would undo an escape: each gets a backslash (CommonMark escapes).
_MARKDOWN_OPENERS = re.compile(r"([\\`\[\]<>])")


def markdown_escaped(text: str) -> str:
    """`text` that Markdown renders as itself: no link, image, HTML tag or code span in it."""
    return _MARKDOWN_OPENERS.sub(r"\\\1", text)


def safe_text(note: Note) -> str:
    """The text form for receivers that may render Markdown: payload values cannot become links
    or HTML there, while the session's own web links stay whole (and may be linked)."""
    if not note.lines:
        return markdown_escaped(note.text)
    return "\n".join(marked_up(note.lines, note.links.values(), markdown_escaped, str))


def note_of(lines: Iterable[str], session: CaptureSession) -> Note:
    """The note made of a provider's `lines` and the session's marker, in both forms."""
    every = (*lines, marker(session))
    links = dict(session.links)
    return Note(
        "\n".join(every),
        html_lines(every, links.values()),
        every,
        links,
        session.session_id,
        session.status.value,
    )


# Why a capture never started, when the helpdesk could not say who its requester is.
REQUESTER_REASONS = {
    ErrorCode.REQUESTER_NOT_FOUND: (
        "the helpdesk has no contact with an external id or an email for this conversation"
    ),
    ErrorCode.REQUESTER_LOOKUP_REJECTED: (
        "the helpdesk refused the bridge's credentials when asked (an administrator must check "
        "them with `make doctor`)"
    ),
    ErrorCode.REQUESTER_LOOKUP_FAILING: "the helpdesk kept failing when asked, until the deadline",
}


def requester_lines(session: CaptureSession) -> list[str] | None:
    """The note of a capture that never started because its requester stayed unknown."""
    reason = (
        REQUESTER_REASONS.get(ErrorCode(session.error))
        if session.error in REQUESTER_REASONS
        else None
    )
    if session.user_id or reason is None:
        return None
    return [
        f"No capture ({session.action}) was started for the request of {requested_at(session)}: "
        "we could not tell who the requester is.",
        f"Why: {reason}. Add an email address to the contact, then request the capture again.",
    ]


def render_note(session: CaptureSession, provider: CaptureProvider) -> Note:
    """The note for a session in a final status."""
    lines = requester_lines(session)
    return note_of(lines if lines is not None else provider.render_note(session), session)
