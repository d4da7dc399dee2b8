"""Help Scout: signed `convo.tags` webhooks in, notes out through the Mailbox API with OAuth.

Help Scout's webhook payload is fixed: the conversation object, signed
`X-HelpScout-Signature: <base64 HMAC-SHA1 of the body>`, its event named in `X-HelpScout-Event`.
A conversation tagged as in Zendesk (`bugpilot_session`, ...) asks for a capture, and one tagged
`capture_links` for the LambdaTest or Notte sessions its subject or preview links. Notes go
through the Mailbox API v2 with a client-credentials token, which this adapter fetches once and
shares between warm invocations and the resolver's threads until it is about to expire.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

from capture_bridge.access import (
    Access,
    AccessCheck,
    not_configured,
    status_check,
    unreachable,
    unset,
)
from capture_bridge.errors import (
    ConfigurationError,
    InvalidRequest,
    NothingToCapture,
    SecretNotConfigured,
    Unauthenticated,
)
from capture_bridge.helpdesks import (
    LookupOutcome,
    NoteOutcome,
    NoteResult,
    RequesterLookup,
    WebhookRequest,
)
from capture_bridge.helpdesks.common import (
    MAX_FIELD_LENGTH,
    HmacHeader,
    json_object,
    lookup_failure,
    note_answer,
    requester_of,
    retry_after,
    secure_url,
    single_header,
    text_field,
)
from capture_bridge.helpdesks.spec import HelpdeskSpec
from capture_bridge.http import HttpClient, HttpResponse, TransportError
from capture_bridge.models import Delivery, TicketRequest, storable_text
from capture_bridge.notes import Note
from capture_bridge.settings import Settings

NAME = "helpscout"
# The key its webhooks are checked against (the doctor says what a missing one means).
WEBHOOK_SECRET_KEY = "HELPSCOUT_WEBHOOK_SECRET"  # noqa: S105 - a key name, not a secret
DEFAULT_API_URL = "https://api.helpscout.net"

SIGNATURE = HmacHeader("x-helpscout-signature", algorithm="sha1", encoding="base64")
EVENT_HEADER = "x-helpscout-event"
# The one event that can ask for a capture: tags added to (or removed from) a conversation.
TAGS_EVENT = "convo.tags"
# Help Scout sends no delivery id and no time, and does not document its retries: the same
# conversation asking for the same thing within this window is taken for a redelivery.
DEDUPE_WINDOW = timedelta(hours=2)
# The tags that ask for a capture: Zendesk's names (Bugpilot's action tags), kept here, not
# imported (an adapter reads no capture source's module); and `capture_links`, which asks only
# for the LambdaTest or Notte sessions the conversation's subject or preview links (Help Scout's
# payload is fixed: it has no field to name them in).
BUGPILOT_TAGS = frozenset({"bugpilot_session", "bugpilot_screenshot", "bugpilot_recording"})
LINKS_TAG = "capture_links"
CAPTURE_TAGS = BUGPILOT_TAGS | {LINKS_TAG}

# Every Mailbox API call, the token's included. Short: the resolver's note budget holds the
# worst case (two token requests, the thread read, and the post tried twice).
CALL_TIMEOUT = (2.05, 3.0)
# A token is renewed this long before Help Scout says it expires (it lasts 48 hours), or at half
# its life when that is shorter.
RENEW_BEFORE_SECONDS = 300.0
# Help Scout lists a conversation's threads newest first; our note, when it landed, is on the
# first page unless that many threads came after it (then the answer is "unknown").
THREAD_PAGES = 1

_CONVERSATION_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_CUSTOMER_ID = re.compile(r"^[1-9][0-9]{0,19}$")
LABEL = "Help Scout conversation #{number}"
# The subject and the preview (of the newest thread) go with the capture: the subject as its
# description, both as its text, read for session links. Cut to these lengths, never refused.
MAX_SUBJECT_LENGTH = 1000
MAX_PREVIEW_LENGTH = 1000
_JSON = "application/json"


@dataclass(frozen=True)
class HelpScoutSettings:
    """Help Scout's own settings, all from the bridge secret."""

    api_url: str = DEFAULT_API_URL
    app_id: str = ""
    app_secret: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> HelpScoutSettings:
        """Read and validate; raises `ConfigurationError` naming an invalid setting."""
        api_url = secure_url("HELPSCOUT_API_URL", settings.text("HELPSCOUT_API_URL"))
        return cls(
            api_url=api_url or DEFAULT_API_URL,
            app_id=settings.secret("HELPSCOUT_APP_ID"),
            app_secret=settings.secret("HELPSCOUT_APP_SECRET"),
            # Stripped like every credential: a pasted newline would otherwise refuse everything.
            webhook_secret=settings.secret("HELPSCOUT_WEBHOOK_SECRET"),
        )


