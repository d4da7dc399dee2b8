"""The sessions API over HTTP: one call per request, bearer or SigV4 auth, every failure typed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import requests

from capture_cli import exits

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
USER_AGENT = "capture-bridge-cli"
SIGV4_SERVICE = "execute-api"
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class CliError(Exception):
    """A problem said in plain words, with the exit status scripts rely on."""

    def __init__(self, message: str, exit_code: int, lines: list[str] | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        # Extra lines printed after the message (e.g. one per field error).
        self.lines = lines or []


class ApiError(CliError):
    """The API answered with an error status; `detail` is its `{"detail": …}` (or the text)."""

    def __init__(self, status: int, detail: Any, body: Any):
        self.status = status
        self.detail = detail
        self.body = body
        if isinstance(detail, list):
            super().__init__(
                f"the API refused the input ({status})",
                exits.for_status(status),
                [field_error(item) for item in detail],
            )
        else:
            super().__init__(f"{detail} ({status})", exits.for_status(status))


def field_error(item: Any) -> str:
    """One field error of a 400, as `body.ticketId: msg`."""
    if not isinstance(item, dict):
        return str(item)
    loc = item.get("loc")
    where = ".".join(str(part) for part in loc) if isinstance(loc, list) else ""
    message = str(item.get("msg", ""))
    return f"{where}: {message}" if where else message


def display_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")


def region_of_url(url: str) -> str | None:
    """The region of an `…execute-api.<region>.amazonaws.com` URL, else None."""
    match = _EXECUTE_API_HOST.search(urlsplit(url).hostname or "")
    return match.group(1) if match else None


class Auth(Protocol):
    """Adds the authorization headers of one request."""

    def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The headers to send: `headers` plus authorization."""


class NoAuth:
    """No authorization (the local runner without a token)."""

    def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The headers unchanged."""
        return dict(headers)


@dataclass(frozen=True)
class BearerAuth:
    """`Authorization: Bearer <token>` (the API's `SessionsApiAuth=token` mode)."""

    token: str = field(repr=False)

    def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The headers plus the bearer token."""
        return {**headers, "Authorization": f"Bearer {self.token}"}


class IamAuth:
    """AWS Signature Version 4 for `execute-api` (`SessionsApiAuth=iam`), botocore's signer.

    Credentials come from the default chain (environment, profile, SSO, instance role), found
    once; each request takes their current frozen value, so a long `--watch` survives refreshes.
    """

    def __init__(self, region: str, credentials: Any = None):
        self.region = region
        self._credentials = credentials

    def _frozen_credentials(self) -> Any:
        credentials = self._credentials
        if credentials is None:
            import botocore.session  # imported here: bearer and local calls need no botocore

            credentials = self._credentials = botocore.session.Session().get_credentials()
        if credentials is None:
            raise CliError(
                "no AWS credentials to sign with: run `aws configure` or `aws sso login`, "
                "or set AWS_PROFILE",
                exits.UNAUTHORIZED,
            )
        return credentials.get_frozen_credentials()

    def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The headers plus `Authorization: AWS4-HMAC-SHA256 …`, `X-Amz-Date` (and token)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(self._frozen_credentials(), SIGV4_SERVICE, self.region).add_auth(request)
        return {str(name): str(value) for name, value in request.headers.items()}


@dataclass(frozen=True)
class Answer:
    """A successful answer: its status, its JSON body and its headers."""

    status: int
    body: Any
    headers: dict[str, str]


def _connection_problem(exc: requests.ConnectionError) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused (is the API running, and is the URL right?)"
    if "resolve" in text.lower() or "Name or service not known" in text:
        return "its host name does not resolve"
    return "the connection failed"


class SessionsApi:
    """The `/sessions` routes at `base_url`."""

    def __init__(self, base_url: str, auth: Auth, http: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.http = http or requests.Session()

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request; an error status raises ApiError, no answer raises CliError (exit 7)."""
        url = self.base_url + path
        if query:
            # Encoded here, once, with only unreserved characters left as they are: SigV4
            # signs the query exactly as sent, and API Gateway canonicalizes it this way.
            url += "?" + urlencode(query, quote_via=quote, safe="")
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        sent = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/json"
        sent = self.auth.sign(method, url, data, sent)
        where = display_url(self.base_url)
        try:
            response = self.http.request(
                method,
                url,
                data=data or None,
                headers=sent,
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
                allow_redirects=False,
            )
        except requests.Timeout:
            raise CliError(
                f"cannot reach the API at {where}: no answer within "
                f"{READ_TIMEOUT_SECONDS:g} seconds",
                exits.UNAVAILABLE,
            ) from None
        except requests.ConnectionError as exc:
            raise CliError(
                f"cannot reach the API at {where}: {_connection_problem(exc)}", exits.UNAVAILABLE
            ) from None
        except requests.RequestException as exc:
            raise CliError(
                f"cannot call the API at {where}: {type(exc).__name__}", exits.USAGE
            ) from None
        return self._answer(response, where)

    @staticmethod
    def _answer(response: requests.Response, where: str) -> Answer:
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(payload, response), payload)
        if payload is None or response.status_code >= 300:
            raise CliError(
                f"the API at {where} answered {response.status_code} without JSON: "
                "is the URL the sessions API's?",
                exits.UNAVAILABLE,
            )
        return Answer(response.status_code, payload, dict(response.headers))


def _detail(payload: Any, response: requests.Response) -> Any:
    """The API's `detail`; API Gateway's own errors say `message`; else the text's start."""
    if isinstance(payload, dict):
        for key in ("detail", "message", "Message"):
            if key in payload:
                return payload[key]
    text = " ".join(response.text.split())[:200]
    return text or response.reason or "no detail"


def may_send_token(url: str) -> bool:
    """A bearer token goes only over HTTPS, or to this machine (the local runner)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.hostname or "") in _LOOPBACK_HOSTS
