"""Block lists: parse, check, compile to a hash table of name keys, and match names.

The contract is docs/netfilter.md ("Compiled rules" and "Rule syntax and how
rules combine"). No Django here: the resolver imports this module, and it
must stay lean. numpy and the Public Suffix List are only imported by the
functions that compile and check lists (the worker's side).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import mmap
import os
import random
import re
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple
from urllib.parse import urlsplit

from xxhash import xxh3_64_intdigest

from . import snapshot

# --- flags of a table entry (docs/netfilter.md, "Compiled rules") ---------

SLOT_MASK = 0x0FFF
MAX_SLOT = SLOT_MASK
SUBTREE = 1 << 12  # also covers the names under the name
ALLOW = 1 << 13  # an exception (@@)
BELOW = 1 << 14  # only the names strictly under the name (`*.example.com`)
IMPORTANT = 1 << 15  # `$important`: beats exceptions of other rules
EXACT = 0

# Format 2: an open-addressing hash table of XXH3 keys (format 1 was sorted
# BLAKE2b keys searched by bisection; it is refused, the lists are compiled again).
TABLE_FORMAT = 2
MAGIC = b"CPHNF\x02\x00\x00"
MAGIC_V1 = b"CPHNF\x01\x00\x00"
HEADER_SIZE = 16
# Bumped whenever parsing or compiling changes what a list compiles to, so a
# new release never reuses a table compiled by the old code. The version of a
# compiled table also hashes TABLE_FORMAT.
COMPILER_REVISION = 2

MAX_REGEX_LENGTH = 256
MAX_NAME_LENGTH = 253
MAX_EXAMPLES = 20
MAX_HELD_BACK_LISTED = 500

BUILTIN_PROTECTED = ("gov.vn", "moet.gov.vn", "chinhphu.vn")

# Names every hosts file carries for the machine itself: not rules.
HOSTS_LOCAL_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0", "ip6-localhost", "ip6-loopback"}
)
COMMON_HOSTS_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1"})
# `$all` and `$document` mean "block the whole site", which is what a DNS block does.
SUPPORTED_MODIFIERS = frozenset({"important", "all", "document", "doc"})

_NAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")
# The three shapes that make up nearly every line of a big list, recognised
# in one C call each: `0.0.0.0 name`, `||name^`, `name`. Anything else (and
# anything these let through that needs a second look) takes the full path.
_DOTTED_NAME = r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})+"
_COMMON_LINE = re.compile(
    rf"[ \t]*(?:(?:0\.0\.0\.0|127\.0\.0\.1)[ \t]+({_DOTTED_NAME})|\|\|({_DOTTED_NAME})\^|({_DOTTED_NAME}))[ \t]*",
    re.IGNORECASE | re.ASCII,
)
_WILDCARD_BODY = re.compile(r"[a-z0-9_.*-]+")
_COSMETIC = re.compile(r"^[^\s#]*#[@$?%]{0,2}#")
_INLINE_COMMENT = re.compile(r"\s#.*$")
# `(a+)+`, `(a*)*`, `(a|aa){2,}`: the shapes that make a backtracking regex explode.
_NESTED_QUANTIFIER = re.compile(r"[+*}?]\)[+*{]")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")
_URL_CHARS = frozenset("/:?=&^")


# --- names ------------------------------------------------------------------


def name_key(name: bytes) -> int:
    """The 64-bit key of a normalized name, as stored in the `.bin` table: XXH3-64, 0 made 1 (0 marks an empty slot)."""
    return xxh3_64_intdigest(name) or 1


def table_capacity(count: int) -> int:
    """The slots of a table of `count` entries: the next power of two >= 2 x count, at least 2 (load <= 0.5)."""
    return 1 << max(1, (2 * count - 1).bit_length())


def normalize_name(text: str) -> bytes | None:
    """Lower-case ASCII (IDNA A-labels) without the final dot, or None when not a valid name."""
    return _normalize_lowered(text.strip().lower())


def _normalize_lowered(name: str) -> bytes | None:
    """normalize_name for text already stripped and lower-cased (the parser's hot path)."""
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        return None
    # An IPv4 address looks like a name, but no top-level domain is numeric.
    if name[-1].isdigit() and name.rpartition(".")[2].isdigit():
        return None
    return name.encode("ascii")


def rule_text(name: bytes | str, kind: int) -> str:
    """The rule as a list would write it, for the query log and the console."""
    if isinstance(name, bytes):
        name = name.decode("ascii")
    if kind & BELOW:
        text = f"*.{name}"
    elif kind & SUBTREE:
        text = f"||{name}^"
    else:
        text = name
    if kind & ALLOW:
        text = "@@" + text
    if kind & IMPORTANT:
        text += "$important"
    return text


# --- parsing ------------------------------------------------------------------

SYNTAXES = ("hosts", "domain", "adblock", "wildcard", "regex")
RULE_KINDS = tuple(
    kind | allow | important
    for kind in (EXACT, SUBTREE, BELOW)
    for allow in (0, ALLOW)
    for important in (0, IMPORTANT)
)


class Pattern(NamedTuple):
    """A wildcard or `/regex/` rule: `regex` is searched in the name."""

    kind: int  # ALLOW and IMPORTANT bits only
    regex: str
    rule: str


@dataclass
class ParsedList:
    """The rules of one list, kept as plain lists of names per kind (compact: 1M names ~ 60 MB)."""

    names: dict[int, list[bytes]] = field(default_factory=lambda: {kind: [] for kind in RULE_KINDS})
    patterns: list[Pattern] = field(default_factory=list)
    report: dict = field(default_factory=dict)

    def __post_init__(self):
        defaults = {
            "total_lines": 0,
            "rules": 0,
            "syntax": dict.fromkeys(SYNTAXES, 0),
            "comments": 0,
            "ignored": 0,
            "skipped": 0,
            "skipped_examples": [],
            "invalid": 0,
            "invalid_examples": [],
            "html": False,
            "truncated": False,
        }
        for key, value in defaults.items():
            self.report.setdefault(key, value)

    def rule_count(self) -> int:
        return sum(len(names) for names in self.names.values()) + len(self.patterns)

    def iter_rules(self) -> Iterable[tuple[int, bytes]]:
        for kind, names in self.names.items():
            for name in names:
                yield kind, name


def _is_address(token: str) -> bool:
    if token in COMMON_HOSTS_ADDRESSES:
        return True
    if not (token[0].isdigit() or ":" in token):
        return False
    try:
        ipaddress.ip_address(token.partition("%")[0])
    except ValueError:
        return False
    return True


def _wildcard_regex(body: str, *, anchor: str | None, end: bool) -> str:
    """Adblock wildcard to a regex on the whole name: `*` is any characters, dots included."""
    if anchor is None:
        # An unanchored `*` at either end adds nothing to a search, and costs backtracking.
        body = body.strip("*") if not end else body.lstrip("*")
    middle = ".*".join(re.escape(part) for part in body.split("*"))
    if anchor == "domain":
        # `||rest` is the name `rest` or a name ending in `.rest`.
        start = r"^(?:.*\.)?" if not body.startswith("*") else "^"
    elif anchor == "start":
        start = "^"
    else:
        start = ""
    return start + middle + ("$" if end else "")


def _regex_problem(body: str) -> str | None:
    if len(body) > MAX_REGEX_LENGTH:
        return "regex too long"
    if _NESTED_QUANTIFIER.search(body):
        return "nested quantifier"
    if _BACKREFERENCE.search(body):
        return "back-reference"
    try:
        re.compile(body.encode("utf-8"))
    except re.error as error:
        return f"bad regex: {error}"
    return None


class _ListParser:
    """Reads one line at a time into a ParsedList; one short method per syntax."""

    def __init__(self, parsed: ParsedList, match_subdomains: bool):
        self.parsed = parsed
        self.report = parsed.report
        self.syntax = parsed.report["syntax"]
        self.names = parsed.names
        self.exact = parsed.names[EXACT]
        self.match_subdomains = match_subdomains

    # Outcomes -------------------------------------------------------------

    def _add(self, kind: int, name: bytes, syntax: str) -> None:
        self.names[kind].append(name)
        self.syntax[syntax] += 1

    def _add_pattern(self, kind: int, regex: str, rule: str, syntax: str) -> None:
        self.parsed.patterns.append(Pattern(kind, regex, rule))
        self.syntax[syntax] += 1

    def _note(self, counter: str, lineno: int, line: str, reason: str) -> None:
        self.report[counter] += 1
        examples = self.report[f"{counter}_examples"]
        if len(examples) < MAX_EXAMPLES:
            examples.append({"line": lineno, "text": line[:200], "reason": reason})

    def skip(self, lineno, line, reason):
        self._note("skipped", lineno, line, reason)

    def invalid(self, lineno, line, reason):
        self._note("invalid", lineno, line, reason)

    # Dispatch -------------------------------------------------------------

    def feed(self, raw: str, lineno: int) -> None:
        line = raw.strip()
        if not line:
            return
        first = line[0]
        if first == "!" or (first == "[" and line.endswith("]")):
            self.report["comments"] += 1
            return
        if first == "#":
            self.report["comments"] += 1
            return
        if "#" in line:
            if _COSMETIC.match(line):
                self.skip(lineno, line, "cosmetic rule")
                return
            line = _INLINE_COMMENT.sub("", line).rstrip()
        if " " in line or "\t" in line:
            self.feed_hosts(line, lineno)
        else:
            self.feed_rule(line, lineno)

    def feed_hosts(self, line: str, lineno: int) -> None:
        tokens = line.lower().split()
        if not _is_address(tokens[0]):
            self.invalid(lineno, line, "not a rule")
            return
        exact = self.exact
        for token in tokens[1:]:
            name = _normalize_lowered(token)
            if name is not None and token not in HOSTS_LOCAL_NAMES and not token.startswith("ip6-"):
                exact.append(name)
                self.syntax["hosts"] += 1
            elif token in HOSTS_LOCAL_NAMES or token.startswith("ip6-"):
                self.report["ignored"] += 1
            else:
                self.invalid(lineno, line, f"invalid name {token[:80]!r}")

    def feed_rule(self, line: str, lineno: int) -> None:
        body, kind = line, 0
        if body.startswith("@@"):
            body, kind = body[2:], ALLOW
        if body.startswith("/"):
            self.feed_regex(body, kind, line, lineno)
            return
        if "$" in body:
            body, _, modifiers = body.rpartition("$")
            modifier_kind = self.modifiers(modifiers, line, lineno)
            if modifier_kind is None:
                return
            kind |= modifier_kind
        self.feed_adblock(body, kind, line, lineno)

    def modifiers(self, text: str, line: str, lineno: int) -> int | None:
        """The IMPORTANT bit, 0, or None when a modifier cannot be honoured by DNS."""
        kind = 0
        for modifier in text.lower().split(","):
            modifier = modifier.strip()
            if modifier not in SUPPORTED_MODIFIERS:
                self.skip(lineno, line, f"modifier ${modifier.partition('=')[0]}")
                return None
            if modifier == "important":
                kind |= IMPORTANT
        return kind

    def feed_regex(self, body: str, kind: int, line: str, lineno: int) -> None:
        if len(body) > 2 and body.endswith("/"):
            regex = body[1:-1]
        else:
            cut = body.rfind("/$")
            if cut <= 0:
                self.skip(lineno, line, "path rule")
                return
            modifier_kind = self.modifiers(body[cut + 2 :], line, lineno)
            if modifier_kind is None:
                return
            regex, kind = body[1:cut], kind | modifier_kind
        problem = _regex_problem(regex)
        if problem:
            self.invalid(lineno, line, problem)
            return
        self._add_pattern(kind, regex, line, "regex")

    def feed_adblock(self, body: str, kind: int, line: str, lineno: int) -> None:
        anchor = None
        if body.startswith("||"):
            anchor, body = "domain", body[2:]
        elif body.startswith("|"):
            anchor, body = "start", body[1:]
        end = False
        if body.endswith("^|"):
            body, end = body[:-2], True
        elif body.endswith("^") or (anchor and body.endswith("|")):
            body, end = body[:-1], True
        if not body:
            self.invalid(lineno, line, "empty rule")
            return
        if not _URL_CHARS.isdisjoint(body):
            self.skip(lineno, line, "path or URL rule")
            return
        if "*" in body:
            self.feed_wildcard(body, kind, anchor, end, line, lineno)
            return
        name = normalize_name(body)
        if name is None:
            self.invalid(lineno, line, "invalid name")
            return
        if anchor is None and not end and b"." not in name:
            # A lone word is more likely prose (an error page) than a top-level domain.
            self.invalid(lineno, line, "not a rule")
            return
        self.add_named(name, kind, anchor, end)

    def add_named(self, name: bytes, kind: int, anchor: str | None, end: bool) -> None:
        if anchor == "domain":
            self._add(kind | SUBTREE, name, "adblock")
        elif anchor == "start":
            self._add(kind, name, "adblock")
        elif end:
            self._add(kind | SUBTREE, name, "adblock")
        else:
            self._add(kind | (SUBTREE if self.match_subdomains else EXACT), name, "domain")

    def feed_wildcard(self, body: str, kind: int, anchor: str | None, end: bool, line: str, lineno: int) -> None:
        body = body.lower()
        if anchor != "start" and body.startswith("*.") and "*" not in body[2:]:
            name = normalize_name(body[2:])
            if name is not None:
                self._add(kind | BELOW, name, "wildcard")
                return
        if not _WILDCARD_BODY.fullmatch(body):
            self.invalid(lineno, line, "invalid wildcard")
            return
        self._add_pattern(kind, _wildcard_regex(body, anchor=anchor, end=end), line, "wildcard")


def _looks_like_html(head: bytes) -> bool:
    head = head.lower()
    return b"<html" in head or b"<!doctype html" in head or b"<head" in head or b"<body" in head


def parse_list(data: bytes, *, match_subdomains: bool = True, max_lines: int = 5_000_000) -> ParsedList:
    """Parse a downloaded list (hosts, plain domains, adblock/AdGuard syntax)."""
    parsed = ParsedList()
    parsed.report["html"] = _looks_like_html(data[:1024])
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    parser = _ListParser(parsed, match_subdomains)
    lineno = _parse_lines(parser, text.splitlines(), max_lines)
    parsed.report["total_lines"] = lineno
    parsed.report["rules"] = parsed.rule_count()
    return parsed


def _parse_lines(parser: _ListParser, lines: list[str], max_lines: int) -> int:
    """Feed every line to the parser, common shapes through a fast path; return the lines read."""
    parsed = parser.parsed
    plain_kind = SUBTREE if parser.match_subdomains else EXACT
    targets = (None, parsed.names[EXACT], parsed.names[SUBTREE], parsed.names[plain_kind])
    counted = [0, 0, 0, 0]
    common_line, feed = _COMMON_LINE.fullmatch, parser.feed
    lineno = 0
    for lineno, line in enumerate(lines, 1):
        if lineno > max_lines:
            parsed.report["truncated"] = True
            lineno -= 1
            break
        found = common_line(line)
        if found is not None:
            shape = found.lastindex
            name = found[shape].lower()
            # Local names, IP addresses and over-long names need the full path's care.
            if len(name) <= MAX_NAME_LENGTH and not name[-1].isdigit() and name not in HOSTS_LOCAL_NAMES:
                targets[shape].append(name.encode("ascii"))
                counted[shape] += 1
                continue
        feed(line, lineno)
    syntax = parsed.report["syntax"]
    syntax["hosts"] += counted[1]
    syntax["adblock"] += counted[2]
    syntax["domain"] += counted[3]
    return lineno


def parse_rules(lines: Iterable[str], *, match_subdomains: bool = True) -> ParsedList:
    """Parse rules typed by an admin (a group's allow/deny box, a service's domains)."""
    parsed = ParsedList()
    parser = _ListParser(parsed, match_subdomains)
    lineno = 0
    for lineno, line in enumerate(lines, 1):
        parser.feed(line.lstrip("\ufeff"), lineno)
    parsed.report["total_lines"] = lineno
    parsed.report["rules"] = parsed.rule_count()
    return parsed


# --- checks -----------------------------------------------------------------


class _PublicSuffixes:
    """ICANN public suffixes (private ones like github.io may be blocked on purpose)."""

    def __init__(self):
        from publicsuffixlist import PSLFILE, PublicSuffixList, encode_idn

        self.psl = PublicSuffixList(only_icann=True, accept_unknown=True)
        rules: set[bytes] = set()
        in_icann = False
        with open(PSLFILE, encoding="utf-8") as source:
            for line in source:
                line = line.strip()
                if line == "// ===BEGIN ICANN DOMAINS===":
                    in_icann = True
                elif line == "// ===END ICANN DOMAINS===":
                    in_icann = False
                elif in_icann and line and not line.startswith("//"):
                    rule = line.split()[0].lower().lstrip("!")
                    rules.add(encode_idn(rule).encode("ascii"))
        # Cheap tests first, so a million names cost a set probe and an
        # `endswith` each, not a million PSL walks; the PSL confirms the few
        # candidates (`foo.ck` under the wildcard rule `*.ck`).
        wildcard_parents = {rule[2:] for rule in rules if rule.startswith(b"*.")}
        self.candidates = frozenset(rules | wildcard_parents)
        self.under_wildcard = tuple(b"." + parent for parent in wildcard_parents)

    def maybe_public(self, name: bytes) -> bool:
        return b"." not in name or name in self.candidates or name.endswith(self.under_wildcard)

    def is_public(self, name: bytes) -> bool:
        if b"." not in name:
            return True  # a top-level domain, known or not
        return self.maybe_public(name) and self.psl.is_public(name.decode("ascii"))


_public_suffixes: _PublicSuffixes | None = None


def public_suffixes() -> _PublicSuffixes:
    global _public_suffixes
    if _public_suffixes is None:
        _public_suffixes = _PublicSuffixes()
    return _public_suffixes


def is_public_suffix(name: str | bytes) -> bool:
    if isinstance(name, str):
        name = normalize_name(name) or b""
    return bool(name) and public_suffixes().is_public(name)


def _random_label(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(7, 11)))


