"""The command line: `capture-bridge sessions {list,show,create,cancel} --help`."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

from capture_cli import exits, render
from capture_cli.client import (
    ApiError,
    Auth,
    BearerAuth,
    CliError,
    IamAuth,
    NoAuth,
    SessionsApi,
    may_send_token,
    region_of_url,
)
from capture_cli.stack import IAM, Connect, connect_cloudformation, read_stack_api

URL_ENV = "CAPTURE_BRIDGE_URL"
TOKEN_ENV = "CAPTURE_BRIDGE_TOKEN"  # noqa: S105 - the variable's name, not a token
STATUSES = (
    "requested",
    "waiting_for_user",
    "pending",
    "resolved",
    "failed",
    "timed_out",
    "cancelled",
)
FINAL_STATUSES = frozenset({"resolved", "failed", "timed_out", "cancelled"})
ACTIONS = ("upload-session", "upload-screenshot", "show-recording-ui")
MAX_LIMIT = 100
DEFAULT_INTERVAL_SECONDS = 5.0
# A little over the bridge's own default CaptureMaxWaitMinutes (30), after which it gives up.
DEFAULT_WATCH_TIMEOUT_SECONDS = 40 * 60.0
INTERRUPTED = 130  # the shell's status for Ctrl-C
REDACTED = "[token]"  # what replaces a token in any output


@dataclass
class Console:
    """Where output goes; nothing printed can contain a secret (it would be replaced)."""

    out: TextIO
    err: TextIO
    secrets: list[str] = field(default_factory=list)

    def _safe(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def say(self, text: str) -> None:
        """A line on standard output (what scripts read)."""
        print(self._safe(text), file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A line on standard error (hints, warnings, errors)."""
        print(self._safe(text), file=self.err, flush=True)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_LIMIT}: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The commands and their flags; `--help` at every level lists the exit statuses."""
    formatter = argparse.RawDescriptionHelpFormatter
    connection = argparse.ArgumentParser(add_help=False)
    target = connection.add_mutually_exclusive_group()
    target.add_argument(
        "--url", help=f"the API's base URL, e.g. http://127.0.0.1:3000 (default: ${URL_ENV})"
    )
    target.add_argument("--stack", metavar="NAME", help="a deployed stack: its SessionsApiUrl")
    connection.add_argument(
        "--region", help="AWS region of --stack / for SigV4 (default: AWS config)"
    )
    auth = connection.add_mutually_exclusive_group()
    auth.add_argument(
        "--token",
        help=f"bearer token (default: ${TOKEN_ENV}; prefer the variable: flags show in `ps`)",
    )
    auth.add_argument(
        "--iam",
        action="store_true",
        help="sign with SigV4 from your AWS credentials (automatic when --stack's "
        "SessionsApiAuth output is iam)",
    )
    connection.add_argument(
        "--json",
        action="store_true",
        help="print the API's JSON instead of tables (show --watch: a line per change)",
    )

    root = argparse.ArgumentParser(
        prog="capture-bridge",
        description="Start, follow, list and cancel captures through the sessions API.",
        epilog=exits.HELP,
        formatter_class=formatter,
    )
    groups = root.add_subparsers(dest="group", required=True, metavar="{sessions}")
    sessions = groups.add_parser(
        "sessions",
        help="capture sessions",
        description="Capture sessions: list, show, create, cancel.",
        epilog=exits.HELP,
        formatter_class=formatter,
    )
    commands = sessions.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=text,
            description=text,
            parents=[connection],
            epilog=exits.HELP,
            formatter_class=formatter,
        )

    listing = command("list", "List a ticket's sessions, or the sessions with a status.")
    listing.add_argument("--helpdesk", help="with --ticket: the ticket's helpdesk, e.g. zendesk")
    listing.add_argument("--ticket", metavar="TICKET_ID", help="with --helpdesk: the ticket's id")
    listing.add_argument("--status", choices=STATUSES, help="instead of a ticket: this status")
    listing.add_argument("--since", metavar="ISO", help="with --status: created at or after")
    listing.add_argument(
        "--limit", type=_limit, help=f"sessions per page, 1 to {MAX_LIMIT} (API default: 20)"
    )
    listing.add_argument("--cursor", help="the nextCursor of a previous page")
    listing.add_argument("--all", action="store_true", help="follow nextCursor to the last page")

    show = command("show", "Show one session; --watch follows it until it finishes.")
    show.add_argument("session_id", metavar="SESSION_ID")
    show.add_argument(
        "--refresh", action="store_true", help="read fresh links from the capture source"
    )
    show.add_argument(
        "--watch",
        action="store_true",
        help="poll until resolved (exit 0) or failed/timed_out/cancelled (exit 1)",
    )
    show.add_argument(
        "--interval",
        type=_positive_seconds,
        metavar="SECONDS",
        help=f"with --watch: seconds between polls (default: {DEFAULT_INTERVAL_SECONDS:g})",
    )
    show.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="with --watch: give up (exit 8) after this many seconds "
        f"(default: {DEFAULT_WATCH_TIMEOUT_SECONDS:g})",
    )

    create = command("create", "Start a capture for a ticket.")
    create.add_argument("--helpdesk", required=True, help="the ticket's helpdesk, e.g. zendesk")
    create.add_argument("--ticket", required=True, metavar="TICKET_ID", help="the ticket's id")
    create.add_argument("--provider", help="bugpilot (the API's default), lambdatest or notte")
    user = create.add_mutually_exclusive_group()
    user.add_argument("--user-id", help="Bugpilot: the user as your app identified them")
    user.add_argument("--user-email", help="Bugpilot: the user's email instead of an id")
    create.add_argument("--action", help=f"Bugpilot: what to capture ({', '.join(ACTIONS)})")
    create.add_argument("--description", help="Bugpilot: shown on the report")
    create.add_argument(
        "--external-session-id", help="LambdaTest and Notte: the session to report on"
    )
    create.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="repeat a previous create safely (default: a new key, printed on stderr)",
    )

    cancel = command("cancel", "Cancel a capture that has not finished.")
    cancel.add_argument("session_id", metavar="SESSION_ID")
    return root


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot say by itself (exits 2 with the usage, as argparse does)."""
    if args.command == "list":
        by_ticket = args.helpdesk is not None or args.ticket is not None
        if by_ticket and args.status is not None:
            parser.error("list takes --helpdesk and --ticket, or --status, not both")
        if by_ticket and (args.helpdesk is None or args.ticket is None):
            parser.error("list by ticket needs both --helpdesk and --ticket")
        if not by_ticket and args.status is None:
            parser.error("list needs --helpdesk and --ticket, or --status")
        if args.since is not None and args.status is None:
            parser.error("--since goes with --status")
        if args.all and args.cursor is not None:
            parser.error("--all starts from the first page; it takes no --cursor")
    if args.command == "show" and not args.watch and (args.interval or args.timeout):
        parser.error("--interval and --timeout go with --watch")


