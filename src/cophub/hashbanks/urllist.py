"""The published list of harmful addresses in the formats filters read, written as a stream of text pieces.

Used by `GET /api/v1/lists/blocked-urls` (a StreamingHttpResponse) and by
`cophub url-list export` (a file). Every writer takes the options of
`services.published_urls` and yields strings of about `PIECE` characters:
nothing holds the whole list.

- ``json``: ``{"generated_at": …, "entries": [{kind, value, host, source,
  listed_at, reviewed_at, review_by, bank}, …], "count": N}``; ``count``
  comes last because it is only known once every entry is written.
- ``csv``: a header row, then one row per entry with the same fields.
- ``domains``: one host per line, each once, for DNS filters: every domain
  entry, and the host of a URL entry only when the URL is a site's front
  page (path "/" or empty, no query). A deep URL never blocks its host.
- ``hosts``: the same hosts as ``0.0.0.0 host`` lines (a hosts file).
"""

from __future__ import annotations

import csv
import io
import json

from django.utils import timezone

from . import services

FORMATS = ("json", "csv", "domains", "hosts")
CONTENT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "domains": "text/plain; charset=utf-8",
                 "hosts": "text/plain; charset=utf-8"}
FIELDS = ("kind", "value", "host", "source", "listed_at", "reviewed_at", "review_by", "bank")
PIECE = 64 * 1024


def _when(value) -> str | None:
    return value.isoformat() if value is not None else None


def entry_document(row: services.PublishedUrl) -> dict:
    return {"kind": str(row.kind), "value": row.value, "host": row.host, "source": row.source, "listed_at": _when(row.listed_at),
            "reviewed_at": _when(row.reviewed_at), "review_by": _when(row.review_by), "bank": row.bank}


def _pieces(lines):
    """Join small lines into pieces of about PIECE characters (fewer writes, fewer network packets)."""
    buffer, size = [], 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= PIECE:
            yield "".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer)


def write_json(**options):
    def lines():
        yield '{"generated_at": %s, "entries": [' % json.dumps(timezone.now().isoformat())
        count = 0
        for row in services.published_urls(**options):
            yield ("," if count else "") + "\n" + json.dumps(entry_document(row), ensure_ascii=False)
            count += 1
        yield '\n], "count": %d}\n' % count

    return _pieces(lines())


def _csv_safe(value) -> str:
    """A cell a spreadsheet will not run as a formula (a source or list name could start with "=")."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(**options):
    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(FIELDS)
        for row in services.published_urls(**options):
            document = entry_document(row)
            writer.writerow([_csv_safe(document[name]) for name in FIELDS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return _pieces(lines())


def write_domains(**options):
    return _pieces(f"{host}\n" for host in services.published_hosts(**options))


def write_hosts(**options):
    return _pieces(f"0.0.0.0 {host}\n" for host in services.published_hosts(**options))


WRITERS = {"json": write_json, "csv": write_csv, "domains": write_domains, "hosts": write_hosts}


def write(format_name: str, **options):
    """The list in this format, as an iterator of text pieces (ValueError for an unknown format)."""
    if format_name not in WRITERS:
        raise ValueError(f"unknown format: {format_name}")
    return WRITERS[format_name](**options)
