"""The one place that talks HTTP: a reused `requests.Session`, a timeout on every call, no retries.

Retries are decided by the callers, which know whether repeating a call is safe and record
each attempt before making it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

# (connect, read) seconds. Connecting is quick or hopeless; reading waits for the vendor's work.
DEFAULT_TIMEOUT = (3.05, 8.0)
# Bounded so that a response can never fill the function's memory.
MAX_BODY_BYTES = 1_048_576


def _never_connected(exc: requests.ConnectionError) -> bool:
    """Whether the connection itself failed (refused, unresolvable), so nothing was sent."""
    cause = exc.args[0] if exc.args else None
    # requests wraps urllib3's MaxRetryError, whose `reason` is the error that happened.
    return isinstance(getattr(cause, "reason", cause), NewConnectionError)


class TransportError(Exception):
    """No HTTP answer: the connection failed or timed out, or the answer was unreadable."""

    def __init__(self, message: str, *, maybe_delivered: bool) -> None:
        super().__init__(message)
        # False when the request surely never reached the server (the connection failed).
        self.maybe_delivered = maybe_delivered


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer, read whole."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        """A header value, matched case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


class HttpClient:
    """A small wrapper over one pooled `requests.Session`, safe to share between threads."""

    def __init__(self, *, pool_size: int = 16) -> None:
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> HttpResponse:
        """Send one request and read the answer; raise `TransportError` when there is none.

        `body` sends exact bytes (a signature covers them); `json_body` a value as JSON.
        """
        try:
            with self._session.request(
                method,
                url,
                headers=dict(headers or {}),
                json=json_body,
                data=body,
                auth=auth,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                answer = bytearray()
                # iter_content, not raw.read: it turns urllib3's read errors into requests' ones.
                for chunk in response.iter_content(chunk_size=65536):
                    answer.extend(chunk)
                    if len(answer) > MAX_BODY_BYTES:
                        raise TransportError(
                            f"{method} {url}: answer larger than {MAX_BODY_BYTES} bytes",
                            maybe_delivered=True,
                        )
                return HttpResponse(response.status_code, dict(response.headers), bytes(answer))
        except requests.ConnectTimeout as exc:
            raise TransportError(f"{method} {url}: connect timeout", maybe_delivered=False) from exc
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise TransportError(
                    f"{method} {url}: connection failed", maybe_delivered=False
                ) from exc
            # Dropped after connecting: the request may have been read and acted on.
            raise TransportError(
                f"{method} {url}: connection lost before the answer", maybe_delivered=True
            ) from exc
        except requests.Timeout as exc:
            raise TransportError(f"{method} {url}: read timeout", maybe_delivered=True) from exc
        except requests.RequestException as exc:
            raise TransportError(
                f"{method} {url}: {type(exc).__name__}", maybe_delivered=True
            ) from exc


_client: HttpClient | None = None
_client_lock = threading.Lock()


def get_http_client() -> HttpClient:
    """The process-wide client, built on first use so that importing costs nothing."""
    global _client
    with _client_lock:
        if _client is None:
            _client = HttpClient()
        return _client
