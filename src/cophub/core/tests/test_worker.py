"""Workers beat; tasks of a dead worker go back in the queue; /healthz tells."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from cophub.core.models import WorkerHeartbeat
from cophub.core.worker import housekeeping, requeue_orphaned_tasks
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


def _failing_job():
    raise RuntimeError("disk full")


@pytest.mark.django_db
def test_housekeeping_runs_every_job_even_when_one_fails(settings):
    settings.COPHUB_HOUSEKEEPING = ["cophub.core.tests.test_worker._failing_job", "cophub.providers.idempotency.forget_old"]
    results = housekeeping()
    assert isinstance(results["cophub.core.tests.test_worker._failing_job"], RuntimeError)
    assert results["cophub.providers.idempotency.forget_old"] == 0


@pytest.mark.django_db
def test_default_housekeeping_expires_drafts_and_old_idempotency_records(units):
    from cophub.providers.models import IdempotencyRecord, Provider, ProviderReport

    provider = Provider.objects.create(name="P", unit=units["district"])
    now = timezone.now()
    ProviderReport.objects.create(public_id="rpt_old", provider=provider, incident_type="csam", incident_time=now,
                                  expires_at=now - timedelta(minutes=1))
    ProviderReport.objects.create(public_id="rpt_new", provider=provider, incident_type="csam", incident_time=now,
                                  expires_at=now + timedelta(hours=1))
    IdempotencyRecord.objects.create(provider=provider, key="old", method="POST", path="/", request_digest="x",
                                     created_at=now - timedelta(hours=25))
    IdempotencyRecord.objects.create(provider=provider, key="new", method="POST", path="/", request_digest="x")
    results = housekeeping()
    assert results == {"cophub.providers.services.expire_drafts": 1, "cophub.providers.idempotency.forget_old": 1,
                       "cophub.detection.indexes.save_snapshots": 0}  # no index loaded in this process
    assert list(ProviderReport.objects.values_list("public_id", flat=True)) == ["rpt_new"]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
