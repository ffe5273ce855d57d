"""Reading and writing hash lists, one row at a time (a file of 10 million rows never sits in memory).

Readers take a binary stream and yield `ImportRow`s; a row the reader could
not make sense of comes with `error` set, and `services.import_signals`
counts it as refused with its line number. A problem with the whole file
(not UTF-8, no header, a broken CSV quote) raises `FormatError`.

Formats and where they come from:

- ``csv``: cophub's own, header ``signal_type,value,quality,note,source,added_at``
  (what `write_csv` writes). The same reader also takes the CSV files of the
  threatexchange CLI (library ``threatexchange`` 1.2.17), whose columns it
  recognises by name:
  ``threatexchange dataset -P --csv`` writes ``signal_type,signal_str,collab,category,tags``
  (cli/dataset_cmd.py, ``execute_print_signals``), and
  ``threatexchange api fb_threatexchange query`` writes ``id,indicator,type,status,tags,owner_id``
  (cli/api_fb_threatexchange_cmd.py, ``_COLUMNS``), with ThreatExchange
  indicator types such as ``HASH_PDQ``.
- ``te``: "signal_type signal" text lines, the format the threatexchange
  library's local file exchange reads and appends to
  (exchanges/impl/file_api.py: ``LocalFileSignalExchangeAPI.fetch_iter``
  splits each line at its first space, ``report_opinion`` writes
  ``f"{s_type.get_name()} {signal}"``) and the shape of
  ``threatexchange dataset -P -S`` (cli/dataset_cmd.py ``_print_stdout``).
  Without ``-S`` that command adds the collaboration and its metadata after
  the signal: we read the second word and ignore the rest.
- ``te-json``: ThreatExchange threat descriptors: one JSON object per line as
  ``threatexchange api fb_threatexchange query --format jsonl`` writes them
  (keys ``indicator``, ``type``, ``status``, ``tags``), or a Graph API answer
  (``{"data": [descriptor, …]}``, descriptors with ``raw_indicator`` and ``type``
  as in exchanges/clients/fb_threatexchange/descriptor.py ``ThreatDescriptor``)
  or a JSON array of them. A whole JSON document is read at once: use the
  line-per-object form for very large lists.
- ``plain``: one value per line with its type given by the operator (IWF or
  NCMEC-style hash lists, URL lists; ``sha256sum`` output works too: the first
  word of each line is read). Blank lines and ``#`` comments are skipped.

Signal type names: ours (``sha256``, ``md5``, ``pdq``, ``vpdq``, ``url``,
``domain``), the threatexchange library's ``SignalType.get_name()`` values
(``pdq``, ``video_md5``, ``video_sha256``, ``url``; ``photo_md5`` from its
older releases) and ThreatExchange indicator types (the ``INDICATOR_TYPE`` of
its signal classes: ``HASH_PDQ``, ``HASH_MD5``, ``HASH_VIDEO_MD5``, ``URI``, …).
Anything else (``url_md5``, ``raw_text``, ``trend_query``, the library's
vPDQ frame lists) is refused per line.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.utils.translation import gettext as _

from .models import SignalType

MAX_VALUE_LENGTH = 1000  # BankEntry.value's max_length
CSV_HEADER = ["signal_type", "value", "quality", "note", "source", "added_at"]
IMPORT_FORMATS = ["csv", "te", "te-json", "plain"]
EXPORT_FORMATS = ["csv", "te"]

# Every name a list may give a type, to ours. None: known, but not something we can hold.
TYPE_NAMES: dict[str, str | None] = {
    **{value: value for value in SignalType.values},
    # threatexchange SignalType.get_name()
    "video_md5": SignalType.MD5, "photo_md5": SignalType.MD5, "video_sha256": SignalType.SHA256,
    "photo_sha256": SignalType.SHA256, "url_md5": None, "raw_text": None, "trend_query": None,
    # ThreatExchange indicator types (INDICATOR_TYPE of the library's signal classes)
    "hash_pdq": SignalType.PDQ, "hash_md5": SignalType.MD5, "hash_video_md5": SignalType.MD5,
    "hash_photo_md5": SignalType.MD5, "hash_sha256": SignalType.SHA256, "hash_video_sha256": SignalType.SHA256,
    "uri": SignalType.URL, "raw_uri": SignalType.URL, "unclickable_url": SignalType.URL, "domain": SignalType.DOMAIN,
}
# The threatexchange library has no vPDQ-as-one-hash nor domain type: those are left out of a "te" export.
TE_EXPORT_NAMES = {SignalType.PDQ: "pdq", SignalType.MD5: "video_md5", SignalType.SHA256: "video_sha256", SignalType.URL: "url"}
# vPDQ in threatexchange is a list of frames, not our one SHA-256 of them.
TE_VPDQ = "vpdq"


class FormatError(Exception):
    """The file as a whole cannot be read (as opposed to one bad line)."""


@dataclass(slots=True)
class ImportRow:
    signal_type: str
    value: str
    quality: int | None = None
    note: str = ""
    line_number: int = 0
    error: str = ""  # set by a reader for a line it refuses


def refused(line_number: int, reason: str) -> ImportRow:
    return ImportRow("", "", line_number=line_number, error=reason)


def our_type(name: str) -> tuple[str | None, str]:
    """Our signal type for a list's type name, or (None, why not)."""
    key = (name or "").strip().lower()
    if key == TE_VPDQ and name.strip() != SignalType.VPDQ:
        return None, _("vPDQ frame lists are not supported in this format")
    if key not in TYPE_NAMES:
        return None, _("unknown signal type %(name)r") % {"name": name[:40]}
    if TYPE_NAMES[key] is None:
        return None, _("signal type %(name)r is not supported") % {"name": name[:40]}
    return TYPE_NAMES[key], ""


