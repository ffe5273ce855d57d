"""The network filter's resolver beside dnsmasq, both with the same 1,000,000-name block list.

    .venv/bin/python bench/dns.py            # about 4 minutes
    .venv/bin/python bench/dns.py --quick    # one round of 5 s runs, about 2 minutes
    .venv/bin/python bench/dns.py --quick --resolvers dnsmasq   # the anchor alone

Everything listens on 127.0.0.1 only, in a temporary folder removed at the end.

1. **Data** (fixed seed): `--domains` (1,000,000) made-up names of realistic
   shapes (`shopxinh.vn`, `cdn.lavumo.com`, `bet-88.xyz`...) written as a hosts
   file (`0.0.0.0 name`), the way Pi-hole loaded gravity into dnsmasq. A
   query file for dnsperf with the mix `MIX` (below): names the upstream
   answers with a long TTL (**cached** after their first query), names of the
   list (**blocked**) and unique names the upstream answers with TTL 0 (never
   cached, so **forwarded** on every pass through the file).
2. **Upstream**: a third dnsmasq on its own port, the authority both resolvers
   forward to: `--address=/fwd.bench/192.0.2.1` with `--local-ttl=0`, and
   `CACHED_NAMES` `--host-record=cN.cached.bench,192.0.2.2,3600`. Its own
   statistics (SIGUSR1) tell how many queries of each run reached it, so a
   resolver that cached the TTL-0 answers would show.
3. **The anchor**: dnsmasq 2.90 (Debian) with `--addn-hosts=<the list>`,
   `--server=<upstream>`, `--cache-size=10000`, no query log.
   **cophub**: the list compiled by `cophub.netfilter.rules.compile_lists`
   (in a child process, as the worker does: timed, printed apart), a
   `policy.json` with one default group using the list's category,
   `block_mode` "null" (0.0.0.0, as the hosts file answers), the same cache
   size, **query log on** (cophub's default; dnsmasq logs nothing), rate limit
   off; started as `python -m cophub.netfilter.resolver`.
4. **Start-up**: spawn until the first 0.0.0.0 answer to a blocked name (a UDP
   query every 5 ms). dnsmasq parses the hosts file here; cophub maps the
   compiled file (its compile time is printed on its own line). `--rounds`
   start/stop cycles alternating which starts first, then both start a last
   time and stay up for the rest.
5. **Queries per second**: dnsperf (`-c CLIENTS -q OUTSTANDING`) for
   `--seconds` after a warm-up of one pass through the query file (`-n 1`:
   every name asked once, so "cached" names are cached and both resolvers
   have met every name, as a school's resolver has met the names its
   pupils use), alternating which resolver goes first in each round; the
   median over the rounds counts (with an even `--rounds`, the mean of the
   middle two). dnsperf's "lost" (no answer within 2 s) is printed beside.
   Round 1's warm-up pass is printed on its own row: there 60 % of the
   queries are names neither resolver has seen (dnsmasq has the list in its
   hash table from start-up; cophub parses, decides and remembers each).
6. **Latency**: dnsperf again, rate-limited (`-Q`) to `LATENCY_LOAD` of the
   lower of the two median rates, so both are compared at the same offered
   load, with `-v` (one line per answer with its latency; `-b 4096` or dnsperf
   itself drops answers while printing): p50 and p99 of each round, the
   median over the rounds, and the queries lost (not in the percentiles).
   Verbose printing costs dnsperf CPU on the shared cores, alike for both.
7. **Memory**: VmRSS (and VmHWM, anonymous/file split) of the process and its
   children from /proc, after the load.
8. **Reload gap**: a probe thread sends a query every millisecond (blocked and
   cached names, and every 10th a marker name that only the new list
   blocks) and records when each answer arrives. A slightly changed list
   (`RELOAD_CHANGED` names out, as many in, the marker among them) is written;
   dnsmasq gets SIGHUP (it re-reads the hosts file then); for cophub a child
   process compiles it and `policy.json` is rewritten to point at it (the
   resolver polls the file each second). The gap is the longest interval
   between two answers from the trigger until 1 s after the marker first
   answers 0.0.0.0 (including the last answer before the trigger); the same
   measure over the `BASELINE` seconds before the trigger shows the probe's
   own jitter. For cophub the gap is also split at the moment policy.json is
   rewritten: while the child compiles (the machine's two cores are shared
   with it) and from then on (the resolver's swap). A gap under `NO_GAP_MS`,
   or under twice the probe's own longest gap before that reload (the
   machine's noise, not the resolver), counts as none. The probe's longest
   pause between its own sends in the same window is printed beside: a gap
   no longer than it is the probe's process stalling, not the resolver (the
   benchmark's million names are frozen out of its garbage collector, whose
   full passes once stopped the probe for 50 ms).

The machine has 2 cores and other people's work on it: dnsperf, the upstream
and the resolver under test share them, so compare the two resolvers of the
same run, not with another run's figures. The exit status is 1 when
something could not run (a resolver does not start or answers wrongly, a
tool is missing, cophub's resolver is not there yet), 0 otherwise, whether or
not the goals are met.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

# --- What is measured (printed at the start) -----------------------------------------------------------------

MIX = {"cached": 0.40, "blocked": 0.30, "forwarded": 0.30}  # shares of the dnsperf query file
QUERY_LINES = 100_000  # dnsperf loops over the file; 30,000 unique forwarded names per pass
CACHED_NAMES = 1000  # cN.cached.bench, TTL 3600 at the upstream
CACHE_SIZE = 10_000  # both resolvers
CLIENTS, OUTSTANDING = 8, 200  # dnsperf -c, -q for the throughput runs
WARMUP_LIMIT = 120.0  # seconds at most for the warm-up pass through the query file
LATENCY_LOAD = 0.70  # offered load of the latency runs, share of the lower median rate
RELOAD_CHANGED = 1000  # names out of the list and into it at each reload
NO_GAP_MS = 50.0  # a reload gap below this, or below twice the probe's own longest gap just before, counts as none
BASELINE = 2.0  # seconds of probing before a reload: the probe's own longest gap, printed beside the reload's
STABLE_FROM = 100_000  # names from here on are never removed by a reload: the query file's blocked names
SEED = 20261201

DNSMASQ, DNSPERF = "/usr/sbin/dnsmasq", "/usr/bin/dnsperf"
FWD_IP, CACHED_IP, NULL_IP = "192.0.2.1", "192.0.2.2", "0.0.0.0"

TLDS = [("com", 40), ("net", 10), ("vn", 8), ("com.vn", 8), ("xyz", 6), ("org", 6), ("info", 4), ("top", 4),
        ("online", 3), ("site", 3), ("io", 3), ("club", 2), ("net.vn", 2), ("me", 2), ("cc", 2), ("tk", 2),
        ("live", 2), ("co", 2), ("biz", 1), ("pro", 1)]
SUBDOMAINS = ["www", "m", "cdn", "ads", "api", "static", "img", "track", "pixel", "app", "mail", "go", "s", "tr"]
ONSETS = ["b", "c", "d", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "x", "y", "ch", "ng", "nh", "th", "tr", "ph", "qu"]
VOWELS = ["a", "e", "i", "o", "u", "y", "ai", "ao", "au", "ie", "oa", "uo", "ay", "eo"]
WORDS = ["bet", "win", "shop", "game", "live", "club", "casino", "xinh", "hot", "vip", "fun", "play", "tube", "free",
         "sex", "xem", "phim", "88", "247", "online", "vn", "news", "deal", "sale", "cash", "lucky", "top", "best"]


# --- Data -----------------------------------------------------------------------------------------------------


def _label(rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.55:  # syllables: "lavumo", "nhaxinh"
        return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 4)))
    if shape < 0.80:  # word + syllables or digits: "betnhao", "win247"
        tail = str(rng.randint(1, 999)) if rng.random() < 0.4 else rng.choice(ONSETS) + rng.choice(VOWELS)
        return rng.choice(WORDS) + tail
    if shape < 0.92:  # hyphenated: "shop-lavu"
        return rng.choice(WORDS) + "-" + "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(2))
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(8, 16)))  # tracker-like


def make_domains(count: int, seed: int) -> list[str]:
    """`count` distinct names: a label (or two) under a weighted mix of TLDs, a quarter with a subdomain."""
    rng = random.Random(seed)
    tlds, weights = zip(*TLDS)
    seen: set[str] = set()
    names: list[str] = []
    while len(names) < count:
        name = _label(rng) + "." + rng.choices(tlds, weights)[0]
        if rng.random() < 0.25:
            name = rng.choice(SUBDOMAINS) + "." + name
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def write_hosts(path: Path, names: list[str]) -> None:
    """A hosts file, written beside and renamed over: a reader never sees half a list."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        out.write("# bench/dns.py block list\n")
        out.writelines(f"0.0.0.0 {name}\n" for name in names)
    os.replace(tmp, path)


