"""The internal notes agents read: one per capture session, saying what happened and what to do.

The provider writes what it found or why it failed; this module adds what every note carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from capture_bridge.models import CaptureSession

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


def render_note(session: CaptureSession, provider: CaptureProvider) -> str:
    """The note for a session in a final status."""
    return "\n".join([*provider.render_note(session), marker(session)])
