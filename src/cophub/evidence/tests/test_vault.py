"""The vault keeps files encrypted, content-addressed, and useless without the key."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest
from django.db import transaction

from cophub.conftest import jpeg_bytes, png_bytes
from cophub.evidence import crypto, vault
from cophub.evidence.models import Blob
from cophub.evidence.services import accept_files

KNOWN_TEXT = b"Secret words nobody may read on disk: hoa sen trang 12345"


def stored_files(settings) -> list[Path]:
    return [p for p in Path(settings.COPHUB_VAULT_DIR).rglob("*") if p.is_file()]


def store(*items):
    with transaction.atomic():
        return accept_files(list(items))


@pytest.mark.django_db
def test_stored_files_hold_no_plaintext(settings):
    png, jpeg = png_bytes(300, 200), jpeg_bytes(300, 200)
    pdf = b"%PDF-1.4\n" + KNOWN_TEXT + b"\n%%EOF\n"
    accepted, refused = store(("a.png", png), ("b.jpg", jpeg), ("c.pdf", pdf))
    assert refused == [] and len(accepted) == 3
    files = stored_files(settings)
    assert len(files) >= 3 + 2  # three objects and two image previews
    for path in files:
        data = path.read_bytes()
        assert data.startswith(crypto.MAGIC)
        for marker in (b"\x89PNG", b"\xff\xd8\xff", b"%PDF", b"JFIF", KNOWN_TEXT, KNOWN_TEXT[:16]):
            assert marker not in data, f"{marker!r} found in {path}"
    # Names on disk say nothing about the content either.
    for blob in Blob.objects.all():
        assert all(blob.sha256 not in str(p) and blob.md5 not in str(p) for p in files)


@pytest.mark.django_db
def test_round_trip_and_hashes():
    png = png_bytes(120, 80)
    (item,), _ = store(("a.png", png))
    import hashlib

    assert item.blob.sha256 == hashlib.sha256(png).hexdigest()
    assert item.blob.md5 == hashlib.md5(png).hexdigest()
    assert item.blob.mime == "image/png" and (item.blob.width, item.blob.height) == (120, 80)
    assert vault.read_plaintext(item.blob) == png


@pytest.mark.django_db
def test_identical_files_are_stored_once(settings):
    png = png_bytes(50, 50)
    first, _ = store(("one.png", png))
    second, _ = store(("renamed.png", png))
    assert first[0].blob.pk == second[0].blob.pk
    assert first[0].created and not second[0].created
    assert Blob.objects.count() == 1
    objects = [p for p in stored_files(settings) if "objects" in p.parts and not p.name.endswith(".preview")]
    assert len(objects) == 1
    assert not list((Path(settings.COPHUB_VAULT_DIR) / "staging").glob("*.part"))


@pytest.mark.django_db
def test_wrong_master_key_fails_loudly_and_reveals_nothing(settings, tmp_path):
    (item,), _ = store(("c.pdf", b"%PDF-1.4\n" + KNOWN_TEXT))
    blob = item.blob
    wrong = tmp_path / "wrong.key"
    crypto.create_master_key(wrong)
    settings.COPHUB_MASTER_KEY_FILE = wrong
    vault.forget_master_key()
    with pytest.raises(crypto.VaultKeyError) as excinfo:
        vault.read_plaintext(blob)
    assert KNOWN_TEXT.decode()[:10] not in str(excinfo.value)
    assert blob.key_id in str(excinfo.value)
    # Start-up refuses to run with a key that does not match the evidence …
    with pytest.raises(crypto.VaultKeyError):
        vault.ensure_master_key()
    # … and will not invent a new key when the key file is gone.
    wrong.unlink()
    vault.forget_master_key()
    with pytest.raises(crypto.VaultKeyError):
        vault.ensure_master_key()
    assert not wrong.exists()


@pytest.mark.django_db
def test_forged_key_id_still_fails_on_the_tag(settings, tmp_path):
    (item,), _ = store(("c.pdf", b"%PDF-1.4\n" + KNOWN_TEXT))
    other = crypto.MasterKey(os.urandom(32))
    with pytest.raises(crypto.VaultKeyError):
        other.unwrap(bytes(item.blob.wrapped_key), other.key_id)


def test_malformed_key_files_are_refused(tmp_path):
    path = tmp_path / "k"
    path.write_text("not base64 at all!!")
    with pytest.raises(crypto.VaultKeyError):
        crypto.load_master_key(path)
    path.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(crypto.VaultKeyError):
        crypto.load_master_key(path)
    with pytest.raises(crypto.VaultKeyError):
        crypto.load_master_key(tmp_path / "missing")


@pytest.mark.parametrize("size", [0, 1, crypto.SEGMENT_SIZE - 1, crypto.SEGMENT_SIZE, crypto.SEGMENT_SIZE + 1, 3 * crypto.SEGMENT_SIZE + 17])
def test_stream_round_trip_at_segment_edges(size):
    dek = crypto.new_dek()
    data = os.urandom(size)
    sealed = crypto.encrypt_bytes(data, dek)
    assert b"".join(crypto.decrypt_stream(io.BytesIO(sealed), dek)) == data


def test_tampering_truncation_and_reordering_are_detected():
    dek = crypto.new_dek()
    data = os.urandom(3 * crypto.SEGMENT_SIZE + 100)
    sealed = crypto.encrypt_bytes(data, dek)
    flipped = bytearray(sealed)
    flipped[crypto.HEADER_SIZE + 10] ^= 1
    segment = crypto.SEGMENT_SIZE + crypto.TAG_SIZE
    header, body = sealed[: crypto.HEADER_SIZE], sealed[crypto.HEADER_SIZE:]
    segments = [body[i : i + segment] for i in range(0, len(body), segment)]
    cases = {
        "bit flipped": bytes(flipped),
        "cut at a segment boundary": header + b"".join(segments[:2]),
        "last segment dropped mid-way": sealed[:-5],
        "segments swapped": header + segments[1] + segments[0] + b"".join(segments[2:]),
        "not a vault object": b"PK\x03\x04" + sealed[4:],
    }
    for name, variant in cases.items():
        with pytest.raises(crypto.IntegrityError):
            b"".join(crypto.decrypt_stream(io.BytesIO(variant), dek))
            pytest.fail(name)


@pytest.mark.django_db
def test_large_file_streams_through_without_plaintext_on_disk(settings):
    settings.COPHUB_MAX_FILE_BYTES = 8 * 1024 * 1024
    payload = b"%PDF-1.4\n" + (KNOWN_TEXT * 100_000)[: 6 * 1024 * 1024]
    staged = vault.stage_stream(io.BytesIO(payload), original_name="big.pdf")
    assert KNOWN_TEXT not in staged.path.read_bytes()
    (item,), _ = store(staged)
    assert item.blob.size == len(payload)
    assert b"".join(vault.iter_plaintext(item.blob)) == payload


@pytest.mark.django_db
def test_sweep_removes_only_unreferenced_objects(settings):
    (kept,), _ = store(("a.png", png_bytes()))
    orphan = vault.stage_bytes(b"%PDF-1.4 orphan")
    stray = vault.objects_dir() / "ab" / "abandoned"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"x")
    assert vault.sweep(older_than_seconds=-1) == 2
    assert not orphan.path.exists() and not stray.exists()
    assert vault.read_plaintext(kept.blob) == png_bytes()


@pytest.mark.django_db
def test_release_deletes_only_unreferenced_blobs(units, settings):
    from cophub.evidence.services import release_blobs
    from cophub.intake.services import receive

    kept = receive(unit=units["school_a"], channel="web_child", category="scam", files=[("kept.png", png_bytes(20, 20))])
    kept_blob = kept.submission.files.get().blob
    (loose,), _ = store(("loose.png", png_bytes(30, 30)))
    loose.blob.refresh_from_db()
    loose_path, preview_path = vault.object_path(loose.blob), vault._object_path(loose.blob.preview_name)
    assert loose_path.exists() and preview_path.exists()

    assert release_blobs([kept_blob.pk, loose.blob.pk]) == 1
    assert not Blob.objects.filter(pk=loose.blob.pk).exists()
    assert not loose_path.exists() and not preview_path.exists()
    assert vault.read_plaintext(Blob.objects.get(pk=kept_blob.pk)) == png_bytes(20, 20)
    assert release_blobs([kept_blob.pk]) == 0
