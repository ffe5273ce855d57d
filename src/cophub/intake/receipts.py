"""Receipts: a short tracking code and a secret phrase.

The code finds the submission; the phrase proves the holder is its reporter.
Only an HMAC of the phrase is stored, keyed by a key derived from the vault's
master key (kept outside the database), so a copy of the database alone does
not let anyone test phrases. Phrases are compared without diacritics, case
or extra spaces, so a child who types "meo xanh" for "mèo xanh" gets in.
"""

from __future__ import annotations

import hmac
import hashlib
import secrets
import unicodedata
from functools import lru_cache
from pathlib import Path

# Crockford's base32 without I, L, O, U: nothing a child can misread.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
PHRASE_WORDS = 4


@lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    path = Path(__file__).parent / "data" / "words-vi.txt"
    return tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#"))


def new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def new_phrase() -> str:
    vocabulary = words()
    return " ".join(secrets.choice(vocabulary) for _ in range(PHRASE_WORDS))


def normalise_code(text: str) -> str:
    cleaned = "".join(ch for ch in (text or "").upper() if ch.isalnum())
    cleaned = cleaned.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))
    if len(cleaned) != CODE_LENGTH:
        return ""
    return f"{cleaned[:4]}-{cleaned[4:]}"


def normalise_phrase(text: str) -> str:
    text = unicodedata.normalize("NFD", (text or "").replace("đ", "d").replace("Đ", "D"))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return " ".join(text.lower().replace("-", " ").split())


def _key() -> bytes:
    from cophub.evidence.vault import master_key

    return master_key().derive(b"receipt-phrase")


def digest(code: str, phrase: str) -> str:
    message = f"{code}\n{normalise_phrase(phrase)}".encode()
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()


def matches(stored_digest: str | None, code: str, phrase: str) -> bool:
    """Constant-time check; with no stored digest it still does the same work."""
    candidate = digest(code, phrase)
    return hmac.compare_digest(candidate, stored_digest or "0" * 64) and stored_digest is not None
