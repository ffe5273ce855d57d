"""Hash banks: adding and removing signals, confirming case files, and the providers' feed.

Every change to an entry appends a `BankChange` and an audit row in the same
transaction. Writers first lock the hub bank's row and hold it until they
commit, so change ids are handed out in commit order: a provider that has
read up to id N will never later find a committed change below N (with
concurrent writers on PostgreSQL, a sequence alone gives no such promise).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from cophub.audit.services import record

from .models import Bank, BankChange, BankEntry, BankKind, ChangeAction, SignalType, review_by

HUB_BANK_NAME = "Danh sách mã băm của trung tâm"
SANDBOX_BANK_NAME = "Danh sách mã băm thử nghiệm (sandbox)"

# What a value of each signal type looks like once normalised (lowercase hex for hashes).
SIGNAL_FORMATS = {
    SignalType.SHA256: re.compile(r"[0-9a-f]{64}"),
    SignalType.MD5: re.compile(r"[0-9a-f]{32}"),
    SignalType.PDQ: re.compile(r"[0-9a-f]{64}"),
    SignalType.VPDQ: re.compile(r"[0-9a-f]{64}"),  # the SHA-256 of the frame list
    SignalType.URL: re.compile(r"https?://\S{1,990}"),
    SignalType.DOMAIN: re.compile(r"(?=.{1,253}$)[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})+"),
}


# --- Banks ---------------------------------------------------------------------------------


def hub_bank() -> Bank:
    """The hub's own confirmed list, shared with providers (made on first use)."""
    bank, _created = Bank.objects.get_or_create(kind=BankKind.HUB, sandbox=False,
                                         defaults={"name": HUB_BANK_NAME, "shared_with_providers": True})
    return bank


def sandbox_bank() -> Bank:
    """Test entries that sandbox API keys read instead of the real lists."""
    bank, _created = Bank.objects.get_or_create(kind=BankKind.HUB, sandbox=True,
                                         defaults={"name": SANDBOX_BANK_NAME, "shared_with_providers": True})
    return bank


def _lock_feed() -> None:
    """Serialise every writer of changes until it commits (see the module's docstring)."""
    Bank.objects.select_for_update().filter(pk=hub_bank().pk).first()


def normalise(signal_type: str, value: str) -> str:
    if signal_type not in SIGNAL_FORMATS:
        raise ValueError(f"unknown signal type: {signal_type}")
    value = (value or "").strip()
    if signal_type == SignalType.URL:
        from cophub.detection.urls import normalise_url

        value = normalise_url(value) or ""
    elif signal_type == SignalType.DOMAIN:
        from cophub.detection.urls import normalise_domain

        value = normalise_domain(value) or ""
    else:
        value = value.lower()
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


@dataclass(frozen=True)
class Signal:
    """A signal with what some types carry besides their value: PDQ its quality, vPDQ its frames."""

    value: str
    quality: int | None = None
    data: str = ""


@transaction.atomic
def add_signals(bank: Bank, signals: dict, *, source: str, actor, note: str = "", unit=None) -> Added:
    """Put signals ({"sha256": "…", "pdq": Signal(…, quality=…)}; empty values skipped) in the bank.

    Idempotent: an enabled entry is left alone; a disabled one is enabled
    again, with a new "added" change so providers that removed it add it back.
    """
    given = {kind: value if isinstance(value, Signal) else Signal(value) for kind, value in signals.items() if value}
    wanted = {kind: normalise(kind, signal.value) for kind, signal in given.items() if signal.value}
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
        entry.quality, entry.data = given[signal_type].quality, given[signal_type].data
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


def _perceptual(blob) -> dict[str, Signal]:
    """The file's PDQ (when good enough to match) and vPDQ, as detection computed them."""
    from cophub.detection.services import perceptual_signals

    return {kind: Signal(value, quality, data) for kind, (value, quality, data) in perceptual_signals(blob).items()}


