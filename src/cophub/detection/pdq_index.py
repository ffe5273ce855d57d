"""In-memory PDQ similarity index: every stored hash within Hamming distance T.

Pure numpy, no Django, so it can be benchmarked on its own (bench/matching.py).

Design: multi-index hashing
---------------------------
The 256 bits are cut into m chunks. If d(q, x) <= T then, by pigeonhole, at
least one chunk of x differs from q's in at most r = T // m bits. So for
every chunk we keep a table chunk value -> rows, in CSR form (``offsets``:
where each value's rows start, uint32; ``pos``: row numbers grouped by chunk
value, uint32), and a query looks up every value within r bits of its own
chunk values, gathers those rows and computes the exact distance on them
only. Any T works: when the probes would touch more than a quarter of the
rows (large T), the query scans all rows instead.

The chunking is chosen by size at every full build (``LARGE_LAYOUT_FROM``,
2 million rows; an incremental merge that crosses it rebuilds):

- below: 16 chunks of 16 bits, r = 1 at T = 31: 16 x 17 probes, about
  n / 240 candidates (4,200 at 1 M); offsets 4 MiB;
- from 2 M: 12 chunks, 8 of 21 bits and 4 of 22, r = 2 at T = 31 (exact up
  to T = 35, as 12 x 3 > 35): 8 x 232 + 4 x 254 probes, about n / 890
  candidates (11,000 at 10 M instead of 42,000), half the query time; the
  offsets take a fixed 128 MiB, too much for a small index.

Memory per stored hash: 32 bytes of code, 8 of external id, 1 tombstone
byte, 4 per chunk of table entries (64 or 48), and, unless the ids were
added in ascending order (database row ids usually are), 12 for the sorted
ids ``remove`` uses: 16x16: 105 (117) bytes + 4 MiB; 12x21/22: 89 (101)
bytes + 128 MiB, i.e. 102 (114) bytes a hash at 10 M, about 1 GB.

Incremental updates
-------------------
Rows live in append-only buffers. Rows [0, n_indexed) are in the CSR tables
("main"); rows [n_indexed, n) are the "delta", scanned by brute force, so a
hash is matchable as soon as ``add`` returns. When the delta passes
``delta_limit`` rows (default 32,768, a ~0.2 ms scan) it is merged into the
tables: O(n) memory copies per chunk (an insert into sorted arrays, not a
re-sort; 1.5-2 s at 10 M, mostly the first touch of the new tables' pages),
done on a background thread while searches and adds go on. A bulk add (one
batch larger than the limit) or adds outrunning the merger (delta > 8 x
limit) are merged by the adding thread itself. A full build sorts
(chunk value << 32 | row) pairs, ~9 s at 10 M. A merge builds new tables and
swaps them in, so peak memory during a merge is the table size twice.

Removals set a tombstone (``alive`` = False); dead rows stay in the tables
and are filtered from results. ``remove`` of k ids costs O(k log n): a binary
search in the indexed rows' ids, kept sorted with their row numbers (built
at full builds, merged like the tables; the ids themselves when ascending),
plus a scan of the delta's ids (0.05 ms for one id at 10 M). When more
than a quarter of the rows are dead, the next merge compacts (rebuilds
everything without them, blocking adds but not searches for its duration).

An id may be added more than once (e.g. one bank entry with several hashes):
results report each id once with its best distance, and ``remove`` drops all
of that id's rows.

Thread safety: writers (add/remove/merge publish) hold a lock; readers take
one reference to an immutable ``_State`` snapshot and never lock. Published
rows are never rewritten (appends go past the snapshot's end), so a snapshot
stays valid; only tombstones change in place, which a reader sees either
before or after.

File format (version 1), little-endian, no pickle
-------------------------------------------------
=======  ======================  ==========================================
offset   size                    content
=======  ======================  ==========================================
0        8                       magic ``b"CPHPDQIX"``
8        4                       format version, uint32 = 1
12       4                       header length, uint32 = 32
16       8                       count of entries n, uint64
24       8                       reserved, must be 0
32       32 n                    hashes, 32 bytes each, as ``bytes.fromhex``
32+32n   8 n                     external ids, int64
40n+32   32                      SHA-256 of every byte before it
=======  ======================  ==========================================

Only live rows are written. The lookup tables are not stored: ``load``
rebuilds them (in the chunking for their number), so a crafted file cannot
plant out-of-range row numbers, and a change of chunking needs no new format.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

HASH_BYTES = 32
HASH_BITS = 8 * HASH_BYTES
DEFAULT_THRESHOLD = 31
# From this many rows (at a full build) the 12-chunk layout is used: its
# fixed 128 MB of bucket offsets would dominate a smaller index.
LARGE_LAYOUT_FROM = 2_000_000
# A probe plan expected to touch more than this fraction of the rows is
# replaced by a straight scan (large thresholds).
_SCAN_FRACTION = 0.25

MAGIC = b"CPHPDQIX"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIQQ")
_DIGEST_BYTES = 32
# Row numbers and bucket offsets are stored as uint32 in the tables.
MAX_ROWS = (1 << 32) - 1
# Rows written/read per block on save/load, to bound the temporary copies.
_IO_BLOCK = 1 << 20


class PdqIndexFileError(ValueError):
    """The file is not a PDQ index file this code can read, or is damaged."""


def hex_to_bytes(hashes_hex: Sequence[str]) -> np.ndarray:
    """Hex strings (64 chars each) -> (n, 32) uint8, bytes in written order."""
    if isinstance(hashes_hex, str):
        raise TypeError("expected a sequence of hex strings, not one string")
    n = len(hashes_hex)
    if n and any(len(h) != 2 * HASH_BYTES for h in hashes_hex):
        raise ValueError("a PDQ hash is 64 hexadecimal characters")
    try:
        raw = bytes.fromhex("".join(hashes_hex))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid PDQ hash: {exc}") from None
    # bytes.fromhex skips whitespace, which would shorten the result.
    if len(raw) != HASH_BYTES * n:
        raise ValueError("invalid PDQ hash: unexpected characters")
    return np.frombuffer(raw, dtype=np.uint8).reshape(n, HASH_BYTES)


def bytes_to_hex(codes: np.ndarray) -> list[str]:
    """Inverse of :func:`hex_to_bytes` (also takes the (n, 4) uint64 view)."""
    raw = _as_codes(codes).tobytes()
    return [raw[i : i + HASH_BYTES].hex() for i in range(0, len(raw), HASH_BYTES)]


def _as_codes(hashes) -> np.ndarray:
    """Any accepted hash input -> C-contiguous (n, 4) uint64 of the raw bytes.

    The uint64 words are only a container for fast XOR/popcount: their byte
    order does not matter as long as queries and rows share it.
    """
    if isinstance(hashes, np.ndarray):
        if hashes.ndim == 2 and hashes.dtype == np.uint8 and hashes.shape[1] == HASH_BYTES:
            arr = np.ascontiguousarray(hashes)
        elif hashes.ndim == 2 and hashes.dtype == np.uint64 and hashes.shape[1] == 4:
            return np.ascontiguousarray(hashes)
        else:
            raise ValueError("hash array must be (n, 32) uint8 or (n, 4) uint64")
    else:
        arr = hex_to_bytes(hashes)
    return arr.view(np.uint64).reshape(-1, 4)



class _Layout:
    """How the 256 bits are cut into chunks, and where each chunk's bucket
    offsets sit in the one flat offsets array (chunk widths may differ)."""

    def __init__(self, name: str, widths: tuple[int, ...]):
        assert sum(widths) == HASH_BITS
        self.name = name
        self.widths = widths
        self.starts = tuple(sum(widths[:j]) for j in range(len(widths)))
        sizes = [(1 << w) + 1 for w in widths]
        self.bases = tuple(sum(sizes[:j]) for j in range(len(widths)))
        self.offsets_len = sum(sizes)
        self._plans: dict[int, _ProbePlan | None] = {}

    def __repr__(self) -> str:
        return f"<layout {self.name}>"

    @property
    def n_chunks(self) -> int:
        return len(self.widths)

    def plan(self, radius: int) -> _ProbePlan | None:
        """Probes for chunk distance <= radius; None when a scan is cheaper."""
        if radius not in self._plans:
            self._plans[radius] = _make_plan(self, radius)
        return self._plans[radius]


@dataclass(frozen=True, slots=True)
class _ProbePlan:
    """Every probe of one query, flattened over the chunks."""

    chunk: np.ndarray  # (p,) int64: which chunk the probe is in
    mask: np.ndarray  # (p,) int64: XOR applied to the query's chunk value
    base: np.ndarray  # (p,) int64: that chunk's first slot in ``offsets``


def _make_plan(layout: _Layout, radius: int) -> _ProbePlan | None:
    probes = [sum(math.comb(w, i) for i in range(radius + 1)) for w in layout.widths]
    if sum(p / (1 << w) for p, w in zip(probes, layout.widths)) > _SCAN_FRACTION:
        return None
    chunk, mask, base = [], [], []
    for j, w in enumerate(layout.widths):
        masks = [sum(1 << b for b in bits) for i in range(radius + 1) for bits in combinations(range(w), i)]
        chunk += [j] * len(masks)
        mask += masks
        base += [layout.bases[j]] * len(masks)
    return _ProbePlan(*(np.array(a, dtype=np.int64) for a in (chunk, mask, base)))


SMALL_LAYOUT = _Layout("16x16", (16,) * 16)
# 8 x 21 + 4 x 22 bits: r = 2 per chunk is exact up to T = 35 (12 x 3 > 35),
# and 1 + 21 + 210 probes per 2^21 buckets keep ~4x fewer candidates than 16x16.
LARGE_LAYOUT = _Layout("12x21/22", (21,) * 8 + (22,) * 4)


def _layout_for(n: int) -> _Layout:
    return LARGE_LAYOUT if n >= LARGE_LAYOUT_FROM else SMALL_LAYOUT


def _chunk_column(codes: np.ndarray, layout: _Layout, j: int) -> np.ndarray:
    """Value of chunk j (bits in written order, first bit most significant)
    of every (n, 4) uint64 code, as int64 (bincount and sorts want signed)."""
    start, width = layout.starts[j], layout.widths[j]
    words = codes.view(np.uint8).reshape(-1, HASH_BYTES).view(">u8")
    word, off = divmod(start, 64)
    high = words[:, word].astype(np.uint64)
    if off + width <= 64:
        value = high >> np.uint64(64 - off - width)
    else:
        # The chunk straddles two words: low bits of one, high bits of the next.
        spill = off + width - 64
        value = high << np.uint64(spill)
        value |= words[:, word + 1].astype(np.uint64) >> np.uint64(64 - spill)
    value &= np.uint64((1 << width) - 1)
    return value.view(np.int64)


def _query_chunks(queries: np.ndarray, layout: _Layout) -> np.ndarray:
    """(k, n_chunks) int64 chunk values of a few queries, in Python ints:
    a handful of numpy calls per chunk would cost more than the lookups."""
    raw = queries.tobytes()
    out = []
    for i in range(0, len(raw), HASH_BYTES):
        x = int.from_bytes(raw[i : i + HASH_BYTES], "big")
        out.append(
            [(x >> (HASH_BITS - s - w)) & ((1 << w) - 1) for s, w in zip(layout.starts, layout.widths)]
        )
    return np.array(out, dtype=np.int64).reshape(len(queries), layout.n_chunks)


def _distances(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distances of (m, 4) codes to one (4,) or (m, 4) query."""
    # Word by word: numpy is several times slower on the (m, 4) shape (an
    # inner loop of 4) than on four length-m columns. int32 because the
    # per-word uint8 counts can add up to 256.
    dist = np.bitwise_count(codes[:, 0] ^ query[..., 0]).astype(np.int32)
    for word in range(1, 4):
        dist += np.bitwise_count(codes[:, word] ^ query[..., word])
    return dist


