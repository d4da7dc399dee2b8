"""`ops doctor`: what is wrong with a deployed stack, in plain words; exit 1 when anything is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from capture_bridge.access import Access, AccessCheck
from capture_bridge.capture import DEFAULT_PROVIDER, CallBudget, provider_specs
from capture_bridge.errors import ConfigurationError
from capture_bridge.helpdesks import helpdesk_specs, supported_helpdesks
from capture_bridge.http import HttpClient
from capture_bridge.settings import Settings, settings_from
from ops.secret import known_keys, read_secret
from ops.stack import (
    RESOLVER_FUNCTION,
    SECRET_OUTPUT,
    Aws,
    OpsError,
    Stack,
    aws_problem,
    describe_stack,
)

# A stack in one of these runs the template it was last deployed with.
HEALTHY = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
# Still running the previous version after a failed update: it works, but not as deployed.
ROLLED_BACK = frozenset({"UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"})
# How the stack guards its sessions API (absent on stacks deployed before it existed).
SESSIONS_AUTH_OUTPUT = "SessionsApiAuth"
SESSIONS_TOKEN_KEY = "SESSIONS_API_TOKEN"  # noqa: S105 - a key name, not a secret


@dataclass
class Report:
    """Findings in order; `problems` counts what the operator must fix."""

    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def ok(self, text: str) -> None:
        self.lines.append(f"  ok       {text}")

    def note(self, text: str) -> None:
        self.lines.append(f"  note     {text}")

    def problem(self, text: str) -> None:
        self.problems += 1
        self.lines.append(f"  PROBLEM  {text}")


def required_integrations() -> frozenset[str]:
    """The integration the bridge cannot work without: the default capture source.

    Helpdesks are alternatives: `check_keys` asks for one of them.
    """
    return frozenset({DEFAULT_PROVIDER})


def webhook_secret_keys() -> frozenset[str]:
    """The key each helpdesk checks its webhooks against (its spec's `webhook_secret_key`)."""
    return frozenset(spec.webhook_secret_key for spec in helpdesk_specs())


def check_status(stack: Stack, report: Report) -> bool:
    """The stack's status; False when nothing else is worth checking."""
    if stack.status in HEALTHY:
        report.ok(f"stack status {stack.status}")
        return True
    if stack.status in ROLLED_BACK:
        report.problem(
            f"stack status {stack.status}: the last update failed and was rolled back, so the "
            "stack runs the version before it (see the stack's events in the console)"
        )
        return True
    if stack.status.endswith("_IN_PROGRESS"):
        report.problem(f"stack status {stack.status}: run the doctor again once it has finished")
        return False
    report.problem(
        f"stack status {stack.status}: the stack is not usable; see its events in the "
        "CloudFormation console, fix the cause and deploy again"
    )
    return False


def function_environment(aws: Aws, name: str) -> dict[str, str]:
    """The function's environment variables as deployed."""
    try:
        configuration = aws.lambda_.get_function_configuration(FunctionName=name)
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"Could not read function {name}: {aws_problem(exc)}") from None
    variables = configuration.get("Environment", {}).get("Variables", {})
    return {str(key): str(value) for key, value in variables.items()}


def check_secret(aws: Aws, stack: Stack, report: Report) -> dict[str, str]:
    """The secret's keys (as the functions read them); problems when it cannot be used."""
    try:
        values, version = read_secret(aws, stack.output(SECRET_OUTPUT))
    except OpsError as exc:
        report.problem(f"secret: {exc}")
        return {}
    if version is None:
        report.problem("secret: it has no value yet, so nothing is configured (run `make secret`)")
    else:
        report.ok(f"secret holds a JSON object with {len(values)} keys")
    # The functions drop empty values and non-setting names the same way (settings._read_secret).
    return {key: str(value) for key, value in values.items() if value not in (None, "")}


def check_settings(
    function: str, environment: Mapping[str, str], secret: Mapping[str, str], report: Report
) -> Settings | None:
    """Parse the function's settings with the layer's own rules; None when they are invalid."""
    # As in settings.get_settings: the environment wins over the secret; empty values do not count.
    values = {**secret, **{key: value for key, value in environment.items() if value != ""}}
    try:
        settings = settings_from(values)
        http = HttpClient(pool_size=1)
        for helpdesk in helpdesk_specs():
            helpdesk.adapter(settings, http)
        for provider in provider_specs():
            provider.provider(settings, http, CallBudget.BACKGROUND)
    except ConfigurationError as exc:
        report.problem(f"{function}: invalid setting: {exc}")
        return None
    report.ok(f"{function}: settings are valid")
    return settings