@transaction.atomic
def confirm_blob(case, blob, actor) -> Added:
    """Staff confirmed a case file as illegal material: its SHA-256, MD5 and perceptual hashes go on the hub's list."""
    from cophub.cases.services import record_hash_list

    _require_confirm(case, actor)
    signals = {SignalType.SHA256: blob.sha256, SignalType.MD5: blob.md5, **_perceptual(blob)}
    added = add_signals(hub_bank(), signals, source=f"case:{case.reference}", actor=actor, unit=case.unit)
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
    for signal_type, signal in _perceptual(blob).items():
        mine |= Q(signal_type=signal_type, value=signal.value)
    removed = 0
    for entry in BankEntry.objects.filter(mine, bank=hub_bank(), enabled=True):
        if disable_entry(entry, actor, reason, unit=case.unit):
            removed += 1
    if removed:
        record_hash_list(case, blob, actor, listed=False, reason=reason)
    return removed


# --- Case links (the hub's list of harmful addresses) -----------------------------------------


def listed_urls(urls: list[str]) -> dict[str, object]:
    """Which of these links are on the hub's list, and since when."""
    entries = BankEntry.objects.filter(bank=hub_bank(), signal_type=SignalType.URL, value__in=list(urls), enabled=True)
    return dict(entries.values_list("value", "added_at"))


def _require_case_url(case, url: str) -> str:
    from cophub.cases.services import submissions_of
    from cophub.detection.services import urls_for

    if url not in urls_for([s.pk for s in submissions_of(case)]):
        raise ValueError("not a link of this case")
    return url


@transaction.atomic
def confirm_url(case, url: str, actor) -> Added:
    """Staff confirmed a link of the case as harmful: it goes on the hub's list (providers, the school filter)."""
    from cophub.cases.services import record_url_list

    _require_confirm(case, actor)
    url = _require_case_url(case, url)
    added = add_signals(hub_bank(), {SignalType.URL: url}, source=f"case:{case.reference}", actor=actor, unit=case.unit)
    if added.changed:
        record_url_list(case, url, actor, listed=True)
    return added


@transaction.atomic
def withdraw_url(case, url: str, actor, reason: str) -> bool:
    from cophub.cases.services import record_url_list

    _require_confirm(case, actor)
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    url = _require_case_url(case, url)
    entry = BankEntry.objects.filter(bank=hub_bank(), signal_type=SignalType.URL, value=url, enabled=True).first()
    if entry is None or not disable_entry(entry, actor, reason, unit=case.unit):
        return False
    record_url_list(case, url, actor, listed=False, reason=reason)
    return True


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
    # A disabled bank's removals are still sent: switching a shared bank off
    # writes one per entry (set_bank_enabled), and providers must drop them.
    sent = Q(entry__bank__in=banks) | Q(action=ChangeAction.REMOVED, entry__bank__in=_fed_banks(sandbox).filter(enabled=False))
    # vPDQ entries stay home: their value is a digest of a frame list a provider could not match with.
    changes = list(BankChange.objects.filter(sent, pk__gt=cursor).exclude(entry__signal_type=SignalType.VPDQ)
                   .select_related("entry").order_by("pk")[:limit + 1])
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


def _fed_banks(sandbox: bool):
    """Banks whose removals still reach providers, enabled or not (see `feed`)."""
    if sandbox:
        return Bank.objects.filter(sandbox=True)
    return Bank.objects.filter(sandbox=False, shared_with_providers=True).exclude(kind=BankKind.ALLOW)


def reaches_feed(bank: Bank) -> bool:
    """Whether providers (live or sandbox) receive this bank's entries while it is enabled."""
    return bank.sandbox or (bank.shared_with_providers and bank.kind != BankKind.ALLOW)


# --- Banks: creating, settings, switching on and off ---------------------------------------------

FEED_BATCH = 5000


