"""Removal checks against a real local HTTP server that serves, then removes, the content."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cophub.referrals import removal


class _Platform(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        status, body = self.server.pages.get(self.path, (404, "<h1>Not Found</h1>"))
        if status in (301, 302):
            self.send_response(status)
            self.send_header("Location", body)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def platform():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Platform)
    server.daemon_threads = True
    server.pages = {}
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_content_served_then_removed(platform):
    platform.pages["/v/1"] = (200, "<video src='x.mp4'></video> Clip của tài khoản @ke_xau")
    first = removal.check(url(platform, "/v/1"), allow_private=True)
    assert (first.state, first.status) == ("present", 200)
    del platform.pages["/v/1"]
    second = removal.check(url(platform, "/v/1"), allow_private=True)
    assert (second.state, second.status, second.detail) == ("gone", 404, "HTTP 404")


@pytest.mark.parametrize("page", [
    "<title>Facebook</title><div>This content isn’t available right now</div>",
    "<div class='error'>Video currently unavailable</div>",
    "<p>Nội dung này hiện không hiển thị</p>",
    "<h2>Sorry, this page isn't available.</h2>",
])
def test_a_platforms_not_available_page_counts_as_gone(platform, page):
    platform.pages["/p"] = (200, page)
    result = removal.check(url(platform, "/p"), allow_private=True)
    assert result.state == "gone" and result.status == 200 and "page says" in result.detail


def test_gone_after_a_redirect_and_410(platform):
    platform.pages["/old"] = (302, "/removed")
    platform.pages["/removed"] = (410, "gone")
    result = removal.check(url(platform, "/old"), allow_private=True)
    assert (result.state, result.status) == ("gone", 410) and result.final_url.endswith("/removed")


def test_a_server_error_or_a_closed_port_is_unknown_not_gone(platform):
    platform.pages["/err"] = (503, "maintenance")
    assert removal.check(url(platform, "/err"), allow_private=True).state == "unknown"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    result = removal.check(f"http://127.0.0.1:{port}/x", allow_private=True, timeout=3)
    assert result.state == "unknown" and result.detail == "fetch failed: connect"


def test_a_host_that_no_longer_resolves_is_gone():
    result = removal.check("http://da-bi-go.invalid/bai/1", timeout=5)
    assert result.state in ("gone", "unknown")  # "unknown" only when the resolver hangs past the deadline
    if result.state == "gone":
        assert result.detail == "the host name no longer resolves"


def test_in_production_a_loopback_address_is_never_fetched(platform, settings):
    settings.COPHUB_FETCH_ALLOW_PRIVATE = False
    platform.pages["/p"] = (200, "secret admin page")
    result = removal.check(url(platform, "/p"))
    assert (result.state, result.detail) == ("unknown", "not fetched: private_address")
