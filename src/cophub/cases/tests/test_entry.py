"""Staff entry: a report received by phone, letter, email or in person."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.audit.services import verify
from cophub.cases.services import case_for_submission
from cophub.conftest import png_bytes
from cophub.evidence import vault
from cophub.intake.models import Submission
from cophub.intake.services import lookup

from .helpers import log_in, upload

pytestmark = pytest.mark.django_db


def entry_data(unit, **overrides):
    data = {
        "channel": "phone_111",
        "received_at": (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "unit": unit.pk,
        "reporter_kind": "parent",
        "category": "sextortion",
        "description": "Tổng đài 111 chuyển cuộc gọi: phụ huynh cho biết con bị đe doạ tung ảnh.",
        "where_app": "Messenger",
        "reported_account": "fb.com/ke.xau",
        "age_band": "13_15",
        "how_known": "child_told",
        "contact_ok": "on",
        "contact_name": "Trần Thị B",
        "contact_phone": "0987 654 321",
    }
    data.update(overrides)
    return data


def test_a_teacher_enters_a_call_and_gets_the_receipt_to_pass_on(client, units, staff):
    teacher = staff["teacher"]
    log_in(client, teacher)
    received = timezone.localtime() - timedelta(hours=1)
    data = entry_data(units["school_a"], received_at=received.strftime("%Y-%m-%dT%H:%M"), school=units["school_a"].pk)
    response = client.post(reverse("console:entry"), data)
    assert response.status_code == 200
    receipt = response.context["receipt"]
    html = response.content.decode()
    assert receipt.code in html and receipt.phrase in html

    submission = Submission.objects.get()
    assert submission == receipt.submission
    assert (submission.channel, submission.entered_by, submission.unit, submission.school) == ("phone_111", teacher, units["school_a"], units["school_a"])
    assert submission.received_at == received.replace(second=0, microsecond=0)
    assert (submission.contact_name, submission.where_app, submission.category) == ("Trần Thị B", "Messenger", "sextortion")
    assert lookup(receipt.code, receipt.phrase) == submission
    # A teacher may enter reports but not open cases: no link to one.
    assert response.context["case"] is None
    case = case_for_submission(submission)
    assert case.unit == units["school_a"] and case.priority == "P2"
    event = AuditEvent.objects.get(action="submission.enter")
    assert (event.actor, event.object_id, event.unit_id, event.data["channel"]) == (teacher.username, str(submission.pk), units["school_a"].pk, "phone_111")
    assert verify().ok


def test_a_handler_enters_a_letter_with_a_scan_and_danger(client, units, staff):
    log_in(client, staff["handler"])
    data = entry_data(units["district"], channel="letter", danger="on")
    data["files"] = [upload("thu-phan-anh.png", png_bytes(colour=(90, 90, 200)))]
    response = client.post(reverse("console:entry"), data)
    assert response.status_code == 200
    case = response.context["case"]
    assert case is not None and case.priority == "P1"
    assert reverse("console:case", args=[case.pk]) in response.content.decode()
    submission = Submission.objects.get()
    assert submission.channel == "letter" and submission.danger
    assert [f.original_name for f in submission.files.all()] == ["thu-phan-anh.png"]


@pytest.mark.parametrize("channel", ["phone_111", "phone", "letter", "in_person", "email"])
def test_every_staff_channel_is_recorded(client, units, staff, channel):
    log_in(client, staff["counsellor"])
    assert client.post(reverse("console:entry"), entry_data(units["school_b"], channel=channel)).status_code == 200
    assert Submission.objects.get().channel == channel


def test_public_channels_cannot_be_chosen_by_staff(client, units, staff):
    log_in(client, staff["handler"])
    response = client.post(reverse("console:entry"), entry_data(units["school_a"], channel="web_child"))
    assert response.context["form"].errors["channel"]
    assert not Submission.objects.exists()


def test_a_time_in_the_future_is_refused(client, units, staff):
    log_in(client, staff["handler"])
    later = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(reverse("console:entry"), entry_data(units["school_a"], received_at=later))
    assert response.context["form"].errors["received_at"]
    assert not Submission.objects.exists()


def test_a_refused_form_keeps_no_uploaded_file(client, units, staff):
    log_in(client, staff["handler"])
    data = entry_data(units["school_a"], description="")
    data["files"] = [upload()]
    response = client.post(reverse("console:entry"), data)
    assert response.status_code == 200 and response.context["form"].errors["description"]
    assert response.context["files_dropped"]
    assert list(vault.staging_dir().glob("*.part")) == []
    assert not Submission.objects.exists()


def test_units_offered_are_those_the_user_may_enter_for(client, units, staff):
    log_in(client, staff["teacher"])
    form = client.get(reverse("console:entry")).context["form"]
    assert {value for value, _ in form.fields["unit"].choices} == {str(units[k].pk) for k in ("district", "school_a", "school_b")}
    response = client.post(reverse("console:entry"), entry_data(units["school_c"]))
    assert response.context["form"].errors["unit"]


@pytest.mark.parametrize("role", ["it_admin", "observer"])
def test_roles_without_entry_get_no_form_and_no_link(client, units, staff, role):
    log_in(client, staff[role])
    assert client.get(reverse("console:entry")).status_code == 403
    assert client.post(reverse("console:entry"), entry_data(units["school_a"])).status_code == 403
    assert reverse("console:entry") not in client.get(reverse("console:queue")).content.decode()
    assert not Submission.objects.exists()
