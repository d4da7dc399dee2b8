"""The command line: `python -m ops {secret,doctor,redrive,preflight,app} --help`."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ops.stack import Aws, OpsError, aws_problem, describe_stack

Connect = Callable[[str | None], Aws]


def parser() -> argparse.ArgumentParser:
    """The commands and their flags."""
    root = argparse.ArgumentParser(
        prog=".venv/bin/python -m ops", description="Operate a deployed capture bridge stack."
    )
    commands = root.add_subparsers(dest="command", required=True)

    def with_stack(name: str, text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--stack", required=True, help="CloudFormation stack name")
        command.add_argument("--region", help="AWS region (default: your AWS configuration's)")
        return command

    secret = with_stack("secret", "Set, keep or remove keys of the stack's secret (merging).")
    secret.add_argument(
        "--set",
        dest="set_keys",
        action="append",
        default=[],
        metavar="KEY",
        help="set KEY to a value read from stdin (one line per --set, in order); repeatable",
    )
    secret.add_argument(
        "--unset",
        dest="unset_keys",
        action="append",
        default=[],
        metavar="KEY",
        help="remove KEY from the secret; repeatable",
    )
    with_stack("doctor", "Check the deployed stack and say what is wrong (exit 1 if anything).")
    redrive = with_stack(
        "redrive", "List the resolver's dead letters, run it once, delete them if it worked."
    )
    redrive.add_argument("--dry-run", action="store_true", help="only list; change nothing")
    redrive.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    preflight = commands.add_parser(
        "preflight", help="Check what `sam build` and `sam deploy` need, offline."
    )
    preflight.add_argument("--env", default="default", help="samconfig.toml config env")
    preflight.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    preflight.add_argument(
        "--build", action="store_true", help="check only what `sam build` needs (python3.13)"
    )
    app = commands.add_parser(
        "app",
        help="Package the Zendesk sidebar app for a stack's sessions API (into dist/).",
        description="Package the Zendesk sidebar app for a stack's sessions API (into dist/).",
    )
    app.add_argument("--api-url", help="the sessions API's base URL (else the stack's output)")
    app.add_argument("--stack", help="read the URL from this stack's SessionsApiUrl output")
    app.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    return root


def main(argv: list[str] | None = None, connect: Connect = Aws.connect) -> int:
    """Run one command; problems are printed in plain words, with exit status 1 (2: usage)."""
    args = parser().parse_args(argv)
    try:
        if args.command == "preflight":
            from ops.preflight import run_preflight

            return run_preflight(args.env, args.region, build_only=args.build)
        if args.command == "app":
            from ops.app import API_URL_OUTPUT, run_app

            api_url = args.api_url
            if not api_url:
                if not args.stack:
                    raise OpsError("give the sessions API's URL (API_URL=…) or a stack (--stack)")
                api_url = describe_stack(connect(args.region), args.stack).output(API_URL_OUTPUT)
            return run_app(api_url)
        aws = connect(args.region)
        if args.command == "doctor":
            from ops.doctor import run_doctor

            return run_doctor(aws, args.stack)
        stack = describe_stack(aws, args.stack)
        if args.command == "secret":
            from ops.secret import run_secret

            return run_secret(
                aws,
                stack,
                set_keys=args.set_keys,
                unset_keys=args.unset_keys,
                stdin=sys.stdin,
                prompt=getpass.getpass,
            )
        from ops.redrive import run_redrive

        return run_redrive(aws, stack, dry_run=args.dry_run, yes=args.yes, confirm=input)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except NoCredentialsError:
        print(
            "error: no AWS credentials: run `aws configure` or `aws sso login`, or set AWS_PROFILE",
            file=sys.stderr,
        )
    except (ClientError, BotoCoreError) as exc:
        print(f"error: AWS said {aws_problem(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted; nothing more was changed", file=sys.stderr)
    return 1
