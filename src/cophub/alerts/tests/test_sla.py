"""SLA clocks: nothing before the warning window, a warning in it, an overdue alert after, once each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cophub.alerts import services, sla
from cophub.alerts.models import Alert
from cophub.cases import services as cases
from cophub.cases.models import Case, State

from .helpers import make_case

pytestmark = pytest.mark.django_db


def kinds_for(user):
    return sorted(Alert.objects.filter(recipient=user).values_list("kind", flat=True))


def test_before_in_and_after_the_warning_window(units, staff):
    handler, admin = staff["handler"], staff["admin"]
    case = make_case(units["district"], priority="P2", due_in=timedelta(hours=24), assignee=handler)
    due = case.sla_due_at
    # P2: 24 hours, warned in the last quarter (6 hours).
    assert sla.sweep(now=due - timedelta(hours=6, minutes=1)) == {"cases": 0, "warnings": 0, "overdue": 0}
    assert Alert.objects.count() == 0

    result = sla.sweep(now=due - timedelta(hours=5))
    assert result == {"cases": 1, "warnings": 1, "overdue": 0}
    warning = Alert.objects.get()
    assert (warning.recipient, warning.kind, warning.case) == (handler, "sla.warning", case)  # the assignee only
    assert warning.params["minutes"] == 300 and warning.link == f"/console/cases/{case.pk}/"
    assert services.render(warning, "en")[0] == f"Case {case.reference} is due in 300 minutes"
    assert sla.sweep(now=due - timedelta(hours=1))["warnings"] == 0  # warned once per due time

    result = sla.sweep(now=due + timedelta(minutes=1))
    assert result["overdue"] == 2
    assert kinds_for(handler) == ["sla.overdue", "sla.warning"]
    assert kinds_for(admin) == ["sla.overdue"]  # leadership too, once late
    assert sla.sweep(now=due + timedelta(hours=3)) == {"cases": 1, "warnings": 0, "overdue": 0}
    assert Alert.objects.count() == 3


def test_unassigned_warning_goes_to_leadership(units, staff):
    case = make_case(units["school_a"], priority="P1", due_in=timedelta(minutes=10))
    assert sla.sweep()["warnings"] == 1
    assert Alert.objects.get().recipient == staff["admin"]  # the school has no admin: the district's
    assert case.pk == Alert.objects.get().case_id


def test_closed_merged_and_clockless_cases_are_left_alone(units, staff):
    make_case(units["district"], due_in=-timedelta(hours=1), state=State.CLOSED)
    survivor = make_case(units["district"], due_in=timedelta(days=5), priority="P4")
    make_case(units["district"], due_in=-timedelta(hours=1), merged_into=survivor)
    clockless = make_case(units["district"], due_in=-timedelta(hours=1))
    Case.objects.filter(pk=clockless.pk).update(sla_due_at=None)
    assert sla.sweep() == {"cases": 0, "warnings": 0, "overdue": 0}


def test_priority_change_gives_a_new_due_time_and_a_new_warning(units, staff):
    handler = staff["handler"]
    case = make_case(units["district"], priority="P3", assignee=handler)
    opened = case.created_at
    Case.objects.filter(pk=case.pk).update(sla_due_at=cases.sla_due("P3", opened))  # as the case was opened
    case.refresh_from_db()
    assert sla.sweep(now=opened + timedelta(hours=60))["warnings"] == 1  # 12 h left of 72 (window 18 h)
    cases.set_priority(case, "P4", handler)
    case.refresh_from_db()
    assert case.sla_due_at == opened + timedelta(hours=168)
    assert sla.sweep(now=opened + timedelta(hours=61))["warnings"] == 0  # 107 h left of 168: not yet
    assert sla.sweep(now=opened + timedelta(hours=130))["warnings"] == 1  # 38 h left (window 42 h)
    keys = sorted(Alert.objects.values_list("dedupe_key", flat=True))
    assert len(set(keys)) == 2 and all(k.startswith(f"sla.warning:{case.pk}:") for k in keys)


def test_warn_fraction_setting(units, staff, settings):
    settings.COPHUB_SLA_WARN_FRACTION = 0.5
    case = make_case(units["district"], priority="P2", due_in=timedelta(hours=11), assignee=staff["handler"])
    assert sla.sweep(now=timezone.now())["warnings"] == 1
    settings.COPHUB_SLA_WARN_FRACTION = 0.25
    other = make_case(units["district"], priority="P2", due_in=timedelta(hours=11), assignee=staff["handler"])
    assert sla.sweep(now=timezone.now())["warnings"] == 0
    assert {a.case_id for a in Alert.objects.all()} == {case.pk}
    assert other.pk != case.pk


def test_sweep_query_count_does_not_grow_with_alerted_cases(units, staff, django_assert_max_num_queries):
    for _ in range(5):
        make_case(units["district"], due_in=-timedelta(hours=2), assignee=staff["handler"])
    sla.sweep()
    assert Alert.objects.filter(kind="sla.overdue").count() == 10
    with django_assert_max_num_queries(2):
        assert sla.sweep()["cases"] == 0  # late cases already alerted since their due time are not even read


def test_email_in_vietnamese(units, staff, settings, mailoutbox, django_capture_on_commit_callbacks):
    settings.COPHUB_PUBLIC_URL = "https://hub.example/"
    staff["handler"].email = "handler@example.org"
    staff["handler"].save()
    case = make_case(units["district"], priority="P1", due_in=timedelta(minutes=5), assignee=staff["handler"])
    with django_capture_on_commit_callbacks(execute=True):
        assert sla.sweep()["warnings"] == 1
    message, = mailoutbox
    assert message.to == ["handler@example.org"]
    assert message.subject == f"Vụ việc {case.reference} sẽ đến hạn sau 5 phút"
    assert "Hạn phản hồi đầu tiên" in message.body
    assert f"https://hub.example/console/cases/{case.pk}/" in message.body
    assert Alert.objects.get().emailed_at is not None
