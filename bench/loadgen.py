"""A small closed-loop HTTP load generator for the benchmarks.

Each client is a thread with its own keep-alive connection and cookie jar;
it sends requests back to back for a fixed time and records latencies.
Only loopback addresses are targeted, and every run stops by itself.

A request is retried once, and only when a connection that had already
carried a request broke before any answer came (the server closed an idle
keep-alive connection, or a web worker was recycled): the request never
reached the application, so the retry cannot file a report twice. Retries
are counted; the benchmarks also check the database afterwards.
"""

from __future__ import annotations

import http.client
import resource
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


class Client:
    """One keep-alive connection to a loopback server, with cookies."""

    def __init__(self, base_url: str, timeout: float = 60):
        parts = urlsplit(base_url)
        if parts.hostname not in LOOPBACK:
            raise ValueError("benchmarks only talk to this machine")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.cookies: dict[str, str] = {}
        self.retries = 0
        self._conn: http.client.HTTPConnection | None = None
        self._used = 0  # requests answered on the current connection

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._used = 0
        return self._conn

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        while True:
            conn = self._connection()
            reused = self._used > 0
            try:
                conn.request(method, path, body=body, headers=headers)
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # Nothing came back on a connection that had worked before:
                # the server had closed it. Safe to send again, once.
                self.close()
                if not reused:
                    raise
                self.retries += 1
                continue
            except (http.client.HTTPException, OSError):
                self.close()
                raise
            data = raw.read()
            self._used += 1
            break
        for value in raw.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(value)
            for key, morsel in jar.items():
                self.cookies[key] = morsel.value
        if raw.headers.get("Connection", "").lower() == "close" or raw.will_close:
            self.close()
        return Response(raw.status, raw.headers, data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def multipart(fields: dict[str, str] | list[tuple[str, str]], files=()) -> tuple[bytes, str]:
    """Encode a multipart/form-data body as a browser does.

    `fields` is a dict or a list of (name, value) pairs (a name may repeat);
    `files` holds (field, filename, data, content type); data may be a list
    of byte strings, joined without an extra copy of each part.
    """
    boundary = f"----cophub{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    pairs = fields.items() if isinstance(fields, dict) else fields
    for name, value in pairs:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data, ctype in files:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                      f"Content-Type: {ctype}\r\n\r\n".encode())
        chunks.extend(data if isinstance(data, (list, tuple)) else [data])
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


@dataclass
class Result:
    label: str
    clients: int
    seconds: float
    ok: int = 0
    errors: int = 0
    retries: int = 0
    latencies: list = field(default_factory=list)  # of successful requests, seconds
    error_samples: list = field(default_factory=list)  # the first few, as text
    finished: list = field(default_factory=list)  # what each client's `finish` returned
    loadgen_cpu: float = 0.0  # CPU seconds this process spent (all client threads)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """The q-quantile of successful latencies, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def merge(self, other: "Result") -> None:
        """Add another run of the same case (pooled: rate = all ok / all time)."""
        self.seconds += other.seconds
        self.ok += other.ok
        self.errors += other.errors
        self.retries += other.retries
        self.latencies.extend(other.latencies)
        self.error_samples.extend(other.error_samples[: max(0, 5 - len(self.error_samples))])
        self.finished.extend(other.finished)
        self.loadgen_cpu += other.loadgen_cpu

    def line(self) -> str:
        return (f"{self.label:<30} {self.rate:9.1f}/s  ok={self.ok:<6} errors={self.errors:<4} "
                f"p50={self.percentile(0.5):7.1f} ms  p99={self.percentile(0.99):7.1f} ms")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(label: str, base_url: str, clients: int, seconds: float, setup, step, finish=None, max_error_samples: int = 5) -> Result:
    """Run `clients` threads for `seconds`, closed loop.

    `setup(client)` runs once per client before the clock starts and returns
    its state; then `step(client, state, index, n)` runs back to back and
    returns None (or True) for a success, or a short text (or False) saying
    what went wrong; after the clock stops, `finish(client, state)` may run
    once per client (untimed) and its results land in `Result.finished`.
    Only successful requests count towards the rate and the latencies; the
    time is from the start to the end of the last request.
    """
    result = Result(label, clients, seconds)
    lock = threading.Lock()
    clock: dict[str, float] = {}

    def start_clock() -> None:
        clock["cpu"] = _cpu_seconds()
        clock["began"] = time.monotonic()
        clock["deadline"] = clock["began"] + seconds

    barrier = threading.Barrier(clients, action=start_clock)
    ended: list[float] = []

    def note_error(text: str) -> None:
        with lock:
            result.errors += 1
            if len(result.error_samples) < max_error_samples:
                result.error_samples.append(text)

    def worker(index: int) -> None:
        client = Client(base_url)
        try:
            state = setup(client)
        except Exception as exc:  # a client that cannot start still lets the others run
            note_error(f"setup failed: {exc!r}")
            state = None
        barrier.wait()
        if state is None:
            return
        n = 0
        lat = []
        ok = 0
        deadline = clock["deadline"]
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                outcome = step(client, state, index, n)
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            elapsed = time.monotonic() - t0
            if outcome is None or outcome is True:
                ok += 1
                lat.append(elapsed)
            else:
                note_error("failed" if outcome is False else str(outcome))
            n += 1
        done = time.monotonic()
        cpu = _cpu_seconds()
        finished = None
        if finish is not None:
            try:
                finished = finish(client, state)
            except Exception as exc:
                finished = {"error": repr(exc)}
        client.close()
        with lock:
            ended.append(done)
            clock["cpu_end"] = max(clock.get("cpu_end", 0.0), cpu)
            result.ok += ok
            result.retries += client.retries
            result.latencies.extend(lat)
            if finish is not None:
                result.finished.append(finished)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 300)
    if "began" in clock:
        result.seconds = (max(ended) if ended else time.monotonic()) - clock["began"]
        result.loadgen_cpu = clock.get("cpu_end", _cpu_seconds()) - clock["cpu"]
    return result
