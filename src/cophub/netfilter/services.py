"""The network filter's hub side: the snapshot the resolver reads, the lists, the query log.

What the console and the worker call (docs/netfilter.md):

- `publish()` writes `<state>/policy.json` from the database; every console
  change calls `publish_on_commit()` so the resolver sees it within a second
  of the commit, never before.
- `import_upload()` and `refresh_subscription()` check a list's new text and
  keep it in `<state>/lists/<pk>.txt` (a refused text leaves the previous
  one in use); `compile_now()` turns every enabled list into one new
  compiled table, records it and publishes.
- `ingest_query_logs()` moves the resolver's query-log files into QueryLog
  and QueryStat, once each, and alerts the counsellor about a device that
  keeps hitting blocked categories.
- `stats()` and `resolver_status()` feed the console's dashboard.

Files in the state folder are written by the hub under a lock file, so two
processes publishing or compiling at once take turns; the resolver only
ever sees whole files (snapshot.write_atomic).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q, Sum
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from . import catalog, snapshot
from .models import (
    Action,
    Category,
    ClientGroup,
    FilterList,
    IngestedLog,
    ListSource,
    ListStatus,
    Privacy,
    QueryLog,
    QueryStat,
    ResolverSettings,
)

logger = logging.getLogger(__name__)

# The resolver's table holds up to 4096 lists (12 bits of slot in each entry).
MAX_LISTS = 4096
# A downloaded list larger than this is refused (the biggest public lists are about 40 MB).
MAX_LIST_BYTES = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT = 120.0
CURRENT = "current.json"
# status.json is rewritten every 2 seconds by a running resolver.
ALIVE_SECONDS = 10
LOG_GLOB = "q-*.tsv"
CLAIM_SUFFIX = ".ingesting-"
ACTIONS = frozenset(Action.values)
HASH_KEY_LABEL = b"cophub.netfilter.client-address-hash.v1"
PROTECTED_ALWAYS = ("gov.vn", "moet.gov.vn")

_local_locks = defaultdict(threading.Lock)


# --- The state folder ---------------------------------------------------------------------


def state_dir() -> Path:
    """`COPHUB_NETFILTER_DIR`, with its sub-folders made."""
    return snapshot.ensure(Path(settings.COPHUB_NETFILTER_DIR))


def list_path(filter_list: FilterList | int) -> Path:
    pk = filter_list if isinstance(filter_list, int) else filter_list.pk
    return state_dir() / snapshot.LISTS / f"{pk}.txt"


@contextlib.contextmanager
def _locked(name: str):
    """One holder at a time across processes (flock on a file in the state folder) and threads."""
    path = state_dir() / f".{name}.lock"
    with _local_locks[str(path)]:
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def settings_row() -> ResolverSettings:
    """The resolver's settings (one row, pk=1), made with the defaults the first time."""
    row, _created = ResolverSettings.objects.get_or_create(pk=1)
    return row


def hash_key() -> str:
    """The key of the client-address hash: stable across restarts, derived from SECRET_KEY, never the secret itself."""
    return hmac.new(settings.SECRET_KEY.encode(), HASH_KEY_LABEL, hashlib.sha256).hexdigest()


def hub_host() -> str:
    """The hub's own host name (from COPHUB_PUBLIC_URL): a list may never block it."""
    return (urlsplit(settings.COPHUB_PUBLIC_URL or "").hostname or "").lower().rstrip(".")


def protected_names() -> tuple[str, ...]:
    host = hub_host()
    return tuple(dict.fromkeys(([host] if host else []) + list(PROTECTED_ALWAYS)))


def _hub_language():
    return translation.override(settings.LANGUAGE_CODE)


# --- Compiled version ----------------------------------------------------------------------


def current_compiled() -> dict | None:
    """What the last compile recorded: {"version", "bin", "meta", "compiled_at", "counts", "hub_tag"}; None before the first."""
    data = snapshot.read_json(state_dir() / snapshot.COMPILED / CURRENT)
    if not data or not data.get("version"):
        return None
    if not (state_dir() / data["bin"]).exists():
        return None
    return data


