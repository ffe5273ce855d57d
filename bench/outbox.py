"""Referral outbox: referrals delivered per second with two task workers, and the end-to-end delay, beside direct POSTs.

    .venv/bin/python bench/outbox.py [--db sqlite|postgres|both] [--referrals 2000] [--rate 20] [--seconds 20]

For each database (SQLite, then PostgreSQL: a fresh database on
`--postgres-url`, dropped afterwards; skipped with a message when the server
cannot be reached, unless CI=true) in its own temporary data folder:

1. **Setup** (a child process): migrate, a province with a school, one
   superuser with the handler role on the province (it refers the cases and
   manages the directory), a target with a signed webhook channel pointing at
   a `WebhookReceiver` (cophub/referrals/tests/peers.py: verifies the
   signature, keeps each delivery once by Cophub-Event-Id, records the time
   of first arrival) that runs in a thread of this process on 127.0.0.1;
   then `--referrals` + `--rate`×`--seconds` cases (`intake.receive` of a
   child's report, moved to "assessing"). The triage tasks the reports leave
   in the queue are deleted: only referral deliveries are in the queue when
   the workers run.
2. **Backlog**, workers stopped: a child process calls `services.refer` for
   `--referrals` cases, one transaction each (Referral, Delivery, the case
   event and transition, and the delivery task, as a handler's click does).
   The referrals created per second are printed too. It also writes each
   delivery's exact body (`channels.document_bytes`) for the anchor.
3. **Throughput**: two `python -m cophub worker` processes start, with the
   options `cophub serve` gives them (none: the command's defaults, so the
   poll interval is the one a deployment has; printed). Referrals delivered
   per second = (N − 1) / (last − first arrival at the receiver): worker
   start-up (Django import, the start-up jobs, django-tasks-db's random
   start-up delay) does not count, and is printed on its own as "start-up"
   (spawn → first arrival). Measuring a backlog that exists before the
   workers start, rather than one written while they run, keeps the writer's
   CPU off the two cores during the measurement.
4. **Anchor**, side by side: two processes (django set up, no database) send
   the same N bodies with the same headers (signature, event id, type,
   idempotency key) through `cophub.providers.webhooks.post`, the function
   the webhook channel uses, to a fresh receiver of the same kind in this
   process: the ceiling set by the network, HTTP and the receiver. Measured
   the same way (first to last arrival), once before the outbox drains the
   backlog and once after (workers idle), so both see the machine alike;
   the ratio uses the mean of the two.
5. **Latency**: with the two workers running and idle, a child process
   refers `--rate` cases per second for `--seconds` (paced; a writer that
   falls behind is reported). The end-to-end delay of each referral is the
   receiver's first arrival minus `Referral.created_at` (read back from the
   database): it contains the rest of the referring transaction, the poll
   interval of an idle worker (up to its full length), the claim, the
   letter snapshot, the signed POST and the settle. p50, p99 and max.
   On PostgreSQL a `refer()` could once be chosen as a deadlock victim
   while the workers settled deliveries (the settle locked the joined Case
   and Target rows too; fixed by locking only the referral row, FOR NO KEY
   UPDATE OF self). The writer still counts such failures, tries the
   referral again (as a user would click again) and prints the count: it
   must be 0.
6. **Exactly once**: every referral's event (`<public_id>.1`) arrived once,
   no other event arrived, no POST was repeated or refused, and in the
   database every delivery is `delivered` after one attempt. A failure is
   printed and makes the exit status 1.

The machine the figures come from has two cores and other people's work on
it: compare the outbox with the anchor of the same run, not with another
run's figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

WORKERS = 2
DEFAULT_PG = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DESCRIPTION = "Có người lạ hẹn gặp em và dặn không được nói với bố mẹ. Em sợ lắm."


# --- Child processes (each with its own COPHUB_DATA_DIR and DATABASE_URL from the parent) -------------------


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cophub.settings")
    import django

    django.setup()


def child_setup(url: str, cases: int) -> None:
    _django()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django_tasks_db.models import DBTaskResult

    from cophub.cases.services import case_for_submission, transition
    from cophub.core.management.commands.worker import Command as WorkerCommand
    from cophub.evidence import vault
    from cophub.intake import services as intake
    from cophub.orgs.models import Membership, Role, Unit
    from cophub.referrals import services
    from cophub.referrals.models import ChannelKind

    call_command("migrate", verbosity=0, interactive=False)
    vault.ensure_master_key()  # as `cophub serve` does: the channel's secret is sealed with it
    province = Unit.objects.create(kind="province", code="bench-province", name="Sở GD&ĐT (bench)")
    school = Unit.objects.create(kind="school", code="bench-school", name="Trường THCS (bench)", parent=province)
    admin = get_user_model().objects.create_superuser("bench-admin", password="x" * 20)
    Membership.objects.create(user=admin, unit=province, role=Role.HANDLER)
    target = services.save_target(admin, name="Phòng An ninh mạng (bench)", kind="police")
    channel, secret = services.add_channel(target, ChannelKind.WEBHOOK, admin, address=url)
    started = time.perf_counter()
    ids = []
    for _ in range(cases):
        receipt = intake.receive(unit=school, channel="web_child", reporter_kind="child", category="grooming", description=DESCRIPTION)
        ids.append(transition(case_for_submission(receipt.submission), "assessing", admin).pk)
    made = time.perf_counter() - started
    left = DBTaskResult.objects.count()
    DBTaskResult.objects.all().delete()  # the reports' triage tasks: not part of this benchmark
    interval = WorkerCommand().create_parser("cophub", "worker").get_default("interval")
    print("BENCH " + json.dumps({"secret": secret, "channel": channel.pk, "cases": ids, "seconds": made,
                                 "tasks_deleted": left, "interval": interval}))


def _refer_one(case_id: int, channel, actor):
    from cophub.cases.models import Case
    from cophub.referrals import services

    return services.refer(Case.objects.get(pk=case_id), channel, actor)


def child_backlog(cases: list[int], channel_id: int, bodies: Path) -> None:
    _django()
    from django.contrib.auth import get_user_model

    from cophub.referrals.channels import document_bytes, webhook_headers
    from cophub.referrals.models import Channel, Delivery

    actor = get_user_model().objects.get(username="bench-admin")
    channel = Channel.objects.select_related("target").get(pk=channel_id)
    started = time.perf_counter()
    for case_id in cases:
        _refer_one(case_id, channel, actor)
    seconds = time.perf_counter() - started
    # The anchor's bodies: exactly what the webhook channel will send (headers other than the signature, signed at send time).
    with bodies.open("w", encoding="utf-8") as out:
        for delivery in Delivery.objects.select_related("referral__channel", "referral__case", "referral__target").order_by("pk"):
            body = document_bytes(delivery)
            headers = webhook_headers(delivery, body)
            out.write(json.dumps({"body": body.decode(), "headers": headers}, ensure_ascii=False) + "\n")
    print("BENCH " + json.dumps({"referrals": len(cases), "seconds": seconds}))


def child_steady(cases: list[int], channel_id: int, rate: float) -> None:
    _django()
    from django.contrib.auth import get_user_model

    from django.db import OperationalError

    from cophub.referrals.models import Channel

    actor = get_user_model().objects.get(username="bench-admin")
    channel = Channel.objects.select_related("target").get(pk=channel_id)
    started = time.perf_counter()
    worst_lag, costs, deadlocks, given_up = 0.0, [], [], 0
    for index, case_id in enumerate(cases):
        due = started + index / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            worst_lag = max(worst_lag, now - due)
        begun = time.perf_counter()
        for _attempt in range(10):
            try:
                _refer_one(case_id, channel, actor)
                break
            except OperationalError as error:
                # PostgreSQL can pick this transaction as a deadlock victim against a worker's settle
                # (see the module docstring): counted and tried again, as a user would click again.
                if "deadlock" not in str(error):
                    raise
                deadlocks.append(str(error).splitlines()[0])
        else:
            given_up += 1  # ten deadlocks in a row: a user would have given up too
        costs.append(time.perf_counter() - begun)
    seconds = time.perf_counter() - started
    costs.sort()
    print("BENCH " + json.dumps({"referrals": len(cases), "seconds": seconds, "worst_lag": worst_lag,
                                 "refer_p50": costs[len(costs) // 2], "refer_max": costs[-1],
                                 "deadlocks": len(deadlocks), "given_up": given_up}))


def child_collect() -> None:
    _django()
    from django_tasks_db.models import DBTaskResult

    from cophub.referrals.models import Delivery, Referral

    referrals = {public_id: created.timestamp() for public_id, created in Referral.objects.values_list("public_id", "created_at")}
    deliveries = list(Delivery.objects.values_list("state", "attempts"))
    failed = DBTaskResult.objects.failed()
    print("BENCH " + json.dumps({
        "failed_tasks": failed.count(), "deadlocked_tasks": failed.filter(traceback__icontains="deadlock").count(),
        "referrals": referrals,
        "deliveries": len(deliveries),
        "delivered_once": sum(1 for state, attempts in deliveries if state == "delivered" and attempts == 1),
        "states": {state: sum(1 for s, _ in deliveries if s == state) for state in {s for s, _ in deliveries}},
    }))


def child_anchor(bodies: Path, part: int, parts: int, url: str, secret: str) -> None:
    _django()
    from cophub.providers.webhooks import SIGNATURE_HEADER, post, sign

    lines = bodies.read_text(encoding="utf-8").splitlines()[part::parts]
    items = [(json.loads(line)["body"].encode(), json.loads(line)["headers"]) for line in lines]
    print("READY", flush=True)
    sys.stdin.readline()
    failed = 0
    for body, headers in items:
        headers = {**headers, SIGNATURE_HEADER: sign(secret, body, int(time.time()))}
        if not post(url, body, headers).ok:
            failed += 1
    print("BENCH " + json.dumps({"sent": len(items), "failed": failed}), flush=True)


# --- The parent -----------------------------------------------------------------------------------------------


class Run:
    """One database's run: its data folder, database, child processes; `close()` removes them all."""

    def __init__(self, database: str, postgres_url: str):
        self.database = database
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"cophub-outbox-{database}-"))
        self.processes: list[subprocess.Popen] = []
        self.pg: tuple[str, str] | None = None
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COPHUB_TASKS_BACKEND")}
        env.update({"COPHUB_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1", "COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK": "1",
                    "DJANGO_SETTINGS_MODULE": "cophub.settings"})
        if database == "postgres":
            import psycopg

            base = postgres_url.rpartition("/")[0]
            name = f"cophub_outbox_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.pg = (f"{base}/postgres", name)
            env["DATABASE_URL"] = f"{base}/{name}"
        self.env = env

    def child(self, mode: str, *args: str, timeout: float = 1800) -> dict:
        process = self.spawn([sys.executable, __file__, "--child", mode, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = process.communicate(timeout=timeout)
        finally:
            self.processes.remove(process)
        if process.returncode != 0:
            raise RuntimeError(f"child {mode} failed ({process.returncode}):\n{err[-3000:]}")
        return json.loads([line for line in out.splitlines() if line.startswith("BENCH ")][-1][6:])

    def spawn(self, command: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(command, env=self.env, text=True, start_new_session=True, cwd=ROOT, **kwargs)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 20) -> None:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        if process in self.processes:
            self.processes.remove(process)

    def close(self) -> None:
        for process in list(self.processes):
            self.stop(process, timeout=10)
        if self.pg:
            import psycopg

            admin, name = self.pg
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.pg = None
        shutil.rmtree(self.data_dir, ignore_errors=True)


def wait_for(receiver, count: int, timeout: float, processes=()) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(receiver.accepted) >= count:
            return True
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a worker exited with code {process.returncode}")
        time.sleep(0.05)
    return len(receiver.accepted) >= count


def arrival_rate(times: list[float]) -> tuple[float, float]:
    """(deliveries per second from first to last arrival, that span in seconds)."""
    times = sorted(times)
    span = times[-1] - times[0]
    return ((len(times) - 1) / span if span > 0 else float("inf")), span


def anchor_round(run: Run, receiver_cls, bodies: Path, secret: str, count: int) -> float:
    receiver = receiver_cls(secret=secret)
    try:
        senders = [run.spawn([sys.executable, __file__, "--child", "anchor", "--bodies", str(bodies), "--part", str(i),
                              "--parts", str(WORKERS), "--url", receiver.url, "--secret", secret],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(WORKERS)]
        for sender in senders:
            if sender.stdout.readline().strip() != "READY":
                raise RuntimeError("anchor sender did not start:\n" + sender.stderr.read()[-2000:])
        for sender in senders:
            sender.stdin.write("go\n")
            sender.stdin.flush()
        for sender in senders:
            out, err = sender.communicate(timeout=600)
            result = json.loads([line for line in out.splitlines() if line.startswith("BENCH ")][-1][6:])
            if result["failed"] or sender.returncode:
                raise RuntimeError(f"anchor sender: {result} {err[-2000:]}")
            run.processes.remove(sender)
        if len(receiver.accepted) != count or receiver.rejected:
            raise RuntimeError(f"anchor: {len(receiver.accepted)} accepted of {count}, {len(receiver.rejected)} refused")
        return arrival_rate(list(receiver.accepted_at.values()))[0]
    finally:
        receiver.stop()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def run_database(database: str, args) -> dict:
    from cophub.referrals.tests.peers import WebhookReceiver

    n, m = args.referrals, int(round(args.rate * args.seconds))
    print(f"\n== {database} ==", flush=True)
    run = Run(database, args.postgres_url)
    receiver = WebhookReceiver()
    workers: list[subprocess.Popen] = []
    try:
        started = time.perf_counter()
        setup = run.child("setup", "--url", receiver.url, "--cases", str(n + m))
        receiver.secret = setup["secret"]
        cases, channel = setup["cases"], str(setup["channel"])
        print(f"setup: {n + m} cases in {setup['seconds']:.1f} s ({setup['tasks_deleted']} triage tasks removed from the queue); "
              f"total {time.perf_counter() - started:.1f} s", flush=True)

        bodies = run.data_dir / "bodies.jsonl"
        backlog = run.child("backlog", "--cases", ",".join(map(str, cases[:n])), "--channel", channel, "--bodies", str(bodies))
        print(f"backlog: {n} referrals written with the workers stopped, {n / backlog['seconds']:.1f} refer() per second "
              f"(one process, one transaction each)", flush=True)

        anchors = [anchor_round(run, WebhookReceiver, bodies, setup["secret"], n)]
        print(f"anchor 1 (2 processes, direct POST): {anchors[0]:.1f}/s", flush=True)

        logs = [(run.data_dir / f"worker{i}.log").open("w") for i in range(WORKERS)]
        spawned = time.time()
        workers = [run.spawn([sys.executable, "-m", "cophub", "worker"], stdout=log, stderr=subprocess.STDOUT) for log in logs]
        if not wait_for(receiver, n, timeout=max(300, n / 2), processes=workers):
            raise RuntimeError(f"only {len(receiver.accepted)} of {n} delivered in time")
        throughput = dict(zip(("rate", "span"), arrival_rate(list(receiver.accepted_at.values()))))
        throughput["startup"] = min(receiver.accepted_at.values()) - spawned
        print(f"outbox (2 workers): {throughput['rate']:.1f}/s over {throughput['span']:.1f} s "
              f"(start-up {throughput['startup']:.1f} s, not counted)", flush=True)

        anchors.append(anchor_round(run, WebhookReceiver, bodies, setup["secret"], n))
        print(f"anchor 2 (2 processes, direct POST, workers idle): {anchors[1]:.1f}/s", flush=True)

        backlog_ids = set(receiver.accepted_at)
        steady = run.child("steady", "--cases", ",".join(map(str, cases[n:])), "--channel", channel, "--rate", str(args.rate))
        made = m - steady["given_up"]
        if not wait_for(receiver, n + made, timeout=120, processes=workers):
            raise RuntimeError(f"only {len(receiver.accepted) - n} of {made} steady referrals delivered in time")
        achieved = made / steady["seconds"]
        print(f"steady: {made} referrals at {achieved:.1f}/s (asked {args.rate:g}/s; writer's worst lag {steady['worst_lag']:.2f} s, "
              f"refer() p50 {steady['refer_p50'] * 1000:.0f} ms, max {steady['refer_max'] * 1000:.0f} ms)", flush=True)
        if steady["deadlocks"]:
            print(f"steady: refer() was a DEADLOCK victim {steady['deadlocks']} time(s) against the workers "
                  f"(rolled back, tried again; {steady['given_up']} referral(s) given up after 10 tries)", flush=True)

        for worker in workers:
            run.stop(worker)
        for log in logs:
            log.close()
        collected = run.child("collect")
    except BaseException:
        for i in range(len(workers)):
            log = run.data_dir / f"worker{i}.log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-15:]
                if tail:
                    print(f"-- worker {i} log (last lines):\n" + "\n".join(tail), file=sys.stderr)
        raise
    finally:
        receiver.stop()
        run.close()

    created = collected["referrals"]
    expected = {f"{public_id}.1" for public_id in created}
    arrived = list(receiver.accepted_at)
    steady_ids = [event for event in arrived if event not in backlog_ids]
    delays = [receiver.accepted_at[event] - created[event.rsplit(".", 1)[0]] for event in steady_ids]
    problems = []
    made = m - steady["given_up"]
    if steady["given_up"]:
        problems.append(f"{steady['given_up']} referral(s) could not be made (refer() deadlocked 10 times)")
    if len(receiver.accepted) != n + made or len(set(arrived)) != len(arrived) or set(arrived) != expected:
        problems.append(f"{len(receiver.accepted)} arrived, {len(set(arrived))} distinct, expected {len(expected)} events")
    if len(receiver.requests) != len(receiver.accepted):
        problems.append(f"{len(receiver.requests) - len(receiver.accepted)} POSTs repeated")
    if receiver.rejected:
        problems.append(f"{len(receiver.rejected)} refused (bad signature)")
    if collected["delivered_once"] != n + made or collected["deliveries"] != n + made:
        problems.append(f"deliveries in the database: {collected['states']}, {collected['delivered_once']} delivered after one attempt "
                        "(a pending one the receiver already has: its settle failed and it will be sent again when its claim runs out)")
    if collected["failed_tasks"]:
        problems.append(f"{collected['failed_tasks']} delivery task(s) failed in the worker, "
                        f"{collected['deadlocked_tasks']} of them as a deadlock victim")
    anchor = sum(anchors) / len(anchors)
    return {
        "database": database, "n": n, "m": m, "rate": throughput["rate"], "span": throughput["span"], "startup": throughput["startup"],
        "anchors": anchors, "anchor": anchor, "ratio": throughput["rate"] / anchor, "created_per_s": n / backlog["seconds"],
        "steady_rate": achieved, "p50": percentile(delays, 0.5), "p99": percentile(delays, 0.99), "max": max(delays),
        "interval": setup["interval"], "problems": problems, "deadlocks": steady["deadlocks"],
    }


def postgres_reachable(url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(f"{url.rpartition('/')[0]}/postgres", connect_timeout=3):
            return None
    except Exception as error:  # noqa: BLE001 - any failure means: not reachable
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--referrals", type=int, default=2000, help="backlog drained by the two workers (default 2000)")
    parser.add_argument("--rate", type=float, default=20, help="referrals per second in the latency phase (default 20)")
    parser.add_argument("--seconds", type=float, default=20, help="length of the latency phase (default 20)")
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help="a loopback PostgreSQL server (env BENCH_POSTGRES_URL)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for name in ("--url", "--cases", "--channel", "--bodies", "--part", "--parts", "--secret"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "setup":
        return child_setup(args.url, int(args.cases)) or 0
    if args.child in ("backlog", "steady"):
        cases = [int(c) for c in args.cases.split(",")]
        if args.child == "backlog":
            return child_backlog(cases, int(args.channel), Path(args.bodies)) or 0
        return child_steady(cases, int(args.channel), args.rate) or 0
    if args.child == "collect":
        return child_collect() or 0
    if args.child == "anchor":
        return child_anchor(Path(args.bodies), int(args.part), int(args.parts), args.url, args.secret) or 0

    # This process runs the receivers, which import cophub: it gets django with a data folder of its own and no database.
    own = Path(tempfile.mkdtemp(prefix="cophub-outbox-bench-"))
    os.environ["COPHUB_DATA_DIR"] = str(own)
    os.environ.pop("DATABASE_URL", None)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        _django()
        databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
        results, failed = [], False
        for database in databases:
            if database == "postgres":
                why = postgres_reachable(args.postgres_url)
                if why:
                    print(f"\n== postgres == SKIPPED: {args.postgres_url} is not reachable ({why})")
                    if os.environ.get("CI") == "true":
                        return 1
                    continue
            try:
                results.append(run_database(database, args))
            except Exception as error:  # noqa: BLE001 - report it, keep the other database's figures
                print(f"\n== {database} == FAILED: {type(error).__name__}: {str(error)[-1500:]}", file=sys.stderr)
                failed = True
        print("\n| database | delivered/s (2 workers) | anchor direct POST/s (before, after) | ×anchor | start-up s | refer()/s "
              "| steady rate/s | end-to-end p50 s | p99 s | max s | refer() deadlocks | exactly once |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in results:
            ok = "yes" if not r["problems"] else "NO: " + "; ".join(r["problems"])
            print(f"| {r['database']} | {r['rate']:.1f} | {r['anchor']:.1f} ({r['anchors'][0]:.1f}, {r['anchors'][1]:.1f}) | "
                  f"{r['ratio']:.2f} | {r['startup']:.1f} | {r['created_per_s']:.1f} | {r['steady_rate']:.1f} | {r['p50']:.2f} | "
                  f"{r['p99']:.2f} | {r['max']:.2f} | {r['deadlocks']} | {ok} |")
        print()
        for r in results:
            print(f"worker poll interval {r['interval']:g} s (`cophub worker` default, as `cophub serve` starts it); "
                  f"backlog {r['n']}, steady {r['m']} referrals")
            break
        for r in results:
            print(f"{r['database']}: {r['rate']:.1f} referrals/s with 2 workers (anchor {r['anchor']:.1f} direct POST/s, ×{r['ratio']:.2f}); "
                  f"end-to-end p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s"
                  + (f"; {r['deadlocks']} refer() deadlock(s) against the workers" if r["deadlocks"] else ""))
            failed = failed or bool(r["problems"])
        return 1 if failed else 0
    finally:
        shutil.rmtree(own, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