@transaction.atomic
def create_bank(name: str, kind: str, *, actor, origin: str = "", description: str = "", pdq_threshold: int = 31,
                min_quality: int = 50, shared: bool = False, sandbox: bool = False) -> Bank:
    """A new imported list or allow list (the hub's own list is made by `hub_bank`)."""
    if kind not in (BankKind.IMPORTED, BankKind.ALLOW):
        raise ValueError("only imported lists and allow lists are created by hand")
    if kind == BankKind.ALLOW and shared:
        raise ValueError("an allow list is never shared with providers")
    bank = Bank.objects.create(name=name.strip(), kind=kind, origin=origin.strip(), description=description.strip(),
                               pdq_threshold=pdq_threshold, min_quality=min_quality, shared_with_providers=shared, sandbox=sandbox)
    record("hashbank.created", actor=actor, obj=bank, name=bank.name, kind=kind, shared=shared, sandbox=sandbox, origin=bank.origin,
           pdq_threshold=pdq_threshold, min_quality=min_quality)
    return bank


BANK_SETTINGS = ("description", "origin", "pdq_threshold", "min_quality")


@transaction.atomic
def update_bank(bank: Bank, *, actor, **values) -> dict:
    """Change a bank's description, origin or thresholds; the changes made ({field: [old, new]})."""
    changes = {name: [getattr(bank, name), value] for name, value in values.items()
               if name in BANK_SETTINGS and getattr(bank, name) != value}
    if changes:
        for name, (_old, new) in changes.items():
            setattr(bank, name, new)
        bank.save(update_fields=list(changes))
        record("hashbank.updated", actor=actor, obj=bank, changes=changes)
    return changes


def _entry_pages(bank: Bank):
    """The pks of the bank's enabled entries, a page at a time (keyset paging: no cursor held open)."""
    last = 0
    while True:
        page = list(BankEntry.objects.filter(bank=bank, enabled=True, pk__gt=last).order_by("pk").values_list("pk", flat=True)[:FEED_BATCH])
        if not page:
            return
        yield page
        last = page[-1]


@transaction.atomic
def set_bank_enabled(bank: Bank, enabled: bool, *, actor, reason: str) -> int:
    """Switch a whole bank on or off; the number of feed changes written.

    Its entries keep their own state. Providers are told through the feed:
    switching a shared bank off writes a "removed" change for each enabled
    entry (the feed still sends removals of a disabled bank), switching it on
    an "added" one. One transaction: the bank's state and its feed changes
    commit together, so no provider is left holding half a disabled bank.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    _lock_feed()
    bank = Bank.objects.select_for_update().get(pk=bank.pk)
    if bank.enabled == enabled:
        return 0
    bank.enabled = enabled
    bank.save(update_fields=["enabled"])
    written = 0
    if reaches_feed(bank):
        action, now = (ChangeAction.ADDED if enabled else ChangeAction.REMOVED), timezone.now()
        for page in _entry_pages(bank):
            BankChange.objects.bulk_create([BankChange(entry_id=pk, action=action, at=now) for pk in page])
            written += len(page)
    record("hashbank.enabled" if enabled else "hashbank.disabled", actor=actor, obj=bank, reason=reason, feed_changes=written)
    return written


# --- Bulk import and export -------------------------------------------------------------------------

MAX_REFUSALS_KEPT = 1000


@dataclass
class ImportResult:
    added: int = 0
    enabled_again: int = 0
    unchanged: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # the first MAX_REFUSALS_KEPT
    refused_count: int = 0

    @property
    def read(self) -> int:
        return self.added + self.enabled_again + self.unchanged + self.refused_count

    def refuse(self, line_number: int, reason: str) -> None:
        self.refused_count += 1
        if len(self.refused) < MAX_REFUSALS_KEPT:
            self.refused.append((line_number, reason))

    def counts(self) -> dict:
        return {"read": self.read, "added": self.added, "enabled_again": self.enabled_again, "unchanged": self.unchanged,
                "refused": self.refused_count}


def _checked(bank: Bank, row, result: ImportResult) -> tuple[str, str] | None:
    """The row's (type, normalised value), or None after counting it as refused."""
    if row.error:
        result.refuse(row.line_number, row.error)
        return None
    try:
        value = normalise(row.signal_type, row.value)
    except ValueError:
        result.refuse(row.line_number, _("not a valid %(type)s value") % {"type": row.signal_type})
        return None
    if row.signal_type == SignalType.VPDQ:
        result.refuse(row.line_number, _("vPDQ needs its frame list: it cannot be imported from a list file"))
        return None
    if row.signal_type == SignalType.PDQ and row.quality is not None and row.quality < bank.min_quality:
        result.refuse(row.line_number, _("PDQ quality %(quality)d is below the list's minimum of %(minimum)d")
                      % {"quality": row.quality, "minimum": bank.min_quality})
        return None
    return row.signal_type, value


