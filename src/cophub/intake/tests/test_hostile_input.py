"""Hostile input: a clear message in the reporter's language, the report kept,
nothing stored in plaintext."""

from __future__ import annotations

import io
import struct
import unicodedata
import zlib

import pytest
from PIL import Image, PngImagePlugin

from cophub.conftest import jpeg_bytes, png_bytes
from cophub.intake.models import Submission

from .conftest import child_report, main_of, upload, vault_files

pytestmark = pytest.mark.django_db


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 20000) -> bytes:
    """A valid PNG of side × side black 1-bit pixels: a few kilobytes that unpack to 50 MB."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte, then the packed pixels
    packer = zlib.compressobj(9)
    compressed = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", compressed) + png_chunk(b"IEND", b"")


SVG_WITH_SCRIPT = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert("svg-marker")</script></svg>'
EXE_AS_JPG = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 50 + b"PE\x00\x00" + b"exe-marker" * 20

HOSTILE = [
    ("bomb.png", png_bomb, "Ảnh “bomb.png” quá lớn"),
    ("cut.jpg", lambda: jpeg_bytes(400, 300)[:900], "Ảnh “cut.jpg” bị hỏng"),
    ("drawing.svg", lambda: SVG_WITH_SCRIPT, "Tệp “drawing.svg” không phải là ảnh"),
    ("photo.jpg", lambda: EXE_AS_JPG, "Tệp “photo.jpg” không phải là ảnh"),
    ("empty.png", lambda: b"", "Tệp “empty.png” trống"),
]


@pytest.mark.parametrize(("name", "make", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_file_is_refused_clearly_and_the_report_kept(client, units, settings, name, make, message):
    data = make()
    response = child_report(client, description="Báo cáo vẫn phải được nhận.", files=[upload(name, data)])
    assert response.status_code == 302
    receipt = main_of(client.get(response["Location"]))
    assert "Phản ánh đã được nhận, nhưng có tệp không giữ lại được" in receipt
    assert message in receipt
    submission = Submission.objects.get()
    assert submission.description == "Báo cáo vẫn phải được nhận." and submission.files.count() == 0
    if data:
        for path in vault_files(settings):
            assert data[:16] not in path.read_bytes()


def test_a_file_over_the_limit_is_refused_and_others_kept(client, units, settings):
    settings.COPHUB_MAX_FILE_BYTES = 1024 * 1024
    big = b"\xff\xd8\xff\xe0" + b"\x00" * (1024 * 1024 + 10)
    response = child_report(client, files=[upload("video.jpg", big), upload("ok.png", png_bytes(), "image/png")])
    receipt = main_of(client.get(response["Location"]))
    assert "Tệp “video.jpg” lớn hơn 1 MB." in receipt
    assert Submission.objects.get().files.count() == 1


def test_refusals_speak_english_when_english_was_chosen(english, units):
    response = child_report(english, files=[upload("photo.jpg", EXE_AS_JPG)])
    receipt = main_of(english.get(response["Location"]))
    assert "Your report was received, but some files could not be kept" in receipt
    assert "The file “photo.jpg” is not a picture, video, sound recording or PDF" in receipt


def test_nothing_readable_is_stored_in_the_vault(client, units, settings):
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "png-text-marker-7431")
    png = io.BytesIO()
    Image.new("RGB", (80, 60), (10, 200, 90)).save(png, format="PNG", pnginfo=info)
    jpeg = jpeg_bytes(120, 90)
    pdf = b"%PDF-1.4\n1 0 obj << /Title (pdf-text-marker-9902) >> endobj\ntrailer << >>\n%%EOF\n"
    uploads = {"a.png": png.getvalue(), "b.jpg": jpeg, "c.pdf": pdf, "bomb.png": png_bomb(), "d.svg": SVG_WITH_SCRIPT}
    response = child_report(client, files=[upload(name, data) for name, data in uploads.items()])
    assert response.status_code == 302
    assert Submission.objects.get().files.count() == 3

    stored = vault_files(settings)
    assert len([p for p in stored if "objects" in p.parts]) >= 3
    forbidden = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"%PDF-1.4", b"<svg", b"png-text-marker-7431",
                 b"pdf-text-marker-9902", b"svg-marker", jpeg[:32], jpeg[-32:]]
    for path in stored:
        content = path.read_bytes()
        for needle in forbidden:
            assert needle not in content, f"{needle!r} readable in {path}"
    assert not [p for p in stored if "staging" in p.parts], "nothing may stay behind in staging"


def test_vietnamese_in_nfd_is_stored_as_nfc(client, units):
    text = "Có người đe dọa sẽ đăng ảnh của em lên mạng"
    decomposed = unicodedata.normalize("NFD", text)
    assert decomposed != text
    child_report(client, description=decomposed, where={"where_app": unicodedata.normalize("NFD", "Liên Quân")})
    submission = Submission.objects.get()
    assert submission.description == text and submission.where_app == "Liên Quân"


def test_a_hundred_kilobytes_of_text_is_stored_whole(client, units):
    text = ("Hôm qua có người nhắn tin cho em rất nhiều lần. " * 3000)[:100_000].strip()
    assert len(text.encode()) > 100_000
    response = child_report(client, description=text)
    assert response.status_code == 302
    assert Submission.objects.get().description == text


def test_a_body_without_a_boundary_gets_the_400_page_in_vietnamese(client, units):
    response = client.generic("POST", "/adult/", b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n",
                              content_type="multipart/form-data")
    assert response.status_code == 400
    page = response.content.decode()
    assert '<html lang="vi">' in page and "không đọc được những gì đã gửi" in page
    assert 'href="tel:111"' in page


def test_a_body_that_breaks_mid_upload_gets_400_and_leaves_nothing(client, units, settings):
    boundary = "cophubBoundary"
    png = png_bytes()
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"reporter_kind\"\r\n\r\nparent\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
    ).encode() + png + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"b.png\"\r\n"
        f"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + b"QUJD" * 5000 + b"QQ" + f"\r\n--{boundary}--\r\n".encode()  # base64 cut short mid-file
    response = client.generic("POST", "/adult/", body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400
    assert "không đọc được những gì đã gửi" in response.content.decode()
    assert vault_files(settings) == []
    assert Submission.objects.count() == 0


def test_a_request_over_the_size_limit_is_refused_before_reading(client, units, settings):
    settings.COPHUB_MAX_REQUEST_BYTES = 10_000
    response = child_report(client, files=[upload("big.png", b"\x89PNG" + b"\x00" * 20_000)])
    assert response.status_code == 413
    assert 'href="tel:111"' in response.content.decode()
    assert Submission.objects.count() == 0


def test_a_flood_from_one_client_is_stopped_and_earlier_reports_kept(client, units, fresh_cache):
    fresh_cache.COPHUB_RATE_SUBMIT = "3/10m"
    for number in range(3):
        response = client.post("/adult/", {"reporter_kind": "other_adult", "category": "scam", "description": f"lừa đảo {number}"})
        assert response.status_code == 302
    child_step = client.post("/child/", {"step": "1", "category": "scam", "age_band": "9_12"})
    assert child_step.status_code == 200  # moving between steps is not a report
    blocked = client.post("/adult/", {"reporter_kind": "other_adult", "category": "scam", "description": "lừa đảo 3"})
    assert blocked.status_code == 429
    assert "Vui lòng đợi một chút" in blocked.content.decode()
    assert child_report(client).status_code == 429
    assert sorted(Submission.objects.values_list("description", flat=True)) == ["lừa đảo 0", "lừa đảo 1", "lừa đảo 2"]
    other_client = client.__class__(REMOTE_ADDR="203.0.113.9")
    assert child_report(other_client).status_code == 302


def test_guessing_one_code_from_many_addresses_is_stopped(client, units, fresh_cache):
    fresh_cache.COPHUB_RATE_TRACK = "5/10m"
    statuses = []
    for number in range(7):
        guesser = client.__class__(REMOTE_ADDR=f"198.51.100.{number + 1}")
        statuses.append(guesser.post("/track/", {"code": "ABCD-EFGH", "phrase": f"đoán {number}"}).status_code)
    assert statuses == [200] * 5 + [429] * 2
    fresh = client.__class__(REMOTE_ADDR="198.51.100.200")
    assert fresh.post("/track/", {"code": "ABCD-EFGJ", "phrase": "khác"}).status_code == 200


def test_tracking_from_one_address_is_limited(client, units, fresh_cache):
    fresh_cache.COPHUB_RATE_TRACK = "2/10m"
    statuses = [client.post("/track/", {"code": f"AAAA-AAA{n}", "phrase": "x"}).status_code for n in range(3)]
    assert statuses == [200, 200, 429]
