"""Health of the running hub: database reachable, a task worker alive."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import WorkerHeartbeat


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0] == 1
    except Exception:  # any failure to reach the database means "not up"
        return False


def live_workers():
    cutoff = timezone.now() - settings.COPHUB_WORKER_STALE_AFTER
    return WorkerHeartbeat.objects.filter(seen_at__gte=cutoff)


def worker_ok() -> bool:
    if not settings.TASKS["default"]["BACKEND"].endswith("DatabaseBackend"):
        return True  # tasks run in-process: no separate worker to wait for
    try:
        return live_workers().exists()
    except Exception:
        return False
