"""`cophub dns`: the school's filtering, forwarding DNS resolver.

    python -m cophub.netfilter.resolver --state-dir DIR [--host H ...] [--port P] [--block-page-port N]

One process, one asyncio loop, no Django. The UDP hot path reads packets in
batches straight off the socket and answers from a per-group cache keyed by
the query's bytes after its ID: no parsing, one dictionary lookup, one
send. Everything else (a name not in the cache, TCP, the upstream side)
parses with `dnswire` and decides with `engine`. See docs/netfilter.md.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import itertools
import json
import logging
import os
import queue
import re
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from . import dnswire as wire
from . import engine, netsock, snapshot
from .dnswire import WireError

log = logging.getLogger("cophub.netfilter.resolver")

VERDICTS = 100_000  # verdicts kept per group (names blocked or forwarded, by query shape)
BATCH = 64  # packets read per wake-up before the loop looks at other sockets (bounds the wait of the others)
SOCKETS_PER_UPSTREAM = 8
SOCKET_ROTATE_SECONDS = 60  # a new random source port for one socket each interval
TCP_IDLE_SECONDS = 10
TCP_MAX_CLIENTS = 256
MAX_CACHE_TTL = 86400
SWEEP_SECONDS = 0.05
# We tell upstreams (EDNS) to send at most 1232 bytes over UDP; a longer datagram is cut
# here, fails to parse and counts as a bad reply, and the query is retried or fails.
UPSTREAM_DATAGRAM = 4096
LOG_ROTATE_SECONDS = 2.0
LOG_CHUNK, LOG_PAUSE = 256, 0.001  # the query-log thread formats 256 entries, then lets the loop run a millisecond
FULL_GC_SECONDS = 3600
STATUS_SECONDS = 2.0


class RandomPool:
    """Unpredictable query IDs and socket choices from the OS's CSPRNG, read 4 KB at a time
    (one getrandom() per 2048 numbers instead of one per query)."""

    _unpack = struct.Struct(">2048H").unpack

    def __init__(self):
        self._values: list[int] = []

    def u16(self) -> int:
        values = self._values
        if not values:
            values.extend(self._unpack(os.urandom(4096)))
        return values.pop()


_random = RandomPool()
_COUNTS = struct.Struct(">HHHHH")
_REPLY_FLAGS = wire.QR | wire.RA  # as wire.reply_flags, inlined where every forwarded answer passes
_COPIED_FLAGS = wire.RD | wire.CD
_QUERY_FLAGS_COUNTS = struct.pack(">HHHHH", wire.RD, 1, 0, 0, 1)  # recursion desired, one question, our EDNS record


class Upstream:
    """One upstream server, a few connected UDP sockets to it, and its health."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sockets: list[socket.socket] = []
        self.failures = 0
        self.down_until = 0.0
        self.probe_at = 0.0
        self.last_answer = 0.0

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == socket.AF_INET6 else f"{self.host}:{self.port}"

    def usable(self, now: float) -> bool:
        return now >= self.down_until

    def failed(self, now: float) -> None:
        # Three failures in a row with no answer for a second take it out for
        # a while, growing to 10 s; one query a second is let through as a
        # probe (see Resolver._pick). Under load a few lost datagrams are not
        # a dead server: it still answers the others.
        self.failures += 1
        if self.failures >= 3 and now - self.last_answer > 1.0:
            self.down_until = now + min(10.0, 0.5 * 2 ** (self.failures - 3))

    def answered(self, now: float) -> None:
        self.failures = 0
        self.down_until = 0.0
        self.last_answer = now


class Waiter:
    """A client query waiting for its answer: where to send it, and its cache slot.

    `q` may be shared by every query with the same cache key (a verdict's parsed
    question): what differs between them, the ID and the largest answer the
    client takes, is kept here.
    """

    __slots__ = ("q", "sock", "addr", "writer", "client", "key", "id", "limit")

    def __init__(self, q, client, sock=None, addr=None, writer=None, key=None, qid=None, limit=0):
        self.q, self.client, self.sock, self.addr, self.writer, self.key = q, client, sock, addr, writer, key
        self.id = q.id if qid is None else qid
        self.limit = limit or q.reply_limit


class Pending:
    """One query in flight to an upstream, shared by every client asking the same question."""

    __slots__ = ("question", "waiters", "sent_at", "tried", "qid", "sock", "upstream", "then")

    def __init__(self, question: bytes):
        self.question = question  # the name in lower case, its type and class, as sent upstream
        self.waiters: list = []
        self.tried: list[Upstream] = []
        self.sent_at = 0.0
        self.qid = 0
        self.sock = None
        self.upstream = None
        # Called with the reply instead of answering waiters directly (safe search chases its target).
        self.then = None


class Counters(dict):
    def bump(self, key: str, n: int = 1) -> None:
        self[key] = self.get(key, 0) + n


