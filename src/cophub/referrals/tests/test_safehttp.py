"""safehttp against real HTTP servers on the loopback interface (no network mocks)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cophub.referrals import safehttp
from cophub.referrals.safehttp import FetchError, FetchFailed, FetchRefused, fetch

BIG = 5 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append((self.path, dict(self.headers)))
        path = self.path
        if path == "/ok":
            self._send(200, b"hello", {"Content-Type": "text/plain", "X-Two": "a"})
        elif path == "/missing":
            self._send(404, b"nope")
        elif path == "/echo":
            body = f"{self.headers['Host']}|{self.headers['User-Agent']}".encode()
            self._send(200, body)
        elif path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            block = b"x" * 65536
            try:
                for _ in range(BIG // len(block)):
                    self.wfile.write(block)
                    server.sent_bytes += len(block)
            except OSError:
                server.closed_early = True
        elif path == "/big-unsized":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                self.wfile.write(b"y" * 300_000)
            except OSError:
                pass
            self.close_connection = True
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"late")
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                pass
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            if n == 0:
                self._send(200, b"end of chain")
            else:
                status = [301, 302, 303, 307, 308][n % 5]
                self._send(status, b"", {"Location": f"/chain/{n - 1}"})
        elif path == "/relative":
            self._send(302, b"", {"Location": "ok#fragment"})
        elif path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif path == "/away":
            self._send(302, b"", {"Location": server.away})
        else:
            self._send(500, b"unknown test path")


def _start(host="127.0.0.1"):
    server = ThreadingHTTPServer((host, 0), _Handler)
    server.daemon_threads = True
    server.requests = []
    server.lock = threading.Lock()
    server.sent_bytes = 0
    server.closed_early = False
    server.away = ""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server


@pytest.fixture
def server():
    srv = _start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv, path="/ok", host="127.0.0.1", scheme="http"):
    return f"{scheme}://{host}:{srv.server_address[1]}{path}"


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- fetching


def test_fetch_200(server):
    got = fetch(_url(server, "/ok"), allow_private=True)
    assert got.status == 200
    assert got.body == b"hello"
    assert got.truncated is False
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["x-two"] == "a"
    assert all(k == k.lower() for k in got.headers)
    assert got.final_url == _url(server, "/ok")
    assert got.redirects == []
    assert 0 <= got.elapsed_seconds < 5


def test_fetch_404_is_a_result_not_an_error(server):
    got = fetch(_url(server, "/missing"), allow_private=True)
    assert got.status == 404
    assert got.body == b"nope"


def test_head_reads_no_body(server):
    got = fetch(_url(server, "/ok"), method="HEAD", allow_private=True)
    assert got.status == 200
    assert got.body == b""


def test_other_methods_are_not_supported(server):
    with pytest.raises(ValueError):
        fetch(_url(server, "/ok"), method="POST", allow_private=True)


def test_sends_host_name_and_user_agent_and_resolves_once(server, monkeypatch):
    calls = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        calls.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    port = server.server_address[1]
    got = fetch(f"http://localhost:{port}/echo", allow_private=True)
    host_header, user_agent = got.body.decode().split("|")
    assert host_header == f"localhost:{port}"
    assert "cophub" in user_agent
    assert calls.count("localhost") == 1  # the name is resolved once; we connect to the address


def test_caller_headers_are_sent_but_host_cannot_be_overridden(server):
    fetch(_url(server, "/ok"), allow_private=True, headers={"Host": "internal.example", "X-Check": "1"})
    _path, sent = server.requests[-1]
    assert sent["Host"] == f"127.0.0.1:{server.server_address[1]}"
    assert sent["X-Check"] == "1"


def test_body_is_capped(server):
    got = fetch(_url(server, "/big"), max_bytes=100_000, allow_private=True)
    assert got.status == 200
    assert len(got.body) == 100_000
    assert got.truncated is True
    # We hung up: the server's writes fail before it has sent everything.
    for _ in range(50):
        if server.closed_early:
            break
        time.sleep(0.05)
    assert server.closed_early
    assert server.sent_bytes < BIG


def test_body_cap_without_content_length(server):
    got = fetch(_url(server, "/big-unsized"), max_bytes=1000, allow_private=True)
    assert len(got.body) == 1000
    assert got.truncated is True


def test_body_exactly_at_cap_is_not_truncated(server):
    got = fetch(_url(server, "/ok"), max_bytes=5, allow_private=True)
    assert got.body == b"hello"
    assert got.truncated is False


def test_slow_server_times_out(server):
    start = time.monotonic()
    with pytest.raises(FetchFailed) as exc:
        fetch(_url(server, "/slow"), timeout=1.0, allow_private=True)
    assert exc.value.reason == "timeout"
    assert time.monotonic() - start < 2.0


def test_trickling_server_is_cut_at_the_overall_deadline(server):
    # Every byte arrives well within a read timeout; only the deadline stops it.
    start = time.monotonic()
    with pytest.raises(FetchFailed) as exc:
        fetch(_url(server, "/trickle"), timeout=1.0, allow_private=True)
    assert exc.value.reason == "timeout"
    assert time.monotonic() - start < 2.0


# --------------------------------------------------------------------------- redirects


def test_redirect_chain_is_followed_and_recorded(server):
    got = fetch(_url(server, "/chain/4"), allow_private=True)
    assert got.status == 200
    assert got.body == b"end of chain"
    assert got.redirects == [_url(server, f"/chain/{n}") for n in (3, 2, 1, 0)]
    assert got.final_url == _url(server, "/chain/0")


def test_relative_redirect_drops_fragment(server):
    got = fetch(_url(server, "/relative"), allow_private=True)
    assert got.final_url == _url(server, "/ok")
    assert got.body == b"hello"


def test_too_many_redirects(server):
    with pytest.raises(FetchRefused) as exc:
        fetch(_url(server, "/chain/6"), max_redirects=5, allow_private=True)
    assert exc.value.reason == "too_many_redirects"
    assert len(server.requests) == 6  # the first request and five redirects, no more
    got = fetch(_url(server, "/chain/5"), max_redirects=5, allow_private=True)
    assert got.status == 200


def test_redirect_loop_is_refused(server):
    with pytest.raises(FetchRefused) as exc:
        fetch(_url(server, "/loop"), allow_private=True)
    assert exc.value.reason == "too_many_redirects"


def test_redirect_to_bad_scheme_is_refused(server):
    server.away = "file:///etc/passwd"
    with pytest.raises(FetchRefused) as exc:
        fetch(_url(server, "/away"), allow_private=True)
    assert exc.value.reason == "scheme"


def test_redirect_from_public_to_private_address_is_refused(monkeypatch):
    """A server we treat as public (127.0.0.2, by narrowing the policy for this
    test) redirects to a private address (127.0.0.1): the second hop is checked
    and refused, and the private server never sees a request."""
    try:
        public = _start("127.0.0.2")
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 here")
    private = _start("127.0.0.1")
    real_check = safehttp.check_address

    def policy(ip, allow_private):
        if str(ip) == "127.0.0.2":
            return None  # stands in for a public web server
        return real_check(ip, allow_private)

    monkeypatch.setattr(safehttp, "check_address", policy)
    try:
        public.away = _url(private, "/ok")
        with pytest.raises(FetchRefused) as exc:
            fetch(_url(public, "/away", host="127.0.0.2"), allow_private=False)
        assert exc.value.reason == "private_address"
        assert [p for p, _ in public.requests] == ["/away"]
        assert private.requests == []
        # ... and with private addresses allowed (a lab), the same chain works.
        got = fetch(_url(public, "/away", host="127.0.0.2"), allow_private=True)
        assert got.body == b"hello"
    finally:
        for srv in (public, private):
            srv.shutdown()
            srv.server_close()


@pytest.mark.parametrize(
    ("current", "location", "expected"),
    [
        ("http://a.example/x/y", "z", "http://a.example/x/z"),
        ("http://a.example/x/y", "/z?q=1", "http://a.example/z?q=1"),
        ("http://a.example/x/y", "//b.example/p", "http://b.example/p"),
        ("https://a.example/", "http://127.0.0.1/admin", "http://127.0.0.1/admin"),
        ("http://a.example/x", "/y#frag", "http://a.example/y"),
        ("http://a.example/x", "  /y ", "http://a.example/y"),
    ],
)
def test_resolve_redirect(current, location, expected):
    assert safehttp.resolve_redirect(current, location) == expected


# --------------------------------------------------------------------------- the address policy


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1", "127.255.0.9", "::1",
        "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "169.254.0.1", "fd00:ec2::254",
        "100.64.0.1", "100.127.255.254",
        "0.0.0.0", "0.1.2.3", "::",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "2002:7f00:1::1",     # 6to4 wrapping 127.0.0.1
        "64:ff9b::a00:1",     # NAT64 wrapping 10.0.0.1
        "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1",
        "224.0.0.1", "239.255.255.250", "ff02::1",
        "240.0.0.1", "255.255.255.255", "192.0.0.8", "198.18.0.1", "192.0.2.1", "2001:db8::1",
    ],
)
def test_forbidden_addresses(ip):
    assert safehttp.is_forbidden_address(ip)
    with pytest.raises(FetchRefused) as exc:
        safehttp.check_address(ip, False)
    assert exc.value.reason == "private_address"
    safehttp.check_address(ip, True)  # allowed in a lab


@pytest.mark.parametrize(
    "ip",
    ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "203.0.114.1",
     "2001:4860:4860::8888", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_addresses_allowed(ip):
    assert not safehttp.is_forbidden_address(ip)
    safehttp.check_address(ip, False)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "2130706433", "0x7f.1", "127.1"])
def test_private_target_refused_before_any_request(server, host):
    port = server.server_address[1]
    with pytest.raises(FetchRefused) as exc:
        fetch(f"http://{host}:{port}/ok", allow_private=False)
    assert exc.value.reason == "private_address"
    assert server.requests == []


def test_setting_decides_when_not_given(server, settings):
    settings.COPHUB_FETCH_ALLOW_PRIVATE = False
    with pytest.raises(FetchRefused):
        fetch(_url(server, "/ok"))
    assert server.requests == []
    settings.COPHUB_FETCH_ALLOW_PRIVATE = True
    assert fetch(_url(server, "/ok")).status == 200
    with pytest.raises(FetchRefused):
        fetch(_url(server, "/ok"), allow_private=False)  # the argument wins


def test_default_setting_is_production_safe(server, settings):
    del settings.COPHUB_FETCH_ALLOW_PRIVATE
    with pytest.raises(FetchRefused):
        fetch(_url(server, "/ok"))


# --------------------------------------------------------------------------- addresses refused by shape


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme"),
        ("ftp://example.com/x", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("data:text/plain,hi", "scheme"),
        ("//example.com/", "scheme"),
        ("http://user:secret@example.com/", "userinfo"),
        ("http://user@example.com/", "userinfo"),
        ("http://example.com@127.0.0.1/", "userinfo"),
        ("http://", "bad_url"),
        ("http:///path", "bad_url"),
        ("http://exa mple.com/", "bad_url"),
        ("http://example.com/\r\nX-Injected: 1", "bad_url"),
        ("http://example.com:99999/", "bad_url"),
        ("http://example.com:0/", "bad_url"),
        ("", "bad_url"),
    ],
)
def test_bad_addresses_refused(url, reason):
    with pytest.raises(FetchRefused) as exc:
        fetch(url, allow_private=True)
    assert exc.value.reason == reason
    assert isinstance(exc.value, FetchError)


# --------------------------------------------------------------------------- network failures


def test_dns_failure():
    with pytest.raises(FetchFailed) as exc:
        fetch("http://no-such-host.invalid/", timeout=5.0)
    assert exc.value.reason in ("dns", "timeout")  # "timeout" only if the resolver hangs
    assert isinstance(exc.value, FetchError)


def test_connection_refused():
    with pytest.raises(FetchFailed) as exc:
        fetch(f"http://127.0.0.1:{_closed_port()}/", timeout=3.0, allow_private=True)
    assert exc.value.reason == "connect"


def test_https_to_plain_http_server_is_a_tls_failure(server):
    with pytest.raises(FetchFailed) as exc:
        fetch(_url(server, "/ok", scheme="https"), timeout=3.0, allow_private=True)
    assert exc.value.reason == "tls"


def test_not_an_http_server_is_a_protocol_failure():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer():
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        with pytest.raises(FetchFailed) as exc:
            fetch(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=3.0, allow_private=True)
        assert exc.value.reason == "protocol"
    finally:
        listener.close()
