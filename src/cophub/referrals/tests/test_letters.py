"""Referral letters: real Vietnamese text in, a Decree 30/2020 style PDF out.

The PDFs are checked with poppler-utils (pdftotext, pdftoppm, pdfinfo), which
scripts/setup-system installs; without them these tests skip, except under
CI=true, where they fail. Every rendered letter and the PNG of its first page
are also copied to test-artifacts/letters/ for a human to look at.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest

from cophub.referrals.letters import (
    FONT_DIR,
    Letter,
    format_place_date,
    render_letter,
)

REPO_ROOT = Path(__file__).resolve().parents[4]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "letters"

_URL_HEAD = "https://platform.example.vn/p/share?ref="
LONG_URL = _URL_HEAD + ("0123456789abcdef" * 20)[: 300 - len(_URL_HEAD)]  # 300 chars
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# Every Vietnamese vowel with every tone, plus Đ/đ, in both cases.
ALL_DIACRITICS = (
    "àáảãạ ăằắẳẵặ âầấẩẫậ èéẻẽẹ êềếểễệ ìíỉĩị òóỏõọ ôồốổỗộ ơờớởỡợ "
    "ùúủũụ ưừứửữự ỳýỷỹỵ đ"
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} (poppler-utils) is not installed; run scripts/setup-system"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _pdftotext(pdf: Path, *args: str) -> str:
    out = subprocess.run(
        [_tool("pdftotext"), *args, str(pdf), "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout.decode("utf-8")
    return unicodedata.normalize("NFC", out)


def _pages(pdf: Path) -> int:
    info = subprocess.run(
        [_tool("pdfinfo"), str(pdf)], check=True, capture_output=True, timeout=60
    ).stdout.decode("utf-8", "replace")
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def _squash(text: str) -> str:
    """Layout text with all whitespace runs made one space."""
    return re.sub(r"\s+", " ", text)


def _save(pdf_bytes: bytes, tmp_path: Path, name: str) -> Path:
    pdf = tmp_path / f"{name}.pdf"
    pdf.write_bytes(pdf_bytes)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pdf, ARTIFACTS / pdf.name)
    return pdf


def make_letter(**overrides) -> Letter:
    fields = dict(
        issuer_parent="UBND quận Lê Chân",
        issuer_name="Phòng Giáo dục và Đào tạo",
        number="12/CV-PGDĐT",
        subject="chuyển thông tin vụ việc xâm hại trẻ em trên không gian mạng",
        place="Hải Phòng",
        date=datetime.date(2026, 12, 1),
        recipients=[
            "Cục An ninh mạng và phòng, chống tội phạm sử dụng công nghệ cao (A05), "
            "Bộ Công an",
            "Tổng đài quốc gia bảo vệ trẻ em 111",
        ],
        paragraphs=[
            "Căn cứ Luật Trẻ em ngày 05 tháng 4 năm 2016 và Nghị định số "
            "56/2017/NĐ-CP; ngày 30 tháng 11 năm 2026, Phòng Giáo dục và Đào tạo "
            "nhận được phản ánh của Trường THCS Ngô Quyền về một tài khoản mạng xã "
            "hội đăng tải hình ảnh nhạy cảm của học sinh.",
            "Để bảo vệ quyền lợi hợp pháp của trẻ em, Phòng Giáo dục và Đào tạo đề "
            "nghị quý cơ quan khẩn trương xác minh, gỡ bỏ nội dung vi phạm và xử lý "
            "theo quy định của pháp luật. Thông tin vụ việc như sau:",
            f"Kiểm tra phông chữ: {ALL_DIACRITICS}; "
            f"{ALL_DIACRITICS.upper()}; ẵ ỹ ự Đ.",
        ],
        facts=[
            ("Mã vụ việc", "CH-2026-000123"),
            ("Phân loại", "Hình ảnh xâm hại tình dục trẻ em"),
            ("Thời điểm tiếp nhận", "30/11/2026 08:15 (giờ Việt Nam)"),
            ("Đường dẫn", "https://mxh.example.vn/bai-viet/987654321"),
            ("SHA-256", SHA256),
        ],
        cc=["Như trên", "Sở GD&ĐT Hải Phòng (để b/c)", "Lưu: VT, CTHSSV"],
        signer_title="Trưởng phòng",
        signer_name="Nguyễn Thị Thu Hằng",
    )
    fields.update(overrides)
    return Letter(**fields)


def test_fonts_are_bundled_with_their_licence():
    for name in ("Regular", "Bold", "Italic", "BoldItalic"):
        assert (FONT_DIR / f"NotoSerif-{name}.ttf").is_file()
    assert "SIL Open Font License" in (FONT_DIR / "OFL.txt").read_text()


@pytest.mark.parametrize(
    "date,expected",
    [
        (datetime.date(2026, 12, 1), "Hải Phòng, ngày 01 tháng 12 năm 2026"),
        (datetime.date(2026, 2, 9), "Hải Phòng, ngày 09 tháng 02 năm 2026"),
        (datetime.date(2026, 3, 15), "Hải Phòng, ngày 15 tháng 3 năm 2026"),
    ],
)
def test_place_and_date_follow_decree_30(date, expected):
    assert format_place_date("Hải Phòng", date) == expected


def test_vietnamese_letter_text_comes_out_exactly(tmp_path):
    pdf_bytes = render_letter(make_letter())
    assert pdf_bytes.startswith(b"%PDF-")
    pdf = _save(pdf_bytes, tmp_path, "letter-vi")
    text = _pdftotext(pdf, "-layout")
    flat = _squash(text)

    for line in (
        "UBND QUẬN LÊ CHÂN",
        "PHÒNG GIÁO DỤC VÀ ĐÀO TẠO",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Số: 12/CV-PGDĐT",
        "Hải Phòng, ngày 01 tháng 12 năm 2026",
        "Kính gửi:",
        "- Tổng đài quốc gia bảo vệ trẻ em 111.",
        "Nơi nhận:",
        "- Như trên;",
        "- Lưu: VT, CTHSSV.",
        "TRƯỞNG PHÒNG",
        "Nguyễn Thị Thu Hằng",
        "CH-2026-000123",
        "Hình ảnh xâm hại tình dục trẻ em",
        "Thời điểm tiếp nhận",
    ):
        assert line in text, line
    assert "V/v chuyển thông tin vụ việc xâm hại trẻ em trên không gian mạng" in flat
    assert "Cục An ninh mạng và phòng, chống tội phạm" in flat
    assert "nhận được phản ánh của Trường THCS Ngô Quyền" in flat
    for word in ALL_DIACRITICS.split() + ALL_DIACRITICS.upper().split():
        assert word in flat, word
    for ch in "Đựẵỹ":
        assert ch in text
    assert SHA256[:40] in text  # may wrap after that in the facts table

    # The motto sits to the right of the issuing body, on the same line.
    motto_line = next(l for l in text.splitlines() if "CỘNG HÒA" in l)
    assert motto_line.index("CỘNG HÒA") > motto_line.index("UBND QUẬN LÊ CHÂN")
    assert "PHÒNG GIÁO DỤC VÀ ĐÀO TẠO" in next(
        l for l in text.splitlines() if "Độc lập" in l
    )
    # Kính gửi comes before the body, the body before Nơi nhận.
    assert text.index("Kính gửi:") < text.index("Căn cứ") < text.index("Nơi nhận:")


def test_first_page_png_is_not_blank(tmp_path):
    pdf = _save(render_letter(make_letter()), tmp_path, "letter-png")
    pdftoppm = _tool("pdftoppm")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = ARTIFACTS / "letter-page1"
    subprocess.run(
        [pdftoppm, "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile",
         str(pdf), str(prefix)],
        check=True, capture_output=True, timeout=60,
    )
    png = prefix.with_suffix(".png")
    assert png.is_file() and png.stat().st_size > 0

    from PIL import Image

    with Image.open(png) as image:
        gray = image.convert("L")
        width, height = gray.size
        assert width > 600 and height > 900  # A4 at 80 dpi: 661 x 935

        def dark(box):
            return sum(1 for p in gray.crop(box).get_flattened_data() if p < 100)

        # The motto, top right; the issuing body, top left.
        assert dark((width // 2, 0, width, height // 8)) > 500
        assert dark((0, 0, width // 2, height // 8)) > 300
        # Nothing is drawn in the right margin (15 mm = 47 px; keep 30 px clear).
        assert dark((width - 30, 0, width, height)) == 0


def test_long_body_makes_several_pages_with_page_numbers(tmp_path):
    body = [
        f"Đoạn {i}: Phòng Giáo dục và Đào tạo đề nghị quý cơ quan phối hợp xác "
        "minh, ngăn chặn và xử lý kịp thời hành vi xâm hại trẻ em trên không gian "
        "mạng, bảo đảm an toàn cho học sinh theo quy định của pháp luật."
        for i in range(1, 61)
    ]
    pdf = _save(render_letter(make_letter(paragraphs=body)), tmp_path, "letter-long")
    pages = _pages(pdf)
    assert pages >= 2
    text = _pdftotext(pdf, "-layout")
    assert text.count("\f") >= pages - 1
    flat = _squash(text)
    assert "Đoạn 1:" in flat and "Đoạn 60:" in flat
    # The signature block ends up on the last page, after the last paragraph.
    last_page = text.split("\f")[pages - 1]
    assert "Nguyễn Thị Thu Hằng" in last_page
    assert flat.index("Đoạn 60:") < flat.index("Nơi nhận:")
    # Page 2 carries its number at the top (Decree 30: from page 2 on).
    assert text.split("\f")[1].strip().splitlines()[0].strip() == "2"


def test_markup_characters_are_rendered_literally(tmp_path):
    tricky = 'A & B <b>không đậm</b> <script>x</script> a<b>c "q" \'s\' 1 > 0 &amp;'
    letter = make_letter(
        subject="xử lý <nội dung> & đường dẫn",
        recipients=["Công ty <TNHH> & Cộng sự"],
        paragraphs=[tricky],
        facts=[("Ghi chú <>&", tricky)],
        cc=["Lưu: VT & <HS>"],
    )
    pdf = _save(render_letter(letter), tmp_path, "letter-markup")
    flat = _squash(_pdftotext(pdf, "-layout"))
    assert tricky in flat
    assert "V/v xử lý <nội dung> & đường dẫn" in flat
    assert "Kính gửi: Công ty <TNHH> & Cộng sự" in flat
    assert "Ghi chú <>&" in flat
    assert "- Lưu: VT & <HS>." in flat


def test_long_url_wraps_inside_the_page(tmp_path):
    assert len(LONG_URL) == 300
    letter = make_letter(
        facts=[("Đường dẫn", LONG_URL), ("SHA-256", SHA256)],
        paragraphs=["Nội dung tại đường dẫn: " + LONG_URL],
    )
    pdf = _save(render_letter(letter), tmp_path, "letter-long-url")
    # Every word box lies within the page, right margin included.
    bbox = _pdftotext(pdf, "-bbox")
    page_width = float(re.search(r'<page width="([\d.]+)"', bbox).group(1))
    right_edges = [float(x) for x in re.findall(r'xMax="([\d.]+)"', bbox)]
    assert right_edges
    assert max(right_edges) <= page_width - 15 * 72 / 25.4 + 1
    # The URL is all there, in pieces: joined back up, it is whole.
    text = _pdftotext(pdf)
    joined = re.sub(r"\s+", "", text)
    assert joined.count(LONG_URL) == 2
    assert not any(LONG_URL in line for line in text.splitlines())  # it did wrap


def test_single_recipient_is_on_the_kinh_gui_line(tmp_path):
    pdf = _save(
        render_letter(make_letter(recipients=["Sở Giáo dục và Đào tạo Hải Phòng"])),
        tmp_path, "letter-one-recipient",
    )
    assert "Kính gửi: Sở Giáo dục và Đào tạo Hải Phòng" in _pdftotext(pdf, "-layout")


def test_a_letter_needs_a_recipient():
    with pytest.raises(ValueError):
        render_letter(make_letter(recipients=[" "]))


def test_without_a_place_the_date_stands_alone():
    assert format_place_date("", datetime.date(2026, 12, 1)) == "Ngày 01 tháng 12 năm 2026"
    assert format_place_date("  ", datetime.date(2026, 3, 5)) == "Ngày 05 tháng 3 năm 2026"
