"""Run a real `cophub serve` in a child process, for end-to-end tests and benchmarks.

The hub gets its own data folder and its own database: a new SQLite file,
or, when DATABASE_URL points at PostgreSQL, a new database on that server
that is dropped afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

LOGIN_LINE = re.compile(r"login: (\S+)\s+password: (\S+)\s+role: (\S+)")
# Appended to the login line of demo accounts with two-factor login: the base32 TOTP key.
TOTP_PART = re.compile(r"totp: (\S+)")
READY_LINE = "cophub is ready at"
# `cophub demo` prints the demo provider's new sandbox API key on a line of its own.
SANDBOX_LINE = re.compile(r"sandbox key: (\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_admin_url(url: str) -> tuple[str, str]:
    """(url of the server's maintenance database, url of a fresh database)."""
    base, _, _ = url.rpartition("/")
    name = f"cophub_live_{uuid.uuid4().hex[:10]}"
    return f"{base}/postgres", f"{base}/{name}"


@dataclass
class LiveHub:
    database_url: str | None = None
    extra_env: dict = field(default_factory=dict)
    demo: bool = True
    serve_args: list = field(default_factory=list)
    startup_timeout: float = 120

    def __post_init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix="cophub-live-"))
        self.logins: dict[str, str] = {}
        self.totp: dict[str, str] = {}  # username -> base32 key, for accounts with two-factor login
        self.sandbox_key: str | None = None  # the demo provider's sandbox API key (with demo=True)
        self.output: list[str] = []
        self.env: dict[str, str] = {}  # the environment `cophub serve` runs with (data folder, database)
        self._own_database: str | None = None
        self._ready = threading.Event()

    # -- database --
    def _prepare_database(self) -> str | None:
        url = self.database_url if self.database_url is not None else os.environ.get("DATABASE_URL")
        if not url or not url.startswith(("postgres://", "postgresql://")):
            return None
        import psycopg

        admin, fresh = _postgres_admin_url(url)
        name = fresh.rpartition("/")[2]
        with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._own_database = (admin, name)
        return fresh

    def _drop_database(self) -> None:
        if not self._own_database:
            return
        import psycopg

        admin, name = self._own_database
        with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- process --
    def start(self) -> "LiveHub":
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update({"COPHUB_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1"})
        database = self._prepare_database()
        if database:
            env["DATABASE_URL"] = database
        env.update(self.extra_env)
        self.env = env
        command = [sys.executable, "-m", "cophub", "serve", "--port", str(self.port), *self.serve_args]
        if self.demo:
            command.append("--demo")
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._ready.wait(self.startup_timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("cophub serve did not become ready:\n" + "\n".join(self.output[-40:]))
        return self

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self.output.append(line.rstrip())
            match = LOGIN_LINE.search(line)
            if match:
                self.logins[match.group(1)] = match.group(2)
                totp = TOTP_PART.search(line)
                if totp:
                    self.totp[match.group(1)] = totp.group(1)
            sandbox = SANDBOX_LINE.search(line)
            if sandbox:
                self.sandbox_key = sandbox.group(1)
            if READY_LINE in line:
                self._ready.set()

    def get(self, path: str, timeout: float = 10):
        return urllib.request.urlopen(self.url + path, timeout=timeout)

    def children(self) -> list[int]:
        """Process ids of serve's direct children (web server, task workers)."""
        pids = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            text = (task / "children").read_text().split()
            pids.extend(int(p) for p in text)
        return pids

    def stop(self) -> None:
        if getattr(self, "process", None) and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._drop_database()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "LiveHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(predicate, timeout: float = 30, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