def _broadness_samples() -> tuple[list[bytes], dict[str, list[bytes]]]:
    """The suffixes themselves, and a few random names under each (fixed seed: stable answers)."""
    rng = random.Random(6)
    suffixes = ["vn", "com.vn", "edu.vn", "gov.vn", "com", "net", "org"]
    children = {}
    for suffix in suffixes:
        children[suffix] = [
            f"{_random_label(rng)}.{suffix}".encode(),
            f"{_random_label(rng)}.{_random_label(rng)}.{suffix}".encode(),
            f"{_random_label(rng)}-{_random_label(rng)}.{suffix}".encode(),
        ]
    return [suffix.encode() for suffix in suffixes], children


_BROADNESS_SAMPLES = _broadness_samples()


def _pattern_too_broad(regex: re.Pattern) -> bool:
    bare, children = _BROADNESS_SAMPLES
    if any(regex.search(name) for name in bare):
        return True
    return any(sum(1 for name in names if regex.search(name)) >= 2 for names in children.values())


def _protected_sets(protected: Iterable[str]) -> tuple[set[bytes], set[bytes]]:
    """The protected names, and every name above one of them."""
    names: set[bytes] = set()
    for text in (*BUILTIN_PROTECTED, *protected):
        if "://" in text:
            text = urlsplit(text).hostname or ""
        name = normalize_name(text)
        if name:
            names.add(name)
    ancestors: set[bytes] = set()
    for name in names:
        labels = name.split(b".")
        for start in range(1, len(labels)):
            ancestors.add(b".".join(labels[start:]))
    return names, ancestors


