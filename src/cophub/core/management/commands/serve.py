"""`cophub serve`: the production web server and the task worker, together.

The embedded default for a school: one command starts gunicorn (pre-forked,
threaded) and the database task worker as child processes, keeps the worker
alive, and answers /healthz once both are up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from cophub.evidence import vault


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Command(BaseCommand):
    help = "Run cophub: migrate, then the web server and the task worker together."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("COPHUB_WEB_WORKERS", (os.cpu_count() or 1) + 1)))
        parser.add_argument("--threads", type=int, default=int(os.environ.get("COPHUB_WEB_THREADS", 4)))
        parser.add_argument("--task-workers", type=int, default=int(os.environ.get("COPHUB_TASK_WORKERS", 1)))
        parser.add_argument("--demo", action="store_true", help="Create the demo units, accounts and cases first, and print the logins.")
        parser.add_argument("--no-migrate", action="store_true")
        parser.add_argument("--access-log", action="store_true", help="Log every request to standard output.")

    def handle(self, *args, **opts):
        if not opts["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        vault.ensure_master_key()
        vault.sweep()
        if opts["demo"]:
            call_command("demo", stdout=self.stdout)
        env = {**os.environ, "COPHUB_DATA_DIR": str(settings.DATA_DIR), "DJANGO_SETTINGS_MODULE": "cophub.settings"}
        self.children: list[subprocess.Popen] = []
        self.stopping = False
        web = self._start_web(opts, env)
        workers = [self._start_worker(env) for _ in range(opts["task_workers"])]
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        url = f"http://{_bind(opts['host'], opts['port'])}/"
        if self._wait_healthy(url + "healthz", web):
            self.stdout.write(self.style.SUCCESS(f"cophub is ready at {url}  (staff console: {url}console/; stop with Ctrl+C)"))
        self._supervise(web, workers, env)

    def _start_web(self, opts, env) -> subprocess.Popen:
        command = [
            sys.executable, "-m", "gunicorn", "cophub.wsgi:application",
            "--bind", _bind(opts["host"], opts["port"]),
            "--workers", str(opts["web_workers"]),
            "--worker-class", "gthread",
            "--threads", str(opts["threads"]),
            "--timeout", "120",
            "--graceful-timeout", "20",
            "--keep-alive", "5",
            "--max-requests", "5000", "--max-requests-jitter", "500",
            "--log-level", "warning",
        ]
        if opts["access_log"]:
            command += ["--access-logfile", "-"]
        return self._spawn(command, env)

    def _start_worker(self, env) -> subprocess.Popen:
        return self._spawn([sys.executable, "-m", "cophub", "worker"], env)

    def _spawn(self, command, env) -> subprocess.Popen:
        child = subprocess.Popen(command, env=env)
        self.children.append(child)
        return child

    def _wait_healthy(self, url: str, web: subprocess.Popen, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if web.poll() is not None:
                raise CommandError(f"the web server exited with code {web.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.3)
        self.stderr.write("cophub did not report healthy in time; still running, see the messages above")
        return False

    def _supervise(self, web, workers, env) -> None:
        while not self.stopping:
            time.sleep(0.5)
            if web.poll() is not None:
                self._stop()
                raise CommandError(f"the web server exited with code {web.returncode}")
            for index, worker in enumerate(workers):
                if worker.poll() is not None and not self.stopping:
                    # A crashed worker is replaced; the tasks it held are
                    # re-queued by the next worker once its heartbeat is stale.
                    self.stderr.write(f"task worker {worker.pid} exited with code {worker.returncode}; starting another")
                    self.children.remove(worker)
                    workers[index] = self._start_worker(env)
        self._wait_children()

    def _stop(self, signum=None, frame=None) -> None:
        self.stopping = True
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def _wait_children(self) -> None:
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
