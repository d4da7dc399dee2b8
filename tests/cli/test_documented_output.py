"""The command line prints what the docs show: samples cannot drift from the real output.

Every `console` block of the README and docs/ that runs `capture-bridge` is replayed, command by
command, against the test double of the API (tests/cli/api_double.py); each command must print
the block's lines after it, exactly, ids aside (the double makes its own).
"""

from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from capture_cli.main import main
from tests.cli.api_double import SessionsApiDouble
from tests.docs.test_docs import PAGES, ROOT, lines_of

PROMPT = "$ "
PROGRAMS = frozenset({"capture-bridge", ".venv/bin/capture-bridge"})
ACTIVATE = ". .venv/bin/activate"
# A sample that shows a command's exit status runs `…; echo $?`.
ECHO_STATUS = "; echo $?"
DOCUMENTED_URL = "http://127.0.0.1:3000"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Step:
    """One documented command and the lines shown after it."""

    line: int
    command: str
    shown: list[str] = field(default_factory=list)


@dataclass
class Transcript:
    """The commands of one console block, in order."""

    page: Path
    steps: list[Step]

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.steps[0].line}"


def transcripts() -> list[Transcript]:
    """Every console block that runs the command line."""
    found: list[Transcript] = []
    for page in PAGES:
        blocks: dict[int, list[Step]] = {}
        block, previous = 0, None
        for line in lines_of(page.read_text()):
            if line.fence != "console":
                previous = None
                continue
            if previous is None or line.number != previous + 1:
                block += 1
            previous = line.number
            steps = blocks.setdefault(block, [])
            if line.text.startswith(PROMPT):
                steps.append(Step(line.number, line.text[len(PROMPT) :]))
            elif steps:
                steps[-1].shown.append(line.text)
        for steps in blocks.values():
            commands = [shlex.split(step.command)[0] for step in steps]
            if any(program in PROGRAMS for program in commands):
                found.append(Transcript(page, steps))
    return found


class Ids:
    """Names each UUID by the order it first appears in: `<id1>`, `<id2>`, …"""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def name(self, text: str) -> str:
        def number(match: re.Match[str]) -> str:
            return f"<id{self.numbers.setdefault(match.group(0), len(self.numbers) + 1)}>"

        return UUID.sub(number, text)

    def real(self, text: str) -> str:
        """Text with `<idN>` names put back as the UUIDs they name."""
        uuids = {number: uuid for uuid, number in self.numbers.items()}
        return re.sub(r"<id(\d+)>", lambda match: uuids[int(match.group(1))], text)


def meanwhile(api: SessionsApiDouble, argv: list[str]) -> None:
    """What the bridge does while the reader waits between the documented commands."""
    if argv[:2] == ["sessions", "show"] and "--watch" in argv:
        # The resolver checks once more, then finds the report.
        api.progress[argv[2]] = ["pending", "resolved"]
    if argv[:2] == ["sessions", "list"]:
        # By then the resolver has posted the resolved sessions' notes.
        for session in api.sessions.values():
            if session["status"] == "resolved":
                session["noteState"] = "posted"


def run(api: SessionsApiDouble, argv: list[str]) -> tuple[int, list[str]]:
    """`capture-bridge *argv`: its status, and its lines as a terminal shows them (both streams)."""
    terminal = io.StringIO()
    code = main(argv, out=terminal, err=terminal, sleep=lambda _: None)
    return code, terminal.getvalue().replace(api.url, DOCUMENTED_URL).splitlines()


TRANSCRIPTS = transcripts()


def test_the_docs_have_command_line_samples() -> None:
    # the test below must not pass for want of samples
    assert TRANSCRIPTS


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=lambda transcript: transcript.name)
def test_each_documented_command_prints_what_the_docs_show(
    transcript: Transcript, api: SessionsApiDouble
) -> None:
    documented, printed = Ids(), Ids()
    for step in transcript.steps:
        if step.command == ACTIVATE:
            assert not step.shown, f"line {step.line}: activating prints nothing"
            continue
        # given the documented command, with the double's URL and the ids it made
        command, shows_status = step.command, step.command.endswith(ECHO_STATUS)
        command = command.removesuffix(ECHO_STATUS)
        words = shlex.split(printed.real(documented.name(command)))
        assert words[0] in PROGRAMS, f"line {step.line}: {step.command}"
        argv = [api.url if word == DOCUMENTED_URL else word for word in words]
        meanwhile(api, argv[1:])
        # when it runs
        code, lines = run(api, argv[1:])
        if shows_status:
            lines.append(str(code))
        else:
            assert code == 0, f"line {step.line}: exit {code}: {lines}"
        # then it prints the documented lines, ids aside
        assert [printed.name(line) for line in lines] == [
            documented.name(line) for line in step.shown
        ], f"line {step.line}: {step.command}"