def _hold_reason(name: bytes, kind: int, suffixes: _PublicSuffixes, names: set[bytes], ancestors: set[bytes]):
    if suffixes.is_public(name):
        # `*.vn` leaves `vn` alone but takes every name under it.
        return "too_broad_pattern" if kind & BELOW else "public_suffix"
    covers_name = not kind & BELOW and name in names
    covers_below = kind & (SUBTREE | BELOW) and name in ancestors
    if covers_name or covers_below:
        return "protected"
    return None


def _suspects(rule_names: list[bytes], suffixes: _PublicSuffixes, protected_related: set[bytes]) -> list[bytes]:
    """The few names worth a closer look: a C-speed pass over a million names."""
    candidates, under_wildcard = suffixes.candidates | protected_related, suffixes.under_wildcard
    return [name for name in rule_names if b"." not in name or name in candidates or name.endswith(under_wildcard)]


def check_list(parsed: ParsedList, *, protected: Iterable[str] = ()) -> list[dict]:
    """Remove, in place, the block rules that must not be applied; return them with a reason.

    Reasons: "public_suffix" (a rule on `vn`, `com.vn`…), "protected" (it would
    block the hub or a government name), "too_broad_pattern" (a wildcard or
    regex that matches ordinary names under a public suffix). Exceptions are
    never held back: they can only let more through.
    """
    suffixes = public_suffixes()
    names, ancestors = _protected_sets(protected)
    held: list[dict] = []
    for kind, rule_names in parsed.names.items():
        if kind & ALLOW or not rule_names:
            continue
        suspects = _suspects(rule_names, suffixes, names | ancestors)
        if not suspects:
            continue
        dropped = set()
        for name in suspects:
            reason = _hold_reason(name, kind, suffixes, names, ancestors)
            if reason is not None and name not in dropped:
                dropped.add(name)
                held.append({"rule": rule_text(name, kind), "reason": reason})
        if dropped:
            rule_names[:] = [name for name in rule_names if name not in dropped]
    held.extend(_hold_patterns(parsed, names))
    parsed.report["rules"] = parsed.rule_count()
    return held