def _signal_filter(keys) -> Q:
    """One OR term per signal type, each with an IN list: one query for a batch of mixed types."""
    by_type: dict[str, list[str]] = {}
    for signal_type, value in keys:
        by_type.setdefault(signal_type, []).append(value)
    query = Q(pk__in=[])
    for signal_type, values in by_type.items():
        query |= Q(signal_type=signal_type, value__in=values)
    return query


@transaction.atomic
def _import_batch(bank: Bank, wanted: dict, *, source: str, user, result: ImportResult) -> None:
    """One batch, one transaction: new entries, disabled ones enabled again, and their "added" changes."""
    _lock_feed()
    existing = {(t, v): (pk, enabled) for pk, t, v, enabled in
                BankEntry.objects.filter(_signal_filter(wanted), bank=bank).values_list("pk", "signal_type", "value", "enabled")}
    now = timezone.now()
    new = {key: row for key, row in wanted.items() if key not in existing}
    again = [pk for pk, enabled in existing.values() if not enabled]
    _insert_entries(bank, new, source=source, user_id=user.pk if user else None, now=now)
    new_ids = list(BankEntry.objects.filter(_signal_filter(new), bank=bank).values_list("pk", flat=True)) if new else []
    if again:
        BankEntry.objects.filter(pk__in=again).update(enabled=True, disabled_at=None, added_at=now, source=source, added_by=user)
    _insert_changes(sorted(new_ids) + again, now)
    result.added += len(new)
    result.enabled_again += len(again)
    result.unchanged += len(existing) - len(again)


# Plain INSERTs through the driver's executemany: Django's bulk_create spends
# most of an import building SQL (70 % of the time, measured), the database little.

def _insert_sql(model, columns: list[str]) -> str:
    quote = connection.ops.quote_name
    names = ", ".join(quote(model._meta.get_field(c).column) for c in columns)
    return f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"


def _insert_entries(bank: Bank, rows: dict, *, source: str, user_id, now) -> None:
    if not rows:
        return
    at = connection.ops.adapt_datetimefield_value(now)
    columns = ["bank", "signal_type", "value", "quality", "data", "enabled", "note", "source", "added_by", "added_at"]
    params = [(bank.pk, signal_type, value, row.quality, "", True, row.note or "", source, user_id, at)
              for (signal_type, value), row in rows.items()]
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(BankEntry, columns), params)


def _insert_changes(entry_ids: list[int], now) -> None:
    if not entry_ids:
        return
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(BankChange, ["entry", "action", "at"]),
                           [(pk, ChangeAction.ADDED.value, at) for pk in entry_ids])


def _batches(rows, size: int):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _import_rows(bank: Bank, batch: list, *, source: str, user, result: ImportResult) -> None:
    wanted: dict[tuple[str, str], object] = {}
    for row in batch:
        key = _checked(bank, row, result)
        if key is None:
            continue
        if key in wanted:
            result.unchanged += 1  # the same signal twice in the file: the first one counts
        else:
            wanted[key] = row
    if wanted:
        _import_batch(bank, wanted, source=source, user=user, result=result)


