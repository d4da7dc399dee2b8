"""Command line: ``.venv/bin/python -m local_runner serve | demo | panel | sign-event`` (or the
make targets ``make dev``, ``make demo`` and ``make panel``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from local_runner.logs import make_handler_logs_readable
from local_runner.preflight import credential_gaps
from local_runner.runner import DEFAULT_TEMPLATE, LocalRunner
from local_runner.template import TemplateError

if TYPE_CHECKING:
    from local_runner.zaf import ZafStandin

# The interpreter a printed command names: the project's `.venv` (which `make` creates), since a
# bare `python` on a clean machine lacks the runner's dependencies.
PYTHON = ".venv/bin/python"


def _default_template() -> Path:
    """``template.yaml`` in the current directory, else the repository's."""
    here = Path("template.yaml")
    return here if here.is_file() else DEFAULT_TEMPLATE


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m local_runner",
        description="Run the SAM application locally, without Docker or an AWS account.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="serve the HTTP API and run the schedules until Ctrl-C"
    )
    serve.add_argument("--port", type=int, default=3000, help="HTTP port (default: 3000)")
    serve.add_argument(
        "--schedule-interval",
        type=_positive_float,
        metavar="SECONDS",
        help="run scheduled functions this often instead of the template's rate()",
    )
    serve.add_argument(
        "--no-schedules",
        action="store_true",
        help="do not run scheduled functions, nor poll queues for their SQS events",
    )
    serve.add_argument(
        "--env-file",
        type=Path,
        help="KEY=VALUE file with settings and secrets (default: .env if it exists)",
    )
    serve.add_argument("--template", type=Path, default=None, help="SAM template to run")
    serve.add_argument(
        "--panel-port",
        type=int,
        default=3001,
        help="port of the Zendesk sidebar app's page, on a stand-in ZAF client (default: 3001)",
    )
    serve.add_argument("--no-panel", action="store_true", help="do not serve the sidebar app")
    serve.add_argument(
        "--panel-ticket", type=int, default=1001, help="the panel's ticket id (default: 1001)"
    )
    serve.add_argument(
        "--panel-user-id",
        default="user-42",
        help="the ticket requester's external id (default: user-42; '' for none)",
    )
    serve.add_argument(
        "--panel-email",
        default="ada@example.com",
        help="the ticket requester's email (default: ada@example.com; '' for none)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    demo = commands.add_parser(
        "demo", help="run the whole flow against local capture-source and helpdesk simulators"
    )
    demo.add_argument("-v", "--verbose", action="store_true", help="show the handlers' logs")
    demo.add_argument(
        "--helpdesk",
        default="zendesk",
        metavar="NAME",
        help="the helpdesk whose simulator asks for the captures and receives the notes",
    )

    panel = commands.add_parser(
        "panel",
        help="serve the Zendesk sidebar app on the demo's simulators (no account) until Ctrl-C",
    )
    panel.add_argument(
        "--panel-port", type=int, default=3001, help="the panel's port (default: 3001)"
    )
    panel.add_argument("--port", type=int, default=0, help="the local API's port (default: any)")
    panel.add_argument(
        "--complete-after",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="the simulated user sends each report this long after it is asked for (default: 5)",
    )
    panel.add_argument("-v", "--verbose", action="store_true", help="show the handlers' logs")

    sign = commands.add_parser(
        "sign-event",
        help="print a webhook event from events/ signed now (for `sam local invoke -e`)",
    )
    sign.add_argument(
        "event", type=Path, help="API Gateway v2 event file, e.g. events/webhook_zendesk.json"
    )
    sign.add_argument(
        "--helpdesk",
        metavar="NAME",
        help="the helpdesk whose scheme signs the event (default: the event's own {helpdesk})",
    )
    sign.add_argument(
        "--env-file",
        type=Path,
        help="where the helpdesk's webhook secret is, when not in the environment (default: .env)",
    )
    sign.add_argument(
        "--curl",
        metavar="URL",
        help="print a ready-to-paste curl command sending it to the local API at URL instead",
    )
    sign.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)

    sam_env = commands.add_parser(
        "sam-env",
        help="write env.json for `sam local invoke --env-vars` and create its table",
    )
    sam_env.add_argument(
        "--endpoint",
        metavar="URL",
        help="DynamoDB as this machine reaches it (default: $AWS_ENDPOINT_URL_DYNAMODB, "
        "else http://127.0.0.1:8000, DynamoDB Local's port)",
    )
    sam_env.add_argument(
        "--container-endpoint",
        metavar="URL",
        help="DynamoDB as the function's container reaches it (default: the endpoint, with "
        "127.0.0.1/localhost as host.docker.internal)",
    )
    sam_env.add_argument(
        "--env-file", type=Path, help="settings and keys (default: .env if it exists)"
    )
    sam_env.add_argument("--out", type=Path, default=Path("env.json"), help="default: env.json")
    sam_env.add_argument("--template", type=Path, default=None, help="SAM template")
    sam_env.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    return parser