def _default_region() -> str | None:
    import botocore.session

    region = botocore.session.Session().get_config_variable("region")
    return str(region) if region else None


def connect_api(args: argparse.Namespace, console: Console, connect: Connect) -> SessionsApi:
    """The API named by --url, --stack or $CAPTURE_BRIDGE_URL, with the auth it needs."""
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if token:
        console.secrets.append(token)
    if args.stack:
        found = read_stack_api(args.stack, args.region, connect)
        url: str = found.url
        region: str | None = found.region
        use_iam: bool = args.iam or found.auth == IAM
    else:
        url = args.url or os.environ.get(URL_ENV, "")
        if not url:
            raise CliError(
                f"no API to talk to: pass --url URL (the local runner: http://127.0.0.1:3000) "
                f"or --stack NAME, or set {URL_ENV}",
                exits.USAGE,
            )
        region, use_iam = args.region or region_of_url(url), args.iam
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"not an http(s) URL: {url!r}", exits.USAGE)
    auth: Auth
    if use_iam:
        region = region or _default_region()
        if not region:
            raise CliError(
                "no AWS region to sign for: pass --region or set AWS_REGION", exits.USAGE
            )
        if args.token:
            console.note("warning: --token is ignored: requests are signed with SigV4 (IAM)")
        auth = IamAuth(region)
    elif token:
        if not may_send_token(url):
            raise CliError(
                f"refusing to send the token over plain HTTP to {parts.hostname}: use an "
                "https:// URL (or 127.0.0.1 for the local runner)",
                exits.USAGE,
            )
        auth = BearerAuth(token)
    else:
        auth = NoAuth()
    return SessionsApi(url, auth)


def _session_path(session_id: str) -> str:
    # Quoted whole: an id can never reach another route (`../`, `?`, `#`).
    return "/sessions/" + quote(session_id, safe="")


def run_list(api: SessionsApi, args: argparse.Namespace, console: Console) -> int:
    """`sessions list`: one page, or every page with --all."""
    query: dict[str, str] = {}
    if args.status is not None:
        query["status"] = args.status
        if args.since is not None:
            query["since"] = args.since
    else:
        query["helpdesk"], query["ticketId"] = args.helpdesk, args.ticket
    if args.limit is not None:
        query["limit"] = str(args.limit)
    if args.cursor is not None:
        query["cursor"] = args.cursor
    page = api.call("GET", "/sessions", query=query).body
    if args.all:
        sessions = list(page.get("sessions", []))
        seen: set[str] = set()
        while cursor := page.get("nextCursor"):
            if cursor in seen:
                raise CliError("the API returned the same cursor twice", exits.UNAVAILABLE)
            seen.add(cursor)
            page = api.call("GET", "/sessions", query={**query, "cursor": cursor}).body
            sessions += page.get("sessions", [])
        page = {"sessions": sessions, "nextCursor": None}
    if args.json:
        console.say(render.as_json(page))
        return exits.OK
    if not page.get("sessions"):
        console.say("No sessions.")
    else:
        console.say(render.table(page["sessions"]))
    if page.get("nextCursor"):
        console.note(
            f"More sessions: --all lists every one, --cursor {page['nextCursor']} the next page."
        )
    return exits.OK


