"""`cophub demo` makes a sandbox provider and prints a fresh key on its own line."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from cophub.intake.models import Submission
from cophub.providers import keys
from cophub.providers.models import Provider

from .conftest import ApiClient, minimal_report

pytestmark = pytest.mark.django_db(transaction=True)


def sandbox_key() -> str:
    out = io.StringIO()
    call_command("demo", stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("sandbox key: ")]
    assert len(lines) == 1
    key = lines[0].removeprefix("sandbox key: ")
    assert re.fullmatch(r"cph_test_[a-z0-9]{10}_[A-Za-z0-9_-]{40,}", key)
    return key


def test_demo_prints_a_new_sandbox_key_and_revokes_the_previous():
    first = sandbox_key()
    second = sandbox_key()
    assert first != second
    assert keys.authenticate(f"Bearer {first}") is None
    key = keys.authenticate(f"Bearer {second}")
    assert key.sandbox and key.provider.name == "Nền tảng mẫu (sandbox)"
    assert Provider.objects.count() == 1 and key.provider.unit.kind == "district"
    submissions = Submission.objects.count()
    response = ApiClient(second).post("/api/v1/reports", minimal_report(finish=True))
    assert response.status_code == 201 and response.json()["state"] == "finished"
    assert Submission.objects.count() == submissions
