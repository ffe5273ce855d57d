"""The resolver as `cophub dns` runs it (its own process), asked by Debian's dig; and its block page."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from cophub.netfilter import snapshot
from cophub.netfilter.tests.dnspeers import Authority, group, write_policy

pytestmark = [pytest.mark.slow, pytest.mark.dbfree]

LISTS = [
    {"category": "adult", "text": "||adult-site.test^\n@@||ok.adult-site.test^\n", "name": "Danh sách người lớn"},
    {"category": "harmful", "text": "confirmed-harm.test\n", "name": "Danh sách đã xác nhận của hub"},
]


def _dig() -> str:
    path = shutil.which("dig")
    if path is None:
        reason = "dig (bind9-dnsutils) is not installed; run scripts/setup-system"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    authority = Authority().start()
    authority.add("www.example.test", "A", "192.0.2.10")
    authority.add("ok.adult-site.test", "A", "192.0.2.11")
    state = snapshot.ensure(tmp_path / "netfilter")
    write_policy(state, upstream_port=authority.port, lists=LISTS, settings={"block_mode": "page", "block_page_ipv4": "127.0.0.1"},
                 groups=[group(1, "127.0.0.0/8", name="Khối 6", categories=["adult"], safe_search={"google": True, "youtube": "strict"})])
    port, page_port = _free_port(), _free_port(socket.SOCK_STREAM)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "cophub.netfilter.resolver", "--state-dir", str(state), "--host", "127.0.0.1",
         "--port", str(port), "--block-page-port", str(page_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_answer(port, process)
        yield {"port": port, "page_port": page_port, "authority": authority, "startup": time.monotonic() - started}
    finally:
        process.terminate()
        process.wait(10)
        authority.stop()


def _wait_for_answer(port: int, process) -> None:
    import dns.message
    import dns.query

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stdout.read().decode())
        try:
            dns.query.udp(dns.message.make_query("www.example.test", "A"), "127.0.0.1", port=port, timeout=0.2)
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError("the resolver did not answer")


def dig(port: int, *args: str) -> str:
    result = subprocess.run([_dig(), "@127.0.0.1", "-p", str(port), "+tries=1", "+time=3", *args],
                            capture_output=True, text=True, timeout=20)
    return result.stdout


def test_dig_sees_forwarded_blocked_and_excepted_names(served):
    port = served["port"]
    assert "192.0.2.10" in dig(port, "www.example.test", "+short")
    blocked = dig(port, "www.adult-site.test", "A")
    assert "status: NOERROR" in blocked and "127.0.0.1" in blocked  # the block page's address
    assert "EDE: 15 (Blocked)" in blocked and "adult-site.test" in blocked
    assert "192.0.2.11" in dig(port, "ok.adult-site.test", "+short")  # @@ exception
    assert "status: NOERROR" in dig(port, "confirmed-harm.test", "AAAA")


def test_dig_over_tcp_and_safe_search(served):
    port = served["port"]
    assert "192.0.2.10" in dig(port, "+tcp", "www.example.test", "+short")
    google = dig(port, "www.google.com.vn", "A")
    assert "CNAME\tforcesafesearch.google.com." in google and "216.239.38.120" in google
    youtube = dig(port, "+tcp", "www.youtube.com", "A")
    assert "restrict.youtube.com." in youtube


def test_start_up_is_quick(served):
    # Python starting, the policy loaded, the rules mapped, the sockets bound, one answer.
    assert served["startup"] < 5


def test_block_page_names_the_rule_and_offers_help(served):
    request = urllib.request.Request(f"http://127.0.0.1:{served['page_port']}/", headers={"Host": "www.adult-site.test"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        page = response.read().decode("utf-8")
    assert 'lang="vi"' in page
    assert "||adult-site.test^" in page
    assert "Danh sách người lớn" in page and "Khối 6" in page
    assert "netfilter/mistake/?name=www.adult-site.test" in page
    assert "Trang này bị chặn" in page and "Chặn nhầm" in page and "Em cần giúp đỡ" in page
    english = urllib.request.Request(f"http://127.0.0.1:{served['page_port']}/",
                                     headers={"Host": "www.adult-site.test", "Accept-Language": "en-GB,en;q=0.8"})
    with urllib.request.urlopen(english, timeout=5) as response:
        assert "This page is blocked" in response.read().decode("utf-8")
    # Not blocked: the page says so rather than pretending.
    other = urllib.request.Request(f"http://127.0.0.1:{served['page_port']}/", headers={"Host": "www.example.test"})
    with urllib.request.urlopen(other, timeout=5) as response:
        assert "||" not in response.read().decode("utf-8")


def test_block_page_survives_a_hostile_request(served):
    with socket.create_connection(("127.0.0.1", served["page_port"]), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: " + b"\xff" * 9000 + b"\r\n\r\n")
        sock.settimeout(7)
        try:
            sock.recv(100)
        except (ConnectionResetError, TimeoutError):
            pass
    assert "192.0.2.10" in dig(served["port"], "www.example.test", "+short")