def reloaded_list(base: list[str], generation: int, marker: str) -> list[str]:
    """The list of reload number `generation`: RELOAD_CHANGED names of the base out, as many new ones in (the marker first)."""
    out = base[generation * RELOAD_CHANGED:(generation + 1) * RELOAD_CHANGED]
    assert (generation + 1) * RELOAD_CHANGED <= STABLE_FROM, "too many reloads for the stable part of the list"
    removed = set(out)
    added = [marker] + [f"new{generation}-{i}.reload.bench" for i in range(RELOAD_CHANGED - 1)]
    return [name for name in base if name not in removed] + added


def write_queries(path: Path, names: list[str], seed: int) -> dict[str, int]:
    """dnsperf's query file with the MIX, shuffled; returns the count of each kind."""
    rng = random.Random(seed + 1)
    counts = {kind: round(QUERY_LINES * share) for kind, share in MIX.items()}
    lines = [f"c{rng.randint(1, CACHED_NAMES)}.cached.bench A" for _ in range(counts["cached"])]
    lines += [f"{name} A" for name in rng.sample(names[STABLE_FROM:], counts["blocked"])]
    lines += [f"q{i}-{rng.getrandbits(32):08x}.fwd.bench A" for i in range(counts["forwarded"])]
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    return counts


# --- DNS over UDP, just enough for the probes ------------------------------------------------------------------


