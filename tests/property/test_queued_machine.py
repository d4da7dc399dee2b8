"""The session machine on the queued path: reminders through a work queue, workers, and the sweep.

`SessionMachine` (test_session_machine.py) with `WORK_QUEUE_URL`'s world: the runtime has a work
queue (`QueueDouble`, SQS with its redrive policy on the machine's clock), the webhook sends a
reminder per new session, a worker takes batches of reminders and steps the sessions (sending
their next reminders), and the scheduled run is the sweep. Besides the base machine's steps
(requests with their scripts, replayed webhook deliveries, the helpdesk's answers, faults of the
provider and the store), the steps here are:
- a worker takes a batch: the messages visible when the clock has moved on (to the next one, or by
  a while), some or all of them, in their order or reversed, with all its time or short of it;
- a message's fate: delivered twice, lost, late, or delivered at once (early or far ahead);
- the next worker dies (`Death`, past every `except Exception`, as a function killed at its
  timeout): before or after its claim, the vendor's start or check, the note, the save, or the
  send of the next reminder; nothing of its batch is deleted;
- time passes, then the scheduled run (the sweep).
The base machine's overlaps become a worker's: a duplicate reminder taken while the holder is
mid-call (within its lease) must skip the session; one taken after the lease takes it over.

Checked after every step, as the base machine checks: at most one note per session, captures
within the state machine's bounds, and the store's agreement after each run. At the end (teardown),
every fault off and the clock past every deadline and lease, workers and minutely sweeps alone
settle every session within a few rounds (each final, its note POSTED or UNDELIVERABLE, nothing
claimed, guarded or due), and delivering every message left changes nothing.

Each worker's batch is worked one message at a time (`worker.MAX_BATCH` set to 1 while a machine
runs): the interleavings are the machine's to choose, so that a failing run replays exactly to
shrink. tests/integration/test_worker.py works a batch at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import Enum
from typing import Any, cast

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from capture_bridge import worker
from capture_bridge.capture_flow import CLAIM_LEASE
from capture_bridge.errors import StoreUnavailable
from capture_bridge.models import CaptureSession, NoteState
from capture_bridge.resolver import SESSION_BUDGET_MS, SWEEP_GRACE, RunOutcome, step_session
from capture_bridge.work_queue import WorkItem
from tests.conftest import SerializedClient
from tests.faults import Dying, Fault, Target, When, dying
from tests.property.test_session_machine import (
    CLOCK_STEPS,
    FAR_FUTURE,
    MAY_HAVE_CAPTURED,
    PAST_LEASE,
    PLENTY_MS,
    PROFILE_EXAMPLES,
    REQUESTS,
    TABLE,
    Countdown,
    Crash,
    FakeHelpdesk,
    FakeProvider,
    FaultyStore,
    GoesWrong,
    HelpdeskAnswers,
    NoteAnswer,
    ProviderFault,
    Replay,
    Request,
    Run,
    SessionMachine,
    StoreFault,
    tally,
    weighted,
)
from tests.work_queue_double import MAX_RECEIVES, Handler, Message, QueueDouble

pytestmark = pytest.mark.property

# A third of the profile's examples (each run starts moto): 66 runs of 25 steps in `make test`.
QUEUED_EXAMPLES = max(PROFILE_EXAMPLES // 3, 1)
QUEUED_STEPS = 25
# A worker's time (the template's Timeout).
WORKER_MS = 120_000
SCHEDULE = timedelta(minutes=1)
# Rounds of workers and sweeps that settle everything at the end (each a few minutes apart).
SETTLE_ROUNDS = 8


class Death(BaseException):
    """The worker's function dies here: killed at its timeout, or out of memory."""


