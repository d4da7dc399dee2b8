"""A stand-in for the Zendesk side of the sidebar app: its page, its ZAF client, its proxy.

Zendesk serves an app's page in an iframe, gives it the ZAF client (``zaf_sdk.min.js``) and
runs the app's ``client.request`` calls through its own proxy, which fills the secure settings
in on its servers. This stand-in does the same on 127.0.0.1, for ``make dev`` and the browser
tests (tests/browser):

- ``/panel/`` serves ``apps/zendesk/assets/`` with the SDK's address rewritten to the stand-in
  client (``/zaf/zaf_sdk.min.js``); ``/assets/`` serves the committed files unchanged (the tests
  answer Zendesk's SDK address with the stand-in by routing it in the browser);
- ``/zaf/context`` gives the stand-in client the ticket and the app's metadata, whose settings
  leave out every ``secure`` parameter, as Zendesk's do;
- ``/zaf/request`` is the proxy: ``{{setting.NAME}}`` placeholders are filled only in ``secure:
  true`` requests to a host of the manifest's ``domainWhitelist``; the answer is the upstream
  status, headers and body (status 0 when nothing answered).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

import requests

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ASSETS_DIR = HERE.parent.parent / "apps" / "zendesk" / "assets"
STANDIN_SCRIPT = HERE / "zaf_sdk_standin.js"
#: Where Zendesk documents its SDK; iframe.html loads it from there.
SDK_URL = "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
STANDIN_SDK_PATH = "/zaf/zaf_sdk.min.js"
PLACEHOLDER = re.compile(r"\{\{\s*setting\.([A-Za-z0-9_]+)\s*\}\}")
PROXY_TIMEOUT = 15.0
MAX_REQUEST_BYTES = 256 * 1024
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
}


@dataclass
class Ticket:
    """The ticket the panel is opened on, as ``client.get`` answers for it."""

    id: int = 1001
    requester_email: str | None = "ada@example.com"
    requester_external_id: str | None = "user-42"

    def data(self) -> dict[str, Any]:
        return {
            "ticket.id": self.id,
            "ticket.requester.email": self.requester_email,
            "ticket.requester.externalId": self.requester_external_id,
        }


@dataclass
class Proxied:
    """One request the proxy forwarded (what the tests check; never the filled-in values)."""

    method: str
    url: str
    secure: bool
    filled: bool
    status: int


@dataclass
class ZafStandin:
    """The stand-in's HTTP server. ``settings`` holds every parameter, secure ones included;
    ``manifest`` is the app's manifest as installed (its whitelist and which settings are
    secure)."""

    settings: dict[str, str]
    manifest: Mapping[str, Any]
    ticket: Ticket = field(default_factory=Ticket)
    port: int = 0
    assets: Path = ASSETS_DIR
    proxied: list[Proxied] = field(default_factory=list)
    _server: _Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="zaf-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def panel_url(self) -> str:
        """The panel with the stand-in client (``make dev``)."""
        return f"{self.url}/panel/"

    @property
    def page_url(self) -> str:
        """The committed iframe.html, loading the SDK from Zendesk's address."""
        return f"{self.url}/assets/iframe.html"

    # -- what the stand-in answers -------------------------------------------------------------

    def secure_names(self) -> set[str]:
        return {
            str(parameter.get("name"))
            for parameter in self.manifest.get("parameters", [])
            if isinstance(parameter, dict) and parameter.get("secure")
        }

    def whitelist(self) -> set[str]:
        return {str(host).lower() for host in self.manifest.get("domainWhitelist") or []}

    def context(self) -> dict[str, Any]:
        """What ``client.get``, ``client.metadata`` and ``client.context`` answer."""
        secure = self.secure_names()
        return {
            "data": self.ticket.data(),
            "metadata": {
                "appId": 0,
                "installationId": 0,
                "name": str(self.manifest.get("name", "")),
                "version": str(self.manifest.get("version", "")),
                "settings": {
                    name: value for name, value in self.settings.items() if name not in secure
                },
            },
            "context": {
                "product": "support",
                "location": "ticket_sidebar",
                "ticketId": self.ticket.id,
                "account": {"subdomain": "local"},
                "instanceGuid": "00000000-0000-4000-8000-000000000000",
            },
        }

    def proxy(self, description: Mapping[str, Any]) -> dict[str, Any]:
        """Forward one ``client.request`` as Zendesk's proxy does; never raises."""
        url = str(description.get("url") or "")
        method = str(description.get("type") or "GET").upper()
        headers = {str(k): str(v) for k, v in (description.get("headers") or {}).items()}
        body = _body(description)
        if body is not None and description.get("contentType"):
            headers.setdefault("Content-Type", str(description["contentType"]))
        parts = urlsplit(url)
        secure = description.get("secure") is True
        # Zendesk sends secure settings only to the hosts the manifest whitelists.
        fill = secure and (parts.hostname or "").lower() in self.whitelist()
        if fill:
            url = self._fill(url)
            headers = {name: self._fill(value) for name, value in headers.items()}
            body = self._fill(body) if body is not None else None
        if parts.scheme not in ("http", "https"):
            return _answer(0, "error", {}, "")
        try:
            upstream = requests.request(
                method,
                url,
                headers=headers,
                data=body.encode() if body is not None else None,
                timeout=PROXY_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException:
            # Nothing answered: the app sees status 0, as when Zendesk's proxy cannot connect.
            self.proxied.append(Proxied(method, parts.path, secure, fill, 0))
            return _answer(0, "error", {}, "")
        self.proxied.append(Proxied(method, parts.path, secure, fill, upstream.status_code))
        kept = {
            name.lower(): value
            for name, value in upstream.headers.items()
            if name.lower() in ("content-type", "location", "retry-after", "allow")
        }
        return _answer(upstream.status_code, upstream.reason or "", kept, upstream.text)

    def _fill(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda match: self.settings.get(match[1], ""), text)

    def panel_page(self) -> bytes:
        """iframe.html with Zendesk's SDK address pointing at the stand-in client."""
        page = (self.assets / "iframe.html").read_text(encoding="utf-8")
        return page.replace(SDK_URL, STANDIN_SDK_PATH).encode()


def _body(description: Mapping[str, Any]) -> str | None:
    data = description.get("data")
    if data is None:
        return None
    if isinstance(data, str):
        return data
    if "json" in str(description.get("contentType") or ""):
        return json.dumps(data)
    return urlencode(data) if isinstance(data, dict) else str(data)


def _answer(status: int, text: str, headers: dict[str, str], body: str) -> dict[str, Any]:
    return {"status": status, "statusText": text, "headers": headers, "responseText": body}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: ZafStandin) -> None:
        super().__init__(address, _Handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "zaf-standin"

    @property
    def owner(self) -> ZafStandin:
        return self.server.owner

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("zaf stand-in: " + format, *args)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == STANDIN_SDK_PATH:
            self._send(200, STANDIN_SCRIPT.read_bytes(), CONTENT_TYPES[".js"])
        elif path == "/zaf/context":
            self._json(200, self.owner.context())
        elif path in ("/panel", "/panel/", "/panel/iframe.html"):
            if path == "/panel":
                self._redirect("/panel/")
            else:
                self._send(200, self.owner.panel_page(), CONTENT_TYPES[".html"])
        elif path.startswith(("/panel/", "/assets/")):
            self._asset(path.split("/", 2)[2])
        elif path == "/":
            self._redirect("/panel/")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/zaf/request":
            self._send(404, b"not found", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._json(413, {"status": 0, "statusText": "too large"})
            return
        try:
            description = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, _answer(0, "bad request", {}, ""))
            return
        if not isinstance(description, dict):
            self._json(400, _answer(0, "bad request", {}, ""))
            return
        self._json(200, self.owner.proxy(description))

    def _asset(self, name: str) -> None:
        root = self.owner.assets.resolve()
        target = (root / name).resolve()
        if not target.is_file() or root not in target.parents:
            self._send(404, b"not found", "text/plain")
            return
        kind = CONTENT_TYPES.get(target.suffix, "application/octet-stream")
        self._send(200, target.read_bytes(), kind)

    def _redirect(self, where: str) -> None:
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
