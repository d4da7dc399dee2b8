"""`ops doctor` against a stack in moto whose integrations are the HTTP simulators."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from capture_bridge.helpdesks import supported_helpdesks
from local_runner.simulators import BugpilotSimulator, ZendeskSimulator
from ops.doctor import run_doctor
from ops.stack import OpsError
from tests.ops.conftest import Deployed, base_environment

ZENDESK_EMAIL = "agent@example.com"
ZENDESK_TOKEN = "zd-token-doctor-3f9a"
WEBHOOK_SECRET = "hook-secret-doctor-77"
BUGPILOT_KEY = "ws-key-doctor-12ab"
WORKSPACE = "ws-doctor"


@pytest.fixture
def zendesk() -> Iterator[ZendeskSimulator]:
    with ZendeskSimulator(email=ZENDESK_EMAIL, api_token=ZENDESK_TOKEN) as simulator:
        yield simulator


@pytest.fixture
def bugpilot() -> Iterator[BugpilotSimulator]:
    with BugpilotSimulator(workspace_id=WORKSPACE, api_key=BUGPILOT_KEY) as simulator:
        yield simulator


def configure(deployed: Deployed, zendesk_url: str, bugpilot_url: str, **overrides: str) -> None:
    """Both functions pointed at the simulators; the secret holding every required key."""
    environment = {
        **base_environment(deployed.secret_arn),
        "ZENDESK_API_URL": zendesk_url,
        "BUGPILOT_API_URL": bugpilot_url,
        **overrides,
    }
    for logical_id in ("WebhookFunction", "ResolverFunction"):
        deployed.set_environment(logical_id, environment)
    deployed.put_secret(
        {
            "ZENDESK_EMAIL": ZENDESK_EMAIL,
            "ZENDESK_API_TOKEN": ZENDESK_TOKEN,
            "ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "BUGPILOT_WORKSPACE_ID": WORKSPACE,
            "BUGPILOT_API_KEY": BUGPILOT_KEY,
        }
    )


def doctor(deployed: Deployed, status: str = "UPDATE_COMPLETE") -> int:
    stubber = deployed.stub_stack(status)
    code = run_doctor(deployed.aws, deployed.stack.name)
    stubber.assert_no_pending_responses()
    return code


def assert_no_secret_shown(text: str) -> None:
    for value in (ZENDESK_TOKEN, WEBHOOK_SECRET, BUGPILOT_KEY):
        assert value not in text


def test_all_good_exits_zero(
    deployed: Deployed,
    zendesk: ZendeskSimulator,
    bugpilot: BugpilotSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a stack whose settings, secret and credentials are all right
    configure(deployed, zendesk.url, bugpilot.url)

    # when the doctor runs
    code = doctor(deployed)

    # then it finds nothing wrong, probed Zendesk once, and showed no secret
    out = capsys.readouterr().out
    assert code == 0, out
    assert "No problems found." in out
    assert "zendesk: ok (signed in as admin" in out
    assert "bugpilot: reachable, credentials not verifiable" in out
    assert "lambdatest: not configured" in out
    assert len(zendesk.requests("me")) == 1
    assert_no_secret_shown(out)


def test_a_missing_key_is_reported(
    deployed: Deployed,
    zendesk: ZendeskSimulator,
    bugpilot: BugpilotSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a secret without the webhook signing secret
    configure(deployed, zendesk.url, bugpilot.url)
    values = deployed.secret()
    del values["ZENDESK_WEBHOOK_SECRET"]
    deployed.put_secret(values)

    # when the doctor runs
    code = doctor(deployed)

    # then it names the key and what it breaks
    out = capsys.readouterr().out
    assert code == 1
    assert "PROBLEM  zendesk: ZENDESK_WEBHOOK_SECRET is missing, so every webhook is refused" in out
    assert_no_secret_shown(out)


def test_a_stack_without_any_helpdesk_is_a_problem(
    deployed: Deployed,
    zendesk: ZendeskSimulator,
    bugpilot: BugpilotSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a secret with Bugpilot's keys but no helpdesk's
    configure(deployed, zendesk.url, bugpilot.url)
    deployed.put_secret(
        {key: value for key, value in deployed.secret().items() if "ZENDESK" not in key}
    )

    # when the doctor runs
    code = doctor(deployed)

    # then no single helpdesk is blamed, but the missing choice is a problem naming them all
    out = capsys.readouterr().out
    assert code == 1
    assert "PROBLEM  no helpdesk is configured" in out
    assert all(name in out for name in supported_helpdesks())
    assert "PROBLEM  zendesk" not in out


def test_rejected_credentials_are_reported(
    deployed: Deployed,
    zendesk: ZendeskSimulator,
    bugpilot: BugpilotSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a Zendesk that no longer accepts the stored token (it answers 401)
    configure(deployed, zendesk.url, bugpilot.url)
    zendesk.api_token = "rotated-elsewhere"

    # when the doctor runs
    code = doctor(deployed)

    # then the rejection is a problem
    out = capsys.readouterr().out
    assert code == 1
    assert "PROBLEM  zendesk: credentials rejected (Zendesk refused the stored credentials" in out
    assert_no_secret_shown(out)


def test_an_unreachable_api_is_reported(
    deployed: Deployed,
    bugpilot: BugpilotSimulator,
    closed_port: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given Zendesk's URL pointing at a port nothing listens on
    configure(deployed, f"http://127.0.0.1:{closed_port}", bugpilot.url)

    # when the doctor runs, then Zendesk is reported unreachable
    code = doctor(deployed)
    out = capsys.readouterr().out
    assert code == 1
    assert "PROBLEM  zendesk: unreachable" in out


def test_an_invalid_setting_is_reported(
    deployed: Deployed,
    zendesk: ZendeskSimulator,
    bugpilot: BugpilotSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a function environment with a setting outside its allowed values
    configure(deployed, zendesk.url, bugpilot.url, CAPTURE_MAX_WAIT_MINUTES="0")

    # when the doctor runs, then it names the setting, in the layer's own words
    code = doctor(deployed)
    out = capsys.readouterr().out
    assert code == 1
    assert "ResolverFunction: invalid setting: CAPTURE_MAX_WAIT_MINUTES must be between" in out
    assert "access not probed" in out


def test_an_empty_secret_and_a_rolled_back_stack_are_reported(
    deployed: Deployed,
    zendesk: ZendeskSimulator,
    bugpilot: BugpilotSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given the secret as the stack creates it (no value) after a failed update
    for logical_id in ("WebhookFunction", "ResolverFunction"):
        deployed.set_environment(
            logical_id,
            {**base_environment(deployed.secret_arn), "ZENDESK_API_URL": zendesk.url},
        )

    # when the doctor runs
    code = doctor(deployed, status="UPDATE_ROLLBACK_COMPLETE")

    # then both are problems, and the required integrations are named
    out = capsys.readouterr().out
    assert code == 1
    assert "the last update failed and was rolled back" in out
    assert "secret: it has no value yet" in out
    assert "bugpilot: BUGPILOT_API_KEY is missing" in out


def test_a_stack_in_progress_stops_early(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a stack being updated, when the doctor runs, then it asks to come back later
    code = doctor(deployed, status="UPDATE_IN_PROGRESS")
    out = capsys.readouterr().out
    assert code == 1
    assert "run the doctor again once it has finished" in out


def test_a_missing_stack_is_explained(deployed: Deployed) -> None:
    # given no such stack
    from botocore.stub import Stubber

    stubber = Stubber(deployed.aws.cloudformation)
    stubber.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message="Stack with id capture-bridge does not exist",
    )
    stubber.activate()

    # when the doctor runs, then the error says what to do
    with pytest.raises(OpsError, match="There is no stack capture-bridge in us-east-1"):
        run_doctor(deployed.aws, "capture-bridge")


@pytest.mark.parametrize(
    ("mode", "token", "finding"),
    [
        ("token", "", "PROBLEM  sessions API: SessionsApiAuth is token but SESSIONS_API_TOKEN"),
        ("token", "api-token-doctor-5c1e", "ok       sessions API: guarded by the bearer token"),
        ("iam", "", "ok       sessions API: guarded by AWS IAM"),
    ],
)
def test_the_sessions_apis_guard_is_checked(
    deployed: Deployed,
    zendesk: ZendeskSimulator,
    bugpilot: BugpilotSimulator,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    token: str,
    finding: str,
) -> None:
    # given a stack whose sessions API is guarded by `mode`, with or without a token stored
    configure(deployed, zendesk.url, bugpilot.url)
    deployed.stack = replace(
        deployed.stack, outputs={**deployed.stack.outputs, "SessionsApiAuth": mode}
    )
    if token:
        deployed.put_secret({**deployed.secret(), "SESSIONS_API_TOKEN": token})

    # when the doctor runs
    code = doctor(deployed)

    # then it says whether callers can get in, and never shows the token
    out = capsys.readouterr().out
    assert finding in out
    assert code == (1 if finding.startswith("PROBLEM") else 0), out
    if token:
        assert token not in out