class QueryLogWriter:
    """Per-second counts written as TSV files the hub ingests (docs/netfilter.md).

    Formatting ten thousand lines takes tens of milliseconds: it happens in a
    thread of its own, so the event loop hands over a dict and goes on
    answering (the GIL passes back to the loop every few milliseconds).
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.handle = None
        self.path = None
        self.opened_at = 0.0
        self.actions: dict[str, int] = {}  # queries by outcome, for the status file
        self.errors = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="query-log", daemon=True)
        self._thread.start()

    def submit(self, second: int, counts: dict, keep: bool) -> None:
        self._queue.put((second, counts, keep))

    def write_status(self, path: Path, status: dict) -> None:
        """Write the status file in this thread: a rename can wait on the file system's journal
        for tens of milliseconds while another process syncs a large file (a list compiling)."""
        self._queue.put(("status", (path, status)))

    def release(self, garbage) -> None:
        """Drop the last reference to `garbage` in this thread: freeing a replaced
        policy's caches (a hundred thousand objects) takes tens of milliseconds,
        which the loop would otherwise spend not answering."""
        self._queue.put(("release", garbage))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                item = ()
            if item is None:
                self._guarded(self.rotate, True)
                return
            if item and item[0] == "release":
                item = ()  # the last reference: the old policy is freed here, not in the loop
                continue
            if item and item[0] == "status":
                self._guarded(_write_status_file, *item[1])
                continue
            if item:
                self._guarded(self.record, *item)
            self._guarded(self.rotate)

    def _guarded(self, step, *args) -> None:
        try:
            step(*args)
        except OSError as exc:  # a full disk must not stop name resolution
            self.errors += 1
            log.warning("query log or status file not written: %s", exc)

    def record(self, second: int, counts: dict, keep: bool) -> None:
        """Count one second's queries by outcome and, when the log is kept, write their lines.

        Every LOG_CHUNK entries this thread sleeps a moment: the event loop lets go of the
        GIL at each system call, and a thread that kept computing would take it each time
        and hold it for a whole switch interval (the "convoy"), slowing every answer for as
        long as the second's lines take to format."""
        actions = self.actions
        lines = [] if keep else None
        for done, ((client_id, key), count) in enumerate(counts.items(), 1):
            group_id, name, qtype, action, category, rule = key
            actions[action] = actions.get(action, 0) + count
            if lines is not None:
                lines.append(f"{second}\t{client_id}\t{group_id}\t{name}\t{qtype}\t{action}\t{category}\t{rule}\t{count}\n")
            if not done % LOG_CHUNK:
                time.sleep(LOG_PAUSE)
        if lines:
            if self.handle is None:
                stamp = int(time.time() * 1000)
                self.path = self.directory / f"q-{stamp}-{os.getpid()}.part"
                self.handle = open(self.path, "a", encoding="utf-8")
                self.opened_at = time.monotonic()
            self.handle.write("".join(lines))

    def rotate(self, force: bool = False) -> None:
        if self.handle is None or (not force and time.monotonic() - self.opened_at < LOG_ROTATE_SECONDS):
            return
        self.handle.close()
        os.replace(self.path, self.path.with_suffix(".tsv"))
        self.handle = None


def _write_status_file(path: Path, status: dict) -> None:
    snapshot.write_json(path, status, durable=False)


