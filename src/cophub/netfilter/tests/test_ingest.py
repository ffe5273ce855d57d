"""Query-log ingestion: each resolver file once, hourly statistics, the counsellor alert, retention."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone, translation

from cophub.alerts.models import Alert
from cophub.alerts.services import render
from cophub.conftest import make_user
from cophub.netfilter import services, snapshot
from cophub.netfilter.models import ClientGroup, IngestedLog, Privacy, QueryLog, QueryStat
from cophub.orgs.models import Role


@pytest.fixture(autouse=True)
def _state(settings, tmp_path):
    settings.COPHUB_NETFILTER_DIR = tmp_path / "netfilter"
    return services.state_dir()


def _write_log(lines: list[str], name: str | None = None) -> str:
    name = name or f"q-{int(datetime.now(UTC).timestamp() * 1000)}-{os.getpid()}-{len(os.listdir(services.state_dir() / 'log'))}.tsv"
    path = services.state_dir() / snapshot.LOG / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return name


def _line(ts: datetime, client: str, group: int, name: str, action: str, category: str = "", rule: str = "", count: int = 1,
          qtype: int = 1) -> str:
    return "\t".join([str(int(ts.timestamp())), client, str(group), name, str(qtype), action, category, rule, str(count)])


@pytest.fixture
def group(units):
    return ClientGroup.objects.create(unit=units["school_a"], name="Khối 6")


def test_ingest_rows_stats_and_malformed_lines(db, group):
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    name = _write_log([
        _line(now, "h:0123456789abcdef", group.pk, "Example.COM", "forwarded", count=3),
        _line(now, "h:0123456789abcdef", group.pk, "adult-example.test", "blocked", "adult", "||adult-example.test^", 2),
        _line(now + timedelta(seconds=1), "", 0, "cached.example", "cached"),
        "not a log line",
        _line(now, "h:1", group.pk, "x.example", "exploded"),          # unknown action
        "\t".join(["12x", "", "0", "a.example", "1", "forwarded", "", "", "1"]),  # bad second
        _line(now, "h:1", group.pk, "y.example", "blocked", count=0),   # count under 1
        "",
    ])
    result = services.ingest_query_logs()
    assert result.files == 1 and result.rows == 3 and result.skipped == 4
    assert not (services.state_dir() / "log" / name).exists()
    assert not list((services.state_dir() / "log").iterdir())
    rows = {(r.name, r.action): r for r in QueryLog.objects.all()}
    assert set(rows) == {("example.com", "forwarded"), ("adult-example.test", "blocked"), ("cached.example", "cached")}
    blocked = rows[("adult-example.test", "blocked")]
    assert blocked.count == 2 and blocked.category == "adult" and blocked.group_ref == group.pk and blocked.ts == now
    stats = {(s.group_ref, s.action, s.category): s.count for s in QueryStat.objects.all()}
    assert stats == {(group.pk, "forwarded", ""): 3, (group.pk, "blocked", "adult"): 2, (0, "cached", ""): 1}
    assert all(s.hour == now.replace(minute=0) for s in QueryStat.objects.all())
    assert IngestedLog.objects.get(name=name).skipped == 4

    # A second file adds to the same hour's counts.
    _write_log([_line(now, "h:2", group.pk, "example.com", "forwarded", count=5)])
    services.ingest_query_logs()
    assert QueryStat.objects.get(group_ref=group.pk, action="forwarded").count == 8


def test_part_files_are_left_alone(db):
    part = services.state_dir() / "log" / "q-1-1.tsv.part"
    part.write_text(_line(timezone.now(), "", 0, "a.example", "forwarded") + "\n")
    assert services.ingest_query_logs().files == 0
    assert part.exists() and not QueryLog.objects.exists()


def test_without_query_log_only_statistics_are_kept(db, group):
    row = services.settings_row()
    row.log_queries = False
    row.save()
    _write_log([_line(timezone.now(), "h:1", group.pk, "a.example", "forwarded", count=4)])
    result = services.ingest_query_logs()
    assert result.files == 1
    assert not QueryLog.objects.exists()
    assert QueryStat.objects.get().count == 4


def test_a_file_already_ingested_is_only_deleted(db, group):
    """A worker that died between the commit and the delete leaves the file: it is not added twice."""
    lines = [_line(timezone.now(), "h:1", group.pk, "a.example", "forwarded", count=2)]
    name = _write_log(lines)
    services.ingest_query_logs()
    _write_log(lines, name=name)
    assert services.ingest_query_logs().files == 0
    assert QueryLog.objects.count() == 1 and QueryStat.objects.get().count == 2
    assert not list((services.state_dir() / "log").iterdir())


def test_a_file_claimed_by_a_dead_process_is_taken_over(db, group):
    name = _write_log([_line(timezone.now(), "h:1", group.pk, "a.example", "forwarded")])
    log_dir = services.state_dir() / "log"
    dead_pid = 2 ** 22 + 12345  # above pid_max on Linux by default: never a live process
    os.rename(log_dir / name, log_dir / f"{name}.ingesting-{dead_pid}-1")
    result = services.ingest_query_logs()
    assert result.files == 1 and QueryLog.objects.count() == 1
    assert IngestedLog.objects.filter(name=name).exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_ingesters_take_each_file_once(units):
    group = ClientGroup.objects.create(unit=units["school_a"], name="Khối 9")
    now = timezone.now()
    expected = 0
    for n in range(12):
        lines = [_line(now, f"h:{n:016x}", group.pk, f"n{n}-{i}.example", "forwarded", count=i + 1) for i in range(50)]
        expected += sum(range(1, 51))
        _write_log(lines, name=f"q-{1000 + n}-77.tsv")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def ingest():
        try:
            barrier.wait()
            results.append(services.ingest_query_logs())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r.files for r in results) == 12
    assert QueryLog.objects.count() == 12 * 50
    assert sum(QueryStat.objects.values_list("count", flat=True)) == expected
    assert IngestedLog.objects.count() == 12
    assert not list((services.state_dir() / "log").iterdir())


# --- The counsellor alert ------------------------------------------------------------------------


@pytest.fixture
def alerting(db, units, group):
    row = services.settings_row()
    row.alert_enabled = True
    row.alert_categories = ["adult", "self_harm"]
    row.alert_threshold = 5
    row.alert_window_minutes = 30
    row.save()
    counsellor = make_user("co-lan", Role.COUNSELLOR, units["school_a"])
    make_user("it-a", Role.IT_ADMIN, units["school_a"])
    return counsellor


def _hits(client: str, n: int, group: ClientGroup, category: str = "adult", ts=None) -> None:
    ts = ts or timezone.now() - timedelta(seconds=30)
    _write_log([_line(ts, client, group.pk, f"site{i}.adult-example.test", "blocked", category, "||adult-example.test^")
                for i in range(n)])


def test_alert_raised_once_per_window_to_the_schools_counsellor(alerting, group):
    # The middle of a 30-minute window, so the test never straddles two.
    window = 30 * 60
    mid = datetime.fromtimestamp((int(timezone.now().timestamp()) // window) * window + window // 2, UTC)
    at = mid - timedelta(seconds=30)
    _hits("h:00000000000000aa", 3, group, ts=at)
    assert services.ingest_query_logs(now=mid).alerts == 0
    _hits("h:00000000000000aa", 2, group, ts=at)
    assert services.ingest_query_logs(now=mid).alerts == 1
    alert = Alert.objects.get()
    assert alert.recipient == alerting and alert.kind == "netfilter.repeated_hits"
    assert alert.params["count"] == 5 and alert.params["group"] == "Khối 6" and alert.params["device"] == "h:00000000000000aa"
    # More hits in the same window: no second alert.
    _hits("h:00000000000000aa", 4, group, ts=at)
    assert services.ingest_query_logs(now=mid).alerts == 0
    assert Alert.objects.count() == 1
    # Another category is another alert; a category not watched is none.
    _hits("h:00000000000000aa", 5, group, category="self_harm", ts=at)
    _hits("h:00000000000000bb", 9, group, category="gambling", ts=at)
    assert services.ingest_query_logs(now=mid).alerts == 1
    # The next window alerts again (the hits before it no longer count).
    later = mid + timedelta(minutes=30)
    _hits("h:00000000000000aa", 4, group, ts=later - timedelta(seconds=5))
    assert services.ingest_query_logs(now=later).alerts == 0
    _hits("h:00000000000000aa", 1, group, ts=later - timedelta(seconds=5))
    assert services.ingest_query_logs(now=later).alerts == 1
    assert Alert.objects.count() == 3
    with translation.override("vi"):
        title, body = render(alert)
    assert "Khối 6" in title and "30 phút" in body and "5 lần" in body


def test_no_alert_when_disabled(alerting, group):
    row = services.settings_row()
    row.alert_enabled = False
    row.save()
    _hits("h:00000000000000aa", 20, group)
    assert services.ingest_query_logs().alerts == 0
    assert not Alert.objects.exists()


def test_alert_never_carries_a_plain_address_when_addresses_are_hashed(alerting, group):
    row = services.settings_row()
    assert row.privacy == Privacy.HASH
    _hits("10.6.1.23", 10, group)  # logged before the setting changed, say
    _hits("h:00000000000000cc", 10, group)
    services.ingest_query_logs()
    assert [a.params["device"] for a in Alert.objects.all()] == ["h:00000000000000cc"]


def test_alert_falls_back_to_the_leadership_without_a_counsellor(db, units, group):
    row = services.settings_row()
    row.alert_enabled, row.alert_categories, row.alert_threshold = True, ["adult"], 2
    row.save()
    head = make_user("hieu-truong", Role.ADMIN, units["school_a"])
    _hits("h:00000000000000dd", 2, group)
    services.ingest_query_logs()
    assert Alert.objects.get().recipient == head


# --- Retention ----------------------------------------------------------------------------------


def test_retention_deletes_old_log_rows_and_keeps_statistics(db, group):
    row = services.settings_row()
    row.log_retention_days = 7
    row.save()
    now = timezone.now()
    _write_log([_line(now - timedelta(days=8), "h:1", group.pk, "old.example", "forwarded"),
                _line(now - timedelta(days=6), "h:1", group.pk, "recent.example", "forwarded")])
    services.ingest_query_logs()
    result = services.expire()
    assert result["log_rows"] == 1
    assert list(QueryLog.objects.values_list("name", flat=True)) == ["recent.example"]
    assert QueryStat.objects.count() == 2
