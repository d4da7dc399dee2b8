"""Metrics in CloudWatch's embedded metric format (EMF), from what the flows see happen.

The flows call the functions below with sessions before and after a step, and with the answers
of providers and helpdesks; the integrations know nothing of metrics. Every datapoint carries the
dimension set [service], and also [service, helpdesk, provider] when it concerns a session, and
[service, <one more>] where the contract names one (`reason`, `upstream`). The names and
dimensions are a contract: the template's alarms and dashboard read them (`CONTRACT`).

Datapoints are buffered per invocation, grouped by their dimension values (the resolver records
from its thread pool, so the buffer takes a lock), and written by `flush` at the end of the
webhook call or resolver run: one EMF line per group (`emf_line`). The lines are written as
Powertools' metrics wrote them, field for field, and `POWERTOOLS_METRICS_DISABLED` and
`POWERTOOLS_DEV` silence them as they did; the few lines of JSON are ours because importing
Powertools cost every handler's cold start more than its budget (tests/unit/test_architecture.py).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from enum import StrEnum

from capture_bridge.capture import CaptureResult, Outcome
from capture_bridge.helpdesks import NoteOutcome, NoteResult
from capture_bridge.models import CaptureSession, ErrorCode, NoteState, SessionStatus, http_error
from capture_bridge.observability import SERVICE, logger

NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
DEFAULT_NAMESPACE = "CaptureBridge"
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
DISABLED_ENV = "POWERTOOLS_METRICS_DISABLED"
# Powertools' development mode: metrics are off in it unless POWERTOOLS_METRICS_DISABLED says no.
DEV_ENV = "POWERTOOLS_DEV"


class MetricName(StrEnum):
    """Every metric the bridge emits; the template's alarms and dashboard use these names."""

    CAPTURES_REQUESTED = "CapturesRequested"
    ACTIONS_SENT = "ActionsSent"
    USER_OFFLINE_RETRIES = "UserOfflineRetries"
    REPORTS_READY = "ReportsReady"
    NOTES_POSTED = "NotesPosted"
    NOTES_UNDELIVERABLE = "NotesUndeliverable"
    CAPTURES_TIMED_OUT = "CapturesTimedOut"
    CAPTURES_FINISHED = "CapturesFinished"
    CAPTURES_FAILED = "CapturesFailed"
    WEBHOOK_REFUSED = "WebhookRefused"
    UPSTREAM_THROTTLED = "UpstreamThrottled"
    CONFIGURATION_ERRORS = "ConfigurationErrors"
    SESSION_ERRORS = "SessionErrors"
    RESOLVER_RUNS = "ResolverRuns"
    REQUEST_TO_NOTE_SECONDS = "RequestToNoteSeconds"


CONTRACT: tuple[str, ...] = tuple(name.value for name in MetricName)


class Unit(StrEnum):
    COUNT = "Count"
    SECONDS = "Seconds"


class Dimension(StrEnum):
    SERVICE = "service"
    HELPDESK = "helpdesk"
    PROVIDER = "provider"
    REASON = "reason"
    UPSTREAM = "upstream"


class RefusalReason(StrEnum):
    """Why the webhook refused a call (`WebhookRefused` by `reason`)."""

    UNAUTHORIZED = "unauthorized"  # 401
    BAD_REQUEST = "bad_request"  # 400
    TOO_LARGE = "too_large"  # 413


class ConfigurationReason(StrEnum):
    """What an operator must fix (`ConfigurationErrors` by `reason`)."""

    INVALID_API_KEY = "invalid_api_key"
    NO_ACCESS = "no_access"
    MISSING_SECRET = "missing_secret"  # noqa: S105 - a reason's name, no secret


