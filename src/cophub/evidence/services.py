"""What other apps call to put files into the vault and get them out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from . import vault
from .inspect import Inspection, inspect, refuse
from .models import Blob
from .uploads import EncryptedUpload
from .vault import StagedFile


@dataclass
class Accepted:
    blob: Blob
    name: str
    created: bool


@dataclass
class Refused:
    name: str
    code: str
    message: str


def staged_from(item) -> StagedFile:
    """A staged file from an upload, or from (name, bytes) given by code."""
    if isinstance(item, EncryptedUpload):
        return item.staged
    if isinstance(item, StagedFile):
        return item
    name, data = item
    return vault.stage_bytes(data, original_name=name)


@dataclass
class Checked:
    """A staged file that passed inspection, ready to be stored."""

    staged: StagedFile
    name: str
    inspection: Inspection


def check_files(items: Iterable, *, max_files: int | None = None) -> tuple[list[Checked], list[Refused]]:
    """Inspect staged files, before any transaction.

    Decrypting and fully decoding a picture takes tens of milliseconds; done
    inside the transaction it would hold SQLite's single write lock (and the
    audit head row on PostgreSQL) for all of that time. Refused files are
    discarded (they were only ever on disk encrypted) and come back with a
    message in the active language.
    """
    limit = settings.COPHUB_MAX_FILES_PER_SUBMISSION if max_files is None else max_files
    checked: list[Checked] = []
    refused: list[Refused] = []
    for index, item in enumerate(items):
        staged = staged_from(item)
        name = _display_name(staged.original_name)
        result: Inspection = refuse("too_many_files", limit=limit) if index >= limit else inspect(staged)
        if result.ok:
            checked.append(Checked(staged, name, result))
        else:
            staged.discard()
            refused.append(Refused(name, result.refusal, result.message(name)))
    return checked, refused


def store_checked(checked: Iterable[Checked]) -> list[Accepted]:
    """Store inspected files, inside the transaction that records their owner."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("store_checked must run inside the transaction that records the files' owner")
    accepted: list[Accepted] = []
    for item in checked:
        result = item.inspection
        blob, created = vault.commit_staged(item.staged, mime=result.mime, kind=result.kind, width=result.width, height=result.height)
        if created and blob.kind == "image":
            from .tasks import make_preview

            # Enqueued in the same transaction: with the database task
            # backend the job exists exactly when the blob does.
            make_preview.enqueue(blob.pk)
        accepted.append(Accepted(blob, item.name, created))
    return accepted


def accept_files(items: Iterable, *, max_files: int | None = None) -> tuple[list[Accepted], list[Refused]]:
    """Inspect and store in one call, inside the caller's transaction (small files, staff tools)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("accept_files must run inside the transaction that records the files' owner")
    checked, refused = check_files(items, max_files=max_files)
    return store_checked(checked), refused


def discard_checked(checked: Iterable[Checked]) -> None:
    for item in checked:
        item.staged.discard()


def discard_uploads(items: Iterable) -> None:
    for item in items:
        if isinstance(item, EncryptedUpload):
            item.staged.discard()


def _display_name(name: str) -> str:
    name = (name or "").replace("\x00", "").strip()
    return name[-120:] if name else "?"


def get_blob(blob_id: int) -> Blob | None:
    return Blob.objects.filter(pk=blob_id).first()


def iter_clear(blob: Blob) -> Iterator[bytes]:
    return vault.iter_plaintext(blob)


def preview_bytes(blob: Blob) -> bytes | None:
    if blob.preview_status != "ready":
        return None
    return vault.read_preview(blob)


def _is_referenced(blob: Blob) -> bool:
    """Whether any row of any app still points at the blob.

    Found through Django's model metadata (every foreign key to Blob,
    hidden reverse names included), so the vault need not know which apps
    hold evidence.
    """
    for relation in Blob._meta.get_fields(include_hidden=True):
        if relation.is_relation and relation.auto_created and not relation.concrete:
            if relation.related_model.objects.filter(**{relation.field.name: blob}).exists():
                return True
    return False


def release_blobs(blob_ids: Iterable[int]) -> int:
    """Delete blobs nothing refers to any more (e.g. files of an abandoned draft).

    Returns how many were deleted. The encrypted objects go after the rows
    are gone; a crash in between leaves only objects `vault.sweep` removes.
    """
    deleted = 0
    for blob in Blob.objects.filter(pk__in=list(blob_ids)):
        with transaction.atomic():
            locked = Blob.objects.select_for_update().filter(pk=blob.pk).first()
            if locked is None or _is_referenced(locked):
                continue
            names = (locked.storage_name, locked.preview_name)
            locked.delete()
        for name in names:
            vault.delete_object(name)
        deleted += 1
    return deleted
