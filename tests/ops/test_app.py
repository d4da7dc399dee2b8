"""`make app`: the sidebar app's manifest checked and packaged for one stack's API host."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from ops.app import (
    APP_DIR,
    api_host,
    build_app,
    load_manifest,
    manifest_for,
    manifest_problems,
)
from ops.cli import main
from ops.stack import OpsError
from tests.ops.conftest import Deployed

API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    """A copy of apps/zendesk to break."""
    target = tmp_path / "zendesk"
    shutil.copytree(APP_DIR, target)
    return target


def test_the_zip_holds_the_manifest_for_the_api_host_assets_and_translations(
    tmp_path: Path,
) -> None:
    # When the app is packaged for a stack's API URL
    target = build_app(API_URL, out_dir=tmp_path, environ={})
    # Then the zip has zcli's layout, and its manifest whitelists that host only
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert target.name == "capture-bridge-zendesk-0.3.0.zip"
    assert {
        "manifest.json",
        "assets/iframe.html",
        "assets/app.js",
        "assets/logic.js",
        "assets/panel.css",
        "assets/logo.png",
        "assets/logo-small.png",
        "translations/en.json",
    } <= names
    assert manifest["domainWhitelist"] == ["abc123.execute-api.eu-west-1.amazonaws.com"]
    # and the same sources give the same bytes
    again = build_app(API_URL, out_dir=tmp_path / "again", environ={})
    assert again.read_bytes() == target.read_bytes()


def test_the_committed_manifest_is_right_but_for_the_whitelist_make_app_fills() -> None:
    manifest = load_manifest()
    assert manifest_problems(manifest) == [
        "domainWhitelist is empty: give the API URL (make app API_URL=…)"
    ]
    assert manifest_problems(manifest_for(API_URL)) == []
    [api_url, token] = manifest["parameters"]
    assert (api_url["name"], api_url.get("secure")) == ("api_url", None)
    assert (token["name"], token["secure"]) == ("api_token", True)
    assert manifest["location"]["support"]["ticket_sidebar"]["url"] == "assets/iframe.html"
    translations = json.loads((APP_DIR / "translations" / "en.json").read_text())
    assert set(translations["app"]["parameters"]) == {"api_url", "api_token"}


def test_each_manifest_problem_is_named(app_copy: Path) -> None:
    # Given a manifest broken in every way the check knows
    manifest = manifest_for(API_URL, load_manifest(app_copy))
    manifest.pop("author")
    manifest["frameworkVersion"] = "1.0"
    manifest["location"] = {"support": {"ticket_sidebar": {"url": "assets/other.html"}}}
    manifest["parameters"] = [
        {"name": "api_url", "type": "url", "secure": True},
        {"name": "api_token", "type": "text", "default": "abc"},
        {"name": "other", "type": "text", "secure": True, "default": "x"},
    ]
    manifest["domainWhitelist"] = ["https://abc/path"]
    (app_copy / "assets" / "logo-small.png").unlink()
    (app_copy / "translations" / "en.json").unlink()
    # When it is checked, then each problem is one plain line
    assert manifest_problems(manifest, app_copy) == [
        "manifest.json has no author",
        "manifest.json's frameworkVersion must be 2.0",
        "translations/en.json (the defaultLocale's) is missing",
        "location support.ticket_sidebar must load assets/iframe.html",
        "assets/logo-small.png is missing",
        "parameter api_url must exist and not be secure",
        'parameter api_token must exist with "secure": true',
        "secure parameter other must not have a default value",
        "domainWhitelist entry 'https://abc/path' must be a bare host name",
    ]


def test_an_author_without_email_and_a_missing_page_are_named(app_copy: Path) -> None:
    manifest = manifest_for(API_URL, load_manifest(app_copy))
    manifest["author"] = {"name": "Someone"}
    (app_copy / "assets" / "iframe.html").unlink()
    assert manifest_problems(manifest, app_copy) == [
        "manifest.json's author needs a name and an email",
        "assets/iframe.html is missing",
    ]


def test_a_secret_pasted_into_a_file_stops_the_package(app_copy: Path, tmp_path: Path) -> None:
    # Given the stack's token written into an asset by mistake
    (app_copy / "assets" / "note.txt").write_text("token: s3cr3t-token-value")
    # When the app is packaged with that token in the environment
    with pytest.raises(OpsError, match=r"note\.txt contains the value of a secret"):
        build_app(
            API_URL,
            app_dir=app_copy,
            out_dir=tmp_path / "dist",
            environ={"SESSIONS_API_TOKEN": "s3cr3t-token-value"},
        )
    # Then no zip was written
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("abc123.execute-api.eu-west-1.amazonaws.com", "is not a URL"),
        ("http://abc.example.com", "must use https"),
        ("https://user:pw@abc.example.com", "plain base URL"),
        ("https://abc.example.com/?x=1", "plain base URL"),
    ],
)
def test_an_api_url_that_cannot_be_whitelisted_is_refused(url: str, problem: str) -> None:
    with pytest.raises(OpsError, match=problem):
        api_host(url)


def test_a_local_api_may_be_plain_http() -> None:
    assert api_host("http://127.0.0.1:3000") == "127.0.0.1"


def test_the_command_line_packages_for_an_api_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ops.app.DIST_DIR", tmp_path / "dist")
    assert main(["app", "--api-url", API_URL]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dist/capture-bridge-zendesk-0.3.0.zip: the Zendesk app for")
    assert "API URL   = " + API_URL in out
    assert "SESSIONS_API_TOKEN" in out
    assert (tmp_path / "dist" / "capture-bridge-zendesk-0.3.0.zip").is_file()


def test_without_a_url_the_stacks_output_is_used(
    deployed: Deployed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a deployed stack whose SessionsApiUrl output is the API
    monkeypatch.setattr("ops.app.DIST_DIR", tmp_path / "dist")
    deployed.stack.outputs["SessionsApiUrl"] = API_URL
    deployed.stub_stack()
    # When `make app` runs without API_URL
    code = main(["app", "--stack", "capture-bridge"], connect=lambda region: deployed.aws)
    # Then the zip is for the stack's API
    assert code == 0
    assert "abc123.execute-api.eu-west-1.amazonaws.com" in capsys.readouterr().out


def test_without_url_or_stack_it_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["app"]) == 1
    assert "API_URL" in capsys.readouterr().err
