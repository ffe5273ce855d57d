"""A receipt exists only for what was durably stored; a crash leaves nothing half-visible."""

from __future__ import annotations

from pathlib import Path

import pytest

from cophub.cases.models import Case
from cophub.conftest import png_bytes
from cophub.evidence import vault
from cophub.evidence.models import Blob
from cophub.intake import services
from cophub.intake.models import Submission, SubmissionFile


class Crash(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_receipt_comes_after_commit(units):
    """Seen from another connection, the submission is there when receive() returns."""
    receipt = services.receive(unit=units["school_a"], channel="web_child", category="scam", files=[("a.png", png_bytes())])
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM intake_submission WHERE code = %s", [receipt.code])
            assert cursor.fetchone()[0] == 1
            cursor.execute("SELECT COUNT(*) FROM intake_submissionfile")
            assert cursor.fetchone()[0] == 1
    finally:
        other.close()
    assert services.lookup(receipt.code, receipt.phrase) == receipt.submission


@pytest.mark.django_db(transaction=True)
def test_crash_between_storing_files_and_commit_leaves_nothing(units, settings, monkeypatch):
    def crash(submission):
        # The files are in the vault by now; the transaction has not committed.
        assert Blob.objects.count() == 1
        raise Crash("power cut")

    monkeypatch.setattr("cophub.cases.services.open_for_submission", crash)
    upload = vault.stage_bytes(png_bytes(), original_name="a.png")
    with pytest.raises(Crash):
        services.receive(unit=units["school_a"], channel="web_child", category="scam", description="lost?", files=[upload])

    assert Submission.objects.count() == 0
    assert SubmissionFile.objects.count() == 0
    assert Blob.objects.count() == 0
    assert Case.objects.count() == 0
    # What reached the disk is encrypted, referenced by nothing, and swept away.
    leftovers = [p for p in Path(settings.COPHUB_VAULT_DIR).rglob("*") if p.is_file()]
    assert all(b"\x89PNG" not in p.read_bytes() for p in leftovers)
    vault.sweep(older_than_seconds=-1)
    assert [p for p in Path(settings.COPHUB_VAULT_DIR).rglob("*") if p.is_file()] == []


@pytest.mark.django_db(transaction=True)
def test_crash_keeps_earlier_submissions_whole(units, monkeypatch):
    kept = services.receive(unit=units["school_a"], channel="web_child", category="scam", files=[("a.png", png_bytes())])
    monkeypatch.setattr("cophub.cases.services.open_for_submission", lambda s: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        services.receive(unit=units["school_a"], channel="web_child", category="scam", files=[("b.png", png_bytes(10, 10))])
    assert list(Submission.objects.values_list("code", flat=True)) == [kept.code]
    assert vault.read_plaintext(kept.submission.files.get().blob) == png_bytes()


@pytest.mark.django_db
def test_lookup_needs_both_code_and_phrase(units):
    receipt = services.receive(unit=units["school_a"], channel="web_child", category="scam")
    assert services.lookup(receipt.code, receipt.phrase) == receipt.submission
    assert services.lookup(receipt.code.lower().replace("-", " "), receipt.phrase.upper()) == receipt.submission
    assert services.lookup(receipt.code, "sai mật khẩu rồi") is None
    assert services.lookup("ZZZZ-ZZZZ", receipt.phrase) is None
    assert services.lookup("", "") is None
