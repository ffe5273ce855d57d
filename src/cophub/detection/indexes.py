"""In-memory PDQ indexes that follow the database, for the task worker.

Three indexes live in each worker process:

- the banks' PDQ entries (id = BankEntry id), following the bank change log;
- the frames of the banks' vPDQ entries (id = entry id × 4096 + frame slot);
- the PDQ of every file the hub has hashed (id = FileSignals id), for linking
  reports of the same picture.

Each is loaded once (from its snapshot file when there is one, then the
changes after the snapshot's cursor) and then brought up to date before every
query with one indexed query for the changes since its cursor: an entry added
a moment ago is matchable at the next query, and nothing is ever rebuilt in
full for a change. Index candidates are always re-checked against the
database, so a removal the index has not seen yet never yields a match.

Snapshots are the index's own raw format (detection.pdq_index), never pickle.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings

from cophub.hashbanks import lookup

from . import video
from .pdq_index import PdqIndex

logger = logging.getLogger(__name__)

FRAME_SLOTS = 4096  # frames kept per video entry in the frame index (1 per second: over an hour)


class LiveIndex(ABC):
    """A PdqIndex plus the cursor of the last change it has applied."""

    name = "index"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.index: PdqIndex | None = None
        self.cursor = 0
        self.saved = (-1, -1)  # (cursor, size) of the last snapshot written

    # What a subclass says about its source --------------------------------------------------------

    @abstractmethod
    def _last_id(self) -> int:
        """The id of the source's newest change (its cursor's scale)."""

    @abstractmethod
    def _load_all(self) -> Iterator[tuple[list[int], list[str]]]:
        """Everything current, in batches of (ids, hashes)."""

    @abstractmethod
    def _apply_changes(self, index: PdqIndex) -> bool:
        """Apply changes after self.cursor, moving it; True when there may be more."""

    # Keeping in step ---------------------------------------------------------------------------------

    def current(self) -> PdqIndex:
        """The index, up to date with every committed change."""
        with self._lock:
            if self.index is None or self._last_id() < self.cursor:
                # First use, or the database went back (a restored backup, a test's rollback): reload.
                self._load()
            while self._apply_changes(self.index):
                pass
            return self.index

    def _load(self) -> None:
        snapshot = self._read_snapshot()
        if snapshot is not None:
            self.index, self.cursor = snapshot
            return
        index = PdqIndex()
        # The cursor is read before the rows: a change committed while they
        # load is applied again afterwards, and applying one twice is harmless.
        cursor = self._last_id()
        for ids, hashes in self._load_all():
            index.add(ids, hashes)
        self.index, self.cursor = index, cursor

    # Snapshots -----------------------------------------------------------------------------------------

    def snapshot_path(self) -> Path:
        return Path(settings.COPHUB_INDEX_DIR) / f"{self.name}.pdqidx"

    def save_snapshot(self) -> bool:
        """Write the index and its cursor (atomically); False when there is nothing loaded."""
        with self._lock:
            if self.index is None or self.saved == (self.cursor, len(self.index)):
                return False
            path = self.snapshot_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.index.save(path)
            meta = path.with_suffix(".json")
            tmp = meta.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"cursor": self.cursor, "entries": len(self.index)}))
            os.replace(tmp, meta)
            self.saved = (self.cursor, len(self.index))
            return True

    def _read_snapshot(self) -> tuple[PdqIndex, int] | None:
        path = self.snapshot_path()
        meta = path.with_suffix(".json")
        if not (path.exists() and meta.exists()):
            return None
        try:
            cursor = int(json.loads(meta.read_text())["cursor"])
            if cursor > self._last_id():
                return None  # taken from a database that is not this one any more
            return PdqIndex.load(path), cursor
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("index snapshot %s unreadable (%s): loading from the database", path, exc)
            return None


def _batches(rows: Iterable[tuple[int, str]], size: int = 50_000) -> Iterator[tuple[list[int], list[str]]]:
    ids: list[int] = []
    hashes: list[str] = []
    for pk, value in rows:
        ids.append(pk)
        hashes.append(value)
        if len(ids) >= size:
            yield ids, hashes
            ids, hashes = [], []
    if ids:
        yield ids, hashes


class BankPdqIndex(LiveIndex):
    name = "bank-pdq"

    def _last_id(self) -> int:
        return lookup.last_change_id()

    def _load_all(self):
        return _batches((pk, value) for pk, value, _ in lookup.enabled_values("pdq"))

    def _apply_changes(self, index: PdqIndex) -> bool:
        changes = lookup.changes_since(self.cursor, "pdq")
        if not changes:
            return False
        # One removal pass and one add per batch, never one per change: a
        # removal scans the index, and an import brings changes by the million.
        last: dict[int, lookup.Change] = {}
        removed: set[int] = set()
        for change in changes:
            last[change.entry_id] = change
            if not change.added:
                removed.add(change.entry_id)
        if removed:
            index.remove(sorted(removed))
        added = [c for c in last.values() if c.added]
        if added:
            # An entry already in (loaded, then its change read again) is added twice:
            # the index reports each id once, so that costs a row, not a wrong answer.
            index.add([c.entry_id for c in added], [c.value for c in added])
        self.cursor = changes[-1].id
        return len(changes) == 50_000


def frame_hashes(data: str) -> list[str]:
    """The hashes of a stored vPDQ frame list, as many as the index keeps per video."""
    return [frame.hash for frame in video.parse(data).frames][:FRAME_SLOTS]


def frame_ids(entry_id: int, count: int) -> list[int]:
    return [entry_id * FRAME_SLOTS + slot for slot in range(count)]


class BankVideoFrameIndex(LiveIndex):
    name = "bank-vpdq-frames"

    def __init__(self) -> None:
        super().__init__()
        self.frames: dict[int, int] = {}  # entry id → frames indexed

    def _last_id(self) -> int:
        return lookup.last_change_id()

    def _load_all(self):
        self.frames = {}
        for pk, _value, data in lookup.enabled_values("vpdq", chunk_size=500):
            hashes = frame_hashes(data)
            if hashes:
                self.frames[pk] = len(hashes)
                yield frame_ids(pk, len(hashes)), hashes

    def _read_snapshot(self):  # rebuilt from the database: videos are few beside pictures
        return None

    def _add(self, index: PdqIndex, entry_id: int, data: str) -> None:
        hashes = frame_hashes(data)
        if hashes:
            index.add(frame_ids(entry_id, len(hashes)), hashes)
            self.frames[entry_id] = len(hashes)

    def _apply_changes(self, index: PdqIndex) -> bool:
        changes = lookup.changes_since(self.cursor, "vpdq", limit=2_000)
        for change in changes:
            count = self.frames.pop(change.entry_id, 0)
            if count:
                index.remove(frame_ids(change.entry_id, count))
            if change.added:
                self._add(index, change.entry_id, change.data)
            self.cursor = change.id
        return len(changes) == 2_000


class SeenFilesIndex(LiveIndex):
    """Every hashed file's PDQ. Rows are only added; ids may commit out of order, so a short
    window behind the cursor is read again (what is already in is skipped)."""

    name = "seen-files-pdq"
    LOOKBACK = 500

    def __init__(self) -> None:
        super().__init__()
        self.recent: set[int] = set()

    def _last_id(self) -> int:
        from .models import FileSignals

        last = FileSignals.objects.order_by("-pk").values_list("pk", flat=True).first()
        return last or 0

    def _rows(self, after: int):
        from .models import FileSignals, ScanStatus

        return (FileSignals.objects.filter(pk__gt=after, status=ScanStatus.DONE).exclude(pdq="")
                .order_by("pk").values_list("pk", "pdq"))

    def _load_all(self):
        return _batches(self._rows(0).iterator(chunk_size=20_000))

    def _load(self) -> None:
        super()._load()
        self.recent = set()

    def _apply_changes(self, index: PdqIndex) -> bool:
        rows = list(self._rows(max(0, self.cursor - self.LOOKBACK))[:50_000])
        # Rows below the cursor were read at load or by an earlier refresh unless
        # they committed late; one read twice is reported once by the index.
        fresh = [(pk, pdq) for pk, pdq in rows if pk not in self.recent]
        if fresh:
            ids = [pk for pk, _ in fresh]
            index.add(ids, [pdq for _, pdq in fresh])
            self.recent.update(ids)
        if rows:
            self.cursor = max(self.cursor, rows[-1][0])
        self.recent = {pk for pk in self.recent if pk > self.cursor - self.LOOKBACK}
        return len(rows) == 50_000


_indexes: dict[str, LiveIndex] = {}
_registry_lock = threading.Lock()


def get(kind: type[LiveIndex]) -> PdqIndex:
    """The up-to-date index of this kind for this process."""
    with _registry_lock:
        live = _indexes.get(kind.name)
        if live is None:
            live = _indexes[kind.name] = kind()
    return live.current()


def warm() -> dict[str, int]:
    """Load every index now (a worker's start), so the first report does not wait for it."""
    return {kind.name: len(get(kind)) for kind in (BankPdqIndex, BankVideoFrameIndex, SeenFilesIndex)}


def save_snapshots() -> int:
    """Write every loaded index that keeps a snapshot (housekeeping and worker shutdown)."""
    saved = 0
    for live in list(_indexes.values()):
        if isinstance(live, BankVideoFrameIndex):
            continue
        if live.save_snapshot():
            saved += 1
    return saved


def forget() -> None:
    """Drop the loaded indexes (tests; a worker re-reads them at the next query)."""
    with _registry_lock:
        _indexes.clear()
