"""Hash banks: adding and removing signals, confirming case files, and the providers' feed.

Every change to an entry appends a `BankChange` and an audit row in the same
transaction. Writers first lock the hub bank's row and hold it until they
commit, so change ids are handed out in commit order: a provider that has
read up to id N will never later find a committed change below N (with
concurrent writers on PostgreSQL, a sequence alone gives no such promise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cophub.audit.services import record

from .models import Bank, BankChange, BankEntry, BankKind, ChangeAction, SignalType

HUB_BANK_NAME = "Danh sách mã băm của trung tâm"
SANDBOX_BANK_NAME = "Danh sách mã băm thử nghiệm (sandbox)"

# What a value of each signal type looks like once normalised (lowercase hex for hashes).
SIGNAL_FORMATS = {
    SignalType.SHA256: re.compile(r"[0-9a-f]{64}"),
    SignalType.MD5: re.compile(r"[0-9a-f]{32}"),
}


# --- Banks ---------------------------------------------------------------------------------


def hub_bank() -> Bank:
    """The hub's own confirmed list, shared with providers (made on first use)."""
    bank, _ = Bank.objects.get_or_create(kind=BankKind.HUB, sandbox=False,
                                         defaults={"name": HUB_BANK_NAME, "shared_with_providers": True})
    return bank


def sandbox_bank() -> Bank:
    """Test entries that sandbox API keys read instead of the real lists."""
    bank, _ = Bank.objects.get_or_create(kind=BankKind.HUB, sandbox=True,
                                         defaults={"name": SANDBOX_BANK_NAME, "shared_with_providers": True})
    return bank


def _lock_feed() -> None:
    """Serialise every writer of changes until it commits (see the module's docstring)."""
    Bank.objects.select_for_update().filter(pk=hub_bank().pk).first()


def normalise(signal_type: str, value: str) -> str:
    if signal_type not in SIGNAL_FORMATS:
        raise ValueError(f"unknown signal type: {signal_type}")
    value = (value or "").strip().lower()
    if not SIGNAL_FORMATS[signal_type].fullmatch(value):
        raise ValueError(f"not a {signal_type} value: {value[:80]!r}")
    return value


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


# --- Adding and removing ------------------------------------------------------------------------


@dataclass
class Added:
    entries: list[BankEntry] = field(default_factory=list)  # one per signal given
    changed: list[BankEntry] = field(default_factory=list)  # those new or enabled again


@transaction.atomic
def add_signals(bank: Bank, signals: dict, *, source: str, actor, note: str = "", unit=None) -> Added:
    """Put signals ({"sha256": …, "md5": …}; empty values skipped) in the bank.

    Idempotent: an enabled entry is left alone; a disabled one is enabled
    again, with a new "added" change so providers that removed it add it back.
    """
    wanted = {kind: normalise(kind, value) for kind, value in signals.items() if value}
    _lock_feed()
    result = Added()
    for signal_type, value in wanted.items():
        entry = BankEntry.objects.select_for_update().filter(bank=bank, signal_type=signal_type, value=value).first()
        if entry is not None and entry.enabled:
            result.entries.append(entry)
            continue
        now = timezone.now()
        again = entry is not None
        if entry is None:
            entry = BankEntry(bank=bank, signal_type=signal_type, value=value)
        entry.enabled, entry.disabled_at, entry.added_at = True, None, now
        entry.source, entry.note, entry.added_by = source[:200], note, _user(actor)
        entry.save()
        BankChange.objects.create(entry=entry, action=ChangeAction.ADDED, at=now)
        record("hashbank.entry_added", actor=actor, obj=entry, unit=unit, bank=bank.pk, signal_type=signal_type, value=value,
               source=source, again=again)
        result.entries.append(entry)
        result.changed.append(entry)
    return result


@transaction.atomic
def disable_entry(entry: BankEntry, actor, reason: str, *, unit=None) -> bool:
    """Take an entry off its bank (kept, with its history); False when it already was."""
    _lock_feed()
    entry = BankEntry.objects.select_for_update().get(pk=entry.pk)
    if not entry.enabled:
        return False
    now = timezone.now()
    entry.enabled, entry.disabled_at = False, now
    entry.save(update_fields=["enabled", "disabled_at"])
    BankChange.objects.create(entry=entry, action=ChangeAction.REMOVED, at=now)
    record("hashbank.entry_removed", actor=actor, obj=entry, unit=unit, bank=entry.bank_id, signal_type=entry.signal_type,
           value=entry.value, reason=reason)
    return True


# --- Looking up ----------------------------------------------------------------------------------


