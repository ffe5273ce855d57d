"""Web-form submissions per second through `cophub serve`.

    .venv/bin/python bench/intake.py [--seconds 10] [--rounds 3] [--clients 8]
                                     [--databases sqlite,postgres]

For each database a real `cophub serve` (gunicorn + task worker, exactly as
deployed) starts on a free loopback port with its own data folder and, for
PostgreSQL, its own fresh database, dropped afterwards. Per-client rate
limits are switched off (COPHUB_RATELIMIT=0): every request comes from
127.0.0.1, which the hub would otherwise stop after 10 reports.

Each client fetches the adult report page `/adult/` once (CSRF cookie and
token), then posts the form back to back: a report with a category, a
description in Vietnamese and a link; a success is the 302 to `/received/`.
Three cases are measured side by side on the same server, in rounds, so a
noisy machine affects them alike:

- `healthz`: GET /healthz (touches the database, does no work): the anchor,
  close to the server's ceiling for a Django request;
- `form`: the adult form without a file;
- `form + 1 MB image`: the same with a ~1 MB JPEG of random noise, each
  upload made distinct by a 16-byte trailer after the JPEG end marker, so
  the vault's de-duplication does not flatter the figure.

After each image run the preview backlog it left is drained, so each case
starts on a quiet server. Afterwards the hub's own process
(`cophub shell`) counts what is stored for each case: submissions equal to
successes, one case each, every file stored, encrypted, on disk, and
readable back to the bytes sent; and the audit chain verifies.

Printed per case: requests per second, p50/p99 latency, errors (with the
first few error pages' titles), the ratio to healthz (how close the form
path comes to the server's ceiling), the ratio to NCMEC's 2023 average
CyberTipline load (36.2 million reports a year ≈ 1.15/s), and the server's
CPU time per request split into web, task worker and PostgreSQL.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import loadgen  # noqa: E402

NCMEC_2023_REPORTS = 36.2e6
NCMEC_PER_SECOND = NCMEC_2023_REPORTS / (365.25 * 86400)  # ≈ 1.147
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1

CATEGORY = "sextortion"
DESCRIPTION = (
    "Có người lạ nhắn tin cho con tôi (học lớp 6) qua Zalo, đòi cháu gửi ảnh riêng tư "
    "và doạ sẽ đăng ảnh của cháu lên mạng nếu cháu không làm theo. Cháu rất sợ, "
    "mấy hôm nay không dám đi học và không muốn kể với ai."
)
LINK = "https://zalo.me/g/nhom-lop-6a-hung-vuong"

CASES = ("healthz", "form", "form+image")
CASE_LABELS = {"healthz": "GET /healthz (anchor)", "form": "form, no file", "form+image": "form + 1 MB image"}


# --- The picture ---------------------------------------------------------------------------


def noise_jpeg(target_bytes: int, quality: int = 85, seed: int = 2023) -> tuple[bytes, tuple[int, int]]:
    """A JPEG of random noise of about `target_bytes`, 3:4 like a phone photo."""
    from PIL import Image

    rng = random.Random(seed)
    width = 800
    data, size = b"", (0, 0)
    for _ in range(4):
        height = width * 4 // 3
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        data, size = out.getvalue(), (width, height)
        if abs(len(data) - target_bytes) < target_bytes * 0.02:
            break
        width = max(16, round(width * (target_bytes / len(data)) ** 0.5))
    assert data.endswith(b"\xff\xd9")
    return data, size


# --- The clients ------------------------------------------------------------------------------


ADULT_FORM = re.compile(r'<form[^>]*action="/adult/"[^>]*>(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="(csrfmiddlewaretoken|unit)" value="([^"]*)"')
RECEIPT_CODE = re.compile(r'id="receipt-code">([^<]+)<')
REFUSED_NOTICE = 'class="notice warn" role="status"'


def page_title(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    found = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.S) or re.search(r"<title>(.*?)</title>", text, re.S)
    title = html.unescape(re.sub(r"<[^>]+>|\s+", " ", found.group(1))).strip() if found else text[:80]
    error = re.search(r'class="errorlist[^"]*"[^>]*>\s*(?:<li>)?(.*?)</', text, re.S)
    if error:
        title += " / " + html.unescape(re.sub(r"<[^>]+>|\s+", " ", error.group(1))).strip()
    return title


def describe(response: loadgen.Response) -> str:
    where = response.header("Location")
    return f"HTTP {response.status}" + (f" → {where}" if where else "") + (f": {page_title(response.body)}" if response.body else "")


@dataclass
class FormClient:
    base_url: str
    tag: str
    image: bytes | None = None

    def setup(self, client: loadgen.Client) -> dict:
        response = client.request("GET", "/adult/")
        if response.status != 200 or "csrftoken" not in client.cookies:
            raise RuntimeError(f"GET /adult/: {describe(response)}")
        form = ADULT_FORM.search(response.body.decode())
        hidden = dict(HIDDEN.findall(form.group(1))) if form else {}
        if "csrfmiddlewaretoken" not in hidden:
            raise RuntimeError("no csrfmiddlewaretoken in the adult form")
        return {"token": hidden["csrfmiddlewaretoken"], "unit": hidden.get("unit", "")}

    def fields(self, state: dict) -> list[tuple[str, str]]:
        # Every field as a browser sends the page: empty boxes and selects included.
        return [
            ("csrfmiddlewaretoken", state["token"]), ("unit", state["unit"]),
            ("reporter_kind", "parent"), ("school", ""), ("age_band", ""), ("category", CATEGORY),
            ("reported_account", ""), ("where_url", LINK), ("where_app", self.tag), ("description", DESCRIPTION),
            ("contact_name", ""), ("contact_phone", ""), ("contact_email", ""),
        ]

    def step(self, client: loadgen.Client, state: dict, index: int, n: int):
        if self.image is None:
            files = [("files", "", b"", "application/octet-stream")]  # the empty file box a browser sends
        else:
            trailer = uuid.uuid4().bytes  # after the JPEG end marker: every upload distinct
            files = [("files", f"anh-chup-{index}-{n}.jpg", [self.image, trailer], "image/jpeg")]
        body, ctype = loadgen.multipart(self.fields(state), files)
        response = client.request("POST", "/adult/", body=body, headers={
            "Content-Type": ctype, "Origin": self.base_url, "Referer": self.base_url + "/adult/"})
        if response.status == 302 and urlsplit(response.header("Location")).path == "/received/":
            return None
        return describe(response)

    def finish(self, client: loadgen.Client, state: dict) -> dict:
        """Untimed: this client's last receipt (the session keeps it for one showing)."""
        response = client.request("GET", "/received/")
        text = response.body.decode("utf-8", "replace")
        code = RECEIPT_CODE.search(text)
        return {"status": response.status, "code": code.group(1).strip() if code else None,
                "refused": REFUSED_NOTICE in text}


