"""The exit statuses scripts can rely on (listed in `capture-bridge --help`)."""

from __future__ import annotations

OK = 0
CAPTURE_DID_NOT_RESOLVE = 1  # show --watch: the capture ended failed, timed_out or cancelled
USAGE = 2  # argparse's own status, also for a command line that names no usable API
NOT_FOUND = 3
CONFLICT = 4
UNAUTHORIZED = 5
BAD_INPUT = 6
UNAVAILABLE = 7
WATCH_TIMED_OUT = 8

HELP = """\
exit status:
  0  success (show --watch: the capture resolved)
  1  show --watch: the capture ended failed, timed_out or cancelled
  2  usage error: bad flags, or no API to talk to (no --url/--stack, no region)
  3  not found (404)
  4  conflict (409): idempotency key reused with another body, or already finished
  5  unauthorized (401/403), or no AWS credentials to sign with
  6  bad input (400/413, other 4xx); field errors are printed one per line
  7  the API or a dependency is unavailable (5xx, connection error, timeout)
  8  show --watch: --timeout passed before the capture finished"""


def for_status(status: int) -> int:
    """The exit status for an HTTP error status."""
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return CONFLICT
    if status in (401, 403):
        return UNAUTHORIZED
    if status >= 500:
        return UNAVAILABLE
    # 400, 413 and anything else the API refuses (405: a route this client should not call).
    return BAD_INPUT
