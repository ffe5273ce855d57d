"""Text indicators: phrases in a report that point to grooming, sextortion, self-harm…

Children write in teen code, without diacritics, in leetspeak and in two
languages at once, so both the text and the lexicon patterns go through the
same `normalise_vi()`. A pattern written "gặp * không nói * bố mẹ" therefore
matches "muốn gặp e, dặn ko dc nói vs bme" and "gap e nhung dung noi vs bm".

The lexicons are data (data/lexicon_vi.txt, data/lexicon_en.txt; their
syntax is described at the top of each file). They are parsed and compiled
once, on first use. Each rule becomes a regex on the normalised text; a trie
regex of the rules' first words ("heads") finds candidate positions in one
C-level scan, and only there are the rules starting with that word tried, all
in one call. A paragraph takes well under a millisecond, a megabyte of text
a fraction of a second (tests check both).

Indicators are signals for a human, never a verdict: weights are summed per
category (`summarise`) and triage decides what a score means.

Normalisation, in order (every mapping is listed in the tables below):
 1. lowercase;
 2. NFC, so decomposed input ("e" + U+0302) reads like composed input;
 3. zero-width characters and soft hyphens are dropped (used to dodge filters);
    an apostrophe inside a word is dropped ("don't" → "dont");
 4. spaced-out words are joined: single letters separated by . - _ * ·
    ("g.ặ.p" → "gặp", "t-ự t-ử" → "tự tử");
 5. leetspeak: "@" and "$" after a letter ("b@by"), and digits inside words that
    start with a letter and have at least as many letters as digits (LEET);
    numbers that are numbers (ages, phone numbers, "12a1", "500k") are kept;
    steps 5–10 run word by word, each distinct word once (a cache);
 6. runs of the same letter become one ("gặppp" → "gặp", "kill" → "kil"); the
    lexicon is normalised the same way, so English words still match;
 7. words that are only teen code when typed *without* diacritics (BEFORE_STRIP:
    "a" → "anh", while "à"/"á"/"ạ" stay particles);
 8. diacritics are removed, đ → d;
 9. runs of the same letter again (stripping can create them: "xoóng");
10. teen code (TEEN_CODE), now that spellings with and without accents agree.

A pattern that contains a word of BEFORE_STRIP with accents ("à") would not
match the same word typed without them; a test checks that no lexicon rule
does.

Known collisions, accepted and handled by context in the rules: "ảnh" (photo)
and "anh" (you/brother) are the same word once stripped; "ck" is mapped to
"chồng" per teen code, so bank transfers are matched as "chuyển khoản/tiền".
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import cache
from itertools import accumulate, islice
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
LANGUAGES = ("vi", "en")
CATEGORIES = ("grooming", "meeting", "sextortion", "self_harm", "bullying", "private_info")
# The case category (core.categories) each indicator category points to.
HUB_CATEGORY = {"grooming": "grooming", "meeting": "grooming", "sextortion": "sextortion",
                "self_harm": "self_harm", "bullying": "cyberbullying", "private_info": "privacy_disclosure"}
WEAK_BELOW = 1.0  # a category whose summed weight stays under this is a weak sign (triage's default minimum)
STRONG_FROM = 2.0  # a boosted rule is strong once its weight reaches this ("ib" + secrecy stays moderate)
MARKER_WINDOW = 200  # normalised characters (~40 words) either side in which a marker boosts a rule
DEFAULT_GAP = 3  # words a bare "*" or "…" may skip
# Indicators reported per rule and text: a rule counts once in a score, and a pasted chat log
# repeating a phrase thousands of times should not cost thousands of look-ups back to the original.
MAX_PER_RULE = 50
MAX_GAP = 8

# --- Normalisation tables ------------------------------------------------------------------------------

# Digits and symbols read as letters inside words. "11" is "ll" ("ki11" → "kill"),
# a lone "1" is "i" ("k1ll", "su1c1de").
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "@": "a", "$": "s"}

# Teen code that must be read before diacritics go, because the stripped form
# is also a real word: "à", "á", "ạ" are particles, "ê" an interjection, "ừ"
# means yes, "hồng" is pink, "hẻm" an alley, "mụn" acne.
BEFORE_STRIP = {
    "a": "anh",  # anh (you/older brother)
    "e": "em",  # em (I/you, younger)
    "u": "you",  # English "r u ok"
    "hông": "không", "hem": "không",
    "mún": "muốn", "mun": "muốn",
}

# Teen code read after diacritics are gone (keys are stripped, lowercase, one letter per run).
TEEN_CODE = {
    # không (no/not)
    "ko": "khong", "k": "khong", "kh": "khong", "hk": "khong", "hok": "khong", "khg": "khong",
    "kg": "khong", "khum": "khong",
    "j": "gi",  # gì (what)
    "z": "vay", "v": "vay",  # vậy (so)
    "dc": "duoc", "dk": "duoc",  # được (may/can); "đc" is "dc" once đ → d
    "bme": "bo me", "bm": "bo me",  # bố mẹ (parents)
    "ny": "nguoi yeu",  # người yêu (boy/girlfriend)
    "vs": "voi",  # với (with)
    "ib": "nhan rieng", "inbox": "nhan rieng",  # private message
    "nt": "nhan tin",  # nhắn tin (text)
    "ck": "chong", "vk": "vo",  # chồng, vợ (husband, wife)
    "ng": "nguoi",  # người (person)
    "mk": "minh", "mik": "minh",  # mình (I/we)
    "sdt": "so dien thoai", "dt": "dien thoai",  # số điện thoại (phone number)
    "iu": "yeu",  # yêu (love)
    "wa": "qua",  # quá (so much)
    "zui": "vui",  # vui (happy)
    "ntn": "nhu the nao",  # như thế nào (how)
    "mn": "moi nguoi", "mng": "moi nguoi",  # mọi người (everyone)
    "hnay": "hom nay",  # hôm nay (today)
    "ur": "your",  # English
}
# "ba mẹ" (parents, southern) → "bo me" is the one two-word entry: see _PAIRS below.

_WORD = re.compile(r"[^\W_]+")
_SPLIT = re.compile(r"([^\W_]+)")  # words kept (odd items), what lies between them too
_SYMBOL = re.compile(r"[@$]")  # "@" and "$" in a word are leetspeak ("b@by", "a$$")
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200d\u2060\ufeff'’]")
_DECOMPOSED = re.compile(r".?[\u0300-\u036f]+", re.S)
# Spaced-out words: a separator then a one-letter word is the cheap hint; the full form is checked there.
_SPACED_HINT = re.compile(r"[.\-_*·][^\W\d_](?![^\W_])")
_SPACED = re.compile(r"(?<![\w.\-*·])[^\W\d_](?:[.\-_*·][^\W\d_])+(?![^\W_])")
_REPEATS = re.compile(r"([^\W\d_])\1+")
_ASCII_REPEATS = re.compile(r"([a-z])\1+")
# Two-word teen code (literal first, so the regex engine can skip ahead to it).
_PAIRS = {"ba me": "bo me"}
_PAIRS_RE = re.compile(r"ba(?<![^\W_]ba)[ \t]+me(?![^\W_])")


def _strip_table() -> dict[int, str]:
    """One character → one character, so stripping keeps every position."""
    table = {ord("đ"): "d", ord("Đ"): "d"}
    for code in [*range(0xC0, 0x250), *range(0x1E00, 0x1F00)]:
        char = chr(code)
        base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
        if base != char and len(base) == 1 and base.isascii():
            table[code] = base.lower()
    return table


_STRIP = _strip_table()


# --- Normalising with a way back to the original text -----------------------------------------------------

# Every pass keeps a way back from a position in its output to one in its input,
# so a match in the normalised text can be shown as the words the child wrote.


class _Edits:
    """Sparse replacements (out_start, out_end, in_start, in_end), for passes that change little."""

    def __init__(self, edits: list[tuple[int, int, int, int]]):
        self.edits = edits
        self.keys = [e[0] for e in edits]

    def back(self, pos: int, is_end: bool) -> int:
        # The last edit at or before pos; a position inside a replaced piece maps to that piece's edge.
        i = bisect_left(self.keys, pos) - 1 if is_end else bisect_right(self.keys, pos) - 1
        if i < 0:
            return pos
        out_start, out_end, in_start, in_end = self.edits[i]
        if (out_start < pos <= out_end) if is_end else (pos < out_end):
            return in_end if is_end else in_start
        return in_end + pos - out_end


class _Parts:
    """Word-by-word rewriting: the input and output pieces line up one to one."""

    def __init__(self, before: list[str], after: list[str]):
        self.before, self.after = before, after
        self._ends: tuple[list[int], list[int]] | None = None

    def back(self, pos: int, is_end: bool) -> int:
        if self._ends is None:  # computed on the first hit only: most texts have none
            self._ends = (_cumulative_lengths(self.before), _cumulative_lengths(self.after))
        in_ends, out_ends = self._ends
        i = bisect_left(out_ends, pos) if is_end else bisect_right(out_ends, pos)
        if i >= len(out_ends):
            return in_ends[-1] if in_ends else 0
        in_start, out_start = (in_ends[i - 1], out_ends[i - 1]) if i else (0, 0)
        if self.before[i] == self.after[i] or pos == out_start:
            return in_start + pos - out_start
        return in_ends[i] if is_end else in_start  # inside a rewritten word: the whole word


def _cumulative_lengths(parts: list[str]) -> list[int]:
    if len(parts) < 2000:
        return list(accumulate(map(len, parts)))
    # A megabyte of text is half a million parts: numpy sums them twice as fast.
    return np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)).cumsum().tolist()


def _apply(text: str, replacements) -> tuple[str, _Edits | None]:
    """Text with (start, end, new) replacements (in order, not overlapping) made, and the way back."""
    pieces, edits, last, out = [], [], 0, 0
    for start, end, new in replacements:
        pieces.append(text[last:start])
        out += start - last
        edits.append((out, out + len(new), start, end))
        pieces.append(new)
        out += len(new)
        last = end
    if not edits:
        return text, None
    pieces.append(text[last:])
    return "".join(pieces), _Edits(edits)


def _sub(pattern: re.Pattern, replace, text: str) -> tuple[str, _Edits | None]:
    changes = ((m.start(), m.end(), new) for m in pattern.finditer(text) if (new := replace(m)) != m.group())
    return _apply(text, changes)


def _lower(text: str):
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered, None
    # A few characters grow when lowercased ("İ" → "i̇"); only then do we pay for a pass.
    return _sub(re.compile(r"[^\x00-\x7f]"), lambda m: m.group().lower(), text)


def _compose(m: re.Match) -> str:
    composed = unicodedata.normalize("NFC", m.group())
    return "".join(c for c in composed if not unicodedata.combining(c))  # marks that cannot compose are dropped


def _nfc(text: str):
    return (text, None) if unicodedata.is_normalized("NFC", text) else _sub(_DECOMPOSED, _compose, text)


def _invisible(m: re.Match) -> str:
    char, text, i = m.group(), m.string, m.start()
    if char not in "'’":
        return ""  # zero-width characters and soft hyphens hide words from filters
    between_letters = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
    return "" if between_letters else char  # "don't" → "dont", quotes stay


def _join_spaced(text: str):
    changes, after = [], 0
    for hint in _SPACED_HINT.finditer(text):
        if hint.start() > after and (m := _SPACED.match(text, hint.start() - 1)):
            changes.append((m.start(), m.end(), m.group()[::2]))  # "g.ặ.p" → "gặp"
            after = m.end()
    return _apply(text, changes)


def _symbol(m: re.Match) -> str:
    text, i = m.string, m.start() - 1
    while i >= 0 and text[i] in "@$":
        i -= 1  # "p@$$word": look past the other symbols for the letter
    return LEET[m.group()] if i >= 0 and text[i].isalpha() else m.group()  # a leading "@" is a mention, "$5" money


def _unleet(word: str) -> str:
    if not word[0].isalpha() or not any(c in LEET for c in word):
        return word  # "12a1" is a class, "500k" an amount
    letters = sum(c.isalpha() for c in word)
    if letters < len(word) - letters:
        return word  # mostly digits: a phone number after "sdt", a code
    return "".join(LEET.get(c, c) for c in word.replace("11", "ll"))


def _normal_word(word: str) -> str:
    """One word through steps 5–10 of the module docstring."""
    word = _REPEATS.sub(r"\1", _unleet(word))
    word = BEFORE_STRIP.get(word, word).translate(_STRIP)
    word = _ASCII_REPEATS.sub(r"\1", word)
    return TEEN_CODE.get(word, word)


_WORD_CACHE: dict[str, str] = {}  # chat repeats its words; bounded below


def _words(text: str):
    """Every word normalised at once: split, map through the cache, join (no Python call per word)."""
    parts = _SPLIT.split(text)
    words = parts[1::2]
    cache = _WORD_CACHE
    if len(cache) > 200_000:
        cache.clear()
    for word in set(words).difference(cache):
        cache[word] = _normal_word(word)
    normalised = list(parts)
    normalised[1::2] = map(cache.__getitem__, words)
    result = "".join(normalised)
    return result, (None if result == text else _Parts(parts, normalised))


# The pipeline, in the order of the module docstring; each step returns (text, way back or None).
_STEPS = (
    _lower,
    _nfc,
    lambda t: _sub(_INVISIBLE, _invisible, t),
    _join_spaced,
    lambda t: _sub(_SYMBOL, _symbol, t),
    _words,
    lambda t: _sub(_PAIRS_RE, lambda m: _PAIRS[" ".join(m.group().split())], t),
)


def _normalise(text: str) -> tuple[str, list]:
    chain = []
    for step in _STEPS:
        text, way_back = step(text)
        if way_back is not None:
            chain.append(way_back)
    return text, chain


def normalise_vi(text: str) -> str:
    """Lowercase, no diacritics, teen code and leetspeak read as plain words (see the module docstring)."""
    return _normalise(text)[0]


def _original_span(start: int, end: int, chain: list) -> tuple[int, int]:
    for way_back in reversed(chain):
        start, end = way_back.back(start, False), way_back.back(end, True)
    return start, end


# --- Lexicons ----------------------------------------------------------------------------------------------


class LexiconError(ValueError):
    """A lexicon line that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Rule:
    rule_id: str  # "vi:gặp * không nói * bố mẹ": language and pattern, stable when lines move
    category: str
    weight: float
    elements: tuple  # ((gap_before, ((word, ...), ...)), ...): alternatives of normalised word sequences
    marker: str = ""  # this rule also marks a context, e.g. "secrecy"
    boost: tuple[str, float] | None = None  # (marker, extra weight): near that marker the rule is strong
    requires: str = ""  # the rule only counts near this marker
    strong: bool = False  # strong on its own
    unless: frozenset = frozenset()  # word sequences that, right before or after, cancel the match (hyperbole)


