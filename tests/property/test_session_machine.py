"""Capture sessions under arbitrary interleavings: a Hypothesis state machine over their whole life.

The real webhook (`receive`), resolver (`resolve_due_sessions`, `process_session`), flow and
session store run on moto's in-process DynamoDB. The capture provider and the helpdesk are
in-memory fakes (no HTTP) that answer as the steps say. Each request brings how the provider
answers that ticket's capture: starts accepted, refused because the user is offline, failing with
a 5xx, left unconfirmed by a read timeout, or rejected; then checks finding the report, not yet,
failing, or not knowing it. The helpdesk posts notes, refuses them, fails, posts them with the
answer lost, or the function posting them dies before or after; its lookup for an earlier note
answers truthfully or "unknown". Other steps make the provider's next call or the store's next
write go wrong (the function dies before or after it, or the store is unavailable), start a run
that overlaps a holder, replay a webhook delivery, or move the clock and run the resolver, with
all the time it needs or short of it.

Two overlaps are within the design. A scheduled run that starts while a holder is mid-call
(within its five-minute lease) must leave the held session alone. A run that starts once the
lease has lapsed takes the session over: the lease outlives every function's timeout (webhook
15 s, resolver 90 s), so its holder is dead, and here it dies when its call returns. (A holder
that outlived its lease could post a second note; docs/reliability.md says why none can.)

Checked after every step:
- at most one note per session on the helpdesk (counted by the session's marker line);
- at most two captures that may have been carried out per request, one for the prompt the user
  sees (`show-recording-ui`): a start the provider accepted or left unconfirmed, or whose holder
  died after sending it; refusals (user offline, 5xx or 429, rejected) do not count.
After every resolver run, the store agrees: a session it says is POSTED has exactly one note,
every session with work left is in the due index, each open session holds its ticket's guard and
no finished one does. At the end (teardown), with every fault off and the clock past every
deadline, lease and retry, one resolver run settles everything: each session final, its note
POSTED or UNDELIVERABLE, no claim, no guard and nothing due left.

Every step is one rule, `step`, drawing a weighted command: Hypothesis's swarm testing turns each
rule off in about half of the runs, which with separate rules would leave many of the few runs
`make test` can afford without requests or resolver runs. Each run starts moto and creates the
table itself: the conftest's function-scoped fixtures would live across the runs.

`test_no_capture_is_started_once_the_deadline_has_come` keeps a defect the machine found (now
fixed: nothing is started at the deadline) as a plain example.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from hypothesis import currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from moto import mock_aws

from capture_bridge.capture import CallBudget, CaptureProvider, CaptureResult, Outcome
from capture_bridge.capture.bugpilot import ACTIONS, SILENT_ACTIONS
from capture_bridge.capture_flow import CLAIM_LEASE
from capture_bridge.errors import StoreUnavailable, Unauthenticated
from capture_bridge.helpdesks import HelpdeskAdapter, NoteOutcome, NoteResult, WebhookRequest
from capture_bridge.helpdesks.zendesk import DELIVERY_MEMORY, MAX_SKEW
from capture_bridge.http import get_http_client
from capture_bridge.models import (
    CaptureRequest,
    CaptureSession,
    NoteState,
    SessionStatus,
    TicketRequest,
    format_time,
    parse_time,
)
from capture_bridge.models import Delivery as WebhookDelivery
from capture_bridge.notes import Note
from capture_bridge.resolver import RunOutcome, RunSummary, process_session, resolve_due_sessions
from capture_bridge.runtime import Runtime
from capture_bridge.session_store import Claim, SessionStore
from capture_bridge.settings import settings_from
from capture_bridge.webhook import receive
from local_runner.dynamodb import ensure_table
from local_runner.template import TableDef, load_template
from tests.conftest import ROOT, Clock

pytestmark = pytest.mark.property
T = TypeVar("T")

# -- budgets ---------------------------------------------------------------------------------------

# Each run goes through moto, so a quarter of the profile's examples: 50 runs of 20 steps in
# `make test`, 1,250 in `make fuzz`.
PROFILE_EXAMPLES = settings().max_examples
MACHINE_EXAMPLES = max(PROFILE_EXAMPLES // 4, 1)
STEPS_PER_RUN = 20

# -- the world -------------------------------------------------------------------------------------

TABLE = "sessions-prop"
REGION = "us-east-1"
HELPDESK = "fakedesk"
PROVIDER = "bugpilot"
USER = "user-42"
TICKETS = ("1001", "1002")
PROMPT = "show-recording-ui"
REPORTS = "https://reports.example/report"
SESSION_INFO = "https://capture.example/session-info"
SESSION_PREFIX = "session#"
GUARD_PREFIX = "open#"
DELIVERY_HEADER = "x-fake-delivery"
SENT_AT_HEADER = "x-fake-sent-at"
SETTINGS = {
    "TABLE_NAME": TABLE,
    "CAPTURE_MAX_WAIT_MINUTES": "30",
    "RESOLVER_CONCURRENCY": "1",
    # Notes are never held back by their pace here (tests/integration/test_pacing.py holds that):
    # the machine's clock stands still between its moves, so a pace would sleep for real.
    f"{HELPDESK.upper()}_NOTES_PER_MINUTE": "100000",
}
# Enough time left in a resolver run for everything it finds due.
PLENTY_MS = 90_000
# Accepted, refused as stale (a replay past the signature's freshness), or the store was down.
WEBHOOK_ANSWERS = frozenset({202, 401, 503})

# -- the bounds ------------------------------------------------------------------------------------

MAX_NOTES = 1
MAX_CAPTURES = 2
MAX_PROMPTS = 1
MARKER_LINE = re.compile(r"^Capture session: (\S+)$", re.MULTILINE)

# -- what the provider and the helpdesk answer -----------------------------------------------------

START, CHECK = "start", "check"
# A start answered so may have been carried out; every other answer is a definite refusal.
MAY_HAVE_CAPTURED = frozenset({Outcome.STARTED, Outcome.UNCONFIRMED})
# Answers to starts, by weight: the bounds are about those that may capture.
START_WEIGHTS = {
    Outcome.STARTED: 2,
    Outcome.UNCONFIRMED: 4,
    Outcome.USER_OFFLINE: 1,
    Outcome.RETRYABLE: 2,
    Outcome.REJECTED: 1,
}
CHECK_OUTCOMES = (Outcome.READY, Outcome.NOT_READY, Outcome.RETRYABLE, Outcome.INVALID)
ERROR_CODES = {
    Outcome.USER_OFFLINE: "USER_NOT_CONNECTED",
    Outcome.RETRYABLE: "HTTP_503",
    Outcome.UNCONFIRMED: "UNCONFIRMED",
    Outcome.REJECTED: "INVALID_API_KEY",
    Outcome.NOT_READY: "REPORT_NOT_FOUND",
    Outcome.INVALID: "INVALID_SESSION_TOKEN",
}


@dataclass(frozen=True)
class Script:
    """How the provider answers one ticket's capture: its starts, then its checks, in turn.

    The last answer of each is given from then on.
    """

    starts: tuple[Outcome, ...]
    checks: tuple[Outcome, ...]
    retry_after: int | None = None

    def answer(self, kind: str, turn: int) -> Outcome:
        answers = self.starts if kind == START else self.checks
        return answers[min(turn, len(answers) - 1)]


# Every fault off: starts accepted, reports ready.
CALM = Script(starts=(Outcome.STARTED,), checks=(Outcome.READY,))


class NoteAnswer(Enum):
    """How the helpdesk answers notes, until told otherwise."""

    POSTED = "posted"
    # The note landed but the answer was lost (a read timeout): the bridge sees a failure.
    LANDED_UNANSWERED = "landed, unanswered"
    RETRYABLE = "retryable"
    REJECTED = "rejected"
    # The function posting the note dies, before the post or after it landed.
    DIES_BEFORE_POSTING = "dies before posting"
    DIES_AFTER_POSTING = "dies after posting"


NOTE_OUTCOMES = {
    NoteAnswer.POSTED: NoteOutcome.POSTED,
    NoteAnswer.LANDED_UNANSWERED: NoteOutcome.RETRYABLE,
    NoteAnswer.RETRYABLE: NoteOutcome.RETRYABLE,
    NoteAnswer.REJECTED: NoteOutcome.REJECTED,
}
LANDS = frozenset({NoteAnswer.POSTED, NoteAnswer.LANDED_UNANSWERED, NoteAnswer.DIES_AFTER_POSTING})

# -- faults ----------------------------------------------------------------------------------------


class Crash(Exception):
    """The function doing a step dies here (a test-only fault)."""


class ProviderFault(Enum):
    """What goes wrong around the provider's next start or check."""

    CRASH_BEFORE_SENDING = "crash before sending"
    CRASH_AFTER_SENDING = "crash after sending"
    # Another scheduled run starts while the holder waits for the answer, within the lease.
    CONCURRENT_RUN = "concurrent run"
    # A run starts once the lease has lapsed and takes the session over; the holder was dead.
    RUN_AFTER_LEASE = "run after lease"


