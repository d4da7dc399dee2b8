"""How the CLI finds and signs in to the API, and the exit statuses scripts rely on."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber

from capture_cli import client, exits
from capture_cli.main import TOKEN_ENV, URL_ENV
from tests.cli.api_double import Recorded, SessionsApiDouble
from tests.cli.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cb-secret-token-0123456789"
ACCESS_KEY = "AKIDEXAMPLECLI"
SECRET_KEY = "cli-test-secret-key"
SESSION_TOKEN = "cli-test-session-token"
REGION = "eu-west-1"
STACK = "capture-bridge-staging"
HELPDESK = "zendesk"
TICKET = "1001"
UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"
LIST = ("sessions", "list", "--helpdesk", HELPDESK, "--ticket", TICKET)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def assert_signed(request: Recorded, url: str, region: str) -> None:
    """The request carries a SigV4 signature that the AWS algorithm reproduces."""
    authorization = request.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert f"/{region}/execute-api/aws4_request" in authorization
    signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-amz-date" in signed_names and "host" in signed_names
    # Recompute the signature from what arrived, at the time it claims.
    replay = AWSRequest(
        method=request.method,
        url=url + request.raw_path,
        data=request.body,
        headers={name: request.headers[name] for name in signed_names},
    )
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), "execute-api", region)
    replay.context["timestamp"] = request.headers["x-amz-date"]
    canonical = signer.canonical_request(replay)
    expected = signer.signature(signer.string_to_sign(replay, canonical), replay)
    assert authorization.endswith(f"Signature={expected}")


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials in the environment, where the default chain finds them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


def stack_answering(outputs: dict[str, str]) -> Any:
    """A `connect` that gives a CloudFormation client answering for STACK with these outputs."""
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cloudformation)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": STACK,
                    "CreationTime": "2026-11-25T12:00:00Z",
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                }
            ]
        },
        {"StackName": STACK},
    )
    stubber.activate()
    return lambda region: (cloudformation, region or REGION)


# --- finding the API -----------------------------------------------------------------------


def test_the_url_comes_from_the_environment(
    api: SessionsApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the URL only in CAPTURE_BRIDGE_URL, when a command runs, then it reaches the API
    monkeypatch.setenv(URL_ENV, api.url + "/")
    assert run_cli(*LIST).code == exits.OK
    assert api.requests[0].path == "/sessions"


def test_no_url_at_all_is_a_usage_error() -> None:
    run = run_cli(*LIST)
    assert run.code == exits.USAGE
    assert "no API to talk to: pass --url URL" in run.err


def test_a_stack_with_iam_auth_is_found_and_signed(
    api: SessionsApiDouble, aws_credentials: None
) -> None:
    # given a stack whose outputs name the API and IAM auth
    connect = stack_answering({"SessionsApiUrl": api.url, "SessionsApiAuth": "iam"})

    # when a command names the stack
    run = run_cli(*LIST, "--stack", STACK, "--region", REGION, connect=connect)

    # then the request went to the output's URL, signed for the stack's region
    assert run.code == exits.OK
    assert_signed(api.requests[0], api.url, REGION)


def test_a_stack_with_token_auth_sends_the_bearer_token(
    api: SessionsApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a token-mode stack and the token in the environment
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    connect = stack_answering({"SessionsApiUrl": api.url, "SessionsApiAuth": "token"})

    # when a command names the stack, then the token is sent as a bearer token
    assert run_cli(*LIST, "--stack", STACK, connect=connect).code == exits.OK
    assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_stack_without_the_api_output_says_so() -> None:
    connect = stack_answering({"WebhookBaseUrl": "https://example.invalid/webhooks/"})
    run = run_cli(*LIST, "--stack", STACK, connect=connect)
    assert run.code == exits.USAGE
    assert f"stack {STACK} has no output SessionsApiUrl" in run.err


def test_an_unknown_stack_is_named() -> None:
    # given CloudFormation that does not know the stack
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cloudformation)
    stubber.add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist"
    )
    stubber.activate()

    # when a command names it, then the error says which stack and region
    run = run_cli(*LIST, "--stack", STACK, connect=lambda region: (cloudformation, REGION))
    assert run.code == exits.USAGE
    assert f"there is no stack {STACK} in {REGION}" in run.err


def test_cloudformation_refusing_is_unauthorized() -> None:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cloudformation)
    stubber.add_client_error("describe_stacks", "AccessDenied", "not allowed")
    stubber.activate()
    run = run_cli(*LIST, "--stack", STACK, connect=lambda region: (cloudformation, REGION))
    assert run.code == exits.UNAUTHORIZED


# --- authorization -------------------------------------------------------------------------


def test_the_token_is_sent_as_a_bearer_token_and_never_printed(api: SessionsApiDouble) -> None:
    # given an API that refuses the token and echoes it in its detail
    api.answer_next(401, {"detail": f"token {TOKEN} is not valid"})

    # when a command runs with --token
    run = run_cli(*LIST, "--url", api.url, "--token", TOKEN)

    # then the token was sent, the exit status is 5, and nothing printed contains it
    assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert run.code == exits.UNAUTHORIZED
    assert TOKEN not in run.out + run.err
    assert "token [token] is not valid (401)" in run.err


def test_the_token_from_the_environment_is_sent(
    api: SessionsApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    session = api.add()
    run = run_cli("sessions", "show", "--url", api.url, session["sessionId"], "--json")
    assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in run.out + run.err


def test_no_token_and_a_401_hints_at_credentials(api: SessionsApiDouble) -> None:
    # given an API that wants a token, when none is sent, then 5 and a hint
    api.answer_next(401, {"detail": "a bearer token is required"})
    run = run_cli(*LIST, "--url", api.url)
    assert "authorization" not in api.requests[0].headers
    assert run.code == exits.UNAUTHORIZED
    assert f"hint: no credentials were sent: set {TOKEN_ENV} or pass --iam" in run.err


def test_the_token_is_never_sent_over_plain_http_to_another_host() -> None:
    # when the URL is plain HTTP to a remote host, then nothing is sent and nothing leaks
    run = run_cli(*LIST, "--url", "http://api.example.com", "--token", TOKEN)
    assert run.code == exits.USAGE
    assert "refusing to send the token over plain HTTP to api.example.com" in run.err
    assert TOKEN not in run.err


def test_iam_signs_every_request_with_sigv4(api: SessionsApiDouble, aws_credentials: None) -> None:
    # given a session, when it is listed, shown and created with --iam
    session = api.add()
    iam = ("--url", api.url, "--iam", "--region", REGION)
    listed = run_cli(*LIST, *iam)
    shown = run_cli("sessions", "show", session["sessionId"], "--refresh", *iam)
    created = run_cli(
        "sessions", "create", *iam, "--helpdesk", HELPDESK, "--ticket", "2002",
        "--user-id", "user-7", "--description", "a / b + c & d",
    )  # fmt: skip

    # then each request carries a valid signature (query, path and body included)
    assert (listed.code, shown.code, created.code) == (exits.OK, exits.OK, exits.OK)
    for request in api.requests:
        assert request.headers["x-amz-date"]
        assert request.headers["x-amz-security-token"] == SESSION_TOKEN
        assert_signed(request, api.url, REGION)


def test_iam_takes_the_region_from_an_execute_api_url() -> None:
    url = "https://abc123.execute-api.ap-southeast-2.amazonaws.com"
    assert client.region_of_url(url) == "ap-southeast-2"
    assert client.region_of_url("http://127.0.0.1:3000") is None


def test_iam_without_credentials_is_unauthorized(
    api: SessionsApiDouble, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given no credentials anywhere
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    # when a command signs, then it says so plainly, with nothing sent
    run = run_cli(*LIST, "--url", api.url, "--iam", "--region", REGION)
    assert run.code == exits.UNAUTHORIZED
    assert "no AWS credentials to sign with" in run.err
    assert api.requests == []


def test_iam_forbidden_by_api_gateway_is_unauthorized(
    api: SessionsApiDouble, aws_credentials: None
) -> None:
    # given API Gateway refusing the signature (its own answer, `message`, not the function's)
    api.gateway_answers_next(403, {"message": "Forbidden"})
    run = run_cli(*LIST, "--url", api.url, "--iam", "--region", REGION)
    assert run.code == exits.UNAUTHORIZED
    assert "Forbidden (403)" in run.err


# --- failures and their exit statuses ------------------------------------------------------


def test_a_refused_connection_is_unavailable_with_a_plain_message() -> None:
    # given nothing listening, when a command runs
    url = f"http://127.0.0.1:{free_port()}"
    run = run_cli(*LIST, "--url", url, "--token", TOKEN)

    # then 7, one plain line without a traceback, and no token
    assert run.code == exits.UNAVAILABLE
    assert run.err == f"error: cannot reach the API at {url}: connection refused " + (
        "(is the API running, and is the URL right?)\n"
    )
    assert TOKEN not in run.err


def test_a_slow_api_times_out_as_unavailable(
    api: SessionsApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an answer slower than the read timeout
    monkeypatch.setattr(client, "READ_TIMEOUT_SECONDS", 0.2)
    api.answer_next(200, {"sessions": [], "nextCursor": None}, delay=1.0)
    run = run_cli(*LIST, "--url", api.url)
    assert run.code == exits.UNAVAILABLE
    assert "no answer within 0.2 seconds" in run.err


def test_a_server_error_is_unavailable(api: SessionsApiDouble) -> None:
    api.answer_next(503, {"detail": "the session store cannot be reached"})
    run = run_cli(*LIST, "--url", api.url)
    assert run.code == exits.UNAVAILABLE
    assert "error: the session store cannot be reached (503)" in run.err


def test_a_create_that_cannot_reach_the_api_prints_the_key_to_retry_with() -> None:
    run = run_cli(
        "sessions", "create", "--url", f"http://127.0.0.1:{free_port()}",
        "--helpdesk", HELPDESK, "--ticket", TICKET, "--user-id", "u-1",
    )  # fmt: skip
    assert run.code == exits.UNAVAILABLE
    assert "retry safely with --idempotency-key" in run.err


@pytest.mark.parametrize(
    "argv",
    [
        ("sessions", "list"),
        ("sessions", "list", "--helpdesk", HELPDESK),
        ("sessions", "list", "--status", "failed", "--ticket", TICKET),
        ("sessions", "list", "--status", "bogus"),
        ("sessions", "list", "--helpdesk", HELPDESK, "--ticket", TICKET, "--since", "2026-01-01"),
        ("sessions", "list", "--status", "failed", "--limit", "0"),
        ("sessions", "list", "--status", "failed", "--limit", "101"),
        ("sessions", "list", "--status", "failed", "--all", "--cursor", "c"),
        ("sessions", "show"),
        ("sessions", "show", UNKNOWN_ID, "--interval", "1"),
        ("sessions", "show", UNKNOWN_ID, "--watch", "--timeout", "0"),
        ("sessions", "create", "--ticket", TICKET),
        ("sessions", "create", "--helpdesk", HELPDESK, "--ticket", TICKET, "--user-id", "a",
         "--user-email", "a@example.com"),
        ("sessions", "cancel", UNKNOWN_ID, "--url", "http://x", "--stack", STACK),
        ("sessions", "cancel", UNKNOWN_ID, "--token", TOKEN, "--iam"),
        ("sessions", "cancel", UNKNOWN_ID, "--url", "ftp://127.0.0.1"),
        ("sessions", "frobnicate"),
        (),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    # when the command line is wrong, then argparse (or the CLI) says so with status 2
    run = run_cli(*argv)
    assert run.code == exits.USAGE
    assert TOKEN not in run.err + capsys.readouterr().err


def test_an_answer_that_is_not_json_is_unavailable(api: SessionsApiDouble) -> None:
    # given a URL that answers, but not as the API does (a stray web page)
    api.gateway_answers_next(200, b"<html>hello</html>")

    # when a command runs, then 7 and a hint that the URL may be wrong
    run = run_cli("sessions", "show", "--url", api.url, UNKNOWN_ID)
    assert run.code == exits.UNAVAILABLE
    assert "answered 200 without JSON: is the URL the sessions API's?" in run.err


def test_every_http_error_status_has_its_exit_status() -> None:
    expected = {400: 6, 401: 5, 403: 5, 404: 3, 405: 6, 409: 4, 413: 6, 500: 7, 502: 7, 503: 7}
    assert {status: exits.for_status(status) for status in expected} == expected


# --- help and installation -----------------------------------------------------------------


def test_help_lists_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ((), ("sessions",), ("sessions", "show")):
        assert run_cli(*argv, "--help").code == exits.OK
        out = capsys.readouterr().out
        assert "exit status:" in out
        for code in range(9):
            assert f"\n  {code}  " in out


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "capture_cli", "sessions", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == exits.OK
    assert "{list,show,create,cancel}" in result.stdout


def test_the_console_script_is_declared_and_only_the_cli_is_installed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"capture-bridge": "capture_cli.main:main"}
    assert project["tool"]["setuptools"]["packages"] == ["capture_cli"]
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"


def test_the_installed_console_script_runs() -> None:
    # given the environment `make` created (skipped where the project is not installed)
    script = Path(sys.executable).parent / "capture-bridge"
    if not script.exists():
        pytest.skip("the project is not installed in this environment (run make)")

    # when it runs from outside the repository, then it works: it needs nothing from the tree
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [str(script), "sessions", "list", "--help"],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == exits.OK
    assert "--helpdesk" in result.stdout


# --- regions and CloudFormation's own failures ---------------------------------------------


def test_iam_signs_for_the_configured_region_by_default(
    api: SessionsApiDouble, aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert run_cli(*LIST, "--url", api.url, "--iam").code == exits.OK
    assert_signed(api.requests[0], api.url, REGION)


def test_iam_without_any_region_is_a_usage_error(
    api: SessionsApiDouble, aws_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    run = run_cli(*LIST, "--url", api.url, "--iam")
    assert run.code == exits.USAGE
    assert "no AWS region to sign for" in run.err


def test_a_token_given_for_an_iam_stack_is_ignored_out_loud(
    api: SessionsApiDouble, aws_credentials: None
) -> None:
    # given an IAM stack, when a token is passed as well
    connect = stack_answering({"SessionsApiUrl": api.url, "SessionsApiAuth": "IAM"})
    run = run_cli(*LIST, "--stack", STACK, "--token", TOKEN, connect=connect)

    # then the request is signed, the token neither sent nor printed, and the user told
    assert run.code == exits.OK
    assert_signed(api.requests[0], api.url, REGION)
    assert "warning: --token is ignored" in run.err
    assert TOKEN not in run.err


class _FailingCloudFormation:
    """A CloudFormation client whose call fails before any answer."""

    def __init__(self, error: Exception):
        self.error = error

    def describe_stacks(self, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            NoCredentialsError(),
            exits.UNAUTHORIZED,
            "no AWS credentials to read the stack",
        ),
        (
            EndpointConnectionError(endpoint_url="https://cloudformation.eu-west-1.amazonaws.com"),
            exits.UNAVAILABLE,
            "could not reach CloudFormation",
        ),
    ],
)
def test_cloudformation_failures_have_their_exit_status(
    error: Exception, code: int, message: str
) -> None:
    failing = _FailingCloudFormation(error)
    run = run_cli(*LIST, "--stack", STACK, connect=lambda region: (failing, REGION))
    assert run.code == code
    assert message in run.err


def test_cloudformation_is_reached_in_the_named_or_configured_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from capture_cli.stack import connect_cloudformation

    # given a named region, then its client; given none anywhere, then a usage error
    cloudformation, region = connect_cloudformation(REGION)
    assert (region, cloudformation.meta.region_name) == (REGION, REGION)
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    run = run_cli(*LIST, "--stack", STACK)
    assert run.code == exits.USAGE
    assert "no AWS region: pass --region" in run.err