def sign_webhook(secret: str, body: bytes) -> str:
    """Help Scout's signature: base64 of HMAC-SHA1(secret, body)."""
    return SIGNATURE.sign(secret, body)


# -- the payload ------------------------------------------------------------------------------


def _tag_names(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """`tags`: a list of names, or of Help Scout's tag objects (`tag`, or `name`); 400 else.

    The Mailbox API documents objects `{"id", "color", "tag"}`; plain strings and `name` are
    accepted too, as other descriptions of the payload show them.
    """
    value = payload.get("tags")
    if value is None:
        return ()
    problem = "tags must be a list of tag names or of objects with a tag (or name)"
    if not isinstance(value, list):
        raise InvalidRequest(problem)
    names = []
    for item in value:
        name = item
        if isinstance(item, dict):
            name = item.get("tag") if item.get("tag") is not None else item.get("name")
        if not isinstance(name, str):
            raise InvalidRequest(problem)
        text = storable_text("tags", name).strip()
        if len(text) > MAX_FIELD_LENGTH:
            raise InvalidRequest(f"tags must be at most {MAX_FIELD_LENGTH} characters each")
        if text:
            names.append(text)
    return tuple(names)


def _conversation_id(payload: Mapping[str, Any]) -> str:
    conversation = text_field(payload, "id")
    if not conversation:
        raise InvalidRequest("id (the conversation's) is required")
    if not _CONVERSATION_ID.match(conversation):
        raise InvalidRequest("id must be a Help Scout conversation id (a number)")
    return conversation


def _customer(payload: Mapping[str, Any]) -> tuple[str, str]:
    """The primary customer's email and id (either may be empty); a 400 naming a bad one."""
    customer = payload.get("primaryCustomer")
    if customer is None:
        return "", ""
    if not isinstance(customer, dict):
        raise InvalidRequest("primaryCustomer must be an object")
    email = text_field({"primaryCustomer.email": customer.get("email")}, "primaryCustomer.email")
    customer_id = text_field({"primaryCustomer.id": customer.get("id")}, "primaryCustomer.id")
    if customer_id and not _CUSTOMER_ID.match(customer_id):
        raise InvalidRequest("primaryCustomer.id must be a Help Scout customer id (a number)")
    return email, customer_id


def _text(payload: Mapping[str, Any], name: str, limit: int) -> str:
    """A text of the conversation (`subject`, `preview`), cut to `limit`; a 400 naming it when it
    is not a string. Absent or null: empty."""
    value = payload.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return storable_text(name, value).strip()[:limit].strip()


def _links_a_session(text: str) -> bool:
    """Whether `text` links a session some capture source reads from a ticket's text."""
    # Imported only for this tag: it loads the capture sources' modules.
    from capture_bridge.capture import provider_specs

    return any(spec.named.ids_in(text) for spec in provider_specs() if spec.named is not None)


def read_conversation(body: bytes) -> TicketRequest:
    """A `convo.tags` body (the conversation object) read; every problem is a 400 naming it.

    A conversation with none of the capture tags asks for nothing (`NothingToCapture`), nor does
    one tagged `capture_links` alone whose subject and preview link no session.
    """
    payload = json_object(body)
    conversation = _conversation_id(payload)
    tags = _tag_names(payload)
    number = text_field(payload, "number")
    email, customer_id = _customer(payload)
    subject = _text(payload, "subject", MAX_SUBJECT_LENGTH)
    preview = _text(payload, "preview", MAX_PREVIEW_LENGTH)
    text = "\n".join(part for part in (subject, preview) if part)
    asks = set(tags) & CAPTURE_TAGS
    if not asks:
        raise NothingToCapture("the conversation carries no bugpilot_* or capture_links tag")
    if not asks & BUGPILOT_TAGS and not _links_a_session(text):
        # Else the ticket would name no capture, and get Bugpilot's default one.
        raise NothingToCapture(
            "the conversation's subject and preview link no LambdaTest or Notte session"
        )
    fields: dict[str, Any] = {"description": subject} if subject else {}
    if text:
        fields["text"] = text
    return TicketRequest(
        helpdesk=NAME,
        ticket_id=conversation,
        # Help Scout knows customers by email; when the payload has none, the customer's id is
        # looked up once the session is stored.
        requester=email,
        requester_ref="" if email else customer_id,
        label=LABEL.format(number=number or conversation),
        # The subject is what the customer reported (the capture's description); it and the
        # preview are the text the capture sources read links from.
        fields=fields,
        tags=tags,
        requester_fields="primaryCustomer.email (or primaryCustomer.id)",
    )


def delivery_fingerprint(body: bytes) -> str:
    """The same for every redelivery: the conversation and the capture tags it carries
    (`capture_links` among them).

    Help Scout sends no delivery id, so the conversation and what it asks for stand for the
    call; its other tags, status, subject or preview do not. A body that cannot be read is
    fingerprinted as it is: `parse` refuses it with a 400 anyway (or stores nothing).
    """
    try:
        ticket = read_conversation(body)
    except (InvalidRequest, NothingToCapture):
        return hashlib.sha256(b"body\n" + body).hexdigest()
    asks = sorted(set(ticket.tags) & CAPTURE_TAGS)
    subject = json.dumps({"conversation": ticket.ticket_id, "asks": asks}, sort_keys=True)
    return hashlib.sha256(b"tags\n" + subject.encode()).hexdigest()


# -- the token --------------------------------------------------------------------------------


class _Refused(NamedTuple):
    """Why no token could be had: Help Scout's status (None: no answer) and its wait."""

    status: int | None
    message: str
    retry_after_seconds: int | None = None

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class TokenKeeper:
    """One client-credentials token for every caller of the adapter, renewed shortly before it
    expires, or when Help Scout refuses it (`renew_after_refusal`).

    Callers may be the resolver's threads at once: the lock makes them share one token request.
    """

    def __init__(
        self,
        settings: HelpScoutSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def token(self) -> str | _Refused:
        """The current token, fetched first when there is none or it is about to expire."""
        with self._lock:
            if self._token and self._clock() < self._renew_at:
                return self._token
            return self._fetch()

    def renew_after_refusal(self, refused: str) -> str | _Refused:
        """A new token after Help Scout answered 401 to `refused`; another thread's fresher
        token when it already replaced that one (so many 401s make one token request)."""
        with self._lock:
            if self._token and self._token != refused and self._clock() < self._renew_at:
                return self._token
            self._token = ""
            return self._fetch()

    def forget(self, refused: str) -> None:
        """Drop `refused` (answered 401) if it is still the current token: the next call asks
        for a new one."""
        with self._lock:
            if self._token == refused:
                self._token = ""

    def _fetch(self) -> str | _Refused:
        settings = self._settings
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": settings.app_id,
                "client_secret": settings.app_secret,
            }
        )
        started = self._clock()
        try:
            response = self._http.request(
                "POST",
                f"{settings.api_url}/v2/oauth2/token",
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": _JSON},
                body=form.encode(),
                timeout=self._timeout,
            )
        except TransportError as exc:
            return _Refused(None, str(exc))
        if response.status != 200:
            return _Refused(
                response.status,
                f"Help Scout answered HTTP {response.status} to the token request "
                "(HELPSCOUT_APP_ID, HELPSCOUT_APP_SECRET)",
                _wait(response),
            )
        payload = response.json()
        token = payload.get("access_token") if isinstance(payload, dict) else None
        lifetime = payload.get("expires_in") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token.strip():
            return _Refused(None, "Help Scout answered the token request without a token")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            # No lifetime said: used for this call only, and asked for again next time.
            lifetime = 0
        self._token = token.strip()
        self._renew_at = started + lifetime - min(RENEW_BEFORE_SECONDS, lifetime / 2)
        return self._token