# Faults after which the holder never reads the provider's answer.
ANSWER_NEVER_READ = frozenset({ProviderFault.CRASH_AFTER_SENDING, ProviderFault.RUN_AFTER_LEASE})
OVERLAPS = frozenset({ProviderFault.CONCURRENT_RUN, ProviderFault.RUN_AFTER_LEASE})


STORE_METHODS = ("create", "claim", "save")


@dataclass(frozen=True)
class StoreFault:
    """The next call of `method` fails, before or after its write `landed`."""

    method: str
    landed: bool
    # StoreUnavailable, which the product handles, rather than the function dying.
    unavailable: bool


Fault = ProviderFault | StoreFault

# -- the steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """The helpdesk asks for a capture; the provider answers that ticket's capture by `script`."""

    ticket: str
    action: str
    script: Script


@dataclass(frozen=True)
class Replay:
    """The helpdesk sends an earlier delivery again (the `which`-th, counting round)."""

    which: int


@dataclass(frozen=True)
class HelpdeskAnswers:
    """From now on the helpdesk answers notes so; its lookups answer, or say "unknown"."""

    note: NoteAnswer
    lookups_fail: bool
    retry_after: int | None = None


@dataclass(frozen=True)
class GoesWrong:
    """The provider's next start or check goes wrong, or the store's next write of a kind."""

    fault: Fault