def dns_query(name: str, qid: int) -> bytes:
    """A standard query for the A record of `name`, recursion desired."""
    qname = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)


def dns_answer(packet: bytes) -> tuple[int, int, str | None]:
    """(id, rcode, first IPv4 address in the answer or None); the probes send no EDNS, so an A answer ends with it."""
    qid, flags, _qd, ancount = struct.unpack(">HHHH", packet[:8])
    rcode = flags & 0xF
    if rcode == 0 and ancount and len(packet) >= 16 and packet[-6:-4] == b"\x00\x04":
        return qid, rcode, socket.inet_ntoa(packet[-4:])
    return qid, rcode, None


def ask(port: int, name: str, timeout: float = 1.0, tries: int = 3) -> str | None:
    """One query, its IPv4 answer ("rcode N" when there is none); sent again after `timeout`, since a resolver
    that has just started may still have a full socket buffer of start-up polls and drop it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(tries):
            qid = random.getrandbits(16)
            sock.sendto(dns_query(name, qid), ("127.0.0.1", port))
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    got, rcode, ip = dns_answer(sock.recv(4096))
                    if got == qid:
                        return ip or f"rcode {rcode}"
            except (TimeoutError, socket.timeout):
                pass
    return None


def wait_blocking(port: int, name: str, process: subprocess.Popen, timeout: float = 180) -> float:
    """monotonic time of the first 0.0.0.0 answer for `name`, asking every 5 ms (earlier answers of any kind do not count)."""
    query = dns_query(name, 4242)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.005)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"exited with code {process.returncode} before answering")
            sock.sendto(query, ("127.0.0.1", port))
            try:
                while True:  # drain: answers to earlier polls may arrive together once the resolver is up
                    if dns_answer(sock.recv(4096))[2] == NULL_IP:
                        return time.monotonic()
            except (TimeoutError, socket.timeout, ConnectionRefusedError):
                pass
    raise RuntimeError(f"no 0.0.0.0 answer for {name} within {timeout:.0f} s")


class Probe:
    """One query a millisecond from a sender thread; a receiver thread notes when each answer arrives.

    The names go round: the marker (blocked only by the new list), then blocked and cached names.
    """

    def __init__(self, port: int, names: list[str], marker: str, interval: float = 0.001):
        self.port, self.names, self.marker, self.interval = port, names, marker, interval
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.settimeout(0.1)
        self.sent: dict[int, tuple[float, str]] = {}
        self.answers: list[float] = []
        self.marker_blocked: float | None = None
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True), threading.Thread(target=self._receive, daemon=True)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=2)
        self.sock.close()

    def _send(self) -> None:
        due, qid = time.monotonic(), 0
        cycle = [self.marker] + self.names
        while not self.stopping.is_set():
            name = cycle[qid % len(cycle)]
            self.sent[qid] = (time.monotonic(), name)
            self.sock.sendto(dns_query(name, qid), ("127.0.0.1", self.port))
            qid = (qid + 1) % 65536
            due += self.interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                due = time.monotonic()  # fell behind (the machine is busy): do not burst to catch up

    def _receive(self) -> None:
        while not self.stopping.is_set():
            try:
                packet = self.sock.recv(4096)
            except (TimeoutError, socket.timeout):
                continue
            now = time.monotonic()
            self.answers.append(now)
            qid, _rcode, ip = dns_answer(packet)
            sent = self.sent.get(qid)
            if sent and sent[1] == self.marker and ip == NULL_IP and self.marker_blocked is None:
                self.marker_blocked = now

    def longest_gap(self, start: float, end: float) -> float:
        """Longest interval between answers in [start, end], counting from the last answer before `start`."""
        return _longest_interval(self.answers, start, end)

    def longest_pause(self, start: float, end: float) -> float:
        """Longest interval between the probe's own sends in [start, end]: its host process stalled, not the resolver."""
        return _longest_interval([sent for sent, _name in list(self.sent.values())], start, end)


