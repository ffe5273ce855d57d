"""The audit log is a hash chain: any edit or removal is found by verify-audit."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from cophub.audit.models import AuditEvent
from cophub.audit.services import record, verify


@pytest.fixture
def chain(db):
    return [record("test.event", actor="tester", object_type="thing", object_id=i, n=i, text="Nguyễn") for i in range(1, 6)]


def run_verify() -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


def test_intact_chain_verifies(chain):
    assert verify().ok and verify().checked == 5
    assert "5 events verified" in run_verify()


def test_each_row_links_to_the_previous(chain):
    rows = list(AuditEvent.objects.order_by("seq"))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert all(b.prev_digest == a.digest for a, b in zip(rows, rows[1:]))


def _sql(statement: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_edited_row_is_found(chain):
    _sql("UPDATE audit_auditevent SET actor = %s WHERE seq = 3", ["someone else"])
    result = verify()
    assert not result.ok and result.broken_seq == 3 and result.checked == 2
    with pytest.raises(CommandError, match="#3"):
        run_verify()


def test_edited_data_is_found(chain):
    _sql("UPDATE audit_auditevent SET data = %s WHERE seq = 2", ['{"n": 99, "text": "Nguyễn"}'])
    assert verify().broken_seq == 2


def test_deleted_row_is_found(chain):
    _sql("DELETE FROM audit_auditevent WHERE seq = 4")
    result = verify()
    assert not result.ok and result.broken_seq == 4


def test_deleted_last_row_is_found(chain):
    _sql("DELETE FROM audit_auditevent WHERE seq = 5")
    result = verify()
    assert not result.ok and result.broken_seq == 5


def test_rewritten_chain_tail_is_found(chain):
    """Recomputing one row's digest is not enough: the next row's link breaks."""
    from cophub.audit.services import compute_digest

    row = AuditEvent.objects.get(seq=2)
    row.actor = "forger"
    row.digest = compute_digest(row.prev_digest, row)
    _sql("UPDATE audit_auditevent SET actor = %s, digest = %s WHERE seq = 2", [row.actor, row.digest])
    assert verify().broken_seq == 3


def test_logins_are_audited(client, django_user_model):
    django_user_model.objects.create_user("an", password="a long password 1")
    client.login(username="an", password="wrong")
    client.login(username="an", password="a long password 1")
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions == ["auth.login_failed", "auth.login"]
    assert verify().ok