def _hold_patterns(parsed: ParsedList, protected_names: set[bytes]) -> list[dict]:
    held, kept = [], []
    for pattern in parsed.patterns:
        reason = None
        if not pattern.kind & ALLOW:
            regex = re.compile(pattern.regex.encode("utf-8"))
            if _pattern_too_broad(regex):
                reason = "too_broad_pattern"
            elif any(regex.search(name) for name in protected_names):
                reason = "protected"
        if reason:
            held.append({"rule": pattern.rule, "reason": reason})
        else:
            kept.append(pattern)
    parsed.patterns[:] = kept
    return held


MIN_RULES_FOR_A_NOISY_LIST = 100


def refuse_reason(parsed: ParsedList) -> str | None:
    """"html", "not_a_list" or "empty" when the file must not replace the list in use."""
    report = parsed.report
    if report.get("html"):
        return "html"
    rules = report["syntax"]
    rule_count = sum(rules.values())
    bad = report["invalid"] + report["skipped"]
    meaningful = rule_count + bad + report["ignored"]
    if rule_count == 0:
        return "not_a_list" if report["invalid"] else "empty"
    if bad * 2 > meaningful and rule_count < MIN_RULES_FOR_A_NOISY_LIST:
        return "not_a_list"
    return None


# --- compiling ----------------------------------------------------------------


