"""Workers beat; tasks of a dead worker go back in the queue; /healthz tells."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from cophub.core.models import WorkerHeartbeat
from cophub.core.worker import requeue_orphaned_tasks
from cophub.evidence.tasks import make_preview

DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


def _claimed_by(worker_id: str) -> DBTaskResult:
    result = make_preview.enqueue(12345)
    row = DBTaskResult.objects.get(pk=result.id)
    row.claim(worker_id)
    return row


def _beat(worker_id: str, age_seconds: float) -> None:
    seen = timezone.now() - timedelta(seconds=age_seconds)
    WorkerHeartbeat.objects.create(worker_id=worker_id, hostname="h", pid=1, started_at=seen, seen_at=seen)


@pytest.mark.django_db
def test_tasks_of_dead_workers_are_requeued(settings):
    settings.TASKS = DB_TASKS
    _beat("alive", 1)
    _beat("dead", 3600)
    alive_task = _claimed_by("alive")
    dead_task = _claimed_by("dead")
    assert requeue_orphaned_tasks() == 1
    dead_task.refresh_from_db()
    alive_task.refresh_from_db()
    assert dead_task.status == "READY" and alive_task.status == "RUNNING"
    assert not WorkerHeartbeat.objects.filter(worker_id="dead").exists()
    # The requeued task runs to completion on the next worker, once.
    assert DBTaskResult.objects.ready().count() == 1


@pytest.mark.django_db
def test_healthz_reports_the_worker(client, settings):
    settings.TASKS = DB_TASKS
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json() == {"database": "ok", "worker": "down"}
    _beat("w1", 1)
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"database": "ok", "worker": "ok"}
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(minutes=5))
    assert client.get("/healthz").status_code == 503