@dataclass(frozen=True)
class Run:
    """Time passes, then the resolver runs; its time left goes down by `spent_per_look` a look."""

    seconds: int
    time_left: int = PLENTY_MS
    spent_per_look: int = 0


Command = Request | Replay | HelpdeskAnswers | GoesWrong | Run


def weighted(weights: Mapping[T, int]) -> st.SearchStrategy[T]:
    """Each choice as often as its weight says (and shrinking towards the first)."""
    return st.sampled_from([choice for choice, weight in weights.items() for _ in range(weight)])


RETRY_AFTER = st.one_of(st.none(), st.sampled_from((0, 30, 120, 3600)))
MAX_SCRIPTED = 3


def answers(choices: st.SearchStrategy[Outcome]) -> st.SearchStrategy[tuple[Outcome, ...]]:
    """Half the time one answer given throughout (the bounds are reached by repeats), else a few."""
    return st.one_of(
        choices.map(lambda outcome: (outcome,)),
        st.lists(choices, min_size=2, max_size=MAX_SCRIPTED).map(tuple),
    )


SCRIPTS = st.builds(
    Script,
    starts=answers(weighted(START_WEIGHTS)),
    checks=answers(st.sampled_from(CHECK_OUTCOMES)),
    retry_after=RETRY_AFTER,
)
# Seconds the clock moves: mostly the poll, the backoff, the user retry or past the lease, so
# that sessions see several runs before their deadline; sometimes anything up to 40 minutes.
CLOCK_STEPS = st.one_of(weighted({30: 3, 60: 3, 180: 2, 301: 2, 1800: 1}), st.integers(30, 40 * 60))
# Milliseconds a run's clock loses each time it is read: none, or a slow session's worth.
TIME_SPENT_MS = (0, 5_000, 20_000)
# Replays name one of the earlier deliveries, counting round.
MAX_REPLAYED = 7
FAULTS = st.one_of(
    st.sampled_from(ProviderFault),
    st.builds(StoreFault, st.sampled_from(STORE_METHODS), st.booleans(), st.booleans()),
)
REQUESTS = st.builds(Request, st.sampled_from(TICKETS), st.sampled_from(ACTIONS), SCRIPTS)
COMMAND_WEIGHTS: dict[st.SearchStrategy[Any], int] = {
    st.builds(Run, seconds=CLOCK_STEPS): 4,
    REQUESTS: 3,
    st.builds(GoesWrong, FAULTS): 2,
    st.builds(
        Run,
        seconds=CLOCK_STEPS,
        time_left=st.integers(0, PLENTY_MS),
        spent_per_look=st.sampled_from(TIME_SPENT_MS),
    ): 1,
    st.builds(HelpdeskAnswers, st.sampled_from(NoteAnswer), st.booleans(), RETRY_AFTER): 1,
    st.builds(Replay, st.integers(0, MAX_REPLAYED)): 1,
}
COMMANDS: st.SearchStrategy[Command] = st.one_of(
    [strategy for strategy, weight in COMMAND_WEIGHTS.items() for _ in range(weight)]
)
# A scheduled run a minute later: within the holder's lease.
CONCURRENT_GAP = timedelta(minutes=1)
PAST_LEASE = CLAIM_LEASE + timedelta(seconds=1)
SETTLE_MARGIN = timedelta(minutes=1)
# Runs at the end before every fault is turned off: enough for a script's third try.
PLAY_OUT_RUNS = 3
FAR_FUTURE = timedelta(days=2)
DUE_LIMIT = 100


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, as the helpdesk would send it again."""

    delivery_id: str
    sent_at: datetime
    body: str


# -- fakes -----------------------------------------------------------------------------------------


class FakeProvider:
    """The capture provider as the flow sees it; counts the captures that may have happened."""

    name = PROVIDER

    def __init__(self) -> None:
        # (ticket, action) -> its script, and (session id, start or check) -> calls so far.
        self.scripts: dict[tuple[str, str], Script] = {}
        self.turns: Counter[tuple[str, str]] = Counter()
        self.calmed = False
        self.fault: ProviderFault | None = None
        # Session id -> starts that may have been carried out, and the session's action.
        self.captures: Counter[str] = Counter()
        self.actions: dict[str, str] = {}
        self.overlap: Callable[[ProviderFault, str], None] = lambda fault, session_id: None

    def calm(self) -> None:
        """Every fault off from now on: starts accepted, reports ready."""
        self.calmed, self.fault = True, None

    def requests_from(self, ticket: TicketRequest) -> list[CaptureRequest]:
        return [self.default_request(ticket)]

    def default_request(self, ticket: TicketRequest) -> CaptureRequest:
        action = str(ticket.fields.get("action") or ACTIONS[0])
        return CaptureRequest(
            helpdesk=ticket.helpdesk,
            ticket_id=ticket.ticket_id,
            provider=PROVIDER,
            action=action,
            subject=action,
            user_id=ticket.requester,
        )

    def start(self, session: CaptureSession) -> CaptureResult:
        fault, self.fault = self.fault, None
        if fault is ProviderFault.CRASH_BEFORE_SENDING:
            raise Crash("died before sending the start")
        outcome = self._next(session, START)
        if outcome in MAY_HAVE_CAPTURED or fault in ANSWER_NEVER_READ:
            self.captures[session.session_id] += 1
            self.actions[session.session_id] = session.action
        self._interfere(fault, session.session_id)
        return self._answer(session, outcome)

    def check(self, session: CaptureSession) -> CaptureResult:
        fault, self.fault = self.fault, None
        if fault is ProviderFault.CRASH_BEFORE_SENDING:
            raise Crash("died before checking")
        outcome = self._next(session, CHECK)
        self._interfere(fault, session.session_id)
        return self._answer(session, outcome)

    def render_note(self, session: CaptureSession) -> list[str]:
        report = session.links.get("report", "no report")
        return [f"{session.action}: {session.status.value} ({session.error}); {report}"]

    def _interfere(self, fault: ProviderFault | None, session_id: str) -> None:
        if fault is ProviderFault.CRASH_AFTER_SENDING:
            raise Crash("died before reading the answer")
        if fault in OVERLAPS:
            self.overlap(fault, session_id)

    def _script(self, session: CaptureSession) -> Script:
        return CALM if self.calmed else self.scripts[session.ticket_id, session.action]

    def _next(self, session: CaptureSession, kind: str) -> Outcome:
        turn = self.turns[session.session_id, kind]
        self.turns[session.session_id, kind] += 1
        return self._script(session).answer(kind, turn)

    def _answer(self, session: CaptureSession, outcome: Outcome) -> CaptureResult:
        session_id = session.session_id
        if outcome is Outcome.STARTED:
            return CaptureResult(outcome, reference=f"{SESSION_INFO}/{session_id}")
        if outcome is Outcome.READY:
            return CaptureResult(outcome, links={"report": f"{REPORTS}/{session_id}"})
        retryable = outcome is Outcome.RETRYABLE
        return CaptureResult(
            outcome,
            error_code=ERROR_CODES[outcome],
            retry_after_seconds=self._script(session).retry_after if retryable else None,
            # As Bugpilot does: only a capture the user would not notice may be sent again.
            repeatable=outcome is Outcome.UNCONFIRMED and session.action in SILENT_ACTIONS,
        )


class FakeHelpdesk:
    """A helpdesk keeping notes in memory; its note lookup is truthful when it answers."""

    name = HELPDESK

    def __init__(self) -> None:
        self.notes: dict[str, list[str]] = {}
        self.answers = HelpdeskAnswers(NoteAnswer.POSTED, lookups_fail=False)

    def calm(self) -> None:
        """Every fault off from now on: notes are posted, lookups answer."""
        self.answers = HelpdeskAnswers(NoteAnswer.POSTED, lookups_fail=False)

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        # As Zendesk's signature check does: a replay past the freshness window is refused.
        headers = request.headers
        if abs(now - parse_time(headers[SENT_AT_HEADER])) > MAX_SKEW:
            raise Unauthenticated("the delivery is stale")
        return WebhookDelivery(headers[DELIVERY_HEADER], DELIVERY_MEMORY)

    def parse(self, body: bytes) -> TicketRequest:
        fields: dict[str, Any] = json.loads(body)
        ticket_id = str(fields["ticket_id"])
        return TicketRequest(
            helpdesk=HELPDESK,
            ticket_id=ticket_id,
            requester=USER,
            label=f"Fake ticket #{ticket_id}",
            fields=fields,
        )

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        text = note.text
        answer = self.answers.note
        if answer is NoteAnswer.DIES_BEFORE_POSTING:
            raise Crash("died before posting the note")
        if answer in LANDS:
            self.notes.setdefault(ticket_id, []).append(text)
        if answer is NoteAnswer.DIES_AFTER_POSTING:
            raise Crash("died after posting the note")
        outcome = NOTE_OUTCOMES[answer]
        retry_after = self.answers.retry_after if outcome is NoteOutcome.RETRYABLE else None
        return NoteResult(outcome, message=answer.value, retry_after_seconds=retry_after)

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        if self.answers.lookups_fail:
            return None
        return any(marker in note for note in self.notes.get(ticket_id, []))

    def notes_per_session(self) -> Counter[str]:
        """Notes on every ticket, by the session id in their marker line."""
        return Counter(
            session_id
            for notes in self.notes.values()
            for note in notes
            for session_id in MARKER_LINE.findall(note)
        )


class FaultyStore(SessionStore):
    """The real store, failing once before or after one of its writes when told to.

    It names new sessions in order rather than at random: which due session the resolver takes
    first depends on the ids (the due index hashes them into buckets and orders ties by them),
    and a failing run must replay exactly to shrink.
    """

    def __init__(self, table_name: str, client: Any) -> None:
        super().__init__(table_name, client=client)
        self.fault: StoreFault | None = None
        self._session_ids = itertools.count(1)

    def _trip(self, method: str, *, landed: bool) -> None:
        fault = self.fault
        if fault is None or (fault.method, fault.landed) != (method, landed):
            return
        self.fault = None
        if fault.unavailable:
            raise StoreUnavailable(f"{method} failed (test fault)")
        raise Crash(f"died {'after' if landed else 'before'} {method}")

    def create(
        self, session: CaptureSession, *, delivery: WebhookDelivery | None, now: datetime
    ) -> tuple[CaptureSession, bool]:
        self._trip("create", landed=False)
        session = replace(session, session_id=str(uuid.UUID(int=next(self._session_ids))))
        created = super().create(session, delivery=delivery, now=now)
        self._trip("create", landed=True)
        return created

    def claim(self, session_id: str, *, now: datetime, lease: timedelta) -> Claim | None:
        self._trip("claim", landed=False)
        claim = super().claim(session_id, now=now, lease=lease)
        self._trip("claim", landed=True)
        return claim

    def save(
        self, session: CaptureSession, *, held_claim: str, release_guard: bool = False
    ) -> bool:
        self._trip("save", landed=False)
        saved = super().save(session, held_claim=held_claim, release_guard=release_guard)
        self._trip("save", landed=True)
        return saved


@dataclass(frozen=True, kw_only=True)
class FakeRuntime(Runtime):
    """The real runtime (settings, store, ticket parsing), with the fakes for provider and desk."""

    fake_provider: FakeProvider
    fake_helpdesk: FakeHelpdesk

    def helpdesk(self, name: str) -> HelpdeskAdapter:
        return self.fake_helpdesk

    def provider(self, name: str, budget: CallBudget = CallBudget.BACKGROUND) -> CaptureProvider:
        return self.fake_provider


@dataclass
class Countdown:
    """A resolver run's time left, which goes down by `spent` each time it is read."""

    left: int
    spent: int

    def __call__(self) -> int:
        left, self.left = self.left, self.left - self.spent
        return left