@dataclass(frozen=True)
class ListInput:
    slot: int
    list_id: int
    name: str
    category: str
    path: Path
    match_subdomains: bool
    protected: tuple[str, ...] = ()


@dataclass
class Compiled:
    version: str
    bin_path: Path
    meta_path: Path
    counts: dict
    reports: dict  # list_id -> report, with "held_back", "held_back_count" and "refused"


def _file_digest(path: Path) -> tuple[str, bytes | None]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return "missing", None
    return hashlib.sha256(data).hexdigest(), data


def _version(inputs: list[ListInput], digests: dict[int, str]) -> str:
    described = [
        [item.slot, item.list_id, item.name, item.category, item.match_subdomains, sorted(item.protected), digests[item.slot]]
        for item in sorted(inputs, key=lambda item: item.slot)
    ]
    text = json.dumps([TABLE_FORMAT, COMPILER_REVISION, described], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _validate_inputs(inputs: list[ListInput]) -> None:
    slots = [item.slot for item in inputs]
    if len(set(slots)) != len(slots):
        raise ValueError("two lists share a slot")
    if any(not 0 <= slot <= MAX_SLOT for slot in slots):
        raise ValueError(f"a slot must be between 0 and {MAX_SLOT}")


def _read_list(item: ListInput, data: bytes | None) -> tuple[ParsedList, dict]:
    if data is None:
        parsed = ParsedList()
        refused = "missing"
    else:
        parsed = parse_list(data, match_subdomains=item.match_subdomains)
        refused = refuse_reason(parsed)
    held = check_list(parsed, protected=item.protected)
    if refused:
        parsed = ParsedList(report=parsed.report)  # a refused file contributes nothing
    report = dict(parsed.report)
    report.update(refused=refused, held_back=held[:MAX_HELD_BACK_LISTED], held_back_count=len(held))
    report["rules"] = parsed.rule_count()
    return parsed, report


def _hash_names(names: list[bytes]):
    import numpy as np

    keys = np.fromiter(map(xxh3_64_intdigest, names), dtype=np.uint64, count=len(names))
    keys[keys == 0] = 1  # as name_key: 0 marks an empty slot
    return keys


def _table_arrays(parsed_by_slot: dict[int, ParsedList]):
    """The hash table of every name rule: (entry count, keys by slot, flags by slot)."""
    import numpy as np

    key_parts, flag_parts = [np.zeros(0, dtype=np.uint64)], [np.zeros(0, dtype=np.uint16)]
    for slot, parsed in parsed_by_slot.items():
        for kind, names in parsed.names.items():
            if names:
                key_parts.append(_hash_names(names))
                flag_parts.append(np.full(len(names), slot | kind, dtype=np.uint16))
    return _hash_table(np.concatenate(key_parts), np.concatenate(flag_parts))


def _hash_table(keys, flags):
    """(entry count, keys by slot, flags by slot): open addressing, linear probing from `key & (capacity - 1)`.

    Duplicates (same key and flags) are stored once. Built without a loop per
    entry: entries sorted by home slot land at `max(home, previous position
    + 1)`, a running maximum; only the few that run past the last slot are
    placed one by one, in the first free slots from slot 0 (where the probe
    sequence wraps round). Entries with the same key come out side by side.
    """
    import numpy as np

    capacity = table_capacity(len(keys))
    bits = capacity.bit_length() - 1
    # Sorted by home slot, then key, then flags: the key rotated so that its
    # home bits lead sorts like (home, key), 3x faster than a 3-key lexsort.
    # Same key, same home: duplicates and a name's several entries are neighbours.
    rotated = (keys << np.uint64(64 - bits)) | (keys >> np.uint64(bits))
    order = np.lexsort((flags, rotated))
    del rotated
    keys, flags = keys[order], flags[order]
    home = (keys & np.uint64(capacity - 1)).astype(np.int64)
    if len(keys):
        distinct = np.ones(len(keys), dtype=bool)
        distinct[1:] = (keys[1:] != keys[:-1]) | (flags[1:] != flags[:-1])
        keys, flags, home = keys[distinct], flags[distinct], home[distinct]
    count = len(keys)
    if table_capacity(count) != capacity:  # duplicates collapsed: a smaller table does
        capacity = table_capacity(count)
        home = (keys & np.uint64(capacity - 1)).astype(np.int64)
        order = np.argsort(home, kind="stable")
        keys, flags, home = keys[order], flags[order], home[order]
    table_keys = np.zeros(capacity, dtype=np.uint64)
    table_flags = np.zeros(capacity, dtype=np.uint16)
    index = np.arange(count, dtype=np.int64)
    position = np.maximum.accumulate(home - index) + index if count else index
    inside = position < capacity
    table_keys[position[inside]] = keys[inside]
    table_flags[position[inside]] = flags[inside]
    free = 0
    for key, flag in zip(keys[~inside].tolist(), flags[~inside].tolist()):
        while table_keys[free]:
            free += 1
        table_keys[free], table_flags[free] = key, flag
    return count, table_keys, table_flags


def _pattern_entries(parsed_by_slot: dict[int, ParsedList]) -> list[dict]:
    entries, seen = [], set()
    for slot, parsed in parsed_by_slot.items():
        for pattern in parsed.patterns:
            identity = (slot, pattern.kind, pattern.regex)
            if identity in seen:
                continue
            seen.add(identity)
            entries.append(
                {
                    "slot": slot,
                    "allow": bool(pattern.kind & ALLOW),
                    "important": bool(pattern.kind & IMPORTANT),
                    "regex": pattern.regex,
                    "rule": pattern.rule,
                }
            )
    return entries


def _write_atomic(path: Path, write) -> None:
    """Readers see the old file or the new one, never a part (temporary files end in .tmp for prune)."""
    snapshot.write_with(path, write, suffix=".tmp")


def _write_bin(path: Path, count: int, keys, flags) -> None:
    header = MAGIC + count.to_bytes(4, "little") + len(keys).to_bytes(4, "little")

    def write(handle):
        handle.write(header)
        handle.write(keys.astype("<u8", copy=False).tobytes())
        handle.write(flags.astype("<u2", copy=False).tobytes())

    _write_atomic(path, write)


def table_paths(out_dir: Path, version: str) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    return out_dir / f"rules-{version}.bin", out_dir / f"rules-{version}.json"


def compile_in_background(inputs: list[ListInput], out_dir: Path) -> Compiled:
    """compile_lists in a thread of lower CPU priority (Linux nice is per thread).

    On a two-core school server the resolver must keep answering while a
    million-name list compiles beside it: the compile yields the CPU to it.
    """
    import threading

    outcome: dict = {}

    def work() -> None:
        try:
            os.nice(10)
        except OSError:
            pass
        try:
            outcome["compiled"] = compile_lists(inputs, out_dir)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="compile-lists")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["compiled"]


