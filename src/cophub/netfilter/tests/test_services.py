"""The hub side of the network filter: the policy snapshot, lists, compiling, subscriptions, statistics."""

from __future__ import annotations

import json
import threading
import time as time_module
from datetime import time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.conftest import make_user
from cophub.netfilter import catalog, rules, services, snapshot, tasks
from cophub.netfilter.models import (
    Category,
    ClientGroup,
    ClientRange,
    FilterList,
    ListSource,
    ListStatus,
    QueryLog,
    QueryStat,
    ScheduleSlot,
    TemporaryUnblock,
)
from cophub.orgs.models import Role


@pytest.fixture(autouse=True)
def _state(settings, tmp_path):
    settings.COPHUB_NETFILTER_DIR = tmp_path / "netfilter"
    settings.COPHUB_PUBLIC_URL = "https://hub.example.edu.vn/"
    return services.state_dir()


@pytest.fixture
def school(units):
    return units["school_a"]


@pytest.fixture
def itadmin(school):
    return make_user("it-a", Role.IT_ADMIN, school)


def _upload(school, user, text: str, *, name="Danh sách", category=Category.ADULT, subdomains=True) -> FilterList:
    filter_list = FilterList.objects.create(unit=school, name=name, category=category, source=ListSource.UPLOAD,
                                            match_subdomains=subdomains)
    assert services.import_upload(filter_list, text.encode(), user) is None
    filter_list.refresh_from_db()
    return filter_list


# --- publish ---------------------------------------------------------------------------------------


def test_publish_writes_the_policy_with_groups_ranges_slots_and_live_unblocks(school, itadmin, settings):
    row = services.settings_row()
    row.upstreams = "9.9.9.9\n2620:fe::fe\n[2606:4700:4700::1111]:5353\n1.1.1.1:53\nnot-an-address"
    row.block_page_ipv4 = "10.0.0.5"
    row.save()
    group = ClientGroup.objects.create(unit=school, name="Khối 6", categories=["adult", "gambling"], blocked_services=["tiktok", "gone"],
                                       safe_search_youtube="off", allow_rules="# comment\n||thptabc.edu.vn^\n\n", deny_rules="example.com")
    ClientRange.objects.create(group=group, cidr="10.1.6.0/24")
    ClientRange.objects.create(group=group, cidr="203.0.113.7", devices=40)
    ScheduleSlot.objects.create(group=group, days=[0, 1, 2, 3, 4], start=time(22), end=time(6), block_all=True)
    now = timezone.now()
    TemporaryUnblock.objects.create(group=group, domain="Example.org.", until=now + timedelta(hours=2), created_by=itadmin)
    TemporaryUnblock.objects.create(group=group, domain="expired.example", until=now - timedelta(minutes=1))
    TemporaryUnblock.objects.create(group=group, domain="revoked.example", until=now + timedelta(hours=2), revoked_at=now)
    row.default_group = group
    row.save()

    version = services.publish()
    policy = json.loads((services.state_dir() / "policy.json").read_text())
    assert policy["version"] == version and policy["format"] == 1
    assert policy["timezone"] == "Asia/Ho_Chi_Minh"
    assert policy["rules"] is None  # nothing compiled yet
    s = policy["settings"]
    assert s["upstreams"] == ["9.9.9.9:53", "[2620:fe::fe]:53", "[2606:4700:4700::1111]:5353", "1.1.1.1:53"]
    assert s["block_page_ipv4"] == "10.0.0.5" and s["block_page_ipv6"] == ""
    assert s["privacy"] == "hash" and len(s["hash_key"]) == 64 and settings.SECRET_KEY not in json.dumps(policy)
    assert s["hash_key"] == services.hash_key()  # stable
    assert s["hub_url"] == "https://hub.example.edu.vn/" and s["default_group"] == group.pk
    assert s["rate_limit_exempt"] == ["127.0.0.1", "::1"]
    assert policy["services"]["tiktok"]["name"] == "TikTok" and "tiktokv.com" in policy["services"]["tiktok"]["domains"]
    [entry] = policy["groups"]
    assert entry["id"] == group.pk and entry["name"] == "Khối 6"
    assert entry["categories"] == ["adult", "gambling"] and entry["blocked_services"] == ["tiktok"]
    assert entry["safe_search"] == {"google": True, "youtube": False, "bing": True, "duckduckgo": True}
    assert entry["allow"] == ["||thptabc.edu.vn^"] and entry["deny"] == ["example.com"]
    assert entry["ranges"] == [{"cidr": "10.1.6.0/24", "devices": 1}, {"cidr": "203.0.113.7", "devices": 40}]
    assert entry["slots"] == [{"days": [0, 1, 2, 3, 4], "start": "22:00", "end": "06:00", "block_all": True,
                               "services": [], "categories": []}]
    assert [u["domain"] for u in entry["unblocks"]] == ["example.org"]
    assert entry["unblocks"][0]["until"].endswith("+07:00")
    # A second publish is a new version; nothing but whole files in the folder.
    assert services.publish() != version
    assert sorted(p.name for p in services.state_dir().iterdir() if p.is_file()) == [".publish.lock", "policy.json"]


