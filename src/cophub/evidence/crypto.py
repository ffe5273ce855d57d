"""Envelope encryption for the evidence vault.

Each stored object has its own random 256-bit data key (DEK). The object is
encrypted with AES-256-GCM in segments (a streaming construction in the
manner of Tink's AES-GCM-HKDF streaming AEAD / the STREAM construction), so
files of any size are encrypted as they arrive and never sit in plaintext on
disk. The DEK is wrapped with AES-256-GCM under the master key, which is kept
outside the database; only the wrapped DEK and the master key's identifier
are stored with the object's row.

Object layout:  MAGIC (4) ‖ nonce prefix (7) ‖ segment₀ ‖ segment₁ ‖ …
Each segment is GCM(DEK, nonce = prefix ‖ counter (4, big-endian) ‖ last (1),
plaintext ≤ SEGMENT_SIZE, aad = MAGIC ‖ prefix) and carries its 16-byte tag.
The counter stops segments being reordered; the last-segment flag stops the
object being truncated at a segment boundary.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CHV1"
PREFIX_SIZE = 7
SEGMENT_SIZE = 64 * 1024
TAG_SIZE = 16
HEADER_SIZE = len(MAGIC) + PREFIX_SIZE
WRAP_AAD = b"cophub/evidence/dek/v1"


class VaultKeyError(Exception):
    """The master key is missing, malformed, or not the one the data was sealed with."""


class IntegrityError(Exception):
    """A stored object was altered, truncated or is not a vault object."""


@dataclass(frozen=True)
class MasterKey:
    key: bytes

    @property
    def key_id(self) -> str:
        """A public identifier of the key: lets a wrong key be named without trying it."""
        return hmac.new(self.key, b"cophub key id", hashlib.sha256).hexdigest()[:16]

    def derive(self, purpose: bytes) -> bytes:
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"cophub/" + purpose).derive(self.key)

    def wrap(self, dek: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.key).encrypt(nonce, dek, WRAP_AAD)

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        if key_id != self.key_id:
            raise VaultKeyError(
                f"this object was sealed with master key {key_id}, but the key loaded is {self.key_id}; "
                "load the right key file (COPHUB_MASTER_KEY_FILE)"
            )
        try:
            return AESGCM(self.key).decrypt(wrapped[:12], wrapped[12:], WRAP_AAD)
        except InvalidTag as exc:
            raise VaultKeyError("the master key does not open this object's data key") from exc


def load_master_key(path: Path) -> MasterKey:
    """Read a master key file: 32 random bytes, stored base64-encoded."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError as exc:
        raise VaultKeyError(f"master key file {path} not found") from exc
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise VaultKeyError(f"master key file {path} is not base64") from exc
    if len(key) != 32:
        raise VaultKeyError(f"master key file {path} must hold 32 bytes, found {len(key)}")
    return MasterKey(key)


def create_master_key(path: Path) -> MasterKey:
    """Write a new master key file readable by its owner only; never overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode() + "\n")
    return MasterKey(key)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class SegmentEncryptor:
    """Encrypts a stream written in chunks of any size into `out`."""

    def __init__(self, out: BinaryIO, dek: bytes):
        self._out = out
        self._aead = AESGCM(dek)
        self._prefix = os.urandom(PREFIX_SIZE)
        self._aad = MAGIC + self._prefix
        self._buffer = bytearray()
        self._counter = 0
        self._closed = False
        out.write(MAGIC + self._prefix)

    def write(self, data: bytes) -> None:
        self._buffer += data
        # Keep at least one byte back so the final segment is never empty
        # unless the whole stream is.
        while len(self._buffer) > SEGMENT_SIZE:
            self._emit(bytes(self._buffer[:SEGMENT_SIZE]), last=False)
            del self._buffer[:SEGMENT_SIZE]

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True

    def _emit(self, plaintext: bytes, last: bool) -> None:
        if self._counter >= 2**32 - 1:
            raise ValueError("object too large for one stream")
        self._out.write(self._aead.encrypt(_nonce(self._prefix, self._counter, last), plaintext, self._aad))
        self._counter += 1


def decrypt_stream(source: BinaryIO, dek: bytes) -> Iterator[bytes]:
    """Yield the plaintext of an object, checking every segment as it goes."""
    header = source.read(HEADER_SIZE)
    if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
        raise IntegrityError("not a vault object")
    prefix = header[len(MAGIC):]
    aead = AESGCM(dek)
    counter = 0
    chunk = source.read(SEGMENT_SIZE + TAG_SIZE)
    while True:
        following = source.read(SEGMENT_SIZE + TAG_SIZE)
        last = not following
        if len(chunk) < TAG_SIZE:
            raise IntegrityError("object truncated")
        try:
            yield aead.decrypt(_nonce(prefix, counter, last), chunk, MAGIC + prefix)
        except InvalidTag as exc:
            raise IntegrityError(f"segment {counter} failed authentication (altered or truncated)") from exc
        if last:
            return
        counter += 1
        chunk = following


def encrypt_bytes(data: bytes, dek: bytes) -> bytes:
    import io

    out = io.BytesIO()
    enc = SegmentEncryptor(out, dek)
    enc.write(data)
    enc.close()
    return out.getvalue()


def new_dek() -> bytes:
    return secrets.token_bytes(32)
