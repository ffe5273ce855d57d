"""`cophub url-list`: the published list of harmful addresses as a file, for a network filter that reads one.

    cophub url-list export [--format json|csv|domains|hosts] [--output FILE]

Without --output the list goes to standard output. A file is written beside
its final name and renamed into place when complete, so a filter reading it
never sees half a list. The list is the same as `GET /api/v1/lists/blocked-urls`
(hashbanks/urllist.py) but with every enabled hub and imported list, shared
with providers or not: the file stays on the hub's own network. Messages
follow LANGUAGE_CODE (Vietnamese by default).
"""

from __future__ import annotations

import os
import tempfile

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _

from cophub.audit.services import record
from cophub.hashbanks import urllist
from cophub.hashbanks.management.commands.hashes import _actor


class Command(BaseCommand):
    help = "The published list of harmful addresses (URLs and domains) for network filters."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="write the list to a file or standard output")
        export.add_argument("--format", choices=urllist.FORMATS, default="json",
                            help="json (default) or csv: every entry with its source and review date; domains: one host per "
                                 "line; hosts: 0.0.0.0 host lines")
        export.add_argument("--output", "-o", default="-", help="a path, or - for standard output (the default)")

    def handle(self, *args, **options):
        with translation.override(settings.LANGUAGE_CODE):
            getattr(self, "do_" + options["action"])(options)

    def do_export(self, options):
        format_name, path = options["format"], options["output"]
        with transaction.atomic():
            record("url_list.exported", actor=_actor(), format=format_name, output=path)
        pieces = urllist.write(format_name)
        if path == "-":
            for piece in pieces:
                self.stdout._out.write(piece)  # the raw stream: OutputWrapper would add a line end to every write
            return
        written = self._write_file(path, pieces)
        self.stderr.write(_("Wrote the list of harmful addresses (%(format)s, %(size)d bytes) to %(path)s.")
                          % {"format": format_name, "size": written, "path": path})

    def _write_file(self, path: str, pieces) -> int:
        folder = os.path.dirname(os.path.abspath(path))
        try:
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".url-list-", suffix=".tmp")
        except OSError as error:
            raise CommandError(_("Cannot write %(path)s: %(error)s") % {"path": path, "error": error.strerror}) from None
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                for piece in pieces:
                    stream.write(piece)
                size = stream.tell()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)  # as open() would have made it (mkstemp makes it 0600)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return size
