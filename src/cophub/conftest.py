"""Shared test fixtures: a unit tree, one account per role, a fresh vault."""

from __future__ import annotations

import io
import os

import pytest
from django.contrib.auth import get_user_model
from PIL import Image

from cophub.detection import indexes as detection_indexes
from cophub.evidence import crypto, vault
from cophub.orgs.models import Role, Unit, UnitKind

TASKS_IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default"]}}


DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"}


def pytest_collection_modifyitems(config, items):
    """With COPHUB_TESTS_DATABASE_ONLY=1 (CI's second pass, on PostgreSQL), keep only
    the tests that can reach a database: those marked django_db or using a
    database fixture, and the slow and browser ones, which start real hub
    processes on the environment's database. The others (marked dbfree or
    not) ran in the first pass and would only do the same again."""
    if os.environ.get("COPHUB_TESTS_DATABASE_ONLY") != "1":
        return
    keep, drop = [], []
    for item in items:
        reaches_database = (
            item.get_closest_marker("django_db") is not None
            or DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
            or item.get_closest_marker("slow") is not None
            or item.get_closest_marker("browser") is not None
        ) and item.get_closest_marker("dbfree") is None
        (keep if reaches_database else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _isolated_hub(settings, tmp_path):
    """Every test gets its own vault and master key; tasks run at once."""
    settings.COPHUB_VAULT_DIR = tmp_path / "vault"
    settings.COPHUB_MASTER_KEY_FILE = tmp_path / "keys" / "master.key"
    settings.TASKS = TASKS_IMMEDIATE
    settings.RATELIMIT_ENABLE = False
    settings.COPHUB_INDEX_DIR = tmp_path / "indexes"
    detection_indexes.forget()
    crypto.create_master_key(settings.COPHUB_MASTER_KEY_FILE)
    vault.forget_master_key()
    yield
    vault.forget_master_key()
    detection_indexes.forget()


@pytest.fixture
def units(db):
    """province ⊃ district ⊃ {school_a, school_b}; plus another district with school_c."""
    province = Unit.objects.create(kind=UnitKind.PROVINCE, code="hp", name="Sở GD&ĐT Hải Phòng")
    district = Unit.objects.create(kind=UnitKind.DISTRICT, code="hong-bang", name="Phòng GD&ĐT Hồng Bàng", parent=province)
    school_a = Unit.objects.create(kind=UnitKind.SCHOOL, code="th-hung-vuong", name="Trường TH Hùng Vương", parent=district,
                                   counsellor_name="Cô Lan", counsellor_phone="0225 3000 111")
    school_b = Unit.objects.create(kind=UnitKind.SCHOOL, code="th-quang-trung", name="Trường TH Quang Trung", parent=district)
    other_district = Unit.objects.create(kind=UnitKind.DISTRICT, code="le-chan", name="Phòng GD&ĐT Lê Chân", parent=province)
    school_c = Unit.objects.create(kind=UnitKind.SCHOOL, code="th-le-chan", name="Trường TH Lê Chân", parent=other_district)
    return {"province": province, "district": district, "school_a": school_a, "school_b": school_b,
            "other_district": other_district, "school_c": school_c}


def make_user(username: str, role: str | None = None, unit: Unit | None = None, password: str = "correct horse battery 1"):
    user = get_user_model().objects.create_user(username=username, password=password)
    if role and unit:
        user.memberships.create(unit=unit, role=role)
    return user


@pytest.fixture
def staff(units):
    """One account per role, all at the district (so school_a is a child unit)."""
    return {role.value: make_user(f"{role.value}-district", role.value, units["district"]) for role in Role}


def png_bytes(width: int = 64, height: int = 48, colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48, colour=(30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="JPEG")
    return out.getvalue()
