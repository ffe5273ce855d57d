"""audit.batched(): the events of a block join the chain together, at its end."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from cophub.audit.models import AuditEvent, AuditHead
from cophub.audit.services import batched, record, verify

pytestmark = pytest.mark.django_db


def test_events_of_a_block_are_appended_in_order_at_its_end():
    record("before")
    with transaction.atomic(), batched():
        record("one", n=1)
        record("two", n=2)
        # Nothing is written (and the head is not locked) until the block ends.
        assert AuditEvent.objects.count() == 1
        with batched():  # a nested block joins the outer one
            record("three", n=3)
        assert AuditEvent.objects.count() == 1
    record("after")
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", "action")) == [
        (1, "before"), (2, "one"), (3, "two"), (4, "three"), (5, "after")]
    assert AuditHead.objects.get().seq == 5
    assert verify().ok and verify().checked == 5


def test_a_failed_block_leaves_no_event_behind():
    record("kept")
    with pytest.raises(RuntimeError):
        with transaction.atomic(), batched():
            record("lost")
            raise RuntimeError("boom")
    record("next")
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == ["kept", "next"]
    assert verify().ok


def test_a_block_of_events_costs_three_statements_and_no_savepoint():
    record("first")  # the head row exists
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries, batched():
            for n in range(5):
                record("many", n=n)
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert statements == ["SELECT", "INSERT", "UPDATE"]
    assert verify().ok and verify().checked == 6
