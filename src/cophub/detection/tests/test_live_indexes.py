"""The worker's live indexes follow the banks' change log: no reload per change, snapshots without pickle."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from cophub.detection import indexes, services
from cophub.hashbanks import services as banks
from cophub.hashbanks.formats import ImportRow
from cophub.hashbanks.models import BankChange

pytestmark = pytest.mark.django_db


def random_hash(rng) -> str:
    return rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def flip(value: str, bits: int) -> str:
    number = int(value, 16)
    for bit in range(bits):
        number ^= 1 << (bit * 7 % 256)
    return f"{number:064x}"


def test_an_entry_added_is_matched_by_the_next_query_without_a_reload(staff):
    rng = np.random.default_rng(1)
    first, second = random_hash(rng), random_hash(rng)
    banks.add_signals(banks.hub_bank(), {"pdq": first}, source="t", actor=staff["admin"])
    index = indexes.get(indexes.BankPdqIndex)
    assert [h.distance for h in services.match_pdq([flip(first, 5)], quality=100)] == [5]

    started = time.monotonic()
    banks.add_signals(banks.hub_bank(), {"pdq": second}, source="t", actor=staff["admin"])
    hits = services.match_pdq([flip(second, 31)], quality=100)
    assert time.monotonic() - started < 1.0
    assert [h.distance for h in hits] == [31]
    assert indexes.get(indexes.BankPdqIndex) is index  # followed, not rebuilt
    assert services.match_pdq([flip(second, 32)], quality=100) == []  # the 31/32 edge


def test_a_disabled_entry_stops_matching_at_once(staff):
    value = random_hash(np.random.default_rng(2))
    entry = banks.add_signals(banks.hub_bank(), {"pdq": value}, source="t", actor=staff["admin"]).entries[0]
    assert services.match_pdq([value], quality=100)
    banks.disable_entry(entry, staff["admin"], "mistake")
    assert services.match_pdq([value], quality=100) == []
    assert indexes.get(indexes.BankPdqIndex).search(value, 0) == []


def test_quality_under_the_banks_minimum_does_not_match(staff):
    value = random_hash(np.random.default_rng(3))
    banks.add_signals(banks.hub_bank(), {"pdq": value}, source="t", actor=staff["admin"])
    assert services.match_pdq([value], quality=49) == []
    assert services.match_pdq([value], quality=50)


def test_a_banks_own_threshold_applies(staff):
    value = random_hash(np.random.default_rng(4))
    strict = banks.Bank.objects.create(name="strict", kind="imported", pdq_threshold=10)
    banks.add_signals(strict, {"pdq": value}, source="t", actor=staff["admin"])
    assert [h.distance for h in services.match_pdq([flip(value, 10)], quality=100)] == [10]
    assert services.match_pdq([flip(value, 11)], quality=100) == []


def test_an_import_of_many_entries_is_applied_in_one_pass(staff):
    rng = np.random.default_rng(5)
    bank = banks.Bank.objects.create(name="imported", kind="imported")
    indexes.get(indexes.BankPdqIndex)
    values = [random_hash(rng) for _ in range(3000)]
    banks.import_signals(bank, (ImportRow("pdq", v, 100, "", n + 2) for n, v in enumerate(values)), actor=staff["admin"], source="t")
    started = time.monotonic()
    index = indexes.get(indexes.BankPdqIndex)
    assert time.monotonic() - started < 1.0
    assert len(index) == 3000
    assert all(index.search(v, 0) for v in values[::300])


@pytest.mark.parametrize("size", [0, 1, 2])
def test_a_snapshot_is_reloaded_with_its_cursor(staff, size, settings):
    rng = np.random.default_rng(10 + size)
    values = [random_hash(rng) for _ in range(size)]
    for value in values:
        banks.add_signals(banks.hub_bank(), {"pdq": value}, source="t", actor=staff["admin"])
    indexes.get(indexes.BankPdqIndex)
    assert indexes.save_snapshots() >= 1
    path = settings.COPHUB_INDEX_DIR / "bank-pdq.pdqidx"
    assert path.read_bytes()[:8] == b"CPHPDQIX"
    assert json.loads(path.with_suffix(".json").read_text())["entries"] == size

    indexes.forget()
    later = random_hash(rng)
    banks.add_signals(banks.hub_bank(), {"pdq": later}, source="t", actor=staff["admin"])  # after the snapshot
    index = indexes.get(indexes.BankPdqIndex)
    assert len(index) == size + 1
    for value in values + [later]:
        assert [d for _, d in index.search(value, 0)] == [0]


def test_a_snapshot_of_another_database_is_not_used(staff, settings):
    banks.add_signals(banks.hub_bank(), {"pdq": random_hash(np.random.default_rng(20))}, source="t", actor=staff["admin"])
    indexes.get(indexes.BankPdqIndex)
    indexes.save_snapshots()
    meta = settings.COPHUB_INDEX_DIR / "bank-pdq.json"
    meta.write_text(json.dumps({"cursor": 10_000_000, "entries": 1}))
    indexes.forget()
    assert len(indexes.get(indexes.BankPdqIndex)) == 1  # loaded from the database instead


def test_a_corrupt_snapshot_falls_back_to_the_database(staff, settings):
    banks.add_signals(banks.hub_bank(), {"pdq": random_hash(np.random.default_rng(21))}, source="t", actor=staff["admin"])
    indexes.get(indexes.BankPdqIndex)
    indexes.save_snapshots()
    path = settings.COPHUB_INDEX_DIR / "bank-pdq.pdqidx"
    path.write_bytes(path.read_bytes()[:-5])
    indexes.forget()
    assert len(indexes.get(indexes.BankPdqIndex)) == 1


def test_a_database_that_went_back_is_reloaded(staff):
    value = random_hash(np.random.default_rng(22))
    banks.add_signals(banks.hub_bank(), {"pdq": value}, source="t", actor=staff["admin"])
    indexes.get(indexes.BankPdqIndex)
    live = indexes._indexes["bank-pdq"]
    BankChange.objects.all().delete()  # as after restoring an older backup
    live.cursor += 5
    assert len(live.current()) == 1  # reloaded from the entries, cursor back in step
    assert live.cursor == 0


def test_seen_files_index_finds_an_earlier_similar_file(client, units):
    from cophub.detection.models import FileSignals
    from cophub.evidence.models import Blob

    rng = np.random.default_rng(23)
    value = random_hash(rng)

    def blob(n):
        return Blob.objects.create(sha256=f"{n:064x}", md5=f"{n:032x}", size=1, mime="image/jpeg", kind="image",
                                   storage_name=f"obj{n}", wrapped_key=b"k", key_id="k1")

    first = blob(1)
    FileSignals.objects.create(blob=first, status="done", pdq=value, pdq_quality=90)
    assert services.similar_files(flip(value, 20), 90) == [first.pk]
    second = blob(2)
    FileSignals.objects.create(blob=second, status="done", pdq=flip(value, 3), pdq_quality=30)  # too flat to link
    assert services.similar_files(value, 90, exclude_blob_ids={first.pk}) == []
    assert services.similar_files(value, 40) == []  # the query itself too flat
