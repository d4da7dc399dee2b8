"""DynamoDB as it really behaves: the webhook and the resolver through each fault it answers with.

moto answers every call at once and successfully. Here the bridge's own DynamoDB client (the
product's retry settings included) runs on `RealisticDynamoDB` (tests/dynamodb_faults.py), which
answers chosen calls with conflicts, throttling, internal errors and lost answers, below botocore's
retries. Each test runs the webhook or the resolver into such faults, then lets the scheduled
resolver settle everything, and proves that nothing is lost or doubled: every capture request ends
in a final status with exactly one note on its ticket, and Bugpilot is asked at most once.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError
from botocore.retries import standard
from moto import mock_aws

from capture_bridge.capture_flow import CLAIM_LEASE
from capture_bridge.errors import StoreUnavailable
from capture_bridge.models import CaptureSession, NoteState, SessionStatus
from capture_bridge.resolver import RunOutcome, RunSummary, resolve_due_sessions
from capture_bridge.runtime import Runtime, build_runtime
from capture_bridge.session_store import CREATE_ATTEMPTS, SAVE_ATTEMPTS, SessionStore, from_item
from capture_bridge.settings import settings_from
from capture_bridge.store import deliveries
from capture_bridge.webhook import WebhookAnswer
from local_runner.dynamodb import ensure_table
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from local_runner.template import TableDef, load_template
from tests.conftest import ROOT, Clock, Webhook, signed_headers, trigger_body
from tests.dynamodb_faults import (
    Fault,
    RealisticDynamoDB,
    answer_lost,
    cancelled,
    conflict,
    internal_error,
    throttled,
)

# The product's client: botocore's standard mode with three attempts in all. So two throttles or
# 500s in a row are absorbed, three reach the bridge (checked against the client in `open_bridge`).
BOTOCORE_ATTEMPTS = 3
ABSORBED = BOTOCORE_ATTEMPTS - 1
THROTTLING = "ThrottlingException"
# What DynamoDB answers a single-item write that meets a transaction still committing on the item;
# botocore does not retry it.
ITEM_IN_TRANSACTION = "TransactionConflictException"

TABLE = "sessions-test"
USER = "user-42"
TICKET = "1001"
# Enough time left for every due session: the resolver defers nothing.
PLENTY_MS = 90_000
# The first check of a started capture comes this long after the start (the default policy).
FIRST_CHECK = timedelta(seconds=30)
# A run at this moment must still leave a session claimed by a holder that may be alive.
JUST_BEFORE_THE_LEASE_LAPSES = CLAIM_LEASE - timedelta(seconds=1)
# A bound on the resolver runs a fault may cost; far above what any case needs.
MAX_SETTLING_RUNS = 6

CONCURRENT_DELIVERIES = 50
# How long DynamoDB takes to commit a transaction: longer than the first of `create`'s jittered
# pauses, and up to the slowest commit a delivery must still be answered through (issue 22: at
# 0.5 s, 5 to 8 of 50 copies were answered 503).
COMMIT_SECONDS = (0.05, 0.5, 1.0)
OVERLAP_TICKETS = ("2001", "2002", "2003", "2004")
OVERLAPPING_RUNS = 2
OVERLAP_COMMIT_SECONDS = 0.02

# Figures of the whole module, kept for whoever reads them after a run (nothing is printed):
# "injected <code>" per fault given, "concurrent deliveries", "webhook calls", "resolver runs".
FIGURES: Counter[str] = Counter()

_deserializer = TypeDeserializer()


def in_transaction() -> Fault:
    """A put or an update that met a transaction on its item (not retried by botocore)."""
    return Fault(400, ITEM_IN_TRANSACTION)


def injected(*faults: Fault | None) -> Counter[str]:
    """The error codes `RealisticDynamoDB` counts for these faults (None is a normal call)."""
    return Counter(fault.code for fault in faults if fault is not None)


@functools.cache
def _sessions_table() -> TableDef:
    """template.yaml's sessions table, read once: parsing the template is most of a setup."""
    return load_template(ROOT / "template.yaml").tables["SessionsTable"]


@pytest.fixture
def moto_dynamodb() -> Iterator[Any]:
    """conftest's moto table, from the same definition; yields a plain client that meets no faults.

    Creating boto3 clients and reading the template are most of a test's setup: the template is
    read once, and this client serves both to create the table and to look at it.
    """
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        ensure_table(client, copy.deepcopy(_sessions_table()), TABLE)
        yield client


@pytest.fixture
def table(moto_dynamodb: Any) -> str:
    """Overrides conftest's `table`, so that `env` and the simulators come with this one."""
    return TABLE