_COLUMNS = re.compile(r"\t+| {2,}")
_PATTERN_ITEM = re.compile(r"\(([^()]*)\)|([*…])(\d*)|([^\s()*…]+)")


def _phrase(text: str, where: str) -> tuple[str, ...]:
    words = tuple(_WORD.findall(normalise_vi(text)))
    if text.strip() and not words:
        raise LexiconError(f"{where}: {text!r} has no words")
    return words


def parse_pattern(pattern: str, where: str = "pattern") -> tuple:
    """'gặp * (không|đừng) nói' → elements of normalised alternatives with the gap before each."""
    if re.search(r"\([^)]*\(|\)[^(]*\)|^[^(]*\)", pattern) or pattern.count("(") != pattern.count(")"):
        raise LexiconError(f"{where}: unbalanced or nested parentheses in {pattern!r}")
    elements, words, gap = [], [], 0

    def flush():
        nonlocal gap
        if words:
            elements.append((gap, (_phrase(" ".join(words), where),)))
            words.clear()
            gap = 0

    for m in _PATTERN_ITEM.finditer(pattern):
        group, star, count, word = m.groups()
        if word:
            words.append(word)
            continue
        flush()
        if star:
            if gap or not elements:
                raise LexiconError(f"{where}: a gap must sit between words in {pattern!r}")
            gap = min(int(count), MAX_GAP) if count else DEFAULT_GAP
        else:
            alts = tuple(dict.fromkeys(_phrase(alt, where) for alt in group.split("|")))
            elements.append((gap, alts))
            gap = 0
    flush()
    if not elements or gap:
        raise LexiconError(f"{where}: a pattern must start and end with words: {pattern!r}")
    if any(not alt for alt in elements[0][1]):
        raise LexiconError(f"{where}: the first word of {pattern!r} cannot be optional")
    return tuple(elements)


