"""PdqIndex: exactness against brute force, updates, files, threads."""

import pickle
import struct
import threading
import time

import numpy as np
import pytest

from cophub.detection import pdq_index
from cophub.detection.pdq_index import (
    LARGE_LAYOUT,
    PdqIndex,
    PdqIndexFileError,
    bytes_to_hex,
    hex_to_bytes,
)

RNG_SEED = 20240531


@pytest.fixture(params=["16x16", "12x21/22"])
def chunking(request, monkeypatch):
    """Run a test with each chunking: 12x21/22 normally starts at 2 M rows,
    here at any size."""
    large = request.param == "12x21/22"
    monkeypatch.setattr(pdq_index, "LARGE_LAYOUT_FROM", 0 if large else 2**40)
    return request.param


def random_codes(rng, n):
    return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)


def flip(code, bits):
    """Copy of a (32,) uint8 code with the given bit numbers (0..255) flipped."""
    out = code.copy()
    for b in bits:
        out[b // 8] ^= np.uint8(0x80 >> (b % 8))
    return out


def hexs(codes):
    return [c.tobytes().hex() for c in np.atleast_2d(codes)]


def brute_force(codes, ids, alive, queries, threshold):
    """Reference: {id: best distance} by scanning every row."""
    bits = np.unpackbits(codes, axis=1)
    best = {}
    for q in np.atleast_2d(queries):
        d = (bits != np.unpackbits(q)).sum(axis=1)
        for row in np.flatnonzero((d <= threshold) & alive):
            i = int(ids[row])
            best[i] = min(best.get(i, 999), int(d[row]))
    return best


def spread_bits(d):
    """d bit positions, round robin over the 16 chunks (at most 2 per chunk
    for d <= 32: the case where only one chunk is within 1 bit)."""
    return [(k % 16) * 16 + (k // 16) for k in range(d)]


def spread12_bits(d):
    """d bit positions, round robin over the 12 chunks of the 12x21/22
    layout (at most 3 per chunk for d <= 36)."""
    return [LARGE_LAYOUT.starts[k % 12] + k // 12 for k in range(d)]


def concentrated_bits(d):
    """d bit positions filling whole chunks first (chunk 0, then chunk 1...)."""
    return list(range(d))


def random_bits(rng, d):
    return rng.choice(256, size=d, replace=False).tolist()


def make_index(merged, **kwargs):
    kwargs.setdefault("background_merge", False)
    return PdqIndex(**kwargs), merged


def fill(index, merged, ids, codes):
    index.add(ids, codes)
    if merged:
        index.merge()
        assert index._state.tables.n_indexed == index._state.n
        # The chunking fixture really took effect.
        assert index.layout == ("12x21/22" if pdq_index.LARGE_LAYOUT_FROM == 0 else "16x16")
    else:
        assert index._state.tables.n_indexed < index._state.n


# ------------------------------------------------------------------ exactness


@pytest.mark.parametrize("merged", [True, False], ids=["tables", "delta"])
@pytest.mark.parametrize("pattern", ["spread", "spread12", "concentrated", "random"])
def test_threshold_boundary(chunking, merged, pattern):
    rng = np.random.default_rng(RNG_SEED)
    base = random_codes(rng, 1)[0]
    distances = [0, 1, 2, 15, 16, 17, 30, 31, 32, 33, 40]
    planted = []
    for d in distances:
        bits = {
            "spread": spread_bits(d),
            "spread12": spread12_bits(d),
            "concentrated": concentrated_bits(d),
            "random": random_bits(rng, d),
        }[pattern]
        planted.append(flip(base, bits))
    background = random_codes(rng, 3000)
    codes = np.vstack([np.array(planted), background])
    ids = np.arange(len(codes)) + 1000
    index = PdqIndex(background_merge=False, delta_limit=100_000)
    fill(index, merged, ids, codes)

    got = dict(index.search(base.tobytes().hex()))
    for i, d in enumerate(distances):
        if d <= 31:
            assert got.get(1000 + i) == d, f"distance {d} ({pattern}) not found"
        else:
            assert 1000 + i not in got, f"distance {d} ({pattern}) reported"
    assert got == brute_force(codes, ids, np.ones(len(ids), bool), base, 31)


@pytest.mark.parametrize("threshold", [0, 1, 10, 31, 47, 63, 100, 256])
def test_other_thresholds_match_brute_force(chunking, threshold):
    rng = np.random.default_rng(threshold)
    base = random_codes(rng, 4)
    near = [flip(base[i % 4], random_bits(rng, int(d))) for i, d in enumerate(rng.integers(0, 120, 400))]
    codes = np.vstack([base, np.array(near), random_codes(rng, 2000)])
    ids = np.arange(len(codes))
    index = PdqIndex(background_merge=False)
    fill(index, True, ids, codes)
    alive = np.ones(len(ids), bool)
    for q in base:
        got = dict(index.search(q.tobytes().hex(), threshold=threshold))
        assert got == brute_force(codes, ids, alive, q, threshold)


def planted_set(rng, n_random=20000, n_near=2000):
    bank = random_codes(rng, n_random)
    sources = rng.integers(0, n_random, n_near)
    near = np.array(
        [flip(bank[s], random_bits(rng, int(d))) for s, d in zip(sources, rng.integers(0, 40, n_near))]
    )
    codes = np.vstack([bank, near])
    return codes, rng.permutation(len(codes)).astype(np.int64) * 7 + 3


@pytest.mark.parametrize("merged", [True, False], ids=["tables", "delta"])
def test_cross_check_with_brute_force(chunking, merged):
    rng = np.random.default_rng(RNG_SEED + 1)
    codes, ids = planted_set(rng)
    index = PdqIndex(background_merge=False, delta_limit=50_000)
    fill(index, merged, ids, codes)
    alive = np.ones(len(ids), bool)
    queries = [flip(codes[r], random_bits(rng, int(d))) for r, d in zip(rng.integers(0, len(codes), 150), rng.integers(0, 36, 150))]
    queries += list(random_codes(rng, 150))
    matched = 0
    for q in queries:
        got = index.search(q.tobytes().hex())
        want = brute_force(codes, ids, alive, q, 31)
        assert dict(got) == want
        assert len(got) == len(want)  # no id twice
        assert [d for _, d in got] == sorted(d for _, d in got)
        matched += bool(want)
    assert matched > 120  # the planted queries really exercise matches


def test_search_many_best_distance_per_id(chunking):
    rng = np.random.default_rng(RNG_SEED + 2)
    codes, ids = planted_set(rng, 5000, 500)
    index = PdqIndex(background_merge=False, delta_limit=1000)
    index.add(ids[:4000], codes[:4000])
    index.merge()
    index.add(ids[4000:], codes[4000:])  # part tables, part delta
    alive = np.ones(len(ids), bool)
    for _ in range(20):
        src = codes[rng.integers(len(codes))]
        group = np.array([flip(src, random_bits(rng, int(d))) for d in rng.integers(0, 40, 8)])
        got = index.search_many(hexs(group))
        assert dict(got) == brute_force(codes, ids, alive, group, 31)
        assert index.search_many(group) == got  # array input, same answer


def test_uint64_and_uint8_inputs_equal_hex():
    rng = np.random.default_rng(5)
    codes = random_codes(rng, 50)
    a, b, c = (PdqIndex(background_merge=False) for _ in range(3))
    a.add(range(50), hexs(codes))
    b.add(range(50), codes)
    c.add(range(50), codes.view(np.uint64))
    for q in hexs(codes[:5]):
        assert a.search(q) == b.search(q) == c.search(q)
    assert bytes_to_hex(codes) == hexs(codes)
    assert np.array_equal(hex_to_bytes(hexs(codes)), codes)


@pytest.mark.parametrize(
    "bad", ["00" * 31, "00" * 33, "zz" * 32, "0" * 62 + " 0", "ab " * 21 + "a"]
)
def test_invalid_hex_rejected(bad):
    index = PdqIndex()
    with pytest.raises(ValueError):
        index.add([1], [bad])
    with pytest.raises(ValueError):
        index.search(bad)


def test_bad_arguments():
    index = PdqIndex()
    with pytest.raises(ValueError):
        index.add([1, 2], ["00" * 32])
    with pytest.raises(ValueError):
        index.add([1], np.zeros((1, 16), np.uint8))
    with pytest.raises(ValueError):
        index.search("00" * 32, threshold=-1)
    with pytest.raises(TypeError):
        index.search_many("00" * 32)


# ------------------------------------------------------------------ sizes 0, 1


def test_empty_index():
    index = PdqIndex()
    assert len(index) == 0
    assert index.search("00" * 32) == []
    assert index.search_many(["00" * 32, "ff" * 32]) == []
    assert index.remove([1]) == 0
    index.merge()
    assert index.search("00" * 32, threshold=256) == []


@pytest.mark.parametrize("merged", [True, False], ids=["tables", "delta"])
def test_single_entry(chunking, merged):
    index = PdqIndex(background_merge=False)
    code = np.zeros((1, 32), np.uint8)
    fill(index, merged, [42], code)
    assert len(index) == 1
    assert index.search("00" * 32) == [(42, 0)]
    assert index.search("ff" * 32) == []
    assert index.search("ff" * 32, threshold=256) == [(42, 256)]
    assert index.search("ff" * 32, threshold=255) == []


# ------------------------------------------------------------------ updates


@pytest.mark.parametrize("merged", [True, False], ids=["tables", "delta"])
def test_remove_then_readd(chunking, merged):
    rng = np.random.default_rng(7)
    codes = random_codes(rng, 500)
    index = PdqIndex(background_merge=False)
    fill(index, merged, np.arange(500), codes)
    q = hexs(codes[10])[0]
    assert index.search(q)[0] == (10, 0)
    assert index.remove([10, 11, 99999]) == 2
    assert len(index) == 498
    assert all(i != 10 for i, _ in index.search(q))
    assert index.remove([10]) == 0
    index.add([10], codes[10:11])
    assert index.search(q)[0] == (10, 0)
    assert len(index) == 499
    index.merge()
    assert index.search(q)[0] == (10, 0)
    assert 11 not in dict(index.search(hexs(codes[11])[0]))


def test_duplicate_id_reported_once_and_removed_together(chunking):
    rng = np.random.default_rng(8)
    a, b = random_codes(rng, 2)
    index = PdqIndex(background_merge=False)
    index.add([5, 5], np.array([a, flip(a, range(3))]))
    index.add([6], [b.tobytes().hex()])
    assert index.search(hexs(flip(a, [200]))[0]) == [(5, 1)]
    assert index.remove([5]) == 2
    assert index.search(hexs(a)[0]) == []
    assert index.search(hexs(b)[0]) == [(6, 0)]


def test_many_removals_compact(chunking):
    rng = np.random.default_rng(9)
    codes = random_codes(rng, 6000)
    index = PdqIndex(background_merge=False)
    fill(index, True, np.arange(6000), codes)
    gone = np.arange(0, 6000, 2)
    index.remove(gone)  # half dead: the merge this triggers compacts
    assert index._state.n == 3000 and len(index) == 3000
    for i in range(0, 40):
        found = dict(index.search(hexs(codes[i])[0]))
        assert (i in found) == (i % 2 == 1)


@pytest.mark.parametrize("ascending", [True, False], ids=["ascending-ids", "shuffled-ids"])
def test_remove_finds_rows_in_tables_and_delta(chunking, ascending):
    rng = np.random.default_rng(15)
    codes = random_codes(rng, 3000)
    ids = np.repeat(np.arange(1500) * 3, 2)  # every id twice
    if not ascending:
        ids = rng.permutation(ids)
    index = PdqIndex(background_merge=False, delta_limit=5000)
    index.add(ids[:2000], codes[:2000])
    index.merge()
    index.add(ids[2000:], codes[2000:])  # delta
    assert (index._state.tables.id_rows is None) == ascending
    gone = rng.choice(ids, 200, replace=False)
    expected = int(np.isin(ids, gone).sum())
    assert index.remove(list(gone) + [1, 2, -7]) == expected  # absent ids ignored
    assert index.remove(gone) == 0
    index.merge()  # the removed rows' ids are merged into the sorted ids too
    assert index.remove(gone) == 0
    alive = ~np.isin(ids, gone)
    assert len(index) == alive.sum()
    for r in rng.integers(0, 3000, 40):
        got = dict(index.search(hexs(codes[r])[0]))
        assert got == brute_force(codes, ids, alive, codes[r], 31)


def test_layout_follows_size(monkeypatch):
    monkeypatch.setattr(pdq_index, "LARGE_LAYOUT_FROM", 3000)
    rng = np.random.default_rng(16)
    codes, ids = planted_set(rng, 3000, 500)
    index = PdqIndex(background_merge=False, delta_limit=100_000)
    index.add(ids[:2500], codes[:2500])
    index.merge()
    assert index.layout == "16x16"
    index.add(ids[2500:], codes[2500:])
    index.merge()  # crossing the limit: a full build in the large layout
    assert index.layout == "12x21/22"
    alive = np.ones(len(ids), bool)
    for q in codes[rng.integers(0, len(codes), 30)]:
        assert dict(index.search(hexs(q)[0])) == brute_force(codes, ids, alive, q, 31)
    index.remove(ids[:1500])  # compaction brings it back under the limit
    index.merge()
    assert index.layout == "16x16" and len(index) == 2000
    alive[:1500] = False
    for q in codes[rng.integers(0, len(codes), 30)]:
        assert dict(index.search(hexs(q)[0])) == brute_force(codes, ids, alive, q, 31)


def test_remove_one_id_among_a_million_is_fast():
    rng = np.random.default_rng(17)
    n = 1_000_000
    index = PdqIndex(background_merge=False)
    index.add(rng.permutation(n) * 5, random_codes(rng, n))
    assert index._state.tables.id_rows is not None  # the sorted-copy path
    timings = []
    for k in range(5):
        t = time.perf_counter()
        assert index.remove([k * 5 * 1000]) == 1
        timings.append(time.perf_counter() - t)
    # Best of 5: a busy machine can stall any single call. A scan of every
    # id took ~2 ms at this size, so this also catches a return to O(n).
    assert min(timings) < 0.005, timings


def test_just_added_hash_found_by_next_search(chunking):
    rng = np.random.default_rng(10)
    index = PdqIndex(delta_limit=64)  # background merges happen along the way
    index.add(np.arange(5000), random_codes(rng, 5000))
    for i in range(300):
        code = random_codes(rng, 1)
        index.add([100_000 + i], code)
        assert index.search(hexs(code)[0]) == [(100_000 + i, 0)]
    index.wait_for_merge()
    assert len(index) == 5300


def test_bulk_add_merges_into_tables():
    rng = np.random.default_rng(11)
    index = PdqIndex(delta_limit=1000)
    index.add(np.arange(1500), random_codes(rng, 1500))
    assert index._state.tables.n_indexed == 1500  # batch > limit: merged in the caller
    index.add(np.arange(1500, 2000), random_codes(rng, 500))
    assert index._state.tables.n_indexed == 1500  # small batch: stays in the delta
    assert len(index) == 2000
    assert index.memory_bytes() > 2000 * 32


def test_concurrent_adds_removes_and_searches(chunking):
    rng = np.random.default_rng(12)
    base = random_codes(rng, 2000)
    extra = random_codes(rng, 6000)
    index = PdqIndex(delta_limit=200)  # many background merges during the run
    index.add(np.arange(2000), base)
    errors = []
    done = threading.Event()

    def reader(seed):
        r = np.random.default_rng(seed)
        try:
            while not done.is_set():
                i = int(r.integers(1000, 2000))  # never removed
                got = index.search(hexs(flip(base[i], random_bits(r, 5)))[0])
                assert (i, 5) in got, f"lost {i}"
                index.search_many(hexs(random_codes(r, 8)))
        except Exception as exc:  # reported in the main thread
            errors.append(exc)

    def writer():
        try:
            for start in range(0, 6000, 7):
                stop = min(start + 7, 6000)
                index.add(np.arange(10_000 + start, 10_000 + stop), extra[start:stop])
                if start % 70 == 0:
                    index.remove([start // 70])
        except Exception as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in readers:
        t.start()
    w = threading.Thread(target=writer)
    w.start()
    w.join()
    done.set()
    for t in readers:
        t.join()
    index.wait_for_merge()
    assert not errors, errors
    removed = len(range(0, 6000, 70))
    assert len(index) == 8000 - removed
    for j in range(0, 6000, 97):
        assert index.search(hexs(extra[j])[0])[0] == (10_000 + j, 0)
    for k in range(removed):
        assert k not in dict(index.search(hexs(base[k])[0]))


# ------------------------------------------------------------------ files


@pytest.mark.parametrize("size", [0, 1, 2, 3000])
def test_save_load_round_trip(chunking, tmp_path, size):
    rng = np.random.default_rng(size)
    codes, ids = planted_set(rng, size, size // 10) if size > 2 else (random_codes(rng, size), np.arange(size) * 11 - 5)
    index = PdqIndex(background_merge=False, delta_limit=1000)
    index.add(ids, codes)
    (tmp_path / "banks").mkdir()
    path = tmp_path / "banks" / "bank.pdqidx"
    index.save(path)
    loaded = PdqIndex.load(path)
    assert len(loaded) == len(index) == len(ids)
    queries = list(codes[:50]) + list(random_codes(rng, 20))
    for q in queries:
        h = q.tobytes().hex()
        assert loaded.search(h) == index.search(h)
        assert loaded.search(h, threshold=80) == index.search(h, threshold=80)
    assert path.stat().st_size == 32 + 40 * len(ids) + 32
    assert [p.name for p in path.parent.iterdir()] == ["bank.pdqidx"]  # no temp left


def test_save_skips_removed_rows(tmp_path):
    rng = np.random.default_rng(13)
    codes = random_codes(rng, 10)
    index = PdqIndex()
    index.add(range(10), codes)
    index.remove([3])
    index.save(tmp_path / "i")
    loaded = PdqIndex.load(tmp_path / "i")
    assert len(loaded) == 9
    assert loaded.search(hexs(codes[3])[0]) == []
    assert loaded.search(hexs(codes[4])[0]) == [(4, 0)]


@pytest.fixture
def saved(tmp_path):
    index = PdqIndex()
    index.add(range(20), random_codes(np.random.default_rng(14), 20))
    path = tmp_path / "bank.pdqidx"
    index.save(path)
    return path, path.read_bytes()


@pytest.mark.parametrize("keep", [0, 5, 8, 31, 32, 100, 32 + 640, -1])
def test_truncated_file_refused(saved, keep):
    path, data = saved
    path.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(PdqIndexFileError, match="magic|truncated"):
        PdqIndex.load(path)


def test_trailing_bytes_refused(saved):
    path, data = saved
    path.write_bytes(data + b"\0")
    with pytest.raises(PdqIndexFileError, match="trailing"):
        PdqIndex.load(path)


@pytest.mark.parametrize("offset", [40, 32 + 640 + 3, -5])
def test_corrupted_file_refused(saved, offset):
    path, data = saved
    data = bytearray(data)
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(PdqIndexFileError, match="checksum"):
        PdqIndex.load(path)


def test_bad_header_fields_refused(saved):
    path, data = saved
    path.write_bytes(data[:8] + struct.pack("<I", 2) + data[12:])
    with pytest.raises(PdqIndexFileError, match="version 2"):
        PdqIndex.load(path)
    # A count that does not match the file's length.
    path.write_bytes(data[:16] + struct.pack("<Q", 21) + data[24:])
    with pytest.raises(PdqIndexFileError, match="truncated"):
        PdqIndex.load(path)
    path.write_bytes(data[:16] + struct.pack("<Q", 2**40) + data[24:])
    with pytest.raises(PdqIndexFileError, match="too large"):
        PdqIndex.load(path)


def test_pickle_and_npy_files_refused(tmp_path):
    index = PdqIndex()
    index.add([1], ["00" * 32])
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({"codes": np.zeros((1, 32), np.uint8), "ids": [1]}))
    with pytest.raises(PdqIndexFileError, match="bad magic"):
        PdqIndex.load(path)
    np.save(tmp_path / "arr.npy", np.zeros((1, 32), np.uint8))
    with pytest.raises(PdqIndexFileError, match="bad magic"):
        PdqIndex.load(tmp_path / "arr.npy")


def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    index = PdqIndex()
    index.add([1], ["00" * 32])
    (tmp_path / "banks").mkdir()
    path = tmp_path / "banks" / "bank.pdqidx"
    index.save(path)
    before = path.read_bytes()
    index.add([2], ["ff" * 32])

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr("cophub.detection.pdq_index.os.fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        index.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["bank.pdqidx"]
