"""A small closed-loop HTTP load generator for the benchmarks.

Each client is a thread with its own keep-alive connection and cookie jar;
it sends requests back to back for a fixed time and records latencies.
Only loopback addresses are targeted, and every run stops by itself.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlsplit


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes


class Client:
    """One keep-alive connection to a loopback server, with cookies."""

    def __init__(self, base_url: str, timeout: float = 30):
        parts = urlsplit(base_url)
        if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError("benchmarks only talk to this machine")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.cookies: dict[str, str] = {}
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                raw = conn.getresponse()
                data = raw.read()
                break
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        for value in raw.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(value)
            for key, morsel in jar.items():
                self.cookies[key] = morsel.value
        if raw.headers.get("Connection", "").lower() == "close":
            self.close()
        return Response(raw.status, dict(raw.headers), data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes, str]] = ()) -> tuple[bytes, str]:
    """Encode a multipart/form-data body; files are (field, filename, data, type)."""
    boundary = f"----cophub{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data, ctype in files:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode())
        chunks.append(data)
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
    latencies: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (f"{self.label:<44} {self.rate:9.1f}/s  ok={self.ok:<6} errors={self.errors:<4} "
                f"p50={self.percentile(0.5):7.1f} ms  p99={self.percentile(0.99):7.1f} ms")


def run(label: str, base_url: str, clients: int, seconds: float, setup, step) -> Result:
    """Run `clients` threads for `seconds`; `setup(client)` once, then `step(client, i)` -> bool."""
    result = Result(label, clients, seconds)
    lock = threading.Lock()
    start_barrier = threading.Barrier(clients + 1)
    deadline_box: list[float] = []

    def worker(index: int) -> None:
        client = Client(base_url)
        state = setup(client)
        start_barrier.wait()
        n = 0
        local_ok = local_err = 0
        lat = []
        while time.monotonic() < deadline_box[0]:
            t0 = time.monotonic()
            try:
                good = step(client, state, index, n)
            except Exception:
                good = False
            lat.append(time.monotonic() - t0)
            if good:
                local_ok += 1
            else:
                local_err += 1
            n += 1
        client.close()
        with lock:
            result.ok += local_ok
            result.errors += local_err
            result.latencies.extend(lat)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline_box.append(time.monotonic() + seconds + 0.0)
    start_barrier.wait()
    began = time.monotonic()
    deadline_box[0] = began + seconds
    for thread in threads:
        thread.join(seconds + 120)
    result.seconds = time.monotonic() - began
    return result


def median(values):
    return statistics.median(values) if values else float("nan")
