"""The ZAF stand-in without a browser: what its client is told, and its proxy's rules for
secure settings (filled only for `secure: true` requests to the manifest's whitelist)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from local_runner.zaf import SDK_URL, STANDIN_SDK_PATH, Ticket, ZafStandin
from ops.app import manifest_for

TOKEN = "standin-secret-token"


class Echo(BaseHTTPRequestHandler):
    """Answers every call with what it received, as JSON."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "contentType": self.headers.get("Content-Type"),
                "body": self.rfile.read(length).decode(),
            }
        ).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Location", "/sessions/1")
        self.send_header("X-Internal", "not passed on")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _echo


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def standin(upstream: str) -> Iterator[ZafStandin]:
    with ZafStandin(
        settings={"api_url": upstream, "api_token": TOKEN},
        manifest=manifest_for(upstream),
        ticket=Ticket(7, "ada@example.com", None),
    ) as running:
        yield running


def proxy(standin: ZafStandin, **description: Any) -> dict[str, Any]:
    answer = requests.post(f"{standin.url}/zaf/request", json=description, timeout=10)
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def test_the_context_leaves_secure_settings_out(standin: ZafStandin, upstream: str) -> None:
    # When the stand-in client asks for its context
    context = requests.get(f"{standin.url}/zaf/context", timeout=10).json()
    # Then the settings have the API URL but not the token, and the ticket is there
    assert context["metadata"]["settings"] == {"api_url": upstream}
    assert TOKEN not in json.dumps(context)
    assert context["data"] == {
        "ticket.id": 7,
        "ticket.requester.email": "ada@example.com",
        "ticket.requester.externalId": None,
    }


def test_a_secure_request_to_a_whitelisted_host_gets_the_setting(
    standin: ZafStandin, upstream: str
) -> None:
    # When the app sends a secure request with the placeholder to the whitelisted API
    answer = proxy(
        standin,
        url=f"{upstream}/sessions",
        type="POST",
        contentType="application/json",
        data=json.dumps({"ticketId": "7"}),
        headers={"Authorization": "Bearer {{setting.api_token}}"},
        secure=True,
    )
    # Then the API received the token, the answer keeps status and the useful headers only
    echoed = json.loads(answer["responseText"])
    assert echoed["authorization"] == f"Bearer {TOKEN}"
    assert echoed["contentType"] == "application/json"
    assert echoed["body"] == '{"ticketId": "7"}'
    assert answer["status"] == 201
    assert answer["headers"] == {"content-type": "application/json", "location": "/sessions/1"}
    assert [(p.method, p.secure, p.filled) for p in standin.proxied] == [("POST", True, True)]


def test_a_request_that_is_not_secure_keeps_the_placeholder(
    standin: ZafStandin, upstream: str
) -> None:
    answer = proxy(
        standin,
        url=f"{upstream}/sessions",
        headers={"Authorization": "Bearer {{setting.api_token}}"},
    )
    assert json.loads(answer["responseText"])["authorization"] == "Bearer {{setting.api_token}}"
    assert standin.proxied[-1].filled is False


def test_a_secure_request_to_another_host_keeps_the_placeholder(upstream: str) -> None:
    # Given an app whose manifest whitelists another host than the one called
    with ZafStandin(
        settings={"api_url": upstream, "api_token": TOKEN},
        manifest=manifest_for("https://api.example.com"),
    ) as standin:
        answer = proxy(
            standin,
            url=f"{upstream}/sessions?t={{{{setting.api_token}}}}",
            headers={"Authorization": "Bearer {{setting.api_token}}"},
            secure=True,
        )
    # Then the token goes nowhere: neither in the header nor in the URL
    echoed = json.loads(answer["responseText"])
    assert TOKEN not in json.dumps(echoed)
    assert echoed["authorization"] == "Bearer {{setting.api_token}}"


def test_nothing_answering_is_status_0(standin: ZafStandin) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), Echo) as closed:
        port = closed.server_address[1]
    assert proxy(standin, url=f"http://127.0.0.1:{port}/sessions", secure=True)["status"] == 0
    assert proxy(standin, url="file:///etc/passwd")["status"] == 0


def test_objects_are_sent_as_json_or_as_a_form(standin: ZafStandin, upstream: str) -> None:
    as_json = proxy(
        standin, url=upstream, type="POST", contentType="application/json", data={"a": 1}
    )
    assert json.loads(as_json["responseText"])["body"] == '{"a": 1}'
    as_form = proxy(standin, url=upstream, type="POST", data={"a": "b c"})
    assert json.loads(as_form["responseText"])["body"] == "a=b+c"


def test_the_dev_panel_loads_the_stand_in_and_the_committed_page_zendesks_sdk(
    standin: ZafStandin,
) -> None:
    # The dev page: the SDK's address is the stand-in's; the committed page is unchanged
    panel = requests.get(standin.panel_url, timeout=10).text
    assert f'src="{STANDIN_SDK_PATH}"' in panel
    assert SDK_URL not in panel
    page = requests.get(standin.page_url, timeout=10).text
    assert f'src="{SDK_URL}"' in page
    assert "window.ZAFClient" in requests.get(standin.url + STANDIN_SDK_PATH, timeout=10).text
    # and assets resolve under both, but nothing outside the assets folder does
    for prefix in ("/panel/", "/assets/"):
        assert requests.get(f"{standin.url}{prefix}app.js", timeout=10).status_code == 200
        outside = requests.get(f"{standin.url}{prefix}..%2F..%2Fmanifest.json", timeout=10)
        assert outside.status_code == 404
    assert requests.get(f"{standin.url}/", timeout=10, allow_redirects=False).status_code == 302


def test_bad_proxy_calls_are_refused(standin: ZafStandin) -> None:
    assert requests.post(f"{standin.url}/zaf/request", data=b"{", timeout=10).status_code == 400
    assert requests.post(f"{standin.url}/zaf/request", json=[1], timeout=10).status_code == 400
    assert requests.post(f"{standin.url}/elsewhere", json={}, timeout=10).status_code == 404
