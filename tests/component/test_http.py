"""The HTTP client: bounded answers, and every failure turned into a TransportError."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from capture_bridge.http import MAX_BODY_BYTES, HttpClient, HttpResponse, TransportError


class _Huge(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(MAX_BODY_BYTES + 10))
        self.end_headers()
        self.wfile.write(b"x" * (MAX_BODY_BYTES + 10))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def huge_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Huge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_answers_larger_than_the_bound_are_refused(huge_server: str) -> None:
    with pytest.raises(TransportError, match="larger than") as caught:
        HttpClient().request("GET", huge_server)
    assert caught.value.maybe_delivered is True


def test_malformed_urls_are_transport_errors() -> None:
    with pytest.raises(TransportError, match=r"InvalidURL|MissingSchema"):
        HttpClient().request("GET", "http://")


class _HangsUp(BaseHTTPRequestHandler):
    """Reads the whole request, then closes the connection without answering."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_refused_connection_was_surely_not_delivered() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Huge)
    port = server.server_address[1]
    server.server_close()
    with pytest.raises(TransportError, match="connection failed") as caught:
        HttpClient().request("GET", f"http://127.0.0.1:{port}/")
    assert caught.value.maybe_delivered is False


def test_connection_dropped_after_sending_may_have_been_delivered() -> None:
    # Given a server that reads the request, then hangs up without an answer
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HangsUp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # When a request is sent to it, then the caller cannot know whether it was acted on
        with pytest.raises(TransportError, match="connection lost") as caught:
            HttpClient().request(
                "POST", f"http://127.0.0.1:{server.server_address[1]}/", json_body={}
            )
        assert caught.value.maybe_delivered is True
    finally:
        server.shutdown()
        server.server_close()


def test_response_helpers() -> None:
    response = HttpResponse(200, {"Retry-After": "5"}, b"not json")
    assert response.json() is None
    assert response.header("retry-after") == "5"
    assert response.header("missing") is None


def test_a_body_given_as_bytes_is_sent_byte_for_byte() -> None:
    # given a server that keeps what it receives, and bytes a signature would cover
    from local_runner.simulators._server import JsonHttpServer, RecordedRequest, Reply

    class Recorder(JsonHttpServer):
        def handle(self, request: RecordedRequest) -> Reply:
            return Reply(204, {})

    signed = '{"text": "Café <b>\u2028 😀",  "n": 1}'.encode()
    with Recorder() as server:
        # when they are sent as the body
        answer = HttpClient().request("POST", f"{server.url}/notes", body=signed)
        [received] = server.requests()
    # then the server got exactly those bytes
    assert answer.status == 204
    assert received.body == signed
