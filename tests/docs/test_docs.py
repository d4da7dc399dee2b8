"""The docs stay short and true: a README of at most 400 lines that links a page per integration,
links that resolve, and no command a fresh clone cannot run as written.

Plain text checks, no network: the README and every page under docs/ are read as markdown.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from capture_bridge.capture import supported_providers
from capture_bridge.helpdesks import supported_helpdesks

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
MAX_README_LINES = 400

# Fences whose lines are commands to type; in any other fence only `$ ` lines are.
SHELL_FENCES = frozenset({"sh", "bash", "shell", "zsh", "console"})
PROMPT_ONLY_FENCES = frozenset({"console"})
_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", "$(", ";;", "|&"})


# -- reading markdown ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    number: int
    text: str
    # The info string of the fence the line is in; None outside fences.
    fence: str | None


def lines_of(text: str) -> Iterator[Line]:
    """Every line that is not a fence marker, with the fence it is in (None outside fences)."""
    fence: str | None = None
    marker = ""
    for number, line in enumerate(text.splitlines(), start=1):
        opened = _FENCE.match(line)
        if fence is None and opened:
            marker, fence = opened.group(1), opened.group(2).lower()
            continue
        if fence is not None and line.strip().startswith(marker) and not line.strip()[3:]:
            fence = None
            continue
        yield Line(number, line, fence)


def prose_lines(text: str) -> Iterator[Line]:
    return (line for line in lines_of(text) if line.fence is None)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower-case, punctuation gone, spaces `-`."""
    text = _INLINE_CODE.sub(lambda match: match.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> frozenset[str]:
    """The anchors of a markdown file's headings; repeated headings get `-1`, `-2`, …"""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose_lines(path.read_text()):
        heading = _HEADING.match(line.text)
        if not heading:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(path: Path) -> Iterator[tuple[int, str]]:
    """The targets of the markdown links in a file's prose (not in code), with their line."""
    for line in prose_lines(path.read_text()):
        for match in _LINK.finditer(_INLINE_CODE.sub("", line.text)):
            yield line.number, match.group(1)


def broken_link(page: Path, target: str) -> str | None:
    """Why a relative link does not resolve, or None when it does (or is not relative)."""
    if _EXTERNAL.match(target) or target.startswith("//"):
        return None
    path_part, _, anchor = target.partition("#")
    linked = (page.parent / path_part).resolve() if path_part else page
    if not linked.exists():
        return f"{target}: no such file"
    if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
        return f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}"
    return None


# -- reading shell commands ---------------------------------------------------------------------


def typed_commands(text: str) -> Iterator[tuple[int, str, bool]]:
    """What a reader is told to type: each command line of shell fences and `$ ` prompts.

    Yields the line, the command (continuation lines joined), and whether an earlier command of
    the same fence activated `.venv` (which puts `capture-bridge` on `PATH`).
    """
    pending = ""
    start = 0
    activated = False
    fence: str | None = None
    for line in lines_of(text):
        if line.fence != fence:
            pending, activated, fence = "", False, line.fence
        stripped = line.text.strip()
        if stripped.startswith("$ "):
            command = stripped[2:]
        elif pending or (line.fence in SHELL_FENCES and line.fence not in PROMPT_ONLY_FENCES):
            command = stripped
        else:
            continue
        if not pending:
            start = line.number
        if command.endswith("\\"):
            pending += command[:-1] + " "
            continue
        whole = pending + command
        pending = ""
        if whole and not whole.startswith("#"):
            yield start, whole, activated
            activated = activated or ".venv/bin/activate" in whole


