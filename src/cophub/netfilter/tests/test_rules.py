"""Block-list parsing, checks, compiling and matching (no database needed)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import pytest

from cophub.netfilter import rules
from cophub.netfilter.rules import (
    ALLOW,
    BELOW,
    EXACT,
    IMPORTANT,
    SUBTREE,
    ListInput,
    Match,
    RuleTable,
    SmallRules,
    check_list,
    compile_lists,
    name_key,
    normalize_name,
    parse_list,
    parse_rules,
    prune,
    refuse_reason,
)

pytestmark = pytest.mark.dbfree


def names(parsed, kind):
    return sorted(parsed.names[kind])


def write_list(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def compile_texts(tmp_path: Path, *lists, out="compiled") -> rules.Compiled:
    """lists: (slot, category, text) or (slot, category, text, match_subdomains)."""
    inputs = []
    for entry in lists:
        slot, category, text = entry[:3]
        match_subdomains = entry[3] if len(entry) > 3 else True
        path = write_list(tmp_path, f"list-{slot}.txt", text)
        inputs.append(ListInput(slot, 100 + slot, f"List {slot}", category, path, match_subdomains))
    return compile_lists(inputs, tmp_path / out)


def open_table(compiled) -> RuleTable:
    return RuleTable.open(compiled.bin_path, compiled.meta_path)


# --- names ------------------------------------------------------------------


def test_name_key_is_xxh3_64_never_zero(monkeypatch):
    import xxhash

    assert name_key(b"example.com") == xxhash.xxh3_64_intdigest(b"example.com")
    monkeypatch.setattr(rules, "xxh3_64_intdigest", lambda name: 0)
    assert rules.name_key(b"example.com") == 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Example.COM.", b"example.com"),
        ("  ads_1-x.example.com ", b"ads_1-x.example.com"),
        ("bücher.de", b"xn--bcher-kva.de"),
        ("giáodục.vn", "giáodục.vn".encode("idna")),
        ("a..com", None),
        ("", None),
        (".", None),
        ("a" * 64 + ".com", None),
        (".".join(["a" * 60] * 5), None),  # 304 characters
        ("exa mple.com", None),
        ("exa$mple.com", None),
        ("10.0.0.1", None),
        ("\ufffd.com", None),
    ],
)
def test_normalize_name(text, expected):
    assert normalize_name(text) == expected


# --- parsing ----------------------------------------------------------------


def test_hosts_lines_any_address_several_names_and_inline_comments():
    parsed = parse_list(
        b"0.0.0.0 a.com b.com # ads\n"
        b"127.0.0.1\tc.com\n"
        b"::1 d.com\n"
        b":: e.com\n"
        b"192.168.1.1 f.com   #tracker\n"
        b"fe80::1%lo0 g.com\n"
    )
    assert names(parsed, EXACT) == [b"a.com", b"b.com", b"c.com", b"d.com", b"e.com", b"f.com", b"g.com"]
    assert parsed.report["syntax"]["hosts"] == 7
    assert parsed.report["invalid"] == 0


def test_hosts_local_names_are_ignored_not_rules():
    parsed = parse_list(
        b"127.0.0.1 localhost localhost.localdomain local\n"
        b"255.255.255.255 broadcasthost\n"
        b"::1 localhost ip6-localhost ip6-loopback\n"
        b"ff02::1 ip6-allnodes\n"
        b"0.0.0.0 0.0.0.0\n"
    )
    assert parsed.rule_count() == 0
    assert parsed.report["invalid"] == 0
    assert parsed.report["ignored"] == 9


def test_plain_domains_cover_subdomains_unless_the_list_is_exact():
    data = b"example.com\nSub.Example.org.\n"
    assert names(parse_list(data), SUBTREE) == [b"example.com", b"sub.example.org"]
    exact = parse_list(data, match_subdomains=False)
    assert names(exact, EXACT) == [b"example.com", b"sub.example.org"]
    assert exact.report["syntax"]["domain"] == 2


def test_star_dot_is_strictly_below():
    parsed = parse_list(b"*.example.com\n||*.tracker.net^\n@@*.ok.org\n")
    assert names(parsed, BELOW) == [b"example.com", b"tracker.net"]
    assert names(parsed, BELOW | ALLOW) == [b"ok.org"]
    assert parsed.report["syntax"]["wildcard"] == 3


def test_adblock_anchors_and_exceptions():
    parsed = parse_list(
        b"||ads.example.com^\n"
        b"|exact.example.com^\n"
        b"@@||good.example.com^\n"
        b"@@|only.example.com^\n"
        b"||noend.example.com\n"
        b"||ads.example.net^|\n"
    )
    assert names(parsed, SUBTREE) == [b"ads.example.com", b"ads.example.net", b"noend.example.com"]
    assert names(parsed, EXACT) == [b"exact.example.com"]
    assert names(parsed, SUBTREE | ALLOW) == [b"good.example.com"]
    assert names(parsed, ALLOW) == [b"only.example.com"]
    assert parsed.report["syntax"]["adblock"] == 6


def test_plain_domain_exception_follows_the_list_setting():
    assert names(parse_list(b"@@example.com\n"), SUBTREE | ALLOW) == [b"example.com"]
    assert names(parse_list(b"@@example.com\n", match_subdomains=False), ALLOW) == [b"example.com"]


def test_wildcards_become_patterns_anchored_like_adguard():
    parsed = parse_list(b"||ads*.example.com^\n*cdn*\n|track*.net^\n@@||ok*.example.com^\n")
    patterns = {pattern.rule: pattern for pattern in parsed.patterns}
    small = SmallRules(parsed)
    assert small.match(b"ads1.example.com") == "||ads*.example.com^"
    assert small.match(b"x.ads.b.example.com") == "||ads*.example.com^"
    assert small.match(b"xads1.example.com") is None
    assert small.match(b"ads1.example.com.evil.net") is None
    assert small.match(b"static.mycdn.io") == "*cdn*"
    assert small.match(b"tracker.net") == "|track*.net^"
    assert small.match(b"a.tracker.net") is None
    assert patterns["@@||ok*.example.com^"].kind == ALLOW
    assert parsed.report["syntax"]["wildcard"] == 4


def test_regex_rules_are_checked_and_limited():
    parsed = parse_list(
        b"/^ads?[0-9]+\\./\n"
        b"@@/^good[0-9]+\\./\n"
        b"/(a+)+$/\n"
        b"/" + b"a" * 300 + b"/\n"
        b"/([a-z]/\n"
        b"/(ab)\\1/\n"
        b"/^tracker\\./$important\n"
    )
    assert [pattern.regex for pattern in parsed.patterns] == ["^ads?[0-9]+\\.", "^good[0-9]+\\.", "^tracker\\."]
    assert [pattern.kind for pattern in parsed.patterns] == [0, ALLOW, IMPORTANT]
    assert parsed.report["syntax"]["regex"] == 3
    reasons = [example["reason"] for example in parsed.report["invalid_examples"]]
    assert reasons[:2] == ["nested quantifier", "regex too long"]
    assert reasons[2].startswith("bad regex")
    assert reasons[3] == "back-reference"


def test_modifiers_cosmetic_and_paths_are_skipped_and_counted():
    parsed = parse_list(
        b"||a.com^$third-party\n"
        b"||b.com^$client=10.0.0.1\n"
        b"||c.com^$dnstype=AAAA\n"
        b"example.com##.banner\n"
        b"example.com#@#.banner\n"
        b"example.com#$#abort-on-property-read x\n"
        b"||d.com/ads/banner.js\n"
        b"||e.com:8080^\n"
        b"https://f.com/page\n"
        b"||g.com^$important\n"
        b"||h.com^$all\n"
    )
    assert parsed.report["skipped"] == 9
    assert parsed.report["skipped_examples"][0] == {"line": 1, "text": "||a.com^$third-party", "reason": "modifier $third-party"}
    assert parsed.report["skipped_examples"][1]["reason"] == "modifier $client"
    assert names(parsed, SUBTREE | IMPORTANT) == [b"g.com"]
    assert names(parsed, SUBTREE) == [b"h.com"]


def test_comments_headers_and_blank_lines():
    parsed = parse_list(b"[Adblock Plus 2.0]\n! Title: x\n# hosts comment\n## banner ##\n\n   \n||a.com^\n")
    assert parsed.report["comments"] == 4
    assert parsed.report["total_lines"] == 7
    assert parsed.rule_count() == 1
    assert parsed.report["skipped"] == parsed.report["invalid"] == 0


def test_crlf_bom_and_broken_encoding_do_not_crash():
    data = b"\xef\xbb\xbf||a.com^\r\n0.0.0.0 b.com\r\n\xe9\xe8\xff garbage\r\nc.com\r\nd\xe9.com\r\n"
    parsed = parse_list(data)
    assert names(parsed, SUBTREE) == [b"a.com", b"c.com"]
    assert names(parsed, EXACT) == [b"b.com"]
    assert parsed.report["invalid"] == 2
    assert parsed.report["total_lines"] == 5


def test_latin1_file_and_unicode_names():
    parsed = parse_list("bücher.de\n0.0.0.0 café.fr\n".encode("utf-8") + "||naïve.com^\n".encode("latin-1"))
    assert names(parsed, SUBTREE) == [b"xn--bcher-kva.de"]
    assert names(parsed, EXACT) == [b"xn--caf-dma.fr"]
    assert parsed.report["invalid"] == 1


def test_examples_are_capped_and_lines_limited():
    data = b"".join(b"not a rule %d\n" % i for i in range(50)) + b"||a.com^\n" * 10
    parsed = parse_list(data, max_lines=55)
    assert parsed.report["invalid"] == 50
    assert len(parsed.report["invalid_examples"]) == rules.MAX_EXAMPLES
    assert parsed.report["truncated"] is True
    assert parsed.report["total_lines"] == 55
    assert parsed.rule_count() == 5


def test_parse_rules_for_admin_input():
    parsed = parse_rules(["||thptabc.edu.vn^", "example.org", "  ", "@@ok.com", "bad rule here"])
    assert names(parsed, SUBTREE) == [b"example.org", b"thptabc.edu.vn"]
    assert names(parsed, SUBTREE | ALLOW) == [b"ok.com"]
    assert parsed.report["invalid"] == 1


# --- checks -----------------------------------------------------------------


def held(text: str, **kwargs) -> dict[str, str]:
    parsed = parse_list(text.encode())
    return {entry["rule"]: entry["reason"] for entry in check_list(parsed, **kwargs)}


def test_public_suffix_rules_are_held_back():
    result = held("||vn^\ncom.vn\n0.0.0.0 edu.vn\n||gov.vn^\n||co.uk^\ncom\n||example.com.vn^\n@@||com.vn^\n||github.io^\n")
    assert result == {
        "||vn^": "public_suffix",
        "||com.vn^": "public_suffix",
        "edu.vn": "public_suffix",
        "||gov.vn^": "public_suffix",
        "||co.uk^": "public_suffix",
    }


def test_held_back_rules_leave_the_parsed_list():
    parsed = parse_list(b"||com.vn^\n||ads.com.vn^\n")
    check_list(parsed)
    assert names(parsed, SUBTREE) == [b"ads.com.vn"]
    assert parsed.report["rules"] == 1


def test_protected_names_and_their_parents_are_held_back():
    result = held(
        "||moet.gov.vn^\n0.0.0.0 chinhphu.vn\n||example.edu.vn^\n*.example.edu.vn\n0.0.0.0 hub.example.edu.vn\n"
        "||other.edu.vn^\n||sub.moet.gov.vn^\n/^moet\\.gov\\.vn$/\n",
        protected=["https://hub.example.edu.vn/"],
    )
    assert result == {
        "||moet.gov.vn^": "protected",
        "chinhphu.vn": "protected",
        "||example.edu.vn^": "protected",
        "*.example.edu.vn": "protected",
        "hub.example.edu.vn": "protected",
        "/^moet\\.gov\\.vn$/": "protected",
    }


@pytest.mark.parametrize("rule", ["*.vn", "||*.vn^", "/.*\\.vn$/", "*", "||*^", "/[a-z]/", "*.com.vn", "/vn$/"])
def test_broad_patterns_are_held_back(rule):
    # `||*.vn^` is stored as `*.vn` (strictly below `vn`) and listed so.
    assert list(held(rule + "\n").values()) == ["too_broad_pattern"]


@pytest.mark.parametrize("rule", ["*cdn*", "||ads*.example.com^", "/^ads?[0-9]+\\./", "@@*.vn", "*.example.vn"])
def test_narrow_patterns_and_exceptions_are_kept(rule):
    assert held(rule + "\n") == {}


def test_html_page_is_refused():
    page = b"<!DOCTYPE html>\n<html><head><title>404</title></head>\n<body>Not found</body></html>\n"
    assert refuse_reason(parse_list(page)) == "html"


def test_mostly_garbage_is_refused_but_noisy_big_lists_are_not():
    garbage = b"".join(b"this is not a rule %d\n" % i for i in range(30)) + b"a.com\nb.com\n"
    assert refuse_reason(parse_list(garbage)) == "not_a_list"
    cosmetic_heavy = b"".join(b"site%d.com##.ad\n" % i for i in range(3000)) + b"".join(
        b"||ads%d.com^\n" % i for i in range(200)
    )
    assert refuse_reason(parse_list(cosmetic_heavy)) is None
    assert refuse_reason(parse_list(b"! only comments\n\n# nothing\n")) == "empty"
    assert refuse_reason(parse_list(b"")) == "empty"
    assert refuse_reason(parse_list(b"0.0.0.0 a.com\n")) is None


# --- compiling --------------------------------------------------------------


def read_slots(data: bytes) -> tuple[int, int, list[int], list[int]]:
    """(entries, capacity, keys by slot, flags by slot) of a `.bin` file."""
    count, capacity = int.from_bytes(data[8:12], "little"), int.from_bytes(data[12:16], "little")
    keys = [int.from_bytes(data[16 + 8 * i : 24 + 8 * i], "little") for i in range(capacity)]
    flags = [int.from_bytes(data[16 + 8 * capacity + 2 * i : 18 + 8 * capacity + 2 * i], "little") for i in range(capacity)]
    return count, capacity, keys, flags


def probe(keys: list[int], key: int) -> list[int]:
    """The slots holding `key`, walking from its home slot to the first empty one, as documented."""
    capacity, found = len(keys), []
    slot = key & (capacity - 1)
    while keys[slot]:
        if keys[slot] == key:
            found.append(slot)
        slot = (slot + 1) & (capacity - 1)
    return found


def test_compile_writes_the_documented_format(tmp_path):
    compiled = compile_texts(tmp_path, (0, "ads", "||ads.example.com^\n0.0.0.0 x.example.com\n*cdn*\n@@||ok.example.com^\n"))
    data = compiled.bin_path.read_bytes()
    assert data[:8] == b"CPHNF\x02\x00\x00"
    count, capacity, keys, flags = read_slots(data)
    assert count == 3 and capacity == 8 and len(data) == 16 + 10 * capacity
    assert sum(1 for key in keys if key) == 3
    assert all(flags[slot] == 0 for slot in range(capacity) if not keys[slot])
    entries = {key: flags[probe(keys, key)[0]] for key in keys if key}
    assert entries[name_key(b"ads.example.com")] == SUBTREE
    assert entries[name_key(b"x.example.com")] == EXACT
    assert entries[name_key(b"ok.example.com")] == SUBTREE | ALLOW
    meta = json.loads(compiled.meta_path.read_text())
    assert meta["version"] == compiled.version and len(compiled.version) == 16
    assert meta["slots"] == [{"slot": 0, "list": 100, "name": "List 0", "category": "ads"}]
    assert meta["patterns"] == [{"slot": 0, "allow": False, "important": False, "regex": "cdn", "rule": "*cdn*"}]
    assert meta["counts"]["entries"] == 3
    assert compiled.bin_path.name == f"rules-{compiled.version}.bin"


def linear_probing(pairs: list[tuple[int, int]], capacity: int) -> dict[int, list[int]]:
    """key -> its flags, as a textbook linear-probing insert would find them."""
    table: list[tuple[int, int] | None] = [None] * capacity
    for key, flag in pairs:
        slot = key & (capacity - 1)
        while table[slot] is not None:
            slot = (slot + 1) & (capacity - 1)
        table[slot] = (key, flag)
    found: dict[int, list[int]] = {}
    for entry in table:
        if entry is not None:
            found.setdefault(entry[0], []).append(entry[1])
    return {key: sorted(flags) for key, flags in found.items()}


@pytest.mark.parametrize("seed", range(4))
def test_hash_table_places_every_entry_on_its_probe_chain(seed):
    import random

    import numpy as np

    rng = random.Random(seed)
    capacity = 1 << 12
    # Crowded homes at both ends force long runs, and a run that wraps round to slot 0.
    keys = [rng.choice([capacity - 1, capacity - 2, 0, 5]) + capacity * rng.randrange(1, 1 << 40) for _ in range(300)]
    keys += [rng.randrange(1, 1 << 64) for _ in range(1200)]
    flags = [rng.randrange(1 << 16) for _ in keys]
    keys, flags = keys + keys[:200], flags + [rng.randrange(1 << 16) for _ in range(200)]  # names in several lists
    keys, flags = keys + keys[200:250], flags + flags[200:250]  # and plain duplicates, stored once
    count, table_keys, table_flags = rules._hash_table(np.array(keys, dtype=np.uint64), np.array(flags, dtype=np.uint16))
    pairs = sorted(set(zip(keys, flags)))
    assert count == len(pairs) == 1700 and len(table_keys) == capacity == rules.table_capacity(count)
    assert table_keys[0] != 0  # the run from the last slot wrapped round
    table_keys, table_flags = table_keys.tolist(), table_flags.tolist()
    by_key = {key: sorted(table_flags[slot] for slot in probe(table_keys, key)) for key in set(keys)}
    assert by_key == linear_probing(pairs, capacity)
    assert sum(1 for key in table_keys if key) == count


def test_hash_table_shrinks_when_duplicates_collapse():
    import numpy as np

    keys = np.array([3, 11, 19, 3, 11, 19], dtype=np.uint64)  # one home slot in a table of 8
    count, table_keys, table_flags = rules._hash_table(keys, np.array([1, 2, 3, 1, 2, 3], dtype=np.uint16))
    assert count == 3 and table_keys.tolist() == [0, 0, 0, 3, 19, 11, 0, 0]  # sorted by home in the first, bigger, table
    assert table_flags.tolist() == [0, 0, 0, 1, 3, 2, 0, 0]
    count, table_keys, _ = rules._hash_table(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint16))
    assert count == 0 and table_keys.tolist() == [0, 0]


@pytest.mark.parametrize("count, capacity", [(0, 2), (1, 2), (2, 4), (3, 8), (4, 8), (5, 16), (1_000_002, 1 << 21)])
def test_table_capacity_keeps_the_load_at_most_half(count, capacity):
    assert rules.table_capacity(count) == capacity


def test_a_name_in_several_lists_and_kinds(tmp_path):
    compiled = compile_texts(
        tmp_path,
        (0, "ads", "||shared.example.com^\n0.0.0.0 shared.example.com\n*.shared.example.com\n"),
        (1, "allow", "@@||shared.example.com^\n"),
        (2, "harmful", "||shared.example.com^\n"),
    )
    assert compiled.counts["entries"] == 5
    with open_table(compiled) as table:
        assert sorted(table._entries(b"shared.example.com")) == sorted(
            [SUBTREE, EXACT, BELOW, 1 | SUBTREE | ALLOW, 2 | SUBTREE]
        )
        assert table._entries(b"other.example.com") == []
        assert table.match(b"shared.example.com", 0b001) == Match(False, 0, "shared.example.com")  # equal rank: lowest flags first, as before
        assert table.match(b"a.shared.example.com", 0b011) == Match(True, 1, "@@||shared.example.com^")
        assert table.match(b"a.shared.example.com", 0b111) == Match(False, 2, "||shared.example.com^")


def test_compile_is_deterministic_and_skipped_when_present(tmp_path):
    first = compile_texts(tmp_path, (0, "ads", "||a.com^\n"), (1, "adult", "b.com\n"))
    stamp = first.bin_path.stat().st_mtime_ns
    second = compile_texts(tmp_path, (0, "ads", "||a.com^\n"), (1, "adult", "b.com\n"))
    assert second.version == first.version
    assert second.bin_path.stat().st_mtime_ns == stamp
    assert second.counts == first.counts
    assert second.reports[100]["rules"] == 1
    changed = compile_texts(tmp_path, (0, "ads", "||a.com^\n"), (1, "adult", "b.com\n", False))
    assert changed.version != first.version


def test_duplicates_collapse_and_held_back_rules_are_reported(tmp_path):
    compiled = compile_texts(tmp_path, (3, "ads", "||a.com^\n||a.com^\na.com\n0.0.0.0 a.com\n||com.vn^\n||gov.vn^\n"))
    assert compiled.counts["entries"] == 2  # a.com subtree and a.com exact
    report = compiled.reports[103]
    assert report["held_back_count"] == 2
    assert {entry["reason"] for entry in report["held_back"]} == {"public_suffix"}
    with open_table(compiled) as table:
        assert table.match(b"x.com.vn", 1 << 3) is None


def test_refused_file_contributes_nothing(tmp_path):
    compiled = compile_texts(tmp_path, (0, "ads", "<html><body>\nads.example.com\n</body></html>\n"))
    assert compiled.reports[100]["refused"] == "html"
    assert compiled.counts["entries"] == 0


def test_missing_list_file_is_reported_not_fatal(tmp_path):
    item = ListInput(0, 7, "Gone", "ads", tmp_path / "nope.txt", True)
    compiled = compile_lists([item], tmp_path / "out")
    assert compiled.reports[7]["refused"] == "missing"
    assert compiled.counts["entries"] == 0


def test_bad_slots_are_rejected(tmp_path):
    path = write_list(tmp_path, "l.txt", "a.com\n")
    with pytest.raises(ValueError):
        compile_lists([ListInput(0, 1, "a", "ads", path, True), ListInput(0, 2, "b", "ads", path, True)], tmp_path)
    with pytest.raises(ValueError):
        compile_lists([ListInput(4096, 1, "a", "ads", path, True)], tmp_path)


def test_prune_keeps_named_versions(tmp_path):
    old = compile_texts(tmp_path, (0, "ads", "a.com\n"))
    new = compile_texts(tmp_path, (0, "ads", "b.com\n"))
    stale = tmp_path / "compiled" / ".rules-x.bin.abc.tmp"
    stale.write_bytes(b"")
    os.utime(stale, (0, 0))
    other = tmp_path / "compiled" / "keep-me.txt"
    other.write_text("x")
    prune(tmp_path / "compiled", {new.version})
    assert not old.bin_path.exists() and not old.meta_path.exists()
    assert new.bin_path.exists() and new.meta_path.exists()
    assert not stale.exists() and other.exists()


# --- the table ----------------------------------------------------------------


def test_match_walks_parents_and_respects_kinds(tmp_path):
    compiled = compile_texts(
        tmp_path,
        (0, "ads", "||ads.example.com^\n0.0.0.0 exact.example.com\n*.below.example.com\n"),
    )
    with open_table(compiled) as table:
        assert table.match(b"ads.example.com", 1) == Match(False, 0, "||ads.example.com^")
        assert table.match(b"x.y.ads.example.com", 1) == Match(False, 0, "||ads.example.com^")
        assert table.match(b"exact.example.com", 1) == Match(False, 0, "exact.example.com")
        assert table.match(b"sub.exact.example.com", 1) is None
        assert table.match(b"below.example.com", 1) is None
        assert table.match(b"a.below.example.com", 1) == Match(False, 0, "*.below.example.com")
        assert table.match(b"example.com", 1) is None
        assert table.match(b"notads.example.com", 1) is None
        assert table.match(b"com", 1) is None


def test_mask_honoured(tmp_path):
    compiled = compile_texts(tmp_path, (0, "ads", "||a.com^\n"), (5, "adult", "||b.com^\n*porn*\n"))
    with open_table(compiled) as table:
        assert table.match(b"a.com", 1 << 0).slot == 0
        assert table.match(b"a.com", 1 << 5) is None
        assert table.match(b"b.com", 1 << 5) == Match(False, 5, "||b.com^")
        assert table.match(b"b.com", 1 << 0) is None
        assert table.match(b"freeporn.net", 1 << 0) is None
        assert table.match(b"freeporn.net", 1 << 5) == Match(False, 5, "*porn*")
        assert table.match(b"a.com", 0) is None


def test_exception_beats_block_and_important_slot_beats_exception(tmp_path):
    compiled = compile_texts(
        tmp_path,
        (0, "ads", "||example.com^\n||harm.example.net^\n"),
        (1, "allow", "@@||good.example.com^\n@@||example.net^\n"),
        (2, "harmful", "||harm.example.net^\n"),
    )
    with open_table(compiled) as table:
        assert table.important_mask == 1 << 2
        assert table.match(b"good.example.com", 0b011) == Match(True, 1, "@@||good.example.com^")
        assert table.match(b"bad.example.com", 0b011) == Match(False, 0, "||example.com^")
        assert table.match(b"harm.example.net", 0b011) == Match(True, 1, "@@||example.net^")
        assert table.match(b"harm.example.net", 0b111) == Match(False, 2, "||harm.example.net^")
        assert table.match(b"x.harm.example.net", 0b110) == Match(False, 2, "||harm.example.net^")


def test_a_table_without_exceptions_stops_at_the_first_rule_found(tmp_path):
    """Counted at compile time: with no exception or $important entry the walk up the
    parents ends at the first match, and finds what the full walk finds."""
    text = "||example.com^\n0.0.0.0 www.example.com\n*.deep.example.com\n||other.test^\n"
    plain = compile_texts(tmp_path, (0, "ads", text), out="plain")
    mixed = compile_texts(tmp_path, (0, "ads", text), (1, "allow", "@@||nothing-here.test^\n"), out="mixed")
    assert plain.counts["overriding"] == 0 and mixed.counts["overriding"] == 1
    names = [b"example.com", b"www.example.com", b"a.www.example.com", b"x.deep.example.com", b"deep.example.com",
             b"a.other.test", b"example.org", b"com"]
    with open_table(plain) as fast, open_table(mixed) as full:
        assert fast._plain and not full._plain
        for name in names:
            assert fast.match(name, 1) == full.match(name, 1), name
        assert fast.match(b"www.example.com", 1) == Match(False, 0, "www.example.com")  # the most specific


def test_important_modifier_beats_exceptions(tmp_path):
    compiled = compile_texts(
        tmp_path,
        (0, "ads", "||tracker.com^$important\n"),
        (1, "allow", "@@||tracker.com^\n"),
    )
    with open_table(compiled) as table:
        assert table.match(b"a.tracker.com", 0b11) == Match(False, 0, "||tracker.com^$important")


def test_patterns_only_when_the_table_has_no_answer(tmp_path):
    compiled = compile_texts(
        tmp_path,
        (0, "ads", "||ads*.example.com^\n/^track[0-9]+\\./\n||ads1.example.com^\n"),
        (1, "allow", "@@||ads2.example.com^\n@@/^track7\\./\n"),
        (2, "harmful", "/^evil[0-9]+\\./\n"),
    )
    with open_table(compiled) as table:
        assert table.match(b"ads1.example.com", 0b1) == Match(False, 0, "||ads1.example.com^")
        assert table.match(b"ads9.example.com", 0b1) == Match(False, 0, "||ads*.example.com^")
        assert table.match(b"ads2.example.com", 0b11) == Match(True, 1, "@@||ads2.example.com^")
        assert table.match(b"track3.example.com", 0b11) == Match(False, 0, "/^track[0-9]+\\./")
        assert table.match(b"track7.example.com", 0b11) == Match(True, 1, "@@/^track7\\./")
        assert table.match(b"track7.example.com", 0b01) == Match(False, 0, "/^track[0-9]+\\./")
        assert table.match(b"evil1.example.com", 0b111) == Match(False, 2, "/^evil[0-9]+\\./")
        assert table.match(b"evil1.example.com", 0b011) is None


def test_hub_patterns_beat_other_lists_exceptions(tmp_path):
    compiled = compile_texts(tmp_path, (0, "allow", "@@||example.com^\n"), (1, "harmful", "||bad*.example.com^\n"))
    with open_table(compiled) as table:
        assert table.match(b"bad1.example.com", 0b11) == Match(False, 1, "||bad*.example.com^")
        assert table.match(b"good.example.com", 0b11) == Match(True, 0, "@@||example.com^")


def test_open_rejects_damaged_files(tmp_path):
    compiled = compile_texts(tmp_path, (0, "ads", "a.com\nb.com\n"))
    good = compiled.bin_path.read_bytes()
    damaged = tmp_path / "damaged.bin"
    count, capacity, keys, flags = read_slots(good)
    full = good[:16] + b"".join(((key or 7).to_bytes(8, "little") for key in keys)) + good[16 + 8 * capacity :]
    bigger = good[:12] + (2 * capacity).to_bytes(4, "little") + good[16:] + b"\x00" * 10 * capacity
    for data in (
        b"",
        good[:10],
        b"XXXXXXXX" + good[8:],
        good[:-1],
        good + b"\x00\x00",
        good[:8] + b"\x09" + good[9:],
        bigger,  # consistent size, but not the documented capacity
        full,  # no empty slot: a lookup would never end
    ):
        damaged.write_bytes(data)
        with pytest.raises(ValueError):
            RuleTable.open(damaged, compiled.meta_path)
    version_1 = b"CPHNF\x01\x00\x00" + (2).to_bytes(4, "little") + b"\x00" * 4 + b"\x01" * 20
    damaged.write_bytes(version_1)
    with pytest.raises(ValueError, match="format-1"):
        RuleTable.open(damaged, compiled.meta_path)
    bad_meta = tmp_path / "bad.json"
    bad_meta.write_text("{not json")
    with pytest.raises(ValueError):
        RuleTable.open(compiled.bin_path, bad_meta)
    meta = json.loads(compiled.meta_path.read_text())
    meta["counts"]["entries"] = 5
    bad_meta.write_text(json.dumps(meta))
    with pytest.raises(ValueError):
        RuleTable.open(compiled.bin_path, bad_meta)


def test_empty_table_and_close(tmp_path):
    empty = RuleTable.empty()
    assert empty.match(b"a.com", ~0) is None and len(empty) == 0
    compiled = compile_texts(tmp_path, (0, "ads", "! nothing\n"))
    table = open_table(compiled)
    assert table.match(b"a.com", 1) is None
    table.close()
    table.close()


def test_rules_module_imports_no_django():
    import subprocess

    code = "import sys, cophub.netfilter.rules; print(any(m.startswith(('django', 'numpy')) for m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(Path(rules.__file__).parents[2])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "False"


# --- small rule sets ----------------------------------------------------------


def test_small_rules():
    small = SmallRules.from_lines(["||tiktok.com^", "exact.org", "*.below.net", "/^ads[0-9]\\./", "@@||ok.vn^"])
    assert small.match(b"tiktok.com") == "||tiktok.com^"
    assert small.match(b"v16.m.tiktok.com") == "||tiktok.com^"
    assert small.match(b"exact.org") == "||exact.org^"
    assert small.match(b"a.below.net") == "*.below.net"
    assert small.match(b"below.net") is None
    assert small.match(b"ads1.example.com") == "/^ads[0-9]\\./"
    assert small.match(b"a.ok.vn") == "@@||ok.vn^"
    assert small.match(b"other.com") is None
    assert not SmallRules() and len(small) == 5


def test_small_rules_exact_list():
    small = SmallRules(parse_rules(["0.0.0.0 a.com", "|b.com^"]))
    assert small.match(b"a.com") == "a.com"
    assert small.match(b"x.a.com") is None
    assert small.match(b"b.com") == "b.com"


# --- a million names ----------------------------------------------------------


@pytest.mark.slow
def test_a_million_names_compile_open_and_match(tmp_path):
    lines = [f"0.0.0.0 host{i}.tracker{i % 997}.example{i % 13}.com" for i in range(1_000_000)]
    lines += ["||subtree.example.org^", "@@||allowed.example0.com^"]
    path = write_list(tmp_path, "big.txt", "\n".join(lines) + "\n")
    del lines
    started = time.perf_counter()
    compiled = compile_lists([ListInput(0, 1, "Big", "ads", path, True)], tmp_path / "out")
    compile_seconds = time.perf_counter() - started
    assert compiled.counts["entries"] == 1_000_002
    started = time.perf_counter()
    table = RuleTable.open(compiled.bin_path, compiled.meta_path)
    open_seconds = time.perf_counter() - started
    assert table.match(b"host12345.tracker{}.example{}.com".replace(b"{}", b"%d") % (12345 % 997, 12345 % 13), 1)
    assert table.match(b"host5.tracker5.example5.com", 1) == Match(False, 0, "host5.tracker5.example5.com")
    assert table.match(b"sub.host5.tracker5.example5.com", 1) is None
    assert table.match(b"a.b.subtree.example.org", 1) == Match(False, 0, "||subtree.example.org^")
    assert table.match(b"x.allowed.example0.com", 1) == Match(True, 0, "@@||allowed.example0.com^")
    assert table.match(b"host5.tracker5.example5.com", 2) is None

    probes = [b"www.host%d.tracker%d.example%d.com" % (i, i % 997, i % 13) for i in range(0, 1_000_000, 50)]
    costs = []
    for probe in probes:
        started = time.perf_counter()
        table.match(probe, 1)
        costs.append(time.perf_counter() - started)
    median_us = statistics.median(costs) * 1e6
    table.close()
    print(f"\ncompile {compile_seconds:.2f} s, open {open_seconds * 1e3:.2f} ms, median match {median_us:.2f} us (5 labels)")
    assert compile_seconds < 20
    assert open_seconds < 1
    assert median_us < 200


def test_fast_path_agrees_with_the_full_parser():
    data = (
        b"0.0.0.0 ADS.Example.COM  \n"
        b"  ||Track.Example.NET^\n"
        b"Plain.Example.ORG\n"
        b"127.0.0.1 localhost.localdomain\n"
        b"0.0.0.0 1.2.3.4\n"
        b"0.0.0.0 " + b"a" * 63 + (b"." + b"b" * 63) * 3 + b"\n"
    )
    parsed = parse_list(data)
    assert names(parsed, EXACT) == [b"ads.example.com"]
    assert names(parsed, SUBTREE) == [b"plain.example.org", b"track.example.net"]
    assert parsed.report["syntax"] == {"hosts": 1, "domain": 1, "adblock": 1, "wildcard": 0, "regex": 0}
    assert parsed.report["ignored"] == 1
    assert parsed.report["invalid"] == 2
    via_admin = parse_rules(data.decode().splitlines())
    assert via_admin.names == parsed.names