def healthz_step(client: loadgen.Client, state, index: int, n: int):
    response = client.request("GET", "/healthz")
    return None if response.status == 200 else describe(response)


# --- CPU accounting --------------------------------------------------------------------------


def _stat(pid: str) -> tuple[int, float] | None:
    """(process group, CPU seconds of the process and its reaped children)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[2]), sum(int(x) for x in fields[11:15]) / CLK_TCK


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


def cpu_snapshot(hub, pg_database: str | None) -> dict:
    """CPU seconds used so far by the hub's processes (web, tasks) and its PostgreSQL backends.

    The hub's processes are summed with their reaped children, so gunicorn's
    recycled workers stay counted (in the arbiter). PostgreSQL backends are
    kept per process: one that exits during a case (connections live 60 s)
    loses its last part (a small undercount).
    """
    totals = {"web": 0.0, "tasks": 0.0, "other": 0.0, "machine": machine_busy(), "at": time.monotonic(), "backends": {}}
    group = hub.process.pid
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat is None:
            continue
        pgrp, seconds = stat
        if pgrp == group:
            command = _cmdline(entry.name)
            role = "web" if "gunicorn" in command else "tasks" if command.rstrip().endswith(" worker") else "other"
            totals[role] += seconds
        elif pg_database:
            command = _cmdline(entry.name)
            if command.startswith("postgres: ") and f" {pg_database} " in command:
                totals["backends"][entry.name] = seconds
    return totals


def cpu_delta(before: dict, after: dict) -> dict:
    delta = {key: after[key] - before[key] for key in before if key != "backends"}
    delta["db"] = sum(max(0.0, seconds - before["backends"].get(pid, 0.0)) for pid, seconds in after["backends"].items())
    return delta


# --- Running cases -----------------------------------------------------------------------------


@dataclass
class Case:
    database: str
    case: str
    result: loadgen.Result | None = None
    rounds: list = field(default_factory=list)  # per-round rates
    cpu: dict = field(default_factory=lambda: {"web": 0.0, "tasks": 0.0, "db": 0.0, "other": 0.0, "machine": 0.0, "at": 0.0})
    ok_by_tag: dict = field(default_factory=dict)  # successes of each stored run, by its tag
    check: dict = field(default_factory=dict)

    def add(self, result: loadgen.Result, cpu: dict, tag: str | None) -> None:
        self.rounds.append(result.rate)
        if self.result is None:
            self.result = result
        else:
            self.result.merge(result)
        for key, value in cpu.items():
            self.cpu[key] += value
        if tag:
            self.ok_by_tag[tag] = result.ok

    def cpu_ms(self, role: str) -> float:
        ok = self.result.ok if self.result else 0
        return 1000 * self.cpu[role] / ok if ok else float("nan")


def server_cpu_line(result: loadgen.Result, cpu: dict) -> str:
    ok = max(result.ok, 1)
    wall = cpu["at"] or result.seconds
    hub = cpu["web"] + cpu["tasks"] + cpu["db"] + cpu["other"]
    other = max(0.0, cpu["machine"] - hub - result.loadgen_cpu)
    return (f"server CPU/req web {1000 * cpu['web'] / ok:5.1f} ms, tasks {1000 * cpu['tasks'] / ok:4.1f}, "
            f"db {1000 * cpu['db'] / ok:4.1f} | cores busy: hub {hub / wall:4.2f}, bench {result.loadgen_cpu / wall:4.2f}, "
            f"rest of machine {other / wall:4.2f} (of {CORES})")


def measure(hub, pg_database, label: str, clients: int, seconds: float, setup, step, finish=None):
    before = cpu_snapshot(hub, pg_database)
    result = loadgen.run(label, hub.url, clients, seconds, setup, step, finish)
    cpu = cpu_delta(before, cpu_snapshot(hub, pg_database))
    return result, cpu


def hub_shell(hub, code: str, env: dict | None = None, timeout: float = 180) -> dict:
    """Run Python in the hub's own environment (`cophub shell -c`); returns its JSON line."""
    completed = subprocess.run(
        [sys.executable, "-m", "cophub", "shell", "-c", code],
        env={**hub.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    raise RuntimeError(f"cophub shell failed ({completed.returncode}):\n{completed.stderr[-2000:]}")


DRAIN = r"""
import json, os, time
from cophub.evidence.models import Blob
from django_tasks_db.models import DBTaskResult
limit = float(os.environ["BENCH_DRAIN_TIMEOUT"])
def waiting():
    return (Blob.objects.filter(preview_status="pending").count(),
            DBTaskResult.objects.filter(status__in=["READY", "RUNNING"]).count())
start = time.monotonic()
first = waiting()
now = first
while any(now) and time.monotonic() - start < limit:
    time.sleep(0.5)
    now = waiting()
print("BENCH " + json.dumps({"pending_previews": first[0], "queued_tasks": first[1],
                             "left_previews": now[0], "left_tasks": now[1],
                             "seconds": round(time.monotonic() - start, 1)}))
"""

VERIFY = r"""
import hashlib, json, os
from django.db.models import Count
from cophub.audit.services import verify
from cophub.cases.models import CaseSubmission
from cophub.evidence import vault
from cophub.evidence.models import Blob
from cophub.intake.models import Submission, SubmissionFile
tags = json.loads(os.environ["BENCH_TAGS"])
image_sha, image_len = os.environ["BENCH_IMAGE_SHA256"], int(os.environ["BENCH_IMAGE_LEN"])
out = {"tags": {}}
for tag in tags:
    subs = Submission.objects.filter(where_app=tag)
    files = SubmissionFile.objects.filter(submission__in=subs)
    blobs = Blob.objects.filter(pk__in=files.values("blob_id"))
    per_sub = list(subs.annotate(n=Count("files")).values_list("n", flat=True))
    row = {
        "submissions": len(per_sub),
        "codes": subs.values("code").distinct().count(),
        "cases": CaseSubmission.objects.filter(submission__in=subs).count(),
        "files": files.count(),
        "with_one_file": sum(1 for n in per_sub if n == 1),
        "blobs": blobs.count(),
        "bytes": sum(blobs.values_list("size", flat=True)),
        "on_disk": 0, "plaintext_on_disk": 0,
        "previews": dict(blobs.values_list("preview_status").annotate(n=Count("id")).order_by()),
    }
    for blob in blobs.only("storage_name"):
        path = vault.object_path(blob)
        if path.exists():
            row["on_disk"] += 1
            with open(path, "rb") as handle:
                row["plaintext_on_disk"] += handle.read(3) == b"\xff\xd8\xff"
    sample = blobs.order_by("?").first()
    if sample is not None:
        clear = vault.read_plaintext(sample)
        row["sample_readback"] = len(clear) == image_len + 16 and hashlib.sha256(clear[:image_len]).hexdigest() == image_sha
    out["tags"][tag] = row
codes = json.loads(os.environ["BENCH_CODES"])
found = dict(Submission.objects.filter(code__in=list(codes)).values_list("code", "where_app"))
out["receipts"] = {"sampled": len(codes), "found_with_tag": sum(1 for c, t in codes.items() if found.get(c) == t)}
audit = verify()
out["audit"] = {"ok": audit.ok, "checked": audit.checked, "reason": audit.reason}
print("BENCH " + json.dumps(out))
"""


def drain(hub, timeout: float) -> dict:
    return hub_shell(hub, DRAIN, {"BENCH_DRAIN_TIMEOUT": str(timeout)}, timeout=timeout + 60)


# --- Profiling (optional) ------------------------------------------------------------------------


def start_profile(hub, directory: Path, name: str, seconds: float, idle: bool) -> list[subprocess.Popen]:
    """py-spy on the web server (with its workers) and the task worker, for one case."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not spy:
        print("  (py-spy not found: pip install py-spy into the venv)")
        return []
    targets = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (_stat(entry.name) or (0,))[0] == hub.process.pid:
            command = _cmdline(entry.name)
            parent = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1]
            if "gunicorn" in command and int(parent) == hub.process.pid:
                targets["web"] = entry.name
            elif command.rstrip().endswith(" worker"):
                targets["tasks"] = entry.name
    spies = []
    for role, pid in targets.items():
        out = directory / f"{name}-{role}.txt"
        command = [spy, "record", "--pid", pid, "--duration", str(int(seconds)), "--rate", "97",
                   "--format", "raw", "--output", str(out), "--nonblocking"]
        if role == "web":
            command.append("--subprocesses")
        if idle:
            command.append("--idle")
        spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return spies


# What a sample's stack passes through, in the words of the request path. A sample
# counts towards every line whose function is on its stack (lines overlap).
PROFILE_LINES = (
    ("Django request handling (all)", r"^WSGIHandler\.__call__ "),
    ("  read the multipart body (hash + encrypt while streaming)", r"^MultiPartParser\.parse "),
    ("    fsync of the staged upload", r"^StagingWriter\.finish "),
    ("  the adult view (form, receive, render)", r"^adult \(cophub/intake"),
    ("    receive(): the submission's transaction", r"^receive \(cophub/intake"),
    ("      waiting to begin it (SQLite write lock)", r"^Atomic\.__enter__ .*#receive"),
    ("      inspect files (decrypt + full Pillow decode)", r"^_inspect_image "),
    ("        Pillow decode", r"^ImageFile\.load .*#_inspect_image"),
    ("      vault commit (move, fsync folder, Blob row)", r"^commit_staged "),
    ("      open the case + audit record", r"^open_for_submission "),
    ("        audit record (head row lock)", r"^record \(cophub/audit"),
    ("      COMMIT", r"^Atomic\.__exit__ .*#receive"),
    ("  save the session (receipt kept for the next page)", r"^SessionStore\.save "),
    ("    waiting to begin it (SQLite write lock)", r"^Atomic\.__enter__ .*#SessionStore\.save"),
    ("  render a page", r"^render \(django/shortcuts"),
    ("  /healthz", r"^healthz "),
    ("  open a database connection", r"^DatabaseWrapper\.get_new_connection "),
    ("write the response (gunicorn)", r"^write \(gunicorn/util"),
    ("task worker: make a preview", r"^make_preview "),
    ("  decrypt the blob", r"^read_plaintext "),
    ("  decode, shrink, blur, encode", r"^blurred_preview "),
    ("    Pillow decode", r"^ImageFile\.load .*#(thumbnail|exif_transpose|blurred_preview|draft|convert)"),
    ("  seal and store the preview", r"^store_preview "),
    ("task worker: poll, claim, heartbeat", r"^Worker\.run "),
)


def summarise_profile(path: Path, lines=None) -> list[str]:
    """Share of the samples spent in each step of the request path, then the busiest leaves."""
    lines = PROFILE_LINES if lines is None else lines
    if not path.exists():
        return [f"    (no profile at {path})"]
    counts = [0] * len(lines)
    patterns = [re.compile(p) for _, p in lines]
    leaf: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \((.*?):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        # Each frame is matched with its caller's name appended ("frame#caller").
        keyed = [f + "#" + (frames[i - 1].split(" ")[0] if i else "") for i, f in enumerate(frames)]
        for index, pattern in enumerate(patterns):
            if any(pattern.search(k) for k in keyed):
                counts[index] += n
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
    if not total:
        return ["    (no samples)"]
    rows = [f"    {total} samples (threads busy or waiting on a lock; idle threads left out):"]
    for (label, _), n in zip(lines, counts):
        if n / total >= 0.005:
            rows.append(f"    {100 * n / total:5.1f}%  {label}")
    rows.append("    busiest functions (self):")
    for n, name in sorted(((n, f) for f, n in leaf.items()), reverse=True)[:6]:
        rows.append(f"    {100 * n / total:5.1f}%  {name[:110]}")
    return rows


# --- One database -------------------------------------------------------------------------------


def run_database(name: str, database_url: str | None, args, image: bytes, run_id: str) -> list[Case]:
    from cophub.core.livehub import LiveHub

    cases = {key: Case(name, key) for key in CASES}
    warmup_tags: dict[str, int] = {}
    codes: dict[str, str] = {}  # receipt codes seen on sampled receipt pages, with their run's tag
    refused = [0]  # sampled receipt pages that listed a refused file
    started = time.monotonic()
    print(f"\n=== {name}: starting cophub serve (migrate, demo) …", flush=True)
    hub = LiveHub(database_url=database_url, extra_env={**args.hub_env, "COPHUB_RATELIMIT": "0"}, demo=True)
    try:
        hub.start()
    except Exception as exc:
        print(f"  could not start the hub on {name}: {exc}")
        return []
    try:
        database = hub.env.get("DATABASE_URL", "")
        pg_database = database.rpartition("/")[2] if database.startswith("postgres") else None
        print(f"  ready in {time.monotonic() - started:.0f} s at {hub.url} "
              f"({'PostgreSQL database ' + pg_database if pg_database else 'SQLite in ' + str(hub.data_dir)}); "
              f"{len(hub.logins)} demo logins printed by the hub; rate limits off (COPHUB_RATELIMIT=0)")

        def form_case(tag: str, with_image: bool) -> FormClient:
            return FormClient(hub.url, tag, image if with_image else None)

        def record_samples(result, tag):
            for item in result.finished:
                if item and item.get("code"):
                    codes[item["code"]] = tag
                    refused[0] += bool(item.get("refused"))

        # Warm-up (untimed, but stored and checked like the rest): templates, imports, Pillow.
        for key, with_image in (("form", False), ("form+image", True)):
            tag = f"bench {run_id} {name} warm-up {key}"
            client = form_case(tag, with_image)
            result = loadgen.run("warm-up", hub.url, args.clients, args.warmup, client.setup, client.step, client.finish)
            warmup_tags[tag] = result.ok
            record_samples(result, tag)
        backlog = drain(hub, args.drain_timeout)
        print(f"  warm-up done; preview backlog {backlog['pending_previews']} drained in {backlog['seconds']} s")

        for round_no in range(1, args.rounds + 1):
            # Each round starts one case later, so every case runs in every position.
            order = CASES[(round_no - 1) % len(CASES):] + CASES[:(round_no - 1) % len(CASES)]
            for key in order:
                profiling = args.profile and round_no == 1
                spies = start_profile(hub, args.profile, f"{name}-{key}", args.seconds, args.profile_idle) if profiling else []
                if key == "healthz":
                    result, cpu = measure(hub, pg_database, key, args.clients, args.seconds, lambda c: {}, healthz_step)
                    tag = None
                else:
                    tag = f"bench {run_id} {name} r{round_no} {key}"
                    client = form_case(tag, key == "form+image")
                    result, cpu = measure(hub, pg_database, key, args.clients, args.seconds, client.setup, client.step, client.finish)
                    record_samples(result, tag)
                for spy in spies:
                    spy.wait(timeout=args.seconds + 60)
                cases[key].add(result, cpu, tag)
                print(f"  round {round_no}  {CASE_LABELS[key]:<22} {result.rate:8.1f}/s  ok={result.ok:<5} errors={result.errors:<3} "
                      f"p50={result.percentile(0.5):6.1f} ms p99={result.percentile(0.99):7.1f} ms  "
                      f"{'(profiled) ' if spies else ''}| {server_cpu_line(result, cpu)}", flush=True)
                for sample in result.error_samples[:3]:
                    print(f"      error: {sample[:160]}")
                if key == "form+image":
                    # The next case starts on a quiet server: wait for the previews.
                    before = cpu_snapshot(hub, pg_database)
                    backlog = drain(hub, args.drain_timeout)
                    spent = cpu_delta(before, cpu_snapshot(hub, pg_database))
                    made = backlog["pending_previews"] - backlog["left_previews"]
                    previews = cases[key].check.setdefault("previews", {"made": 0, "seconds": 0.0, "cpu": 0.0})
                    previews["made"] += made
                    previews["seconds"] += backlog["seconds"]
                    previews["cpu"] += spent["tasks"]
                    print(f"           previews not yet made when the run ended: {backlog['pending_previews']} of {result.ok}; "
                          f"drained in {backlog['seconds']} s"
                          + (f" ({made / backlog['seconds']:.1f}/s, task worker CPU {1000 * spent['tasks'] / made:.0f} ms each)"
                             if backlog["seconds"] and made else "")
                          + (f"; {backlog['left_previews']} still pending" if backlog["left_previews"] else ""), flush=True)
            if args.profile and round_no == 1:
                for key in CASES:
                    for role in ("web", "tasks"):
                        path = args.profile / f"{name}-{key}-{role}.txt"
                        if path.exists():
                            print(f"  profile {name} {key} ({role}): {path}")
                            print("\n".join(summarise_profile(path)))

        # The hub's own view of what it stored.
        all_tags = list(warmup_tags) + [t for c in cases.values() for t in c.ok_by_tag]
        stored = hub_shell(hub, VERIFY, {
            "BENCH_TAGS": json.dumps(all_tags), "BENCH_CODES": json.dumps(codes),
            "BENCH_IMAGE_SHA256": hashlib.sha256(image).hexdigest(), "BENCH_IMAGE_LEN": str(len(image)),
        })
        print_check(name, cases, warmup_tags, stored, refused[0])
    finally:
        hub.stop()
    print(f"  {name} done in {time.monotonic() - started:.0f} s")
    return list(cases.values())


def print_check(name: str, cases: dict, warmup_tags: dict, stored: dict, refused: int) -> None:
    print(f"  check in the hub's database ({name}), through `cophub shell`:")
    rows = [(tag, ok) for tag, ok in warmup_tags.items()]
    for case in cases.values():
        rows += list(case.ok_by_tag.items())
    all_good = True
    for tag, want in rows:
        got = stored["tags"].get(tag, {})
        with_image = tag.endswith("form+image")
        good = (got.get("submissions") == want and got.get("codes") == want and got.get("cases") == want)
        if with_image:
            good = good and got.get("files") == want and got.get("with_one_file") == want and got.get("blobs") == want \
                and got.get("on_disk") == want and got.get("plaintext_on_disk") == 0 and got.get("sample_readback", want == 0)
        else:
            good = good and got.get("files") == 0
        all_good &= good
        label = tag.split(" ", 3)[3]
        extra = ""
        if with_image:
            extra = (f", files {got.get('files')} (distinct blobs {got.get('blobs')}, on disk {got.get('on_disk')}, "
                     f"{got.get('bytes', 0) / 1e6:.0f} MB, plaintext magic {got.get('plaintext_on_disk')}, "
                     f"sample decrypts to the bytes sent: {got.get('sample_readback')}), previews {got.get('previews')}")
        print(f"    {'OK  ' if good else 'FAIL'} {label:<22} successes {want}, stored {got.get('submissions')} "
              f"(distinct codes {got.get('codes')}, cases {got.get('cases')}){extra}")
    receipts = stored["receipts"]
    print(f"    receipt pages sampled after each run: {receipts['sampled']}, code found with its run's tag: "
          f"{receipts['found_with_tag']}; receipts listing a refused file: {refused}")
    audit = stored["audit"]
    print(f"    audit chain: {'verifies' if audit['ok'] else 'BROKEN: ' + audit['reason']} ({audit['checked']} rows)")
    for case in cases.values():
        case.check["stored_ok"] = all_good and receipts["found_with_tag"] == receipts["sampled"] and audit["ok"] and refused == 0


# --- Report --------------------------------------------------------------------------------------


def print_table(all_cases: list[Case], args, image_info: str) -> None:
    print("\n" + "=" * 118)
    print(f"cophub intake benchmark: {args.clients} keep-alive clients, {args.rounds} × {args.seconds:g} s per case, "
          f"{CORES} cores, rate limits off (COPHUB_RATELIMIT=0)")
    print(f"image: {image_info}; NCMEC 2023: {NCMEC_2023_REPORTS / 1e6:.1f} M reports/year = {NCMEC_PER_SECOND:.2f}/s")
    header = (f"{'database':<9} {'case':<22} {'per s':>8} {'rounds':>13} {'p50 ms':>7} {'p99 ms':>8} {'errors':>6} "
              f"{'×healthz':>8} {'×NCMEC':>7} {'CPU ms/req web+tasks+db':>24} {'stored':>7}")
    print(header)
    print("-" * len(header))
    for database in dict.fromkeys(c.database for c in all_cases):
        rows = [c for c in all_cases if c.database == database and c.result]
        anchor = next((c.result.rate for c in rows if c.case == "healthz"), float("nan"))
        for c in rows:
            r = c.result
            rounds = "/".join(f"{x:.0f}" if x >= 100 else f"{x:.1f}" for x in c.rounds)
            cpu = f"{c.cpu_ms('web'):.1f}+{c.cpu_ms('tasks'):.1f}+{c.cpu_ms('db'):.1f}"
            stored = "—" if c.case == "healthz" else ("ok" if c.check.get("stored_ok") else "FAIL")
            print(f"{database:<9} {CASE_LABELS[c.case]:<22} {r.rate:8.1f} {rounds:>13} {r.percentile(0.5):7.1f} "
                  f"{r.percentile(0.99):8.1f} {r.errors:>6} {r.rate / anchor:8.3f} {r.rate / NCMEC_PER_SECOND:7.1f} "
                  f"{cpu:>24} {stored:>7}")
    print("-" * len(header))
    print("per s: successful requests per second over all rounds (rounds: each round's figure); ×healthz: share of the")
    print("anchor's rate on the same server; ×NCMEC: multiples of the CyberTipline's 2023 average load; CPU: server CPU")
    print("time per successful request in the web workers, the task worker (previews) and PostgreSQL backends.")
    for c in all_cases:
        previews = c.check.get("previews")
        if previews and previews["made"]:
            print(f"{c.database}: previews left to make after the image runs: {previews['made']}, made afterwards at "
                  f"{previews['made'] / previews['seconds']:.1f}/s by one task worker, {1000 * previews['cpu'] / previews['made']:.0f} ms CPU each")
    errors = [(c, s) for c in all_cases if c.result for s in c.result.error_samples]
    if errors:
        print("first errors:")
        for c, sample in errors[:6]:
            print(f"  {c.database} {c.case}: {sample[:160]}")
    print_retries(all_cases)


# --- Shared by the benches (bench/provider_api.py imports these) ----------------------------


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """Which databases to run on, and how to set up and observe the hubs."""
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="a PostgreSQL server to create a fresh database on (dropped afterwards)")
    parser.add_argument("--hub-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the hubs, e.g. COPHUB_WEB_WORKERS=4 (repeatable)")
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of round 1 into this folder (slows the server)")
    parser.add_argument("--profile-idle", action="store_true", help="with --profile: include waiting threads (locks, I/O)")


def parse_hub_arguments(parser: argparse.ArgumentParser, args) -> list[str]:
    """Check the hub arguments; returns the databases to run on."""
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if any("=" not in item for item in args.hub_env):
        parser.error("--hub-env takes NAME=VALUE")
    args.hub_env = dict(item.split("=", 1) for item in args.hub_env)
    unknown = set(databases) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown database {', '.join(sorted(unknown))}")
    if urlsplit(args.postgres_url).hostname not in loadgen.LOOPBACK:
        parser.error("benchmarks only use a PostgreSQL server on this machine")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    return databases


def print_retries(all_cases) -> None:
    retries = sum(c.result.retries for c in all_cases if c.result)
    if retries:
        print(f"requests re-sent on a keep-alive connection the server had closed (never reached the app): {retries}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three cases per database (default 3)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients (default 8)")
    parser.add_argument("--image-kb", type=int, default=1024, help="size of the noise JPEG (default 1024)")
    parser.add_argument("--warmup", type=float, default=2, help="untimed warm-up seconds per form case (default 2)")
    parser.add_argument("--drain-timeout", type=float, default=60, help="longest wait for the preview backlog (default 60)")
    add_hub_arguments(parser)
    args = parser.parse_args(argv)
    databases = parse_hub_arguments(parser, args)

    image, (width, height) = noise_jpeg(args.image_kb * 1024)
    image_info = f"{len(image) / 1048576:.2f} MB JPEG of random noise, {width}×{height} px, + a unique 16-byte trailer per upload"
    estimate = len(databases) * (25 + 2 * args.warmup + args.rounds * (3 * args.seconds + 8))
    print(f"cophub intake benchmark: {', '.join(databases)}; {args.clients} clients; {args.rounds} rounds × 3 cases × "
          f"{args.seconds:g} s; about {estimate / 60:.0f} min")
    print(f"image: {image_info}")
    print("per-client rate limits are OFF in the benchmarked hubs (COPHUB_RATELIMIT=0): all clients share 127.0.0.1")
    if args.hub_env:
        print("hub environment: " + " ".join(f"{k}={v}" for k, v in args.hub_env.items()))
    run_id = uuid.uuid4().hex[:6]
    started = time.monotonic()
    all_cases: list[Case] = []
    for database in databases:
        url = args.postgres_url if database == "postgres" else None
        all_cases += run_database(database, url, args, image, run_id)
    print_table(all_cases, args, image_info)
    print(f"total {time.monotonic() - started:.0f} s")
    failed = not all_cases or any(c.case != "healthz" and not c.check.get("stored_ok") for c in all_cases)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
