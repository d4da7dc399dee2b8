"""The rules helpdesk adapters share (`helpdesks.common`), tested on their own: no sockets."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime

import pytest

from capture_bridge.errors import ConfigurationError, InvalidRequest, Unauthenticated
from capture_bridge.helpdesks import Headers, NoteOutcome
from capture_bridge.helpdesks.common import (
    HmacHeader,
    check_shared_secret,
    note_answer,
    presented_secret,
    rate_limit_left,
    retry_after,
    rule_body,
    secure_url,
    tags_field,
)

SECRET = "s3cret-value"
TICKET_NUMBER = re.compile(r"^[1-9][0-9]*$")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestSharedSecret:
    @pytest.mark.parametrize(
        "authorization", [f"Bearer {SECRET}", f"bearer  {SECRET} ", basic("freshdesk", SECRET)]
    )
    def test_a_bearer_token_or_a_basic_password_carries_it(self, authorization: str) -> None:
        # given the secret sent either way, when checked, then it is accepted
        check_shared_secret(Headers({"Authorization": authorization}), SECRET)

    @pytest.mark.parametrize(
        ("headers", "message"),
        [
            ({}, "missing"),
            ({"Authorization": "Bearer guess"}, "does not match"),
            ({"Authorization": basic(SECRET, "")}, "missing"),  # the secret as the user name
            ({"Authorization": "Basic !!!"}, "unreadable"),
            ({"Authorization": f"Token {SECRET}"}, "missing"),
            ({"Authorization": "Bearer sëcret"}, "does not match"),
        ],
    )
    def test_anything_else_is_refused(self, headers: dict[str, str], message: str) -> None:
        with pytest.raises(Unauthenticated, match=message):
            check_shared_secret(Headers(headers), SECRET)

    def test_two_authorization_headers_that_disagree_prove_nothing(self) -> None:
        headers = Headers([("Authorization", f"Bearer {SECRET}"), ("authorization", "Bearer x")])
        with pytest.raises(Unauthenticated, match="conflicting"):
            presented_secret(headers)


class TestRuleBody:
    def test_reads_the_ticket_requester_tags_and_passes_the_rest_on(self) -> None:
        # given the documented body with a capture field of a provider's
        body = json.dumps(
            {
                "ticket_id": 1001,
                "requester_email": "ada@example.com",
                "requester_external_id": "",
                "tags": "vip, bugpilot_session",
                "action": "upload-session",
            }
        ).encode()
        # when it is read
        ticket = rule_body(
            body,
            helpdesk="desk",
            ticket_id=TICKET_NUMBER,
            ticket_hint="a ticket number",
            label="Desk ticket #{ticket_id}",
        )
        # then the ticket and requester are its own, the rest is for the providers
        assert (ticket.ticket_id, ticket.requester, ticket.label) == (
            "1001",
            "ada@example.com",
            "Desk ticket #1001",
        )
        assert ticket.tags == ("vip", "bugpilot_session")
        assert ticket.fields == {"action": "upload-session"}

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"[]", "must be a JSON object"),
            (b"{", "not valid JSON"),
            (b"{}", "ticket_id is required"),
            (b'{"ticket_id": "12a"}', "ticket_id must be a ticket number"),
            (b'{"ticket_id": true}', "ticket_id must be a string"),
            (b'{"ticket_id": "1", "tags": 5}', "tags must be"),
        ],
    )
    def test_each_problem_is_a_400_naming_the_field(self, body: bytes, message: str) -> None:
        with pytest.raises(InvalidRequest, match=message):
            rule_body(
                body,
                helpdesk="desk",
                ticket_id=TICKET_NUMBER,
                ticket_hint="a ticket number",
                label="{ticket_id}",
            )

    def test_tags_as_a_list_drop_empty_ones(self) -> None:
        assert tags_field({"tags": ["a", " ", "b "]}) == ("a", "b")


class TestNoteAnswers:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, NoteOutcome.POSTED),
            (201, NoteOutcome.POSTED),
            (429, NoteOutcome.RETRYABLE),
            (503, NoteOutcome.RETRYABLE),
            (401, NoteOutcome.REJECTED),
            (404, NoteOutcome.REJECTED),
        ],
    )
    def test_what_each_status_means(self, status: int, outcome: NoteOutcome) -> None:
        assert note_answer("Desk", status, None).outcome is outcome

    def test_a_rate_limit_carries_its_wait_and_the_status(self) -> None:
        result = note_answer("Desk", 429, " 17 ")
        assert (result.retry_after_seconds, result.status) == (17, 429)
        assert "Desk answered HTTP 429" in result.message

    @pytest.mark.parametrize("raw", [None, "", "Wed, 21 Oct 2026 07:28:00 GMT", "-1", "9" * 12])
    def test_a_retry_after_that_is_no_plain_number_is_ignored(self, raw: str | None) -> None:
        assert retry_after(raw) is None


class TestRateLimitHeaders:
    NOW = 1_800_000_000.0

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({}, (None, None)),
            # Zendesk's general limit says no reset; its ticketing limit does, in seconds
            ({"X-Rate-Limit": "200", "X-Rate-Limit-Remaining": "57"}, (57, None)),
            ({"ratelimit-remaining": "9", "ratelimit-reset": "41"}, (9, 41.0)),
            # the fewest left wins, with its own reset
            (
                {
                    "X-Rate-Limit-Remaining": "57",
                    "ratelimit-remaining": "9",
                    "ratelimit-reset": "4",
                },
                (9, 4.0),
            ),
            # Intercom's reset is an epoch (Jira's an ISO 8601 moment: below)
            ({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "1800000030"}, (3, 30.0)),
            # Help Scout's per-minute names, HubSpot's 10-second window (no reset)
            ({"X-RateLimit-Remaining-Minute": "12", "X-RateLimit-Retry-After": "8"}, (12, 8.0)),
            ({"X-HubSpot-RateLimit-Remaining": "88"}, (88, None)),
            # unreadable values say nothing
            ({"X-Rate-Limit-Remaining": "lots"}, (None, None)),
            ({"ratelimit-remaining": "5", "ratelimit-reset": "soon"}, (5, None)),
        ],
    )
    def test_the_fewest_calls_left_and_their_reset(
        self, headers: dict[str, str], expected: tuple[int | None, float | None]
    ) -> None:
        assert rate_limit_left(headers, now=self.NOW) == expected

    def test_an_iso_reset_counts_from_now(self) -> None:
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2027-01-15T08:00:10Z"}
        now = datetime.fromisoformat("2027-01-15T08:00:00+00:00").timestamp()
        assert rate_limit_left(headers, now=now) == (0, 10.0)

    def test_a_note_answer_carries_them(self) -> None:
        result = note_answer("Desk", 201, None, headers={"X-Rate-Limit-Remaining": "4"})
        assert (result.outcome, result.rate_remaining, result.rate_reset_seconds) == (
            NoteOutcome.POSTED,
            4,
            None,
        )
        assert note_answer("Desk", 201, None).rate_remaining is None


class TestSecureUrl:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("https://acme.atlassian.net/", "https://acme.atlassian.net"),
            (" https://x.test/api ", "https://x.test/api"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://localhost/", "http://localhost"),
            ("", ""),
        ],
    )
    def test_https_anywhere_and_http_on_this_machine_only(self, raw: str, expected: str) -> None:
        assert secure_url("DESK_API_URL", raw) == expected

    @pytest.mark.parametrize(
        "raw",
        [
            "http://acme.example.com",
            "ftp://x.test",
            "https://",
            "https://a.test/?q=1",
            "https://a.test/#x",
            "https://a .test",
            "https://[::1",
        ],
    )
    def test_anything_else_is_a_configuration_error_naming_the_key(self, raw: str) -> None:
        with pytest.raises(ConfigurationError, match="DESK_API_URL"):
            secure_url("DESK_API_URL", raw)

    def test_a_receiver_url_may_keep_its_query(self) -> None:
        url = "https://hooks.example.com/notes?channel=support"
        assert secure_url("DESK_NOTE_URL", url, base=False) == url


# GitHub's documented vector (secret "It's a Secret to Everybody", body "Hello, World!"); the
# SHA-1 and base64 forms computed with `openssl dgst -hmac`.
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SHA256_HEX = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
VECTOR_SHA1_HEX = "01dc10d0c83e72ed246219cdd91669667fe2ca59"
VECTOR_SHA1_BASE64 = "AdwQ0Mg+cu0kYhnN2RZpZn/iylk="


class TestHmacHeader:
    @pytest.mark.parametrize(
        ("scheme", "expected"),
        [
            (HmacHeader("x-hub-signature-256", prefix="sha256="), f"sha256={VECTOR_SHA256_HEX}"),
            (HmacHeader("x-hub-signature", "sha1", prefix="sha1="), f"sha1={VECTOR_SHA1_HEX}"),
            (HmacHeader("x-signature", "sha1", "base64"), VECTOR_SHA1_BASE64),
            (HmacHeader("x-signature"), VECTOR_SHA256_HEX),
        ],
    )
    def test_signs_and_verifies_the_published_vectors(
        self, scheme: HmacHeader, expected: str
    ) -> None:
        # given a scheme (algorithm, encoding, prefix) and a known vector
        # when the body is signed, then it is the vector; and the vector verifies
        assert scheme.sign(VECTOR_SECRET, VECTOR_BODY) == expected
        assert scheme.verify(f" {expected} ", VECTOR_SECRET, VECTOR_BODY) == expected

    def test_hex_is_accepted_in_either_case_base64_exactly(self) -> None:
        hex_scheme = HmacHeader("x-hub-signature", prefix="sha256=")
        hex_scheme.verify(f"sha256={VECTOR_SHA256_HEX.upper()}", VECTOR_SECRET, VECTOR_BODY)
        b64 = HmacHeader("x-signature", "sha1", "base64")
        with pytest.raises(Unauthenticated, match="does not match"):
            b64.verify(VECTOR_SHA1_BASE64.lower(), VECTOR_SECRET, VECTOR_BODY)

    @pytest.mark.parametrize(
        ("presented", "reason"),
        [
            (VECTOR_SHA256_HEX, "must be sha256=<hex>"),
            ("sha1=" + VECTOR_SHA1_HEX, "must be sha256=<hex>"),
            ("sha256=" + "0" * 64, "does not match"),
            ("sha256=" + VECTOR_SHA256_HEX[:-1], "does not match"),
            ("sha256=\u00e9" + VECTOR_SHA256_HEX[1:], "must be sha256=<hex>"),
            ("", "must be sha256=<hex>"),
        ],
    )
    def test_anything_else_is_refused(self, presented: str, reason: str) -> None:
        scheme = HmacHeader("x-hub-signature", prefix="sha256=")
        with pytest.raises(Unauthenticated, match=re.escape(reason)):
            scheme.verify(presented, VECTOR_SECRET, VECTOR_BODY)

    def test_another_secret_or_body_does_not_match(self) -> None:
        scheme = HmacHeader("x-hub-signature", prefix="sha256=")
        signature = scheme.sign(VECTOR_SECRET, VECTOR_BODY)
        with pytest.raises(Unauthenticated, match="does not match"):
            scheme.verify(signature, "another secret", VECTOR_BODY)
        with pytest.raises(Unauthenticated, match="does not match"):
            scheme.verify(signature, VECTOR_SECRET, VECTOR_BODY + b" ")