def _longest_interval(moments: list[float], start: float, end: float) -> float:
    times = sorted(moments)
    before = [t for t in times if t < start]
    window = ([before[-1]] if before else [start]) + [t for t in times if start <= t <= end] + [end]
    return max(b - a for a, b in zip(window, window[1:]))


# --- Processes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue


class Processes:
    """Every process the benchmark starts, each in its own session; `close()` ends them all."""

    def __init__(self):
        self.running: list[subprocess.Popen] = []

    def spawn(self, command: list[str], log: Path, **kwargs) -> subprocess.Popen:
        with log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=ROOT, **kwargs)
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        if process in self.running:
            self.running.remove(process)

    def close(self) -> None:
        for process in list(self.running):
            self.stop(process)


def dnsmasq_command(port: int, log: Path, *options: str) -> list[str]:
    """dnsmasq with nothing from the system (no resolv.conf, no /etc/hosts, no config file), in the foreground."""
    command = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
               f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", f"--cache-size={CACHE_SIZE}",
               "--dns-forward-max=10000", f"--log-facility={log}"]
    if os.geteuid() == 0:
        command.append("--user=root")  # it would switch to "nobody", who cannot read the temporary folder on SIGHUP
    return command + list(options)


class Upstream:
    """The authority both resolvers forward to, and how many queries reached it (its SIGUSR1 statistics)."""

    def __init__(self, procs: Processes, work: Path):
        self.port = free_port()
        self.log = work / "upstream.log"
        records = [f"--host-record=c{i}.cached.bench,{CACHED_IP},3600" for i in range(1, CACHED_NAMES + 1)]
        self.process = procs.spawn(dnsmasq_command(self.port, self.log, "--local-ttl=0", f"--address=/fwd.bench/{FWD_IP}",
                                                   *records), work / "upstream.out")
        deadline = time.monotonic() + 10
        while ask(self.port, "c1.cached.bench", timeout=0.2) != CACHED_IP:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the upstream dnsmasq did not start:\n" + (work / "upstream.out").read_text()[-2000:])

    def answered(self) -> int:
        """Queries the upstream has answered so far (it answers every one itself)."""
        pattern = re.compile(r"queries answered locally (\d+)")
        before = len(pattern.findall(self.log.read_text()))
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = pattern.findall(self.log.read_text())
            if len(found) > before:
                return int(found[-1])
            time.sleep(0.02)
        raise RuntimeError("the upstream did not report its statistics")


# --- The two resolvers ----------------------------------------------------------------------------------------


class Resolver:
    """Common to both: start (timed to the first blocked answer), memory, reload."""

    name = ""

    def __init__(self, procs: Processes, work: Path, upstream: Upstream, probe_name: str, hosts: Path):
        self.procs, self.work, self.upstream, self.probe_name, self.hosts = procs, work, upstream, probe_name, hosts
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> float:
        """Start it; seconds from spawn to the first 0.0.0.0 answer for a blocked name."""
        log = self.work / f"{self.name}.out"
        spawned = time.monotonic()
        self.process = self.procs.spawn(self.command(), log)
        try:
            return wait_blocking(self.port, self.probe_name, self.process) - spawned
        except RuntimeError as error:
            raise RuntimeError(f"{self.name}: {error}\n{log.read_text(errors='replace')[-3000:]}") from None

    def stop(self) -> None:
        if self.process:
            self.procs.stop(self.process)
            self.process = None

    def memory(self) -> dict[str, float]:
        return memory_mib(self.process.pid)

    def prepare_reload(self, names: list[str]) -> None:
        """The changed list arrives (not timed: for dnsmasq a script writes it, for cophub the list refresh downloads it)."""
        write_hosts(self.hosts, names)

    def reload(self, names: list[str]) -> None:
        """Make `names` the list in use (returns when the resolver has been told; the probe sees when it is in use)."""
        raise NotImplementedError


class Dnsmasq(Resolver):
    name = "dnsmasq"

    def command(self) -> list[str]:
        return dnsmasq_command(self.port, self.work / "dnsmasq.log", f"--addn-hosts={self.hosts}",
                               f"--server=127.0.0.1#{self.upstream.port}")

    def reload(self, names: list[str]) -> None:
        self.process.send_signal(signal.SIGHUP)  # it reads the hosts file again, in its one thread


