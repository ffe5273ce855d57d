"""Who is alerted, and that an alert reaches each recipient once."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from cophub.alerts import services
from cophub.alerts.models import Alert
from cophub.audit.models import AuditEvent
from cophub.conftest import make_user
from cophub.orgs.models import Role

from .helpers import make_case

pytestmark = pytest.mark.django_db


def names(users):
    return sorted(u.username for u in users)


def test_assignee_and_admins_of_the_case_unit(units, staff):
    school_admin = make_user("admin-school", Role.ADMIN, units["school_a"])
    make_user("handler-school", Role.HANDLER, units["school_a"])  # not leadership
    case = make_case(units["school_a"], assignee=staff["handler"])
    # The district's admin is not alerted: the school has leadership of its own.
    assert names(services.case_recipients(case)) == ["admin-school", "handler-district"]
    assert school_admin in services.case_recipients(case)


def test_nearest_ancestor_with_an_admin(units, staff):
    make_user("admin-province", Role.ADMIN, units["province"])
    case = make_case(units["school_a"])
    assert names(services.case_recipients(case)) == ["admin-district"]
    # A unit whose only admin is inactive counts as having none.
    staff["admin"].is_active = False
    staff["admin"].save()
    assert names(services.case_recipients(case)) == ["admin-province"]


def test_no_leadership_anywhere(units):
    case = make_case(units["school_c"])
    assert services.case_recipients(case) == []


def test_inactive_assignee_excluded_and_no_duplicates(units, staff):
    handler = staff["handler"]
    handler.is_active = False
    handler.save()
    case = make_case(units["district"], assignee=handler)
    assert names(services.case_recipients(case)) == ["admin-district"]
    # An admin who is also the assignee is named once.
    case = make_case(units["district"], assignee=staff["admin"])
    assert names(services.case_recipients(case)) == ["admin-district"]


def test_raise_alert_one_row_per_distinct_active_recipient(units, staff):
    inactive = make_user("gone", Role.ADMIN, units["district"])
    inactive.is_active = False
    inactive.save()
    case = make_case(units["district"])
    alerts = services.raise_alert("sla.overdue", [staff["admin"], staff["handler"], staff["admin"], inactive],
                                  params={"reference": case.reference}, case=case, link="/console/cases/1/")
    assert sorted(a.recipient.username for a in alerts) == ["admin-district", "handler-district"]
    assert Alert.objects.count() == 2
    event = AuditEvent.objects.get(action="alert.raised")
    assert event.object_id == str(case.pk) and sorted(event.data["recipients"]) == sorted([staff["admin"].pk, staff["handler"].pk])


def test_dedupe_key_gives_each_recipient_one_alert(units, staff):
    case = make_case(units["district"])
    first = services.raise_alert("sla.warning", [staff["admin"]], params={}, case=case, dedupe_key="k1")
    again = services.raise_alert("sla.warning", [staff["admin"], staff["handler"]], params={}, case=case, dedupe_key="k1")
    assert len(first) == 1
    assert [a.recipient for a in again] == [staff["handler"]]  # only the one who had not got it
    assert Alert.objects.filter(dedupe_key="k1").count() == 2
    # Without a key, nothing is deduplicated.
    services.raise_alert("sla.warning", [staff["admin"]], params={}, case=case)
    services.raise_alert("sla.warning", [staff["admin"]], params={}, case=case)
    assert Alert.objects.filter(dedupe_key="").count() == 2


def test_two_workers_raising_at_once(units, staff, monkeypatch):
    """The other worker's row lands between our check and our insert: the unique index wins, quietly."""
    case = make_case(units["district"])
    services.raise_alert("sla.overdue", [staff["admin"]], params={}, case=case, dedupe_key="race")
    monkeypatch.setattr(services, "_already_alerted", lambda key, users: set())
    again = services.raise_alert("sla.overdue", [staff["admin"], staff["handler"]], params={}, case=case, dedupe_key="race")
    assert [a.recipient for a in again] == [staff["handler"]]
    assert Alert.objects.filter(dedupe_key="race").count() == 2
    # The database itself refuses a second row with the key.
    with pytest.raises(IntegrityError):
        Alert.objects.create(recipient=staff["admin"], kind="sla.overdue", dedupe_key="race")


def test_unknown_kind_refused(staff):
    with pytest.raises(ValueError):
        services.raise_alert("no.such.kind", [staff["admin"]], params={})


def test_rendered_in_the_readers_language(units, staff):
    case = make_case(units["district"])
    alert, = services.raise_alert("referral.dead", [staff["admin"]], case=case,
                                  params={"target": "Cục An toàn thông tin", "reference": case.reference, "attempts": 10, "error": "HTTP 503"})
    title_en, body_en = services.render(alert, "en")
    title_vi, body_vi = services.render(alert, "vi")
    assert title_en == f"A referral for case {case.reference} could not be delivered"
    assert "after 10 attempts: HTTP 503" in body_en and "Cục An toàn thông tin" in body_en
    assert title_vi != title_en and case.reference in title_vi and title_vi.startswith("Không gửi được")
    assert "10" in body_vi and "HTTP 503" in body_vi
    # A parameter the caller left out does not break the page.
    alert.params = {}
    assert "?" in services.render(alert, "en")[0]
