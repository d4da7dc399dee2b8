"""`ops secret` merges keys into the stack's secret and never shows a value."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from ops.secret import known_keys, run_secret
from ops.stack import OpsError
from tests.ops.conftest import Deployed, without_output

NEW_TOKEN = "zd-token-new-7c1f"
OTHER_KEY_VALUE = "ws-key-keep-me-91ab"
WEBHOOK_SECRET = "hook-secret-55e0"


class FakeStdin(io.StringIO):
    """Piped stdin (not a terminal), as in `printf %s "$TOKEN" | python -m ops secret --set …`."""

    def isatty(self) -> bool:
        return False


def answers(values: dict[str, str]) -> Callable[[str], str]:
    """A getpass stand-in: the value for the key named in the prompt, else Enter."""

    def prompt(text: str) -> str:
        return next((value for key, value in values.items() if f" {key} " in text), "")

    return prompt


def no_prompt(text: str) -> str:
    raise AssertionError(f"unexpected prompt {text!r}")


def test_set_from_stdin_keeps_the_other_keys(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a secret that already holds another integration's key
    deployed.put_secret({"BUGPILOT_API_KEY": OTHER_KEY_VALUE, "ZENDESK_API_TOKEN": "old"})

    # when one key is set from stdin
    code = run_secret(
        deployed.aws,
        deployed.stack,
        set_keys=["ZENDESK_API_TOKEN"],
        unset_keys=[],
        stdin=FakeStdin(f"  {NEW_TOKEN}\n"),
        prompt=no_prompt,
    )

    # then that key changed (stripped), the other is kept, and no value was printed
    assert code == 0
    assert deployed.secret() == {
        "BUGPILOT_API_KEY": OTHER_KEY_VALUE,
        "ZENDESK_API_TOKEN": NEW_TOKEN,
    }
    shown = capsys.readouterr()
    assert NEW_TOKEN not in shown.out + shown.err
    assert OTHER_KEY_VALUE not in shown.out + shown.err
    assert "ZENDESK_API_TOKEN: stored" in shown.out
    assert "within 5 minutes" in shown.out


def test_an_optional_key_can_be_set_by_name(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a helpdesk key with a default (Freshdesk's API URL overrides its domain's)
    url = "https://support.acme.example"
    # when it is set by name
    code = run_secret(
        deployed.aws,
        deployed.stack,
        set_keys=["FRESHDESK_API_URL"],
        unset_keys=[],
        stdin=FakeStdin(url),
        prompt=no_prompt,
    )
    # then it is stored like any other key
    assert code == 0
    assert deployed.secret() == {"FRESHDESK_API_URL": url}


def test_interactive_enter_keeps_values_and_never_prints_them(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a secret with one key set
    deployed.put_secret({"BUGPILOT_API_KEY": OTHER_KEY_VALUE})
    prompts: list[str] = []

    def prompt(text: str) -> str:
        prompts.append(text)
        return answers({"ZENDESK_WEBHOOK_SECRET": f"{WEBHOOK_SECRET}\n"})(text)

    # when the operator types only the webhook secret and presses Enter for everything else
    code = run_secret(
        deployed.aws,
        deployed.stack,
        set_keys=[],
        unset_keys=[],
        stdin=FakeStdin(""),
        prompt=prompt,
    )

    # then every known key was asked for, saying whether it is set, and only one changed
    assert code == 0
    every_key = [key for keys in known_keys().values() for key in keys]
    assert len(prompts) == len(every_key)
    assert any("BUGPILOT_API_KEY (set)" in text for text in prompts)
    assert any("NOTTE_API_KEY (not set)" in text for text in prompts)
    assert deployed.secret() == {
        "BUGPILOT_API_KEY": OTHER_KEY_VALUE,
        "ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    shown = capsys.readouterr()
    for value in (OTHER_KEY_VALUE, WEBHOOK_SECRET):
        assert value not in shown.out + shown.err + "".join(prompts)
    assert "ZENDESK_WEBHOOK_SECRET set" in shown.out
    assert "NOTTE_API_KEY missing" in shown.out


def test_an_empty_secret_starts_from_an_empty_object(deployed: Deployed) -> None:
    # given the secret as the stack creates it: no value at all
    # when a key is set
    run_secret(
        deployed.aws,
        deployed.stack,
        set_keys=["NOTTE_API_KEY"],
        unset_keys=[],
        stdin=FakeStdin("sk-notte-1\n"),
        prompt=no_prompt,
    )

    # then the secret holds just that key
    assert deployed.secret() == {"NOTTE_API_KEY": "sk-notte-1"}


def test_unset_removes_only_that_key(deployed: Deployed) -> None:
    # given two keys
    deployed.put_secret({"NOTTE_API_KEY": "sk-notte-1", "BUGPILOT_API_KEY": OTHER_KEY_VALUE})

    # when one is unset
    run_secret(
        deployed.aws,
        deployed.stack,
        set_keys=[],
        unset_keys=["NOTTE_API_KEY"],
        stdin=FakeStdin(""),
        prompt=no_prompt,
    )

    # then the other stays
    assert deployed.secret() == {"BUGPILOT_API_KEY": OTHER_KEY_VALUE}


def test_unknown_keys_are_refused_with_the_known_ones(deployed: Deployed) -> None:
    # given a secret
    deployed.put_secret({"BUGPILOT_API_KEY": OTHER_KEY_VALUE})

    # when an unknown key is set, then it is refused naming the known keys, and nothing changes
    with pytest.raises(
        OpsError, match=r"Unknown key ZENDESK_TOKEN\. Known keys: .*ZENDESK_API_TOKEN"
    ):
        run_secret(
            deployed.aws,
            deployed.stack,
            set_keys=["ZENDESK_TOKEN"],
            unset_keys=[],
            stdin=FakeStdin("x\n"),
            prompt=no_prompt,
        )
    assert deployed.secret() == {"BUGPILOT_API_KEY": OTHER_KEY_VALUE}


def test_an_empty_value_changes_nothing(deployed: Deployed) -> None:
    # given an empty stdin, when a key is set, then it is refused
    with pytest.raises(OpsError, match="No value for NOTTE_API_KEY"):
        run_secret(
            deployed.aws,
            deployed.stack,
            set_keys=["NOTTE_API_KEY"],
            unset_keys=[],
            stdin=FakeStdin("   \n"),
            prompt=no_prompt,
        )


def test_a_secret_that_is_not_an_object_is_not_overwritten(deployed: Deployed) -> None:
    # given a secret someone filled with a JSON list
    deployed.aws.secretsmanager.put_secret_value(SecretId=deployed.secret_arn, SecretString="[1]")

    # when a key is set, then the operator is told to fix it by hand
    with pytest.raises(OpsError, match="does not hold a JSON object"):
        run_secret(
            deployed.aws,
            deployed.stack,
            set_keys=["NOTTE_API_KEY"],
            unset_keys=[],
            stdin=FakeStdin("sk\n"),
            prompt=no_prompt,
        )


def test_a_stack_without_the_secret_output_is_explained(deployed: Deployed) -> None:
    # given a stack lacking the SecretArn output, when secret runs, then it says so
    stack = without_output(deployed.stack, "SecretArn")
    with pytest.raises(OpsError, match="has no output SecretArn"):
        run_secret(
            deployed.aws, stack, set_keys=[], unset_keys=[], stdin=FakeStdin(""), prompt=no_prompt
        )
