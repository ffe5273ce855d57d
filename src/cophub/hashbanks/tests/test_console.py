"""The case page's hash-list actions: confirm a file, withdraw it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.cases.models import CaseEvent, EventKind
from cophub.cases.tests.helpers import case_with_image, first_blob, flash, log_in
from cophub.hashbanks import services

pytestmark = pytest.mark.django_db
CONFIRM_LABEL = "Xác nhận là nội dung bất hợp pháp"


@pytest.fixture
def case(units):
    return case_with_image(units["school_a"])


def url(name, case, blob):
    return reverse(f"console:evidence_{name}", args=[case.pk, blob.pk])


def confirm(client, case, blob):
    return client.post(url("confirm", case, blob), {"confirm": "on"})


def test_a_handler_confirms_a_file_and_providers_get_it(client, staff, case):
    blob = first_blob(case)
    log_in(client, staff["handler"])
    page = client.get(reverse("console:case", args=[case.pk])).content.decode()
    assert CONFIRM_LABEL in page

    response = confirm(client, case, blob)
    assert response.status_code == 302 and response["Location"] == reverse("console:case", args=[case.pk])
    assert services.is_confirmed(blob.sha256)
    added = services.feed(0, 100, sandbox=False)["added"]
    assert {(i["signal_type"], i["value"]) for i in added} == {("sha256", blob.sha256), ("md5", blob.md5)}
    entry = services.entries_for_blob(blob.sha256).get()
    assert entry.source == f"case:{case.reference}" and entry.added_by == staff["handler"]

    event = CaseEvent.objects.get(case=case, kind=EventKind.EVIDENCE, data__hash_list="added")
    assert event.actor == staff["handler"]
    assert AuditEvent.objects.filter(action="case.hash_list_added", object_id=str(case.pk)).exists()
    page = client.get(reverse("console:case", args=[case.pk])).content.decode()
    since = timezone.localtime(entry.added_at).strftime("%d/%m/%Y")
    assert f"Có trong danh sách mã băm của trung tâm từ {since}" in page
    assert CONFIRM_LABEL not in page

    # Twice is once: no second change, no second timeline event.
    confirm(client, case, blob)
    assert len(services.feed(0, 100, sandbox=False)["added"]) == 2
    assert CaseEvent.objects.filter(case=case, data__hash_list="added").count() == 1


def test_the_box_must_be_ticked(client, staff, case):
    blob = first_blob(case)
    log_in(client, staff["handler"])
    response = client.post(url("confirm", case, blob), {})
    assert response.status_code == 302 and flash(response)
    assert not services.is_confirmed(blob.sha256)


def test_an_observer_may_not_confirm(client, staff, case):
    blob = first_blob(case)
    log_in(client, staff["observer"])
    assert CONFIRM_LABEL not in client.get(reverse("console:case", args=[case.pk])).content.decode()
    assert confirm(client, case, blob).status_code == 403
    assert not services.is_confirmed(blob.sha256)


@pytest.mark.parametrize("role", ["teacher", "it_admin"])
def test_roles_that_cannot_see_the_case_get_404(client, staff, case, role):
    # A case the account may not view is a 404 (its existence does not leak), not a 403.
    blob = first_blob(case)
    log_in(client, staff[role])
    assert confirm(client, case, blob).status_code == 404
    assert not services.is_confirmed(blob.sha256)


def test_a_counsellor_sees_no_form_and_is_refused(client, staff, case):
    blob = first_blob(case)
    log_in(client, staff["counsellor"])
    assert CONFIRM_LABEL not in client.get(reverse("console:case", args=[case.pk])).content.decode()
    assert confirm(client, case, blob).status_code == 403


def test_a_file_of_another_case_is_404(client, staff, units, case):
    other = case_with_image(units["school_b"], colour=(1, 2, 3))
    log_in(client, staff["handler"])
    assert confirm(client, case, first_blob(other)).status_code == 404
    assert not services.is_confirmed(first_blob(other).sha256)


def test_withdrawing_needs_a_reason_and_shows_in_the_feed(client, staff, case):
    blob = first_blob(case)
    log_in(client, staff["handler"])
    confirm(client, case, blob)
    cursor = services.feed(0, 100, sandbox=False)["cursor"]

    response = client.post(url("withdraw", case, blob), {"reason": "  "})
    assert response.status_code == 302 and flash(response)
    assert services.is_confirmed(blob.sha256)

    client.post(url("withdraw", case, blob), {"reason": "Xác nhận nhầm: ảnh chụp màn hình bình thường."})
    assert not services.is_confirmed(blob.sha256)
    removed = services.feed(cursor, 100, sandbox=False)["removed"]
    assert {i["value"] for i in removed} == {blob.sha256, blob.md5}
    event = CaseEvent.objects.get(case=case, data__hash_list="removed")
    assert event.text.startswith("Xác nhận nhầm")
    assert AuditEvent.objects.filter(action="hashbank.entry_removed").count() == 2
    assert CONFIRM_LABEL in client.get(reverse("console:case", args=[case.pk])).content.decode()


def test_the_timeline_says_what_happened(client, staff, case):
    blob = first_blob(case)
    log_in(client, staff["handler"])
    confirm(client, case, blob)
    client.post(url("withdraw", case, blob), {"reason": "Nhầm."})
    page = client.get(reverse("console:case", args=[case.pk])).content.decode()
    assert "được thêm vào danh sách mã băm của trung tâm" in page
    assert "đã được gỡ khỏi danh sách mã băm của trung tâm" in page
