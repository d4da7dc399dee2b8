"""Sessions as people read them: a table, a detail view, a line per status change."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

TABLE_COLUMNS = ("SESSION ID", "STATUS", "PROVIDER", "ACTION", "TICKET", "CREATED", "NOTE")
NONE = "-"


def clean(value: Any) -> str:
    """Text safe for a terminal: the API echoes what tickets and vendors sent, so control
    characters (escape sequences, newlines) are shown escaped instead of acting on the screen.
    """
    text = NONE if value is None or value == "" else str(value)
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")
        else char
        for char in text
    )


def when(value: Any) -> str:
    """An ISO 8601 time as `2026-11-25 12:00:05Z` (UTC); anything else as it is."""
    if not isinstance(value, str) or not value:
        return clean(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return clean(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if moment.tzinfo else "")


def ticket(session: Mapping[str, Any]) -> str:
    """The ticket as `zendesk #1001`."""
    return f"{clean(session.get('helpdesk'))} #{clean(session.get('ticketId'))}"


def table(sessions: Iterable[Mapping[str, Any]]) -> str:
    """One row per session, columns aligned."""
    rows = [TABLE_COLUMNS] + [
        (
            clean(session.get("sessionId")),
            clean(session.get("status")),
            clean(session.get("provider")),
            clean(session.get("action")),
            ticket(session),
            when(session.get("createdAt")),
            clean(session.get("noteState")),
        )
        for session in sessions
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _named(title: str, values: Any) -> list[str]:
    if not isinstance(values, Mapping) or not values:
        return [f"{title + ':':<10} {NONE}"]
    width = max(len(clean(name)) for name in values)
    return [f"{title}:"] + [
        f"  {clean(name).ljust(width)}  {clean(value)}" for name, value in values.items()
    ]


def detail(session: Mapping[str, Any]) -> str:
    """One session: its fields, then its links, details and error."""
    data = session.get("data")
    data = data if isinstance(data, Mapping) else {}
    status = clean(session.get("status"))
    if session.get("closedAt"):
        status += f" (closed {when(session.get('closedAt'))})"
    fields = [
        ("Session", clean(session.get("sessionId"))),
        ("Status", status),
        ("Ticket", ticket(session)),
        ("Provider", clean(session.get("provider"))),
        ("Action", clean(session.get("action"))),
        ("Attempts", clean(session.get("attempts"))),
        ("Note", clean(session.get("noteState"))),
        ("Created", when(session.get("createdAt"))),
        ("Updated", when(session.get("updatedAt"))),
    ]
    lines = [f"{name + ':':<10} {value}" for name, value in fields]
    lines += _named("Links", data.get("links"))
    lines += _named("Details", data.get("details"))
    lines.append(f"{'Error:':<10} {clean(data.get('error'))}")
    return "\n".join(lines)


def change(session: Mapping[str, Any]) -> str:
    """A line for `--watch`: when the session changed, its status, note and error."""
    line = f"{when(session.get('updatedAt'))}  {clean(session.get('status'))}"
    if session.get("noteState"):
        line += f"  note {clean(session.get('noteState'))}"
    data = session.get("data")
    if isinstance(data, Mapping) and data.get("error"):
        line += f"  ({clean(data.get('error'))})"
    return line


def as_json(document: Any, *, compact: bool = False) -> str:
    """The API's JSON as it came (key order kept); compact for one-line-per-change output."""
    if compact:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(document, ensure_ascii=False, indent=2)