def entries_for_blob(sha256: str):
    """Enabled entries of enabled real banks (not sandbox) that hold this file's SHA-256."""
    return BankEntry.objects.filter(signal_type=SignalType.SHA256, value=(sha256 or "").lower(), enabled=True,
                                    bank__enabled=True, bank__sandbox=False).select_related("bank")


def _hub_entry(sha256: str) -> BankEntry | None:
    return entries_for_blob(sha256).filter(bank__kind=BankKind.HUB).first()


def is_confirmed(sha256: str) -> bool:
    """Is the file on the hub's own confirmed list?"""
    return _hub_entry(sha256) is not None


def listed_since(sha256: str):
    """When the file went (back) on the hub's list, or None."""
    entry = _hub_entry(sha256)
    return entry.added_at if entry else None


# --- Case files ------------------------------------------------------------------------------------


def _require_confirm(case, actor) -> None:
    from cophub.cases import permissions

    if not permissions.can(actor, "evidence.confirm", case.unit):
        raise PermissionDenied


@transaction.atomic
def confirm_blob(case, blob, actor) -> Added:
    """Staff confirmed a case file as illegal material: its SHA-256 and MD5 go on the hub's list."""
    from cophub.cases.services import record_hash_list

    _require_confirm(case, actor)
    added = add_signals(hub_bank(), {SignalType.SHA256: blob.sha256, SignalType.MD5: blob.md5},
                        source=f"case:{case.reference}", actor=actor, unit=case.unit)
    if added.changed:
        record_hash_list(case, blob, actor, listed=True)
    return added


@transaction.atomic
def withdraw_blob(case, blob, actor, reason: str) -> int:
    """Take a case file off the hub's list (a mistaken confirmation); the number of entries removed."""
    from cophub.cases.services import record_hash_list

    _require_confirm(case, actor)
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    mine = Q(signal_type=SignalType.SHA256, value=blob.sha256.lower()) | Q(signal_type=SignalType.MD5, value=blob.md5.lower())
    removed = 0
    for entry in BankEntry.objects.filter(mine, bank=hub_bank(), enabled=True):
        if disable_entry(entry, actor, reason, unit=case.unit):
            removed += 1
    if removed:
        record_hash_list(case, blob, actor, listed=False, reason=reason)
    return removed


# --- The providers' feed ----------------------------------------------------------------------------


def _feed_banks(sandbox: bool):
    if sandbox:
        return Bank.objects.filter(sandbox=True, enabled=True)
    # An allow list is never sent: it holds what must *not* match.
    return Bank.objects.filter(sandbox=False, enabled=True, shared_with_providers=True).exclude(kind=BankKind.ALLOW)


def _still_listed_elsewhere(entries: list[BankEntry], banks) -> set[tuple[str, str]]:
    """The signals of these entries still enabled in another shared bank: a provider must keep them.

    One query for the whole page, however many removals it holds.
    """
    if not entries:
        return set()
    own = {entry.pk for entry in entries}
    others = BankEntry.objects.filter(bank__in=banks, enabled=True, value__in={entry.value for entry in entries})
    return {(signal_type, value) for pk, signal_type, value in others.values_list("pk", "signal_type", "value") if pk not in own}


def feed(cursor: int, limit: int, sandbox: bool) -> dict:
    """The changes after `cursor`, at most `limit`, folded per entry to its latest state in the page.

    An entry added and removed within one page shows only as removed (a
    provider that never had it removes nothing); the cursor moves past every
    change read, so nothing is read twice.
    """
    banks = _feed_banks(sandbox)
    changes = list(BankChange.objects.filter(pk__gt=cursor, entry__bank__in=banks).select_related("entry").order_by("pk")[:limit + 1])
    more = len(changes) > limit
    changes = changes[:limit]
    latest: dict[int, BankChange] = {}
    for change in changes:
        latest.pop(change.entry_id, None)  # keep the order of each entry's last change
        latest[change.entry_id] = change
    kept = _still_listed_elsewhere([c.entry for c in latest.values() if c.action == ChangeAction.REMOVED], banks)
    added, removed = [], []
    for change in latest.values():
        entry = change.entry
        if change.action == ChangeAction.ADDED:
            added.append({"signal_type": entry.signal_type, "value": entry.value, "added_at": change.at.isoformat()})
        elif (entry.signal_type, entry.value) not in kept:
            removed.append({"signal_type": entry.signal_type, "value": entry.value, "removed_at": change.at.isoformat()})
    return {"added": added, "removed": removed, "cursor": changes[-1].pk if changes else cursor, "more": more}
