"""The public "this is a mistake" page linked from the block page: a short form, a report for the IT admin, a rate limit."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from cophub.netfilter.models import ClientGroup, MistakeReport

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(units):
    return ClientGroup.objects.create(unit=units["school_a"], name="Khối 6")


def test_the_form_is_in_vietnamese_with_the_hotline_and_the_hub_link(client, group):
    response = client.get(reverse("netfilter-mistake"), {"name": "hoc.example.vn", "rule": "||hoc.example.vn^", "group": group.pk})
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="vi">' in html and "Bị chặn nhầm?" in html
    assert 'value="hoc.example.vn"' in html and 'value="||hoc.example.vn^"' in html
    assert 'href="tel:111"' in html and f'href="{reverse("intake:home")}"' in html


def test_sending_the_form_files_a_report_and_thanks(client, group):
    data = {"name": "hoc.example.vn", "rule": "||hoc.example.vn^", "group": group.pk, "message": "Trang bài tập của lớp em."}
    response = client.post(reverse("netfilter-mistake"), data)
    assert response.status_code == 302 and response["Location"] == reverse("netfilter-mistake-sent")
    report = MistakeReport.objects.get()
    assert (report.name, report.rule, report.group, report.message, report.status) == (
        "hoc.example.vn", "||hoc.example.vn^", group, "Trang bài tập của lớp em.", MistakeReport.Status.OPEN)
    thanks = client.get(response["Location"]).content.decode()
    assert "Cảm ơn em" in thanks and 'href="tel:111"' in thanks
    # The same site for the same group while the first report is open: not filed twice.
    client.post(reverse("netfilter-mistake"), data)
    assert MistakeReport.objects.count() == 1


def test_a_bad_name_or_an_unknown_group_is_handled(client):
    response = client.post(reverse("netfilter-mistake"), {"name": "<script>", "group": "999999"})
    assert response.status_code == 200 and "không phải là tên miền" in response.content.decode()
    client.post(reverse("netfilter-mistake"), {"name": "Hoc.Example.VN.", "group": "999999"})
    report = MistakeReport.objects.get()
    assert report.name == "hoc.example.vn" and report.group is None


@pytest.fixture
def fresh_cache():
    cache.clear()
    yield
    cache.clear()  # no counter left for the next test


def test_the_form_is_rate_limited(client, settings, group, fresh_cache):
    settings.RATELIMIT_ENABLE = True
    settings.COPHUB_RATE_SUBMIT = "3/10m"
    statuses = [client.post(reverse("netfilter-mistake"), {"name": f"site{i}.example.vn", "group": group.pk}).status_code for i in range(5)]
    assert statuses[:3] == [302, 302, 302]
    assert statuses[3:] == [429, 429]
    assert MistakeReport.objects.count() == 3