def _concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """arange(s, s + l) for every (s, l), concatenated, without a Python loop:
    output position i is its range's start + (i - the range's first output)."""
    ends_out = np.cumsum(lengths)
    flat = np.arange(int(ends_out[-1]) if len(ends_out) else 0, dtype=np.int64)
    flat += np.repeat(starts - (ends_out - lengths), lengths)
    return flat


@dataclass(frozen=True, slots=True)
class _Tables:
    """Lookup structures over rows [0, n_indexed), rebuilt at merges."""

    layout: _Layout
    offsets: np.ndarray  # (layout.offsets_len,) uint32, per-chunk CSR offsets
    pos: np.ndarray  # (n_chunks, n_indexed) uint32 rows grouped by chunk value
    n_indexed: int
    # The indexed rows' ids sorted, and the rows in that order, for remove();
    # both None when the ids are already ascending (ids from a database
    # sequence): then ``ids`` itself is searched and costs nothing extra.
    id_sorted: np.ndarray | None
    id_rows: np.ndarray | None

    def nbytes(self) -> int:
        extra = [a.nbytes for a in (self.id_sorted, self.id_rows) if a is not None]
        return self.offsets.nbytes + self.pos.nbytes + sum(extra)


def _empty_tables() -> _Tables:
    layout = SMALL_LAYOUT
    offsets = np.zeros(layout.offsets_len, np.uint32)
    return _Tables(layout, offsets, np.empty((layout.n_chunks, 0), np.uint32), 0, None, None)