def make_row(type_name: str, value: str, line_number: int, quality: str = "", note: str = "") -> ImportRow:
    """One row with its type mapped and its quality read; `error` says what is wrong with it."""
    signal_type, error = our_type(type_name)
    if error:
        return refused(line_number, error)
    value = (value or "").strip()
    if not value:
        return refused(line_number, _("no value"))
    if len(value) > MAX_VALUE_LENGTH:
        return refused(line_number, _("value too long (%(n)d characters, at most %(max)d)") % {"n": len(value), "max": MAX_VALUE_LENGTH})
    if signal_type == SignalType.URL and value.startswith("[h]"):
        value = "h" + value[3:]  # ThreatExchange's UNCLICKABLE_URL (threatexchange signal_type/url.py)
    parsed_quality = None
    if (quality or "").strip():
        try:
            parsed_quality = int(quality)
        except ValueError:
            return refused(line_number, _("quality %(q)r is not a whole number") % {"q": quality[:20]})
        if not 0 <= parsed_quality <= 100:
            return refused(line_number, _("quality %(q)d is not between 0 and 100") % {"q": parsed_quality})
    return ImportRow(signal_type, value, parsed_quality, (note or "").strip(), line_number)


# --- Text --------------------------------------------------------------------------------------


def text_lines(stream) -> Iterator[tuple[int, str]]:
    """(line number, line) of a binary stream of UTF-8 text, BOM and line ends removed.

    Each line is decoded on its own, so a bad byte is reported on its own line
    (a decoder reading the file in blocks would name the block's first line).
    """
    for number, raw in enumerate(stream, start=1):
        if number == 1:
            if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                raise FormatError(_("The file is UTF-16 text. Save it as UTF-8 and try again."))
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise FormatError(_("Line %(n)d is not UTF-8 text: save the file as UTF-8 and try again.") % {"n": number}) from None


