"""Hash banks: adding, removing, and the feed providers page through."""

from __future__ import annotations

import hashlib

import pytest

from cophub.audit.models import AuditEvent
from cophub.hashbanks import services
from cophub.hashbanks.models import Bank, BankChange, BankEntry, BankKind

pytestmark = pytest.mark.django_db


def sha(n) -> str:
    return hashlib.sha256(f"tệp {n}".encode()).hexdigest()


def md5(n) -> str:
    return hashlib.md5(f"tệp {n}".encode()).hexdigest()


def add(n, bank=None, **kwargs):
    return services.add_signals(bank or services.hub_bank(), {"sha256": sha(n), "md5": md5(n)}, source=f"case:{n}", actor=None, **kwargs)


def values(items) -> list[str]:
    return [item["value"] for item in items]


def test_one_hub_bank_and_one_sandbox_bank():
    assert services.hub_bank() == services.hub_bank()
    assert services.sandbox_bank() != services.hub_bank()
    assert Bank.objects.filter(kind=BankKind.HUB, sandbox=False).count() == 1
    assert services.hub_bank().shared_with_providers and services.sandbox_bank().sandbox


def test_empty_feed_at_cursor_zero():
    assert services.feed(0, 1000, sandbox=False) == {"added": [], "removed": [], "cursor": 0, "more": False}


def test_adding_is_idempotent_and_audited():
    first = add(1)
    assert len(first.changed) == 2
    again = add(1)
    assert again.changed == [] and [e.pk for e in again.entries] == [e.pk for e in first.entries]
    assert BankEntry.objects.count() == 2 and BankChange.objects.count() == 2
    assert AuditEvent.objects.filter(action="hashbank.entry_added").count() == 2


def test_values_are_lowercased_and_checked():
    services.add_signals(services.hub_bank(), {"sha256": sha(1).upper()}, source="x", actor=None)
    assert BankEntry.objects.get().value == sha(1)
    with pytest.raises(ValueError):
        services.add_signals(services.hub_bank(), {"sha256": "not hex"}, source="x", actor=None)
    with pytest.raises(ValueError):
        services.add_signals(services.hub_bank(), {"tmk": "ab" * 32}, source="x", actor=None)  # not a type we know


def test_disable_shows_as_removed_and_reenable_as_added_again():
    entry = add(1).entries[0]
    cursor = services.feed(0, 1000, sandbox=False)["cursor"]

    assert services.disable_entry(entry, None, "nhầm lẫn")
    assert not services.disable_entry(entry, None, "lần nữa")  # already off: no second change
    page = services.feed(cursor, 1000, sandbox=False)
    assert page["added"] == [] and values(page["removed"]) == [sha(1)]
    assert "removed_at" in page["removed"][0]
    assert AuditEvent.objects.filter(action="hashbank.entry_removed").count() == 1

    again = add(1)
    assert [e.pk for e in again.changed] == [entry.pk]
    later = services.feed(page["cursor"], 1000, sandbox=False)
    assert values(later["added"]) == [sha(1)] and later["removed"] == []
    assert BankEntry.objects.get(pk=entry.pk).disabled_at is None


def test_a_page_holds_each_entry_once_in_its_latest_state():
    entry = add(1).entries[0]
    services.disable_entry(entry, None, "nhầm")
    add(1)
    services.disable_entry(entry, None, "nhầm lần hai")
    page = services.feed(0, 1000, sandbox=False)
    assert values(page["added"]) == [md5(1)]
    assert values(page["removed"]) == [sha(1)]
    assert page["cursor"] == BankChange.objects.latest("pk").pk


def test_paging_with_cursor_and_more():
    for n in range(5):
        add(n)  # 10 changes
    seen, cursor, pages = [], 0, 0
    while True:
        page = services.feed(cursor, 3, sandbox=False)
        pages += 1
        seen += values(page["added"])
        assert page["cursor"] >= cursor
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert pages == 4
    assert sorted(seen) == sorted([sha(n) for n in range(5)] + [md5(n) for n in range(5)])
    assert services.feed(cursor, 3, sandbox=False) == {"added": [], "removed": [], "cursor": cursor, "more": False}


def test_a_page_exactly_full_says_more_only_when_there_is_more():
    add(1)
    assert services.feed(0, 2, sandbox=False)["more"] is False
    assert services.feed(0, 1, sandbox=False)["more"] is True


def test_sandbox_keys_see_only_the_sandbox_bank():
    add(1)
    add(2, bank=services.sandbox_bank())
    assert sorted(values(services.feed(0, 100, sandbox=False)["added"])) == sorted([sha(1), md5(1)])
    assert sorted(values(services.feed(0, 100, sandbox=True)["added"])) == sorted([sha(2), md5(2)])


def test_unshared_allow_and_disabled_banks_stay_out_of_the_feed():
    imported = Bank.objects.create(name="Nhập", kind=BankKind.IMPORTED)
    allow = Bank.objects.create(name="Cho phép", kind=BankKind.ALLOW, shared_with_providers=True)
    off = Bank.objects.create(name="Tắt", kind=BankKind.IMPORTED, shared_with_providers=True, enabled=False)
    for n, bank in enumerate([imported, allow, off]):
        add(n, bank=bank)
    assert services.feed(0, 100, sandbox=False)["added"] == []


def test_a_signal_still_in_another_shared_bank_is_not_removed():
    shared = Bank.objects.create(name="Nhập, chia sẻ", kind=BankKind.IMPORTED, shared_with_providers=True)
    add(1, bank=shared)
    entry = add(1).entries[0]
    cursor = services.feed(0, 100, sandbox=False)["cursor"]
    services.disable_entry(entry, None, "chỉ gỡ khỏi danh sách của trung tâm")
    assert services.feed(cursor, 100, sandbox=False)["removed"] == []


def test_removals_cost_the_same_queries_however_many_a_page_holds():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    shared = Bank.objects.create(name="Nhập, chia sẻ", kind=BankKind.IMPORTED, shared_with_providers=True)
    add(0, bank=shared)
    entries = [add(n).entries[0] for n in range(12)]  # the SHA-256 entries of 12 files, number 0 also in `shared`
    cursor = services.feed(0, 100, sandbox=False)["cursor"]

    def removals(count):
        for entry in entries[:count]:
            services.disable_entry(entry, None, "thử")
        with CaptureQueriesContext(connection) as queries:
            page = services.feed(cursor, 100, sandbox=False)
        return page, len(queries.captured_queries)

    page, few = removals(2)
    assert values(page["removed"]) == [sha(1)]  # sha(0) is still in a shared bank
    page, many = removals(12)
    assert values(page["removed"]) == [sha(n) for n in range(1, 12)]
    assert many == few


def test_is_confirmed_follows_the_hub_bank():
    assert not services.is_confirmed(sha(1))
    entry = add(1).entries[0]
    assert services.is_confirmed(sha(1).upper()) and services.listed_since(sha(1)) == entry.added_at
    assert [e.pk for e in services.entries_for_blob(sha(1))] == [entry.pk]
    add(2, bank=services.sandbox_bank())
    assert not services.is_confirmed(sha(2))  # sandbox entries never count as confirmed
    services.disable_entry(entry, None, "nhầm")
    assert not services.is_confirmed(sha(1)) and services.listed_since(sha(1)) is None