def _options(columns: list[str], where: str) -> dict:
    found = {}
    for column in columns:
        name, _, value = column.strip().partition("=")
        if name in ("marker", "requires") and value:
            found[name] = value
        elif name == "boost" and re.fullmatch(r"\w+:\+?\d+(\.\d+)?", value):
            marker, extra = value.split(":")
            found["boost"] = (marker, float(extra))
        elif name == "strong" and not value:
            found["strong"] = True
        elif name == "unless" and value:
            found["unless"] = frozenset(_phrase(v, where) for v in value.split("|"))
        else:
            raise LexiconError(f"{where}: unknown option {column!r}")
    return found


def parse_lexicon(lines, language: str, source: str = "lexicon") -> list[Rule]:
    """Rules from lexicon lines: category, weight, pattern, then options (see the data files)."""
    rules, seen = [], set()
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        columns = _COLUMNS.split(line)
        if len(columns) < 3:
            raise LexiconError(f"{where}: expected category, weight and pattern separated by tabs")
        category, weight, pattern = columns[:3]
        if category not in CATEGORIES:
            raise LexiconError(f"{where}: unknown category {category!r} (one of {', '.join(CATEGORIES)})")
        try:
            value = float(weight)
        except ValueError:
            raise LexiconError(f"{where}: weight {weight!r} is not a number") from None
        if value < 0 or value > 10:
            raise LexiconError(f"{where}: weight {value} is outside 0..10")
        rule_id = f"{language}:{pattern}"
        if rule_id in seen:
            raise LexiconError(f"{where}: duplicate pattern {pattern!r}")
        seen.add(rule_id)
        rules.append(Rule(rule_id, category, value, parse_pattern(pattern, where), **_options(columns[3:], where)))
    return rules


