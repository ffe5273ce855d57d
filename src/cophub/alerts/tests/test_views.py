"""The console's alerts page: own alerts only, marking read, the nav badge."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cophub.alerts import services
from cophub.alerts.models import Alert
from cophub.cases.tests.helpers import log_in

from .helpers import make_case

pytestmark = pytest.mark.django_db

URL = "/console/alerts/"


def alert_for(user, case, hours=30):
    return services.raise_alert("takedown.overdue", [user], case=case, params={"target": "Nền tảng Y", "hours": hours})[0]


def test_anonymous_is_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("console:login"))
    response = client.post(URL + "read/", {"all": "1"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("console:login"))


def test_page_shows_own_alerts_only(client, units, staff):
    case = make_case(units["district"])
    mine = alert_for(staff["handler"], case, hours=31)
    theirs = alert_for(staff["admin"], case, hours=47)
    log_in(client, staff["handler"])
    response = client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert URL == reverse("console:alerts")
    assert services.render(mine, "vi")[1] in page
    assert services.render(theirs, "vi")[1] not in page and "47 giờ" not in page and "31 giờ" in page
    assert f'href="/console/cases/{case.pk}/"' in page and case.reference in page


def test_unread_first_then_newest(client, units, staff):
    case = make_case(units["district"])
    old_unread = alert_for(staff["handler"], case, hours=11)
    read = alert_for(staff["handler"], case, hours=22)
    services.mark_read(staff["handler"], read.pk)
    new_unread = alert_for(staff["handler"], case, hours=33)
    assert [a.pk for a in services.alerts_for(staff["handler"])] == [new_unread.pk, old_unread.pk, read.pk]


def test_mark_one_and_all_read(client, units, staff):
    case = make_case(units["district"])
    first, second, third = (alert_for(staff["handler"], case) for _ in range(3))
    log_in(client, staff["handler"])
    response = client.post(URL + "read/", {"alert": first.pk})
    assert response.status_code == 302 and response["Location"] == URL
    first.refresh_from_db()
    assert first.read_at is not None and services.unread_count(staff["handler"]) == 2
    client.post(URL + "read/", {"all": "1"})
    assert services.unread_count(staff["handler"]) == 0


def test_another_users_alert_is_404(client, units, staff):
    case = make_case(units["district"])
    theirs = alert_for(staff["admin"], case)
    log_in(client, staff["handler"])
    assert client.post(URL + "read/", {"alert": theirs.pk}).status_code == 404
    assert client.post(URL + "read/", {"alert": "nonsense"}).status_code == 404
    client.post(URL + "read/", {"all": "1"})
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert client.get(URL + "read/").status_code == 405


def test_mark_read_needs_csrf(units, staff):
    from django.test import Client

    case = make_case(units["district"])
    mine = alert_for(staff["handler"], case)
    client = Client(enforce_csrf_checks=True)
    log_in(client, staff["handler"])
    assert client.post(URL + "read/", {"alert": mine.pk}).status_code == 403
    mine.refresh_from_db()
    assert mine.read_at is None


def test_nav_badge_counts_unread(client, units, staff):
    case = make_case(units["district"])
    alert_for(staff["handler"], case)
    alert_for(staff["handler"], case)
    alert_for(staff["admin"], case)
    log_in(client, staff["handler"])
    page = client.get(reverse("console:queue")).content.decode()
    assert f'href="{URL}"' in page
    assert '<span class="state-pill state-new" aria-label="2 ' in page
    Alert.objects.filter(recipient=staff["handler"]).update(read_at="2026-01-01T00:00:00Z")
    page = client.get(reverse("console:queue")).content.decode()
    assert f'href="{URL}"' in page and 'aria-label="2 ' not in page and "state-pill state-new\" aria-label" not in page