def _big_receive_buffer(sock: socket.socket) -> None:
    """Room for a burst of queries (a classroom opening a page at once); beyond the
    system's rmem_max only when running as root (SO_RCVBUFFORCE)."""
    size = 8 * 1024 * 1024
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, size)
    except (OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


_CONTROLS = {code: "?" for code in [*range(32), 127]}


def _clean(text: str) -> str:
    """Names and rules go into tab-separated lines: no tabs, newlines or other controls."""
    return text.translate(_CONTROLS)[:300]


_UNUSUAL = re.compile(rb"[^a-z0-9._-]")


def _name_text(name: bytes) -> str:
    """A queried name as the query log writes it (most names need no escaping)."""
    if _UNUSUAL.search(name) is None:
        return name.decode("ascii")
    return _clean(name.decode("ascii", "backslashreplace"))


class Resolver:
    def __init__(self, state_dir: Path, hosts: list[str], port: int, block_page_port: int | None = None):
        self.state_dir = snapshot.ensure(Path(state_dir))
        self.hosts = hosts or ["::"]
        self.port = port
        self.block_page_port = block_page_port
        self.policy: engine.Policy | None = None
        self.policy_stamp = None
        self.policy_error = ""
        self.applied_at = None
        self.clients: dict[str, engine.Client] = {}
        self.upstreams: list[Upstream] = []
        self.upcache: dict[bytes, tuple] = {}
        self.inflight: dict[bytes, Pending] = {}
        # In flight upstream, by socket and query ID: (fd << 16) | id.
        self.pending: dict[int, Pending] = {}
        self.counters = Counters()
        self.upstream_queries = 0  # the busiest counter, kept as an attribute
        self.logc: dict = {}
        self.log_writer = QueryLogWriter(self.state_dir / snapshot.LOG)
        self.udp_sockets: list[socket.socket] = []
        self.tcp_servers = []
        self.tcp_clients = 0
        self.listen: list[str] = []
        self.started_at = time.time()
        self.stopping = None
        self._last_status = 0.0
        self._last_rotate = time.monotonic()
        self._rotate_index = 0
        self._tick_max = 0.0

    # --- life cycle ---------------------------------------------------------

    async def run(self, ready=None) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self._load_policy(initial=True)
        await self._bind()
        # The caches hold hundreds of thousands of objects: a collection
        # scanning them all stalls every answer for tens of milliseconds. So
        # the automatic collector is off; the youngest generation (what was
        # made in the last 50 ms) is collected with the timeout sweep, which
        # takes a millisecond or two, and everything older only once an hour.
        # Memory is freed by reference counting as usual; the collector is
        # only for reference cycles, which the UDP path does not make.
        gc.collect()
        gc.disable()
        self._last_full_gc = time.monotonic()
        # The query-log thread gives the GIL back to the loop within a millisecond (default 5 ms).
        sys.setswitchinterval(0.001)
        self._tick_handle = self.loop.call_later(1.0, self._tick)
        self._sweep_handle = self.loop.call_later(SWEEP_SECONDS, self._sweep)
        self._write_status()
        if self.block_page_port:
            from .blockpage import start_block_page

            self.block_page_servers = await start_block_page(self, self.hosts, self.block_page_port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self.loop.add_signal_handler(signum, self.stopping.set)
            except (NotImplementedError, RuntimeError):
                pass
        log.info("cophub dns listening on %s", ", ".join(self.listen))
        if ready is not None:
            ready()
        await self.stopping.wait()
        self._shutdown()

    def stop(self) -> None:
        if self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)

    def _shutdown(self) -> None:
        self._tick_handle.cancel()
        self._sweep_handle.cancel()
        gc.enable()
        for sock in self.udp_sockets:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        for server in self.tcp_servers:
            server.close()
        for upstream in self.upstreams:
            self._close_upstream_sockets(upstream)
        self._flush_log()
        self.log_writer.close()
        self._write_status(running=False)

    async def _bind(self) -> None:
        for host in self.hosts:
            udp, tcp = netsock.udp_and_tcp(host, self.port)
            _big_receive_buffer(udp)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            port = udp.getsockname()[1]
            self.udp_sockets.append(udp)
            self.loop.add_reader(udp.fileno(), self._on_udp, udp)
            server = await asyncio.start_server(self._tcp_client, sock=tcp, limit=70000)
            self.tcp_servers.append(server)
            self.listen.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            if self.port == 0:
                self.port = port

    # --- policy ---------------------------------------------------------------

    def _load_policy(self, initial: bool = False) -> None:
        path = self.state_dir / snapshot.POLICY
        stamp = snapshot.stamp(path)
        if stamp == self.policy_stamp and not initial:
            return
        self.policy_stamp = stamp
        try:
            data = snapshot.read_json(path) or {"settings": {}}
            policy = engine.load(self.state_dir, data, self.policy)
            policy.refresh(time.time())
            specs = self.blocked_specs(policy)
        except Exception as exc:  # a bad file keeps the policy in force
            self.policy_error = f"{type(exc).__name__}: {exc}"
            log.error("policy.json not applied: %s", self.policy_error)
            if self.policy is None:
                policy = engine.load(self.state_dir, {"settings": {}})
                policy.refresh(time.time())
                specs = self.blocked_specs(policy)
            else:
                return
        else:
            self.policy_error = ""
        old, self.policy = self.policy, policy
        self._blocked_specs = specs
        old_clients, self.clients = self.clients, {}
        if old is not None:
            self.log_writer.release((old, old_clients))
            del old, old_clients
        self.applied_at = time.time()
        self._set_upstreams(policy.upstreams)
        if self.upcache and len(self.upcache) > policy.cache_size:
            self.upcache.clear()
        log.info("policy %s applied (%d groups, rules %s)", policy.version, len(policy.groups), policy.table.version)

    def _set_upstreams(self, addresses: list[tuple[str, int]]) -> None:
        current = {(u.host, u.port): u for u in self.upstreams}
        wanted = []
        for host, port in addresses:
            upstream = current.pop((host, port), None) or Upstream(host, port)
            wanted.append(upstream)
        for gone in current.values():
            self._close_upstream_sockets(gone, later=True)
        self.upstreams = wanted

    def _client(self, address: str) -> engine.Client:
        client = self.policy.client(address)
        if len(self.clients) > 100_000:  # a flood of spoofed sources must not grow memory without end
            self.clients = {}
        self.clients[address] = client
        return client

    # --- the UDP hot path -------------------------------------------------------

    def _on_udp(self, sock: socket.socket) -> None:
        recv = sock.recvfrom
        send = sock.sendto
        clients = self.clients
        logc = self.logc
        now = time.monotonic()
        second = int(now)
        for _ in range(BATCH):
            try:
                packet, addr = recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            address = addr[0]
            client = clients.get(address)
            if client is None:
                try:
                    client = self._client(address)
                except ValueError:
                    continue
                clients = self.clients
            client.count += 1
            if client.limit and client.count > client.limit:
                self.counters.bump("rate_limited")
                key = (client.log_id, (client.group.id, "", 0, "rate_limited", "", ""))
                logc[key] = logc.get(key, 0) + 1
                continue
            end = packet.find(b"\x00", 12) + 5
            if end > 16:
                key = packet[2:end]
                entry = client.cache.get(key)
                if entry is not None and entry[0] > now:
                    if entry[4] != second:
                        entry[1] = wire.render(entry[2], second - entry[3])
                        entry[4] = second
                    tail = entry[1]
                    if len(tail) < 511 or self._fits(packet, end, tail):
                        try:
                            send(packet[:2] + tail, addr)
                        except OSError:
                            self.counters.bump("send_errors")
                        key = (client.log_id, entry[5])
                        logc[key] = logc.get(key, 0) + 1
                        continue
                verdict = client.verdicts.get(key)
                if verdict is not None:
                    # A question seen before: what parse_query would check of the rest of
                    # the packet (nothing after the question, or one well-formed EDNS
                    # version 0 record) and the largest answer the client takes.
                    size = len(packet)
                    if not packet[11]:
                        limit = 512 if size == end else 0
                    elif (size >= end + 11 and packet[end:end + 3] == b"\x00\x00\x29" and not packet[end + 6]
                          and size == end + 11 + (packet[end + 9] << 8 | packet[end + 10])):
                        limit = max(512, packet[end + 3] << 8 | packet[end + 4])
                    else:
                        limit = 0
                    if limit:
                        tail = verdict[0]
                        if tail is not None:  # blocked: the whole answer after the ID
                            # Sent and counted as a cache hit is, inline: a call per answer costs more.
                            try:
                                send(packet[:2] + tail, addr)
                            except OSError:
                                self.counters.bump("send_errors")
                            key = (client.log_id, verdict[1])
                            logc[key] = logc.get(key, 0) + 1
                        else:
                            self._forward(Waiter(verdict[1], client, sock, addr, None, key, packet[:2], limit), verdict[2], verdict[3])
                        continue
            self._slow_udp(packet, sock, addr, client, end)

    @staticmethod
    def _fits(packet: bytes, end: int, tail: bytes) -> bool:
        """A long cached answer fits the client when it advertised an EDNS payload big enough."""
        if len(packet) < end + 11 or packet[end + 1:end + 3] != b"\x00\x29":
            return False
        return len(tail) + 2 <= struct.unpack_from(">H", packet, end + 3)[0]

    def _slow_udp(self, packet: bytes, sock, addr, client: engine.Client, end: int) -> None:
        """A question not seen before (or malformed): parse, decide, answer. `end` is where the
        question ends if the name has no zero byte inside (the hot path's cache key)."""
        try:
            q = wire.parse_query(packet)
        except WireError:
            self.counters.bump("malformed")
            reply = self._notimp(packet)
            if reply is not None:
                self._safe_send(sock, reply, addr)
            return
        self._answer(Waiter(q, client, sock, addr, None, packet[2:end] if end == q.qend else None))

    @staticmethod
    def _notimp(packet: bytes) -> bytes | None:
        """A query with another opcode (NOTIFY, UPDATE …) is told NOTIMP; garbage is dropped."""
        if len(packet) < 12:
            return None
        flags = struct.unpack_from(">H", packet, 2)[0]
        if flags & wire.QR or not flags & wire.OPCODE_MASK:
            return None
        return wire.header_error(packet, wire.NOTIMP)

    def _safe_send(self, sock, data: bytes, addr) -> None:
        try:
            sock.sendto(data, addr)
        except OSError:
            self.counters.bump("send_errors")

    # --- TCP from clients -----------------------------------------------------

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.tcp_clients >= TCP_MAX_CLIENTS:
            writer.close()
            return
        self.tcp_clients += 1
        peer = writer.get_extra_info("peername")
        try:
            client = self._client(peer[0])
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                size = int.from_bytes(head, "big")
                message = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_SECONDS)
                self.counters.bump("tcp_queries")
                try:
                    q = wire.parse_query(message)
                except WireError:
                    self.counters.bump("malformed")
                    break  # a broken stream cannot be resynchronised
                client.count += 1
                if client.limit and client.count > client.limit:
                    self.counters.bump("rate_limited")
                    continue
                self._answer(Waiter(q, client, writer=writer))
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            self.tcp_clients -= 1
            writer.close()

    # --- deciding and answering -------------------------------------------------

    def _answer(self, w: Waiter) -> None:
        q = w.q
        policy = self.policy
        if q.edns and q.edns_version != 0:
            self._send(w, wire.error_reply(q, 16)[2:], log=None)  # BADVERS
            return
        client = w.client
        if not client.allowed:
            self._finish(w, wire.error_reply(q, wire.REFUSED)[2:], "refused", cache_for=0)
            return
        if q.qclass != wire.CLASS_IN:
            self._finish(w, wire.error_reply(q, wire.REFUSED)[2:], "refused", cache_for=0)
            return
        group = client.group
        known = group.decisions.get(q.name)
        if known is None:
            decision, q.text = group.decide(q.name), _name_text(q.name)
        else:
            decision, q.text = known
        if decision.kind == engine.BLOCK:
            full_ttl = policy.blocked_ttl
            ttl = group.seconds_left if group.seconds_left < full_ttl else full_ttl
            tail, ttl_at = self._blocked_tail(q, decision)
            if w.key is not None and ttl == full_ttl and len(tail) < 511:
                # The same answer for every query of this shape until the policy or the
                # schedule changes (verdicts are cleared then, and ten seconds before).
                text, rule = q.text, decision.log_rule
                log = (group.id, text, q.qtype, "blocked", decision.category, text if rule == text else rule)
                self._remember(client.verdicts, w.key, (tail, log))
                self._send(w, tail, log)
                return
            self._remember_decision(group, q, known, decision)
            answer = wire.Answer(tail, (ttl_at,), (full_ttl,))
            if ttl < full_ttl:  # the rules change sooner
                answer = wire.Answer(wire.render(answer, full_ttl - ttl), (ttl_at,), (ttl,))
            self._finish(w, answer, "blocked", decision, cache_for=ttl)
            return
        if decision.kind == engine.FORWARD and group.safe:
            target = group.safe.get(q.name)
            if target is not None:
                self._remember_decision(group, q, known, decision)
                self._safe_search(w, target)
                return
        if q.qtype == wire.ANY:
            # RFC 8482: a minimal answer instead of everything (no amplification).
            self._remember_decision(group, q, known, decision)
            hinfo = wire.rr(wire.POINTER_TO_QUESTION, wire.HINFO, 3600, b"\x07RFC8482\x00")
            self._finish(w, wire.build_answer(q, wire.NOERROR, [hinfo]), "forwarded", decision, cache_for=3600)
            return
        question = q.upstream_question()
        if w.key is not None:
            self._remember(client.verdicts, w.key, (None, q.shape(), decision, question))
        else:
            self._remember_decision(group, q, known, decision)
        self._forward(w, decision, question)

    @staticmethod
    def _remember(verdicts: dict, key: bytes, verdict: tuple) -> None:
        if len(verdicts) >= VERDICTS:
            Resolver._trim(verdicts)
        verdicts[key] = verdict

    @staticmethod
    def _remember_decision(group: engine.GroupPolicy, q, known, decision: engine.Decision) -> None:
        """Decisions by name, for the queries verdicts do not cover (TCP, safe search, ANY)."""
        if known is None:
            if len(group.decisions) >= VERDICTS:
                group.decisions.clear()
            group.decisions[q.name] = (decision, q.text)

    def _blocked_tail(self, q, decision: engine.Decision) -> tuple[bytes, int]:
        """The answer for a blocked name after its ID, with the policy's blocked TTL, and
        where that TTL is in it. The records are the same for every name (they point at
        the question): only the question and the rule differ."""
        specs = self._blocked_specs
        rcode, an, ns, body, ttl_at, _ttl = specs.get(q.qtype) or specs[0]
        flags = _REPLY_FLAGS | (q.flags & _COPIED_FLAGS) | rcode
        if q.edns:
            opt = decision.ede_opt
            if not opt:
                opt = decision.ede_opt = wire.opt_record(ede=(wire.EDE_BLOCKED, decision.rule.encode("utf-8", "replace")[:100]))
            tail = _COUNTS.pack(flags, 1, an, ns, 1) + q.question + body + opt
        else:
            tail = _COUNTS.pack(flags, 1, an, ns, 0) + q.question + body
        return tail, 10 + len(q.question) + ttl_at

    @staticmethod
    def blocked_specs(policy: engine.Policy) -> dict[int, tuple]:
        """qtype -> (rcode, answers, authorities, records, TTL offset in them, TTL); key 0: any other type."""
        ttl = policy.blocked_ttl
        soa = wire.synthetic_soa(ttl)
        negative = (wire.NXDOMAIN if policy.block_mode == "nxdomain" else wire.NOERROR, 0, 1, soa, 6, ttl)
        specs = {0: negative}
        addresses = {}
        if policy.block_mode == "null":
            addresses = {wire.A: b"\x00" * 4, wire.AAAA: b"\x00" * 16}
        elif policy.block_mode == "page":
            if policy.block_page_ipv4:
                addresses[wire.A] = socket.inet_pton(socket.AF_INET, policy.block_page_ipv4)
            if policy.block_page_ipv6:
                addresses[wire.AAAA] = socket.inet_pton(socket.AF_INET6, policy.block_page_ipv6)
        for qtype, address in addresses.items():
            specs[qtype] = (wire.NOERROR, 1, 0, wire.rr(wire.POINTER_TO_QUESTION, qtype, ttl, address), 6, ttl)
        return specs

    def _log_key(self, client, q, action: str, decision: engine.Decision | None) -> tuple:
        text = q.text or _name_text(q.name)
        if decision is None:
            return (client.group.id, text, q.qtype, action, "", "")
        return (client.group.id, text, q.qtype, action, decision.category, decision.log_rule)

    def _finish(self, w: Waiter, answer, action: str, decision: engine.Decision | None = None, *, cache_for: int = 0, stored_second: int | None = None) -> None:
        """Send an answer, log it, and keep it in the group's cache for `cache_for` seconds."""
        if isinstance(answer, bytes):
            answer = wire.Answer(answer)
        key = self._log_key(w.client, w.q, action, decision)
        now = time.monotonic()
        second = int(now) if stored_second is None else stored_second
        if w.key is not None and cache_for > 0:
            tail = answer.tail
            if not w.q.edns and len(tail) > 510:
                tail = wire.truncated(w.q).tail
                answer = wire.Answer(tail)
            hit_action = "cached" if action == "forwarded" else action
            hit_key = key[:3] + (hit_action,) + key[4:]
            cache = w.client.cache
            if len(cache) >= self.policy.cache_size:
                self._trim(cache)
            cache[w.key] = [now + cache_for, wire.render(answer, int(now) - second), answer, second, int(now), hit_key]
            tail = cache[w.key][1]
        else:
            tail = wire.render(answer, int(now) - second)
        self._send(w, tail, log=key)

    def _send(self, w: Waiter, tail: bytes, log: tuple | None) -> None:
        q = w.q
        if w.writer is not None:
            if w.writer.is_closing():
                return
            data = w.id + tail
            w.writer.write(len(data).to_bytes(2, "big") + data)
        else:
            if len(tail) + 2 > w.limit:
                tail = wire.truncated(q).tail
            self._safe_send(w.sock, w.id + tail, w.addr)
        if log is not None:
            key = (w.client.log_id, log)
            self.logc[key] = self.logc.get(key, 0) + 1

    @staticmethod
    def _trim(cache: dict) -> None:
        """Full: drop the oldest tenth (dicts keep insertion order). Expired entries
        are not swept: they are replaced when asked for again, or go with the oldest."""
        drop = max(1, len(cache) // 10)
        for key in list(itertools.islice(cache, drop)):
            del cache[key]

    # --- forwarding -------------------------------------------------------------

    def _forward(self, w: Waiter, decision: engine.Decision, question: bytes, then=None) -> None:
        """Answer from the upstream cache, or join or start the upstream query for `question`."""
        cached = self.upcache.get(question)
        now = time.monotonic()
        if cached is not None:
            expires, stored_second, reply = cached
            if expires > now:
                self.counters.bump("cache_hits")
                if then is not None:
                    then(reply, stored_second)
                else:
                    self._reply_from_upstream(w, reply, stored_second, decision, "cached")
                return
            del self.upcache[question]
        pending = self.inflight.get(question)
        if pending is None:
            pending = Pending(question)
            self.inflight[question] = pending
            pending.waiters.append((w, decision, then))
            self._send_upstream(pending)
        else:
            pending.waiters.append((w, decision, then))

    def _reply_from_upstream(self, w: Waiter, reply: wire.UpstreamReply, stored_second: int, decision, action: str) -> None:
        group = w.client.group
        now = time.monotonic()
        age = int(now) - stored_second
        to_change = group.seconds_left
        answer = wire.answer_from_reply(w.q, reply, ttl_cap=to_change + age)
        cache_for = 0
        if reply.cache_ttl > age and reply.rcode in (wire.NOERROR, wire.NXDOMAIN):
            cache_for = min(reply.cache_ttl - age, to_change, MAX_CACHE_TTL)
        self._finish(w, answer, action, decision, cache_for=cache_for, stored_second=stored_second)

    def _pick(self, pending: Pending, now: float) -> Upstream | None:
        """The next upstream to ask: each at most twice (a lost datagram is not a dead server),
        healthy ones first, a down one only as the once-a-second probe."""
        if not pending.tried:
            for upstream in self.upstreams:
                if now >= upstream.down_until:
                    return upstream
        untried = [u for u in self.upstreams if pending.tried.count(u) < 2]
        untried.sort(key=pending.tried.count)  # a server not asked yet before a second try
        for upstream in untried:
            if upstream.usable(now):
                return upstream
        for upstream in untried:  # every one is down: let one probe a second through
            if now >= upstream.probe_at:
                upstream.probe_at = now + 1.0
                return upstream
        return None

    def _send_upstream(self, pending: Pending) -> None:
        now = time.monotonic()
        upstream = self._pick(pending, now)
        if upstream is None:
            self._fail(pending)
            return
        pending.tried.append(upstream)
        sockets = upstream.sockets
        if len(sockets) == SOCKETS_PER_UPSTREAM:
            sock = sockets[_random.u16() % SOCKETS_PER_UPSTREAM]
        else:
            try:
                sock = self._new_upstream_socket(upstream)
            except OSError:
                upstream.failed(now)
                self._send_upstream(pending)
                return
        base = sock.fileno() << 16
        qid = _random.u16()
        while base | qid in self.pending:
            qid = _random.u16()
        pending.qid, pending.sock, pending.upstream, pending.sent_at = qid, sock, upstream, now
        self.pending[base | qid] = pending
        try:
            sock.send(qid.to_bytes(2, "big") + _QUERY_FLAGS_COUNTS + pending.question + wire.OPT_RECORD)
            self.upstream_queries += 1
        except OSError:
            del self.pending[base | qid]
            upstream.failed(now)
            self._send_upstream(pending)

    def _new_upstream_socket(self, upstream: Upstream) -> socket.socket:
        """One more socket to the upstream (until it has SOCKETS_PER_UPSTREAM), on a port the system picks."""
        sock = socket.socket(upstream.family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        _big_receive_buffer(sock)
        # connect(): the kernel then drops datagrams from any other source,
        # and an ICMP "port unreachable" surfaces as ECONNREFUSED at once.
        sock.connect((upstream.host, upstream.port))
        self.loop.add_reader(sock.fileno(), self._on_upstream, sock, upstream)
        upstream.sockets.append(sock)
        return sock

    def _close_upstream_sockets(self, upstream: Upstream, later: bool = False) -> None:
        sockets, upstream.sockets = upstream.sockets, []
        for sock in sockets:
            self._retire(sock, later)

    def _retire(self, sock: socket.socket, later: bool) -> None:
        def close():
            try:
                self.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass
            fd = sock.fileno()
            for key in [key for key in self.pending if key >> 16 == fd]:
                pending = self.pending.pop(key)
                self._retry(pending)
            sock.close()

        if later:
            # Answers to queries already sent on it may still arrive.
            self.loop.call_later(self.policy.timeout * 2 if self.policy else 2, close)
        else:
            close()

    def _on_upstream(self, sock: socket.socket, upstream: Upstream) -> None:
        base = sock.fileno() << 16
        pendings = self.pending
        recv = sock.recv
        now = time.monotonic()
        for _ in range(BATCH):
            try:
                data = recv(UPSTREAM_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                # The upstream's port is closed: every query on this socket failed.
                upstream.failed(time.monotonic())
                for key in [key for key in self.pending if key >> 16 == base >> 16]:
                    self._retry(self.pending.pop(key))
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            qid = data[0] << 8 | data[1]
            pending = pendings.get(base | qid)
            if pending is None:
                self.counters.bump("unexpected_replies")
                continue
            try:
                reply = wire.parse_reply(data, qid, pending.question)
            except WireError:
                # Possibly forged or for another question: keep waiting for the real one.
                self.counters.bump("bad_replies")
                continue
            del pendings[base | qid]
            if reply.truncated:
                self.counters.bump("upstream_tcp")
                asyncio.ensure_future(self._tcp_upstream(pending, upstream))
                continue
            if reply.rcode in (wire.SERVFAIL, wire.REFUSED) and len(set(pending.tried)) < len(self.upstreams):
                self._send_upstream(pending)
                continue
            upstream.failures = 0
            if upstream.down_until:
                upstream.answered(now)
            else:
                upstream.last_answer = now
            self._resolved(pending, reply, now)

    async def _tcp_upstream(self, pending: Pending, upstream: Upstream) -> None:
        """The UDP answer was truncated: ask the same upstream over TCP (RFC 7766)."""
        timeout = self.policy.timeout * 2
        qid = _random.u16()
        query = wire.upstream_query(qid, pending.question)
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(upstream.host, upstream.port), timeout)
            writer.write(len(query).to_bytes(2, "big") + query)
            await writer.drain()
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), timeout), "big")
            data = await asyncio.wait_for(reader.readexactly(size), timeout)
            reply = wire.parse_reply(data, qid, pending.question)
            if reply.truncated:
                raise WireError("truncated over TCP")
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, WireError) as exc:
            log.info("TCP to %s failed: %s", upstream.label, exc)
            upstream.failed(time.monotonic())
            self._retry(pending)
            return
        finally:
            if writer is not None:
                writer.close()
        upstream.answered(time.monotonic())
        self._resolved(pending, reply)

    def _resolved(self, pending: Pending, reply: wire.UpstreamReply, now: float | None = None) -> None:
        self.inflight.pop(pending.question, None)
        if now is None:
            now = time.monotonic()
        second = int(now)
        if reply.cache_ttl > 0 and reply.rcode in (wire.NOERROR, wire.NXDOMAIN):
            if len(self.upcache) >= self.policy.cache_size:
                self._trim(self.upcache)
            self.upcache[pending.question] = (now + min(reply.cache_ttl, MAX_CACHE_TTL), second, reply)
        if reply.cache_ttl <= 0:
            # Nothing to keep (TTL 0, SERVFAIL …): the reply goes out as it came, with the
            # client's ID, flags and question (the common case for names that change often).
            body, an, ns, ar, rcode = reply.body, reply.an, reply.ns, reply.ar, reply.rcode
            logc = self.logc
            for w, decision, then in pending.waiters:
                if then is not None:
                    then(reply, second)
                    continue
                q = w.q
                flags = _REPLY_FLAGS | (q.flags & _COPIED_FLAGS) | rcode
                if q.edns:
                    tail = _COUNTS.pack(flags, 1, an, ns, ar + 1) + q.question + body + wire.OPT_RECORD
                else:
                    tail = _COUNTS.pack(flags, 1, an, ns, ar) + q.question + body
                log = (w.client.group.id, q.text, q.qtype, "forwarded", decision.category, decision.log_rule)
                if w.writer is None and len(tail) + 2 <= w.limit:
                    try:
                        w.sock.sendto(w.id + tail, w.addr)
                    except OSError:
                        self.counters.bump("send_errors")
                    key = (w.client.log_id, log)
                    logc[key] = logc.get(key, 0) + 1
                else:  # TCP, or too long for the client: truncated
                    self._send(w, tail, log)
            return
        for w, decision, then in pending.waiters:
            if then is not None:
                then(reply, second)
            else:
                self._reply_from_upstream(w, reply, second, decision, "forwarded")

    def _retry(self, pending: Pending) -> None:
        if pending.question in self.inflight:
            self._send_upstream(pending)

    def _fail(self, pending: Pending) -> None:
        """No upstream answered: SERVFAIL to everyone waiting (not cached, so recovery is immediate)."""
        self.inflight.pop(pending.question, None)
        self.counters.bump("servfail")
        for w, decision, then in pending.waiters:
            self._send(w, wire.error_reply(w.q, wire.SERVFAIL)[2:], log=self._log_key(w.client, w.q, "servfail", decision))

    def _sweep(self) -> None:
        """Queries an upstream did not answer in time go to the next one."""
        self._sweep_handle = self.loop.call_later(SWEEP_SECONDS, self._sweep)
        gc.collect(0)
        if not self.pending:
            return
        now = time.monotonic()
        timeout = self.policy.timeout
        late = [key for key, pending in self.pending.items() if now - pending.sent_at > timeout]
        for key in late:
            pending = self.pending.pop(key)
            pending.upstream.failed(now)
            self.counters.bump("upstream_timeouts")
            self._retry(pending)

    # --- safe search ----------------------------------------------------------

    def _safe_search(self, w: Waiter, target: bytes) -> None:
        """Answer with a CNAME to the service's safe host and that host's addresses."""
        q = w.q
        decision = engine.Decision(engine.FORWARD, f"safe-search:{target.decode()}", "safe_search")
        target_wire = wire.dotted_to_wire(target)
        if q.qtype not in (wire.A, wire.AAAA, wire.CNAME):
            # HTTPS/SVCB records could carry the unfiltered addresses: answer that there are none.
            self._finish(w, wire.build_answer(q, wire.NOERROR, authority=[wire.synthetic_soa(300)]), "safe_search", decision, cache_for=300)
            return
        cname = wire.rr(wire.POINTER_TO_QUESTION, wire.CNAME, 300, target_wire)
        if q.qtype == wire.CNAME:
            self._finish(w, wire.build_answer(q, wire.NOERROR, [cname]), "safe_search", decision, cache_for=300)
            return
        owner = struct.pack(">H", 0xC000 | (12 + len(q.question) + 12))  # the target name inside the CNAME

        def then(reply: wire.UpstreamReply, stored_second: int) -> None:
            age = int(time.monotonic()) - stored_second
            records = wire.records_of_type(reply, q.qtype) if reply.rcode == wire.NOERROR else []
            if not records:
                self._send(w, wire.error_reply(q, wire.SERVFAIL)[2:], log=self._log_key(w.client, q, "servfail", decision))
                return
            ttl = min([300] + [max(0, t - age) for t, _ in records])
            answers = [wire.rr(wire.POINTER_TO_QUESTION, wire.CNAME, ttl, target_wire)]
            answers += [wire.rr(owner, q.qtype, ttl, rdata) for _, rdata in records]
            cache_for = min(ttl, w.client.group.seconds_left)
            self._finish(w, wire.build_answer(q, wire.NOERROR, answers), "safe_search", decision, cache_for=cache_for)

        self._forward(w, decision, target_wire + q.question[-4:], then=then)

    # --- every second -------------------------------------------------------

    def _tick(self) -> None:
        self._tick_handle = self.loop.call_later(1.0, self._tick)
        started = time.perf_counter()
        try:
            for client in self.clients.values():
                client.count = 0
            self._load_policy()
            for group in self.policy.refresh(time.time()):
                group.cache.clear()  # a slot started or ended, an unblock ran out
                group.decisions.clear()
                group.verdicts.clear()
            blocked_ttl = self.policy.blocked_ttl
            for group in self.policy.all_groups:
                if group.seconds_left <= blocked_ttl and group.verdicts:
                    group.verdicts.clear()  # no blocked answer may outlive the coming change
            self._flush_log()
            now = time.monotonic()
            if now - self._last_status >= STATUS_SECONDS:
                self._write_status()
            if now - self._last_rotate >= SOCKET_ROTATE_SECONDS:
                self._rotate_socket()
            if now - self._last_full_gc >= FULL_GC_SECONDS:
                self._last_full_gc = now
                gc.collect()
        except Exception:  # the tick must keep running whatever one step does
            log.exception("resolver tick failed")
        # The longest the loop was busy with its once-a-second work, in the status file.
        self._tick_max = max(self._tick_max * 0.98, time.perf_counter() - started)

    def _flush_log(self) -> None:
        counts, self.logc = self.logc, {}
        if counts:
            self.log_writer.submit(int(time.time()), counts, self.policy is not None and self.policy.log_queries)

    def _rotate_socket(self) -> None:
        """Replace one upstream socket so the source ports keep changing."""
        self._last_rotate = time.monotonic()
        for upstream in self.upstreams:
            if upstream.sockets:
                index = self._rotate_index % len(upstream.sockets)
                old = upstream.sockets.pop(index)
                self._retire(old, later=True)
        self._rotate_index += 1

    def _write_status(self, running: bool = True) -> None:
        self._last_status = time.monotonic()
        policy = self.policy
        status = {
            "pid": os.getpid(),
            "running": running,
            "started_at": self.started_at,
            "written_at": time.time(),
            "listen": self.listen,
            "policy_version": policy.version if policy else "",
            "rules_version": policy.table.version if policy else "",
            "policy_error": self.policy_error,
            "applied_at": self.applied_at,
            "counters": {**self.counters, **self.log_writer.actions, "upstream_queries": self.upstream_queries,
                         "log_errors": self.log_writer.errors, "tick_ms_max": round(self._tick_max * 1000, 1)},
            "cache_entries": len(self.upcache) + sum(len(g.cache) for g in policy.all_groups) if policy else 0,
            "clients": len(self.clients),
            "upstreams": [{"address": u.label, "up": u.usable(time.monotonic())} for u in self.upstreams],
        }
        if running:
            self.log_writer.write_status(self.state_dir / snapshot.STATUS, status)
            return
        try:  # the last one, after the writer thread has stopped
            _write_status_file(self.state_dir / snapshot.STATUS, status)
        except OSError as exc:
            log.warning("status not written: %s", exc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cophub dns", description="cophub's filtering DNS resolver")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--host", action="append", dest="hosts", help="address to listen on (repeatable; :: is IPv6 and IPv4)")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--block-page-port", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("COPHUB_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    resolver = Resolver(args.state_dir, args.hosts or ["::"], args.port, args.block_page_port)
    try:
        asyncio.run(resolver.run())
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EADDRINUSE):
            ports = f"{args.port}" + (f" or {args.block_page_port}" if args.block_page_port else "")
            print(f"cophub dns: cannot listen on port {ports}: {exc.strerror}", file=sys.stderr)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
