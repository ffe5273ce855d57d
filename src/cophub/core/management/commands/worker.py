"""`cophub worker`: run background task workers on their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string

from cophub.core.worker import HeartbeatWorker


class Command(BaseCommand):
    help = "Run background task workers (database backend), with heartbeat and crash recovery."

    def add_arguments(self, parser):
        parser.add_argument("--processes", type=int, default=1, help="How many worker processes to run (default 1).")
        parser.add_argument("--interval", type=float, default=0.5, help="Seconds between polls when the queue is empty.")
        parser.add_argument("--batch", action="store_true", help="Run every waiting task, then exit.")
        parser.add_argument("--queue", default="*", help="Queues to serve, comma-separated ('*' for all).")

    def handle(self, *args, processes: int, interval: float, batch: bool, queue: str, **options):
        if processes > 1 and not batch:
            self._supervise(processes, interval, queue)
            return
        worker = HeartbeatWorker(
            queue_names=queue.split(","),
            interval=interval,
            batch=batch,
            backend_name="default",
            startup_delay=not batch,
            max_tasks=None,
            worker_id=get_random_string(32),
            excluded_queue_names=[],
        )
        worker.configure_signals()
        worker.run()

    def _supervise(self, processes: int, interval: float, queue: str) -> None:
        """Run N single workers as child processes, restarting any that die."""
        command = [sys.executable, "-m", "cophub", "worker", "--interval", str(interval), "--queue", queue]
        children = {i: subprocess.Popen(command) for i in range(processes)}
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not stopping:
            time.sleep(1)
            for index, child in list(children.items()):
                if child.poll() is not None and not stopping:
                    self.stderr.write(f"worker {child.pid} exited with {child.returncode}; starting another")
                    children[index] = subprocess.Popen(command)
        for child in children.values():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(child.pid, signal.SIGKILL)