@pytest.fixture(autouse=True)
def _no_retry_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore waits at random up to 1 s, then 2 s, before its retries.

    The tests count attempts, not time: the pauses go, the attempts stay, and the module keeps
    within its time budget whatever the dice say.
    """
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


@pytest.fixture
def no_creation_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's own pauses between creating attempts go too, where the conflicts are scripted.

    They wait for a rival's commit, which a scripted conflict does not have: only the tests of
    commits in progress need them.
    """
    monkeypatch.setattr(deliveries, "CREATE_FIRST_PAUSE_SECONDS", 0.0)


@dataclass
class Bridge:
    """The webhook and the resolver on a store whose DynamoDB client meets `faults`."""

    runtime: Runtime
    faults: RealisticDynamoDB
    clock: Clock
    bugpilot: BugpilotSimulator
    zendesk: ZendeskSimulator
    table: str
    # A plain moto client: looks at the table without meeting, or using up, any fault.
    observer: Any
    figures: Counter[str] = field(default_factory=Counter)

    def send(self, body: bytes, headers: dict[str, str] | None = None) -> WebhookAnswer:
        """One webhook call, through the path the Lambda handler takes."""
        self.figures["webhook calls"] += 1
        return Webhook(self.runtime, self.clock).send(body, headers)

    def request(self, ticket: str = TICKET) -> str:
        """A capture request that must be accepted; returns its session id."""
        answer = self.send(trigger_body(ticket_id=ticket))
        assert answer.status == 202, answer.body
        session_id: str = answer.body["session_id"]
        return session_id

    def run(self) -> RunSummary:
        """One scheduled resolver run."""
        self.figures["resolver runs"] += 1
        return resolve_due_sessions(self.runtime, lambda: PLENTY_MS, self.clock)

    def contents(self) -> dict[str, list[dict[str, Any]]]:
        """The table's items by kind (`session`, `open`, `delivery`, `pace`), read consistently
        at once."""
        pages = self.observer.get_paginator("scan").paginate(
            TableName=self.table, ConsistentRead=True
        )
        kinds: dict[str, list[dict[str, Any]]] = {
            "session": [],
            "open": [],
            "delivery": [],
            "pace": [],
        }
        for page in pages:
            for item in page["Items"]:
                kind = item["pk"]["S"].split("#", 1)[0]
                kinds[kind].append({k: _deserializer.deserialize(v) for k, v in item.items()})
        return kinds

    def items(self, kind: str) -> list[dict[str, Any]]:
        return self.contents()[kind]

    def sessions(self) -> list[CaptureSession]:
        return [from_item(item) for item in self.items("session")]

    def session(self, session_id: str) -> CaptureSession:
        [session] = [item for item in self.sessions() if item.session_id == session_id]
        return session

    def complete_reports(self) -> None:
        """Every capture Bugpilot started has its report ready from now on."""
        for token in self.bugpilot.tokens:
            self.bugpilot.complete_report(token)

    def settle(self) -> int:
        """Run the resolver whenever a session is next due, until none has work; returns the runs.

        Moving the clock to the next check also waits out the lease of a claim left behind, which
        is how the schedule finds such a session again.
        """
        for runs in range(MAX_SETTLING_RUNS + 1):
            waiting = [session for session in self.sessions() if session.has_work]
            if not waiting:
                return runs
            checks = [session.next_check_at for session in waiting]
            # A session with work but no next check would never be picked up again: lost.
            assert None not in checks, waiting
            self.clock.now = max(self.clock(), min(check for check in checks if check))
            self.run()
        raise AssertionError(f"still unsettled after {MAX_SETTLING_RUNS} runs: {waiting}")


@pytest.fixture
def open_bridge(
    env: dict[str, str],
    moto_dynamodb: Any,
    clock: Clock,
    bugpilot: BugpilotSimulator,
    zendesk: ZendeskSimulator,
) -> Iterator[Callable[..., Bridge]]:
    """Opens bridges on the product's own DynamoDB client, wrapped in `RealisticDynamoDB`."""
    opened: list[Bridge] = []

    def open_one(commit_seconds: float = 0.0) -> Bridge:
        store = SessionStore(env["TABLE_NAME"])
        # The client the product builds for itself, with its timeouts and retry settings.
        client = store.client
        retries = client.meta.config.retries
        assert retries == {"total_max_attempts": BOTOCORE_ATTEMPTS, "mode": "standard"}, (
            f"the product's DynamoDB client retries as {retries}: BOTOCORE_ATTEMPTS must follow"
        )
        faults = RealisticDynamoDB(client, commit_seconds=commit_seconds)
        bridge = Bridge(
            runtime=build_runtime(settings_from(env), store=store),
            faults=faults,
            clock=clock,
            bugpilot=bugpilot,
            zendesk=zendesk,
            table=env["TABLE_NAME"],
            observer=moto_dynamodb,
        )
        opened.append(bridge)
        return bridge

    yield open_one
    for bridge in opened:
        FIGURES.update({f"injected {code}": n for code, n in bridge.faults.injected.items()})
        FIGURES.update(bridge.figures)