@cache
def load_lexicon(language: str) -> tuple[Rule, ...]:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
    path = DATA_DIR / f"lexicon_{language}.txt"
    return tuple(parse_lexicon(path.read_text(encoding="utf-8").splitlines(), language, path.name))


# Between two words of a phrase: anything but a word character or a sentence end. Possessive
# quantifiers (++) stop the engine from retrying shorter separators and words: a failing
# rule fails at once.
_SEP = r"[^\w.!?;\n]++"
_HEAD_WORDS = 2  # candidates are found on a rule's first two adjacent words when it has them
_MAX_HEADS = 64


def _rule_regex(elements: tuple) -> re.Pattern:
    """'gặp * (không|đừng) nói' as a regex on normalised text, tried only at candidate positions."""
    parts = []
    for k, (gap, alts) in enumerate(elements):
        if gap:
            parts.append(rf"(?:{_SEP}\w++){{0,{gap}}}?")  # lazy: the shortest gap wins, as a reader would
        lead = _SEP if k else ""
        options = [lead + _SEP.join(map(re.escape, alt)) if alt else "" for alt in alts]
        parts.append("(?:" + "|".join(options) + ")")
    return re.compile("".join(parts) + r"(?!\w)")


def _heads(elements: tuple) -> set[str]:
    """The word sequences every match starts with: the first elements up to the first gap."""
    heads = [()]
    for k, (gap, alts) in enumerate(elements):
        if k and gap:
            break
        longer = [head + alt for head in heads for alt in alts]
        if len(longer) > _MAX_HEADS:
            break
        heads = longer
        if all(len(head) >= _HEAD_WORDS for head in heads):
            break
    return {" ".join(head) for head in heads}