def test_publish_on_commit_waits_for_the_commit(school, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.publish_on_commit()
    assert not (services.state_dir() / "policy.json").exists()
    for callback in callbacks:
        callback()
    assert (services.state_dir() / "policy.json").exists()


def test_expire_republishes_when_an_unblock_has_run_out(school):
    group = ClientGroup.objects.create(unit=school, name="Khối 9")
    TemporaryUnblock.objects.create(group=group, domain="a.example", until=timezone.now() + timedelta(minutes=10))
    first = services.publish()
    assert services.expire()["republished"] == 0
    later = timezone.now() + timedelta(minutes=11)
    assert services.expire(now=later)["republished"] == 1
    assert services.published_policy()["version"] != first


# --- lists and compiling -------------------------------------------------------------------------------


def test_compile_with_uploaded_lists_updates_statuses_and_flags_a_public_suffix(school, itadmin):
    adult = _upload(school, itadmin, "0.0.0.0 adult-example.test\n0.0.0.0 www.adult-example.test\n")
    assert adult.status == ListStatus.OK and adult.rule_count == 2 and adult.sha256
    assert (services.state_dir() / "lists" / f"{adult.pk}.txt").read_bytes().startswith(b"0.0.0.0 adult-example.test")
    assert AuditEvent.objects.filter(action="netfilter.list_uploaded", object_id=str(adult.pk)).exists()
    bad = _upload(school, itadmin, "||vn^\n||casino-example.test^\n||hub.example.edu.vn^\n", name="Cờ bạc", category=Category.GAMBLING)
    assert bad.status == ListStatus.FLAGGED and bad.rule_count == 1
    assert {h["reason"] for h in bad.report["held_back"]} == {"public_suffix", "protected"}
    services.ensure_hub_list(school)
    disabled = _upload(school, itadmin, "off-example.test\n", name="Tắt")
    disabled.enabled = False
    disabled.save()

    compiled = services.compile_now()
    current = services.current_compiled()
    assert current["version"] == compiled.version
    assert (services.state_dir() / current["bin"]).exists() and (services.state_dir() / current["meta"]).exists()
    meta = json.loads((services.state_dir() / current["meta"]).read_text())
    assert [s["list"] for s in meta["slots"]] == sorted([adult.pk, bad.pk, FilterList.objects.get(source=ListSource.HUB).pk])
    assert [s["slot"] for s in meta["slots"]] == [0, 1, 2]
    policy = services.published_policy()
    assert policy["rules"] == {"bin": current["bin"], "meta": current["meta"]}
    adult.refresh_from_db()
    bad.refresh_from_db()
    assert adult.status == ListStatus.OK and adult.rule_count == 2
    assert bad.status == ListStatus.FLAGGED and bad.rule_count == 1 and bad.report["held_back_count"] == 2
    hub = FilterList.objects.get(source=ListSource.HUB)
    assert hub.status == ListStatus.OK and hub.category == Category.HARMFUL
    # The table answers the names, each list in its slot; the held-back and disabled rules are not in it.
    every_slot = (1 << 3) - 1
    with rules.RuleTable.open(services.state_dir() / current["bin"], services.state_dir() / current["meta"]) as table:
        assert table.match(b"adult-example.test", every_slot).slot == 0
        assert table.match(b"cdn.casino-example.test", every_slot).slot == 1
        assert table.match(b"casino-example.test", 1 << 0) is None
        assert table.match(b"thptabc.vn", every_slot) is None
        assert table.match(b"hub.example.edu.vn", every_slot) is None
        assert table.match(b"off-example.test", every_slot) is None


def test_hub_list_comes_from_the_published_hosts_and_old_tables_are_pruned(school, itadmin):
    from cophub.hashbanks import services as hashbanks
    from cophub.hashbanks.models import Bank, BankKind

    services.ensure_hub_list(school)
    assert services.ensure_hub_list(school).pk == FilterList.objects.get().pk  # made once
    first = services.compile_now()
    hub = FilterList.objects.get()
    assert (services.state_dir() / "lists" / f"{hub.pk}.txt").read_bytes() == b""
    bank, _ = Bank.objects.get_or_create(name="Danh sách xác nhận", defaults={"kind": BankKind.IMPORTED, "origin": "test"})
    hashbanks.add_signals(bank, {"domain": "free-kimcuong-ff.example"}, source="test", actor="test")
    assert tasks._hub_list_stale()
    second = services.compile_now()
    assert second.version != first.version
    assert b"free-kimcuong-ff.example" in (services.state_dir() / "lists" / f"{hub.pk}.txt").read_bytes()
    hub.refresh_from_db()
    assert hub.rule_count == 1 and not tasks._hub_list_stale()
    # The table of the previous policy is kept (the resolver may still map it), older ones go.
    _upload(school, itadmin, "x-example.test\n")
    third = services.compile_now()
    names = {p.name for p in (services.state_dir() / "compiled").iterdir()}
    assert f"rules-{second.version}.bin" in names and f"rules-{third.version}.bin" in names
    assert f"rules-{first.version}.bin" not in names


def test_a_refused_file_keeps_the_previous_one(school, itadmin):
    filter_list = _upload(school, itadmin, "adult-example.test\nmore-adult.test\n")
    path = services.state_dir() / "lists" / f"{filter_list.pk}.txt"
    before = path.read_bytes()
    refused = services.import_upload(filter_list, b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", itadmin)
    assert refused and "HTML" in refused
    filter_list.refresh_from_db()
    assert filter_list.status == ListStatus.ERROR and filter_list.error == refused
    assert path.read_bytes() == before
    # Vietnamese in the hub's language.
    assert "bị từ chối" in refused or "refused" in refused
    services.compile_now()
    filter_list.refresh_from_db()
    assert filter_list.status == ListStatus.ERROR and filter_list.rule_count == 2  # the old text is compiled, the error stays


# --- subscriptions ------------------------------------------------------------------------------------


class _ListServer:
    """A real HTTP server on 127.0.0.1 serving one list with an ETag."""

    def __init__(self):
        self.body = b"||casino-example.test^\n||bet-example.test^\n"
        self.etag = '"v1"'
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append(dict(self.headers))
                if self.headers.get("If-None-Match") == owner.etag:
                    self.send_response(304)
                    self.send_header("ETag", owner.etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("ETag", owner.etag)
                self.send_header("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/list.txt"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_subscription_refresh_with_etag(school, settings):
    settings.COPHUB_FETCH_ALLOW_PRIVATE = True
    with _ListServer() as server:
        filter_list = FilterList.objects.create(unit=school, name="Cờ bạc", category=Category.GAMBLING,
                                                source=ListSource.SUBSCRIPTION, url=server.url, refresh_hours=6)
        assert services.refresh_due_lists() == {"changed": 1}
        filter_list.refresh_from_db()
        assert filter_list.status == ListStatus.OK and filter_list.rule_count == 2
        assert filter_list.etag == '"v1"' and filter_list.last_modified.startswith("Tue, 01 Dec 2026")
        assert "If-None-Match" not in server.requests[0]
        # Not due again until refresh_hours have passed.
        assert services.refresh_due_lists() == {}
        assert services.refresh_subscription(filter_list.pk) == "not_due"
        # Forced (the console's "refresh"): 304 Not Modified, nothing rewritten.
        assert services.refresh_subscription(filter_list.pk, force=True) == "unchanged"
        assert server.requests[-1]["If-None-Match"] == '"v1"'
        # The server's list changes; an HTML error page later is refused and the good text stays.
        server.body, server.etag = b"||casino-example.test^\n", '"v2"'
        assert services.refresh_subscription(filter_list.pk, force=True) == "changed"
        filter_list.refresh_from_db()
        assert filter_list.rule_count == 1 and filter_list.etag == '"v2"'
        server.body, server.etag = b"<html><body>Service unavailable</body></html>", '"v3"'
        assert services.refresh_subscription(filter_list.pk, force=True) == "refused"
        filter_list.refresh_from_db()
        assert filter_list.status == ListStatus.ERROR and filter_list.etag == '"v2"'
        assert (services.state_dir() / "lists" / f"{filter_list.pk}.txt").read_bytes() == b"||casino-example.test^\n"


def test_subscription_refuses_private_addresses_without_the_setting(school, settings):
    settings.COPHUB_FETCH_ALLOW_PRIVATE = False
    with _ListServer() as server:
        filter_list = FilterList.objects.create(unit=school, name="Nội bộ", category=Category.OTHER,
                                                source=ListSource.SUBSCRIPTION, url=server.url)
        assert services.refresh_subscription(filter_list.pk, force=True) == "failed"
        assert not server.requests
    filter_list.refresh_from_db()
    assert filter_list.status == ListStatus.ERROR and "private_address" in filter_list.error


# --- statistics and status ------------------------------------------------------------------------------


def test_stats_by_action_group_category_and_top_names(school, units):
    g6 = ClientGroup.objects.create(unit=school, name="Khối 6")
    other = ClientGroup.objects.create(unit=units["school_c"], name="Khác")
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    QueryStat.objects.create(hour=hour, group_ref=g6.pk, action="forwarded", count=90)
    QueryStat.objects.create(hour=hour, group_ref=g6.pk, action="blocked", category="adult", count=10)
    QueryStat.objects.create(hour=hour - timedelta(hours=1), group_ref=other.pk, action="blocked", category="gambling", count=5)
    QueryStat.objects.create(hour=hour, group_ref=0, action="cached", count=7)
    QueryStat.objects.create(hour=hour - timedelta(days=3), group_ref=g6.pk, action="forwarded", count=1000)
    QueryLog.objects.create(ts=now, client="h:1", group_ref=g6.pk, name="adult-example.test", qtype=1, action="blocked",
                            category="adult", count=8)
    QueryLog.objects.create(ts=now, client="h:2", group_ref=g6.pk, name="b.adult-example.test", qtype=1, action="blocked",
                            category="adult", count=2)
    QueryLog.objects.create(ts=now, client="h:3", group_ref=other.pk, name="casino-example.test", qtype=1, action="blocked",
                            category="gambling", count=5)

    everything = services.stats(since=now - timedelta(hours=24))
    assert everything["total"] == 112 and everything["blocked"] == 15
    assert everything["by_action"]["cached"] == 7
    assert [c["category"] for c in everything["by_category"]] == ["adult", "gambling"]
    assert everything["top_blocked"][0] == {"name": "adult-example.test", "category": "adult", "count": 8}
    assert len(everything["per_hour"]) == 2

    mine = services.stats([g6], since=now - timedelta(hours=24), include_ungrouped=False)
    assert mine["total"] == 100 and mine["blocked_share"] == 0.1
    assert mine["by_group"] == [{"group_ref": g6.pk, "name": "Khối 6", "total": 100, "blocked": 10}]
    assert [t["name"] for t in mine["top_blocked"]] == ["adult-example.test", "b.adult-example.test"]
    assert mine["top_clients"][0] == {"client": "h:1", "group_ref": g6.pk, "count": 8}


def test_resolver_status(db):
    assert services.resolver_status() is None
    snapshot.write_json(services.state_dir() / "status.json", {"pid": 1, "policy_version": "x", "counters": {}})
    status = services.resolver_status()
    assert status["alive"] and status["pid"] == 1 and not status["policy_current"]
    assert not services.resolver_status(now=time_module.time() + 60)["alive"]


# --- schedule ---------------------------------------------------------------------------------------------


def test_schedule_only_enqueues_once_while_one_waits(school, settings):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
    (services.state_dir() / "log" / "q-1-1.tsv").write_text("")
    FilterList.objects.create(unit=school, name="Sub", category=Category.ADS, source=ListSource.SUBSCRIPTION,
                              url="https://lists.example/ads.txt")
    assert tasks.schedule() == {"ingest": True, "refresh": True}
    assert tasks.schedule() == {}
    assert DBTaskResult.objects.count() == 2
    assert set(DBTaskResult.objects.values_list("task_path", flat=True)) == {
        "cophub.netfilter.tasks.ingest_query_logs", "cophub.netfilter.tasks.refresh_lists"}


def test_catalogue_has_the_services_schools_ask_for():
    for key in ("zalo", "tiktok", "facebook", "instagram", "youtube", "roblox", "freefire", "garena", "lienquan", "pubg",
                "minecraft", "discord", "telegram", "snapchat", "twitter", "threads", "netflix", "twitch", "steam", "fortnite"):
        entry = catalog.SERVICES[key]
        assert entry["domains"] and all(rules.normalize_name(d) for d in entry["domains"])
    assert "zalo.me" in catalog.SERVICES["zalo"]["domains"] and "rbxcdn.com" in catalog.SERVICES["roblox"]["domains"]
    assert catalog.service_name("lienquan") == "Liên Quân Mobile" and catalog.service_name("unknown") == "unknown"
