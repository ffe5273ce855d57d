"""Referral letters as PDF, in the form of a Vietnamese administrative letter.

A referral to an agency (police A05, hotline 111, the department of
education, a platform) goes out as an official letter (công văn) laid out
per Decree 30/2020/NĐ-CP: issuing body and "Số: …" top left, national motto
and place/date top right, "Kính gửi: …", the body, a table of the case facts,
then "Nơi nhận:" bottom left and the signer bottom right.

Text is set in Noto Serif (SIL OFL 1.1), bundled in ``fonts/`` beside this
module, so every Vietnamese letter (ặ, ẫ, ự, ỡ, Ư, Đ …) renders on any
machine, whatever fonts the system has.
"""

from __future__ import annotations

import datetime
import io
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

__all__ = ["Letter", "render_letter", "format_place_date", "FontMissingError"]

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT_FAMILY = "CophubNotoSerif"
_FONT_FILES = {
    FONT_FAMILY: "NotoSerif-Regular.ttf",
    f"{FONT_FAMILY}-Bold": "NotoSerif-Bold.ttf",
    f"{FONT_FAMILY}-Italic": "NotoSerif-Italic.ttf",
    f"{FONT_FAMILY}-BoldItalic": "NotoSerif-BoldItalic.ttf",
}
REGULAR = FONT_FAMILY
BOLD = f"{FONT_FAMILY}-Bold"
ITALIC = f"{FONT_FAMILY}-Italic"
BOLD_ITALIC = f"{FONT_FAMILY}-BoldItalic"

MOTTO = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO_SUB = "Độc lập - Tự do - Hạnh phúc"

# Decree 30/2020, appendix I: A4, margins top/bottom 20-25 mm, left 30-35 mm,
# right 15-20 mm; body 13-14 pt.
PAGE_SIZE = A4
MARGIN_TOP = 20 * mm
MARGIN_BOTTOM = 20 * mm
MARGIN_LEFT = 30 * mm
MARGIN_RIGHT = 15 * mm
FRAME_WIDTH = PAGE_SIZE[0] - MARGIN_LEFT - MARGIN_RIGHT
LEFT_COL = 72 * mm  # fits "PHÒNG GIÁO DỤC VÀ ĐÀO TẠO" on one line
RIGHT_COL = FRAME_WIDTH - LEFT_COL
BODY_SIZE = 13


class FontMissingError(RuntimeError):
    """The bundled Noto Serif files are not where they should be."""


@dataclass
class Letter:
    issuer_parent: str  # e.g. "UBND quận Lê Chân"
    issuer_name: str  # e.g. "Phòng Giáo dục và Đào tạo"
    number: str  # e.g. "12/CV-PGDĐT"
    subject: str  # the "V/v …" line, without "V/v"
    place: str  # e.g. "Hải Phòng"
    date: datetime.date
    recipients: list[str]  # "Kính gửi: …"
    paragraphs: list[str]  # the body, plain text
    facts: list[tuple[str, str]] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)  # "Nơi nhận:"
    signer_title: str = ""
    signer_name: str = ""


_fonts_lock = threading.Lock()
_fonts_ready = False


def _register_fonts() -> None:
    global _fonts_ready
    if _fonts_ready:
        return
    with _fonts_lock:
        if _fonts_ready:
            return
        for name, filename in _FONT_FILES.items():
            path = FONT_DIR / filename
            if not path.is_file():
                raise FontMissingError(
                    f"referral letters need the bundled font {path}; "
                    "reinstall cophub (the package ships src/cophub/referrals/fonts/)"
                )
            pdfmetrics.registerFont(TTFont(name, str(path)))
        pdfmetrics.registerFontFamily(
            FONT_FAMILY, normal=REGULAR, bold=BOLD, italic=ITALIC, boldItalic=BOLD_ITALIC
        )
        _fonts_ready = True


def _text(value: str) -> str:
    """Plain text to Paragraph markup: NFC, escaped, newlines kept."""
    value = unicodedata.normalize("NFC", str(value))
    return escape(value).replace("\r\n", "\n").replace("\n", "<br/>")


def _two_digits_if(n: int, below: int) -> str:
    return f"{n:02d}" if n < below else str(n)


def format_place_date(place: str, date: datetime.date) -> str:
    """"Hải Phòng, ngày 01 tháng 12 năm 2026".

    Decree 30/2020: days below 10 and the months 1 and 2 take a leading zero.
    """
    day = _two_digits_if(date.day, 10)
    month = _two_digits_if(date.month, 3)
    if not place.strip():
        return f"Ngày {day} tháng {month} năm {date.year}"  # no place configured: the date alone, not ", ngày …"
    return f"{place}, ngày {day} tháng {month} năm {date.year}"