@dataclass(frozen=True)
class Row:
    """What the checks read of a stored session."""

    session_id: str
    status: SessionStatus
    note_state: NoteState | None
    capture_key: str
    claim_id: str | None
    deadline_at: datetime
    next_check_at: datetime | None
    error: str | None
    # In the due index (it has a `due_bucket`): the resolver will come to it.
    indexed: bool

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Row:
        note_state, next_check = item.get("note_state"), item.get("next_check_at")
        return cls(
            session_id=str(item["session_id"]),
            status=SessionStatus(item["status"]),
            note_state=NoteState(note_state) if note_state else None,
            capture_key=str(item["capture_key"]),
            claim_id=item.get("claim_id") or None,
            deadline_at=parse_time(item["deadline_at"]),
            next_check_at=parse_time(next_check) if next_check else None,
            error=item.get("error"),
            indexed="due_bucket" in item,
        )

    @property
    def has_work(self) -> bool:
        """A capture to finish or a note to deliver."""
        return not self.status.is_final or self.note_state is NoteState.PENDING


@dataclass
class Stored:
    """What the table holds, read by a scan: sessions, and the guard of each open capture."""

    sessions: dict[str, Row] = field(default_factory=dict)
    # Capture key -> the session its guard names.
    guards: dict[str, str] = field(default_factory=dict)

    def add(self, item: Mapping[str, Any]) -> None:
        key = str(item["pk"])
        if key.startswith(SESSION_PREFIX):
            row = Row.of(item)
            self.sessions[row.session_id] = row
        elif key.startswith(GUARD_PREFIX):
            self.guards[key.removeprefix(GUARD_PREFIX)] = str(item["session_id"])