def _wait(response: HttpResponse) -> int | None:
    """Help Scout's `X-RateLimit-Retry-After` (seconds), else a standard `Retry-After`."""
    return retry_after(response.header("X-RateLimit-Retry-After")) or retry_after(
        response.header("Retry-After")
    )


# -- the adapter ------------------------------------------------------------------------------


class HelpScoutAdapter:
    """Help Scout's Mailbox API v2, configured by the HELPSCOUT_* keys of the bridge secret."""

    name = NAME

    def __init__(
        self,
        settings: HelpScoutSettings,
        http: HttpClient,
        *,
        timeout: tuple[float, float] = CALL_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout
        self._tokens = TokenKeeper(settings, http, timeout=timeout, clock=clock)

    def verify(self, request: WebhookRequest, now: datetime) -> Delivery:
        """Fail closed: no secret configured, no signature, or a wrong one all refuse.

        Help Scout signs the body only and sends no time: a copy is recognised by what it asks
        for (`delivery_fingerprint`), not refused as stale.
        """
        secret = self._settings.webhook_secret
        if not secret:
            raise SecretNotConfigured("webhook secret is not configured (HELPSCOUT_WEBHOOK_SECRET)")
        signature = single_header(request.headers, SIGNATURE.header).strip()
        if not signature:
            raise Unauthenticated("missing X-HelpScout-Signature header")
        SIGNATURE.verify(signature, secret, request.body)
        event = single_header(request.headers, EVENT_HEADER).strip()
        if event != TAGS_EVENT:
            # Proven, but only a change of tags can ask for a capture.
            shown = event[:60] if event.isascii() and event.isprintable() else "?"
            raise NothingToCapture(f"Help Scout event {shown!r} asks for no capture")
        return Delivery(delivery_fingerprint(request.body), DEDUPE_WINDOW)

    def parse(self, body: bytes) -> TicketRequest:
        """The conversation object of a `convo.tags` event; a 400 naming the field otherwise."""
        return read_conversation(body)

    def _configured(self) -> bool:
        return bool(self._settings.app_id and self._settings.app_secret)

    def _call(
        self, method: str, path: str, *, json_body: Any = None, again_after_401: bool = True
    ) -> HttpResponse | _Refused | TransportError:
        """One Mailbox API call with the shared token; after a 401, once more with a new one.

        Safe to repeat for a post too: a 401 is Help Scout's refusal before doing anything.
        Without `again_after_401` the refused token is only dropped, for the next call to renew.
        """
        token = self._tokens.token()
        for attempt in range(2):
            if isinstance(token, _Refused):
                return token
            try:
                response = self._http.request(
                    method,
                    f"{self._settings.api_url}{path}",
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Accept": _JSON,
                        **({"Content-Type": _JSON} if json_body is not None else {}),
                    },
                    json_body=json_body,
                    timeout=self._timeout,
                )
            except TransportError as exc:
                return exc
            if response.status != 401 or attempt:
                return response
            if not again_after_401:
                self._tokens.forget(token)
                return response
            token = self._tokens.renew_after_refusal(token)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def post_note(self, ticket_id: str, note: Note) -> NoteResult:
        """`POST /v2/conversations/{id}/notes` with `{"text": <HTML>}`: a note only agents see.

        Help Scout renders a note's text as HTML: the note's HTML form, where every character of
        a payload is escaped and only the session's own web links are anchors.
        """
        if not self._configured():
            return NoteResult(
                NoteOutcome.REJECTED, "HELPSCOUT_APP_ID and HELPSCOUT_APP_SECRET must be set"
            )
        answer = self._call(
            "POST",
            f"/v2/conversations/{quote(ticket_id, safe='')}/notes",
            json_body={"text": note.html},
        )
        if isinstance(answer, TransportError):
            return NoteResult(NoteOutcome.RETRYABLE, str(answer))
        if isinstance(answer, _Refused):
            outcome = NoteOutcome.RETRYABLE if answer.retryable else NoteOutcome.REJECTED
            return NoteResult(outcome, answer.message, answer.retry_after_seconds, answer.status)
        result = note_answer("Help Scout", answer.status, None)
        if result.outcome is NoteOutcome.RETRYABLE:
            return NoteResult(result.outcome, result.message, _wait(answer), result.status)
        return result

    def has_note(self, ticket_id: str, marker: str) -> bool | None:
        """Whether a thread of the conversation holds `marker`; None when that is unknown.

        Threads come newest first: the first page holds a note we posted unless more threads
        than a page came after it, which is "unknown" so that the note is never posted twice.
        """
        if not self._configured():
            return None
        # The text form, and the HTML form as posted (escaped).
        forms = {marker, html.escape(marker)}
        for page in range(1, THREAD_PAGES + 1):
            # Not tried again after a 401 (the token is dropped): "unknown" makes the resolver
            # come back, and the note's time budget stays that of one read.
            answer = self._call(
                "GET",
                f"/v2/conversations/{quote(ticket_id, safe='')}/threads?page={page}",
                again_after_401=False,
            )
            if not isinstance(answer, HttpResponse) or answer.status != 200:
                return None
            threads = _threads(answer.json())
            if threads is None:
                return None
            bodies, last_page = threads
            if any(form in body for body in bodies for form in forms):
                return True
            if last_page:
                return False
        return None

    def find_requester(self, reference: str) -> RequesterLookup:
        """`GET /v2/customers/{id}`: the customer's first email (`_embedded.emails[].value`)."""
        if not self._configured():
            return RequesterLookup(
                LookupOutcome.REJECTED,
                message="HELPSCOUT_APP_ID and HELPSCOUT_APP_SECRET must be set",
            )
        if not _CUSTOMER_ID.match(reference):
            return RequesterLookup(LookupOutcome.NOT_FOUND, message="no Help Scout customer id")
        answer = self._call("GET", f"/v2/customers/{reference}")
        if isinstance(answer, TransportError):
            return RequesterLookup(LookupOutcome.RETRYABLE, message=str(answer))
        if isinstance(answer, _Refused):
            outcome = LookupOutcome.RETRYABLE if answer.retryable else LookupOutcome.REJECTED
            return RequesterLookup(outcome, message=answer.message)
        if answer.status != 200:
            return lookup_failure("Help Scout", answer.status, _wait(answer))
        payload = answer.json()
        if not isinstance(payload, dict):
            return RequesterLookup(
                LookupOutcome.RETRYABLE, message="Help Scout answered with no JSON"
            )
        user = requester_of("", _first_email(payload))
        if not user:
            return RequesterLookup(
                LookupOutcome.NOT_FOUND, message=f"Help Scout customer {reference} has no email"
            )
        return RequesterLookup(LookupOutcome.FOUND, user=user)