class Cophub(Resolver):
    name = "cophub"

    def __init__(self, *args, state: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.state = state
        self.compile_seconds: list[float] = []

    def command(self) -> list[str]:
        return [sys.executable, "-m", "cophub.netfilter.resolver", "--state-dir", str(self.state),
                "--host", "127.0.0.1", "--port", str(self.port)]

    def compile(self) -> dict:
        """Compile the hosts file in a child process (the worker's job), then point policy.json at the result."""
        started = time.monotonic()
        out = subprocess.run([sys.executable, __file__, "--child", "compile", "--hosts", str(self.hosts),
                              "--out", str(self.state / "compiled")], capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise RuntimeError(f"compile_lists failed:\n{out.stderr[-3000:]}")
        compiled = json.loads(out.stdout.splitlines()[-1])
        self.compile_seconds.append(time.monotonic() - started)
        write_policy(self.state, self.upstream.port, compiled)
        return compiled

    def reload(self, names: list[str]) -> None:
        self.compile()  # the worker's job, timed: the new list is in use only once it is compiled


def write_policy(state: Path, upstream_port: int, compiled: dict) -> None:
    """policy.json (docs/netfilter.md): one default group blocking the list's category, null answers, log on, no rate limit."""
    from cophub.netfilter.snapshot import POLICY, write_json

    write_json(state / POLICY, {
        "format": 1,
        "version": time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z-bench",
        "timezone": "Asia/Ho_Chi_Minh",
        "rules": {"bin": compiled["bin"], "meta": compiled["meta"]},
        "settings": {
            "upstreams": [f"127.0.0.1:{upstream_port}"], "upstream_timeout_ms": 1000,
            "block_mode": "null", "block_page_ipv4": "", "block_page_ipv6": "", "blocked_ttl": 10,
            "cache_size": CACHE_SIZE, "privacy": "hash", "hash_key": "ab" * 32,
            "log_queries": True,  # cophub's default: the bench pays for the query log, dnsmasq logs nothing
            "rate_limit_qps": 0, "rate_limit_exempt": ["127.0.0.1", "::1"], "hub_url": "", "default_group": 1,
        },
        "services": {},
        "groups": [{"id": 1, "name": "bench", "priority": 0, "categories": ["ads"], "blocked_services": [],
                    "safe_search": {}, "allow": [], "deny": [], "ranges": [], "slots": [], "unblocks": []}],
    })


def child_compile(hosts: Path, out_dir: Path) -> int:
    """Runs in its own process: compile_lists of the one hosts list; prints where the result is (relative to the state folder)."""
    from cophub.netfilter.rules import ListInput, compile_lists

    os.nice(10)  # as cophub's worker compiles (rules.compile_in_background): below the resolver
    compiled = compile_lists([ListInput(slot=1, list_id=1, name="bench 1M hosts", category="ads", path=hosts,
                                        match_subdomains=False)], out_dir)
    state = out_dir.parent
    print(json.dumps({"version": compiled.version, "bin": str(Path(compiled.bin_path).relative_to(state)),
                      "meta": str(Path(compiled.meta_path).relative_to(state)), "counts": compiled.counts}, default=str))
    return 0


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile of a process and its children, MiB."""
    pids = [pid] + children(pid)
    total = {"VmRSS": 0.0, "VmHWM": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in total:
                    total[key] += int(value.split()[0]) / 1024
        except FileNotFoundError:
            pass
    return total


def children(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
            found += kids
            todo += kids
    return found


# --- dnsperf --------------------------------------------------------------------------------------------------


def dnsperf(port: int, queries: Path, seconds: float, out: Path, rate: float | None = None, passes: int | None = None) -> dict:
    """One dnsperf run of `seconds` (or of `passes` through the query file); with `rate`,
    rate-limited and verbose, with the latency of every answer."""
    command = [DNSPERF, "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", f"{seconds:g}",
               "-c", str(CLIENTS), "-T", "1", "-t", "2", "-b", "4096"]  # big buffers: a verbose dnsperf drops answers without
    if passes:
        command += ["-n", str(passes)]
    command += ["-q", str(OUTSTANDING)] if rate is None else ["-q", str(OUTSTANDING * 5), "-Q", str(int(rate)), "-v"]
    with out.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=seconds + 60)
    text = out.read_text()
    if done.returncode:
        raise RuntimeError(f"dnsperf failed ({done.returncode}):\n{text[-2000:]}")

    def number(label: str) -> float:
        return float(re.search(rf"{label}:\s+([\d.]+)", text).group(1))

    result = {"qps": number("Queries per second"), "sent": number("Queries sent"), "completed": number("Queries completed"),
              "lost": number("Queries lost")}
    codes = re.search(r"Response codes:\s+(.*)", text)
    result["codes"] = codes.group(1).strip() if codes else ""
    # Answers that are not NOERROR (a SERVFAIL when the resolver gave up on the upstream, say), plus the lost ones.
    result["failed"] = result["lost"] + sum(int(n) for code, n in re.findall(r"(\w+) (\d+) \(", result["codes"]) if code != "NOERROR")
    if rate is not None:
        latencies = sorted(float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", text, re.M))
        result.update(p50=percentile(latencies, 0.50), p99=percentile(latencies, 0.99), max=latencies[-1] if latencies else 0.0)
    out.unlink()  # a verbose run is tens of megabytes
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


# --- The phases -----------------------------------------------------------------------------------------------


def in_turn(resolvers: list[Resolver], round_: int) -> list[Resolver]:
    """Alternate which one goes first, so that a busy spell on the machine hits both alike."""
    return resolvers if round_ % 2 == 0 else resolvers[::-1]


def check_answers(resolver: Resolver, blocked: str) -> None:
    """Each kind of name gets the answer it should, before anything is timed."""
    expect = {blocked: NULL_IP, "c7.cached.bench": CACHED_IP, "check-1.fwd.bench": FWD_IP}
    for name, want in expect.items():
        got = ask(resolver.port, name)
        if got != want:
            raise RuntimeError(f"{resolver.name} answered {got!r} for {name}, expected {want}")


def throughput_round(resolver: Resolver, queries: Path, args, work: Path) -> dict:
    """A warm-up of one pass through the query file (every name asked once), then the timed run."""
    warm = dnsperf(resolver.port, queries, WARMUP_LIMIT, work / "warm.txt", passes=1)
    before = resolver.upstream.answered()
    result = dnsperf(resolver.port, queries, args.seconds, work / "run.txt")
    result["upstream_share"] = (resolver.upstream.answered() - before) / max(1, result["completed"])
    result["warmup_qps"] = warm["qps"]
    return result


def reload_round(resolver: Resolver, base: list[str], generation: int, probe_names: list[str]) -> dict:
    """Trigger a reload under the 1 ms probe; the longest answer gap until 1 s after the new list blocks its marker."""
    marker = f"reload-{generation}.fwd.bench"
    names = reloaded_list(base, generation, marker)
    resolver.prepare_reload(names)
    if ask(resolver.port, marker) != FWD_IP:
        raise RuntimeError(f"{resolver.name}: the marker {marker} is blocked before the reload")
    with Probe(resolver.port, probe_names, marker) as probe:
        time.sleep(BASELINE)
        trigger = time.monotonic()
        resolver.reload(names)
        told = time.monotonic()  # dnsmasq: SIGHUP sent; cophub: compiled in a child process and policy.json rewritten
        deadline = trigger + 120
        while probe.marker_blocked is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if probe.marker_blocked is None:
            raise RuntimeError(f"{resolver.name}: the new list was not in use 120 s after the reload")
        time.sleep(1.0)
    end = probe.marker_blocked + 1.0
    return {"gap": probe.longest_gap(trigger, end), "jitter": probe.longest_gap(trigger - BASELINE, trigger),
            "gap_before_told": probe.longest_gap(trigger, told), "gap_after_told": probe.longest_gap(told, end),
            "probe_pause": probe.longest_pause(trigger, end),
            "active": probe.marker_blocked - trigger, "told": told - trigger, "sent": len(probe.sent),
            "answered": len(probe.answers), "hwm": resolver.memory()["VmHWM"]}


def cophub_available() -> str | None:
    """Why cophub's resolver cannot be measured yet, or None."""
    for module in ("resolver", "rules"):
        if not (ROOT / "src" / "cophub" / "netfilter" / f"{module}.py").exists():
            return f"resolver not available yet: src/cophub/netfilter/{module}.py does not exist"
    return None


def tools_missing() -> str | None:
    """Run scripts/setup-system --bench (installs what is missing as root); say what is still missing."""
    subprocess.run([str(ROOT / "scripts" / "setup-system"), "--bench"], check=False)
    missing = [path for path in (DNSMASQ, DNSPERF) if not os.access(path, os.X_OK)]
    return ", ".join(missing) + " missing (scripts/setup-system --bench installs dnsmasq-base and dnsperf)" if missing else None


# --- Report ---------------------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(results: dict[str, dict], why_not: str | None) -> None:
    c, d = results.get("cophub"), results["dnsmasq"]

    def pair(key: str):
        return (c[key] if c else None), d[key]

    rows = [
        # metric, key, format, goal text, goal test (cophub, dnsmasq) -> bool or None
        ("queries per second (median of rounds)", "qps", ",.0f", "≥ dnsmasq", lambda a, b: a >= b),
        ("  first pass, 60 % of the names never seen before (round 1's warm-up)", "first_pass_qps", ",.0f", "", None),
        ("lost or not NOERROR in the throughput runs (all rounds)", "failed", ",.0f", "", None),
        ("p99 latency ms (same offered load, median of rounds)", "p99_ms", ".2f", "", None),
        ("p50 latency ms (same offered load)", "p50_ms", ".2f", "", None),
        ("queries lost in the latency runs (all rounds)", "lost", ",.0f", "", None),
        ("resident memory MiB (VmRSS after load)", "rss", ".1f", "≤ dnsmasq", lambda a, b: a <= b),
        ("start-up s (median, to first block)", "startup", ".3f", "", None),
        ("longest reload gap ms (worst round)", "gap_ms", ",.1f", f"none (< {NO_GAP_MS:g} ms or < 2× probe's own)",
         lambda _a, _b: c["no_gap"]),
        ("  the probe's own longest gap before that reload, ms", "jitter_ms", ",.1f", "", None),
        ("reload: new list in use after s (median)", "active", ".2f", "", None),
    ]
    print("\n| metric | cophub | dnsmasq | cophub ÷ dnsmasq | goal | met |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for label, key, spec, goal, test in rows:
        mine, theirs = pair(key)
        ratio = f"{mine / theirs:.2f}" if mine is not None and theirs else "n/a"
        met = ("yes" if test(mine, theirs) else "NO") if test and mine is not None else ("n/a" if test else "")
        print(f"| {label} | {fmt(mine, spec)} | {fmt(theirs, spec)} | {ratio} | {goal} | {met} |")
    if why_not:
        print(f"\ncophub not measured: {why_not}")


def summarize(startup: list[float], throughput: list[dict], latency: list[dict], memory: dict, reloads: list[dict]) -> dict:
    """Medians over the rounds (the mean of the middle two for an even count), the worst reload gap."""
    return {
        "qps": statistics.median(r["qps"] for r in throughput), "first_pass_qps": throughput[0]["warmup_qps"],
        "p99_ms": statistics.median(r["p99"] for r in latency) * 1000,
        "p50_ms": statistics.median(r["p50"] for r in latency) * 1000, "lost": sum(r["lost"] for r in latency), "rss": memory["VmRSS"],
        "failed": sum(r["failed"] for r in throughput),
        "startup": statistics.median(startup), "gap_ms": max(r["gap"] for r in reloads) * 1000,
        "jitter_ms": max(reloads, key=lambda r: r["gap"])["jitter"] * 1000,
        # The machine's own noise is not the resolver's gap: each round is judged against the probe's gaps just before it.
        "no_gap": all(r["gap"] * 1000 < max(NO_GAP_MS, 2 * r["jitter"] * 1000) for r in reloads),
        "active": statistics.median(r["active"] for r in reloads),
    }


# --- Main -----------------------------------------------------------------------------------------------------


def run(args, work: Path, procs: Processes) -> tuple[dict, str | None]:
    why_not = cophub_available() if "cophub" in args.resolvers.split(",") else "not asked for (--resolvers)"
    print(f"query mix: {', '.join(f'{share:.0%} {kind}' for kind, share in MIX.items())} "
          f"({QUERY_LINES:,} lines; cached = {CACHED_NAMES} names with TTL 3600 at the upstream, forwarded = unique names "
          f"with TTL 0); dnsperf -c {CLIENTS} -q {OUTSTANDING} -T 1; cache size {CACHE_SIZE:,} in both", flush=True)

    started = time.monotonic()
    base = make_domains(args.domains, SEED)
    hosts = {name: work / f"{name}.hosts" for name in ("dnsmasq", "cophub")}
    for path in hosts.values():
        write_hosts(path, base)
    queries = work / "queries.txt"
    counts = write_queries(queries, base, SEED)
    # The probe shares this process with a million names: a full collection scanning them would
    # stop its threads for tens of milliseconds and show as a gap in answers. They never die.
    gc.collect()
    gc.freeze()
    print(f"data: {len(base):,} names ({hosts['dnsmasq'].stat().st_size / 2**20:.0f} MiB hosts file), query file {counts}, "
          f"{time.monotonic() - started:.1f} s", flush=True)

    upstream = Upstream(procs, work)
    blocked = base[STABLE_FROM]
    dnsmasq = Dnsmasq(procs, work, upstream, blocked, hosts["dnsmasq"])
    resolvers: list[Resolver] = [dnsmasq]
    if why_not:
        print(f"cophub not measured ({why_not}): dnsmasq alone", flush=True)
    else:
        state = work / "state"
        from cophub.netfilter.snapshot import ensure

        ensure(state)
        cophub = Cophub(procs, work, upstream, blocked, hosts["cophub"], state=state)
        compiled = cophub.compile()
        print(f"cophub: compile_lists of the list in a child process {cophub.compile_seconds[0]:.1f} s "
              f"(the worker's job; not in its start-up), counts {compiled['counts']}", flush=True)
        resolvers.append(cophub)

    # Start-up: `rounds` start/stop cycles, then a last start after which both stay up.
    startup: dict[str, list[float]] = {r.name: [] for r in resolvers}
    for round_ in range(args.rounds + 1):
        for resolver in in_turn(resolvers, round_):
            startup[resolver.name].append(resolver.start())
            if round_ < args.rounds:
                resolver.stop()
    for resolver in resolvers:
        check_answers(resolver, blocked)
        print(f"{resolver.name}: start-up {', '.join(f'{s:.3f}' for s in startup[resolver.name])} s; "
              f"memory at rest {resolver.memory()['VmRSS']:.1f} MiB", flush=True)

    throughput: dict[str, list[dict]] = {r.name: [] for r in resolvers}
    for round_ in range(args.rounds):
        for resolver in in_turn(resolvers, round_):
            result = throughput_round(resolver, queries, args, work)
            throughput[resolver.name].append(result)
            print(f"  round {round_ + 1} {resolver.name:8} {result['qps']:>9,.0f} q/s  completed {result['completed']:,.0f} "
                  f"lost {result['lost']:,.0f}  reached upstream {result['upstream_share']:.0%}  ({result['codes']}); "
                  f"warm-up pass {result['warmup_qps']:,.0f} q/s", flush=True)

    rate = LATENCY_LOAD * min(statistics.median(r["qps"] for r in results) for results in throughput.values())
    print(f"latency runs at {rate:,.0f} q/s offered ({LATENCY_LOAD:.0%} of the lower median rate)", flush=True)
    latency: dict[str, list[dict]] = {r.name: [] for r in resolvers}
    for round_ in range(args.rounds):
        for resolver in in_turn(resolvers, round_):
            result = dnsperf(resolver.port, queries, args.seconds, work / "latency.txt", rate=rate)
            latency[resolver.name].append(result)
            print(f"  round {round_ + 1} {resolver.name:8} p50 {result['p50'] * 1000:6.2f} ms  p99 {result['p99'] * 1000:6.2f} ms  "
                  f"max {result['max'] * 1000:7.2f} ms  achieved {result['qps']:,.0f} q/s  lost {result['lost']:,.0f}", flush=True)

    memory = {}
    for resolver in resolvers:
        memory[resolver.name] = mem = resolver.memory()
        print(f"{resolver.name}: memory after load VmRSS {mem['VmRSS']:.1f} MiB (anonymous {mem['RssAnon']:.1f}, "
              f"file {mem['RssFile']:.1f}), peak VmHWM {mem['VmHWM']:.1f} MiB", flush=True)

    probe_names = base[STABLE_FROM + 1:STABLE_FROM + 6] + ["c1.cached.bench", "c2.cached.bench", "c3.cached.bench", "c4.cached.bench"]
    reloads: dict[str, list[dict]] = {r.name: [] for r in resolvers}
    generation = 0
    for round_ in range(args.rounds):
        for resolver in in_turn(resolvers, round_):
            result = reload_round(resolver, base, generation, probe_names)
            generation += 1
            reloads[resolver.name].append(result)
            split = (f" ({result['gap_before_told'] * 1000:.1f} while compiling, {result['gap_after_told'] * 1000:.1f} from "
                     f"policy.json to in use + 1 s)") if resolver.name == "cophub" else ""
            print(f"  reload {round_ + 1} {resolver.name:8} longest gap {result['gap'] * 1000:8.1f} ms{split}; probe's own before: "
                  f"{result['jitter'] * 1000:.1f} ms, its longest pause between sends during the reload "
                  f"{result['probe_pause'] * 1000:.1f} ms; new list in use after {result['active']:.2f} s; "
                  f"answered {result['answered']:,} of {result['sent']:,} probes; VmHWM {result['hwm']:.1f} MiB", flush=True)
    if len(resolvers) > 1:
        print(f"cophub: compile_lists per reload {', '.join(f'{s:.1f}' for s in cophub.compile_seconds[1:])} s "
              "(inside its 'new list in use' time; dnsmasq parses the file in its own process)", flush=True)

    return {r.name: summarize(startup[r.name], throughput[r.name], latency[r.name], memory[r.name], reloads[r.name])
            for r in resolvers}, why_not


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 5 s runs")
    parser.add_argument("--seconds", type=float, default=10, help="length of each dnsperf run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measurement, alternating the order (default 3)")
    parser.add_argument("--domains", type=int, default=1_000_000, help="names in the block list (default 1,000,000)")
    parser.add_argument("--resolvers", default="dnsmasq,cophub", help="which to measure (default dnsmasq,cophub)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--hosts", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "compile":
        return child_compile(Path(args.hosts), Path(args.out))
    if args.quick:
        args.seconds, args.rounds = 5, 1

    missing = tools_missing()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 1
    # SIGTERM unwinds like Ctrl-C, through the finally below that stops every process.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    work = Path(tempfile.mkdtemp(prefix="cophub-dns-bench-"))
    procs = Processes()
    try:
        results, why_not = run(args, work, procs)
        print_table(results, why_not)
        return 1 if why_not and "cophub" in args.resolvers.split(",") else 0
    except Exception as error:  # noqa: BLE001 - say what failed; the exit status tells the caller
        print(f"\nFAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 1
    finally:
        procs.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