@pytest.fixture
def bridge(open_bridge: Callable[..., Bridge]) -> Bridge:
    return open_bridge()


def assert_settled(
    bridge: Bridge,
    *,
    sessions: dict[SessionStatus, int],
    tickets: tuple[str, ...] = (TICKET,),
    starts: int,
    actions: int,
) -> list[CaptureSession]:
    """Every session final with its note posted, one note per ticket, Bugpilot asked as counted.

    Returns the sessions, for what a test checks besides.
    """
    contents = bridge.contents()
    stored = [from_item(item) for item in contents["session"]]
    assert Counter(session.status for session in stored) == sessions
    assert {session.note_state for session in stored} == {NoteState.POSTED}
    for ticket in tickets:
        [note] = bridge.zendesk.comments(ticket)
        [session] = [session for session in stored if session.ticket_id == ticket]
        assert f"Capture session: {session.session_id}" in note["body"]
    # Captures Bugpilot started, and calls asking for one (a refused call starts nothing).
    assert len(bridge.bugpilot.tokens) == starts
    assert len(bridge.bugpilot.requests("action")) == actions
    # Every ended capture freed its ticket for the next request...
    assert contents["open"] == []
    # ...and left the due index: no run will ever pick it up again.
    assert [item["pk"] for item in contents["session"] if "due_bucket" in item] == []
    return stored


# -- the webhook --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookCase:
    """Faults on one DynamoDB operation of a webhook call, and where the request ends."""

    name: str
    operation: str
    faults: tuple[Fault | None, ...]
    # Calls of `operation` that reached DynamoDB during the webhook call, botocore's included.
    calls: int
    final: SessionStatus
    error: str | None = None
    # The webhook call could not record Bugpilot's answer: its claim on the session stays until
    # the lease lapses, and the start is not repeated.
    left_claimed: bool = False
    # Bugpilot refuses the workspace: the session ends at once, so the save is a transaction that
    # also frees the ticket.
    refused: bool = False
    starts: int = 1
    # Faults on reads (GetItem): the store reads back what a cancelled transaction met.
    reads: tuple[Fault, ...] = ()


CREATE, PUT, TRANSACT, READ = "TransactWriteItems", "PutItem", "TransactWriteItems", "GetItem"
# DynamoDB carried the write out, then failed before answering: botocore sends it again.
_LOST = answer_lost(internal_error())
_RESOLVED, _FAILED = SessionStatus.RESOLVED, SessionStatus.FAILED
INTERRUPTED, NO_ACCESS = "INTERRUPTED", "NO_ACCESS"

