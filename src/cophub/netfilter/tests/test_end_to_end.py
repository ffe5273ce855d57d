"""The whole loop: the IT admin's console, the published policy, the running resolver
answering real queries, its query log ingested, statistics in the console, and the
counsellor's alert."""

from __future__ import annotations

import time

import dns.message
import dns.query
import dns.rcode
import pytest
from django.urls import reverse

from cophub.alerts.models import Alert
from cophub.cases.tests.helpers import log_in
from cophub.conftest import make_user
from cophub.netfilter import services
from cophub.netfilter.models import ClientGroup, ClientRange, FilterList, ListSource, QueryLog
from cophub.netfilter.tests.dnspeers import Authority, RunningResolver
from cophub.orgs.models import Role

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def authority():
    server = Authority().start()
    server.add("www.example.test", "A", "192.0.2.10")
    server.add("video.example.test", "A", "192.0.2.11")
    yield server
    server.stop()


def ask(port: int, name: str, source: str = "127.0.0.2"):
    return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, source=source, timeout=2)


def eventually(check, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_console_to_resolver_and_back(settings, tmp_path, client, units, authority):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.COPHUB_NETFILTER_DIR = tmp_path / "netfilter"
    school = units["school_a"]
    it_admin = make_user("it-e2e", Role.IT_ADMIN, school)
    counsellor = make_user("tv-e2e", Role.COUNSELLOR, school)
    row = services.settings_row()
    row.upstreams = f"127.0.0.1:{authority.port}"
    row.privacy = "hash"
    row.alert_enabled = True
    row.alert_categories = ["self_harm"]
    row.alert_threshold = 3
    row.save()
    self_harm = FilterList.objects.create(unit=school, name="Tự hại (mẫu)", category="self_harm", source=ListSource.UPLOAD)
    services.import_upload(self_harm, b"||selfharm-example.test^\n", it_admin)
    group = ClientGroup.objects.create(unit=school, name="Khối 8", categories=["self_harm"])
    ClientRange.objects.create(group=group, cidr="127.0.0.2/32")
    services.compile_now()

    resolver = RunningResolver(services.state_dir()).start()
    try:
        port = resolver.port
        assert ask(port, "video.example.test").rcode() == dns.rcode.NOERROR
        for _ in range(4):
            assert ask(port, "www.selfharm-example.test").rcode() == dns.rcode.NXDOMAIN

        # The IT admin blocks a name for the group from the console: the resolver has it within seconds.
        log_in(client, it_admin)
        assert client.get(reverse("netfilter:group_edit", args=[group.pk])).status_code == 200
        existing = group.ranges.get()
        data = {
            "unit": school.pk, "name": group.name, "kind": "pupils", "grade": "8", "class_name": "", "priority": "0",
            "categories": ["self_harm"], "safe_search_youtube": "strict", "allow_rules": "", "deny_rules": "video.example.test",
            "ranges-TOTAL_FORMS": "1", "ranges-INITIAL_FORMS": "1", "ranges-MIN_NUM_FORMS": "0", "ranges-MAX_NUM_FORMS": "1000",
            "ranges-0-id": existing.pk, "ranges-0-cidr": existing.cidr, "ranges-0-devices": "1", "ranges-0-label": "",
            "slots-TOTAL_FORMS": "0", "slots-INITIAL_FORMS": "0", "slots-MIN_NUM_FORMS": "0", "slots-MAX_NUM_FORMS": "1000",
        }
        changed_at = time.monotonic()
        response = client.post(reverse("netfilter:group_edit", args=[group.pk]), data)
        assert response.status_code == 302, response.content.decode()[:2000]
        assert eventually(lambda: ask(port, "video.example.test").rcode() == dns.rcode.NXDOMAIN, 5)
        assert time.monotonic() - changed_at < 5

        # What the resolver logged reaches the console: statistics, top blocked, and the counsellor.
        assert eventually(lambda: list((services.state_dir() / "log").glob("q-*.tsv")), 6)
        time.sleep(2.5)  # the resolver closes a log file two seconds after opening it
        services.ingest_query_logs()
        blocked = QueryLog.objects.filter(name="www.selfharm-example.test", action="blocked")
        assert sum(blocked.values_list("count", flat=True)) == 4
        assert all(entry.client.startswith("h:") for entry in QueryLog.objects.all())
        dashboard = client.get(reverse("netfilter:dashboard")).content.decode()
        assert "www.selfharm-example.test" in dashboard
        alerts = Alert.objects.filter(recipient=counsellor, kind="netfilter.repeated_hits")
        assert alerts.count() == 1
        assert "127.0.0.2" not in str(alerts.first().params)
    finally:
        resolver.stop()