def _build_tables(codes: np.ndarray, ids: np.ndarray) -> _Tables:
    """Tables over all rows, in the layout for their number."""
    n = len(codes)
    layout = _layout_for(n)
    offsets = np.empty(layout.offsets_len, np.uint32)
    pos = np.empty((layout.n_chunks, n), np.uint32)
    rows = np.arange(n, dtype=np.int64)
    for j, width in enumerate(layout.widths):
        keys = _chunk_column(codes, layout, j)
        # One in-place sort of (value << 32 | row): groups rows by value and
        # keeps them ascending inside a bucket (the gathers stay roughly in
        # memory order); measured 2.5x faster than a stable argsort at 10 M.
        pairs = keys << 32
        pairs |= rows
        pairs.sort()
        pos[j] = pairs.astype(np.uint32)  # the low 32 bits: the row
        del pairs
        base = layout.bases[j]
        offsets[base] = 0
        offsets[base + 1 : base + (1 << width) + 1] = np.cumsum(np.bincount(keys, minlength=1 << width))
    id_sorted, id_rows = _sort_ids(ids)
    return _Tables(layout, offsets, pos, n, id_sorted, id_rows)


def _merge_tables(t: _Tables, codes: np.ndarray, ids: np.ndarray) -> _Tables:
    """Insert rows t.n_indexed..len(codes) into existing tables.

    New rows have higher row numbers than every indexed row, so each goes at
    the end of its bucket: one np.insert (an O(n) copy) per chunk, no sort of
    the main rows.
    """
    layout, first = t.layout, t.n_indexed
    delta = codes[first:]
    rows = np.arange(first, len(codes), dtype=np.uint32)
    offsets = np.empty_like(t.offsets)
    pos = np.empty((layout.n_chunks, len(codes)), np.uint32)
    for j, width in enumerate(layout.widths):
        keys = _chunk_column(delta, layout, j)
        order = np.argsort(keys, kind="stable")
        seg = slice(layout.bases[j], layout.bases[j] + (1 << width) + 1)
        old = t.offsets[seg]
        _insert_into(pos[j], t.pos[j], old[keys[order] + 1].astype(np.int64), rows[order])
        # In uint32 and in place: int64 temporaries of 2^22 entries per
        # chunk made this part the slower half of a merge.
        new = offsets[seg]
        new[0] = 0
        np.cumsum(np.bincount(keys, minlength=1 << width).astype(np.uint32), out=new[1:])
        new += old
    id_sorted, id_rows = _merge_sorted_ids(t, ids)
    return _Tables(layout, offsets, pos, len(codes), id_sorted, id_rows)