ACCEPTED_THROUGH_A_FAULT = [
    # Creating the session: one transaction of session, guard and delivery pointer.
    WebhookCase(
        "create-conflict-until-the-last-attempt",
        CREATE,
        (conflict(),) * (CREATE_ATTEMPTS - 1),
        CREATE_ATTEMPTS,
        _RESOLVED,
    ),
    WebhookCase(
        "create-items-busy",
        CREATE,
        (cancelled("None", "TransactionConflict", "ThrottlingError"),),
        2,
        _RESOLVED,
    ),
    WebhookCase(
        "create-throughput-exceeded-absorbed",
        CREATE,
        (throttled(),) * ABSORBED,
        BOTOCORE_ATTEMPTS,
        _RESOLVED,
    ),
    WebhookCase(
        "create-throttling-absorbed",
        CREATE,
        (throttled(THROTTLING),) * ABSORBED,
        BOTOCORE_ATTEMPTS,
        _RESOLVED,
    ),
    WebhookCase(
        "create-internal-error-absorbed",
        CREATE,
        (internal_error(),) * ABSORBED,
        BOTOCORE_ATTEMPTS,
        _RESOLVED,
    ),
    # The re-sent transaction fails its own conditions: the pointers name the caller's session.
    WebhookCase("create-answer-lost", CREATE, (_LOST,), 2, _RESOLVED),
    WebhookCase(
        "create-answer-lost-and-read-back-throttled",
        CREATE,
        (_LOST,),
        2,
        _RESOLVED,
        reads=(throttled(),) * ABSORBED,
    ),
    WebhookCase(
        "create-conflict-then-throttled-then-500",
        CREATE,
        (conflict(), throttled(), internal_error()),
        4,
        _RESOLVED,
    ),
    # Saving Bugpilot's answer: a put, the capture started and stays open.
    WebhookCase(
        "save-put-throttled-absorbed", PUT, (throttled(),) * ABSORBED, BOTOCORE_ATTEMPTS, _RESOLVED
    ),
    WebhookCase(
        "save-put-throttled",
        PUT,
        (throttled(),) * BOTOCORE_ATTEMPTS,
        BOTOCORE_ATTEMPTS,
        _FAILED,
        INTERRUPTED,
        left_claimed=True,
    ),
    WebhookCase("save-put-answer-lost", PUT, (_LOST,), 2, _RESOLVED),
    # Every answer lost, but the first attempt's write landed: nothing is left behind.
    WebhookCase(
        "save-put-every-answer-lost",
        PUT,
        (_LOST,) * BOTOCORE_ATTEMPTS,
        BOTOCORE_ATTEMPTS,
        _RESOLVED,
    ),
    # Saving Bugpilot's refusal: a transaction that also frees the ticket; the create is call 1.
    WebhookCase(
        "save-transaction-conflict",
        TRANSACT,
        (None, conflict()),
        3,
        _FAILED,
        NO_ACCESS,
        refused=True,
        starts=0,
    ),
    WebhookCase(
        "save-transaction-conflict-every-attempt",
        TRANSACT,
        (None, *(conflict(),) * SAVE_ATTEMPTS),
        1 + SAVE_ATTEMPTS,
        _FAILED,
        INTERRUPTED,
        left_claimed=True,
        refused=True,
        starts=0,
    ),
    WebhookCase(
        "save-transaction-throttled-absorbed",
        TRANSACT,
        (None, *(throttled(THROTTLING),) * ABSORBED),
        1 + BOTOCORE_ATTEMPTS,
        _FAILED,
        NO_ACCESS,
        refused=True,
        starts=0,
    ),
    WebhookCase(
        "save-transaction-throttled",
        TRANSACT,
        (None, *(throttled(THROTTLING),) * BOTOCORE_ATTEMPTS),
        1 + BOTOCORE_ATTEMPTS,
        _FAILED,
        INTERRUPTED,
        left_claimed=True,
        refused=True,
        starts=0,
    ),
    WebhookCase(
        "save-transaction-answer-lost",
        TRANSACT,
        (None, _LOST),
        3,
        _FAILED,
        NO_ACCESS,
        refused=True,
        starts=0,
    ),
    WebhookCase(
        "save-transaction-every-answer-lost",
        TRANSACT,
        (None, *(_LOST,) * BOTOCORE_ATTEMPTS),
        1 + BOTOCORE_ATTEMPTS,
        _FAILED,
        NO_ACCESS,
        refused=True,
        starts=0,
    ),
]


def _prepare_bugpilot(bridge: Bridge, refused: bool) -> None:
    if refused:
        # A workspace Bugpilot does not let in: the start fails for good at once.
        bridge.bugpilot.script("action", 403, NO_ACCESS)
    else:
        bridge.bugpilot.connect_user(USER)


def _settle_after_webhook(bridge: Bridge, session_id: str, left_claimed: bool) -> None:
    """The resolver takes over: at once, or only once the dead webhook call's lease lapsed."""
    accepted_at = bridge.clock()
    bridge.complete_reports()
    assert (bridge.session(session_id).claim_id is not None) is left_claimed
    if left_claimed:
        # The webhook call might still be alive until its lease lapses: nobody touches it.
        bridge.clock.now = accepted_at + JUST_BEFORE_THE_LEASE_LAPSES
        assert bridge.run().due == 0
    # One run settles it: the report is ready, or the interrupted start ends the session.
    assert bridge.settle() == 1


