"""Real DNS peers on loopback for the resolver's tests.

`Authority` is a small authoritative server (dnspython) the resolver forwards
to: it can truncate UDP answers for some names (so the resolver must retry
over TCP), stop answering (a black hole) or close its port (the kernel then
answers "port unreachable"). `RunningResolver` runs the real resolver on its
own event loop in a thread, on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from cophub.netfilter import netsock, rules, snapshot
from cophub.netfilter.resolver import Resolver

# What Google, YouTube, Bing and DuckDuckGo publish for their safe-search names (test data).
SAFE_ADDRESSES = {
    "forcesafesearch.google.com.": ("216.239.38.120", "2001:4860:4802:32::78"),
    "restrict.youtube.com.": ("216.239.38.120", "2001:4860:4802:32::78"),
    "restrictmoderate.youtube.com.": ("216.239.38.119", "2001:4860:4802:32::77"),
    "strict.bing.com.": ("204.79.197.220", None),
    "safe.duckduckgo.com.": ("52.250.41.2", None),
}


class Authority:
    """An authoritative server for the test names, on 127.0.0.1 (UDP and TCP, one port)."""

    def __init__(self, port: int = 0, ttl: int = 300):
        self.ttl = ttl
        self.port = port
        self.truncate: set[str] = set()
        self.blackhole = False
        self.queries: list[tuple[str, str, str]] = []
        self.records: dict[tuple[str, str], list[str]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.udp = self.tcp = None

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records[(name.lower().rstrip(".") + ".", rdtype)] = list(values)

    def start(self) -> "Authority":
        self._stop.clear()
        # One port for both (port 0: a free one; the system's free UDP port can be taken for TCP).
        self.udp, self.tcp = netsock.udp_and_tcp("127.0.0.1", self.port)
        self.port = self.udp.getsockname()[1]
        for sock in (self.udp, self.tcp):
            sock.setblocking(True)
            sock.settimeout(0.1)
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True), threading.Thread(target=self._serve_tcp, daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Close the port: queries to it now get ICMP port unreachable."""
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.udp.close()
        self.tcp.close()

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype, transport))
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if transport == "udp" and name in self.truncate:
            response.flags |= dns.flags.TC
            return response.to_wire()
        values = self._values(name, rdtype)
        if values is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text("test.", self.ttl, "IN", "SOA", "ns.test. admin.test. 1 3600 600 86400 60"))
        elif values:
            response.answer.append(dns.rrset.from_text(name, self.ttl, "IN", rdtype, *values))
        else:
            response.authority.append(dns.rrset.from_text("test.", self.ttl, "IN", "SOA", "ns.test. admin.test. 1 3600 600 86400 60"))
        return response.to_wire(max_size=65535)

    def _values(self, name: str, rdtype: str) -> list[str] | None:
        """Records for a name, [] for a name with no records of that type, None when the name does not exist."""
        if (name, rdtype) in self.records:
            return self.records[(name, rdtype)]
        if any(key[0] == name for key in self.records):
            return []
        if name in SAFE_ADDRESSES:
            v4, v6 = SAFE_ADDRESSES[name]
            value = v4 if rdtype == "A" else v6 if rdtype == "AAAA" else None
            return [value] if value else []
        if name.startswith("big") and rdtype == "TXT":
            return [f'"{"x" * 200} {i}"' for i in range(12)]
        if name.endswith(".fwd.test."):
            # Any name under fwd.test exists; its address is derived from its length.
            return [f"192.0.2.{len(name) % 250 + 1}"] if rdtype == "A" else [f"2001:db8::{len(name):x}"] if rdtype == "AAAA" else []
        return None

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.udp.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            if self.blackhole:
                continue
            try:
                reply = self.answer(data, "udp")
            except Exception:
                continue
            if reply:
                self.udp.sendto(reply, addr)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    size = struct.unpack(">H", _read(conn, 2))[0]
                    reply = self.answer(_read(conn, size), "tcp")
                    if reply and not self.blackhole:
                        conn.sendall(struct.pack(">H", len(reply)) + reply)
                except (OSError, ValueError, struct.error):
                    continue


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ValueError("closed")
        data += chunk
    return data


class RunningResolver:
    """The real resolver on its own event loop in a thread."""

    def __init__(self, state_dir: Path, hosts: list[str] | None = None, block_page_port: int | None = None):
        self.resolver = Resolver(state_dir, hosts or ["127.0.0.1"], 0, block_page_port)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.resolver.run(ready=self._ready.set))

    def start(self) -> "RunningResolver":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("resolver did not start")
        return self

    @property
    def port(self) -> int:
        return self.resolver.port

    def stop(self) -> None:
        self.resolver.stop()
        self._thread.join(5)


def write_policy(state_dir: Path, *, upstream_port: int, groups: list[dict] = (), settings: dict | None = None,
                 lists: list[dict] = (), services: dict | None = None, version: str | None = None) -> dict:
    """Compile `lists` ({"category", "text", "match_subdomains"}) and write policy.json, as the hub does."""
    state_dir = snapshot.ensure(Path(state_dir))
    inputs = []
    for slot, item in enumerate(lists):
        path = state_dir / snapshot.LISTS / f"{slot + 1}.txt"
        path.write_text(item["text"], encoding="utf-8")
        inputs.append(rules.ListInput(slot=slot, list_id=slot + 1, name=item.get("name", f"list {slot + 1}"),
                                      category=item["category"], path=path, match_subdomains=item.get("match_subdomains", True)))
    rules_ref = None
    if inputs:
        compiled = rules.compile_lists(inputs, state_dir / snapshot.COMPILED)
        rules_ref = {"bin": f"{snapshot.COMPILED}/{compiled.bin_path.name}", "meta": f"{snapshot.COMPILED}/{compiled.meta_path.name}"}
    base = {
        "upstreams": [f"127.0.0.1:{upstream_port}"], "upstream_timeout_ms": 400, "block_mode": "nxdomain",
        "block_page_ipv4": "", "block_page_ipv6": "", "blocked_ttl": 10, "cache_size": 10000, "privacy": "keep",
        "hash_key": "00" * 32, "log_queries": True, "rate_limit_qps": 0, "rate_limit_exempt": [],
        "hub_url": "http://hub.test/", "default_group": None,
    }
    base.update(settings or {})
    policy = {
        "format": 1, "version": version or f"test-{time.time_ns()}", "timezone": "Asia/Ho_Chi_Minh",
        "rules": rules_ref, "settings": base, "services": services or {}, "groups": list(groups),
    }
    snapshot.write_json(state_dir / snapshot.POLICY, policy)
    return policy


def group(id: int, cidr: str | list[str], **fields) -> dict:
    """A group as policy.json carries it, with safe search off unless asked."""
    cidrs = [cidr] if isinstance(cidr, str) else cidr
    devices = fields.pop("devices", 1)
    data = {
        "id": id, "name": fields.pop("name", f"group {id}"), "priority": 0, "categories": [], "blocked_services": [],
        "safe_search": {}, "allow": [], "deny": [], "ranges": [{"cidr": c, "devices": devices} for c in cidrs],
        "slots": [], "unblocks": [],
    }
    data.update(fields)
    return data