DEATHS = (
    Fault(Target.STORE, "claim", When.BEFORE),
    Fault(Target.STORE, "claim", When.AFTER),
    Fault(Target.PROVIDER, "start", When.BEFORE),
    Fault(Target.PROVIDER, "start", When.AFTER),
    Fault(Target.PROVIDER, "check", When.AFTER),
    Fault(Target.HELPDESK, "post_note", When.BEFORE),
    Fault(Target.HELPDESK, "post_note", When.AFTER),
    Fault(Target.STORE, "save", When.BEFORE),
    Fault(Target.STORE, "save", When.AFTER),
    Fault(Target.QUEUE, "send", When.BEFORE),
)


@dataclass(frozen=True)
class WorkerDies:
    death: Fault


@dataclass(frozen=True)
class Work:
    """Time passes (to the next visible message, or by `seconds`), then a worker takes a batch."""

    seconds: int | None = None
    take: int = 10
    reverse: bool = False
    time_left: int = WORKER_MS


class Fate(Enum):
    DUPLICATED = "duplicated"
    LOST = "lost"
    LATE = "late"
    # Taken alone, now, whenever it is due: early (or far ahead of its time).
    AT_ONCE = "at once"


@dataclass(frozen=True)
class MessageFate:
    """The `which`-th waiting message (counting round) meets `fate`."""

    which: int
    fate: Fate
    seconds: int = 0


QueuedCommand = (
    Request | Replay | HelpdeskAnswers | GoesWrong | Run | Work | MessageFate | WorkerDies
)

WORKS = st.builds(
    Work,
    seconds=st.one_of(st.none(), CLOCK_STEPS),
    take=st.integers(1, 10),
    reverse=st.booleans(),
    time_left=weighted({WORKER_MS: 4, SESSION_BUDGET_MS - 1: 1, SESSION_BUDGET_MS + 1_000: 1}),
)
FATES = st.builds(
    MessageFate,
    which=st.integers(0, 7),
    fate=st.sampled_from(Fate),
    seconds=st.sampled_from((1, 30, 300, 900)),
)
PROVIDER_FAULTS = st.sampled_from(ProviderFault)
STORE_FAULTS = st.builds(
    StoreFault, st.sampled_from(("create", "claim", "save")), st.booleans(), st.booleans()
)
QUEUED_WEIGHTS: dict[st.SearchStrategy[Any], int] = {
    WORKS: 6,
    REQUESTS: 3,
    st.builds(Run, seconds=CLOCK_STEPS): 2,
    FATES: 2,
    st.builds(WorkerDies, st.sampled_from(DEATHS)): 2,
    st.builds(GoesWrong, st.one_of(PROVIDER_FAULTS, STORE_FAULTS)): 1,
    st.builds(HelpdeskAnswers, st.sampled_from(NoteAnswer), st.booleans()): 1,
    st.builds(Replay, st.integers(0, 7)): 1,
}
QUEUED_COMMANDS: st.SearchStrategy[QueuedCommand] = st.one_of(
    [strategy for strategy, weight in QUEUED_WEIGHTS.items() for _ in range(weight)]
)