@pytest.mark.parametrize("case", ACCEPTED_THROUGH_A_FAULT, ids=lambda case: case.name)
@pytest.mark.usefixtures("no_creation_pauses")
def test_webhook_accepts_through_a_fault_and_the_request_ends_once(
    bridge: Bridge, case: WebhookCase
) -> None:
    """A fault the bridge can work around is answered 202; the request still ends exactly once."""
    # Given Bugpilot ready (or refusing), and DynamoDB answering the operation with the faults
    _prepare_bugpilot(bridge, case.refused)
    bridge.faults.fail(case.operation, *case.faults)
    bridge.faults.fail(READ, *case.reads)
    # When Zendesk delivers a capture request
    answer = bridge.send(trigger_body())
    # Then it is accepted as a new request, after exactly that many calls met every fault
    assert answer.status == 202, answer.body
    assert answer.body["duplicate"] is False
    assert bridge.faults.calls[case.operation] == case.calls
    assert bridge.faults.injected == injected(*case.faults, *case.reads)
    assert len(bridge.bugpilot.requests("action")) == 1
    # And once the resolver settled it: one final session, one note, Bugpilot asked once
    _settle_after_webhook(bridge, answer.body["session_id"], case.left_claimed)
    [session] = assert_settled(bridge, sessions={case.final: 1}, starts=case.starts, actions=1)
    assert session.error == case.error


@dataclass(frozen=True)
class OutageCase:
    """Faults on creating the session that outlast every retry: the webhook answers 503."""

    name: str
    faults: tuple[Fault, ...]
    reads: tuple[Fault, ...] = ()
    # Whether the transaction had committed all the same (its answers were lost).
    stored: bool = False


STORE_DOWN = [
    OutageCase("create-conflict-every-attempt", (conflict(),) * CREATE_ATTEMPTS),
    OutageCase("create-throughput-exceeded", (throttled(),) * BOTOCORE_ATTEMPTS),
    OutageCase("create-throttling", (throttled(THROTTLING),) * BOTOCORE_ATTEMPTS),
    OutageCase("create-internal-error", (internal_error(),) * BOTOCORE_ATTEMPTS),
    OutageCase(
        "create-cancelled-for-an-unexpected-reason",
        (cancelled("None", "None", "ItemCollectionSizeLimitExceeded"),),
    ),
    OutageCase("create-every-answer-lost", (_LOST,) * BOTOCORE_ATTEMPTS, stored=True),
    OutageCase(
        "create-answer-lost-and-read-back-failing",
        (_LOST,),
        (internal_error(),) * BOTOCORE_ATTEMPTS,
        stored=True,
    ),
]


@pytest.mark.parametrize("case", STORE_DOWN, ids=lambda case: case.name)
@pytest.mark.usefixtures("no_creation_pauses")
def test_webhook_answers_503_when_the_store_is_down_and_the_retry_loses_nothing(
    bridge: Bridge, case: OutageCase
) -> None:
    """503 sends nothing to Bugpilot; the sender's retry, or the resolver, ends the request once."""
    # Given a connected user and DynamoDB failing the session's creation past every retry
    bridge.bugpilot.connect_user(USER)
    bridge.faults.fail(CREATE, *case.faults)
    bridge.faults.fail(READ, *case.reads)
    body = trigger_body()
    delivery = signed_headers(body, bridge.clock())
    # When Zendesk delivers the request
    answer = bridge.send(body, delivery)
    # Then it is told to try again, Bugpilot was not asked, and every fault was met
    assert answer.status == 503, answer.body
    assert bridge.faults.injected == injected(*case.faults, *case.reads)
    assert bridge.bugpilot.requests("action") == []
    assert len(bridge.sessions()) == int(case.stored)
    # When it delivers the same call again, as a 503 asks it to
    again = bridge.send(body, delivery)
    # Then it is accepted: a new request, or the one a lost answer had stored all the same
    assert again.status == 202, again.body
    assert again.body["duplicate"] is case.stored
    # And the request ends once. A stored one was held by the failed call, which may have started
    # a capture as far as anyone can tell, so it ends as interrupted instead of asking again.
    _settle_after_webhook(bridge, again.body["session_id"], left_claimed=case.stored)
    if case.stored:
        [session] = assert_settled(bridge, sessions={_FAILED: 1}, starts=0, actions=0)
        assert session.error == INTERRUPTED
    else:
        assert_settled(bridge, sessions={_RESOLVED: 1}, starts=1, actions=1)


def test_webhook_answers_400_when_dynamodb_refuses_the_item_and_nothing_is_kept(
    bridge: Bridge,
) -> None:
    """A ValidationError cancellation is the request's fault: 400, nothing stored or sent."""
    # Given DynamoDB refusing the session item as invalid
    bridge.bugpilot.connect_user(USER)
    refusal = cancelled("ValidationError", "None", "None")
    bridge.faults.fail(CREATE, refusal)
    # When Zendesk delivers the request
    answer = bridge.send(trigger_body())
    # Then it is refused after one call, and neither the table nor Bugpilot saw anything
    assert answer.status == 400, answer.body
    assert bridge.faults.calls[CREATE] == 1
    assert bridge.faults.injected == injected(refusal)
    assert [bridge.items(kind) for kind in ("session", "open", "delivery")] == [[], [], []]
    assert bridge.bugpilot.requests("action") == []
    # And there is nothing for the resolver, nor a note, later on
    bridge.clock.advance(seconds=(CLAIM_LEASE + FIRST_CHECK).total_seconds())
    assert bridge.run().due == 0
    assert bridge.zendesk.comments(TICKET) == []