def _final(session: Mapping[str, Any]) -> bool:
    return session.get("status") in FINAL_STATUSES


def run_show(
    api: SessionsApi,
    args: argparse.Namespace,
    console: Console,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> int:
    """`sessions show`: the session; with --watch, each change until a final status."""
    path = _session_path(args.session_id)
    query = {"refresh": "true"} if args.refresh else None
    if not args.watch:
        session = api.call("GET", path, query=query).body
        console.say(render.as_json(session) if args.json else render.detail(session))
        return exits.OK
    interval = args.interval or DEFAULT_INTERVAL_SECONDS
    timeout = args.timeout or DEFAULT_WATCH_TIMEOUT_SECONDS
    deadline = clock() + timeout
    last: Any = None
    while True:
        try:
            session = api.call("GET", path, query=query).body
        except CliError as exc:
            # A blip during a long watch is not the capture's end: keep polling until timeout.
            if exc.exit_code != exits.UNAVAILABLE:
                raise
            console.note(f"warning: {exc}; polling again")
        else:
            if session != last:
                if args.json:
                    # One line per change (JSON Lines): the last line is the final session.
                    console.say(render.as_json(session, compact=True))
                else:
                    if last is None:
                        console.say(f"Watching session {render.clean(args.session_id)}")
                    console.say(render.change(session))
                last = session
            if _final(session):
                if not args.json:
                    console.say("")
                    console.say(render.detail(session))
                resolved = session["status"] == "resolved"
                return exits.OK if resolved else exits.CAPTURE_DID_NOT_RESOLVE
        remaining = deadline - clock()
        if remaining <= 0:
            status = last.get("status") if isinstance(last, Mapping) else "unknown"
            console.note(
                f"error: session {args.session_id} is still {render.clean(status)} after "
                f"{timeout:g} seconds"
            )
            return exits.WATCH_TIMED_OUT
        sleep(min(interval, remaining))


def run_create(api: SessionsApi, args: argparse.Namespace, console: Console) -> int:
    """`sessions create`: POST with an idempotency key, so a retry cannot start a second one."""
    body: dict[str, Any] = {"helpdesk": args.helpdesk, "ticketId": args.ticket}
    optional = {
        "provider": args.provider,
        "userId": args.user_id,
        "userEmail": args.user_email,
        "action": args.action,
        "description": args.description,
        "externalSessionId": args.external_session_id,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    key = args.idempotency_key or str(uuid.uuid4())
    if not args.idempotency_key:
        console.note(f"Idempotency-Key: {key} (retry safely with --idempotency-key {key})")
    answer = api.call("POST", "/sessions", body=body, headers={"Idempotency-Key": key})
    session = answer.body
    if args.json:
        console.say(render.as_json(session))
        return exits.OK
    if answer.status == 201:
        console.say(f"Created session {render.clean(session.get('sessionId'))}.")
    else:
        console.say(
            f"Session {render.clean(session.get('sessionId'))} already exists for this request "
            "(the same idempotency key, or a capture of the same kind open on the ticket)."
        )
    console.say(render.detail(session))
    return exits.OK


def run_cancel(api: SessionsApi, args: argparse.Namespace, console: Console) -> int:
    """`sessions cancel`: DELETE; a finished session is a conflict (exit 4)."""
    session = api.call("DELETE", _session_path(args.session_id)).body
    if args.json:
        console.say(render.as_json(session))
    else:
        console.say(f"Cancelled session {render.clean(session.get('sessionId'))}.")
        console.say(render.detail(session))
    return exits.OK


def main(
    argv: list[str] | None = None,
    *,
    connect: Connect = connect_cloudformation,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command and return its exit status (see `capture-bridge --help`)."""
    console = Console(out or sys.stdout, err or sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check(parser, args)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else exits.USAGE
    api: SessionsApi | None = None
    try:
        api = connect_api(args, console, connect)
        if args.command == "list":
            return run_list(api, args, console)
        if args.command == "show":
            return run_show(api, args, console, sleep, clock)
        if args.command == "create":
            return run_create(api, args, console)
        return run_cancel(api, args, console)
    except CliError as exc:
        console.note(f"error: {exc}")
        for line in exc.lines:
            console.note(f"  {line}")
        unsent = api is not None and isinstance(api.auth, NoAuth)
        if isinstance(exc, ApiError) and exc.status in (401, 403) and unsent:
            console.note(f"hint: no credentials were sent: set {TOKEN_ENV} or pass --iam")
        return exc.exit_code
    except KeyboardInterrupt:
        console.note("interrupted")
        return INTERRUPTED
