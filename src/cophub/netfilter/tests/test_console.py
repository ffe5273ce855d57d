"""The network filter's console pages: who reaches them, what they save and publish, and what they refuse.

The state folder is a fresh temporary one per test; publishing happens when
the change commits, so tests that look at policy.json run the commit
callbacks (django_capture_on_commit_callbacks). Nothing reaches the network.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.cases.tests.helpers import flash, log_in
from cophub.conftest import make_user
from cophub.netfilter import services
from cophub.netfilter.models import (Action, ClientGroup, ClientRange, FilterList, ListSource, MistakeReport, QueryLog, QueryStat,
                                     ResolverSettings, ScheduleSlot, TemporaryUnblock)
from cophub.orgs.models import Role

pytestmark = pytest.mark.django_db

PAGES = ["netfilter:dashboard", "netfilter:lists", "netfilter:groups", "netfilter:group_new", "netfilter:unblocks",
         "netfilter:settings", "netfilter:log", "netfilter:mistakes"]


@pytest.fixture(autouse=True)
def _state(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.COPHUB_NETFILTER_DIR = tmp_path / "netfilter"


@pytest.fixture
def it_admin(units):
    return make_user("it-hung-vuong", Role.IT_ADMIN, units["school_a"])


@pytest.fixture
def other_it_admin(units):
    return make_user("it-le-chan", Role.IT_ADMIN, units["school_c"])


@pytest.fixture
def group(units):
    group = ClientGroup.objects.create(unit=units["school_a"], name="Khối 6", categories=["adult"])
    ClientRange.objects.create(group=group, cidr="10.1.6.0/24")
    return group


@pytest.fixture
def console(client, it_admin):
    log_in(client, it_admin)
    return client


def policy_path():
    return services.state_dir() / "policy.json"


def read_policy() -> dict:
    return json.loads(policy_path().read_text())


def management(prefix: str, total: int, initial: int = 0) -> dict:
    return {f"{prefix}-TOTAL_FORMS": str(total), f"{prefix}-INITIAL_FORMS": str(initial),
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}


def group_post(unit, **overrides) -> dict:
    data = {
        "unit": str(unit.pk), "name": "Khối 7", "kind": "pupils", "grade": "7", "class_name": "", "priority": "0",
        "categories": ["adult", "gambling"], "blocked_services": ["tiktok"],
        "safe_search_google": "on", "safe_search_youtube": "strict", "safe_search_bing": "on", "safe_search_duckduckgo": "on",
        "allow_rules": "thptabc.edu.vn", "deny_rules": "||example.com^\n*.quangcao.example",
        **management("ranges", 2), "ranges-0-cidr": "10.1.7.0/24", "ranges-0-devices": "1", "ranges-0-label": "Wi-Fi khối 7",
        "ranges-1-cidr": "203.0.113.7", "ranges-1-devices": "40", "ranges-1-label": "Phòng máy",
        **management("slots", 1), "slots-0-label": "Ban đêm", "slots-0-days": ["0", "1", "2", "3", "4"],
        "slots-0-start": "22:00", "slots-0-end": "06:00", "slots-0-block_all": "on",
    }
    data.update(overrides)
    return data


# --- Who reaches the pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_in_vietnamese_for_an_it_admin(console, group, name):
    response = console.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="vi">' in html
    assert "Bộ lọc mạng" in html  # the console's navigation link


def test_list_and_group_pages_render(console, group, units):
    filter_list = FilterList.objects.create(unit=units["school_a"], name="Quảng cáo", category="ads", source=ListSource.UPLOAD,
                                            report={"syntax": {"hosts": 3}, "total_lines": 4, "invalid": 1,
                                                    "invalid_examples": [{"line": 2, "text": "<b>", "reason": "not a rule"}],
                                                    "held_back": [{"rule": "||com.vn^", "reason": "public_suffix"}], "held_back_count": 1})
    response = console.get(reverse("netfilter:list", args=[filter_list.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Quy tắc bị giữ lại" in html and "||com.vn^" in html and "đuôi tên miền" in html
    assert "không phải quy tắc" in html
    assert console.get(reverse("netfilter:group_edit", args=[group.pk])).status_code == 200


@pytest.mark.parametrize("role", [Role.TEACHER, Role.COUNSELLOR])
def test_teachers_and_counsellors_are_refused(client, units, role):
    user = make_user(f"{role}-a", role, units["school_a"])
    log_in(client, user)
    for name in PAGES:
        assert client.get(reverse(name)).status_code == 403, name
    assert "Bộ lọc mạng" not in client.get(reverse("console:queue")).content.decode()


def test_an_it_admin_of_another_school_cannot_see_or_edit_the_group(client, other_it_admin, group, units):
    log_in(client, other_it_admin)
    assert "Khối 6" not in client.get(reverse("netfilter:groups")).content.decode()
    assert client.get(reverse("netfilter:group_edit", args=[group.pk])).status_code == 404
    response = client.post(reverse("netfilter:group_edit", args=[group.pk]), group_post(units["school_a"], name="Bị sửa"))
    assert response.status_code == 404
    assert client.post(reverse("netfilter:group_delete", args=[group.pk])).status_code == 404
    # Nor move a group of their own into that school.
    response = client.post(reverse("netfilter:group_new"), group_post(units["school_a"], name="Lén"))
    assert response.status_code == 200 and not ClientGroup.objects.filter(name="Lén").exists()
    # Nor unblock a site for it.
    client.post(reverse("netfilter:unblocks"), {"group": group.pk, "domain": "example.org", "duration": "1h"})
    assert not TemporaryUnblock.objects.exists()
    group.refresh_from_db()
    assert group.name == "Khối 6"


# --- Groups --------------------------------------------------------------------------------------------------


def test_a_group_with_ranges_and_a_slot_across_midnight_is_saved_and_published(console, units, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(reverse("netfilter:group_new"), group_post(units["school_a"]))
    assert response.status_code == 302, response.content.decode()[:3000]
    group = ClientGroup.objects.get(name="Khối 7")
    assert group.categories == ["adult", "gambling"] and group.blocked_services == ["tiktok"]
    assert sorted(group.ranges.values_list("cidr", "devices")) == [("10.1.7.0/24", 1), ("203.0.113.7", 40)]
    slot = group.slots.get()
    assert slot.days == [0, 1, 2, 3, 4] and slot.start.strftime("%H:%M") == "22:00" and slot.end.strftime("%H:%M") == "06:00"
    first = read_policy()
    entry = next(g for g in first["groups"] if g["id"] == group.pk)
    assert entry["slots"][0]["start"] == "22:00" and entry["slots"][0]["end"] == "06:00" and entry["slots"][0]["block_all"]
    assert {"cidr": "203.0.113.7", "devices": 40} in entry["ranges"]
    assert AuditEvent.objects.filter(action="netfilter.group_created", object_id=str(group.pk), actor="it-hung-vuong").exists()

    # Edit: drop the public address, the policy file is written again.
    data = group_post(units["school_a"], **management("ranges", 2, 2), **management("slots", 1, 1))
    ranges = list(group.ranges.order_by("cidr"))
    data.update({"ranges-0-id": str(ranges[0].pk), "ranges-0-cidr": ranges[0].cidr, "ranges-1-id": str(ranges[1].pk),
                 "ranges-1-cidr": ranges[1].cidr, "ranges-1-devices": "40", "ranges-1-DELETE": "on", "slots-0-id": str(slot.pk)})
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(reverse("netfilter:group_edit", args=[group.pk]), data)
    assert response.status_code == 302
    second = read_policy()
    assert second["version"] != first["version"]
    entry = next(g for g in second["groups"] if g["id"] == group.pk)
    assert entry["ranges"] == [{"cidr": "10.1.7.0/24", "devices": 1}]
    assert "Đã lưu" in " ".join(flash(response))


def test_invalid_custom_rules_are_refused_in_vietnamese_and_nothing_is_saved(console, units, group):
    data = group_post(units["school_a"], deny_rules="example.com\nđây không phải tên miền!\n||com.vn^", name="Đổi tên")
    response = console.post(reverse("netfilter:group_edit", args=[group.pk]), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Luôn chặn" in html and "2, 3" in html and "không dùng được" in html
    group.refresh_from_db()
    assert group.name == "Khối 6" and group.deny_rules == ""
    assert not ScheduleSlot.objects.exists() and group.ranges.count() == 1
    assert not policy_path().exists()


def test_a_subnet_with_host_bits_is_refused(console, units):
    response = console.post(reverse("netfilter:group_new"), group_post(units["school_a"], **{"ranges-0-cidr": "10.1.7.5/24"}))
    assert response.status_code == 200
    assert "10.1.7.0/24" in response.content.decode()
    assert not ClientGroup.objects.exists()


# --- Lists ---------------------------------------------------------------------------------------------------


def test_an_html_file_is_refused_with_a_vietnamese_message(console):
    page = b"<!DOCTYPE html><html><head><title>404</title></head><body><p>Not found</p></body></html>\n" * 20
    response = console.post(reverse("netfilter:list_upload"), {
        "file": SimpleUploadedFile("list.txt", page, content_type="text/plain"), "name": "Danh sách", "category": "ads",
        "match_subdomains": "on"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "trang web (HTML)" in html and "Chưa nhập được tệp" in html
    assert not FilterList.objects.exists()


def test_an_uploaded_list_is_kept_and_shown(console, django_capture_on_commit_callbacks):
    content = "# quảng cáo\n0.0.0.0 ads.example.com\n||tracker.example.net^\nexample.org\n".encode("utf-16")
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(reverse("netfilter:list_upload"), {
            "file": SimpleUploadedFile("ads.txt", content, content_type="text/plain"), "name": "", "category": "ads",
            "match_subdomains": "on"})
    assert response.status_code == 302
    filter_list = FilterList.objects.get()
    assert filter_list.name == "ads.txt" and filter_list.source == ListSource.UPLOAD
    assert console.get(reverse("netfilter:list", args=[filter_list.pk])).status_code == 200


def test_the_hub_list_is_read_only(console, units):
    hub = FilterList.objects.create(unit=units["school_a"], name="Hub", category="harmful", source=ListSource.HUB)
    assert console.post(reverse("netfilter:list_toggle", args=[hub.pk]), {"enabled": "0"}).status_code == 404
    assert console.post(reverse("netfilter:list_delete", args=[hub.pk])).status_code == 404
    hub.refresh_from_db()
    assert hub.enabled


def test_a_list_is_switched_off_and_deleted_with_audit(console, units, django_capture_on_commit_callbacks):
    filter_list = FilterList.objects.create(unit=units["school_a"], name="Cờ bạc", category="gambling", source=ListSource.UPLOAD)
    with django_capture_on_commit_callbacks(execute=True):
        console.post(reverse("netfilter:list_toggle", args=[filter_list.pk]), {"enabled": "0"})
    filter_list.refresh_from_db()
    assert not filter_list.enabled and policy_path().exists()
    with django_capture_on_commit_callbacks(execute=True):
        console.post(reverse("netfilter:list_delete", args=[filter_list.pk]))
    assert not FilterList.objects.exists()
    assert set(AuditEvent.objects.filter(action__startswith="netfilter.list_").values_list("action", flat=True)) == {
        "netfilter.list_disabled", "netfilter.list_deleted"}


# --- Unblocks ----------------------------------------------------------------------------------------------------


def test_an_unblock_is_created_published_and_revoked(console, group, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(reverse("netfilter:unblocks"), {"group": group.pk, "domain": "https://Video.Example.ORG/bai-hoc",
                                                                "duration": "1h", "reason": "Bài học"})
    assert response.status_code == 302
    unblock = TemporaryUnblock.objects.get()
    assert unblock.domain == "video.example.org"
    assert timedelta(minutes=59) < unblock.until - timezone.now() <= timedelta(hours=1)
    entry = next(g for g in read_policy()["groups"] if g["id"] == group.pk)
    assert entry["unblocks"][0]["domain"] == "video.example.org"
    assert "video.example.org" in console.get(reverse("netfilter:unblocks")).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        console.post(reverse("netfilter:unblock_revoke", args=[unblock.pk]))
    unblock.refresh_from_db()
    assert unblock.revoked_at is not None
    entry = next(g for g in read_policy()["groups"] if g["id"] == group.pk)
    assert entry["unblocks"] == []
    assert AuditEvent.objects.filter(action="netfilter.unblock_revoked").exists()


def test_an_unblock_needs_a_domain_and_a_future_end(console, group):
    response = console.post(reverse("netfilter:unblocks"), {"group": group.pk, "domain": "không hợp lệ", "duration": "until",
                                                            "until": "2001-01-01T08:00"})
    html = response.content.decode()
    assert response.status_code == 200 and "không phải là tên miền" in html and "trong tương lai" in html
    assert not TemporaryUnblock.objects.exists()


# --- Settings, log, mistakes ----------------------------------------------------------------------------------------


def test_settings_are_validated_and_published(console, group, django_capture_on_commit_callbacks):
    form = {"upstreams": "9.9.9.9:53\n[2620:fe::fe]:53", "upstream_timeout_ms": "1000", "block_mode": "nxdomain", "blocked_ttl": "10",
            "cache_size": "100000", "privacy": "hash", "log_queries": "on", "log_retention_days": "30", "rate_limit_qps": "50",
            "rate_limit_exempt": "127.0.0.1\n10.0.0.0/8", "default_group": str(group.pk), "alert_threshold": "20",
            "alert_window_minutes": "30"}
    response = console.post(reverse("netfilter:settings"), {**form, "upstreams": "9.9.9.9:99999"})
    assert response.status_code == 200 and "không phải địa chỉ máy chủ" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(reverse("netfilter:settings"), form)
    assert response.status_code == 302
    row = ResolverSettings.objects.get(pk=1)
    assert row.default_group == group and row.updated_by.username == "it-hung-vuong"
    assert read_policy()["settings"]["default_group"] == group.pk
    assert AuditEvent.objects.filter(action="netfilter.settings_changed").exists()


def test_viewing_the_query_log_is_audited_and_scoped(console, group, units):
    other = ClientGroup.objects.create(unit=units["school_c"], name="Lê Chân")
    now = timezone.now()
    QueryLog.objects.create(ts=now, client="h:0011223344556677", group_ref=group.pk, name="ads.example.com", qtype=1,
                            action=Action.BLOCKED, category="ads", rule="||ads.example.com^")
    QueryLog.objects.create(ts=now, client="h:8899aabbccddeeff", group_ref=other.pk, name="secret.example", qtype=1, action=Action.FORWARDED)
    QueryStat.objects.create(hour=now.replace(minute=0, second=0, microsecond=0), group_ref=group.pk, action=Action.BLOCKED, category="ads",
                             count=3)
    response = console.get(reverse("netfilter:log"), {"action": "blocked", "name": "ads"})
    html = response.content.decode()
    assert response.status_code == 200 and "ads.example.com" in html and "secret.example" not in html
    assert "secret.example" not in console.get(reverse("netfilter:log")).content.decode()
    event = AuditEvent.objects.filter(action="netfilter.query_log_viewed").latest("seq")
    assert event.actor == "it-hung-vuong"
    assert AuditEvent.objects.filter(action="netfilter.query_log_viewed").count() == 2
    dashboard = console.get(reverse("netfilter:dashboard")).content.decode()
    assert "ads.example.com" in dashboard and "<meter" in dashboard


def test_a_mistake_report_is_unblocked_or_kept(console, group, django_capture_on_commit_callbacks):
    first = MistakeReport.objects.create(name="hoc.example.vn", group=group, rule="||hoc.example.vn^", message="Trang bài tập")
    second = MistakeReport.objects.create(name="game.example", group=group)
    assert "hoc.example.vn" in console.get(reverse("netfilter:mistakes")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        console.post(reverse("netfilter:mistake_decide", args=[first.pk]), {"decision": "unblock", "duration": "day"})
    first.refresh_from_db()
    assert first.status == MistakeReport.Status.UNBLOCKED and first.handled_by is not None
    unblock = TemporaryUnblock.objects.get()
    assert unblock.domain == "hoc.example.vn" and unblock.group == group and unblock.until > timezone.now()
    assert timezone.localtime(unblock.until).strftime("%H:%M") == "17:30"
    console.post(reverse("netfilter:mistake_decide", args=[second.pk]), {"decision": "keep"})
    second.refresh_from_db()
    assert second.status == MistakeReport.Status.DECLINED
    assert TemporaryUnblock.objects.count() == 1


def test_school_day_end_skips_sunday():
    from cophub.netfilter.forms import end_of_school_day

    saturday_evening = timezone.make_aware(datetime(2026, 12, 5, 19, 0))
    end = end_of_school_day(saturday_evening)
    assert end.weekday() == 0 and end.strftime("%H:%M") == "17:30"


def test_the_dashboard_shows_the_running_resolver(console, group, django_capture_on_commit_callbacks):
    import time

    from cophub.netfilter import snapshot

    version = services.publish()
    published_at = datetime.strptime(version.split("-")[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    snapshot.write_json(services.state_dir() / snapshot.STATUS, {
        "pid": 4242, "started_at": time.time() - 60, "listen": ["0.0.0.0:53"], "policy_version": version, "rules_version": "",
        "applied_at": published_at.timestamp() + 0.4, "counters": {"blocked": 7, "forwarded": 100}, "cache_entries": 12,
        "upstreams": [{"address": "1.1.1.1:53", "up": True}, {"address": "8.8.8.8:53", "up": False}]})
    html = console.get(reverse("netfilter:dashboard")).content.decode()
    assert "Đang chạy" in html and "mới nhất" in html and "0.4 giây sau khi phát hành" in html.replace(",", ".")
    assert "8.8.8.8:53" in html and "không trả lời" in html


def test_the_group_form_shows_the_harmful_list_always_on(console):
    html = console.get(reverse("netfilter:group_new")).content.decode()
    harmful = next(line for line in html.splitlines() if 'value="harmful"' in line)
    assert "checked" in harmful and "disabled" in harmful
    assert "qua nửa đêm" in html