def _skipped(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


# --- Readers -------------------------------------------------------------------------------------


def read_plain(stream, signal_type: str) -> Iterator[ImportRow]:
    """One value per line; the first word of the line (so `sha256sum` output works)."""
    for number, line in text_lines(stream):
        if not _skipped(line):
            yield make_row(signal_type, line.split()[0], number)


def read_te(stream) -> Iterator[ImportRow]:
    """threatexchange "signal_type signal" lines (file_api.py, `dataset -P`)."""
    for number, line in text_lines(stream):
        if _skipped(line):
            continue
        words = line.split()
        if len(words) < 2:
            yield refused(number, _("expected \"signal_type value\""))
        else:
            yield make_row(words[0], words[1], number)


VALUE_COLUMNS = ("value", "signal_str", "indicator", "raw_indicator")
TYPE_COLUMNS = ("signal_type", "type")


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((header.index(name) for name in names if name in header), None)


def _csv_header(reader) -> list[str]:
    for header in reader:
        if any(cell.strip() for cell in header):
            return [cell.strip().lower() for cell in header]
    raise FormatError(_("The file is empty."))


def read_csv(stream) -> Iterator[ImportRow]:
    """cophub CSV, or the threatexchange CLI's CSV (columns found by name; extra columns ignored)."""
    reader = csv.reader(line + "\n" for _n, line in text_lines(stream))
    try:
        yield from _csv_rows(reader, _csv_header(reader))
    except csv.Error as error:
        raise FormatError(_("Line %(n)d is not valid CSV: %(error)s") % {"n": reader.line_num, "error": error}) from None


def _csv_rows(reader, header: list[str]) -> Iterator[ImportRow]:
    value_at, type_at = _column(header, VALUE_COLUMNS), _column(header, TYPE_COLUMNS)
    if value_at is None or type_at is None:
        raise FormatError(_("The first line must be a header naming the columns signal_type and value (e.g. %(header)s).")
                          % {"header": ",".join(CSV_HEADER)})
    quality_at, note_at = _column(header, ("quality",)), _column(header, ("note",))
    status_at, tags_at = _column(header, ("status",)), _column(header, ("tags",))
    width = max(value_at, type_at)

    def cell(row, at):
        return row[at] if at is not None and at < len(row) else ""

    for row in reader:
        number = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if len(row) <= width:
            yield refused(number, _("too few columns"))
        elif cell(row, status_at).strip().upper() == "NON_MALICIOUS":
            yield refused(number, _("marked NON_MALICIOUS in ThreatExchange"))
        else:
            note = cell(row, note_at) or (f"tags: {cell(row, tags_at)}" if cell(row, tags_at).strip() else "")
            yield make_row(row[type_at], row[value_at], number, cell(row, quality_at), note)


def _descriptor_row(item, number: int) -> ImportRow:
    if not isinstance(item, dict):
        return refused(number, _("not a JSON object"))
    if str(item.get("status") or "").upper() == "NON_MALICIOUS":
        return refused(number, _("marked NON_MALICIOUS in ThreatExchange"))
    value = item.get("raw_indicator", item.get("indicator"))
    tags = item.get("tags") or []
    if isinstance(tags, dict):  # the Graph API's {"data": [{"text": …}]}
        tags = [tag.get("text", "") for tag in tags.get("data", [])]
    note = f"tags: {' '.join(map(str, tags))}" if isinstance(tags, list) and tags else ""
    return make_row(str(item.get("type") or ""), str(value or ""), number, note=note)


def read_te_json(stream) -> Iterator[ImportRow]:
    """ThreatExchange descriptors: JSON lines (streamed), or one document (a list or {"data": […]})."""
    lines = text_lines(stream)
    first = next(((n, line) for n, line in lines if line.strip()), None)
    if first is None:
        return
    try:
        item = json.loads(first[1])
    except json.JSONDecodeError:
        item = None  # the first line of a multi-line document
    if isinstance(item, dict) and "data" not in item:
        yield _descriptor_row(item, first[0])
        yield from _json_lines(lines)
        return
    yield from _json_document(first[1] + "\n" + "\n".join(line for _n, line in lines))


def _json_lines(lines) -> Iterator[ImportRow]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            yield _descriptor_row(json.loads(line), number)
        except json.JSONDecodeError as error:
            yield refused(number, _("not valid JSON: %(error)s") % {"error": error.msg})


def _json_document(text: str) -> Iterator[ImportRow]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise FormatError(_("The file is not valid JSON (line %(n)d: %(error)s).") % {"n": error.lineno, "error": error.msg}) from None
    items = document.get("data") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise FormatError(_("Expected a JSON list of ThreatExchange descriptors, or {\"data\": [...]}."))
    for index, item in enumerate(items, start=1):
        yield _descriptor_row(item, index)  # the descriptor's position: a document has no useful line numbers


def reader_for(format_name: str, stream, signal_type: str | None = None) -> Iterator[ImportRow]:
    if format_name == "plain":
        if not signal_type:
            raise FormatError(_("The plain format needs the signal type of the list (--type)."))
        mapped, error = our_type(signal_type)
        if error:
            raise FormatError(error)
        return read_plain(stream, mapped)
    readers = {"csv": read_csv, "te": read_te, "te-json": read_te_json}
    if format_name not in readers:
        raise FormatError(_("Unknown format %(name)r: use one of %(names)s.") % {"name": format_name, "names": ", ".join(IMPORT_FORMATS)})
    return readers[format_name](stream)


# --- Writers --------------------------------------------------------------------------------------


def write_csv(entries: Iterable, out) -> tuple[int, int]:
    """cophub CSV to a text stream; (written, skipped)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    written = 0
    for entry in entries:
        quality = "" if entry.quality is None else entry.quality
        writer.writerow([entry.signal_type, entry.value, quality, entry.note, entry.source, entry.added_at.isoformat()])
        written += 1
    return written, 0


def write_te(entries: Iterable, out) -> tuple[int, int]:
    """threatexchange "signal_type signal" lines; types the library lacks (domain, vpdq) are skipped."""
    written = skipped = 0
    for entry in entries:
        name = TE_EXPORT_NAMES.get(entry.signal_type)
        if name is None:
            skipped += 1
            continue
        out.write(f"{name} {entry.value}\n")
        written += 1
    return written, skipped


def writer_for(format_name: str):
    writers = {"csv": write_csv, "te": write_te}
    if format_name not in writers:
        raise FormatError(_("Unknown format %(name)r: use one of %(names)s.") % {"name": format_name, "names": ", ".join(EXPORT_FORMATS)})
    return writers[format_name]