# The providers' error codes for a refusal only an operator can fix, by what to fix.
PROVIDER_CONFIGURATION_ERRORS = {
    "INVALID_API_KEY": ConfigurationReason.INVALID_API_KEY,
    ErrorCode.INVALID_CREDENTIALS: ConfigurationReason.INVALID_API_KEY,
    ErrorCode.NO_ACCESS: ConfigurationReason.NO_ACCESS,
    ErrorCode.NOT_CONFIGURED: ConfigurationReason.MISSING_SECRET,
}
# A helpdesk refusing a note with these statuses refuses our credentials.
HELPDESK_CONFIGURATION_STATUSES = {
    401: ConfigurationReason.INVALID_API_KEY,
    403: ConfigurationReason.NO_ACCESS,
}
# The providers' error codes for an answer of HTTP 429: their own code when the body names one
# (Bugpilot's simulator says TOO_MANY_REQUESTS), else `HTTP_429`.
THROTTLED_CODES = frozenset({http_error(429), "TOO_MANY_REQUESTS", "RATE_LIMITED"})
THROTTLED_STATUS = 429
UNKNOWN_REASON = ErrorCode.UNKNOWN
# EMF takes at most 100 values per metric in one line.
MAX_VALUES_PER_LINE = 100

# A group: the dimension values, and the dimension sets over them (the first is [service]).
_GroupKey = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, ...], ...]]
_lock = threading.Lock()
_flush_lock = threading.Lock()
_groups: dict[_GroupKey, dict[tuple[str, str], list[float]]] = {}


def _service() -> str:
    return os.environ.get(SERVICE_ENV, "").strip() or SERVICE


def _namespace() -> str:
    return os.environ.get(NAMESPACE_ENV, "").strip() or DEFAULT_NAMESPACE


def record(
    name: MetricName,
    value: float = 1,
    unit: Unit = Unit.COUNT,
    *,
    session: CaptureSession | None = None,
    reason: str | None = None,
    upstream: str | None = None,
) -> None:
    """Buffer one datapoint, with [service], the session's set and the extra set if any."""
    service = Dimension.SERVICE.value
    values = {service: _service()}
    sets: list[tuple[str, ...]] = [(service,)]
    if session is not None:
        values[Dimension.HELPDESK.value] = session.helpdesk
        values[Dimension.PROVIDER.value] = session.provider
        sets.append((service, Dimension.HELPDESK.value, Dimension.PROVIDER.value))
    for dimension, extra in ((Dimension.REASON, reason), (Dimension.UPSTREAM, upstream)):
        if extra:
            values[dimension.value] = str(extra)
            sets.append((service, dimension.value))
    key: _GroupKey = (tuple(sorted(values.items())), tuple(sets))
    with _lock:
        group = _groups.setdefault(key, defaultdict(list))
        group[(name.value, unit.value)].append(float(value))


def flush() -> None:
    """Write what was buffered, one EMF line per group; never raises into the flow."""
    global _groups
    with _lock:
        groups, _groups = _groups, {}
    if not groups:
        return
    try:
        with _flush_lock:
            for line in _lines(groups):
                # One write per line, so that no other output lands inside it.
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except Exception:
        logger.exception("could not write the metrics")


def discard() -> None:
    """Forget what was buffered and not yet written (tests start clean)."""
    global _groups
    with _lock:
        _groups = {}


def _truth(value: str) -> bool:
    """A setting's yes or no, spelled as Powertools (distutils' strtobool) accepts it."""
    text = value.lower()
    if text in ("1", "y", "yes", "t", "true", "on"):
        return True
    if text in ("0", "n", "no", "f", "false", "off"):
        return False
    raise ValueError(f"invalid truth value {value!r}")


def metrics_disabled() -> bool:
    """Whether the settings turn the metrics off: disabled, or dev mode unless told otherwise."""
    dev = _truth(os.environ.get(DEV_ENV, "false"))
    return _truth(os.environ.get(DISABLED_ENV, "false")) or (dev and DISABLED_ENV not in os.environ)


def emf_line(
    namespace: str,
    dimensions: Mapping[str, str],
    sets: Sequence[Sequence[str]],
    points: Mapping[tuple[str, str], Sequence[float]],
    timestamp_ms: int,
) -> str:
    """One EMF line: `points` by (name, unit), under the dimension `sets` with their values.

    Field for field what Powertools' metrics serialized: `_aws` first, the dimension values in
    the order the sets name them, then each metric's values as a list. A blank dimension value
    is left out of its set, as Powertools left it out.
    """
    kept = [[name for name in names if dimensions[name].strip()] for names in sets]
    kept = [names for names in kept if names]
    blob: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": kept,
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in points],
                }
            ],
        },
    }
    for names in kept:
        blob.update((name, dimensions[name]) for name in names)
    blob.update((name, [float(value) for value in values]) for (name, _), values in points.items())
    return json.dumps(blob, separators=(",", ":"))


