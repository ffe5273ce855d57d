"""Provider API reports per second through `cophub serve`.

    .venv/bin/python bench/provider_api.py [--seconds 10] [--rounds 3] [--clients 16]
                                           [--databases sqlite,postgres] [--hub-env NAME=VALUE]

For each database a real `cophub serve` (gunicorn + task worker, as deployed;
not a development server) starts on a free loopback port through
`cophub.core.livehub.LiveHub`, with its own data folder and, for PostgreSQL,
its own fresh database, dropped afterwards. The per-key API rate limit is
raised out of the way (COPHUB_API_RATE=1000000/m): every client uses the
same key. A live key for a provider at a district is made inside the hub
with `cophub shell -c`.

Each of `--clients` keep-alive clients files single-call reports back to
back: `POST /api/v1/reports` with `finish: true`, two hash-only files with
random distinct hashes, and an `Idempotency-Key` (a UUID). A success is a
201 whose body says `finished` with two files. GET /healthz runs side by side
in the same rounds as the anchor (a request that touches the database and
does no work), as in bench/intake.py.

Printed per database: reports per second, p50/p99 latency, errors, the ratio
to healthz on the same server, the ratio to NCMEC's 2023 average CyberTipline
load (36.2 million reports a year ≈ 1.15/s), whether the goal (500/s with
p99 under 100 ms on PostgreSQL) is met, and server CPU per request (web,
task worker, PostgreSQL backends). Afterwards the hub's own process counts
the stored submissions (channel provider) of each run: equal to successes,
distinct, one case and two declared files each; and the audit chain verifies.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import intake  # noqa: E402
import loadgen  # noqa: E402
from intake import (CORES, NCMEC_2023_REPORTS, NCMEC_PER_SECOND, add_hub_arguments, cpu_delta, cpu_snapshot,  # noqa: E402
                    healthz_step, hub_shell, parse_hub_arguments, print_retries, server_cpu_line, start_profile, summarise_profile)

GOAL_RATE, GOAL_P99_MS = 500.0, 100.0
API_RATE = "1000000/m"
CASES = ("healthz", "report")
CASE_LABELS = {"healthz": "GET /healthz (anchor)", "report": "report + 2 hash-only files"}

MAKE_KEY = r"""
import json
from cophub.orgs.models import Unit
from cophub.providers import keys
from cophub.providers.models import Provider
provider = Provider.objects.create(name="Benchmark provider", unit=Unit.objects.filter(kind="district").first())
print("BENCH " + json.dumps({"key": keys.issue_key(provider, ["reports:write"])[1], "provider": provider.pk}))
"""

VERIFY = r"""
import json, os
from django.db.models import Count
from cophub.audit.services import verify
from cophub.cases.models import CaseSubmission
from cophub.intake.models import Submission
from cophub.providers.models import ProviderReport, ReportFile
tags, provider = json.loads(os.environ["BENCH_TAGS"]), int(os.environ["BENCH_PROVIDER"])
out = {"tags": {}}
for tag in tags:
    subs = Submission.objects.filter(channel="provider", where_app=tag)
    reports = ProviderReport.objects.filter(provider_id=provider, submission__in=subs)
    files = ReportFile.objects.filter(report__in=reports)
    per_report = list(reports.annotate(n=Count("files")).values_list("n", flat=True))
    out["tags"][tag] = {
        "submissions": subs.count(), "codes": subs.values("code").distinct().count(),
        "cases": CaseSubmission.objects.filter(submission__in=subs).count(),
        "reports": len(per_report), "finished": reports.filter(state="finished").count(),
        "with_two_files": sum(1 for n in per_report if n == 2), "hash_only": files.filter(blob=None).count(),
        "distinct_sha256": files.values("sha256").distinct().count(),
    }