class _Rule(Flowable):
    """A horizontal line of a fixed width, centred in the available width."""

    # The gaps are part of the height: table cells ignore spaceBefore/After.
    def __init__(self, width: float, thickness: float = 0.6, gap_above: float = 3,
                 gap_below: float = 2):
        super().__init__()
        self.rule_width = width
        self.thickness = thickness
        self.gap_above = gap_above
        self.gap_below = gap_below

    def wrap(self, avail_width, avail_height):
        self._avail = avail_width
        return avail_width, self.gap_above + self.thickness + self.gap_below

    def draw(self):
        x0 = (self._avail - self.rule_width) / 2
        y = self.gap_below + self.thickness / 2
        self.canv.setLineWidth(self.thickness)
        self.canv.line(x0, y, x0 + self.rule_width, y)


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle(
        "base", fontName=REGULAR, fontSize=BODY_SIZE, leading=BODY_SIZE * 1.3,
        splitLongWords=1, wordWrap=None,
    )

    def s(name, **kw):
        return ParagraphStyle(name, parent=base, **kw)

    return {
        "issuer_parent": s("issuer_parent", fontSize=12, leading=15, alignment=TA_CENTER),
        "issuer_name": s("issuer_name", fontName=BOLD, fontSize=12, leading=15,
                         alignment=TA_CENTER),
        "number": s("number", fontSize=13, leading=16, alignment=TA_CENTER),
        "subject": s("subject", fontSize=12, leading=15, alignment=TA_CENTER),
        "motto": s("motto", fontName=BOLD, fontSize=12, leading=15, alignment=TA_CENTER),
        "motto_sub": s("motto_sub", fontName=BOLD, fontSize=13, leading=16,
                       alignment=TA_CENTER),
        "place_date": s("place_date", fontName=ITALIC, fontSize=13, leading=16,
                        alignment=TA_CENTER),
        "to_single": s("to_single", alignment=TA_CENTER),
        "to_label": s("to_label"),
        "to_item": s("to_item", leftIndent=8, firstLineIndent=-8),
        "body": s("body", alignment=TA_JUSTIFY, firstLineIndent=10 * mm, spaceAfter=6),
        "fact_key": s("fact_key", fontName=BOLD, fontSize=11, leading=14),
        "fact_value": s("fact_value", fontSize=11, leading=14),
        "cc_label": s("cc_label", fontName=BOLD_ITALIC, fontSize=12, leading=15),
        "cc_item": s("cc_item", fontSize=11, leading=13.5, leftIndent=7, firstLineIndent=-7),
        "signer_title": s("signer_title", fontName=BOLD, fontSize=13, leading=16,
                          alignment=TA_CENTER),
        "signer_name": s("signer_name", fontName=BOLD, fontSize=13, leading=16,
                         alignment=TA_CENTER),
    }


_CLEAN = TableStyle([
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), 0),
    ("RIGHTPADDING", (0, 0), (-1, -1), 0),
    ("TOPPADDING", (0, 0), (-1, -1), 0),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
])


def _list_items(items: list[str], style: ParagraphStyle) -> list[Paragraph]:
    """"- a;" "- b;" … "- z." as in Kính gửi and Nơi nhận lists."""
    out = []
    for i, item in enumerate(items):
        item = item.strip().rstrip(";.")
        end = "." if i == len(items) - 1 else ";"
        out.append(Paragraph(f"- {_text(item)}{end}", style))
    return out


def _header(letter: Letter, st: dict[str, ParagraphStyle]) -> Table:
    name_upper = unicodedata.normalize("NFC", letter.issuer_name).upper()
    name_width = min(
        max(pdfmetrics.stringWidth(name_upper, BOLD, 12) / 3, 20 * mm), LEFT_COL * 0.5
    )
    left_top = []
    if letter.issuer_parent.strip():
        left_top.append(Paragraph(_text(letter.issuer_parent.upper()), st["issuer_parent"]))
    left_top += [
        Paragraph(_text(name_upper), st["issuer_name"]),
        _Rule(name_width),
    ]
    sub_width = pdfmetrics.stringWidth(MOTTO_SUB, BOLD, 13)
    right_top = [
        Paragraph(_text(MOTTO), st["motto"]),
        Paragraph(_text(MOTTO_SUB), st["motto_sub"]),
        _Rule(sub_width, gap_above=1.5),
    ]
    left_bottom = [
        Paragraph(f"Số: {_text(letter.number)}", st["number"]),
        Paragraph(f"V/v {_text(letter.subject)}", st["subject"]),
    ]
    right_bottom = [Paragraph(_text(format_place_date(letter.place, letter.date)),
                              st["place_date"])]
    table = Table(
        [[left_top, right_top], [left_bottom, right_bottom]],
        colWidths=[LEFT_COL, RIGHT_COL],
        hAlign="LEFT",
    )
    table.setStyle(_CLEAN)
    table.setStyle(TableStyle([("TOPPADDING", (0, 1), (-1, 1), 6)]))
    return table


