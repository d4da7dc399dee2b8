"""The test double answers as openapi/sessions.yaml says, and the checker would notice if not."""

from __future__ import annotations

import copy

import pytest
from jsonschema.exceptions import ValidationError

from tests import openapi_contract as contract
from tests.cli.api_double import SessionsApiDouble

UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"


def test_the_document_is_openapi_3_1_with_the_four_operations() -> None:
    paths = contract.document()["paths"]
    operations = {(path, method) for path, item in paths.items() for method in item}
    assert contract.document()["openapi"].startswith("3.1")
    assert {
        ("/sessions", "post"),
        ("/sessions", "get"),
        ("/sessions/{sessionId}", "get"),
        ("/sessions/{sessionId}", "delete"),
    } <= operations


def test_the_doubles_sessions_and_errors_match_the_document() -> None:
    # given sessions in every status the document names
    double = SessionsApiDouble()
    statuses = contract.document()["components"]["schemas"]["Status"]["enum"]
    sessions = [double.add(status=status) for status in statuses]

    # then each is a valid Session, a page of them a valid SessionPage, and the errors valid
    for session in sessions:
        contract.check_answer("GET", f"/sessions/{session['sessionId']}", 200, session)
    contract.check_answer("GET", "/sessions", 200, {"sessions": sessions, "nextCursor": "c1"})
    contract.check_answer("GET", f"/sessions/{UNKNOWN_ID}", 404, {"detail": "Session x not found"})
    field_errors = {"detail": [{"loc": ["body", "ticketId"], "msg": "is required"}]}
    contract.check_answer("POST", "/sessions", 400, field_errors)


def test_the_checker_notices_a_drifting_answer() -> None:
    # given a session without a field the document requires
    session = SessionsApiDouble().add()
    drifted = copy.deepcopy(session)
    del drifted["closedAt"]

    # then the checker refuses it, an unknown status, and a status the route does not document
    with pytest.raises(ValidationError):
        contract.check_answer("GET", f"/sessions/{UNKNOWN_ID}", 200, drifted)
    with pytest.raises(ValidationError):
        contract.check_answer("GET", f"/sessions/{UNKNOWN_ID}", 200, {**session, "status": "done"})
    with pytest.raises(AssertionError, match="does not document 400"):
        contract.check_answer("DELETE", f"/sessions/{UNKNOWN_ID}", 400, {"detail": "no"})


def test_the_checker_notices_a_request_body_the_document_refuses() -> None:
    with pytest.raises(ValidationError):
        contract.check_request(
            "POST", "/sessions", {}, {}, b'{"helpdesk": "zendesk", "ticketId": "1", "x": 1}'
        )
    with pytest.raises(AssertionError, match="undocumented query"):
        contract.check_request("GET", "/sessions", {"page": ["2"]}, {}, b"")


@pytest.mark.parametrize(
    "query",
    [
        {"helpdesk": ["zendesk"], "status": ["pending"]},
        {"helpdesk": ["zendesk"]},
        {"limit": ["5"]},
    ],
)
def test_the_checker_notices_a_listing_outside_the_documented_combinations(
    query: dict[str, list[str]],
) -> None:
    with pytest.raises(ValidationError):
        contract.check_request("GET", "/sessions", query, {}, b"")


def test_the_checker_keeps_to_the_combinations_and_printable_text() -> None:
    # given the two listings the document allows: then both pass
    contract.check_request("GET", "/sessions", {"status": ["pending"], "limit": ["5"]}, {}, b"")
    contract.check_request("GET", "/sessions", {"helpdesk": ["jira"], "ticketId": ["K-1"]}, {}, b"")
    # given a ticket id that is not printable: then the query and the body are refused
    with pytest.raises(AssertionError, match="unprintable"):
        contract.check_request(
            "GET", "/sessions", {"helpdesk": ["jira"], "ticketId": ["K\u00ad1"]}, {}, b""
        )
    body = b'{"helpdesk": "jira", "ticketId": "K\\u00ad1", "userId": "u"}'
    with pytest.raises(AssertionError, match="unprintable"):
        contract.check_request("POST", "/sessions", {}, {}, body)
