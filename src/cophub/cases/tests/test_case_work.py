"""Working a case through the console: lifecycle, refusals, merging, notes and messages, files."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cophub.audit.models import AuditEvent
from cophub.audit.services import verify
from cophub.cases import services, workflow
from cophub.cases.models import CaseEvent, CaseFile, EventKind
from cophub.intake.services import add_information

from .helpers import case_of, case_with_image, flash, log_in, report, report_case, upload

pytestmark = pytest.mark.django_db

LIFECYCLE = ["triaged", "assessing", "referred", "resolved", "closed"]


def case_url(name, case, *args):
    return reverse(f"console:{name}", args=[case.pk, *args])


@pytest.fixture
def handler(client, staff):
    log_in(client, staff["handler"])
    return staff["handler"]


def test_full_lifecycle_through_the_console(client, units, handler):
    case = report_case(units["school_a"])
    assert case.state == "new"
    response = client.post(case_url("assign", case), {"assign_to_me": "1"})
    assert response.status_code == 302
    for target in LIFECYCLE:
        response = client.post(case_url("transition", case), {"target": target, "reason": f"Lý do: {target}"}, follow=True)
        assert response.status_code == 200
        case.refresh_from_db()
        assert case.state == target
        assert case.get_state_display() in response.content.decode()

    moves = list(CaseEvent.objects.filter(case=case, kind=EventKind.STATE).order_by("pk"))
    assert [(e.data["from"], e.data["to"], e.text) for e in moves] == [
        ("new", "triaged", "Lý do: triaged"), ("triaged", "assessing", "Lý do: assessing"), ("assessing", "referred", "Lý do: referred"),
        ("referred", "resolved", "Lý do: resolved"), ("resolved", "closed", "Lý do: closed")]
    assert all(e.actor == handler for e in moves)
    audited = list(AuditEvent.objects.filter(action="case.transition", object_id=str(case.pk)).order_by("seq"))
    assert [(a.data["from"], a.data["to"], a.actor) for a in audited] == [
        ("new", "triaged", handler.username), ("triaged", "assessing", handler.username), ("assessing", "referred", handler.username),
        ("referred", "resolved", handler.username), ("resolved", "closed", handler.username)]
    assert AuditEvent.objects.filter(action="case.assign", object_id=str(case.pk), data__assignee=handler.username).exists()
    assert AuditEvent.objects.filter(action="case.view", object_id=str(case.pk)).count() >= len(LIFECYCLE)
    assert verify().ok


def test_case_page_offers_only_the_moves_the_workflow_allows(client, units, handler):
    case = report_case(units["school_a"])
    form = client.get(case_url("case", case)).context["forms"]["transition"]
    assert [value for value, _ in form.fields["target"].choices] == ["triaged", "assessing", "not_actionable"]
    assert workflow.allowed("new") == ["triaged", "assessing", "not_actionable"]


@pytest.mark.parametrize("start,target", [("new", "closed"), ("new", "resolved"), ("new", "duplicate"), ("triaged", "referred"), ("closed", "resolved")])
def test_illegal_transitions_are_refused_with_a_message(client, units, handler, start, target):
    case = report_case(units["school_a"])
    path = {"new": [], "triaged": ["triaged"], "closed": ["assessing", "resolved", "closed"]}[start]
    for step in path:
        services.transition(case, step, handler, "chuẩn bị")
    before = CaseEvent.objects.filter(case=case).count()
    response = client.post(case_url("transition", case), {"target": target, "reason": "thử"})
    assert response.status_code == 302 and response["Location"] == case_url("case", case)
    assert flash(response)
    case.refresh_from_db()
    assert case.state == start
    assert CaseEvent.objects.filter(case=case).count() == before


def test_the_workflow_refuses_illegal_moves_in_the_service_too(units, staff):
    case = report_case(units["school_a"])
    with pytest.raises(workflow.TransitionError):
        services.transition(case, "closed", staff["handler"], "thử")
    case.refresh_from_db()
    assert case.state == "new"


def test_a_transition_that_races_is_a_message_not_an_error(client, units, handler):
    case = report_case(units["school_a"])
    # The handler's page still offers "triaged"; a colleague moved the case on meanwhile.
    services.transition(case, "assessing", handler, "đồng nghiệp đã chuyển trước")
    response = client.post(case_url("transition", case), {"target": "triaged", "reason": "trang cũ"})
    assert response.status_code == 302 and len(flash(response)) == 1
    case.refresh_from_db()
    assert case.state == "assessing"


def test_a_transition_needs_a_reason(client, units, handler):
    case = report_case(units["school_a"])
    response = client.post(case_url("transition", case), {"target": "triaged", "reason": ""})
    assert response.status_code == 302 and flash(response)
    case.refresh_from_db()
    assert case.state == "new"


def test_merge_shows_the_duplicate_reports_on_the_target_and_its_reporter_follows_the_target(client, units, handler):
    first = report(units["school_a"], description="Một người lạ xin ảnh của em trên Zalo.")
    second = report(units["school_a"], description="Con tôi kể có người lạ xin ảnh, cùng tài khoản đó.")
    target, duplicate = case_of(first), case_of(second)

    response = client.post(case_url("merge", duplicate), {"into": target.reference, "reason": "Cùng một tài khoản", "confirm": "on"})
    assert response.status_code == 302
    duplicate.refresh_from_db()
    assert duplicate.state == "duplicate" and duplicate.merged_into == target

    page = client.get(case_url("case", target)).content.decode()
    assert "Một người lạ xin ảnh của em trên Zalo." in page
    assert "Con tôi kể có người lạ xin ảnh, cùng tài khoản đó." in page
    assert second.code in page and duplicate.reference in page

    services.transition(target, "assessing", handler, "đang xem")
    services.send_message(target, "Chúng tôi đã nhận và đang xử lý.", handler)
    status = services.public_status(second.submission)
    assert status.step == "working"
    assert [m["text"] for m in status.messages] == ["Chúng tôi đã nhận và đang xử lý."]
    assert AuditEvent.objects.filter(action="case.merge", object_id=str(duplicate.pk), data__into=target.reference).exists()
    assert verify().ok


def test_merge_needs_confirmation_and_a_visible_target(client, units, handler):
    case = report_case(units["school_a"])
    other_district_case = report_case(units["school_c"])
    for data in ({"into": other_district_case.reference, "confirm": "on"}, {"into": "2099-999999", "confirm": "on"},
                 {"into": case.reference, "confirm": "on"}, {"into": report_case(units["school_a"]).reference}):
        response = client.post(case_url("merge", case), data)
        assert response.status_code == 302 and flash(response)
        case.refresh_from_db()
        assert case.state == "new" and case.merged_into is None


def test_notes_stay_internal_and_messages_reach_the_reporter(client, units, handler):
    receipt = report(units["school_a"])
    case = case_of(receipt)
    client.post(case_url("note", case), {"text": "Nghi ngờ tài khoản giả, cần kiểm tra thêm."})
    client.post(case_url("message", case), {"text": "Cảm ơn em đã báo. Thầy cô đang xem."})

    status = services.public_status(receipt.submission)
    texts = [m["text"] for m in status.messages]
    assert texts == ["Cảm ơn em đã báo. Thầy cô đang xem."]
    assert "Nghi ngờ" not in repr(status)

    response = client.get(case_url("case", case))
    html = response.content.decode()
    note = next(e for e in response.context["timeline"] if e.event.kind == EventKind.NOTE)
    message = next(e for e in response.context["timeline"] if e.event.kind == EventKind.MESSAGE)
    assert (note.css, message.css) == ("note", "message")
    assert '<li class="note">' in html and '<li class="message">' in html
    assert 'class="panel reporter-facing"' in html and 'class="panel staff-only"' in html
    assert AuditEvent.objects.filter(action="case.note", object_id=str(case.pk)).count() == 1
    assert AuditEvent.objects.filter(action="case.message", object_id=str(case.pk)).count() == 1


def test_assign_to_another_handler_and_unassign(client, units, handler, staff):
    case = report_case(units["school_a"])
    form = client.get(case_url("case", case)).context["forms"]["assign"]
    choices = {u.username for u in form.fields["assignee"].queryset}
    assert choices == {"admin-district", "handler-district"}
    client.post(case_url("assign", case), {"assignee": staff["admin"].pk})
    case.refresh_from_db()
    assert case.assignee == staff["admin"]
    client.post(case_url("assign", case), {"assignee": ""})
    case.refresh_from_db()
    assert case.assignee is None


def test_a_counsellor_cannot_be_made_assignee(client, units, handler, staff):
    case = report_case(units["school_a"])
    response = client.post(case_url("assign", case), {"assignee": staff["counsellor"].pk})
    assert response.status_code == 302 and flash(response)
    case.refresh_from_db()
    assert case.assignee is None


def test_priority_change_moves_the_sla(client, units, handler):
    case = report_case(units["school_a"], category="cyberbullying")
    assert case.priority == "P3"
    client.post(case_url("classify", case), {"priority": "P1", "category": "sextortion"})
    case.refresh_from_db()
    assert (case.priority, case.category) == ("P1", "sextortion")
    assert (case.sla_due_at - case.created_at).total_seconds() == 3600
    kinds = set(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))
    assert {EventKind.PRIORITY, EventKind.CATEGORY} <= kinds


def test_staff_attach_files_and_see_refusals(client, units, handler):
    case = report_case(units["school_a"])
    response = client.post(case_url("attach", case), {"files": [upload("chup-man-hinh.png"), upload("virus.jpg", b"MZ\x90\x00 not a picture", "image/jpeg")]})
    assert response.status_code == 302
    notes = flash(response)
    assert any("virus.jpg" in n for n in notes)
    files = list(CaseFile.objects.filter(case=case))
    assert [f.original_name for f in files] == ["chup-man-hinh.png"]
    assert files[0].added_by == handler
    page = client.get(case_url("case", case))
    assert "chup-man-hinh.png" in page.content.decode()
    assert AuditEvent.objects.filter(action="evidence.attach", object_id=str(case.pk)).count() == 1


def test_the_case_page_shows_every_field_of_a_report(client, units, handler):
    receipt = report(units["school_a"], files=[], where_url="https://example.invalid/u/ke-xau", where_app="Zalo",
                     reported_account="ke.xau.123", age_band="9_12", school=units["school_a"], contact_ok=True,
                     contact_name="Mẹ của Minh", contact_phone="0912 345 678", how_known="child_told")
    add_information(receipt.submission, "Em nhớ thêm: người đó hẹn gặp ở cổng trường.")
    case = case_of(receipt)
    html = client.get(case_url("case", case)).content.decode()
    for text in ["https://example.invalid/u/ke-xau", "Zalo", "ke.xau.123", "Mẹ của Minh", "0912 345 678", "Trường TH Hùng Vương",
                 "Em nhớ thêm: người đó hẹn gặp ở cổng trường.", receipt.code, case.reference, "Có người nhắn tin đe doạ em."]:
        assert text in html, text


def test_case_page_never_shows_a_clear_image_or_autoplays(client, units, handler):
    case = case_with_image(units["school_a"])
    html = client.get(case_url("case", case)).content.decode()
    blob = services.submissions_of(case)[0].files.all()[0].blob
    assert f'src="{case_url("evidence_preview", case, blob.pk)}"' in html
    assert case_url("evidence_clear", case, blob.pk) in html
    assert "<video" not in html and "<audio" not in html and "autoplay" not in html
    assert f'src="{case_url("evidence_clear", case, blob.pk)}"' not in html


def test_a_pending_preview_shows_as_being_prepared(client, units, handler):
    case = case_with_image(units["school_a"])
    blob = services.submissions_of(case)[0].files.all()[0].blob
    blob.preview_status = "pending"
    blob.save(update_fields=["preview_status"])
    response = client.get(case_url("case", case))
    html = response.content.decode()
    assert case_url("evidence_preview", case, blob.pk) not in html
    assert "⏳" in html


def test_an_observer_reads_the_case_without_forms_or_previews(client, units, staff):
    case = case_with_image(units["school_a"])
    log_in(client, staff["observer"])
    response = client.get(case_url("case", case))
    assert response.status_code == 200
    assert response.context["forms"] == {}
    html = response.content.decode()
    assert "/evidence/" not in html
    assert "<form" in html  # only the log-out form
    assert html.count("<form") == 1


def test_a_counsellor_gets_note_message_and_attach_but_not_the_clear_view(client, units, staff):
    case = case_with_image(units["school_a"])
    log_in(client, staff["counsellor"])
    response = client.get(case_url("case", case))
    assert set(response.context["forms"]) == {"note", "message", "attach"}
    blob = services.submissions_of(case)[0].files.all()[0].blob
    html = response.content.decode()
    assert case_url("evidence_preview", case, blob.pk) in html
    assert case_url("evidence_clear", case, blob.pk) not in html


def test_console_pages_need_a_login(client, units):
    case = report_case(units["school_a"])
    for url in [reverse("console:queue"), case_url("case", case), reverse("console:entry")]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("console:login"))
    response = client.post(case_url("transition", case), {"target": "triaged", "reason": "x"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("console:login"))
    case.refresh_from_db()
    assert case.state == "new"


def test_get_on_an_action_is_not_allowed(client, units, handler):
    case = report_case(units["school_a"])
    assert client.get(case_url("transition", case)).status_code == 405
