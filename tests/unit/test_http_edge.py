"""The HTTP edge both functions share: reading events, and what each error is answered with."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from capture_bridge import errors
from capture_bridge.api.edge import REFUSALS, HttpRequest, JsonAnswer, refusal_of
from capture_bridge.errors import BridgeError, InvalidRequest


def every_error() -> list[type[BridgeError]]:
    found: list[type[BridgeError]] = []
    pending: list[type[BridgeError]] = [BridgeError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return [kind for kind in found if kind is not BridgeError]


@pytest.mark.parametrize("kind", every_error(), ids=lambda kind: kind.__name__)
def test_every_error_the_bridge_raises_has_its_answer_and_none_is_a_5xx_but_outages(
    kind: type[BridgeError],
) -> None:
    # given any error of the bridge's own
    # when it is answered, then it has its row (never the 500 left for the unforeseen), and only
    # an unusable dependency or configuration is a 5xx
    refusal = refusal_of(kind("why"))
    assert refusal.status != 500
    outage = issubclass(kind, errors.StoreUnavailable | errors.ConfigurationError)
    assert (refusal.status >= 500) is outage


def test_a_subclass_row_comes_before_its_base() -> None:
    kinds = [kind for kind, _ in REFUSALS]
    for index, kind in enumerate(kinds):
        assert not any(issubclass(later, kind) for later in kinds[index + 1 :]), kind


def test_an_error_says_what_was_wrong_and_an_outage_says_nothing_internal() -> None:
    assert refusal_of(InvalidRequest("ticket_id is required")).text(
        InvalidRequest("ticket_id is required")
    ) == ("ticket_id is required")
    outage = errors.StoreUnavailable("ProvisionedThroughputExceeded on table t")
    assert "table" not in refusal_of(outage).text(outage)


class TestHttpRequest:
    def test_reads_what_the_routes_need_from_an_http_api_event(self) -> None:
        # given an HTTP API (payload 2.0) event
        event = {
            "routeKey": "GET /sessions/{sessionId}",
            "rawPath": "/sessions/abc",
            "rawQueryString": "refresh=true",
            "queryStringParameters": {"refresh": "true"},
            "pathParameters": {"sessionId": "abc"},
            "headers": {"Authorization": "Bearer t"},
            "requestContext": {"http": {"method": "get"}, "authorizer": {"iam": {"x": 1}}},
        }
        # when it is read
        request = HttpRequest.from_event(event)
        # then each part is there, headers case-insensitive
        assert (request.method, request.route, request.path) == (
            "GET",
            "/sessions/{sessionId}",
            "/sessions/abc",
        )
        assert request.path_params == {"sessionId": "abc"}
        assert request.query == {"refresh": "true"}
        assert request.query_string == "refresh=true"
        assert request.headers["authorization"] == "Bearer t"
        assert request.iam_verified
        assert request.body() == b""

    def test_an_event_missing_its_parts_reads_as_empty_not_a_crash(self) -> None:
        request = HttpRequest.from_event({"body": 7, "headers": None, "pathParameters": "x"})
        assert (request.method, request.route, request.path_params) == ("", "", {})
        assert request.body() == b""

    def test_the_body_is_the_bytes_the_caller_sent(self) -> None:
        # given a body as text, and one API Gateway wrapped in base64 (bytes that are no UTF-8)
        raw = b'{"ticket_id": "1001"}\xff'
        text = HttpRequest("POST", "/", "/", raw_body="{}")
        wrapped = HttpRequest("POST", "/", "/", raw_body=base64.b64encode(raw).decode())
        # then each reads as the exact bytes sent
        assert text.body() == b"{}"
        assert replace(wrapped, is_base64=True).body() == raw

    @pytest.mark.parametrize(
        ("raw", "is_base64", "message"),
        [("not base64!", True, "not valid base64"), ("\ud800", False, "not valid UTF-8")],
    )
    def test_a_body_no_bytes_can_carry_is_a_400_naming_it(
        self, raw: str, is_base64: bool, message: str
    ) -> None:
        request = HttpRequest("POST", "/", "/", raw_body=raw, is_base64=is_base64)
        with pytest.raises(InvalidRequest, match=message):
            request.body()


def test_an_answer_is_an_http_api_response_with_json() -> None:
    answer = JsonAnswer(409, {"detail": "busy"}, {"Retry-After": "5"})
    assert answer.as_response() == {
        "statusCode": 409,
        "headers": {"Content-Type": "application/json", "Retry-After": "5"},
        "body": '{"detail": "busy"}',
    }