def import_signals(bank: Bank, rows, *, actor, source: str, progress=None, batch_size: int = 5000) -> ImportResult:
    """Put many signals in a bank, streaming: constant memory, one transaction per batch.

    A crash loses only the batch in progress, and running the same import
    again is idempotent (entries present are left alone, disabled ones are
    enabled again with a new "added" change). One audit event for the whole
    run, written even when the file turns out unreadable half-way (with what
    was imported by then). `progress(n)` is called after each batch with the
    number of rows it read.
    """
    result, user, source = ImportResult(), _user(actor), (source or "")[:200]
    error = None
    try:
        for batch in _batches(rows, batch_size):
            _import_rows(bank, batch, source=source, user=user, result=result)
            if progress:
                progress(len(batch))
    except BaseException as exc:  # also an interrupted run: the audit says it did not finish
        error = str(exc)[:500] or type(exc).__name__
        raise
    finally:
        with transaction.atomic():
            record("hashbank.imported", actor=actor, obj=bank, source=source, bank=bank.pk, completed=error is None,
                   error=error or "", **result.counts())
    return result


def export_signals(banks, signal_types=None, chunk_size: int = 5000):
    """The enabled entries of these banks, streamed in id order (a database cursor, never a list)."""
    entries = BankEntry.objects.filter(bank__in=banks, enabled=True)
    if signal_types:
        entries = entries.filter(signal_type__in=list(signal_types))
    fields = ("signal_type", "value", "quality", "note", "source", "added_at")
    return entries.order_by("pk").only(*fields).iterator(chunk_size=chunk_size)


ADDRESS_TYPES = (SignalType.DOMAIN, SignalType.URL)


# --- Reviewing listed addresses ---------------------------------------------------------------------


@transaction.atomic
def mark_reviewed(entry: BankEntry, actor, *, unit=None) -> BankEntry:
    """Staff looked at a listed URL or domain again and it is still harmful: its next review moves on.

    Not a change to the list (no `BankChange`): providers' feeds are not
    touched; the published list's version (`published_version`) follows the
    latest review, so filters download the new review dates.
    """
    entry = BankEntry.objects.select_for_update().get(pk=entry.pk)
    if not entry.is_address or not entry.enabled:
        raise ValueError("only a listed URL or domain is reviewed")
    previous, entry.reviewed_at = entry.reviewed_at, timezone.now()
    entry.save(update_fields=["reviewed_at"])
    record("hashbank.entry_reviewed", actor=actor, obj=entry, unit=unit, bank=entry.bank_id, signal_type=entry.signal_type,
           value=entry.value, previous_review=previous, review_by=entry.review_by)
    return entry


def entries_due_for_review(bank: Bank):
    """The bank's enabled URL and domain entries whose review date has passed."""
    due = timezone.now() - timedelta(days=settings.COPHUB_URL_REVIEW_DAYS)
    return BankEntry.objects.filter(Q(reviewed_at__lte=due) | Q(reviewed_at__isnull=True, added_at__lte=due), bank=bank, enabled=True,
                                    signal_type__in=ADDRESS_TYPES)


# --- The published list of harmful addresses (the school network filter) ---------------------------------

@dataclass(frozen=True)
class PublishedUrl:
    kind: str  # "url" (that page) or "domain" (the host and every name under it)
    value: str  # normalised URL, or the domain
    host: str
    source: str  # e.g. "case:2026-000012", "import:iwf.csv"
    listed_at: object  # when the entry went (back) on its list
    reviewed_at: object  # None until staff reviewed it
    review_by: object
    bank: str

    @property
    def whole_host(self) -> bool:
        """Whether blocking `host` is right: a domain entry, or a URL that names a site's front page.

        A deep URL ("https://facebook.com/some-group") never blocks its host:
        one harmful page on a big platform must not cut off the platform.
        """
        from cophub.detection.urls import is_specific

        return self.kind == SignalType.DOMAIN or not is_specific(self.value)


def _published_banks(sandbox: bool, shared_only: bool):
    banks = Bank.objects.filter(enabled=True, sandbox=sandbox).exclude(kind=BankKind.ALLOW)
    return banks.filter(shared_with_providers=True) if shared_only else banks