@pytest.mark.parametrize("commit_seconds", COMMIT_SECONDS, ids=lambda seconds: f"commit-{seconds}s")
def test_fifty_identical_deliveries_at_once_give_one_capture_and_no_503(
    open_bridge: Callable[..., Bridge], commit_seconds: float
) -> None:
    """Duplicates racing a commit in progress are duplicates, not outages, up to 1 s commits."""
    # Given DynamoDB taking a moment (up to a second) to commit a transaction, cancelling any
    # other one on the same items meanwhile with TransactionConflict
    bridge = open_bridge(commit_seconds=commit_seconds)
    bridge.bugpilot.connect_user(USER)
    body = trigger_body()
    # One signed delivery, re-sent (a sender's retries, a proxy repeating it)
    delivery = signed_headers(body, bridge.clock())
    barrier = threading.Barrier(CONCURRENT_DELIVERIES)

    def deliver(_: int) -> WebhookAnswer:
        barrier.wait()
        return bridge.send(body, delivery)

    # When it arrives that many times at once
    with ThreadPoolExecutor(CONCURRENT_DELIVERIES) as pool:
        answers = list(pool.map(deliver, range(CONCURRENT_DELIVERIES)))
    FIGURES["concurrent deliveries"] += CONCURRENT_DELIVERIES
    # Then every copy is accepted, all naming one session, and Bugpilot is asked once
    assert Counter(answer.status for answer in answers) == {202: CONCURRENT_DELIVERIES}
    assert len({answer.body["session_id"] for answer in answers}) == 1
    assert sum(not answer.body["duplicate"] for answer in answers) == 1
    assert len(bridge.bugpilot.requests("action")) == 1
    # The copies did race commits in progress (how often depends on the threads' timing, so the
    # module's figures record the count)
    assert bridge.faults.injected["TransactionConflict"] > 0
    # And the one request ends with one note
    bridge.complete_reports()
    assert bridge.settle() == 1
    assert_settled(bridge, sessions={SessionStatus.RESOLVED: 1}, starts=1, actions=1)


# -- the resolver -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolverCase:
    """Faults met by one resolver run on a started capture, and what that run makes of it."""

    name: str
    operation: str
    faults: tuple[Fault, ...]
    # The report is ready: the run ends the capture and posts the note, and its save is a
    # transaction. Otherwise the run checks, finds nothing yet and saves with a put.
    report_ready: bool
    outcome: RunOutcome
    # The run's claim outlives it: the next run must wait for the lease to lapse.
    claim_left: bool = False


CLAIM = "UpdateItem"
_WAITING, _NOTED, _ERROR = RunOutcome.WAITING, RunOutcome.NOTED, RunOutcome.ERROR

RESOLVER_FAULTS = [
    # Claiming the session: a conditional update.
    ResolverCase("claim-throttled-absorbed", CLAIM, (throttled(),) * ABSORBED, False, _WAITING),
    ResolverCase("claim-throttled", CLAIM, (throttled(),) * BOTOCORE_ATTEMPTS, False, _ERROR),
    ResolverCase("claim-item-in-transaction", CLAIM, (in_transaction(),), False, _ERROR),
    # The re-sent update fails its own condition, and the item shows our claim.
    ResolverCase("claim-answer-lost", CLAIM, (_LOST,), False, _WAITING),
    ResolverCase(
        "claim-every-answer-lost", CLAIM, (_LOST,) * BOTOCORE_ATTEMPTS, False, _ERROR, True
    ),
    # Saving a check that found nothing yet: a put.
    ResolverCase(
        "save-put-throttled-absorbed", PUT, (throttled(THROTTLING),) * ABSORBED, False, _WAITING
    ),
    ResolverCase(
        "save-put-throttled", PUT, (throttled(THROTTLING),) * BOTOCORE_ATTEMPTS, False, _ERROR, True
    ),
    ResolverCase(
        "save-put-internal-error", PUT, (internal_error(),) * BOTOCORE_ATTEMPTS, False, _ERROR, True
    ),
    ResolverCase("save-put-answer-lost", PUT, (_LOST,), False, _WAITING),
    # The write landed, its answers did not: an error, but nothing left claimed.
    ResolverCase(
        "save-put-every-answer-lost",
        PUT,
        (answer_lost(throttled()),) * BOTOCORE_ATTEMPTS,
        False,
        _ERROR,
    ),
    # Saving the end of the capture after its note was posted: a transaction.
    ResolverCase("save-transaction-conflict", TRANSACT, (conflict(),), True, _NOTED),
    ResolverCase(
        "save-transaction-conflict-every-attempt",
        TRANSACT,
        (conflict(),) * SAVE_ATTEMPTS,
        True,
        _ERROR,
        True,
    ),
    ResolverCase(
        "save-transaction-throttled-absorbed", TRANSACT, (throttled(),) * ABSORBED, True, _NOTED
    ),
    ResolverCase(
        "save-transaction-throttled",
        TRANSACT,
        (throttled(),) * BOTOCORE_ATTEMPTS,
        True,
        _ERROR,
        True,
    ),
    ResolverCase("save-transaction-answer-lost", TRANSACT, (_LOST,), True, _NOTED),
    ResolverCase(
        "save-transaction-every-answer-lost", TRANSACT, (_LOST,) * BOTOCORE_ATTEMPTS, True, _ERROR
    ),
]