def _first_email(customer: Mapping[str, Any]) -> str:
    embedded = customer.get("_embedded")
    emails = embedded.get("emails") if isinstance(embedded, dict) else None
    for entry in emails if isinstance(emails, list) else ():
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _threads(payload: Any) -> tuple[list[str], bool] | None:
    """The bodies of a page of threads and whether it is the last page; None when unreadable."""
    if not isinstance(payload, dict):
        return None
    embedded = payload.get("_embedded", {})
    threads = embedded.get("threads") if isinstance(embedded, dict) else None
    if not isinstance(threads, list):
        return None
    page = payload.get("page")
    number = page.get("number") if isinstance(page, dict) else None
    total = page.get("totalPages") if isinstance(page, dict) else None
    if not (isinstance(number, int) and isinstance(total, int)):
        return None
    bodies = [str(item.get("body") or "") for item in threads if isinstance(item, dict)]
    return bodies, number >= total


def unconfigured(settings: Settings) -> list[str]:
    """What notes need and is not set: the app's id and secret (for its token)."""
    own = HelpScoutSettings.from_settings(settings)
    return unset([("HELPSCOUT_APP_ID", own.app_id), ("HELPSCOUT_APP_SECRET", own.app_secret)])


def probe(settings: Settings, http: HttpClient) -> AccessCheck:
    """A token, then `GET /v2/users/me`: the user the app's notes are written as."""
    try:
        own = HelpScoutSettings.from_settings(settings)
    except ConfigurationError as exc:
        return AccessCheck(NAME, Access.FAILED, str(exc))
    missing = unconfigured(settings)
    if missing:
        return not_configured(NAME, missing)
    answer = HelpScoutAdapter(own, http)._call("GET", "/v2/users/me")
    if isinstance(answer, TransportError):
        return unreachable(NAME, answer)
    if isinstance(answer, _Refused):
        if answer.status is None:
            return AccessCheck(NAME, Access.UNREACHABLE, answer.message)
        if answer.status in (400, 401, 403):
            # The token request's 400 (`invalid_client`) refuses the app's id and secret too.
            return AccessCheck(NAME, Access.REJECTED, answer.message)
        return status_check(NAME, "Help Scout", HttpResponse(answer.status)) or AccessCheck(
            NAME, Access.FAILED, answer.message
        )
    refused = status_check(NAME, "Help Scout", answer)
    if refused is not None:
        return refused
    user = answer.json()
    email = user.get("email") if isinstance(user, dict) else None
    if not isinstance(email, str) or not email:
        return AccessCheck(NAME, Access.FAILED, "Help Scout answered without a user")
    return AccessCheck(NAME, Access.OK, f"signed in as {email}")