def _allowed_addresses(sandbox: bool) -> tuple[set[str], set[str]]:
    """The URLs and domains of the enabled allow lists (one query; allow lists are short)."""
    urls, domains = set(), set()
    rows = BankEntry.objects.filter(bank__kind=BankKind.ALLOW, bank__enabled=True, bank__sandbox=sandbox, enabled=True,
                                    signal_type__in=ADDRESS_TYPES).values_list("signal_type", "value")
    for signal_type, value in rows:
        (urls if signal_type == SignalType.URL else domains).add(value)
    return urls, domains


def published_urls(*, sandbox: bool = False, shared_only: bool = False, kinds=ADDRESS_TYPES, chunk_size: int = 2000):
    """Every harmful address the hub publishes, streamed: an iterator of `PublishedUrl`.

    The enabled URL and domain entries of the enabled hub and imported lists
    (`shared_only`: only lists shared with providers, for what leaves the
    hub over the API), minus whatever an enabled allow list holds: the same
    URL, or a domain covering the entry's host. One row per address, sorted
    (domains first, then URLs, each by value); an address on several lists
    comes once, from the hub's own list when it is there.

    One query for the allow lists, then one per `chunk_size` rows (a
    database cursor: a million rows never sit in memory).
    """
    from cophub.detection.urls import domain_candidates, url_domain

    allowed_urls, allowed_domains = _allowed_addresses(sandbox)
    kinds = [kind for kind in ADDRESS_TYPES if kind in kinds]
    rows = (BankEntry.objects.filter(bank__in=_published_banks(sandbox, shared_only), enabled=True, signal_type__in=kinds)
            .order_by("signal_type", "value", "bank__kind", "pk")
            .values_list("signal_type", "value", "source", "added_at", "reviewed_at", "bank__name"))
    previous = None
    for signal_type, value, source, added_at, reviewed_at, bank in rows.iterator(chunk_size=chunk_size):
        if (signal_type, value) == previous:
            continue  # the same address on another list ("hub" sorts before "imported")
        previous = (signal_type, value)
        if signal_type == SignalType.URL:
            host = urlsplit(value).hostname or ""
            if value in allowed_urls:
                continue
            covering = domain_candidates(url_domain(value))
        else:
            host, covering = value, domain_candidates(value)
        if allowed_domains and any(domain in allowed_domains for domain in covering):
            continue
        yield PublishedUrl(signal_type, value, host, source, added_at, reviewed_at, review_by(added_at, reviewed_at), bank)


def published_hosts(*, sandbox: bool = False, shared_only: bool = False, chunk_size: int = 2000):
    """The hosts a DNS filter blocks, each once, sorted: domain entries, and the hosts of front-page URLs.

    Two passes over the list: the hosts of front-page URLs first (few: most
    listed URLs are deep pages, which never block their host), then the
    domains (unique and sorted already). Only the first set is held in memory.
    """
    options = {"sandbox": sandbox, "shared_only": shared_only, "chunk_size": chunk_size}
    from_urls = {row.host for row in published_urls(kinds=[SignalType.URL], **options) if row.whole_host}
    for row in published_urls(kinds=[SignalType.DOMAIN], **options):
        from_urls.discard(row.host)
        yield row.host
    yield from sorted(from_urls)


def published_version(*, sandbox: bool = False, shared_only: bool = False) -> tuple[str, object]:
    """(a tag that changes whenever the published list may have, when it last changed), in three small queries.

    Entries change only through `BankChange` (its latest id); reviews move
    `reviewed_at`; switching a list on or off, or an allow list, changes the
    banks' rows; the review period is a setting.
    """
    last = BankChange.objects.order_by("-pk").values_list("pk", "at").first() or (0, None)
    reviewed = BankEntry.objects.aggregate(latest=Max("reviewed_at"))["latest"]
    banks = list(Bank.objects.order_by("pk").values_list("pk", "enabled", "kind", "sandbox", "shared_with_providers", "name"))
    basis = json.dumps([last[0], reviewed, banks, settings.COPHUB_URL_REVIEW_DAYS, sandbox, shared_only], default=str)
    changed = max((when for when in (last[1], reviewed) if when is not None), default=None)
    return hashlib.sha256(basis.encode()).hexdigest()[:32], changed