def _started_capture(bridge: Bridge, *, report_ready: bool) -> str:
    """A capture Bugpilot started through a fault-free webhook call, now due for its check."""
    bridge.bugpilot.connect_user(USER)
    session_id = bridge.request()
    if report_ready:
        bridge.complete_reports()
    bridge.clock.advance(seconds=FIRST_CHECK.total_seconds())
    return session_id


@pytest.mark.parametrize("case", RESOLVER_FAULTS, ids=lambda case: case.name)
def test_resolver_run_through_a_fault_and_later_runs_end_the_capture_once(
    bridge: Bridge, case: ResolverCase
) -> None:
    """Whatever a run's store calls meet, later runs finish the capture with one note, one start."""
    # Given a started capture due for its check, and DynamoDB answering the run with the faults
    session_id = _started_capture(bridge, report_ready=case.report_ready)
    bridge.faults.fail(case.operation, *case.faults)
    ran_at, calls_before = bridge.clock(), bridge.faults.calls[case.operation]
    # When the resolver runs
    summary = bridge.run()
    # Then it reports the session as the case says, having met every fault
    assert summary.due == 1
    assert summary.outcomes == {case.outcome: 1}
    # One call per fault, and one more that went through unless the run gave up
    got_through = case.outcome is not RunOutcome.ERROR
    assert bridge.faults.calls[case.operation] - calls_before == len(case.faults) + got_through
    assert bridge.faults.injected == injected(*case.faults)
    session = bridge.session(session_id)
    assert (session.claim_id is not None) is case.claim_left
    if case.claim_left:
        # The run's claim holds the session for the lease: no run touches it meanwhile
        assert session.next_check_at == ran_at + CLAIM_LEASE
        bridge.clock.now = ran_at + JUST_BEFORE_THE_LEASE_LAPSES
        assert bridge.run().due == 0
    # And later runs end it: resolved, one note (even when the run posted it and lost its save)
    bridge.settle()
    assert_settled(bridge, sessions={SessionStatus.RESOLVED: 1}, starts=1, actions=1)


QUERY_FAULTS = {
    "query-throughput-exceeded": (throttled(),) * BOTOCORE_ATTEMPTS,
    "query-internal-error": (internal_error(),) * BOTOCORE_ATTEMPTS,
}


@pytest.mark.parametrize("faults", QUERY_FAULTS.values(), ids=QUERY_FAULTS.keys())
def test_resolver_run_that_cannot_read_the_due_index_fails_and_the_next_run_does_the_work(
    bridge: Bridge, faults: tuple[Fault, ...]
) -> None:
    """No due list, no run: it fails loudly, touches nothing, and loses nothing."""
    # Given a capture whose report is ready, and the due index failing past botocore's retries
    _started_capture(bridge, report_ready=True)
    before = bridge.items("session")
    bridge.faults.fail("Query", *faults)
    # When the resolver runs, then the run itself fails, naming DynamoDB's error: it does not
    # pass for a run that found nothing due
    with pytest.raises((ClientError, StoreUnavailable), match=faults[0].code):
        bridge.run()
    assert bridge.faults.calls["Query"] == BOTOCORE_ATTEMPTS
    assert bridge.faults.injected == injected(*faults)
    # And nothing was touched: no claim, no check, no note
    assert bridge.items("session") == before
    assert bridge.bugpilot.requests("session_info") == []
    assert bridge.zendesk.comments(TICKET) == []
    # When the next run comes, then it does the work, with one note
    assert bridge.run().outcomes == {RunOutcome.NOTED: 1}
    assert_settled(bridge, sessions={SessionStatus.RESOLVED: 1}, starts=1, actions=1)


