"""Reviewer wellbeing: per-reviewer counts of material viewed, visible to their lead only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.cases.tests.helpers import log_in
from cophub.conftest import jpeg_bytes, make_user
from cophub.intake.services import receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def case_with_picture(units):
    receipt = receive(unit=units["school_a"], channel="web_adult", description="ảnh",
                      files=[("a.jpg", jpeg_bytes())])
    return receipt.case, receipt.submission.files.get().blob_id


def test_the_lead_sees_how_much_each_reviewer_looked_at(client, units, case_with_picture):
    case, blob_id = case_with_picture
    handler = make_user("handler-a", "handler", units["district"])
    other = make_user("handler-b", "handler", units["district"])
    log_in(client, handler)
    for _ in range(3):
        assert client.get(f"/console/cases/{case.pk}/evidence/{blob_id}/preview/").status_code == 200
    assert client.post(f"/console/cases/{case.pk}/evidence/{blob_id}/clear/").status_code == 200
    # An old view falls out of the day and week but stays in the month.
    AuditEvent.objects.filter(action="evidence.view_preview").order_by("pk").filter(
        pk=AuditEvent.objects.filter(action="evidence.view_preview").order_by("pk").first().pk
    ).update(at=timezone.now() - timedelta(days=10))

    lead = make_user("lead", "admin", units["district"])
    log_in(client, lead)
    page = client.get("/console/wellbeing/")
    assert page.status_code == 200
    html = page.content.decode()
    row = html.split("handler-a", 1)[1].split("</tr>", 1)[0]
    cells = [c.split("</td>", 1)[0] for c in row.split("<td>")[2:]]
    assert cells == ["2", "2", "3", "1", "1", "1"]
    assert "handler-b" in html and other.pk
    assert AuditEvent.objects.filter(action="staff.wellbeing_viewed", actor_id=lead.pk).exists()


def test_reviewers_do_not_see_the_counts(client, units):
    log_in(client, make_user("handler-c", "handler", units["district"]))
    assert client.get("/console/wellbeing/").status_code == 403


def test_a_lead_sees_only_their_own_units(client, units):
    make_user("far-away", "handler", units["other_district"])
    make_user("near", "handler", units["school_a"])
    log_in(client, make_user("lead-d", "admin", units["district"]))
    html = client.get("/console/wellbeing/").content.decode()
    assert "near" in html and "far-away" not in html


def test_the_weekly_mark_flags_a_reviewer(client, units, settings, case_with_picture):
    settings.COPHUB_WELLBEING_WEEKLY_MARK = 2
    case, blob_id = case_with_picture
    reviewer = make_user("busy", "handler", units["district"])
    log_in(client, reviewer)
    for _ in range(3):
        client.get(f"/console/cases/{case.pk}/evidence/{blob_id}/preview/")
    log_in(client, make_user("lead-e", "admin", units["district"]))
    html = client.get("/console/wellbeing/").content.decode()
    assert "over-mark" in html.split("busy", 1)[0].rsplit("<tr", 1)[1]