def check_keys(values: Mapping[str, str], report: Report) -> set[str]:
    """Which integrations are in use (some key set), and what each one lacks."""
    in_use = set()
    required = required_integrations()
    webhook_keys = webhook_secret_keys()
    for integration, keys in known_keys().items():
        present = [key for key in keys if values.get(key, "").strip()]
        missing = [key for key in keys if key not in present]
        if present or integration in required:
            in_use.add(integration)
        if not missing:
            report.ok(f"{integration}: every secret key is set")
        elif present or integration in required:
            for key in missing:
                if key in webhook_keys:
                    report.problem(
                        f"{integration}: {key} is missing, so every webhook is refused with 401 "
                        f"(docs/helpdesks/{integration}.md says where it comes from; "
                        "then `make secret`)"
                    )
                else:
                    report.problem(f"{integration}: {key} is missing (set it with `make secret`)")
        else:
            report.note(f"{integration}: not configured (no {', '.join(keys)} in the secret)")
    if not in_use & set(supported_helpdesks()):
        report.problem(
            "no helpdesk is configured, so no capture can be asked for or noted: set the keys "
            f"of one of {', '.join(supported_helpdesks())} (`make secret`)"
        )
    return in_use


def check_sessions_api(stack: Stack, values: Mapping[str, str], report: Report) -> None:
    """Token mode without a token refuses every call: say so; IAM mode needs nothing here."""
    mode = stack.outputs.get(SESSIONS_AUTH_OUTPUT)
    if mode is None:
        return
    if mode != "token":
        report.ok("sessions API: guarded by AWS IAM (callers sign with SigV4)")
    elif values.get(SESSIONS_TOKEN_KEY, "").strip():
        report.ok("sessions API: guarded by the bearer token in the secret")
    else:
        report.problem(
            f"sessions API: SessionsApiAuth is token but {SESSIONS_TOKEN_KEY} is not in the "
            "secret, so every call is refused with 401 (set it with `make secret`)"
        )


def probe_all(settings: Settings, http: HttpClient) -> list[AccessCheck]:
    """One read-only call per integration with the stored credentials."""
    helpdesks = [spec.probe(settings, http) for spec in helpdesk_specs()]
    return helpdesks + [spec.probe(settings, http) for spec in provider_specs()]


def report_probe(check: AccessCheck, in_use: set[str], report: Report) -> None:
    text = f"{check.integration}: {check.access}" + (f" ({check.detail})" if check.detail else "")
    if check.is_problem:
        report.problem(text)
    elif check.access is Access.NOT_CONFIGURED and check.integration in in_use:
        report.problem(f"{check.integration}: partly configured, {check.detail}")
    elif check.access is Access.OK:
        report.ok(text)
    else:
        report.note(text)


def run_doctor(aws: Aws, stack_name: str, http: HttpClient | None = None) -> int:
    """Check the stack; print the findings; 1 when there is any problem."""
    report = Report()
    stack = describe_stack(aws, stack_name)
    print(f"Stack {stack.name} in {stack.region}")
    try:
        _check(aws, stack, report, http or HttpClient(pool_size=1))
    finally:
        print("\n".join(report.lines))
    if report.problems:
        plural = "s" if report.problems > 1 else ""
        print(f"{report.problems} problem{plural} found.")
        return 1
    print("No problems found.")
    return 0


def _check(aws: Aws, stack: Stack, report: Report, http: HttpClient) -> None:
    if not check_status(stack, report):
        return
    if not stack.functions:
        report.problem("the stack has no Lambda functions: is it deployed from template.yaml?")
        return
    secret = check_secret(aws, stack, report)
    secret_arn = stack.outputs.get(SECRET_OUTPUT, "")
    parsed: dict[str, Settings] = {}
    environments: dict[str, dict[str, str]] = {}
    for logical_id, name in sorted(stack.functions.items()):
        environment = function_environment(aws, name)
        environments[logical_id] = environment
        if secret_arn and environment.get("BRIDGE_SECRET_ID", "") != secret_arn:
            report.problem(f"{logical_id}: BRIDGE_SECRET_ID does not name the stack's secret")
        settings = check_settings(logical_id, environment, secret, report)
        if settings is not None:
            parsed[logical_id] = settings
    # The resolver polls the captures and writes the notes: its view is the one to probe with.
    probing = RESOLVER_FUNCTION if RESOLVER_FUNCTION in environments else min(environments)
    merged = {**secret, **{k: v for k, v in environments[probing].items() if v != ""}}
    in_use = check_keys(merged, report)
    check_sessions_api(stack, merged, report)
    settings = parsed.get(probing)
    if settings is None:
        report.note("access not probed: the settings are invalid")
        return
    for check in probe_all(settings, http):
        report_probe(check, in_use, report)
