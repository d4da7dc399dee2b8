"""Access probes: one read-only call per integration, proving its stored credentials work.

Each helpdesk and capture module has a `probe(settings, http) -> AccessCheck`; the operator's
`ops doctor` calls them. The functions never do: nothing here runs in the request path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from capture_bridge.http import HttpClient, HttpResponse, TransportError

# Short: a doctor run waits for each probe in turn, and a slow answer is a finding of its own.
PROBE_TIMEOUT = (3.05, 5.0)


class Access(StrEnum):
    """What a probe found."""

    OK = "ok"
    # Neither settings nor credentials are there: the integration is not in use.
    NOT_CONFIGURED = "not configured"
    REJECTED = "credentials rejected"
    UNREACHABLE = "unreachable"
    # Not a configuration problem: the vendor asked us to slow down.
    RATE_LIMITED = "rate limited"
    # The API answered, but offers no read-only call that proves the credentials.
    UNVERIFIED = "reachable, credentials not verifiable"
    # Configured, but there is nothing read-only to call (a receiver of the bridge's own choosing).
    NOT_CALLED = "configured, not called"
    # Any other answer: the vendor failing (5xx) or something we do not understand.
    FAILED = "failed"


# Findings an operator must act on; the others are facts or passing trouble.
PROBLEMS = frozenset({Access.REJECTED, Access.UNREACHABLE, Access.FAILED})


@dataclass(frozen=True)
class AccessCheck:
    """One probe's finding, in plain words; never carries a credential."""

    integration: str
    access: Access
    detail: str = ""

    @property
    def is_problem(self) -> bool:
        return self.access in PROBLEMS


def unreachable(integration: str, exc: TransportError) -> AccessCheck:
    """No answer at all (refused, unresolvable, timed out)."""
    return AccessCheck(integration, Access.UNREACHABLE, str(exc))


def not_configured(integration: str, missing: list[str]) -> AccessCheck:
    """The settings a probe needs are not there; `missing` names them."""
    return AccessCheck(integration, Access.NOT_CONFIGURED, f"not set: {', '.join(missing)}")


def unset(named: Iterable[tuple[str, str]]) -> list[str]:
    """The names, of (name, value) pairs, whose value is empty."""
    return [name for name, value in named if not value]


def read(
    integration: str, vendor: str, http: HttpClient, url: str, **request: Any
) -> HttpResponse | AccessCheck:
    """One read-only GET: its 2xx answer, else the finding it comes to."""
    try:
        response = http.request("GET", url, timeout=PROBE_TIMEOUT, **request)
    except TransportError as exc:
        return unreachable(integration, exc)
    return status_check(integration, vendor, response) or response


def status_check(integration: str, vendor: str, response: HttpResponse) -> AccessCheck | None:
    """The finding a non-2xx answer comes to; None for a 2xx, which the caller reads itself."""
    status = response.status
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return AccessCheck(
            integration, Access.REJECTED, f"{vendor} refused the stored credentials (HTTP {status})"
        )
    if status == 429:
        return AccessCheck(
            integration,
            Access.RATE_LIMITED,
            f"{vendor} is rate limiting these credentials (HTTP 429); try again in a minute",
        )
    if status >= 500:
        return AccessCheck(
            integration, Access.FAILED, f"{vendor} is failing right now (HTTP {status})"
        )
    return AccessCheck(integration, Access.FAILED, f"{vendor} answered HTTP {status}")