out["all_provider_submissions"] = Submission.objects.filter(channel="provider").count()
out["idempotency_records"] = __import__("cophub.providers.models", fromlist=["IdempotencyRecord"]).IdempotencyRecord.objects.count()
audit = verify()
out["audit"] = {"ok": audit.ok, "checked": audit.checked, "reason": audit.reason}
print("BENCH " + json.dumps(out))
"""


# What a sample's stack passes through on the API path (lines overlap; see bench/intake.py).
PROFILE_LINES = (
    ("Django request handling (all)", r"^WSGIHandler\.__call__ "),
    ("  middleware before the view (sessions, auth, locale, …)", r"^SessionMiddleware|^AuthenticationMiddleware|^LocaleMiddleware"),
    ("  ninja: parse + validate the body (pydantic)", r"^(ViewSignature|PathView|Operation)\.\w*(params|_get_values|get_values)"),
    ("  API key check (prefix look-up, digest)", r"^check_key "),
    ("  rate limit count (cache)", r"^is_ratelimited "),
    ("  idempotency (claim row, store the answer)", r"^idempotent "),
    ("    claim the key (insert)", r"^_claim "),
    ("  open_report (the report's transaction)", r"^open_report "),
    ("    waiting to begin a write (SQLite lock)", r"^Atomic\.__enter__ "),
    ("    declare the hash-only files", r"^_declare_hash_only "),
    ("    finish: receive() the submission, open the case", r"^receive \(cophub/intake"),
    ("      open the case", r"^open_for_submission "),
    ("    audit record (head row lock, digest)", r"^record \(cophub/audit"),
    ("    COMMIT", r"^Atomic\.__exit__ "),
    ("  the answer document (report_document)", r"^report_document "),
    ("  /healthz", r"^healthz "),
    ("  open a database connection", r"^DatabaseWrapper\.get_new_connection "),
    ("  SQL executed (all statements)", r"^CursorWrapper\.execute|^CursorDebugWrapper\.execute"),
    ("write the response (gunicorn)", r"^write \(gunicorn/util"),
)


@dataclass
class ReportClient:
    key: str
    tag: str

    def setup(self, client: loadgen.Client) -> dict:
        return {}

    def body(self) -> bytes:
        files = [
            {"sha256": secrets.token_hex(32), "md5": secrets.token_hex(16), "original_name": "clip.mp4",
             "viewed_by_provider": True, "publicly_available": False, "grade": "A1"},
            {"sha256": secrets.token_hex(32), "original_name": "anh.jpg", "annotations": ["screenshot"]},
        ]
        return json.dumps({
            "incident_type": "csam", "incident_time": "2026-11-29T21:15:00+07:00",
            "summary": "Tài khoản chia sẻ ảnh xâm hại trẻ em trong nhóm chat.",
            "internet_details": [{"kind": "chat", "app": self.tag, "url": "https://chat.example/g/1"}],
            "reported_user": {"username": "ke_xau_99"}, "files": files, "finish": True,
        }).encode()

    def step(self, client: loadgen.Client, state: dict, index: int, n: int):
        response = client.request("POST", "/api/v1/reports", body=self.body(), headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
        if response.status == 201:
            document = json.loads(response.body)
            if document.get("state") == "finished" and len(document.get("files", ())) == 2:
                return None
            return f"HTTP 201 but state={document.get('state')} files={len(document.get('files', ()))}"
        return f"HTTP {response.status}: {response.body[:200].decode('utf-8', 'replace')}"


@dataclass
class Case(intake.Case):
    """One case on one database (see bench/intake.py), with its storage verdict."""

    stored_ok: bool | None = None


def measure(hub, pg_database, label, clients, seconds, setup, step):
    before = cpu_snapshot(hub, pg_database)
    result = loadgen.run(label, hub.url, clients, seconds, setup, step)
    return result, cpu_delta(before, cpu_snapshot(hub, pg_database))


def run_database(name: str, database_url: str | None, args, run_id: str) -> list[Case]:
    from cophub.core.livehub import LiveHub

    cases = {key: Case(name, key) for key in CASES}
    warmup: dict[str, int] = {}
    started = time.monotonic()
    print(f"\n=== {name}: starting cophub serve (migrate, demo) …", flush=True)
    hub = LiveHub(database_url=database_url, extra_env={**args.hub_env, "COPHUB_API_RATE": API_RATE}, demo=True)
    try:
        hub.start()
    except Exception as exc:
        print(f"  could not start the hub on {name}: {exc}")
        return []
    try:
        database = hub.env.get("DATABASE_URL", "")
        pg_database = database.rpartition("/")[2] if database.startswith("postgres") else None
        made = hub_shell(hub, MAKE_KEY)
        key, provider = made["key"], made["provider"]
        print(f"  ready in {time.monotonic() - started:.0f} s at {hub.url} "
              f"({'PostgreSQL database ' + pg_database if pg_database else 'SQLite in ' + str(hub.data_dir)}); "
              f"live key {key.split('_')[2]}… made with `cophub shell`; COPHUB_API_RATE={API_RATE}", flush=True)

        tag = f"bench {run_id} {name} warm-up"
        client = ReportClient(key, tag)
        result = loadgen.run("warm-up", hub.url, args.clients, args.warmup, client.setup, client.step)
        warmup[tag] = result.ok
        print(f"  warm-up: {result.ok} reports, {result.errors} errors", flush=True)
        for sample in result.error_samples[:3]:
            print(f"      error: {sample[:200]}")

        for round_no in range(1, args.rounds + 1):
            order = CASES if round_no % 2 else CASES[::-1]
            for case in order:
                profiling = args.profile and round_no == 1
                spies = start_profile(hub, args.profile, f"{name}-{case}", args.seconds, args.profile_idle) if profiling else []
                if case == "healthz":
                    result, cpu = measure(hub, pg_database, case, args.clients, args.seconds, lambda c: {}, healthz_step)
                    tag = None
                else:
                    tag = f"bench {run_id} {name} r{round_no}"
                    client = ReportClient(key, tag)
                    result, cpu = measure(hub, pg_database, case, args.clients, args.seconds, client.setup, client.step)
                for spy in spies:
                    spy.wait(timeout=args.seconds + 60)
                cases[case].add(result, cpu, tag)
                print(f"  round {round_no}  {CASE_LABELS[case]:<27} {result.rate:7.1f}/s  ok={result.ok:<6} errors={result.errors:<3} "
                      f"p50={result.percentile(0.5):6.1f} ms p99={result.percentile(0.99):7.1f} ms {'(profiled) ' if spies else ''}"
                      f"| {server_cpu_line(result, cpu)}", flush=True)
                for sample in result.error_samples[:3]:
                    print(f"      error: {sample[:200]}")

            if args.profile and round_no == 1:
                for case in CASES:
                    path = args.profile / f"{name}-{case}-web.txt"
                    if path.exists():
                        print(f"  profile {name} {case} (web): {path}")
                        print("\n".join(summarise_profile(path, PROFILE_LINES)))

        tags = {**warmup, **cases["report"].ok_by_tag}
        stored = hub_shell(hub, VERIFY, {"BENCH_TAGS": json.dumps(list(tags)), "BENCH_PROVIDER": str(provider)}, timeout=600)
        print(f"  check in the hub's database ({name}), through `cophub shell`:")
        all_good = True
        for tag, want in tags.items():
            got = stored["tags"][tag]
            good = all(got[k] == want for k in ("submissions", "codes", "cases", "reports", "finished", "with_two_files")) \
                and got["hash_only"] == 2 * want and got["distinct_sha256"] == 2 * want
            all_good &= good
            print(f"    {'OK  ' if good else 'FAIL'} {tag.split(' ', 3)[3]:<8} successes {want}, stored submissions {got['submissions']} "
                  f"(distinct codes {got['codes']}, cases {got['cases']}, finished reports {got['reports']}, "
                  f"hash-only files {got['hash_only']}, distinct sha256 {got['distinct_sha256']})")
        total = sum(tags.values())
        all_good &= stored["all_provider_submissions"] == total
        print(f"    provider submissions in the hub: {stored['all_provider_submissions']} (successes in all runs: {total}); "
              f"idempotency records: {stored['idempotency_records']}")
        audit = stored["audit"]
        all_good &= audit["ok"]
        print(f"    audit chain: {'verifies' if audit['ok'] else 'BROKEN: ' + audit['reason']} ({audit['checked']} rows)")
        cases["report"].stored_ok = all_good
    finally:
        hub.stop()
    print(f"  {name} done in {time.monotonic() - started:.0f} s")
    return list(cases.values())


def print_table(all_cases: list[Case], args) -> None:
    print("\n" + "=" * 124)
    print(f"cophub provider API benchmark: {args.clients} keep-alive clients, {args.rounds} × {args.seconds:g} s per case, "
          f"{CORES} cores, COPHUB_API_RATE={API_RATE} (one key for all clients)")
    if args.hub_env:
        print("hub environment: " + " ".join(f"{k}={v}" for k, v in args.hub_env.items()))
    print(f"report: POST /api/v1/reports, finish: true, two hash-only files, Idempotency-Key; "
          f"NCMEC 2023: {NCMEC_2023_REPORTS / 1e6:.1f} M reports/year = {NCMEC_PER_SECOND:.2f}/s")
    header = (f"{'database':<9} {'case':<27} {'per s':>7} {'rounds':>13} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
              f"{'×healthz':>8} {'×NCMEC':>7} {'CPU ms/req web+tasks+db':>24} {'stored':>6} {'goal':>5}")
    print(header)
    print("-" * len(header))
    for database in dict.fromkeys(c.database for c in all_cases):
        rows = [c for c in all_cases if c.database == database and c.result]
        anchor = next((c.result.rate for c in rows if c.case == "healthz"), float("nan"))
        for c in rows:
            r = c.result
            rounds = "/".join(f"{x:.0f}" for x in c.rounds)
            cpu = f"{c.cpu_ms('web'):.1f}+{c.cpu_ms('tasks'):.1f}+{c.cpu_ms('db'):.1f}"
            stored = "—" if c.stored_ok is None else ("ok" if c.stored_ok else "FAIL")
            goal = "—" if c.case == "healthz" else ("met" if r.rate >= GOAL_RATE and r.percentile(0.99) < GOAL_P99_MS else "no")
            print(f"{database:<9} {CASE_LABELS[c.case]:<27} {r.rate:7.1f} {rounds:>13} {r.percentile(0.5):7.1f} "
                  f"{r.percentile(0.99):7.1f} {r.errors:>6} {r.rate / anchor:8.3f} {r.rate / NCMEC_PER_SECOND:7.0f} {cpu:>24} {stored:>6} {goal:>5}")
    print("-" * len(header))
    for c in all_cases:
        if c.case == "report" and c.result:
            r = c.result
            print(f"{c.database}: goal {GOAL_RATE:.0f}/s {'met' if r.rate >= GOAL_RATE else 'NOT met'} ({r.rate:.0f}/s), "
                  f"p99 < {GOAL_P99_MS:.0f} ms {'met' if r.percentile(0.99) < GOAL_P99_MS else 'NOT met'} ({r.percentile(0.99):.0f} ms)")
    print("per s: successful requests per second over all rounds; ×healthz: share of the anchor's rate on the same server in the")
    print("same run; ×NCMEC: multiples of the CyberTipline's 2023 average load; CPU: server CPU per successful request in the")
    print("web workers, the task worker and the hub's PostgreSQL backends. Other work on the machine lowers every figure of a")
    print("round alike: compare rows of one run (see the 'rest of machine' column of the round lines).")
    print_retries(all_cases)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the two cases per database (default 3)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients (default 16)")
    parser.add_argument("--warmup", type=float, default=2, help="untimed warm-up seconds (default 2)")
    add_hub_arguments(parser)
    args = parser.parse_args(argv)
    databases = parse_hub_arguments(parser, args)
    estimate = len(databases) * (20 + args.warmup + args.rounds * 2 * (args.seconds + 1))
    print(f"cophub provider API benchmark: {', '.join(databases)}; {args.clients} clients; {args.rounds} rounds × 2 cases × "
          f"{args.seconds:g} s; about {estimate / 60:.0f} min")
    print(f"the per-key API rate limit is raised in the benchmarked hubs: COPHUB_API_RATE={API_RATE}")
    if args.hub_env:
        print("hub environment: " + " ".join(f"{k}={v}" for k, v in args.hub_env.items()))
    run_id = uuid.uuid4().hex[:6]
    started = time.monotonic()
    all_cases: list[Case] = []
    for database in databases:
        all_cases += run_database(database, args.postgres_url if database == "postgres" else None, args, run_id)
    print_table(all_cases, args)
    print(f"total {time.monotonic() - started:.0f} s")
    return 1 if not all_cases or any(c.case == "report" and not c.stored_ok for c in all_cases) else 0


if __name__ == "__main__":
    sys.exit(main())
