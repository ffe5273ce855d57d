"""Reading the banks for matching: what detection asks of this app.

Only enabled entries of enabled, real (not sandbox) banks ever match. The
change log (`BankChange`, ids in commit order) lets an in-memory index follow
the banks without reloading them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import Max

from .models import Bank, BankChange, BankEntry, ChangeAction

MATCHABLE = {"enabled": True, "bank__enabled": True, "bank__sandbox": False}


@dataclass(frozen=True)
class EntryRef:
    """An entry as matching needs it: which bank, what kind of bank, its thresholds."""

    id: int
    bank_id: int
    bank_name: str
    bank_kind: str
    signal_type: str
    value: str
    data: str
    pdq_threshold: int
    min_quality: int


def _refs(queryset) -> list[EntryRef]:
    rows = queryset.values_list("pk", "bank_id", "bank__name", "bank__kind", "signal_type", "value", "data",
                                "bank__pdq_threshold", "bank__min_quality")
    return [EntryRef(*row) for row in rows]


def exact_entries(signal_type: str, values: Iterable[str]) -> list[EntryRef]:
    """Matchable entries holding any of these exact values (through the (signal_type, value) index)."""
    values = sorted({v for v in values if v})
    if not values:
        return []
    found: list[EntryRef] = []
    for start in range(0, len(values), 500):  # stay under SQLite's bound-parameter limit
        found += _refs(BankEntry.objects.filter(signal_type=signal_type, value__in=values[start:start + 500], **MATCHABLE))
    return found


def entries_by_ids(ids: Iterable[int]) -> list[EntryRef]:
    """Matchable entries among these ids (an index's candidates; disabled ones drop out here)."""
    ids = sorted(set(ids))
    found: list[EntryRef] = []
    for start in range(0, len(ids), 500):
        found += _refs(BankEntry.objects.filter(pk__in=ids[start:start + 500], **MATCHABLE))
    return found


def largest_pdq_threshold(default: int = 31) -> int:
    """The widest PDQ distance any enabled bank accepts: the index searches that far, banks filter."""
    value = Bank.objects.filter(enabled=True, sandbox=False).aggregate(m=Max("pdq_threshold"))["m"]
    return default if value is None else int(value)


def last_change_id() -> int:
    return BankChange.objects.aggregate(m=Max("pk"))["m"] or 0


@dataclass(frozen=True)
class Change:
    id: int
    added: bool
    entry_id: int
    value: str
    data: str


def changes_since(cursor: int, signal_type: str, limit: int = 50_000) -> list[Change]:
    """Changes to entries of one signal type after `cursor`, oldest first (all banks: matching filters later)."""
    rows = (BankChange.objects.filter(pk__gt=cursor, entry__signal_type=signal_type).order_by("pk")
            .values_list("pk", "action", "entry_id", "entry__value", "entry__data")[:limit])
    return [Change(pk, action == ChangeAction.ADDED, entry_id, value, data) for pk, action, entry_id, value, data in rows]


def enabled_values(signal_type: str, chunk_size: int = 20_000) -> Iterator[tuple[int, str, str]]:
    """(entry id, value, data) of every enabled entry of a type, streamed: an index's first load."""
    rows = BankEntry.objects.filter(signal_type=signal_type, enabled=True).order_by("pk").values_list("pk", "value", "data")
    yield from rows.iterator(chunk_size=chunk_size)