def simple_commands(command: str) -> Iterator[list[str]]:
    """The words of each simple command in a line, environment assignments left out."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        tokens = command.split()
    words: list[str] = []
    for token in [*tokens, ";"]:
        if token in _OPERATORS or token.startswith("$("):
            if words:
                yield words
            words = []
            rest = token[2:] if token.startswith("$(") else ""
            if rest:
                words.append(rest)
        elif words or not _ASSIGNMENT.match(token):
            words.append(token)


def bare_command(command: str, activated: bool) -> str | None:
    """What a fresh clone has no such command for, or None when every part runs as written."""
    for words in simple_commands(command):
        program = words[0]
        if program in ("python", "python3") and words[1:3] == ["-m", "local_runner"]:
            return "a bare `python -m local_runner`: use `.venv/bin/python` or the make target"
        if program == "sam":
            return "a bare `sam`: the project's own is `.venv-sam/bin/sam`"
        if program == "capture-bridge" and not activated:
            return "a bare `capture-bridge`: use `.venv/bin/capture-bridge` or activate `.venv`"
    return None


# -- the README ---------------------------------------------------------------------------------


def test_the_readme_stays_short() -> None:
    # given the README
    lines = README.read_text().splitlines()
    # then it is at most 400 lines long
    assert len(lines) <= MAX_README_LINES, len(lines)


def test_the_readme_starts_with_the_two_commands() -> None:
    # given the README's commands, in order
    commands = [command for _, command, _ in typed_commands(README.read_text())]
    # then its first shell block is `make demo` and `make test`, which a fresh clone needs alone
    assert [command.split("#")[0].strip() for command in commands[:2]] == [
        "make demo",
        "make test",
    ]


@pytest.mark.parametrize("name", supported_helpdesks())
def test_every_helpdesk_has_its_page_linked_from_the_readme(name: str) -> None:
    # given a helpdesk the bridge serves
    page = f"docs/helpdesks/{name}.md"
    # then it has its page, and the README's table of helpdesks links to it
    assert (ROOT / page).is_file(), page
    assert page in {target for _, target in links(README)}, page


@pytest.mark.parametrize("name", supported_providers())
def test_every_capture_source_has_its_page_linked_from_the_readme(name: str) -> None:
    # given a capture source the bridge reads
    page = f"docs/sources/{name}.md"
    # then it has its page, and the README's table of capture sources links to it
    assert (ROOT / page).is_file(), page
    assert page in {target for _, target in links(README)}, page


# -- every page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    # given the page's links
    found = list(links(page))
    # when each relative one is followed
    broken = [
        f"line {number}: {why}" for number, target in found if (why := broken_link(page, target))
    ]
    # then it reaches a file, and a heading when it names one
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_page_tells_the_reader_to_type_a_command_a_fresh_clone_lacks(page: Path) -> None:
    # given what the page tells its reader to type
    commands = list(typed_commands(page.read_text()))
    # when each is read as a fresh clone would run it
    bare = [
        f"line {number}: {why}: {command}"
        for number, command, activated in commands
        if (why := bare_command(command, activated))
    ]
    # then every program it names is one the make targets install, by a path that works
    assert not bare, bare


# -- the checks themselves ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "flagged"),
    [
        ("```bash\npython -m local_runner serve\n```", True),
        ("```sh\nX=1 python3 -m local_runner demo\n```", True),
        ("```bash\nmake build && sam deploy --guided\n```", True),
        ("```bash\nAPI=$(sam list stack-outputs)\n```", True),
        ("```\n$ capture-bridge sessions list\n```", True),
        ("```console\n$ capture-bridge sessions list\nSESSION ID  STATUS\n```", True),
        ("```bash\n.venv/bin/python -m local_runner serve\n```", False),
        ("```bash\nmake build && .venv-sam/bin/sam deploy --guided  # sam asks\n```", False),
        ("```console\n$ . .venv/bin/activate\n$ capture-bridge sessions list\n```", False),
        ("```console\n$ make demo\nsam would be bare here, but it is output\n```", False),
        ('```json\n{"python -m local_runner": "sam "}\n```', False),
        ("Run `python -m local_runner` through `make dev`; `sam build` needs python3.13.", False),
        ('```bash\nprintf %s "$X" | .venv/bin/python -m ops secret \\\n  --set KEY\n```', False),
    ],
)
def test_the_command_check_flags_bare_programs_in_commands_only(
    markdown: str, flagged: bool
) -> None:
    # given a snippet of markdown
    # when its commands are checked
    found = [bare_command(command, on) for _, command, on in typed_commands(markdown)]
    # then only a bare program a reader would type is flagged
    assert any(found) is flagged, found


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("What happens to a capture request", "what-happens-to-a-capture-request"),
        ("`capture-bridge sessions`", "capture-bridge-sessions"),
        ("`<stack>-webhook-errors`", "stack-webhook-errors"),
        ("Limits, retries and what is guaranteed", "limits-retries-and-what-is-guaranteed"),
        ("[Zendesk](docs/helpdesks/zendesk.md) set-up", "zendesk-set-up"),
    ],
)
def test_anchors_are_the_ones_github_makes(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
