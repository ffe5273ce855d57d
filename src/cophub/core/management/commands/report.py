"""`cophub report …`: file reports and files through a hub's provider API.

A thin shell over cophub.client (it needs no database):

    cophub report --url https://hub.example --key cph_live_… open --type scam --finish
    cophub report open --type sextortion --time 2026-11-20T21:15:00+07:00 --summary "…" \
        --content-url https://chat.example/c/1 --app ChatApp --escalate "threat of self-harm"
    cophub report file rpt_… screenshot.png --grade A2 --viewed
    cophub report file rpt_… --sha256 9f86d0… --name clip.mp4
    cophub report finish rpt_…  |  retract rpt_…  |  show rpt_…
    cophub report batch reports.jsonl

`--url` and `--key` default to the environment's COPHUB_URL and COPHUB_API_KEY.
Prints the hub's JSON. Exit status: 0 success, 1 an error answer of the hub
(its code and detail on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone

from django.core.management.base import BaseCommand

from cophub.client import CophubClient, CophubError

BATCH_SIZE = 100
KINDS = ["web_page", "chat", "game", "email", "social", "other"]


def _hub_options(parser, default) -> None:
    parser.add_argument("--url", dest="hub_url", default=default, metavar="URL", help="the hub's address (env COPHUB_URL)")
    parser.add_argument("--key", dest="api_key", default=default, metavar="KEY", help="an API key (env COPHUB_API_KEY)")


class Command(BaseCommand):
    help = "File reports and files through a hub's provider API (see docs/api.md)."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        _hub_options(parser, None)
        parser.add_argument("--retries", type=int, default=3, help="retries after a connection error, 429 or 5xx (same Idempotency-Key)")
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
        # The hub options may come after the subcommand too; SUPPRESS keeps a value given before it.
        common = argparse.ArgumentParser(add_help=False)
        _hub_options(common, argparse.SUPPRESS)
        idem = argparse.ArgumentParser(add_help=False)
        idem.add_argument("--idempotency-key", help="reuse to retry safely (a new UUID by default)")
        sub = parser.add_subparsers(dest="action", metavar="{open,file,finish,retract,show,batch,hashes}", required=True)

        p = sub.add_parser("open", parents=[common, idem], help="open a report (a draft, or filed at once with --finish)")
        p.add_argument("--type", dest="incident_type", required=True, help="category code: csam, grooming, sextortion, scam, …")
        p.add_argument("--time", dest="incident_time", help="ISO 8601 with a time zone (default: now)")
        p.add_argument("--summary")
        p.add_argument("--escalate", dest="escalate_reason", metavar="REASON", help="urgent: the case opens at P1")
        p.add_argument("--content-url", help="where the content is (an internet detail)")
        p.add_argument("--app", help="the app or game (an internet detail)")
        p.add_argument("--kind", choices=KINDS, help="kind of the internet detail (default: web_page, or chat with only --app)")
        p.add_argument("--annotation", dest="annotations", action="append", help="repeatable: sextortion, minor_to_minor, …")
        p.add_argument("--username", help="the reported user's username")
        p.add_argument("--age-band", help="the victim's age band: under_9, 9_12, 13_15, 16_17, adult, unsure")
        p.add_argument("--finish", action="store_true", help="file the report in the same call")

        p = sub.add_parser("file", parents=[common, idem], help="upload a file to a draft, or declare one by --sha256/--md5")
        p.add_argument("report_id")
        p.add_argument("path", nargs="?", help="the file to upload")
        p.add_argument("--sha256")
        p.add_argument("--md5")
        p.add_argument("--name", dest="original_name", help="original file name")
        p.add_argument("--grade", choices=["A1", "A2", "B1", "B2"])
        p.add_argument("--viewed", dest="viewed_by_provider", action="store_true", default=None, help="the provider viewed it")
        p.add_argument("--public", dest="publicly_available", action="store_true", default=None, help="it was publicly available")
        p.add_argument("--metadata", help="a JSON object of further file details")

        for name, text in (("finish", "file a draft"), ("retract", "withdraw a draft")):
            p = sub.add_parser(name, parents=[common, idem], help=text)
            p.add_argument("report_id")
        p = sub.add_parser("show", parents=[common], help="a report's state")
        p.add_argument("report_id")
        p = sub.add_parser("batch", parents=[common, idem], help="one report (JSON object) per line; sent 100 at a time")
        p.add_argument("jsonl", metavar="FILE.jsonl", help="'-' reads standard input")
        p = sub.add_parser("hashes", parents=[common], help="changes to the hub's hash list after a cursor (scope hashes:read)")
        p.add_argument("--cursor", type=int, default=0, help="the cursor of the previous answer (0: the whole list)")
        p.add_argument("--limit", type=int, default=1000, help="at most this many changes (1-10000)")
        self._parser = parser

    def handle(self, *args, **options):
        parser = self._parser
        url = options.get("hub_url") or os.environ.get("COPHUB_URL")
        key = options.get("api_key") or os.environ.get("COPHUB_API_KEY")
        if not url or not key:
            self._usage(parser, "the hub's address and an API key are needed: --url and --key, or COPHUB_URL and COPHUB_API_KEY")
        client = CophubClient(url, key, timeout=options["timeout"], retries=options["retries"])
        try:
            result, failed = getattr(self, f"_{options['action']}")(client, options, parser)
        except CophubError as error:
            sys.stderr.write(f"error: {error.code} ({error.status}): {error.detail or error.title}\n")
            for item in error.errors:
                sys.stderr.write(f"  {'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}\n")
            raise SystemExit(1)
        self.stdout.write(json.dumps(result, ensure_ascii=False, indent=2))
        if failed:
            raise SystemExit(1)

    @staticmethod
    def _usage(parser, message: str):
        # From the command line argparse exits with status 2; called in code it raises CommandError.
        parser.error(message)

    # -- actions: each returns (JSON to print, whether something failed) --
    def _open(self, client, o, parser):
        detail = {}
        if o["content_url"] or o["app"] or o["kind"]:
            kind = o["kind"] or ("chat" if o["app"] and not o["content_url"] else "web_page")
            detail = {"kind": kind, **{k: v for k, v in (("url", o["content_url"]), ("app", o["app"])) if v}}
        when = o["incident_time"] or datetime.now(timezone.utc).isoformat(timespec="seconds")
        report = client.open_report(
            o["incident_type"], when, summary=o["summary"], escalate_reason=o["escalate_reason"], annotations=o["annotations"],
            internet_details=[detail] if detail else None, reported_user={"username": o["username"]} if o["username"] else None,
            victim={"age_band": o["age_band"]} if o["age_band"] else None, finish=o["finish"], idempotency_key=o["idempotency_key"])
        return report.raw, False

    def _file(self, client, o, parser):
        metadata = {}
        if o["metadata"]:
            try:
                metadata = json.loads(o["metadata"])
            except ValueError:
                self._usage(parser, "--metadata must be a JSON object")
            if not isinstance(metadata, dict):
                self._usage(parser, "--metadata must be a JSON object")
        metadata.update({k: o[k] for k in ("original_name", "grade", "viewed_by_provider", "publicly_available") if o[k] is not None})
        if o["path"]:
            if o["sha256"] or o["md5"]:
                self._usage(parser, "give either a PATH to upload or --sha256/--md5 to declare, not both")
            if not os.path.isfile(o["path"]):
                self._usage(parser, f"no such file: {o['path']}")
            result = client.upload_file(o["report_id"], o["path"], metadata=metadata or None, idempotency_key=o["idempotency_key"])
        elif o["sha256"] or o["md5"]:
            result = client.declare_file(o["report_id"], sha256=o["sha256"], md5=o["md5"], metadata=metadata, idempotency_key=o["idempotency_key"])
        else:
            self._usage(parser, "give a PATH to upload, or --sha256/--md5 to declare a file by its hashes")
        return {"id": result.id, "sha256": result.sha256, "md5": result.md5, "size": result.size, "original_name": result.original_name,
                "hash_only": result.hash_only, "metadata": result.metadata}, False

    def _finish(self, client, o, parser):
        return client.finish(o["report_id"], idempotency_key=o["idempotency_key"]).raw, False

    def _retract(self, client, o, parser):
        return client.retract(o["report_id"], idempotency_key=o["idempotency_key"]).raw, False

    def _show(self, client, o, parser):
        return client.get_report(o["report_id"]).raw, False

    def _hashes(self, client, o, parser):
        page = client.hash_changes(o["cursor"], limit=o["limit"])
        def item(change, when):
            return {"signal_type": change.signal_type, "value": change.value, when: change.at.isoformat() if change.at else None}
        return {"added": [item(c, "added_at") for c in page.added], "removed": [item(c, "removed_at") for c in page.removed],
                "cursor": page.cursor, "more": page.more}, False

    def _batch(self, client, o, parser):
        reports = self._read_jsonl(o["jsonl"], parser)
        if not reports:
            self._usage(parser, f"{o['jsonl']} holds no reports")
        combined = {"succeeded": 0, "failed": 0, "results": []}
        for start in range(0, len(reports), BATCH_SIZE):
            chunk = reports[start:start + BATCH_SIZE]
            key = f"{o['idempotency_key']}-{start // BATCH_SIZE}" if o["idempotency_key"] else None
            result = client.batch(chunk, idempotency_key=key)
            combined["succeeded"] += result.succeeded
            combined["failed"] += result.failed
            for item in result.raw.get("results", []):
                combined["results"].append({**item, "index": item["index"] + start})
        if combined["failed"]:
            sys.stderr.write(f"error: {combined['failed']} of {len(reports)} reports were refused; see their problems\n")
        return combined, combined["failed"] > 0

    def _read_jsonl(self, path: str, parser) -> list[dict]:
        try:
            handle = sys.stdin if path == "-" else open(path, encoding="utf-8")
        except OSError as exc:
            self._usage(parser, f"cannot read {path}: {exc.strerror}")
        reports = []
        with handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    self._usage(parser, f"{path}:{number}: not JSON")
                if not isinstance(item, dict):
                    self._usage(parser, f"{path}:{number}: not a JSON object")
                reports.append(item)
        return reports