def _recipients(letter: Letter, st: dict[str, ParagraphStyle]) -> list[Flowable]:
    recipients = [r for r in letter.recipients if r.strip()]
    if len(recipients) == 1:
        return [Paragraph(f"Kính gửi: {_text(recipients[0].strip())}", st["to_single"])]
    label_width = pdfmetrics.stringWidth("Kính gửi: ", REGULAR, BODY_SIZE) + 2
    left = 25 * mm
    table = Table(
        [[Paragraph("Kính gửi:", st["to_label"]), _list_items(recipients, st["to_item"])]],
        colWidths=[left + label_width, FRAME_WIDTH - left - label_width - 15 * mm],
        hAlign="LEFT",
    )
    table.setStyle(_CLEAN)
    table.setStyle(TableStyle([("ALIGN", (0, 0), (0, 0), "RIGHT"),
                               ("LEFTPADDING", (0, 0), (0, 0), left)]))
    return [table]


def _facts(letter: Letter, st: dict[str, ParagraphStyle]) -> list[Flowable]:
    if not letter.facts:
        return []
    key_width = 45 * mm
    rows = [
        [Paragraph(_text(k), st["fact_key"]), Paragraph(_text(v), st["fact_value"])]
        for k, v in letter.facts
    ]
    table = Table(rows, colWidths=[key_width, FRAME_WIDTH - key_width], hAlign="LEFT",
                  repeatRows=0)
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))
    return [Spacer(1, 4), table, Spacer(1, 6)]


def _signature(letter: Letter, st: dict[str, ParagraphStyle]) -> Flowable:
    left: list[Flowable] = []
    if letter.cc:
        left.append(Paragraph("Nơi nhận:", st["cc_label"]))
        left += _list_items(letter.cc, st["cc_item"])
    right: list[Flowable] = []
    if letter.signer_title.strip():
        right.append(Paragraph(_text(letter.signer_title.upper()), st["signer_title"]))
    right.append(Spacer(1, 24 * mm))  # room for signature and seal
    if letter.signer_name.strip():
        right.append(Paragraph(_text(letter.signer_name), st["signer_name"]))
    table = Table([[left or "", right]], colWidths=[FRAME_WIDTH * 0.45, FRAME_WIDTH * 0.55],
                  hAlign="LEFT")
    table.setStyle(_CLEAN)
    return KeepTogether([Spacer(1, 8), table])


def _page_number(canvas, doc):
    # Decree 30/2020: page numbers from page 2 on, centred in the top margin.
    if doc.page < 2:
        return
    canvas.saveState()
    canvas.setFont(REGULAR, BODY_SIZE)
    canvas.drawCentredString(
        MARGIN_LEFT + FRAME_WIDTH / 2, PAGE_SIZE[1] - MARGIN_TOP / 2 - 4, str(doc.page)
    )
    canvas.restoreState()


def render_letter(letter: Letter) -> bytes:
    """The letter as a PDF (A4, Decree 30/2020 layout), as bytes."""
    if not any(r.strip() for r in letter.recipients):
        raise ValueError("a letter needs at least one recipient (Kính gửi)")
    _register_fonts()
    st = _styles()
    story: list[Flowable] = [_header(letter, st), Spacer(1, 12)]
    story += _recipients(letter, st)
    story.append(Spacer(1, 10))
    for paragraph in letter.paragraphs:
        if paragraph.strip():
            story.append(Paragraph(_text(paragraph.strip()), st["body"]))
    story += _facts(letter, st)
    story.append(_signature(letter, st))

    buffer = io.BytesIO()
    doc = BaseDocTemplate(
        buffer,
        pagesize=PAGE_SIZE,
        leftMargin=MARGIN_LEFT,
        rightMargin=MARGIN_RIGHT,
        topMargin=MARGIN_TOP,
        bottomMargin=MARGIN_BOTTOM,
        title=unicodedata.normalize("NFC", f"{letter.number} V/v {letter.subject}"),
        author=unicodedata.normalize("NFC", letter.issuer_name),
        subject=unicodedata.normalize("NFC", letter.subject),
        creator="cophub",
        lang="vi",
        invariant=True,
    )
    # No frame padding: the margins above are the text area's edges.
    frame = Frame(MARGIN_LEFT, MARGIN_BOTTOM, FRAME_WIDTH,
                  PAGE_SIZE[1] - MARGIN_TOP - MARGIN_BOTTOM,
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0,
                  id="text")
    doc.addPageTemplates([PageTemplate(id="letter", frames=[frame], onPage=_page_number)])
    doc.build(story)
    return buffer.getvalue()