def _trie_regex(phrases) -> str:
    """An alternation shaped as a trie, so the engine tries one branch per letter, not per phrase."""
    trie: dict = {}
    for phrase in phrases:
        node = trie
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [(_SEP if c == " " else re.escape(c)) + build(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


@dataclass(frozen=True)
class _Compiled:
    by_first: dict  # first word → (its rules, one regex trying them all at a position)
    candidates: re.Pattern  # finds where some rule's head starts


def _all_at_once(rules: list[Rule]) -> re.Pattern:
    # Each rule in an optional lookahead with a group: one call tells which rules match here, and where they end.
    return re.compile("".join(f"(?:(?=({_rule_regex(rule.elements).pattern}))|)" for rule in rules))


@cache
def _compiled(languages: tuple[str, ...]) -> _Compiled:
    rules = [rule for language in languages for rule in load_lexicon(language)]
    markers = {rule.marker for rule in rules if rule.marker}
    grouped: dict = {}
    heads: set[str] = set()
    for rule in rules:
        wanted = {rule.requires} | ({rule.boost[0]} if rule.boost else set())
        if wanted - {""} - markers:
            raise LexiconError(f"{rule.rule_id}: no rule marks {sorted(wanted - {''} - markers)}")
        for first in {alt[0] for alt in rule.elements[0][1]}:
            grouped.setdefault(first, []).append(rule)
        heads |= _heads(rule.elements)
    by_first = {first: (tuple(group), _all_at_once(group)) for first, group in grouped.items()}
    # Zero-width (heads inside other heads are found too); group 1 is the first word, read only where a head starts.
    candidates = re.compile(rf"(?<![^\W_])(?=(?:{_trie_regex(heads)})(?![^\W_]))(?=([^\W_]+))")
    return _Compiled(by_first, candidates)


def reload_lexicons() -> None:
    """Forget the parsed lexicons (after editing the data files in a running process)."""
    load_lexicon.cache_clear()
    _compiled.cache_clear()


# --- Matching ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    """A rule that fired: where, on which words, and how much it weighs."""

    category: str  # one of CATEGORIES
    rule: str  # "vi:<pattern>", "en:<pattern>" or "detector:<name>"
    phrase: str  # the words as written in the original text
    weight: float  # the rule's weight plus any boost
    start: int = 0  # offsets of `phrase` in the original text
    end: int = 0
    strong: bool = False  # strong on its own, or made strong by a marker (meeting + secrecy)
    boosted_by: str = ""  # the marker that boosted it, e.g. "secrecy"

    @property
    def language(self) -> str:
        return self.rule.partition(":")[0]

    @property
    def pattern(self) -> str:
        return self.rule.partition(":")[2]


def _cancelled(rule: Rule, norm: str, start: int, end: int) -> bool:
    """True when a hyperbole word sits right before or after the match ("mệt muốn chết", "suicide squad")."""
    before = _WORD.findall(norm, max(0, start - 60), start)
    after = _WORD.findall(norm, end, end + 60)
    return any(tuple(before[-len(u):]) == u or tuple(after[:len(u)]) == u for u in rule.unless)


def _raw_hits(norm: str, compiled: _Compiled) -> list[tuple[Rule, int, int]]:
    hits, by_first = [], compiled.by_first
    for candidate in compiled.candidates.finditer(norm):
        start = candidate.start()
        rules, regex = by_first[candidate.group(1)]
        for rule, (_, end) in zip(rules, regex.match(norm, start).regs[1:]):
            if end >= 0 and not (rule.unless and _cancelled(rule, norm, start, end)):
                hits.append((rule, start, end))
    return hits


def _near(marks: list[tuple[int, int, str]], starts: list[int], start: int, end: int, rule_id: str) -> bool:
    # Another rule's marker within MARKER_WINDOW; marks are sorted by start, none is longer than ~500 chars.
    lo = bisect_left(starts, start - MARKER_WINDOW - 500)
    hi = bisect_right(starts, end + MARKER_WINDOW)
    return any(m_end >= start - MARKER_WINDOW and m_id != rule_id for _, m_end, m_id in marks[lo:hi])


def _lexicon_indicators(text: str, languages: tuple[str, ...]) -> list[Indicator]:
    norm, chain = _normalise(text)
    hits = _raw_hits(norm, _compiled(languages))
    marks: dict[str, list] = {}
    for rule, start, end in hits:
        if rule.marker:
            marks.setdefault(rule.marker, []).append((start, end, rule.rule_id))
    starts = {name: [s for s, _, _ in found] for name, found in marks.items()}
    found, counts = [], dict.fromkeys((rule.rule_id for rule, _, _ in hits), 0)
    for rule, start, end in hits:
        if rule.weight == 0 or counts[rule.rule_id] >= MAX_PER_RULE:
            continue  # a pure marker ("không thì") is context for other rules, no sign on its own
        if rule.requires and not _near(marks.get(rule.requires, []), starts.get(rule.requires, []), start, end, rule.rule_id):
            continue
        weight, strong, boosted_by = rule.weight, rule.strong, ""
        if rule.boost and _near(marks.get(rule.boost[0], []), starts.get(rule.boost[0], []), start, end, rule.rule_id):
            weight, boosted_by = weight + rule.boost[1], rule.boost[0]
            strong = strong or weight >= STRONG_FROM
        counts[rule.rule_id] += 1
        o_start, o_end = _original_span(start, end, chain)
        found.append(Indicator(rule.category, rule.rule_id, text[o_start:o_end], weight, o_start, o_end, strong, boosted_by))
    return found


# --- Private information detectors -----------------------------------------------------------------------------

_DIGIT_SEP = r"[\s.\-]?"
# Vietnamese numbers: mobiles 0[35789]x xxx xxxx, landlines 02xx xxx xxxx, or +84 without the 0.
# The first character comes before the look-behind so that the regex engine can skip to it.
_PHONE = re.compile(
    rf"(?:\+(?<![\d+]\+)84{_DIGIT_SEP}|0(?<![\d+]0))"  # +84 or 0, not inside a longer number
    rf"(?:[35789](?:{_DIGIT_SEP}\d){{8}}|2(?:{_DIGIT_SEP}\d){{9}})(?!\d)"  # mobile, or 02x landline
)
# Citizen ID (CCCD): 3-digit province code, century/sex digit, 2-digit birth year, 6 digits.
_CCCD = re.compile(r"(\d(?<!\d\d)\d{2})[ .]?(\d)(\d{2})[ .]?(\d{6})(?!\d)")
_PROVINCES = frozenset(
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 035 036 037 038 "
    "040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 070 072 074 075 077 079 080 082 "
    "083 084 086 087 089 091 092 093 094 095 096".split()
)
PHONE_WEIGHT = 0.5  # a number alone is often the school's or the reported account's
CCCD_WEIGHT = 1.0


def _detected(text: str) -> list[Indicator]:
    phones = islice(_PHONE.finditer(text), MAX_PER_RULE)
    found = [Indicator("private_info", "detector:phone_vn", m.group(), PHONE_WEIGHT, m.start(), m.end()) for m in phones]
    for m in islice(_CCCD.finditer(text), MAX_PER_RULE):
        province, century = m.group(1), m.group(2)
        # Only born in the 1900s/2000s (digit 0–3) in a real province: fewer bank numbers mistaken for IDs.
        if province in _PROVINCES and century in "0123":
            found.append(Indicator("private_info", "detector:cccd_vn", m.group(), CCCD_WEIGHT, m.start(), m.end()))
    return found


# --- Public API --------------------------------------------------------------------------------------------------


def find_indicators(text: str, language: str | None = None) -> list[Indicator]:
    """Indicators in text, in reading order. language None runs every lexicon (children mix languages)."""
    if language is not None and language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES} or None")
    if not text:
        return []
    languages = LANGUAGES if language is None else (language,)
    found = _lexicon_indicators(text, languages) + _detected(text)
    return sorted(found, key=lambda i: (i.start, i.end, i.category, i.rule))


def summarise(indicators) -> dict[str, float]:
    """Per category, the summed weight of the distinct rules that fired (a rule repeated counts once, at its best)."""
    best: dict[tuple[str, str], float] = {}
    for i in indicators:
        key = (i.category, i.rule)
        best[key] = max(best.get(key, 0.0), i.weight)
    scores: dict[str, float] = {}
    for (category, _), weight in best.items():
        scores[category] = round(scores.get(category, 0.0) + weight, 3)
    return scores


def strongest(indicators) -> Indicator | None:
    """The indicator that weighs most (strong ones first), the earliest on a tie; None when there are none."""
    ranked = sorted(indicators, key=lambda i: (not i.strong, -i.weight, i.start))
    return ranked[0] if ranked else None