def sign_request(
    values: Mapping[str, str], request: WebhookRequest, now: datetime
) -> dict[str, str]:
    """The headers Help Scout sends: the body's signature and the event (`convo.tags` unless
    the request names another)."""
    secret = values.get(WEBHOOK_SECRET_KEY, "").strip()
    if not secret:
        raise SecretNotConfigured(f"set {WEBHOOK_SECRET_KEY}")
    event = single_header(request.headers, EVENT_HEADER).strip() or TAGS_EVENT
    return {"X-HelpScout-Signature": sign_webhook(secret, request.body), "X-HelpScout-Event": event}


def adapter(settings: Settings, http: HttpClient) -> HelpScoutAdapter:
    """Builds the adapter from the settings (the spec's `adapter`)."""
    return HelpScoutAdapter(HelpScoutSettings.from_settings(settings), http)


SPEC = HelpdeskSpec(
    name=NAME,
    adapter=adapter,
    probe=probe,
    unconfigured=unconfigured,
    sign_request=sign_request,
    webhook_secret_key=WEBHOOK_SECRET_KEY,
    secret_keys=("HELPSCOUT_WEBHOOK_SECRET", "HELPSCOUT_APP_ID", "HELPSCOUT_APP_SECRET"),
    # The longest a note can take: a token, the thread page, the post refused 401, a new token
    # and the post again.
    longest_note_seconds=(2 + THREAD_PAGES + 2) * sum(CALL_TIMEOUT),
    # A token, the customer refused 401, a new token and the customer again.
    longest_lookup_seconds=4 * sum(CALL_TIMEOUT),
    optional_keys=("HELPSCOUT_API_URL", "HELPSCOUT_NOTES_PER_MINUTE"),
    # Help Scout Standard allows 200 calls a minute and counts a write twice; a note costs three
    # when its earlier try is looked for: 80% of 200 / 3 (docs/helpdesks/helpscout.md).
    notes_per_minute=53,
)
