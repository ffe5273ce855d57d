"""The task worker: django-tasks-db's worker with a heartbeat and crash recovery.

django-tasks-db marks a task RUNNING when a worker claims it; if that worker
dies the task would stay RUNNING for ever. Each cophub worker writes a
heartbeat, and on start-up and every little while puts back in the queue the
tasks claimed by workers whose heartbeat has gone stale. Every cophub task is
written to be safe to run twice.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from .models import WorkerHeartbeat

logger = logging.getLogger("cophub.worker")
HEARTBEAT_SECONDS = 5


def requeue_orphaned_tasks() -> int:
    """Return tasks claimed by dead workers to the queue; returns how many."""
    cutoff = timezone.now() - settings.COPHUB_WORKER_STALE_AFTER
    alive = set(WorkerHeartbeat.objects.filter(seen_at__gte=cutoff).values_list("worker_id", flat=True))
    with transaction.atomic():
        requeued = 0
        for result in DBTaskResult.objects.running().select_for_update():
            owner = (result.worker_ids or [None])[-1]
            if owner in alive:
                continue
            result.status = TaskResultStatus.READY
            result.started_at = None
            result.save(update_fields=["status", "started_at"])
            requeued += 1
        WorkerHeartbeat.objects.filter(seen_at__lt=cutoff).delete()
    if requeued:
        logger.warning("put %d task(s) of dead workers back in the queue", requeued)
    return requeued


def housekeeping(jobs: list[str] | None = None) -> dict[str, object]:
    """Run every job of COPHUB_HOUSEKEEPING (or `jobs`) once; a failing job does not stop the others.

    Returns each job's result (or the exception it raised), for the log and tests.
    """
    results: dict[str, object] = {}
    for path in settings.COPHUB_HOUSEKEEPING if jobs is None else jobs:
        try:
            results[path] = import_string(path)()
        except Exception as exc:  # one broken job must not starve the rest
            logger.exception("housekeeping job %s failed", path)
            results[path] = exc
    # Logged only when a job did something: a schedule running every minute must not fill the log.
    done = {path: result for path, result in results.items()
            if result and not isinstance(result, Exception) and not (isinstance(result, dict) and not any(result.values()))}
    if done:
        logger.info("housekeeping: %s", ", ".join(f"{path.rsplit('.', 1)[-1]}={result}" for path, result in done.items()))
    return results


def warm_up() -> None:
    """Run COPHUB_WORKER_STARTUP (loading the matching indexes) before the first task is claimed."""
    for path in settings.COPHUB_WORKER_STARTUP:
        started = time.monotonic()
        try:
            import_string(path)()
        except Exception:  # the worker still runs; the job is retried at first use
            logger.exception("start-up job %s failed", path)
        else:
            logger.info("start-up: %s in %.1f s", path.rsplit(".", 1)[-1], time.monotonic() - started)


class HeartbeatWorker(Worker):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._stop = threading.Event()

    def beat(self) -> None:
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={"hostname": socket.gethostname()[:255], "pid": os.getpid(), "seen_at": now},
            create_defaults={"hostname": socket.gethostname()[:255], "pid": os.getpid(), "seen_at": now, "started_at": now},
        )

    def _heartbeat_loop(self) -> None:
        beats = 0
        # The first round runs a little after start-up, so a fleet of workers
        # started together does not sweep at the same moment each time.
        next_housekeeping = time.monotonic() + random.uniform(HEARTBEAT_SECONDS, 2 * HEARTBEAT_SECONDS)
        next_schedule = time.monotonic() + random.uniform(0, HEARTBEAT_SECONDS)
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.beat()
                beats += 1
                if beats % 6 == 0:
                    requeue_orphaned_tasks()
            except Exception:  # keep beating through a passing database error
                logger.exception("heartbeat failed")
            finally:
                close_old_connections()
            if time.monotonic() >= next_schedule:
                housekeeping(settings.COPHUB_SCHEDULE)
                close_old_connections()
                next_schedule = time.monotonic() + settings.COPHUB_SCHEDULE_EVERY.total_seconds()
            if time.monotonic() >= next_housekeeping:
                housekeeping()
                close_old_connections()
                next_housekeeping = time.monotonic() + settings.COPHUB_HOUSEKEEPING_EVERY.total_seconds()

    def run(self) -> None:
        self.beat()
        requeue_orphaned_tasks()
        warm_up()
        close_old_connections()
        thread = threading.Thread(target=self._heartbeat_loop, name="cophub-heartbeat", daemon=True)
        thread.start()
        try:
            super().run()
        finally:
            self._stop.set()
            for path in settings.COPHUB_WORKER_SHUTDOWN:
                try:
                    import_string(path)()
                except Exception:
                    logger.exception("shutdown job %s failed", path)
            try:
                WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()
            except Exception:
                pass