def compile_lists(inputs: list[ListInput], out_dir: Path) -> Compiled:
    """Compile the enabled lists into `rules-<version>.bin/.json` (skipped when that version exists)."""
    _validate_inputs(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {item.slot: _file_digest(item.path) for item in inputs}
    version = _version(inputs, {slot: digest for slot, (digest, _) in files.items()})
    bin_path, meta_path = table_paths(out_dir, version)
    if bin_path.exists() and meta_path.exists():
        existing = _load_meta(meta_path)
        if existing is not None:
            return _compiled_from_meta(version, bin_path, meta_path, existing)

    parsed_by_slot, reports = {}, {}
    for item in sorted(inputs, key=lambda item: item.slot):
        parsed, reports[item.list_id] = _read_list(item, files[item.slot][1])
        files[item.slot] = (files[item.slot][0], None)  # let the raw bytes go early
        parsed_by_slot[item.slot] = parsed
    # Exceptions and `$important` rules: without any, the first rule found for a name decides it.
    overriding = sum(len(names) for parsed in parsed_by_slot.values() for kind, names in parsed.names.items()
                     if kind & (ALLOW | IMPORTANT))
    entries, keys, flags = _table_arrays(parsed_by_slot)
    patterns = _pattern_entries(parsed_by_slot)
    del parsed_by_slot
    counts = {
        "entries": int(entries),
        "overriding": overriding,
        "patterns": len(patterns),
        "lists": {str(list_id): report["rules"] for list_id, report in reports.items()},
    }
    meta = {
        "version": version,
        "slots": [
            {"slot": item.slot, "list": item.list_id, "name": item.name, "category": item.category}
            for item in sorted(inputs, key=lambda item: item.slot)
        ],
        "patterns": patterns,
        "counts": counts,
        "reports": {str(list_id): report for list_id, report in reports.items()},
    }
    # .bin first: a reader that finds the .json can count on the .bin.
    _write_bin(bin_path, entries, keys, flags)
    meta_bytes = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    _write_atomic(meta_path, lambda handle: handle.write(meta_bytes))
    return Compiled(version, bin_path, meta_path, counts, reports)


def _load_meta(meta_path: Path) -> dict | None:
    try:
        return json.loads(Path(meta_path).read_bytes())
    except (OSError, ValueError):
        return None


def _compiled_from_meta(version: str, bin_path: Path, meta_path: Path, meta: dict) -> Compiled:
    reports = {int(list_id): report for list_id, report in meta.get("reports", {}).items()}
    return Compiled(version, bin_path, meta_path, meta.get("counts", {}), reports)


_TABLE_FILE = re.compile(r"rules-([0-9a-f]{16})\.(?:bin|json)")
STALE_TEMP_SECONDS = 3600


def prune(out_dir: Path, keep: set[str]) -> list[Path]:
    """Delete compiled versions not in `keep`, and temporary files left by a crash; return what went."""
    removed = []
    now = time.time()
    for path in Path(out_dir).iterdir():
        match = _TABLE_FILE.fullmatch(path.name)
        stale_temp = path.name.startswith(".rules-") and path.name.endswith(".tmp")
        try:
            if (match and match.group(1) not in keep) or (stale_temp and now - path.stat().st_mtime > STALE_TEMP_SECONDS):
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            pass
    return removed


# --- matching -----------------------------------------------------------------


class Match(NamedTuple):
    allow: bool
    slot: int
    rule: str


# What wins when several rules apply to one name (docs/netfilter.md, steps 6-8).
RANK_IMPORTANT_SLOT_BLOCK = 4
RANK_IMPORTANT_ALLOW = 3
RANK_IMPORTANT_BLOCK = 2
RANK_ALLOW = 1
RANK_BLOCK = 0


def _rank(flags: int, important_slots: int) -> int:
    if flags & ALLOW:
        return RANK_IMPORTANT_ALLOW if flags & IMPORTANT else RANK_ALLOW
    if (important_slots >> (flags & SLOT_MASK)) & 1:
        return RANK_IMPORTANT_SLOT_BLOCK
    return RANK_IMPORTANT_BLOCK if flags & IMPORTANT else RANK_BLOCK


class _SlotPatterns:
    """One slot's pattern rules; one combined regex per kind, so a miss costs one search."""

    def __init__(self, slot: int):
        self.slot = slot
        self.by_kind: dict[int, list[tuple[re.Pattern, str]]] = {}
        self.combined: dict[int, re.Pattern | None] = {}

    def add(self, kind: int, regex: str, rule: str) -> None:
        self.by_kind.setdefault(kind, []).append((regex, rule))

    def freeze(self) -> None:
        for kind, entries in self.by_kind.items():
            compiled = [(re.compile(regex.encode("utf-8")), rule) for regex, rule in entries]
            self.by_kind[kind] = compiled
            self.combined[kind] = _combine([regex for regex, _ in entries]) if len(entries) > 1 else None

    def search(self, name: bytes, kind: int) -> str | None:
        entries = self.by_kind.get(kind)
        if not entries:
            return None
        combined = self.combined[kind]
        if combined is not None and combined.search(name) is None:
            return None
        for regex, rule in entries:
            if regex.search(name):
                return rule
        return None


def _combine(regexes: list[str]) -> re.Pattern | None:
    try:
        return re.compile(b"|".join(b"(?:" + regex.encode("utf-8") + b")" for regex in regexes))
    except re.error:
        return None  # e.g. an inline flag that is only allowed at the start: search one by one


_PATTERN_KINDS_BY_RANK = ((ALLOW | IMPORTANT, True), (IMPORTANT, False), (ALLOW, True), (0, False))


class RuleTable:
    """The compiled table, memory-mapped: start-up costs nothing, a million names cost ~21 MB of page cache."""

    def __init__(self, version: str, keys, flags, meta: dict, owner=None, count: int = 0):
        self.version = version
        self._keys = keys  # by slot: the key, 0 for an empty slot
        self._flags = flags  # by slot: the entry's flags
        self._count = count
        self._slot_mask = len(keys) - 1
        self._owner = owner  # (mmap, memoryview) kept open while the views live
        self.slots: list[dict] = list(meta.get("slots", []))
        self.slot_by_number: dict[int, dict] = {int(info["slot"]): info for info in self.slots}
        self.category_by_slot: dict[int, str] = {number: info.get("category", "") for number, info in self.slot_by_number.items()}
        self.counts: dict = dict(meta.get("counts", {}))
        # No exception or `$important` entry (a table compiled before this was counted may have some).
        self._plain = self.counts.get("overriding") == 0
        self.important_mask = 0
        for slot in self.slots:
            if slot.get("category") == "harmful":
                self.important_mask |= 1 << int(slot["slot"])
        self._patterns: dict[int, _SlotPatterns] = {}
        for entry in meta.get("patterns", []):
            kind = (ALLOW if entry.get("allow") else 0) | (IMPORTANT if entry.get("important") else 0)
            slot = int(entry["slot"])
            self._patterns.setdefault(slot, _SlotPatterns(slot)).add(kind, entry["regex"], entry["rule"])
        for slot_patterns in self._patterns.values():
            slot_patterns.freeze()
        self.pattern_mask = sum(1 << slot for slot in self._patterns)

    @classmethod
    def empty(cls) -> RuleTable:
        return cls("", array("Q", [0, 0]), array("H", [0, 0]), {})

    @classmethod
    def open(cls, bin_path: Path, meta_path: Path) -> RuleTable:
        meta = _load_meta(meta_path)
        if not isinstance(meta, dict) or "version" not in meta:
            raise ValueError(f"{meta_path}: not a rules description")
        with open(bin_path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < HEADER_SIZE:
                raise ValueError(f"{bin_path}: too short")
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            count, keys, flags, view = _views(mapped, size, bin_path, meta.get("counts", {}).get("entries"))
        except BaseException:
            mapped.close()
            raise
        return cls(str(meta["version"]), keys, flags, meta, owner=(mapped, view), count=count)

    def close(self) -> None:
        """Unmap the file (the resolver calls it once no query uses the table)."""
        if self._owner is None:
            return
        mapped, view = self._owner
        self._owner = None
        for buffer in (self._keys, self._flags, view):
            if isinstance(buffer, memoryview):
                buffer.release()
        self._keys, self._flags, self._count, self._slot_mask = array("Q", [0, 0]), array("H", [0, 0]), 0, 1
        mapped.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return self._count

    def match(self, name: bytes, mask: int) -> Match | None:
        """The rule that decides `name` for a client whose enabled slots are `mask`, or None."""
        if not mask:
            return None
        found = self._match_names(name, mask)
        pattern_slots = mask & self.pattern_mask
        if not pattern_slots:
            return found
        if found is None:
            return self._match_patterns(name, mask, only_important=False)
        # The hub's confirmed list is not overridden by other lists' exceptions, patterns included.
        if found.allow and pattern_slots & self.important_mask:
            return self._match_patterns(name, mask, only_important=True) or found
        return found

    def _entries(self, part: bytes) -> list[int]:
        """The flags of every entry for `part` (usually none); for tests and tools, the hot path inlines it."""
        keys, slot_mask = self._keys, self._slot_mask
        key = xxh3_64_intdigest(part) or 1
        slot = key & slot_mask
        found = []
        while k := keys[slot]:
            if k == key:
                found.append(self._flags[slot])
            slot = (slot + 1) & slot_mask
        return found

    def _match_names(self, name: bytes, mask: int) -> Match | None:
        if not self._count:
            return None
        # The probe loop of _entries, inlined: the name and each parent cost one
        # XXH3 call, one partition and ~2.4 slot reads when absent (load <= 0.5).
        keys, slot_mask, hash_ = self._keys, self._slot_mask, xxh3_64_intdigest
        best_rank, best_flags, best_start = -1, 0, 0
        # The highest rank a match can have here: reached, no parent can change the outcome.
        top = RANK_BLOCK if self._plain and not self.important_mask & mask else RANK_IMPORTANT_SLOT_BLOCK
        part = name
        while True:
            key = hash_(part) or 1
            slot = key & slot_mask
            while k := keys[slot]:
                if k == key:
                    entry = self._flags[slot]
                    start = len(name) - len(part)
                    # The name itself: exact and subtree rules; a parent: subtree and "below" rules.
                    if (mask >> (entry & SLOT_MASK)) & 1 and (
                        entry & (SUBTREE | BELOW) if start else not entry & BELOW
                    ):
                        rank = _rank(entry, self.important_mask & mask)
                        if rank > best_rank:
                            best_rank, best_flags, best_start = rank, entry, start
                            if rank >= top:
                                return self._result(name, best_flags, best_start)
                slot = (slot + 1) & slot_mask
            _, dot, part = part.partition(b".")  # the parent name, no index juggling
            if not dot:
                break
        if best_rank < 0:
            return None
        return self._result(name, best_flags, best_start)

    @staticmethod
    def _result(name: bytes, flags: int, start: int) -> Match:
        kind = flags & ~SLOT_MASK
        return Match(bool(flags & ALLOW), flags & SLOT_MASK, rule_text(name[start:], kind))

    def _match_patterns(self, name: bytes, mask: int, *, only_important: bool) -> Match | None:
        enabled = [patterns for slot, patterns in self._patterns.items() if (mask >> slot) & 1]
        important = [patterns for patterns in enabled if (self.important_mask >> patterns.slot) & 1]
        for patterns in important:
            rule = patterns.search(name, 0) or patterns.search(name, IMPORTANT)
            if rule:
                return Match(False, patterns.slot, rule)
        if only_important:
            return None
        for kind, allow in _PATTERN_KINDS_BY_RANK:
            for patterns in enabled:
                rule = patterns.search(name, kind)
                if rule:
                    return Match(allow, patterns.slot, rule)
        return None


def _views(mapped: mmap.mmap, size: int, path, expected_count: int | None) -> tuple:
    """(entry count, keys by slot, flags by slot, the view to release) of a mapped `.bin`, checked."""
    view = memoryview(mapped)
    try:
        magic = bytes(view[:8])
        if magic == MAGIC_V1:
            raise ValueError(f"{path}: a format-1 rules table (sorted keys), no longer read: compile the lists again")
        if magic != MAGIC:
            raise ValueError(f"{path}: not a rules table")
        count = int.from_bytes(view[8:12], "little")
        capacity = int.from_bytes(view[12:16], "little")
        if capacity != table_capacity(count):
            raise ValueError(f"{path}: {capacity} slots, a table of {count} entries has {table_capacity(count)}")
        if size != HEADER_SIZE + capacity * 10:
            raise ValueError(f"{path}: {size} bytes, a table of {capacity} slots has {HEADER_SIZE + capacity * 10}")
        if expected_count is not None and expected_count != count:
            raise ValueError(f"{path}: {count} entries, the description says {expected_count}")
        keys_end = HEADER_SIZE + capacity * 8
        # A lookup walks until an empty slot: make sure there is one (found in a few reads).
        empty = mapped.find(b"\x00" * 8, HEADER_SIZE, keys_end)
        while empty >= 0 and (empty - HEADER_SIZE) % 8:
            empty = mapped.find(b"\x00" * 8, empty + 1, keys_end)
        if empty < 0:
            raise ValueError(f"{path}: no empty slot")
        keys_bytes = view[HEADER_SIZE:keys_end]
        flags_bytes = view[keys_end:]
        if sys.byteorder == "little":
            return count, keys_bytes.cast("Q"), flags_bytes.cast("H"), view
        # A big-endian machine cannot use the file as it is: a swapped copy.
        keys, flags = array("Q", keys_bytes), array("H", flags_bytes)
        keys.byteswap()
        flags.byteswap()
        return count, keys, flags, view
    except BaseException:
        view.release()
        raise


class SmallRules:
    """A handful of rules held in sets: a group's allow/deny boxes, a service's domains, unblocks.

    Exceptions (`@@`) are matched like the other rules and keep their `@@`
    in the returned text: what a match means comes from where the rules are
    used (an allow box allows, a deny box blocks).
    """

    def __init__(self, parsed: ParsedList | None = None):
        self._exact: dict[bytes, str] = {}
        self._subtree: dict[bytes, str] = {}
        self._below: dict[bytes, str] = {}
        self._patterns: list[tuple[re.Pattern, str]] = []
        if parsed is not None:
            self._load(parsed)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> SmallRules:
        return cls(parse_rules(lines))

    def _load(self, parsed: ParsedList) -> None:
        for kind, names in parsed.names.items():
            table = self._below if kind & BELOW else self._subtree if kind & SUBTREE else self._exact
            for name in names:
                table.setdefault(name, rule_text(name, kind))
        for pattern in parsed.patterns:
            self._patterns.append((re.compile(pattern.regex.encode("utf-8")), pattern.rule))

    def __len__(self) -> int:
        return len(self._exact) + len(self._subtree) + len(self._below) + len(self._patterns)

    def __bool__(self) -> bool:
        return len(self) > 0

    def match(self, name: bytes) -> str | None:
        """The text of the most specific rule covering `name`, or None."""
        rule = self._exact.get(name) or self._subtree.get(name)
        if rule:
            return rule
        subtree, below = self._subtree, self._below
        if subtree or below:
            dot = name.find(b".")
            while dot >= 0:
                parent = name[dot + 1 :]
                rule = subtree.get(parent) or below.get(parent)
                if rule:
                    return rule
                dot = name.find(b".", dot + 1)
        for regex, text in self._patterns:
            if regex.search(name):
                return text
        return None