def _relative(path) -> str:
    path = Path(path)
    try:
        return path.resolve().relative_to(state_dir().resolve()).as_posix()
    except ValueError:
        return f"{snapshot.COMPILED}/{path.name}"


# --- Publishing the snapshot ------------------------------------------------------------------


def _upstreams(text: str) -> list[str]:
    """"9.9.9.9", "9.9.9.9:5353", "2620:fe::fe", "[2620:fe::fe]:53" -> "address:port" with IPv6 in brackets."""
    result = []
    for line in text.splitlines():
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        host, port = item, 53
        if item.startswith("["):
            host, _sep, rest = item[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif item.count(":") == 1:
            host, _sep, tail = item.partition(":")
            if tail.isdigit():
                port = int(tail)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            logger.warning("netfilter: upstream %r is not an address; left out", item)
            continue
        if not 0 < port < 65536:
            continue
        result.append(f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}")
    return list(dict.fromkeys(result))


def _lines(text: str) -> list[str]:
    """Custom rules: one per line, blanks and comments left out."""
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            out.append(line)
    return out


def _hhmm(value) -> str:
    return value.strftime("%H:%M")


def _group_entry(group: ClientGroup, now: datetime) -> dict:
    tz = timezone.get_default_timezone()
    unblocks = [
        {"domain": u.domain.strip().lower().rstrip("."), "until": u.until.astimezone(tz).isoformat(timespec="seconds")}
        for u in group.unblocks.all() if u.revoked_at is None and u.until > now
    ]
    youtube = group.safe_search_youtube
    return {
        "id": group.pk,
        "name": group.name,
        "priority": group.priority,
        "categories": [c for c in group.categories if c != Category.HARMFUL],
        "blocked_services": [s for s in group.blocked_services if s in catalog.SERVICES],
        "safe_search": {
            "google": group.safe_search_google,
            # false when off, else the mode's name ("moderate" or "strict").
            "youtube": False if youtube == "off" else youtube,
            "bing": group.safe_search_bing,
            "duckduckgo": group.safe_search_duckduckgo,
        },
        "allow": _lines(group.allow_rules),
        "deny": _lines(group.deny_rules),
        "ranges": [{"cidr": r.cidr.strip(), "devices": max(1, r.devices)} for r in group.ranges.all()],
        "slots": [
            {"days": sorted({int(d) for d in slot.days if 0 <= int(d) <= 6}), "start": _hhmm(slot.start), "end": _hhmm(slot.end),
             "block_all": slot.block_all, "services": [s for s in slot.services if s in catalog.SERVICES],
             "categories": list(slot.categories)}
            for slot in group.slots.all()
        ],
        "unblocks": unblocks,
    }


def build_policy(now: datetime | None = None) -> dict:
    """The policy.json document (format 1) from the database, without a version yet."""
    now = now or timezone.now()
    row = settings_row()
    groups = (ClientGroup.objects.order_by("pk")
              .prefetch_related("ranges", "slots", "unblocks"))
    compiled = current_compiled()
    with _hub_language():
        services = catalog.snapshot()
    return {
        "format": snapshot.FORMAT,
        "version": "",
        "timezone": settings.TIME_ZONE,
        "rules": {"bin": compiled["bin"], "meta": compiled["meta"]} if compiled else None,
        "settings": {
            "upstreams": _upstreams(row.upstreams),
            "upstream_timeout_ms": row.upstream_timeout_ms,
            "block_mode": row.block_mode,
            "block_page_ipv4": row.block_page_ipv4 or "",
            "block_page_ipv6": row.block_page_ipv6 or "",
            "blocked_ttl": row.blocked_ttl,
            "cache_size": row.cache_size,
            "privacy": row.privacy,
            "hash_key": hash_key(),
            "log_queries": row.log_queries,
            "rate_limit_qps": row.rate_limit_qps,
            "rate_limit_exempt": _lines(row.rate_limit_exempt),
            "hub_url": settings.COPHUB_PUBLIC_URL or "",
            "default_group": row.default_group_id,
        },
        "services": services,
        "groups": [_group_entry(group, now) for group in groups],
    }


def new_version(now: datetime | None = None) -> str:
    """"20261201T104500.123456Z-3f2a": sorts by time, unique between two processes."""
    now = (now or timezone.now()).astimezone(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(2)}"


def publish() -> str:
    """Write policy.json from the database (atomically) and return its version.

    Runs under the state folder's publish lock, reading the database inside
    it, so the last writer always wrote what the database holds now.
    """
    with _locked("publish"):
        policy = build_policy()
        policy["version"] = new_version()
        snapshot.write_json(state_dir() / snapshot.POLICY, policy)
    return policy["version"]


def publish_on_commit() -> None:
    """Publish when the current transaction commits (every console change calls this)."""
    transaction.on_commit(publish)


def published_policy() -> dict | None:
    return snapshot.read_json(state_dir() / snapshot.POLICY)


# --- Lists -------------------------------------------------------------------------------------


def ensure_hub_list(unit) -> FilterList:
    """The entry of this hub's confirmed harmful hosts (category harmful, source hub), made when missing."""
    existing = FilterList.objects.filter(source=ListSource.HUB).order_by("pk").first()
    if existing is not None:
        return existing
    with _hub_language():
        name = _("Confirmed harmful sites (this hub)")
    return FilterList.objects.create(unit=unit, name=name, category=Category.HARMFUL, source=ListSource.HUB,
                                     match_subdomains=True, refresh_hours=1)


def _hub_list_text() -> bytes:
    from cophub.hashbanks.services import published_hosts

    return "".join(f"{host}\n" for host in published_hosts()).encode()


def _hub_tag() -> str:
    from cophub.hashbanks.services import published_version

    return published_version()[0]


def _held_back(parsed) -> list:
    from . import rules

    return list(rules.check_list(parsed, protected=protected_names()))


def _store_error(filter_list: FilterList, message: str, now: datetime) -> None:
    filter_list.status = ListStatus.ERROR
    filter_list.error = message
    filter_list.checked_at = now
    filter_list.save(update_fields=["status", "error", "checked_at"])


# Why a file is refused (rules.refuse_reason's codes), as the list's page and the error field say it.
REFUSALS = {
    "html": _lazy("the file is a web page (HTML), not a block list — often an error page of the site it came from"),
    "not_a_list": _lazy("most of its lines are not rules: it does not look like a block list"),
    "empty": _lazy("the file holds no rule"),
}


def _accept(filter_list: FilterList, data: bytes, now: datetime) -> str | None:
    """Check `data` and keep it as the list's text; returns the reason it was refused, or None.

    A refused text leaves the previous file (and its compiled rules) in use.
    """
    from . import rules

    parsed = rules.parse_list(data, match_subdomains=filter_list.match_subdomains)
    code = rules.refuse_reason(parsed)
    if code:
        with _hub_language():
            message = _("The new file was refused: %(reason)s. The previous version stays in use.") % {
                "reason": REFUSALS.get(code, code)}
        _store_error(filter_list, message, now)
        return message
    held = _held_back(parsed)  # takes the held-back rules out of `parsed`
    digest = hashlib.sha256(data).hexdigest()
    snapshot.write_atomic(list_path(filter_list), data)
    report = dict(parsed.report)
    report.update(refused=None, held_back=held[:rules.MAX_HELD_BACK_LISTED], held_back_count=len(held))
    filter_list.report = json.loads(json.dumps(report, default=str))
    filter_list.rule_count = parsed.rule_count()
    filter_list.status = ListStatus.FLAGGED if held else ListStatus.OK
    filter_list.error = ""
    filter_list.checked_at = now
    if digest != filter_list.sha256:
        filter_list.changed_at = now
    filter_list.sha256 = digest
    filter_list.save(update_fields=["report", "rule_count", "status", "error", "checked_at", "changed_at", "sha256"])
    return None


def import_upload(filter_list: FilterList, data: bytes, user=None) -> str | None:
    """Take an uploaded file as the list's text; returns why it was refused (in the hub's language), or None when taken.

    A refused file sets the list's status to error with the reason and leaves
    the previous file (if any) in use. Recorded in the audit log; the lists
    are compiled again by the worker after the commit.
    """
    from cophub.audit.services import record

    now = timezone.now()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_LIST_BYTES:
        refused = _too_large()
        _store_error(filter_list, refused, now)
    else:
        refused = _accept(filter_list, data, now)
    with transaction.atomic():
        record("netfilter.list_uploaded", actor=user, obj=filter_list, unit=filter_list.unit, name=filter_list.name,
               category=filter_list.category, size=len(data), sha256=digest, rules=filter_list.rule_count,
               held_back=len((filter_list.report or {}).get("held_back") or []), refused=refused or "")
        if not refused:
            enqueue_compile()
    return refused


def _too_large() -> str:
    with _hub_language():
        return _("The file is larger than %(mb)s MB.") % {"mb": MAX_LIST_BYTES // (1024 * 1024)}


def _due_subscriptions(now: datetime):
    lists = FilterList.objects.filter(source=ListSource.SUBSCRIPTION, enabled=True).exclude(url="")
    due = [fl.pk for fl in lists.only("pk", "checked_at", "refresh_hours")
           if fl.checked_at is None or fl.checked_at <= now - timedelta(hours=max(1, fl.refresh_hours))]
    return due


def refresh_subscription(list_id: int, *, force: bool = False) -> str:
    """Download a subscription once (with ETag / If-Modified-Since); returns changed, unchanged, refused, failed or not_due.

    The download goes through the hub's SSRF-guarded fetcher (referrals.safehttp).
    A claim on `checked_at` keeps two workers from fetching the same list at once.
    """
    from cophub.referrals import safehttp

    now = timezone.now()
    filter_list = FilterList.objects.filter(pk=list_id, source=ListSource.SUBSCRIPTION).first()
    if filter_list is None or not filter_list.url:
        return "missing"
    if not force:
        if not filter_list.enabled or filter_list.pk not in _due_subscriptions(now):
            return "not_due"
        claimed = FilterList.objects.filter(pk=list_id, checked_at=filter_list.checked_at).update(checked_at=now)
        if not claimed:
            return "not_due"
    headers = {}
    have_file = list_path(filter_list).exists()
    if have_file and filter_list.etag:
        headers["If-None-Match"] = filter_list.etag
    if have_file and filter_list.last_modified:
        headers["If-Modified-Since"] = filter_list.last_modified
    try:
        fetched = safehttp.fetch(filter_list.url, timeout=DOWNLOAD_TIMEOUT, max_bytes=MAX_LIST_BYTES, headers=headers)
    except safehttp.FetchError as exc:
        with _hub_language():
            message = _("The list could not be downloaded (%(reason)s). The previous version stays in use.") % {"reason": str(exc)[:300]}
        _store_error(filter_list, message, now)
        return "failed"
    if fetched.status == 304 and have_file:
        filter_list.checked_at = now
        fields = ["checked_at"]
        if filter_list.status == ListStatus.ERROR:
            filter_list.status = ListStatus.FLAGGED if filter_list.report.get("held_back") else ListStatus.OK
            filter_list.error = ""
            fields += ["status", "error"]
        filter_list.save(update_fields=fields)
        return "unchanged"
    if fetched.status != 200:
        with _hub_language():
            message = _("The server answered HTTP %(status)s. The previous version stays in use.") % {"status": fetched.status}
        _store_error(filter_list, message, now)
        return "failed"
    if fetched.truncated:
        _store_error(filter_list, _too_large(), now)
        return "refused"
    before = filter_list.sha256
    with transaction.atomic():
        refused = _accept(filter_list, fetched.body, now)
        if refused:
            return "refused"
        filter_list.etag = fetched.headers.get("etag", "")[:200]
        filter_list.last_modified = fetched.headers.get("last-modified", "")[:100]
        filter_list.save(update_fields=["etag", "last_modified"])
        if filter_list.sha256 == before and current_compiled() is not None:
            return "unchanged"
        enqueue_compile()
    return "changed"


def refresh_due_lists() -> dict[str, int]:
    """Refresh every subscription that is due (the task `refresh_lists`); counts by outcome."""
    outcomes: dict[str, int] = defaultdict(int)
    for list_id in _due_subscriptions(timezone.now()):
        try:
            outcomes[refresh_subscription(list_id)] += 1
        except Exception:  # one broken list must not stop the others
            logger.exception("netfilter: refreshing list %s failed", list_id)
            outcomes["error"] += 1
    return dict(outcomes)


@dataclass
class _Slotted:
    filter_list: FilterList
    slot: int
    path: Path


def _slotted_lists() -> list[_Slotted]:
    enabled = list(FilterList.objects.filter(enabled=True).order_by("pk")[:MAX_LISTS])
    return [_Slotted(fl, slot, list_path(fl)) for slot, fl in enumerate(enabled)]


def compile_now():
    """Compile every enabled list into a new table, record it, publish, and prune older tables.

    The hub's own list is written from the confirmed harmful hosts first.
    The table the previous policy names is kept (the resolver may still have
    it mapped) besides the new one.
    """
    from . import rules

    with _locked("compile"):
        now = timezone.now()
        slotted = _slotted_lists()
        hub_tag = ""
        inputs = []
        for entry in slotted:
            fl = entry.filter_list
            if fl.source == ListSource.HUB:
                hub_tag = _hub_tag()
                data = _hub_list_text()
                snapshot.write_atomic(entry.path, data)
                digest = hashlib.sha256(data).hexdigest()
                if digest != fl.sha256:
                    fl.sha256, fl.changed_at = digest, now
                fl.checked_at = now
            if not entry.path.exists():
                continue
            inputs.append(rules.ListInput(slot=entry.slot, list_id=fl.pk, name=fl.name, category=fl.category,
                                          path=entry.path, match_subdomains=fl.match_subdomains, protected=protected_names()))
        out_dir = state_dir() / snapshot.COMPILED
        compiled = rules.compile_in_background(inputs, out_dir)
        for entry in slotted:
            fl = entry.filter_list
            report = compiled.reports.get(fl.pk)
            if report is None:
                continue
            fl.report = json.loads(json.dumps(report, default=str))
            fl.rule_count = int(report.get("rules") or 0)
            refused = report.get("refused")
            if refused and fl.source != ListSource.HUB:  # the hub's list may simply be empty
                with _hub_language():
                    fl.status, fl.error = ListStatus.ERROR, _("The file in use was refused: %(reason)s.") % {
                        "reason": REFUSALS.get(refused, refused)}
            elif fl.status != ListStatus.ERROR:  # a refused download keeps saying so; its previous text is what was compiled
                fl.status = ListStatus.FLAGGED if report.get("held_back_count") else ListStatus.OK
                fl.error = ""
            fl.save(update_fields=["report", "rule_count", "status", "error", "sha256", "changed_at", "checked_at"])
        previous = (published_policy() or {}).get("rules") or {}
        record = {
            "version": compiled.version,
            "bin": _relative(compiled.bin_path),
            "meta": _relative(compiled.meta_path),
            "compiled_at": now.isoformat(),
            "counts": compiled.counts,
            "hub_tag": hub_tag,
            "lists": [i.list_id for i in inputs],
        }
        snapshot.write_json(out_dir / CURRENT, json.loads(json.dumps(record, default=str)))
        publish()
        keep = {compiled.version}
        old_bin = previous.get("bin", "")
        if old_bin:
            keep.add(_version_of(old_bin))
        rules.prune(out_dir, keep)
    logger.info("netfilter: compiled %s lists into %s", len(inputs), compiled.version)
    return compiled


def _version_of(rel: str) -> str:
    name = Path(rel).name
    return name.removeprefix("rules-").removesuffix(".bin").removesuffix(".json")


# --- Enqueueing (with the change, once while one is waiting) ---------------------------------------


def _pending(task) -> bool:
    """Whether `task` already waits in the database queue (the immediate backend never has one waiting)."""
    if not settings.TASKS["default"]["BACKEND"].endswith("DatabaseBackend"):
        return False
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.ready().filter(task_path=task.module_path).exists()


def _enqueue_once(task, *args) -> bool:
    from cophub.core.outbox import enqueue

    if _pending(task):
        return False
    enqueue(task, *args)
    return True


def enqueue_compile() -> bool:
    """Compile the lists again in the worker (after this transaction commits); not when one already waits."""
    from .tasks import compile_rules

    return _enqueue_once(compile_rules)


# --- Query log ingestion -------------------------------------------------------------------------


@dataclass
class IngestResult:
    files: int = 0
    rows: int = 0
    skipped: int = 0
    alerts: int = 0
    names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"files": self.files, "rows": self.rows, "skipped": self.skipped, "alerts": self.alerts}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_files(log_dir: Path) -> list[tuple[Path, str]]:
    """Rename each finished log file to `<name>.ingesting-<pid>-<thread>`: whoever renames it ingests it.

    Files claimed by a process that has died are taken over the same way.
    """
    token = f"{CLAIM_SUFFIX}{os.getpid()}-{threading.get_ident()}"
    claimed = []
    candidates = sorted(log_dir.glob(LOG_GLOB))
    for stale in sorted(log_dir.glob(f"q-*.tsv{CLAIM_SUFFIX}*")):
        owner = stale.name.rsplit(CLAIM_SUFFIX, 1)[1].split("-", 1)[0]
        if owner.isdigit() and not _pid_alive(int(owner)):
            candidates.append(stale)
    for path in candidates:
        original = path.name.split(CLAIM_SUFFIX, 1)[0]
        target = log_dir / f"{original}{token}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            continue  # another ingester took it
        claimed.append((target, original))
    return claimed


def _parse_line(line: str) -> tuple | None:
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != 9:
        return None
    second, client, group, name, qtype, action, category, rule, count = parts
    try:
        second, group, qtype, count = int(second), int(group), int(qtype), int(count)
    except ValueError:
        return None
    if action not in ACTIONS or count < 1 or second < 0 or not name or not (0 <= qtype < 65536):
        return None
    if len(client) > 64 or len(category) > 16 or len(name) > 255:
        return None
    return datetime.fromtimestamp(second, UTC), client, group, name.lower(), qtype, action, category, rule[:300], count


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _add_stats(counts: dict[tuple, int]) -> None:
    """Add hourly counts (an upsert that works on SQLite and PostgreSQL, and with two workers at once)."""
    for (hour, group_ref, action, category), n in sorted(counts.items()):
        keys = {"hour": hour, "group_ref": group_ref, "action": action, "category": category}
        if QueryStat.objects.filter(**keys).update(count=F("count") + n):
            continue
        try:
            with transaction.atomic():
                QueryStat.objects.create(count=n, **keys)
        except IntegrityError:
            QueryStat.objects.filter(**keys).update(count=F("count") + n)


def _ingest_file(path: Path, original: str, keep_log: bool, result: IngestResult) -> None:
    rows = []
    counts: dict[tuple, int] = defaultdict(int)
    skipped = 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                skipped += 1
                continue
            if not line.strip():
                continue
            parsed = _parse_line(line)
            if parsed is None:
                skipped += 1
                continue
            ts, client, group, name, qtype, action, category, rule, count = parsed
            counts[(_hour(ts), group, action, category)] += count
            if keep_log:
                rows.append(QueryLog(ts=ts, client=client, group_ref=group, name=name, qtype=qtype, action=action,
                                     category=category, rule=rule, count=count))
    with transaction.atomic():
        try:
            with transaction.atomic():
                IngestedLog.objects.create(name=original, rows=len(rows), skipped=skipped)
        except IntegrityError:
            logger.warning("netfilter: log file %s was ingested before; deleted", original)
            rows, counts = [], {}
        else:
            QueryLog.objects.bulk_create(rows, batch_size=2000)
            _add_stats(counts)
            result.files += 1
            result.rows += len(rows) if keep_log else sum(counts.values())
            result.skipped += skipped
            result.names.append(original)
    if skipped:
        logger.warning("netfilter: %s malformed line(s) skipped in %s", skipped, original)
    path.unlink(missing_ok=True)


def ingest_query_logs(now: datetime | None = None) -> IngestResult:
    """Move the resolver's finished query-log files into the database, each exactly once; then the counsellor check.

    A file is claimed by renaming it, and its name is recorded (IngestedLog,
    unique) in the transaction that adds its rows: two ingesters never add
    one file twice, and a file left behind by a worker that died after the
    commit is only deleted.
    """
    row = settings_row()
    result = IngestResult()
    log_dir = state_dir() / snapshot.LOG
    for path, original in _claim_files(log_dir):
        try:
            _ingest_file(path, original, row.log_queries, result)
        except Exception:
            logger.exception("netfilter: ingesting %s failed; it will be tried again", original)
            with contextlib.suppress(OSError):
                os.rename(path, log_dir / original)
    if result.files:
        result.alerts = check_repeated_hits(now=now, row=row)
    return result


def _counsellors(unit) -> list:
    from cophub.alerts.services import unit_leadership
    from cophub.orgs.models import Role
    from cophub.orgs.services import staff_in

    people = list(staff_in(unit, [Role.COUNSELLOR]))
    return people or unit_leadership(unit)


def check_repeated_hits(*, now: datetime | None = None, row: ResolverSettings | None = None) -> int:
    """Alert the counsellors of a group's school about a device with many blocked queries in the alert categories.

    One alert per device, category and window (the dedupe key holds the
    window's number). The device is named by what the log holds: its
    address only when the settings keep addresses, else its keyed hash.
    Returns how many alerts were raised.
    """
    from cophub.alerts.services import raise_alert
    from cophub.orgs.services import home_unit

    row = row or settings_row()
    if not row.alert_enabled or not row.alert_categories or not row.log_queries:
        return 0
    now = now or timezone.now()
    window = timedelta(minutes=max(1, row.alert_window_minutes))
    bucket = int(now.timestamp() // window.total_seconds())
    hits = (QueryLog.objects.filter(action=Action.BLOCKED, category__in=row.alert_categories, ts__gt=now - window, ts__lte=now)
            .exclude(client="").values("client", "category")
            .annotate(total=Sum("count"), group=Max("group_ref")).filter(total__gte=row.alert_threshold))
    raised = 0
    groups = {g.pk: g for g in ClientGroup.objects.filter(pk__in={h["group"] for h in hits}).select_related("unit")}
    for hit in hits:
        client = hit["client"]
        if row.privacy != Privacy.KEEP and not client.startswith("h:"):
            continue  # an address logged before the privacy setting changed is not put in an alert
        group = groups.get(hit["group"])
        unit = group.unit if group else home_unit()
        if unit is None:
            continue
        with _hub_language():
            category = str(Category(hit["category"]).label) if hit["category"] in Category.values else hit["category"]
            group_name = group.name if group else _("no group")
        params = {"group": group_name, "category": category, "count": hit["total"], "window": row.alert_window_minutes,
                  "device": client}
        key = f"netfilter.repeated_hits:{client}:{hit['category']}:{row.alert_window_minutes}:{bucket}"
        with transaction.atomic():
            raised += bool(raise_alert("netfilter.repeated_hits", _counsellors(unit), params=params, link=_log_link(),
                                       dedupe_key=key[:200]))
    return raised


def _log_link() -> str:
    from django.urls import NoReverseMatch, reverse

    for name in ("netfilter:log", "netfilter:querylog", "netfilter:dashboard", "netfilter:index"):
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return ""


# --- Retention ---------------------------------------------------------------------------------


def expire(now: datetime | None = None) -> dict[str, int]:
    """Delete the query log past its retention; publish again when the snapshot holds an unblock that has run out."""
    now = now or timezone.now()
    row = settings_row()
    cutoff = now - timedelta(days=max(1, row.log_retention_days))
    deleted = QueryLog.objects.filter(ts__lt=cutoff).delete()[0]
    IngestedLog.objects.filter(ingested_at__lt=cutoff).delete()
    republished = 0
    policy = published_policy()
    if policy is not None:
        for group in policy.get("groups", []):
            if any(datetime.fromisoformat(u["until"]) <= now for u in group.get("unblocks", [])):
                publish()
                republished = 1
                break
    return {"log_rows": deleted, "republished": republished}


# --- Console: statistics and status ----------------------------------------------------------------


def _group_refs(groups) -> list[int] | None:
    if groups is None:
        return None
    return [g if isinstance(g, int) else g.pk for g in groups]


def stats(groups=None, *, since: datetime | None = None, include_ungrouped: bool = True, top: int = 20) -> dict:
    """The dashboard's numbers since `since` (default: 24 hours ago).

    `groups`: client groups (or ids) to count, None for all; queries
    answered for no group count only with `include_ungrouped`. Totals and the
    hourly series come from QueryStat (kept after the log expires); the top
    blocked names and devices from the query log.
    """
    since = since or timezone.now() - timedelta(hours=24)
    refs = _group_refs(groups)
    scope = Q()
    if refs is not None:
        scope = Q(group_ref__in=refs + ([0] if include_ungrouped else []))
    elif not include_ungrouped:
        scope = ~Q(group_ref=0)
    stat = QueryStat.objects.filter(scope, hour__gte=_hour(since))
    by_action = {a: 0 for a in Action.values}
    for entry in stat.values("action").annotate(n=Sum("count")):
        by_action[entry["action"]] = int(entry["n"])
    total = sum(by_action.values())
    names = dict(ClientGroup.objects.values_list("pk", "name"))
    by_group: dict[int, dict] = {}
    for entry in stat.values("group_ref", "action").annotate(n=Sum("count")):
        item = by_group.setdefault(entry["group_ref"], {"group_ref": entry["group_ref"], "name": names.get(entry["group_ref"], ""),
                                                        "total": 0, "blocked": 0})
        item["total"] += int(entry["n"])
        if entry["action"] == Action.BLOCKED:
            item["blocked"] += int(entry["n"])
    categories = [
        {"category": e["category"], "name": str(Category(e["category"]).label) if e["category"] in Category.values else e["category"],
         "count": int(e["n"])}
        for e in stat.filter(action=Action.BLOCKED).values("category").annotate(n=Sum("count")).order_by("-n", "category")
    ]
    series: dict[datetime, dict] = {}
    for entry in stat.values("hour", "action").annotate(n=Sum("count")).order_by("hour"):
        point = series.setdefault(entry["hour"], {"hour": entry["hour"], "total": 0, "blocked": 0})
        point["total"] += int(entry["n"])
        if entry["action"] == Action.BLOCKED:
            point["blocked"] += int(entry["n"])
    log = QueryLog.objects.filter(scope, ts__gte=since, action=Action.BLOCKED)
    top_blocked = [
        {"name": e["name"], "category": e["category"], "count": int(e["n"])}
        for e in log.values("name", "category").annotate(n=Sum("count")).order_by("-n", "name")[:top]
    ]
    top_clients = [
        {"client": e["client"], "group_ref": e["group_ref"], "count": int(e["n"])}
        for e in log.exclude(client="").values("client", "group_ref").annotate(n=Sum("count")).order_by("-n", "client")[:top]
    ]
    return {
        "since": since,
        "total": total,
        "by_action": by_action,
        "blocked": by_action[Action.BLOCKED],
        "blocked_share": (by_action[Action.BLOCKED] / total) if total else 0.0,
        "by_group": sorted(by_group.values(), key=lambda g: (-g["total"], g["name"])),
        "by_category": categories,
        "top_blocked": top_blocked,
        "top_clients": top_clients,
        "per_hour": list(series.values()),
    }


def resolver_status(now: float | None = None) -> dict | None:
    """The resolver's status.json with "alive" (written within ALIVE_SECONDS) and "age_seconds"; None when it never ran."""
    path = state_dir() / snapshot.STATUS
    data = snapshot.read_json(path)
    if data is None:
        return None
    try:
        age = (now if now is not None else time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return None
    data["age_seconds"] = max(0.0, age)
    data["alive"] = age <= ALIVE_SECONDS
    policy = published_policy() or {}
    data["policy_current"] = bool(policy) and data.get("policy_version") == policy.get("version")
    return data
