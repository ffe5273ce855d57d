"""The case queue: what each filter keeps, what a row shows, paging."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cophub.cases import services, views
from cophub.cases.models import Case

from .helpers import case_of, log_in, report, report_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def cases(units, staff):
    handler = staff["handler"]
    a1 = report_case(units["school_a"], category="cyberbullying")                      # P3, new
    a2 = report_case(units["school_a"], category="grooming")                           # P2
    services.assign(a2, handler, handler)
    b1_receipt = report(units["school_b"], category="other", danger=True)              # P1, made overdue below
    b1 = case_of(b1_receipt)
    Case.objects.filter(pk=b1.pk).update(sla_due_at=timezone.now() - timedelta(hours=2))
    c1 = report_case(units["school_c"], category="grooming")                           # another district
    d1 = report_case(units["district"], category="scam")
    for step in ["assessing", "resolved", "closed"]:
        services.transition(d1, step, handler, "xong")
    return {"a1": a1, "a2": a2, "b1": b1, "c1": c1, "d1": d1, "b1_code": b1_receipt.code}


def shown(client, **params) -> list[str]:
    response = client.get(reverse("console:queue"), params)
    assert response.status_code == 200
    return [row.case.reference for row in response.context["rows"]]


def refs(cases, *names) -> list[str]:
    return [cases[name].reference for name in names]


@pytest.fixture
def as_handler(client, staff):
    log_in(client, staff["handler"])
    return client


def test_default_is_every_open_case_the_user_may_see_most_urgent_first(as_handler, cases):
    assert shown(as_handler) == refs(cases, "b1", "a2", "a1")


@pytest.mark.parametrize("params,expected", [
    ({"state": "all"}, ["b1", "a2", "a1", "d1"]),
    ({"state": "closed"}, ["d1"]),
    ({"state": "new"}, ["b1", "a2", "a1"]),
    ({"priority": "P1"}, ["b1"]),
    ({"priority": "P2"}, ["a2"]),
    ({"category": "grooming"}, ["a2"]),
    ({"due": "overdue"}, ["b1"]),
    ({"due": "today"}, ["b1", "a2"]),
    ({"assignee": "me"}, ["a2"]),
    ({"assignee": "none"}, ["b1", "a1"]),
    ({"priority": "P3", "assignee": "none", "category": "cyberbullying"}, ["a1"]),
])
def test_filters(as_handler, cases, params, expected):
    assert shown(as_handler, **params) == refs(cases, *expected)


def test_unit_filter_takes_the_unit_and_everything_below_it(as_handler, cases, units):
    assert shown(as_handler, unit=units["school_a"].pk) == refs(cases, "a2", "a1")
    assert shown(as_handler, unit=units["district"].pk, state="all") == refs(cases, "b1", "a2", "a1", "d1")


def test_the_unit_filter_offers_only_units_the_user_can_see(as_handler, cases, units):
    form = as_handler.get(reverse("console:queue")).context["form"]
    offered = {value for value, _ in form.fields["unit"].choices if value}
    assert offered == {str(units[k].pk) for k in ("district", "school_a", "school_b")}
    # A unit outside the user's reach is not a way in: the filter is ignored, nothing leaks.
    assert cases["c1"].reference not in shown(as_handler, unit=units["school_c"].pk)


def test_search_by_reference_or_tracking_code(as_handler, cases):
    assert shown(as_handler, q=cases["a1"].reference) == refs(cases, "a1")
    assert shown(as_handler, q=cases["b1_code"].lower()) == refs(cases, "b1")
    assert shown(as_handler, q=cases["c1"].reference) == []


def test_cases_of_other_districts_never_show(as_handler, cases):
    assert cases["c1"].reference not in shown(as_handler, state="all")


def test_rows_show_what_a_handler_needs(as_handler, cases):
    html = as_handler.get(reverse("console:queue")).content.decode()
    assert html.count('<tr class="overdue">') == 1
    assert 'class="pill P1"' in html and 'class="pill P2"' in html and 'class="pill P3"' in html
    assert "Trường TH Quang Trung" in html and "handler-district" in html
    assert reverse("console:case", args=[cases["a1"].pk]) in html


def test_an_invalid_filter_value_is_ignored_not_an_error(as_handler, cases):
    assert shown(as_handler, priority="P9", state="nonsense", due="yesterday") == refs(cases, "b1", "a2", "a1")


def test_paging_keeps_the_filters(as_handler, cases, monkeypatch):
    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 2)
    response = as_handler.get(reverse("console:queue"), {"state": "all"})
    assert len(response.context["rows"]) == 2
    html = response.content.decode()
    assert "?state=all&amp;page=2" in html
    second = as_handler.get(reverse("console:queue"), {"state": "all", "page": 2})
    assert [r.case.reference for r in second.context["rows"]] == refs(cases, "a1", "d1")


def test_the_queue_is_empty_for_roles_that_cannot_view_cases(client, cases, staff):
    log_in(client, staff["teacher"])
    assert shown(client, state="all") == []


@pytest.mark.parametrize("minutes,vi,en", [
    (4, "4 phút", "4 minutes"),
    (121, "2 giờ 1 phút", "2 hours 1 minute"),
    (3 * 24 * 60 + 5 * 60 + 7, "3 ngày 5 giờ", "3 days 5 hours"),
    (0, "1 phút", "1 minute"),
])
def test_time_to_the_response_deadline_reads_naturally_in_both_languages(minutes, vi, en):
    from django.utils import translation

    with translation.override("vi"):
        assert views.duration_text(timedelta(minutes=minutes)) == vi
        assert views.duration_text(-timedelta(minutes=minutes)) == vi
    with translation.override("en"):
        assert views.duration_text(timedelta(minutes=minutes)) == en


def test_overdue_rows_say_by_how_much(as_handler, cases):
    html = as_handler.get(reverse("console:queue")).content.decode()
    assert "quá hạn 2 giờ" in html or "quá hạn 1 giờ 59 phút" in html
