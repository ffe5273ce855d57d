"""The hash-list console pages: who reaches them, and every change audited."""

from __future__ import annotations

import hashlib
import html

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cophub.audit.models import AuditEvent
from cophub.cases.tests.helpers import flash, log_in
from cophub.conftest import make_user
from cophub.hashbanks import services
from cophub.hashbanks.models import Bank, BankEntry, BankKind
from cophub.orgs.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def top_admin(units):
    return make_user("admin-province", Role.ADMIN, units["province"])


@pytest.fixture
def admin_client(client, top_admin):
    log_in(client, top_admin)
    return client


@pytest.fixture
def bank():
    bank = services.create_bank("NCMEC", BankKind.IMPORTED, actor=None, shared=True, origin="NCMEC")
    services.add_signals(bank, {"md5": md5(1), "sha256": sha(1)}, source="test", actor=None)
    return bank


def md5(n) -> str:
    return hashlib.md5(f"tệp {n}".encode()).hexdigest()


def sha(n) -> str:
    return hashlib.sha256(f"tệp {n}".encode()).hexdigest()


def page(response) -> str:
    return html.unescape(response.content.decode())


def url(name, *args) -> str:
    return reverse(f"hashlists:{name}", args=args)


@pytest.mark.parametrize("role", ["handler", "admin", "observer"])
def test_others_are_refused_even_a_district_admin(client, staff, bank, role):
    log_in(client, staff[role])  # every role at the district, the admin included: not a top unit
    assert client.get(url("banks")).status_code == 403
    assert client.get(url("bank", bank.pk)).status_code == 403
    response = client.post(url("bank_switch", bank.pk), {"enabled": "0", "reason": "thử"})
    assert response.status_code == 403 and Bank.objects.get(pk=bank.pk).enabled
    assert client.post(url("bank_create"), {"name": "Mới", "kind": "allow", "pdq_threshold": 31, "min_quality": 50}).status_code == 403


def test_logged_out_goes_to_the_login(client, bank):
    response = client.get(url("banks"))
    assert response.status_code == 302 and reverse("console:login") in response["Location"]


def test_a_top_admin_and_a_superuser_see_the_lists(admin_client, client, bank):
    text = page(admin_client.get(url("banks")))
    assert "Danh sách mã băm" in text and "NCMEC" in text
    text = page(admin_client.get(url("bank", bank.pk)))
    assert md5(1) in text and sha(1) in text and "cophub hashes import" in text
    superuser = make_user("root")
    superuser.is_superuser = True
    superuser.save()
    log_in(client, superuser)
    assert client.get(url("bank", bank.pk)).status_code == 200
    assert admin_client.get(url("bank", 999999)).status_code == 404


def test_entries_filter_by_value_type_and_state(admin_client, bank):
    services.disable_entry(BankEntry.objects.get(signal_type="md5"), None, "nhầm")
    text = page(admin_client.get(url("bank", bank.pk), {"q": md5(1)[:10].upper()}))
    assert md5(1) in text and sha(1) not in text
    text = page(admin_client.get(url("bank", bank.pk), {"signal_type": "sha256"}))
    assert sha(1) in text and md5(1) not in text
    text = page(admin_client.get(url("bank", bank.pk), {"state": "disabled"}))
    assert md5(1) in text and sha(1) not in text


def test_create_a_list_audited(admin_client, top_admin):
    response = admin_client.post(url("bank_create"), {"name": " Danh sách  cho phép ", "kind": "allow", "shared": "on",
                                                      "pdq_threshold": 31, "min_quality": 50})
    assert response.status_code == 200 and not Bank.objects.filter(kind="allow").exists()  # allow + shared refused
    response = admin_client.post(url("bank_create"), {"name": " Danh sách  cho phép ", "kind": "allow", "pdq_threshold": 20,
                                                      "min_quality": 60, "origin": "Trường học"})
    bank = Bank.objects.get(kind="allow")
    assert response.status_code == 302 and response["Location"] == url("bank", bank.pk)
    assert bank.name == "Danh sách cho phép" and bank.pdq_threshold == 20 and not bank.shared_with_providers
    assert AuditEvent.objects.get(action="hashbank.created").actor_id == top_admin.pk


