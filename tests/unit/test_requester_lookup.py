"""Looking a requester up: the table's rows for it, the step itself, the note, the stored field."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from capture_bridge.capture_flow import (
    LOOKUP_OUTCOMES,
    TRANSITIONS,
    Continue,
    Finish,
    RetryPolicy,
    identify,
    needs_requester,
)
from capture_bridge.helpdesks import LookupOutcome, RequesterLookup
from capture_bridge.models import (
    CaptureSession,
    ErrorCode,
    NoteState,
    SessionStatus,
    TicketRequest,
)
from capture_bridge.notes import render_note
from capture_bridge.runtime import build_runtime
from capture_bridge.settings import settings_from
from capture_bridge.store.codec import from_item, to_item
from tests.store_sessions import START, unidentified_request

POLICY = RetryPolicy()


def unidentified(**changes: object) -> CaptureSession:
    """A new Bugpilot session whose payload named only contact `c-7`."""
    session = CaptureSession.open(
        unidentified_request(),
        now=START,
        max_wait=timedelta(minutes=30),
        claim_id=None,
        next_check_at=START,
    )
    return replace(session, **changes)  # type: ignore[arg-type]


class Answering:
    """A helpdesk that answers every look-up with `lookup`, counting them."""

    def __init__(self, lookup: RequesterLookup) -> None:
        self.lookup = lookup
        self.asked: list[str] = []

    def find_requester(self, reference: str) -> RequesterLookup:
        self.asked.append(reference)
        return self.lookup


class NeverRenders:
    """A provider whose note must not be asked for: the bridge writes it."""

    def render_note(self, session: CaptureSession) -> list[str]:
        raise AssertionError("the provider was asked for a requester failure's note")


class TestTheTable:
    def test_every_answer_but_found_is_one_of_the_starts_own_rows(self) -> None:
        # Given the look-up's outcomes; then each failure maps onto a row the table has
        assert set(LOOKUP_OUTCOMES) == set(LookupOutcome) - {LookupOutcome.FOUND}
        for outcome, _code in LOOKUP_OUTCOMES.values():
            assert (SessionStatus.REQUESTED, outcome) in TRANSITIONS

    def test_not_found_and_rejected_fail_and_failing_is_tried_again(self) -> None:
        rows = {
            lookup: TRANSITIONS[(SessionStatus.REQUESTED, outcome)]
            for lookup, (outcome, _) in LOOKUP_OUTCOMES.items()
        }
        assert rows[LookupOutcome.NOT_FOUND] == Finish(SessionStatus.FAILED)
        assert rows[LookupOutcome.REJECTED] == Finish(SessionStatus.FAILED)
        retried = rows[LookupOutcome.RETRYABLE]
        assert isinstance(retried, Continue) and retried.status is SessionStatus.REQUESTED
        assert retried.give_up_as is SessionStatus.FAILED

    def test_each_failure_has_its_own_error_code(self) -> None:
        codes = [code for _, code in LOOKUP_OUTCOMES.values()]
        assert codes == [
            ErrorCode.REQUESTER_NOT_FOUND,
            ErrorCode.REQUESTER_LOOKUP_REJECTED,
            ErrorCode.REQUESTER_LOOKUP_FAILING,
        ]


class TestNeedsRequester:
    @pytest.mark.parametrize(
        ("changes", "needs"),
        [
            ({}, True),
            ({"status": SessionStatus.WAITING_FOR_USER}, True),
            ({"user_id": "user-7"}, False),
            ({"requester_ref": None}, False),
            ({"status": SessionStatus.PENDING}, False),
            ({"status": SessionStatus.FAILED}, False),
        ],
    )
    def test_only_a_session_still_to_start_without_a_user_but_with_a_reference(
        self, changes: dict[str, object], needs: bool
    ) -> None:
        assert needs_requester(unidentified(**changes)) is needs


class TestIdentify:
    def test_a_requester_found_is_recorded_and_nothing_else_changes(self) -> None:
        # Given a helpdesk that knows contact c-7 as user-7
        helpdesk = Answering(RequesterLookup(LookupOutcome.FOUND, user="user-7"))
        session = unidentified()
        # When the session is identified
        found = identify(session, helpdesk, START + timedelta(seconds=5), POLICY)  # type: ignore[arg-type]
        # Then it knows its user, is still to start, and is due at once; asked once
        assert helpdesk.asked == ["c-7"]
        assert found.user_id == "user-7"
        assert found.status is SessionStatus.REQUESTED
        assert found.next_check_at == START + timedelta(seconds=5)
        assert found.attempts == 0
        assert not needs_requester(found)

    @pytest.mark.parametrize(
        ("lookup", "code"),
        [
            (LookupOutcome.NOT_FOUND, ErrorCode.REQUESTER_NOT_FOUND),
            (LookupOutcome.REJECTED, ErrorCode.REQUESTER_LOOKUP_REJECTED),
        ],
    )
    def test_nobody_found_or_refused_fails_with_a_note_owed(
        self, lookup: LookupOutcome, code: ErrorCode
    ) -> None:
        helpdesk = Answering(RequesterLookup(lookup, message="HubSpot answered HTTP 404"))
        failed = identify(unidentified(), helpdesk, START, POLICY)  # type: ignore[arg-type]
        assert failed.status is SessionStatus.FAILED
        assert failed.error == code
        assert failed.note_state is NoteState.PENDING

    def test_a_failing_helpdesk_is_asked_again_after_its_retry_after(self) -> None:
        helpdesk = Answering(RequesterLookup(LookupOutcome.RETRYABLE, retry_after_seconds=120))
        later = identify(unidentified(), helpdesk, START, POLICY)  # type: ignore[arg-type]
        assert later.status is SessionStatus.REQUESTED
        assert later.error == ErrorCode.REQUESTER_LOOKUP_FAILING
        assert later.next_check_at == START + timedelta(seconds=120)
        assert needs_requester(later)

    def test_at_the_deadline_it_fails_without_asking(self) -> None:
        helpdesk = Answering(RequesterLookup(LookupOutcome.FOUND, user="user-7"))
        session = unidentified(error=ErrorCode.REQUESTER_LOOKUP_FAILING.value)
        ended = identify(session, helpdesk, session.deadline_at, POLICY)  # type: ignore[arg-type]
        assert helpdesk.asked == []
        assert ended.status is SessionStatus.FAILED
        assert ended.error == ErrorCode.REQUESTER_LOOKUP_FAILING

    def test_found_without_a_user_is_taken_as_not_found(self) -> None:
        helpdesk = Answering(RequesterLookup(LookupOutcome.FOUND, user=""))
        failed = identify(unidentified(), helpdesk, START, POLICY)  # type: ignore[arg-type]
        assert failed.error == ErrorCode.REQUESTER_NOT_FOUND


class TestTheNote:
    def test_a_requester_never_found_is_explained_by_the_bridge(self) -> None:
        # Given a session that failed because the contact has no email
        session = unidentified().finish(
            SessionStatus.FAILED, now=START, error=ErrorCode.REQUESTER_NOT_FOUND
        )
        # When its note is written
        note = render_note(session, NeverRenders())  # type: ignore[arg-type]
        # Then it says no capture started, why, what to do, and carries the marker
        assert "No capture (upload-session) was started" in note.text
        assert "no contact with an external id or an email" in note.text
        assert "Add an email address to the contact" in note.text
        assert f"Capture session: {session.session_id}" in note.text

    def test_a_session_that_knew_its_user_gets_the_providers_note(self) -> None:
        session = unidentified(user_id="user-7").finish(
            SessionStatus.FAILED, now=START, error=ErrorCode.REQUESTER_NOT_FOUND
        )
        with pytest.raises(AssertionError, match="provider was asked"):
            render_note(session, NeverRenders())  # type: ignore[arg-type]


class TestStoredAndCarried:
    def test_the_reference_is_stored_and_read_back(self) -> None:
        session = unidentified()
        assert to_item(session)["requester_ref"] == "c-7"
        assert from_item(to_item(session)).requester_ref == "c-7"

    def test_an_item_stored_before_the_field_existed_has_none(self) -> None:
        item = to_item(unidentified(requester_ref=None))
        assert "requester_ref" not in item
        assert from_item(item).requester_ref is None

    def test_a_ticket_naming_only_a_contact_asks_bugpilot_for_a_capture_carrying_it(self) -> None:
        # Given a ticket whose payload named contact c-7 and no requester
        ticket = TicketRequest(
            helpdesk="hubspot",
            ticket_id="512",
            requester="",
            requester_ref="c-7",
            label="HubSpot ticket 512",
            fields={"action": "upload-screenshot"},
        )
        runtime = build_runtime(settings_from({"TABLE_NAME": "t"}), store=None)
        # When the captures it asks for are read
        [request] = runtime.capture_requests(ticket)
        # Then Bugpilot's capture carries the reference to look the user up by
        assert (request.provider, request.action) == ("bugpilot", "upload-screenshot")
        assert (request.user_id, request.requester_ref) == ("", "c-7")