def _sam_env(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from local_runner.dynamodb import ENDPOINT_VARIABLE, aws_defaults
    from local_runner.sam_env import DEFAULT_ENDPOINT, local_values, write_sam_env
    from local_runner.template import load_template

    endpoint = args.endpoint or os.environ.get(ENDPOINT_VARIABLE) or DEFAULT_ENDPOINT
    # DynamoDB Local and moto take any credentials; boto3 only needs some, and a region.
    for key, value in aws_defaults(os.environ).items():
        os.environ.setdefault(key, value)
    try:
        template = load_template(args.template or _default_template())
        values = local_values(args.env_file or Path(".env"))
        tables = write_sam_env(template, values, endpoint, args.out, args.container_endpoint)
    except (OSError, TemplateError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(
            f"error: no DynamoDB answered at {endpoint} ({error}). Start one, e.g. "
            "`docker run --rm -p 8000:8000 amazon/dynamodb-local`, or pass --endpoint URL.",
            file=sys.stderr,
        )
        return 1
    print(f"{args.out}: written (it holds your keys: keep it out of git, as .gitignore does)")
    for table_id, name in tables.items():
        print(f"table {name} ({table_id}) ready at {endpoint}")
    return 0


def _sign_event(args: argparse.Namespace) -> int:
    import json
    import os

    from capture_bridge.errors import SecretNotConfigured, UnknownHelpdesk
    from local_runner.events import curl_command, event_helpdesk, signed_event
    from local_runner.runner import load_env_file

    env_file: Path = args.env_file or Path(".env")
    # The environment wins over the file, as it does for the bridge itself.
    values = (load_env_file(env_file) if env_file.is_file() else {}) | {
        key: value for key, value in os.environ.items() if value
    }
    try:
        event = json.loads(args.event.read_text())
    except (OSError, ValueError) as error:
        print(f"error: cannot read {args.event}: {error}", file=sys.stderr)
        return 2
    helpdesk = args.helpdesk or event_helpdesk(event)
    if not helpdesk:
        print("error: name the helpdesk with --helpdesk NAME", file=sys.stderr)
        return 2
    try:
        signed = signed_event(event, values, helpdesk=helpdesk)
    except UnknownHelpdesk as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SecretNotConfigured as error:
        print(f"error: {error} (environment or {env_file})", file=sys.stderr)
        return 2
    print(curl_command(signed, args.curl) if args.curl else json.dumps(signed, indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    env_file: Path | None = args.env_file
    if env_file is None and Path(".env").is_file():
        env_file = Path(".env")
    elif env_file is not None and not env_file.is_file():
        print(f"error: env file {env_file} not found", file=sys.stderr)
        return 2
    # Metrics are JSON lines for CloudWatch to read; in a terminal they bury the logs. Set
    # POWERTOOLS_METRICS_DISABLED=false to see them.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    try:
        runner = LocalRunner(
            args.template or _default_template(),
            port=args.port,
            schedule_interval=args.schedule_interval,
            env_file=env_file,
            start_schedules=not args.no_schedules,
        )
    except (OSError, TemplateError) as error:
        print(f"error: cannot load the template: {error}", file=sys.stderr)
        return 2

    stopped = _stop_on_signals()
    try:
        runner.start()
    except OSError as error:
        print(f"error: cannot start: {error}", file=sys.stderr)
        return 1
    log = logging.getLogger("local_runner")
    make_handler_logs_readable()
    if env_file:
        log.info("settings from %s and the environment", env_file)
    for gap in credential_gaps(os.environ):
        (log.warning if gap.needed else log.info)("%s", gap)
    if runner.dynamodb_endpoint:
        log.info(
            "DynamoDB at %s (tables: %s)",
            runner.dynamodb_endpoint,
            ", ".join(name for names in runner.table_names.values() for name in names),
        )
    for route, function in runner.template.routes:
        log.info("route %s -> %s", route.route_key, function.logical_id)
    panel = None if args.no_panel else _start_panel(args, runner.url, log)
    log.info("listening on %s (Ctrl-C to stop)", runner.url)
    for command in sample_commands(runner.url, os.environ):
        log.info("%s", command)
    try:
        while not stopped.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping")
        if panel is not None:
            panel.stop()
        runner.stop()
    return 0


def _stop_on_signals() -> threading.Event:
    """An event that Ctrl-C or SIGTERM sets.

    Ctrl-C and SIGTERM (systemd, CI, kill) both stop cleanly via the event, rather than by an
    exception raised wherever the main thread happens to be.
    """
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stopped


def _start_panel(args: argparse.Namespace, api_url: str, log: logging.Logger) -> ZafStandin | None:
    """The Zendesk sidebar app on the stand-in ZAF client, against this local API.

    Its token setting is SESSIONS_API_TOKEN, which the stand-in's proxy fills in server-side,
    as Zendesk does: the page never sees it. A busy port only costs the panel, not the API.
    """
    from local_runner.zaf import Ticket, ZafStandin
    from ops.app import manifest_for

    token = os.environ.get("SESSIONS_API_TOKEN", "")
    standin = ZafStandin(
        settings={"api_url": api_url, "api_token": token},
        manifest=manifest_for(api_url),
        ticket=Ticket(args.panel_ticket, args.panel_email or None, args.panel_user_id or None),
        port=args.panel_port,
    )
    try:
        standin.start()
    except OSError as error:
        log.warning("sidebar app not served (port %s: %s); --panel-port N", args.panel_port, error)
        return None
    requester = " / ".join(filter(None, [args.panel_user_id, args.panel_email])) or "none"
    log.info(
        "sidebar app: %s (ticket %s, requester %s; a stand-in ZAF client)",
        standin.panel_url,
        args.panel_ticket,
        requester,
    )
    if not token:
        log.warning("sidebar app: set SESSIONS_API_TOKEN in .env, or the API refuses its calls")
    return standin


def sample_commands(url: str, values: Mapping[str, str]) -> list[str]:
    """For each helpdesk whose webhook secret is set: how to send its sample event, signed now.

    The command signs at the moment it runs (a signature printed at start-up would be stale
    minutes later) and pipes the `curl` it prints to the shell.
    """
    # Imported here: the runner has put the layer on sys.path by now.
    from capture_bridge.helpdesks import helpdesk_specs

    commands = []
    for spec in helpdesk_specs():
        name = spec.name
        event = DEFAULT_TEMPLATE.parent / "events" / f"webhook_{name}.json"
        if event.is_file() and values.get(spec.webhook_secret_key, "").strip():
            commands.append(
                f"try {name}: {PYTHON} -m local_runner sign-event events/{event.name} "
                f"--curl {url} | sh"
            )
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    # The root logger stays at WARNING as in Lambda (boto3 is chatty at INFO); the runner's own
    # one-line-per-request log is at INFO.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("local_runner").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.command == "serve":
        return _serve(args)
    if args.command == "sign-event":
        sys.path.insert(0, str(DEFAULT_TEMPLATE.parent / "layers" / "bridge"))
        return _sign_event(args)
    if args.command == "sam-env":
        # The secret's keys come from the specs, in the layer.
        sys.path.insert(0, str(DEFAULT_TEMPLATE.parent / "layers" / "bridge"))
        return _sam_env(args)
    if args.command == "panel":
        from local_runner.panel import run_panel  # imported late: it needs the simulators

        return run_panel(
            _stop_on_signals(),
            port=args.port,
            panel_port=args.panel_port,
            auto_complete_seconds=args.complete_after,
            verbose=args.verbose,
        )
    from local_runner.demo import run_demo  # imported late: it needs the simulators

    return run_demo(verbose=args.verbose, helpdesk=args.helpdesk)


if __name__ == "__main__":
    sys.exit(main())
