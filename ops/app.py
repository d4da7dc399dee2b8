"""`make app`: the Zendesk sidebar app (apps/zendesk) as an installable zip for one stack.

Zendesk sends an app's secure settings (here the sessions API token) only to the hosts in its
manifest's ``domainWhitelist``, and every stack's API has its own host: so the zip is made for
one API URL, whose host is written into the whitelist. The manifest is checked first; `zcli`
(Zendesk's own packager) needs the network, so the zip is made here, with the layout
`zcli apps:package` gives: manifest.json, assets/ and translations/ at its root.
"""

from __future__ import annotations

import copy
import json
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ops.stack import OpsError

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = ROOT / "apps" / "zendesk"
DIST_DIR = ROOT / "dist"
API_URL_OUTPUT = "SessionsApiUrl"
#: What the package holds, as zcli packages it.
PACKAGED = ("manifest.json", "assets", "translations")
#: The settings the app reads, and the one Zendesk must keep secret.
API_URL_SETTING = "api_url"
TOKEN_SETTING = "api_token"  # noqa: S105 - a setting's name, not a secret
SIDEBAR_PAGE = "assets/iframe.html"
#: Logos the Zendesk marketplace and `zcli apps:validate` expect in assets/.
LOGOS = ("logo.png", "logo-small.png")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: Variables whose values must never be packaged (a token pasted into a file by mistake).
SECRET_VARIABLES = ("SESSIONS_API_TOKEN",)
# A ZIP entry's time: fixed, so that the same sources give the same bytes.
ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def api_host(api_url: str) -> str:
    """The host of the sessions API's base URL; https, or http on this machine only."""
    parts = urlsplit(api_url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise OpsError(
            f"API_URL {api_url!r} is not a URL: give the stack's {API_URL_OUTPUT} output, "
            "e.g. https://abc123.execute-api.eu-west-1.amazonaws.com"
        )
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise OpsError(f"API_URL {api_url!r} must use https (Zendesk's proxy calls it).")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise OpsError(f"API_URL {api_url!r} must be a plain base URL, with no credentials.")
    return host


def load_manifest(app_dir: Path = APP_DIR) -> dict[str, Any]:
    """The app's committed manifest.json."""
    manifest: dict[str, Any] = json.loads((app_dir / "manifest.json").read_text(encoding="utf-8"))
    return manifest


def manifest_for(api_url: str, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest with the API's host as its only whitelisted domain."""
    made = copy.deepcopy(dict(manifest if manifest is not None else load_manifest()))
    made["domainWhitelist"] = [api_host(api_url)]
    return made


def _parameters(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    parameters = manifest.get("parameters")
    if not isinstance(parameters, list):
        return {}
    return {str(p.get("name")): p for p in parameters if isinstance(p, dict)}


def manifest_problems(manifest: Mapping[str, Any], app_dir: Path = APP_DIR) -> list[str]:
    """What is wrong with the manifest (and the files it names), in plain words; [] if nothing."""
    problems: list[str] = []
    for field in ("name", "author", "defaultLocale", "version", "frameworkVersion", "location"):
        if not manifest.get(field):
            problems.append(f"manifest.json has no {field}")
    author = manifest.get("author")
    if isinstance(author, dict) and not (author.get("name") and author.get("email")):
        problems.append("manifest.json's author needs a name and an email")
    if manifest.get("frameworkVersion") not in (None, "", "2.0"):
        problems.append("manifest.json's frameworkVersion must be 2.0")
    locale = manifest.get("defaultLocale")
    if locale and not (app_dir / "translations" / f"{locale}.json").is_file():
        problems.append(f"translations/{locale}.json (the defaultLocale's) is missing")
    sidebar = (manifest.get("location") or {}).get("support", {}).get("ticket_sidebar")
    url = sidebar.get("url") if isinstance(sidebar, dict) else sidebar
    if url != SIDEBAR_PAGE:
        problems.append(f"location support.ticket_sidebar must load {SIDEBAR_PAGE}")
    elif not (app_dir / SIDEBAR_PAGE).is_file():
        problems.append(f"{SIDEBAR_PAGE} is missing")
    problems += [
        f"assets/{logo} is missing" for logo in LOGOS if not (app_dir / "assets" / logo).is_file()
    ]
    parameters = _parameters(manifest)
    api_url = parameters.get(API_URL_SETTING)
    if api_url is None or api_url.get("secure"):
        problems.append(f"parameter {API_URL_SETTING} must exist and not be secure")
    token = parameters.get(TOKEN_SETTING)
    if token is None or token.get("secure") is not True:
        problems.append(f'parameter {TOKEN_SETTING} must exist with "secure": true')
    for name, parameter in parameters.items():
        if parameter.get("secure") and "default" in parameter:
            problems.append(f"secure parameter {name} must not have a default value")
    hosts = manifest.get("domainWhitelist")
    if not isinstance(hosts, list) or not hosts:
        problems.append("domainWhitelist is empty: give the API URL (make app API_URL=…)")
    else:
        problems += [
            f"domainWhitelist entry {host!r} must be a bare host name"
            for host in hosts
            if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", host)
        ]
    return problems


def package_files(app_dir: Path = APP_DIR) -> list[Path]:
    """The files the zip holds besides manifest.json: assets/ and translations/, sorted."""
    return sorted(
        path
        for folder in PACKAGED[1:]
        for path in (app_dir / folder).rglob("*")
        if path.is_file() and not path.name.startswith(".")
    )


def secret_problems(
    manifest_text: str, files: list[Path], environ: Mapping[str, str] | None = None
) -> list[str]:
    """Files that would carry a secret of the environment (a token pasted in by mistake)."""
    environ = os.environ if environ is None else environ
    secrets = [environ[name] for name in SECRET_VARIABLES if len(environ.get(name, "")) >= 8]
    problems = []
    for name, data in [
        ("manifest.json", manifest_text.encode()),
        *((p.name, p.read_bytes()) for p in files),
    ]:
        if any(secret.encode() in data for secret in secrets):
            problems.append(
                f"{name} contains the value of a secret ({', '.join(SECRET_VARIABLES)})"
            )
    return problems


def build_app(
    api_url: str,
    *,
    app_dir: Path = APP_DIR,
    out_dir: Path = DIST_DIR,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Check the app for `api_url` and write its zip into `out_dir`; returns the zip's path."""
    manifest = manifest_for(api_url, load_manifest(app_dir))
    manifest_text = json.dumps(manifest, indent=2) + "\n"
    files = package_files(app_dir)
    problems = manifest_problems(manifest, app_dir) + secret_problems(manifest_text, files, environ)
    if problems:
        raise OpsError("the app cannot be packaged:\n  - " + "\n  - ".join(problems))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"capture-bridge-zendesk-{manifest['version']}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [("manifest.json", manifest_text.encode())]
        entries += [(path.relative_to(app_dir).as_posix(), path.read_bytes()) for path in files]
        for name, data in entries:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return target


def run_app(api_url: str, *, out_dir: Path | None = None) -> int:
    """`make app`: build the zip (into dist/ unless told) and say what to do with it."""
    target = build_app(api_url, out_dir=out_dir or DIST_DIR)
    try:
        shown = target.relative_to(Path.cwd())
    except ValueError:
        shown = target
    print(f"{shown}: the Zendesk app for {api_url.strip()} (whitelisted host {api_host(api_url)})")
    print("Install it: Zendesk Admin Center > Apps and integrations > Apps > Zendesk Support apps")
    print("  > Upload private app, choose this zip, then fill in the settings:")
    print(f"  API URL   = {api_url.strip()}  (the stack's {API_URL_OUTPUT} output)")
    print("  API token = the SESSIONS_API_TOKEN of the stack's secret (make secret)")
    return 0
