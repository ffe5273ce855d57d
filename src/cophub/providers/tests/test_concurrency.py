"""Concurrent duplicates with one Idempotency-Key: the operation runs once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from cophub.providers.models import ProviderReport

from .conftest import minimal_report

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_duplicates_run_once(live):
    answers = []
    start = threading.Barrier(6)

    def send():
        try:
            start.wait()
            answers.append(live.post("/api/v1/reports", minimal_report(), idempotency_key="same-key"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ProviderReport.objects.count() == 1
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409} and statuses.count(201) >= 1
    created = {a.content for a in answers if a.status_code == 201}
    assert len(created) == 1, "every 201 is the same answer (the original or its replay)"
    assert all(a.json()["code"] == "idempotency.in_progress" for a in answers if a.status_code == 409)
