"""`cophub hashes`: hash lists from the command line, for lists too big for the console's upload.

    cophub hashes banks
    cophub hashes create-bank NAME --kind imported|allow [--origin …] [--threshold 31] [--min-quality 50] [--shared]
    cophub hashes import FILE|- --bank NAME_OR_ID [--format csv|te|te-json|plain] [--type sha256] [--source …] [--quiet]
    cophub hashes export FILE|- [--bank NAME_OR_ID …] [--format csv|te] [--types pdq,sha256] [--quiet]
    cophub hashes disable-bank NAME_OR_ID --reason …
    cophub hashes enable-bank NAME_OR_ID --reason …

Formats: hashbanks/formats.py. Messages follow LANGUAGE_CODE (Vietnamese by default).
"""

from __future__ import annotations

import getpass
import os
import sys
from contextlib import contextmanager

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q
from django.utils import translation
from django.utils.translation import gettext as _
from tqdm import tqdm

from cophub.hashbanks import formats, services
from cophub.hashbanks.models import Bank, BankKind, SignalType

REFUSALS_PRINTED = 20


def _actor() -> str:
    """Who ran the command, for the audit log (no web account behind a shell)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def find_bank(name_or_id: str) -> Bank:
    if name_or_id.isdigit():
        bank = Bank.objects.filter(pk=int(name_or_id)).first()
        if bank:
            return bank
    banks = list(Bank.objects.filter(name=name_or_id)[:2])
    if len(banks) > 1:
        raise CommandError(_("Several hash lists are named %(name)r: give its number (see `cophub hashes banks`).") % {"name": name_or_id})
    if not banks:
        raise CommandError(_("No hash list %(name)r (see `cophub hashes banks`).") % {"name": name_or_id})
    return banks[0]


class Command(BaseCommand):
    help = "Hash lists: list, create, import, export, switch on and off."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("banks", help="list the hash lists with their counts")
        create = sub.add_parser("create-bank", help="a new imported list or allow list")
        create.add_argument("name")
        create.add_argument("--kind", choices=[BankKind.IMPORTED, BankKind.ALLOW], required=True)
        create.add_argument("--origin", default="")
        create.add_argument("--description", default="")
        create.add_argument("--threshold", type=int, default=31, help="largest PDQ distance that matches")
        create.add_argument("--min-quality", type=int, default=50, help="least PDQ quality kept")
        create.add_argument("--shared", action="store_true", help="send its entries to providers")
        imp = sub.add_parser("import", help="add the signals of a file to a list")
        imp.add_argument("file", help="a path, or - for standard input")
        imp.add_argument("--bank", required=True)
        imp.add_argument("--format", default="csv")
        imp.add_argument("--type", help="the signal type of a plain list (sha256, md5, pdq, url, domain)")
        imp.add_argument("--source", default="")
        imp.add_argument("--batch-size", type=int, default=5000)
        imp.add_argument("--quiet", action="store_true", help="no progress bar")
        exp = sub.add_parser("export", help="write the enabled entries of lists to a file")
        exp.add_argument("file", help="a path, or - for standard output")
        exp.add_argument("--bank", action="append", default=[], help="(repeatable) default: every enabled real list except allow lists")
        exp.add_argument("--format", default="csv")
        exp.add_argument("--types", default="", help="comma-separated signal types, e.g. pdq,sha256")
        exp.add_argument("--quiet", action="store_true")
        for name in ("disable-bank", "enable-bank"):
            switch = sub.add_parser(name)
            switch.add_argument("bank")
            switch.add_argument("--reason", required=True)

    def handle(self, *args, **options):
        with translation.override(settings.LANGUAGE_CODE):
            handler = getattr(self, "do_" + options["action"].replace("-", "_"))
            handler(options)

    # --- Subcommands ---------------------------------------------------------------------------

    def do_banks(self, options):
        banks = Bank.objects.annotate(active=Count("entries", filter=Q(entries__enabled=True)), total=Count("entries")).order_by("pk")
        self.stdout.write(_("id  name  kind  state  shared  entries (enabled/all)  PDQ threshold  min quality"))
        for bank in banks:
            state = _("enabled") if bank.enabled else _("disabled")
            shared = _("shared") if services.reaches_feed(bank) else "—"
            sandbox = " (sandbox)" if bank.sandbox else ""
            self.stdout.write(f"{bank.pk}  {bank.name}{sandbox}  {bank.get_kind_display()}  {state}  {shared}  "
                              f"{bank.active}/{bank.total}  {bank.pdq_threshold}  {bank.min_quality}")

    def do_create_bank(self, options):
        try:
            bank = services.create_bank(options["name"], options["kind"], actor=_actor(), origin=options["origin"],
                                        description=options["description"], pdq_threshold=options["threshold"],
                                        min_quality=options["min_quality"], shared=options["shared"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(_("Created hash list %(id)d: %(name)s") % {"id": bank.pk, "name": bank.name})

    def do_import(self, options):
        bank = find_bank(options["bank"])
        source = options["source"] or f"import:{os.path.basename(options['file']) or 'stdin'}"
        with self._input(options["file"]) as stream, self._bar(options, _("Importing")) as bar:
            try:
                rows = formats.reader_for(options["format"], stream, options["type"])
                result = services.import_signals(bank, rows, actor=_actor(), source=source, progress=bar.update,
                                                 batch_size=options["batch_size"])
            except formats.FormatError as error:
                raise CommandError(str(error)) from None
        self._print_import(bank, result)

    def do_export(self, options):
        banks = [find_bank(b) for b in options["bank"]] or Bank.objects.filter(enabled=True, sandbox=False).exclude(kind=BankKind.ALLOW)
        types = [t.strip() for t in options["types"].split(",") if t.strip()]
        unknown = set(types) - set(SignalType.values)
        if unknown:
            raise CommandError(_("Unknown signal type: %(types)s") % {"types": ", ".join(sorted(unknown))})
        try:
            write = formats.writer_for(options["format"])
        except formats.FormatError as error:
            raise CommandError(str(error)) from None
        with self._output(options["file"]) as out, self._bar(options, _("Exporting")) as bar:
            written, skipped = write(_counted(services.export_signals(banks, types), bar), out)
        self.stderr.write(_("Exported %(written)d entries (%(skipped)d skipped: a type this format has no name for).")
                          % {"written": written, "skipped": skipped})

    def do_disable_bank(self, options):
        self._switch(options, False)

    def do_enable_bank(self, options):
        self._switch(options, True)

    # --- Helpers ---------------------------------------------------------------------------------

    def _switch(self, options, enabled: bool):
        bank = find_bank(options["bank"])
        if bank.enabled == enabled:
            self.stdout.write(_("Nothing to do: the list is already in that state."))
            return
        changes = services.set_bank_enabled(bank, enabled, actor=_actor(), reason=options["reason"])
        message = _("Hash list %(name)s enabled; %(n)d entries sent to providers again.") if enabled else \
            _("Hash list %(name)s disabled; providers are told to remove %(n)d entries.")
        self.stdout.write(message % {"name": bank.name, "n": changes})

    @contextmanager
    def _input(self, path: str):
        if path == "-":
            yield sys.stdin.buffer
            return
        try:
            stream = open(path, "rb", buffering=1 << 20)
        except OSError as error:
            raise CommandError(_("Cannot read %(path)s: %(error)s") % {"path": path, "error": error.strerror}) from None
        with stream:
            yield stream

    @contextmanager
    def _output(self, path: str):
        if path == "-":
            yield self.stdout._out  # the raw stream: OutputWrapper would add a line end to every write
            return
        try:
            stream = open(path, "w", encoding="utf-8", newline="")
        except OSError as error:
            raise CommandError(_("Cannot write %(path)s: %(error)s") % {"path": path, "error": error.strerror}) from None
        with stream:
            yield stream

    def _bar(self, options, label: str):
        """A progress bar with rows/s on stderr, only for a person watching (a TTY) and not --quiet."""
        shown = not options["quiet"] and self.stderr.isatty()
        return tqdm(desc=label, unit=" " + _("rows"), unit_scale=True, disable=not shown, file=self.stderr._out,
                    mininterval=0.5)

    def _print_import(self, bank, result):
        for line, reason in result.refused[:REFUSALS_PRINTED]:
            self.stderr.write(_("line %(line)d: %(reason)s") % {"line": line, "reason": reason})
        if result.refused_count > REFUSALS_PRINTED:
            self.stderr.write(_("… and %(n)d more refused lines.") % {"n": result.refused_count - REFUSALS_PRINTED})
        self.stdout.write(_("Imported into %(bank)s: %(read)d rows read, %(added)d added, %(again)d enabled again, "
                            "%(unchanged)d already there, %(refused)d refused.")
                          % {"bank": bank.name, "read": result.read, "added": result.added, "again": result.enabled_again,
                             "unchanged": result.unchanged, "refused": result.refused_count})


def _counted(rows, bar):
    for row in rows:
        bar.update(1)
        yield row
