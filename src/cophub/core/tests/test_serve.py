"""`cophub serve` as a user runs it: migrations, demo, web server and worker."""

from __future__ import annotations

import json
import os
import signal

import pytest

from cophub.core.livehub import LiveHub, wait_until

pytestmark = pytest.mark.slow


def _cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _task_workers(hub: LiveHub) -> list[int]:
    return [pid for pid in hub.children() if " worker" in _cmdline(pid)]


def _healthy(hub: LiveHub) -> bool:
    try:
        with hub.get("/healthz") as response:
            return response.status == 200 and json.load(response) == {"database": "ok", "worker": "ok"}
    except OSError:
        return False


def test_serve_runs_the_demo_and_survives_a_crashed_worker():
    with LiveHub() as hub:
        assert set(hub.logins) == {"admin", "handler", "counsellor", "teacher", "itadmin", "observer"}
        assert _healthy(hub)
        with hub.get("/") as response:
            assert response.headers["Server"].startswith("gunicorn")
        (worker,) = _task_workers(hub)
        os.kill(worker, signal.SIGKILL)
        assert wait_until(lambda: _task_workers(hub) and _task_workers(hub) != [worker], timeout=20)
        assert wait_until(lambda: _healthy(hub), timeout=30)