def _insert_into(out: np.ndarray, arr: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    """out[:] = np.insert(arr, at, values) for ascending ``at``, without
    np.insert's extra full-size copy."""
    final = at + np.arange(len(at))
    keep = np.ones(len(out), bool)
    keep[final] = False
    out[final] = values
    out[keep] = arr


def _is_ascending(ids: np.ndarray) -> bool:
    return bool(np.all(ids[1:] >= ids[:-1]))


def _sort_ids(ids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    if _is_ascending(ids):
        return None, None
    rows = np.argsort(ids, kind="stable").astype(np.uint32)
    return ids[rows], rows


def _merge_sorted_ids(t: _Tables, ids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Sorted ids of all rows, from t's (rows < t.n_indexed) and the new rows'."""
    first = t.n_indexed
    id_sorted, id_rows = t.id_sorted, t.id_rows
    if id_rows is None:
        if _is_ascending(ids):
            return None, None
        id_sorted, id_rows = ids[:first].copy(), np.arange(first, dtype=np.uint32)
    new = ids[first:]
    order = np.argsort(new, kind="stable")
    at = np.searchsorted(id_sorted, new[order], side="right")
    return np.insert(id_sorted, at, new[order]), np.insert(id_rows, at, (order + first).astype(np.uint32))


def _indexed_rows_of(t: _Tables, ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rows < t.n_indexed whose id is in ``wanted`` (unique): O(k log n)."""
    sorted_ids = ids[: t.n_indexed] if t.id_sorted is None else t.id_sorted
    lo = np.searchsorted(sorted_ids, wanted, side="left")
    hi = np.searchsorted(sorted_ids, wanted, side="right")
    at = _concat_ranges(lo, hi - lo)
    return at if t.id_rows is None else t.id_rows[at].astype(np.int64)


@dataclass(frozen=True, slots=True)
class _State:
    """An immutable snapshot a search works on (see module docstring)."""

    codes: np.ndarray  # (n, 4) uint64
    ids: np.ndarray  # (n,) int64
    alive: np.ndarray  # (n,) bool; tombstones flip in place
    tables: _Tables

    @property
    def n(self) -> int:
        return len(self.ids)


def _empty_state() -> _State:
    return _State(np.empty((0, 4), np.uint64), np.empty(0, np.int64), np.empty(0, bool), _empty_tables())


class PdqIndex:
    """PDQ hashes with int64 ids; finds every id within a Hamming distance."""

    def __init__(self, *, delta_limit: int = 32768, background_merge: bool = True):
        self.delta_limit = max(1, int(delta_limit))
        self.background_merge = background_merge
        # Writers: appends, tombstones, publishing a new state.
        self._write_lock = threading.Lock()
        # One merge or compaction at a time.
        self._merge_lock = threading.Lock()
        self._merge_thread: threading.Thread | None = None
        self._codes = np.empty((0, 4), np.uint64)
        self._ids = np.empty(0, np.int64)
        self._alive = np.empty(0, bool)
        self._n = 0
        self._dead = 0
        self._state = _empty_state()

    # ------------------------------------------------------------ updates

    def add(self, ids: Sequence[int], hashes) -> None:
        """Add hashes (hex strings, (n, 32) uint8 or (n, 4) uint64) with ids.

        Searchable as soon as this returns.
        """
        codes = _as_codes(hashes)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(codes):
            raise ValueError(f"{len(ids)} ids for {len(codes)} hashes")
        if not len(ids):
            return
        with self._write_lock:
            if self._n + len(ids) > MAX_ROWS:
                raise OverflowError("PdqIndex holds at most 2**32 - 1 rows")
            self._append(ids, codes)
            self._publish(self._state.tables)
        self._after_update(len(ids))

    def remove(self, ids: Sequence[int]) -> int:
        """Remove every row with one of these ids; returns how many rows.

        Binary search in the sorted ids of the indexed rows, O(k log n), plus
        a scan of the delta (at most a few delta_limit rows).
        """
        wanted = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if not len(wanted):
            return 0
        with self._write_lock:
            t, n = self._state.tables, self._n
            delta = np.flatnonzero(_member_mask(self._ids[t.n_indexed : n], wanted))
            rows = np.concatenate([_indexed_rows_of(t, self._ids, wanted), delta + t.n_indexed])
            rows = rows[self._alive[rows]]
            self._alive[rows] = False
            self._dead += len(rows)
        self._after_update(0)
        return len(rows)

    def merge(self) -> None:
        """Fold the delta into the lookup tables now (compacting if due)."""
        with self._merge_lock:
            if self._compaction_due():
                self._compact()
                return
            st = self._state
            t = st.tables
            if st.n == t.n_indexed:
                return
            # A small main part is cheaper to build afresh; crossing
            # LARGE_LAYOUT_FROM changes the layout, which needs a full build.
            if t.n_indexed < 4 * (st.n - t.n_indexed) or _layout_for(st.n) is not t.layout:
                tables = _build_tables(st.codes, st.ids)
            else:
                tables = _merge_tables(t, st.codes, st.ids)
            with self._write_lock:
                self._publish(tables)

    def wait_for_merge(self) -> None:
        """Block until a background merge (if any) has finished."""
        thread = self._merge_thread
        if thread is not None:
            thread.join()

    def _append(self, ids: np.ndarray, codes: np.ndarray) -> None:
        need = self._n + len(ids)
        if need > len(self._ids):
            # Headroom of 1.5x, also after a bulk load, so the next adds do
            # not copy everything (~1 s at 10 M). Unwritten capacity is not
            # resident (pages are only touched when written): it costs
            # address space, not RAM.
            cap = max(need * 3 // 2, 1024)
            self._codes = _grown(self._codes, cap, self._n)
            self._ids = _grown(self._ids, cap, self._n)
            self._alive = _grown(self._alive, cap, self._n)
        end = self._n + len(ids)
        self._codes[self._n : end] = codes
        self._ids[self._n : end] = ids
        self._alive[self._n : end] = True
        self._n = end

    def _publish(self, tables: _Tables) -> None:
        """Swap in a new snapshot; caller holds the write lock."""
        n = self._n
        self._state = _State(self._codes[:n], self._ids[:n], self._alive[:n], tables)

    def _after_update(self, batch: int) -> None:
        st = self._state
        delta = st.n - st.tables.n_indexed
        if delta <= self.delta_limit and not self._compaction_due():
            return
        # A bulk load (one batch past the limit) or adds outrunning the
        # merger merge in the caller: searches right after a bulk load then
        # use the tables at once, and the brute-force part stays bounded.
        big = batch > self.delta_limit or delta > 8 * self.delta_limit
        if not self.background_merge or big:
            self.merge()
            return
        thread = self._merge_thread
        if thread is None or not thread.is_alive():
            thread = threading.Thread(target=self.merge, name="pdq-index-merge", daemon=True)
            self._merge_thread = thread
            thread.start()

    def _compaction_due(self) -> bool:
        return self._dead >= 1024 and self._dead * 4 > self._n

    def _compact(self) -> None:
        """Drop dead rows and rebuild; holds the write lock (blocks adds)."""
        with self._write_lock:
            n = self._n
            keep = np.flatnonzero(self._alive[:n])
            codes = np.take(self._codes, keep, axis=0)
            ids = self._ids[keep]
            tables = _build_tables(codes, ids)
            self._codes, self._ids = codes, ids
            self._alive = np.ones(len(keep), bool)
            self._n, self._dead = len(keep), 0
            self._publish(tables)

    # ------------------------------------------------------------ queries

    def __len__(self) -> int:
        return self._n - self._dead

    def search(self, hash_hex: str, threshold: int = DEFAULT_THRESHOLD) -> list[tuple[int, int]]:
        """[(id, distance)] of every stored hash within ``threshold``, nearest first."""
        return self.search_many([hash_hex], threshold)

    def search_many(
        self, hashes, threshold: int = DEFAULT_THRESHOLD
    ) -> list[tuple[int, int]]:
        """Like search for several queries (e.g. an image's 8 orientations).

        Each id appears once, with its best distance to any of the queries.
        """
        threshold = int(threshold)
        if not 0 <= threshold <= HASH_BITS:
            raise ValueError("threshold must be between 0 and 256")
        queries = _as_codes(hashes)
        st = self._state
        rows, dists = _search_state(st, queries, threshold)
        live = st.alive[rows]
        return _best_per_id(st.ids[rows[live]], dists[live])

    def memory_bytes(self) -> int:
        """Bytes of the live arrays (codes, ids, tombstones, tables, sorted ids)."""
        st = self._state
        return st.codes.nbytes + st.ids.nbytes + st.alive.nbytes + st.tables.nbytes()

    @property
    def layout(self) -> str:
        """Chunking of the current tables, "16x16" or "12x21/22"."""
        return self._state.tables.layout.name

    # ------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """Write live rows to ``path`` atomically (temp file + os.replace)."""
        with self._write_lock:
            n = self._n
            codes, ids = self._codes, self._ids
            keep = np.flatnonzero(self._alive[:n])
        path = os.fspath(path)
        fd, tmp = tempfile.mkstemp(prefix=".pdqindex-", dir=os.path.dirname(path) or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                _write_file(f, codes, ids, keep)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> PdqIndex:
        """Read a file written by :meth:`save`; PdqIndexFileError if it is not one."""
        with open(path, "rb") as f:
            codes, ids = _read_file(f, os.fstat(f.fileno()).st_size)
        index = cls(**kwargs)
        index.add(ids, codes)
        index.merge()
        return index


def _member_mask(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values[i] in wanted, for large values and any wanted.

    Not np.isin: its automatic choice measured 0.1-0.7 s on 10 M values and
    can try a lookup table spanning the id range (terabytes for sparse ids).
    """
    if len(wanted) <= 8:
        mask = values == wanted[0]
        for w in wanted[1:]:
            mask |= values == w
        return mask
    wanted = np.unique(wanted)
    at = np.searchsorted(wanted, values)
    at[at == len(wanted)] = 0
    return wanted[at] == values


def _grown(arr: np.ndarray, cap: int, n: int) -> np.ndarray:
    new = np.empty((cap,) + arr.shape[1:], arr.dtype)
    new[:n] = arr[:n]
    return new


def _search_state(st: _State, queries: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (maybe repeated, maybe dead) within threshold of any query, and distances."""
    n_idx = st.tables.n_indexed
    found_rows, found_dists = [], []
    if n_idx:
        rows, dists = _search_tables(st, queries, threshold)
        found_rows.append(rows)
        found_dists.append(dists)
    if st.n > n_idx:
        # The delta: brute force, bounded by delta_limit rows.
        delta = st.codes[n_idx:]
        for q in queries:
            d = _distances(delta, q)
            hit = np.flatnonzero(d <= threshold)
            found_rows.append(hit + n_idx)
            found_dists.append(d[hit])
    if not found_rows:
        return np.empty(0, np.int64), np.empty(0, np.int32)
    return np.concatenate(found_rows), np.concatenate(found_dists)


def _search_tables(st: _State, queries: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Multi-index-hashing lookup over the indexed rows [0, n_indexed)."""
    t = st.tables
    n_idx = t.n_indexed
    plan = t.layout.plan(threshold // t.layout.n_chunks)
    if plan is None:
        return _scan(st.codes[:n_idx], queries, threshold)
    qchunks = _query_chunks(queries, t.layout)  # (k, n_chunks)
    slots = (qchunks[:, plan.chunk] ^ plan.mask) + plan.base  # (k, p): every probed bucket
    starts = t.offsets[slots].astype(np.int64)
    lengths = (t.offsets[slots + 1] - starts).ravel()
    if int(lengths.sum()) > n_idx // 4:
        # Lumpy data: a straight scan is cheaper.
        return _scan(st.codes[:n_idx], queries, threshold)
    # Chunk j's rows start at j * n_indexed in the flattened pos table.
    starts += plan.chunk * n_idx
    rows = t.pos.ravel()[_concat_ranges(starts.ravel(), lengths)]
    # np.take, not codes[rows]: on a 2-D array it is ~15x faster (numpy's
    # fancy indexing takes a slow general path); this gather of random rows
    # is the main cost of a query.
    cand = np.take(st.codes, rows, axis=0)
    if len(queries) == 1:
        dists = _distances(cand, queries[0])
    else:
        qidx = np.repeat(np.arange(len(queries)).repeat(len(plan.chunk)), lengths)
        dists = _distances(cand, queries[qidx])
    hit = np.flatnonzero(dists <= threshold)
    return rows[hit].astype(np.int64), dists[hit]


def _scan(codes: np.ndarray, queries: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    rows, dists = [], []
    for start in range(0, len(codes), _IO_BLOCK):
        block = codes[start : start + _IO_BLOCK]
        for q in queries:
            d = _distances(block, q)
            hit = np.flatnonzero(d <= threshold)
            rows.append(hit + start)
            dists.append(d[hit])
    return np.concatenate(rows), np.concatenate(dists)


def _best_per_id(ids: np.ndarray, dists: np.ndarray) -> list[tuple[int, int]]:
    """One (id, best distance) per id, sorted by distance then id."""
    if not len(ids):
        return []
    order = np.lexsort((dists, ids))
    ids, dists = ids[order], dists[order]
    first = np.ones(len(ids), bool)
    first[1:] = ids[1:] != ids[:-1]
    ids, dists = ids[first], dists[first]
    order = np.lexsort((ids, dists))
    return list(zip(ids[order].tolist(), dists[order].tolist()))


def _write_file(f, codes: np.ndarray, ids: np.ndarray, keep: np.ndarray) -> None:
    digest = hashlib.sha256()

    def put(data) -> None:
        if isinstance(data, np.ndarray):
            data = memoryview(np.ascontiguousarray(data).reshape(-1).view(np.uint8))
        digest.update(data)
        f.write(data)

    put(_HEADER.pack(MAGIC, FORMAT_VERSION, _HEADER.size, len(keep), 0))
    # Blocks bound the copy that selecting live rows makes.
    for start in range(0, len(keep), _IO_BLOCK):
        put(np.take(codes, keep[start : start + _IO_BLOCK], axis=0))
    for start in range(0, len(keep), _IO_BLOCK):
        put(ids[keep[start : start + _IO_BLOCK]].astype("<i8"))
    f.write(digest.digest())


def _read_file(f, size: int) -> tuple[np.ndarray, np.ndarray]:
    head = f.read(_HEADER.size)
    if len(head) < len(MAGIC) or head[: len(MAGIC)] != MAGIC:
        raise PdqIndexFileError("not a PDQ index file (bad magic)")
    if len(head) < _HEADER.size:
        raise PdqIndexFileError("PDQ index file truncated (incomplete header)")
    magic, version, header_len, count, reserved = _HEADER.unpack(head)
    if version != FORMAT_VERSION:
        raise PdqIndexFileError(f"unsupported PDQ index file version {version}")
    if header_len != _HEADER.size or reserved != 0:
        raise PdqIndexFileError("corrupt PDQ index file header")
    if count > MAX_ROWS:
        raise PdqIndexFileError(f"corrupt PDQ index file: count {count} too large")
    expected = _HEADER.size + count * (HASH_BYTES + 8) + _DIGEST_BYTES
    if size < expected:
        raise PdqIndexFileError(f"PDQ index file truncated: {size} bytes, expected {expected}")
    if size > expected:
        raise PdqIndexFileError(f"PDQ index file has {size - expected} unexpected trailing bytes")
    digest = hashlib.sha256(head)
    codes = np.empty((count, HASH_BYTES), np.uint8)
    ids = np.empty(count, "<i8")
    for arr in (codes, ids):
        buf = memoryview(arr.reshape(-1).view(np.uint8))
        for start in range(0, len(buf), _IO_BLOCK * HASH_BYTES):
            part = buf[start : start + _IO_BLOCK * HASH_BYTES]
            if f.readinto(part) != len(part):
                raise PdqIndexFileError("PDQ index file truncated while reading")
            digest.update(part)
    if f.read(_DIGEST_BYTES) != digest.digest():
        raise PdqIndexFileError("PDQ index file corrupt (checksum mismatch)")
    return codes, ids.astype(np.int64, copy=False)
