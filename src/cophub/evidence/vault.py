"""The vault: encrypted, content-addressed storage of evidence files.

Files arrive as `StagedFile`s: already encrypted under a fresh data key in
the vault's staging folder, hashed on the way in. `commit_staged()` turns one
into a `Blob` row inside the caller's transaction. A crash before the
transaction commits leaves at most an unreferenced encrypted object, which
nothing can reach and `sweep()` removes.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError as DbIntegrityError
from django.db import transaction

from . import crypto
from .models import Blob

_key_lock = threading.Lock()
_key_cache: dict[Path, crypto.MasterKey] = {}


def master_key() -> crypto.MasterKey:
    """The master key named by settings, read once per process."""
    path = Path(settings.COPHUB_MASTER_KEY_FILE)
    with _key_lock:
        key = _key_cache.get(path)
        if key is None:
            key = crypto.load_master_key(path)
            _key_cache[path] = key
        return key


def forget_master_key() -> None:
    with _key_lock:
        _key_cache.clear()


def ensure_master_key() -> crypto.MasterKey:
    """Create the master key on first start; refuse to invent one once data exists.

    A new key beside existing evidence would make that evidence unreadable,
    so a missing key file with blobs in the database is an error.
    """
    path = Path(settings.COPHUB_MASTER_KEY_FILE)
    if not path.exists():
        if Blob.objects.exists():
            raise crypto.VaultKeyError(
                f"master key file {path} is missing but the vault holds evidence: restore the key file"
            )
        crypto.create_master_key(path)
        forget_master_key()
    key = master_key()
    sealed_with = Blob.objects.exclude(key_id=key.key_id).values_list("key_id", flat=True).first()
    if sealed_with:
        raise crypto.VaultKeyError(
            f"the vault holds evidence sealed with master key {sealed_with}, but {path} holds key {key.key_id}"
        )
    return key


def vault_dir() -> Path:
    return Path(settings.COPHUB_VAULT_DIR)


def staging_dir() -> Path:
    path = vault_dir() / "staging"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def objects_dir() -> Path:
    path = vault_dir() / "objects"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _object_path(name: str) -> Path:
    return objects_dir() / name[:2] / name


@dataclass
class StagedFile:
    """An encrypted file in staging, with what was learnt while writing it."""

    path: Path
    dek: bytes
    sha256: str = ""
    md5: str = ""
    size: int = 0
    head: bytes = b""
    too_large: bool = False
    original_name: str = ""
    _committed: bool = field(default=False, repr=False)

    def plaintext(self) -> bytes:
        with open(self.path, "rb") as handle:
            return b"".join(crypto.decrypt_stream(handle, self.dek))

    def discard(self) -> None:
        if not self._committed:
            self.path.unlink(missing_ok=True)


HEAD_BYTES = 8192


class StagingWriter:
    """Encrypts, hashes and counts a file written to it in chunks."""

    def __init__(self, original_name: str = "", max_bytes: int | None = None):
        self.max_bytes = settings.COPHUB_MAX_FILE_BYTES if max_bytes is None else max_bytes
        self.staged = StagedFile(path=staging_dir() / f"{uuid.uuid4().hex}.part", dek=crypto.new_dek(), original_name=original_name)
        fd = os.open(self.staged.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._handle = os.fdopen(fd, "wb")
        self._encryptor = crypto.SegmentEncryptor(self._handle, self.staged.dek)
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._head = bytearray()

    def write(self, data: bytes) -> None:
        if self.staged.too_large:
            return
        if self.staged.size + len(data) > self.max_bytes:
            # Stop keeping it, but let the request finish so the reporter
            # gets a clear answer rather than a dropped connection.
            self.staged.too_large = True
            self.staged.size += len(data)
            return
        self.staged.size += len(data)
        if len(self._head) < HEAD_BYTES:
            self._head += data[: HEAD_BYTES - len(self._head)]
        self._sha256.update(data)
        self._md5.update(data)
        self._encryptor.write(data)

    def finish(self) -> StagedFile:
        self._encryptor.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self.staged.sha256 = self._sha256.hexdigest()
        self.staged.md5 = self._md5.hexdigest()
        self.staged.head = bytes(self._head)
        return self.staged

    def abort(self) -> None:
        try:
            self._handle.close()
        finally:
            self.staged.path.unlink(missing_ok=True)


def stage_bytes(data: bytes, original_name: str = "") -> StagedFile:
    writer = StagingWriter(original_name)
    writer.write(data)
    return writer.finish()


def stage_stream(stream, original_name: str = "", chunk_size: int = 256 * 1024) -> StagedFile:
    writer = StagingWriter(original_name)
    try:
        while chunk := stream.read(chunk_size):
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def commit_staged(staged: StagedFile, *, mime: str, kind: str, width: int | None = None, height: int | None = None) -> tuple[Blob, bool]:
    """Store a staged file as a Blob (or find the identical one); returns (blob, created).

    Must run inside the caller's transaction: the row appears only when the
    caller's whole submission commits.
    """
    existing = Blob.objects.filter(sha256=staged.sha256).first()
    if existing is not None:
        staged.discard()
        return existing, False
    key = master_key()
    name = uuid.uuid4().hex
    target = _object_path(name)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(staged.path, target)
    _fsync_dir(target.parent)
    staged._committed = True
    try:
        with transaction.atomic():
            blob = Blob.objects.create(
                sha256=staged.sha256,
                md5=staged.md5,
                size=staged.size,
                mime=mime,
                kind=kind,
                width=width,
                height=height,
                storage_name=name,
                wrapped_key=key.wrap(staged.dek),
                key_id=key.key_id,
                preview_status="pending" if kind == "image" else "none",
            )
    except DbIntegrityError:
        # Another request stored the same content first: keep theirs.
        target.unlink(missing_ok=True)
        return Blob.objects.get(sha256=staged.sha256), False
    return blob, True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dek(blob: Blob, wrapped: bytes | memoryview) -> bytes:
    return master_key().unwrap(bytes(wrapped), blob.key_id)


def iter_plaintext(blob: Blob) -> Iterator[bytes]:
    dek = _dek(blob, blob.wrapped_key)
    with open(_object_path(blob.storage_name), "rb") as handle:
        yield from crypto.decrypt_stream(handle, dek)


def read_plaintext(blob: Blob) -> bytes:
    return b"".join(iter_plaintext(blob))


def store_preview(blob: Blob, data: bytes) -> None:
    """Seal a derived preview image next to its blob."""
    key = master_key()
    dek = crypto.new_dek()
    name = f"{uuid.uuid4().hex}.preview"
    target = _object_path(name)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = staging_dir() / f"{name}.part"
    with open(tmp, "wb") as handle:
        enc = crypto.SegmentEncryptor(handle, dek)
        enc.write(data)
        enc.close()
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    old = blob.preview_name
    blob.preview_name = name
    blob.preview_wrapped_key = key.wrap(dek)
    blob.preview_status = "ready"
    blob.save(update_fields=["preview_name", "preview_wrapped_key", "preview_status"])
    if old:
        _object_path(old).unlink(missing_ok=True)


def read_preview(blob: Blob) -> bytes:
    dek = _dek(blob, blob.preview_wrapped_key)
    with open(_object_path(blob.preview_name), "rb") as handle:
        return b"".join(crypto.decrypt_stream(handle, dek))


def object_path(blob: Blob) -> Path:
    return _object_path(blob.storage_name)


def sweep(older_than_seconds: int = 3600) -> int:
    """Remove staged leftovers and objects no row refers to (after crashes)."""
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in staging_dir().glob("*.part"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    known = set(Blob.objects.values_list("storage_name", flat=True))
    known |= set(Blob.objects.exclude(preview_name="").values_list("preview_name", flat=True))
    for path in objects_dir().glob("*/*"):
        if path.name not in known and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def plaintext_io(blob: Blob) -> io.BytesIO:
    return io.BytesIO(read_plaintext(blob))


def delete_object(name: str) -> None:
    if name:
        _object_path(name).unlink(missing_ok=True)