def _lines(groups: dict[_GroupKey, dict[tuple[str, str], list[float]]]) -> list[str]:
    if metrics_disabled():
        return []
    now_ms = int(time.time() * 1000)
    lines: list[str] = []
    for (dimension_values, sets), points in groups.items():
        values = dict(dimension_values)
        longest = max(len(series) for series in points.values())
        for start in range(0, longest, MAX_VALUES_PER_LINE):
            chunk = {
                key: series[start : start + MAX_VALUES_PER_LINE]
                for key, series in points.items()
                if len(series) > start
            }
            lines.append(emf_line(_namespace(), values, sets, chunk, now_ms))
    return lines


# -- what the flows report ---------------------------------------------------------------------


def capture_requested(session: CaptureSession) -> None:
    """The webhook stored a new session."""
    record(MetricName.CAPTURES_REQUESTED, session=session)


def action_sent(session: CaptureSession) -> None:
    """A provider's start is about to be attempted for the session."""
    record(MetricName.ACTIONS_SENT, session=session)


def capture_answer(session: CaptureSession, result: CaptureResult) -> None:
    """A provider answered a start or a check: throttling and configuration errors count."""
    code = result.error_code or ""
    if code in THROTTLED_CODES:
        record(MetricName.UPSTREAM_THROTTLED, session=session, upstream=session.provider)
    reason = PROVIDER_CONFIGURATION_ERRORS.get(code)
    if reason is not None and result.outcome is Outcome.REJECTED:
        record(MetricName.CONFIGURATION_ERRORS, session=session, reason=reason)


def note_answer(session: CaptureSession, result: NoteResult) -> None:
    """The helpdesk answered a note: throttling and refused credentials count."""
    status = result.status
    if result.outcome is NoteOutcome.RETRYABLE and status == THROTTLED_STATUS:
        record(MetricName.UPSTREAM_THROTTLED, session=session, upstream=session.helpdesk)
    if result.outcome is NoteOutcome.REJECTED:
        # Refused without an HTTP answer: the adapter had no credentials to send.
        reason = (
            ConfigurationReason.MISSING_SECRET
            if status is None
            else HELPDESK_CONFIGURATION_STATUSES.get(status)
        )
        if reason is not None:
            record(MetricName.CONFIGURATION_ERRORS, session=session, reason=reason)


def session_step(before: CaptureSession, after: CaptureSession) -> None:
    """A step of the session was saved: count the transitions it made."""
    if after.status is SessionStatus.WAITING_FOR_USER and after.attempts > before.attempts:
        record(MetricName.USER_OFFLINE_RETRIES, session=after)
    if after.status.is_final and not before.status.is_final:
        record(MetricName.CAPTURES_FINISHED, session=after)
        if after.status is SessionStatus.RESOLVED:
            record(MetricName.REPORTS_READY, session=after)
        elif after.status is SessionStatus.TIMED_OUT:
            record(MetricName.CAPTURES_TIMED_OUT, session=after)
        else:
            record(MetricName.CAPTURES_FAILED, session=after, reason=after.error or UNKNOWN_REASON)
    if after.note_state is not before.note_state:
        if after.note_state is NoteState.POSTED:
            record(MetricName.NOTES_POSTED, session=after)
            waited = (after.updated_at - after.created_at).total_seconds()
            record(MetricName.REQUEST_TO_NOTE_SECONDS, waited, Unit.SECONDS, session=after)
        elif after.note_state is NoteState.UNDELIVERABLE:
            record(MetricName.NOTES_UNDELIVERABLE, session=after)


def session_error(session: CaptureSession | None) -> None:
    """A session's step raised (or it could not even be claimed)."""
    record(MetricName.SESSION_ERRORS, session=session)


def resolver_run() -> None:
    """The heartbeat: one per resolver run, whatever it finds."""
    record(MetricName.RESOLVER_RUNS)


def webhook_refused(reason: RefusalReason, *, missing_secret: bool = False) -> None:
    """The webhook refused a call; a 401 for want of a secret is also a configuration error."""
    record(MetricName.WEBHOOK_REFUSED, reason=reason)
    if missing_secret:
        record(MetricName.CONFIGURATION_ERRORS, reason=ConfigurationReason.MISSING_SECRET)