# Only what `Row` reads, and no delivery pointers: moto's scans cost by what they return.
SCAN = {
    "ProjectionExpression": (
        "pk, session_id, #status, note_state, capture_key, claim_id, deadline_at, "
        "next_check_at, #error, due_bucket"
    ),
    "FilterExpression": "NOT begins_with(pk, :delivery)",
    "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
    "ExpressionAttributeValues": {":delivery": {"S": "delivery#"}},
}


@cache
def boto_session() -> boto3.Session:
    """One session for every run's client: it loads DynamoDB's service model once."""
    return boto3.Session(region_name=REGION)


@cache
def sessions_table() -> TableDef:
    return load_template(ROOT / "template.yaml").tables["SessionsTable"]


_deserializer = TypeDeserializer()


def tally(name: str) -> None:
    """Count `name` in Hypothesis's statistics (`--hypothesis-show-statistics`), if in a test."""
    if currently_in_test_context():
        event(name)


# -- the machine -----------------------------------------------------------------------------------


class SessionMachine(RuleBasedStateMachine):
    """Requests, answers, faults, time and resolver runs in any order; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.aws = mock_aws()
        self.aws.start()
        try:
            self.client = boto_session().client("dynamodb")
            ensure_table(self.client, sessions_table(), TABLE)
        except BaseException:
            self.aws.stop()
            raise
        self.clock = Clock()
        self.provider = FakeProvider()
        self.helpdesk = FakeHelpdesk()
        self.store = FaultyStore(TABLE, self.client)
        self.runtime = FakeRuntime(
            settings_from(SETTINGS),
            self.store,
            get_http_client(),
            fake_provider=self.provider,
            fake_helpdesk=self.helpdesk,
        )
        self.provider.overlap = self._overlapping_run
        self.deliveries: list[Delivery] = []
        # Whether the resolver ran since the store was last checked.
        self.ran = False

    @initialize(note=st.sampled_from(NoteAnswer), lookups_fail=st.booleans(), first=REQUESTS)
    def a_first_request(self, note: NoteAnswer, lookups_fail: bool, first: Request) -> None:
        """How the helpdesk answers until a step says otherwise, and its first request."""
        self.helpdesk.answers = HelpdeskAnswers(note, lookups_fail)
        self._request(first)

    @rule(command=COMMANDS)
    def step(self, command: Command) -> None:
        """One thing happens; see the commands."""
        if isinstance(command, Request):
            self._request(command)
        elif isinstance(command, Replay):
            if self.deliveries:
                self._send(self.deliveries[command.which % len(self.deliveries)])
        elif isinstance(command, HelpdeskAnswers):
            self.helpdesk.answers = command
        elif isinstance(command, GoesWrong):
            self._goes_wrong(command.fault)
        elif isinstance(command, Run) and self.deliveries:
            # Before any request the table is empty: a run would find nothing, slowly.
            self.clock.now += timedelta(seconds=command.seconds)
            self._run(command.time_left, command.spent_per_look)

    # -- requests ----------------------------------------------------------------------------

    def _request(self, request: Request) -> None:
        """The webhook stores the request and starts it; the script applies from now on."""
        self.provider.scripts[request.ticket, request.action] = request.script
        body = json.dumps({"ticket_id": request.ticket, "action": request.action})
        delivery = Delivery(f"delivery-{len(self.deliveries)}", self.clock(), body)
        self.deliveries.append(delivery)
        self._send(delivery)

    def _send(self, delivery: Delivery) -> None:
        headers = {
            DELIVERY_HEADER: delivery.delivery_id,
            SENT_AT_HEADER: format_time(delivery.sent_at),
        }
        try:
            answer = receive(
                HELPDESK,
                headers,
                delivery.body,
                is_base64=False,
                runtime_factory=lambda: self.runtime,
                clock=self.clock,
            )
        except Crash:
            return
        assert answer.status in WEBHOOK_ANSWERS, answer

    # -- faults ------------------------------------------------------------------------------

    def _goes_wrong(self, fault: Fault) -> None:
        if isinstance(fault, ProviderFault):
            self.provider.fault = fault
        else:
            self.store.fault = fault

    def _overlapping_run(self, fault: ProviderFault, session_id: str) -> None:
        """Another run, made while the holder of `session_id` waits for the provider."""
        if fault is ProviderFault.CONCURRENT_RUN:
            # Given a holder mid-call, when the next scheduled run starts within its lease
            held_by = self._session(session_id).claim_id
            self.clock.now += CONCURRENT_GAP
            self._run(PLENTY_MS)
            # Then that run leaves the held session alone
            assert self._session(session_id).claim_id == held_by, "a held session was taken"
            return
        # Given a holder presumed dead, when a run starts once its lease has lapsed
        self.clock.now += PAST_LEASE
        try:
            outcome = process_session(self.runtime, session_id, self.clock)
        except (Crash, StoreUnavailable):
            pass
        else:
            # Then that run takes the session over
            assert outcome is not RunOutcome.SKIPPED, "a lapsed claim was not taken over"
        raise Crash("the holder was dead: its function timed out long before its lease")

    # -- the resolver ------------------------------------------------------------------------

    def _run(self, time_left: int, spent_per_look: int = 0) -> RunSummary:
        summary = resolve_due_sessions(
            self.runtime, Countdown(time_left, spent_per_look), self.clock
        )
        # A run that found nothing due wrote nothing.
        self.ran = self.ran or summary.due > 0
        for outcome, count in summary.outcomes.items():
            if count:
                # The sweep counts its deferrals even when there were none.
                tally(f"a resolver run: {outcome}")
        return summary

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def at_most_one_note_per_session(self) -> None:
        notes = self.helpdesk.notes_per_session()
        assert all(count <= MAX_NOTES for count in notes.values()), notes

    @invariant()
    def captures_within_bounds(self) -> None:
        for session_id, count in self.provider.captures.items():
            action = self.provider.actions[session_id]
            assert count <= (MAX_PROMPTS if action == PROMPT else MAX_CAPTURES), (action, count)

    @invariant()
    def store_agrees_with_the_world(self) -> None:
        # After each resolver run (and at the end): a scan after every step would be slow.
        if self.ran:
            self._check_store(self._stored())

    def _check_store(self, stored: Stored) -> None:
        self.ran = False
        notes = self.helpdesk.notes_per_session()
        for session in stored.sessions.values():
            if session.note_state is NoteState.POSTED:
                assert notes[session.session_id] == 1, session
            if session.has_work:
                # The resolver will come back to it.
                assert session.indexed, session
                assert session.next_check_at is not None, session
            # One open capture per ticket and action: the open session holds its guard.
            held = stored.guards.get(session.capture_key)
            if session.status.is_final:
                assert held != session.session_id, f"finished, still holding: {session}"
            else:
                assert held == session.session_id, f"open, not holding: {session}"

    # -- the end -----------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            # Settled only after a run that passed: otherwise its own failure is the one to show.
            if sys.exc_info()[1] is None:
                self._settle()
        finally:
            self.aws.stop()

    def _play_out(self) -> None:
        """A few more runs, each when the next open session is due, with nothing crashing.

        The provider keeps answering as scripted, so that a history cut short by the last step
        still reaches what its script leads to (a third try, say).
        """
        self.provider.fault, self.store.fault = None, None
        self.helpdesk.calm()
        for _ in range(PLAY_OUT_RUNS):
            stored = self._stored()
            self._check_store(stored)
            due = [
                session.next_check_at
                for session in stored.sessions.values()
                if not session.status.is_final and session.next_check_at is not None
            ]
            if not due:
                return
            self.clock.now = max(self.clock(), min(due))
            self._run(PLENTY_MS)
            self.at_most_one_note_per_session()
            self.captures_within_bounds()

    def _settle(self) -> None:
        self._play_out()
        # Given every fault off and the clock past every deadline, lease and scheduled retry
        self.provider.calm()
        latest = self.clock()
        for session in self._stored().sessions.values():
            latest = max(latest, session.deadline_at + CLAIM_LEASE, session.next_check_at or latest)
        self.clock.now = latest + SETTLE_MARGIN
        # When one resolver run happens, with all the time it needs
        summary = self._run(PLENTY_MS)
        # Then it settled every session, with no error and no lost claim
        assert summary.errors == 0, summary
        assert RunOutcome.LAPSED not in summary.outcomes, summary
        stored = self._stored()
        for session in stored.sessions.values():
            assert session.status.is_final, session
            assert session.note_state in (NoteState.POSTED, NoteState.UNDELIVERABLE), session
            assert session.claim_id is None, session
            tally(f"settled: {session.status} ({session.error}), note {session.note_state}")
        assert not stored.guards, stored
        assert not any(session.indexed for session in stored.sessions.values()), stored
        assert self.store.due_session_ids(self.clock() + FAR_FUTURE, DUE_LIMIT) == []
        self.at_most_one_note_per_session()
        self.captures_within_bounds()
        self._check_store(stored)
        for session_id, count in self.provider.captures.items():
            tally(f"captures: {self.provider.actions[session_id]} x{count}")

    # -- reading the store -------------------------------------------------------------------

    def _stored(self) -> Stored:
        """Every session, which of them are in the due index, and the open-capture guards."""
        stored = Stored()
        kwargs: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True, **SCAN}
        while True:
            page = self.client.scan(**kwargs)
            for raw in page["Items"]:
                stored.add({key: _deserializer.deserialize(value) for key, value in raw.items()})
            if "LastEvaluatedKey" not in page:
                return stored
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _session(self, session_id: str) -> CaptureSession:
        session = self.store.get(session_id)
        assert session is not None
        return session


TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(
    max_examples=MACHINE_EXAMPLES, stateful_step_count=STEPS_PER_RUN
)


# -- a defect the machine found, kept as an example -----------------------------------------------


def test_no_capture_is_started_once_the_deadline_has_come() -> None:
    machine = SessionMachine()
    policy = machine.runtime.policy
    retry = int(policy.user_retry.total_seconds())
    try:
        # Given a prompt for a user who is offline at every try before the deadline
        offline = Script(starts=(Outcome.USER_OFFLINE,), checks=(Outcome.READY,))
        machine.step(Request(TICKETS[0], PROMPT, offline))
        for _ in range(policy.max_wait // policy.user_retry - 1):
            machine.step(Run(seconds=retry))
        # When the user is online at the last try, which falls on the deadline
        online = Script(starts=(Outcome.STARTED,), checks=(Outcome.READY,))
        machine.provider.scripts[TICKETS[0], PROMPT] = online
        machine.step(Run(seconds=retry))
        # Then the session is given up without prompting the user
        [session] = machine._stored().sessions.values()
        assert session.status is SessionStatus.TIMED_OUT, session
        assert not machine.provider.captures, "prompted for a session given up in the same step"
    finally:
        machine.aws.stop()