def test_remove_an_entry_needs_a_reason_and_is_audited(admin_client, bank, top_admin):
    entry = BankEntry.objects.get(signal_type="md5")
    response = admin_client.post(url("entry_disable", bank.pk, entry.pk), {"reason": ""})
    assert response.status_code == 302 and flash(response) and BankEntry.objects.get(pk=entry.pk).enabled
    admin_client.post(url("entry_disable", bank.pk, entry.pk), {"reason": "Không phải nội dung xấu"})
    assert not BankEntry.objects.get(pk=entry.pk).enabled
    event = AuditEvent.objects.get(action="hashbank.entry_removed")
    assert event.actor_id == top_admin.pk and event.data["reason"] == "Không phải nội dung xấu"
    other = services.create_bank("Khác", BankKind.IMPORTED, actor=None)
    assert admin_client.post(url("entry_disable", other.pk, entry.pk), {"reason": "x"}).status_code == 404


def test_switch_a_list_off_and_on(admin_client, bank, top_admin):
    cursor = services.feed(0, 100, sandbox=False)["cursor"]
    admin_client.post(url("bank_switch", bank.pk), {"enabled": "0", "reason": ""})
    assert Bank.objects.get(pk=bank.pk).enabled
    admin_client.post(url("bank_switch", bank.pk), {"enabled": "0", "reason": "Danh sách đã cũ"})
    assert not Bank.objects.get(pk=bank.pk).enabled
    assert {i["value"] for i in services.feed(cursor, 100, sandbox=False)["removed"]} == {md5(1), sha(1)}
    event = AuditEvent.objects.get(action="hashbank.disabled")
    assert event.actor_id == top_admin.pk and event.data["reason"] == "Danh sách đã cũ"
    admin_client.post(url("bank_switch", bank.pk), {"enabled": "1", "reason": "Dùng lại"})
    assert Bank.objects.get(pk=bank.pk).enabled and AuditEvent.objects.filter(action="hashbank.enabled").count() == 1


def test_edit_settings_audited(admin_client, bank):
    response = admin_client.post(url("bank_settings", bank.pk), {"pdq_threshold": 300, "min_quality": 50})
    assert response.status_code == 200 and Bank.objects.get(pk=bank.pk).pdq_threshold == 31
    admin_client.post(url("bank_settings", bank.pk), {"pdq_threshold": 24, "min_quality": 70, "description": "Mô tả", "origin": "NCMEC"})
    bank.refresh_from_db()
    assert (bank.pdq_threshold, bank.min_quality, bank.description) == (24, 70, "Mô tả")
    changes = AuditEvent.objects.get(action="hashbank.updated").data["changes"]
    assert changes["pdq_threshold"] == [31, 24] and "origin" not in changes


def test_upload_a_small_file(admin_client, bank, top_admin):
    body = f"signal_type,value\nmd5,{md5(2)}\nmd5,sai\n".encode()
    response = admin_client.post(url("bank_import", bank.pk), {"format": "csv", "file": SimpleUploadedFile("list.csv", body)})
    text = page(response)
    assert response.status_code == 200 and "1 đã thêm" in text and "dòng 3" in text
    assert BankEntry.objects.filter(bank=bank, value=md5(2), added_by=top_admin).exists()
    event = AuditEvent.objects.get(action="hashbank.imported")
    assert event.actor_id == top_admin.pk and event.data["added"] == 1 and event.data["source"] == "upload:list.csv"

    plain = SimpleUploadedFile("list.txt", f"{md5(3)}\n".encode())
    response = admin_client.post(url("bank_import", bank.pk), {"format": "plain", "file": plain})
    assert response.status_code == 200 and not BankEntry.objects.filter(value=md5(3)).exists()  # no type chosen
    response = admin_client.post(url("bank_import", bank.pk), {"format": "csv", "file": SimpleUploadedFile("x.csv", b"\xff\xfe\x00")})
    assert response.status_code == 302 and "UTF-16" in " ".join(flash(response))


def test_a_big_upload_is_sent_to_the_command_line(admin_client, bank, settings):
    from cophub.hashbanks import forms

    big = SimpleUploadedFile("big.csv", b"x" * (forms.MAX_UPLOAD_MB * 1024 * 1024 + 1))
    text = page(admin_client.post(url("bank_import", bank.pk), {"format": "csv", "file": big}))
    assert "cophub hashes import" in text and not AuditEvent.objects.filter(action="hashbank.imported").exists()