def test_resolver_absorbs_throttled_due_index_reads_within_botocore_retries(
    bridge: Bridge,
) -> None:
    """Throttled reads of any bucket, within botocore's retries, leave the run as usual."""
    _started_capture(bridge, report_ready=True)
    # A throttled first bucket and a throttled later bucket, each within the retries
    faults = (throttled(), None, *(throttled(THROTTLING),) * ABSORBED)
    bridge.faults.fail("Query", *faults)
    assert bridge.run().outcomes == {RunOutcome.NOTED: 1}
    assert bridge.faults.injected == injected(*faults)
    assert_settled(bridge, sessions={SessionStatus.RESOLVED: 1}, starts=1, actions=1)


UNSAVED_START_FAULTS = {
    "put-throttled": (throttled(),) * BOTOCORE_ATTEMPTS,
    "put-item-in-transaction": (in_transaction(),),
}


@pytest.mark.parametrize("fault", UNSAVED_START_FAULTS.values(), ids=UNSAVED_START_FAULTS.keys())
def test_resolver_start_whose_answer_was_not_saved_is_never_sent_twice(
    bridge: Bridge, fault: tuple[Fault, ...]
) -> None:
    """A start sent by a run that could not save it ends as interrupted, never as a second start."""
    # Given a user offline at the request, so that the resolver makes the start that works
    session_id = bridge.request()
    waiting = bridge.session(session_id)
    assert waiting.status is SessionStatus.WAITING_FOR_USER
    assert waiting.next_check_at is not None
    bridge.bugpilot.connect_user(USER)
    # When the run that starts the capture cannot save Bugpilot's answer
    bridge.faults.fail(PUT, *fault)
    bridge.clock.now = ran_at = waiting.next_check_at
    assert bridge.run().outcomes == {RunOutcome.ERROR: 1}
    assert len(bridge.bugpilot.tokens) == 1
    assert bridge.session(session_id).next_check_at == ran_at + CLAIM_LEASE
    # Then the next holder, after the lease, sees the interruption and does not start again
    bridge.settle()
    [session] = assert_settled(bridge, sessions={SessionStatus.FAILED: 1}, starts=1, actions=2)
    assert session.error == INTERRUPTED
    assert bridge.faults.injected == injected(*fault)


def test_overlapping_runs_meeting_faults_end_every_capture_once(
    open_bridge: Callable[..., Bridge],
) -> None:
    """Two runs at once, conflicts and lost answers among them: one note per ticket still."""
    # Given four started captures with their reports ready, and transactions taking a moment
    bridge = open_bridge(commit_seconds=OVERLAP_COMMIT_SECONDS)
    bridge.bugpilot.connect_user(USER)
    for ticket in OVERLAP_TICKETS:
        bridge.request(ticket)
    bridge.complete_reports()
    bridge.clock.advance(seconds=FIRST_CHECK.total_seconds())
    # And DynamoDB losing a claim's answer, refusing claims, cancelling and throttling saves
    faults: dict[str, tuple[Fault, ...]] = {
        CLAIM: (_LOST, throttled(), in_transaction()),
        TRANSACT: (*(conflict(),) * SAVE_ATTEMPTS, *(throttled(THROTTLING),) * BOTOCORE_ATTEMPTS),
    }
    for operation, queued in faults.items():
        bridge.faults.fail(operation, *queued)
    barrier = threading.Barrier(OVERLAPPING_RUNS)

    def overlapping_run(_: int) -> RunSummary:
        barrier.wait()
        return bridge.run()

    # When two runs work through them at once, and later runs settle what is left
    with ThreadPoolExecutor(OVERLAPPING_RUNS) as pool:
        summaries = list(pool.map(overlapping_run, range(OVERLAPPING_RUNS)))
    noted = sum(summary.outcomes[RunOutcome.NOTED] for summary in summaries)
    assert noted <= len(OVERLAP_TICKETS)
    bridge.settle()
    # Then every fault was met and every capture ended once: one note per ticket, one start each
    assert bridge.faults.injected == injected(*(f for queued in faults.values() for f in queued))
    assert_settled(
        bridge,
        sessions={SessionStatus.RESOLVED: len(OVERLAP_TICKETS)},
        tickets=OVERLAP_TICKETS,
        starts=len(OVERLAP_TICKETS),
        actions=len(OVERLAP_TICKETS),
    )