class QueuedSessionMachine(SessionMachine):
    """The session machine with a work queue, workers and the sweep; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        # moto is not thread-safe; the worker's pool is one thread here, but the sweep has its own.
        self.store = FaultyStore(TABLE, SerializedClient(self.client))
        self.queue = QueueDouble(self.clock)
        self.runtime = replace(self.runtime, store=self.store, queue=self.queue)
        self.death: Fault | None = None
        # Deliveries under way: an overlap delivers within a holder's own.
        self._depth = 0
        self._max_batch = worker.MAX_BATCH
        worker.MAX_BATCH = 1

    @rule(command=QUEUED_COMMANDS)
    def step(self, command: QueuedCommand) -> None:
        """One thing happens; see the commands."""
        if isinstance(command, Work):
            self._work(command)
        elif isinstance(command, MessageFate):
            self._fate(command)
        elif isinstance(command, WorkerDies):
            self.death = command.death
        else:
            super().step(command)

    # -- workers -------------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        self.clock.now += timedelta(seconds=seconds)

    def _handler(self, runtime: Any, time_left: int = WORKER_MS) -> Handler:
        def handle(event: dict[str, Any]) -> dict[str, Any]:
            messages = worker.messages_of(event)
            failed = worker.work(
                runtime, messages, self.clock, Countdown(time_left, 0), sleep=self._sleep
            )
            return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

        return handle

    def _work(self, command: Work) -> None:
        if command.seconds is None:
            visible = self.queue.next_visible()
            if visible is None:
                return
            self.clock.now = max(self.clock(), visible)
        else:
            self.clock.now += timedelta(seconds=command.seconds)
        batch = self.queue.receive(command.take)
        if command.reverse:
            batch.reverse()
        self._deliver(batch, command.time_left)

    def _deliver(self, batch: list[Message], time_left: int = WORKER_MS) -> None:
        if not batch:
            return
        death, self.death = self.death, None
        runtime = self._dying(death) if death else self.runtime
        self._depth += 1
        try:
            delivery = self.queue.deliver(self._handler(runtime, time_left), batch, dies=Death)
        finally:
            self._depth -= 1
            self._restore_store()
        self.ran = True
        if delivery is not None:
            tally("a worker died" if delivery.died else f"a worker's batch: {len(batch)}")

    def _dying(self, death: Fault) -> Any:
        tally(f"a worker dies {death.when.value} {death.method}")
        if death.target is Target.STORE:
            real = getattr(self.store, death.method)
            setattr(self.store, death.method, dying(real, death.when, Death))
            return self.runtime
        if death.target is Target.QUEUE:
            return replace(self.runtime, queue=Dying(self.queue, death, Death))
        if death.target is Target.PROVIDER:
            return replace(
                self.runtime, fake_provider=cast(FakeProvider, DyingProvider(self.provider, death))
            )
        return replace(
            self.runtime,
            fake_helpdesk=cast(FakeHelpdesk, Dying(self.helpdesk, death, Death)),
        )

    def _restore_store(self) -> None:
        if self._depth == 0:
            for method in ("claim", "save"):
                self.store.__dict__.pop(method, None)

    # -- the queue -----------------------------------------------------------------------------

    def _fate(self, command: MessageFate) -> None:
        waiting = sorted(self.queue.messages.values(), key=lambda m: int(m.message_id[2:]))
        if not waiting:
            return
        message = waiting[command.which % len(waiting)]
        tally(f"a message {command.fate.value}")
        if command.fate is Fate.DUPLICATED:
            self.queue.put(message.body, message.visible_at)
        elif command.fate is Fate.LOST:
            self.queue.lose(message)
        elif command.fate is Fate.LATE:
            message.visible_at += timedelta(seconds=command.seconds)
        else:
            # Taken now by a worker, whatever its time
            if self._take(message):
                self._deliver([message])

    def _take(self, message: Message) -> bool:
        """Receive `message` now, as SQS would; False when its receives sent it to the dead."""
        if message.receives >= MAX_RECEIVES:
            self.queue.lose(message)
            self.queue.dead.append(message)
            return False
        message.receives += 1
        message.visible_at = self.clock() + self.queue.visibility_timeout
        return True

    # -- overlaps: a worker taking a duplicate reminder while the holder is mid-call ----------

    def _overlapping_run(self, fault: ProviderFault, session_id: str) -> None:
        if fault is ProviderFault.CONCURRENT_RUN:
            # Given a holder mid-call, when a duplicate reminder is taken within its lease
            held_by = self._session(session_id).claim_id
            self.clock.now += timedelta(minutes=1)
            message = self.queue.put(WorkItem(session_id, self.clock()).body())
            self._take(message)
            self._deliver([message])
            # Then that worker leaves the held session alone
            assert self._session(session_id).claim_id == held_by, "a held session was taken"
            return
        # Given a holder presumed dead, when a worker takes its reminder once the lease lapsed
        self.clock.now += PAST_LEASE
        try:
            step = step_session(self.runtime, session_id, self.clock)
        except (Crash, StoreUnavailable):
            tally("the worker taking over failed")
        else:
            # Then that worker takes the session over, and sends its next reminder
            assert step.outcome is not RunOutcome.SKIPPED, "a lapsed claim was not taken over"
            if step.due is not None:
                self.queue.send([WorkItem(session_id, step.due)], now=self.clock())
        # A Crash, as the base machine's: the holder may be the webhook, whose death it stands for.
        raise Crash("the holder was dead: its function timed out long before its lease")

    # -- the end -------------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if sys.exc_info()[1] is None:
                self._settle_queued()
        finally:
            worker.MAX_BATCH = self._max_batch
            self.aws.stop()

    def _deliver_all(self) -> None:
        for _ in range(100):
            batch = self.queue.receive()
            if not batch:
                return
            self._deliver(batch)
        pytest.fail("the queue never emptied")

    def _settle_queued(self) -> None:
        # Given every fault off, and the clock past every deadline, lease and scheduled retry
        self.provider.calm()
        self.helpdesk.calm()
        self.provider.fault, self.store.fault, self.death = None, None, None
        self.queue.fail_sends = False
        latest = self.clock()
        for session in self._stored().sessions.values():
            latest = max(latest, session.deadline_at + CLAIM_LEASE, session.next_check_at or latest)
        self.clock.now = latest
        # When workers take every message and the scheduler sweeps, a few minutes apart
        for _ in range(SETTLE_ROUNDS):
            self.clock.now += SWEEP_GRACE + SCHEDULE
            self._deliver_all()
            self._run(PLENTY_MS)
            self._deliver_all()
            stored = self._stored()
            if all(not session.has_work for session in stored.sessions.values()):
                break
        # Then every session is settled, with nothing claimed, guarded or due
        stored = self._stored()
        for session in stored.sessions.values():
            assert session.status.is_final, session
            assert session.note_state in (NoteState.POSTED, NoteState.UNDELIVERABLE), session
            assert session.claim_id is None, session
            tally(f"settled: {session.status} ({session.error}), note {session.note_state}")
        assert not stored.guards, stored
        assert not any(session.indexed for session in stored.sessions.values()), stored
        assert self.store.due_session_ids(self.clock() + FAR_FUTURE, 100) == []
        self._check_store(stored)
        # And every message still waiting, delivered whenever, changes nothing
        notes = self.helpdesk.notes_per_session()
        captures = dict(self.provider.captures)
        for message in list(self.queue.messages.values()):
            message.visible_at = self.clock()
        self._deliver_all()
        assert self.helpdesk.notes_per_session() == notes
        assert dict(self.provider.captures) == captures
        assert self._stored() == stored
        self.at_most_one_note_per_session()
        self.captures_within_bounds()


class DyingProvider:
    """The fake provider, except that its next start or check kills the worker.

    A start that went out before the death counts as a capture that may have happened, whatever
    its answer (the holder never read it), as the base machine counts a crash after sending.
    """

    def __init__(self, provider: FakeProvider, death: Fault) -> None:
        self._provider = provider
        self._death = death

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    def start(self, session: CaptureSession) -> Any:
        return self._call("start", session)

    def check(self, session: CaptureSession) -> Any:
        return self._call("check", session)

    def _call(self, method: str, session: CaptureSession) -> Any:
        real = getattr(self._provider, method)
        if method != self._death.method:
            return real(session)
        if self._death.when is When.BEFORE:
            raise Death(f"died before the {method}")
        answer = real(session)
        if method == "start" and answer.outcome not in MAY_HAVE_CAPTURED:
            self._provider.captures[session.session_id] += 1
            self._provider.actions[session.session_id] = session.action
        raise Death(f"died after the {method}")


TestQueuedSessionMachine = QueuedSessionMachine.TestCase
TestQueuedSessionMachine.settings = settings(
    max_examples=QUEUED_EXAMPLES, stateful_step_count=QUEUED_STEPS
)
