"""The permission matrix: every role × every case and evidence action × where the case is.

The expected table is written out by hand (not read from the ACTIONS dicts
the code uses), so a change to who may do what fails here until the table
is changed too, on purpose. Each cell is checked twice: through the
permission functions, and through the console's HTTP views by what the
request actually did.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cophub.cases import permissions as case_permissions
from cophub.cases.models import CaseEvent, CaseFile, EventKind
from cophub.conftest import make_user, png_bytes
from cophub.evidence import permissions as evidence_permissions
from cophub.hashbanks.services import is_confirmed
from cophub.intake.models import Submission

from .helpers import case_with_image, first_blob, flash, log_in, report_case, upload

ROLES = ["admin", "handler", "counsellor", "teacher", "it_admin", "observer"]
ACTIONS = ["case.view", "case.assign", "case.transition", "case.edit", "case.merge", "case.note", "case.message",
           "submission.enter", "evidence.view_preview", "evidence.view_clear", "evidence.attach", "evidence.confirm"]

# Every account holds its role at the district office. Y = allowed, . = refused.
#                 view assign transition edit merge note message enter preview clear attach confirm
WITHIN_SCOPE = """
admin             Y    Y      Y          Y    Y     Y    Y       Y     Y       Y     Y      Y
handler           Y    Y      Y          Y    Y     Y    Y       Y     Y       Y     Y      Y
counsellor        Y    .      .          .    .     Y    Y       Y     Y       .     Y      .
teacher           .    .      .          .    .     .    .       Y     .       .     .      .
it_admin          .    .      .          .    .     .    .       .     .       .     .      .
observer          Y    .      .          .    .     .    .       .     .       .     .      .
"""
OUT_OF_SCOPE = """
admin             .    .      .          .    .     .    .       .     .       .     .      .
handler           .    .      .          .    .     .    .       .     .       .     .      .
counsellor        .    .      .          .    .     .    .       .     .       .     .      .
teacher           .    .      .          .    .     .    .       .     .       .     .      .
it_admin          .    .      .          .    .     .    .       .     .       .     .      .
observer          .    .      .          .    .     .    .       .     .       .     .      .
"""
# Where the case lies, seen from the district: the district itself, a school
# below it, a school of the sibling district, and the province above it.
WHERE = {"own_unit": ("district", WITHIN_SCOPE), "child_unit": ("school_a", WITHIN_SCOPE),
         "other_unit": ("school_c", OUT_OF_SCOPE), "parent_unit": ("province", OUT_OF_SCOPE)}


def parse(grid: str) -> dict[tuple[str, str], bool]:
    table = {}
    for line in grid.strip().splitlines():
        role, *cells = line.split()
        assert len(cells) == len(ACTIONS), line
        for action, cell in zip(ACTIONS, cells, strict=True):
            assert cell in {"Y", "."}, line
            table[(role, action)] = cell == "Y"
    return table


EXPECTED = {where: parse(grid) for where, (_, grid) in WHERE.items()}
CELLS = [(role, action, where) for where in WHERE for role in ROLES for action in ACTIONS]


def test_the_table_covers_every_role_and_action():
    for where in WHERE:
        assert set(EXPECTED[where]) == {(r, a) for r in ROLES for a in ACTIONS}


# --- Through the permission functions ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role,action,where", CELLS)
def test_permission_functions(units, role, action, where):
    user = make_user(f"{role}-user", role, units["district"])
    unit = units[WHERE[where][0]]
    # evidence.confirm (the hash list) is a case action: it lives in cases/permissions.py.
    module = case_permissions if action in case_permissions.ACTIONS else evidence_permissions
    assert module.can(user, action, unit) is EXPECTED[where][(role, action)]


# --- Through the HTTP views -------------------------------------------------------------------------


class World:
    """One account with `role` at the district, and a case (with a picture) in `unit`."""

    def __init__(self, client, units, role, unit):
        self.client = client
        self.units = units
        self.unit = unit
        self.user = make_user(f"{role}-user", role, units["district"])
        self.case = case_with_image(unit)
        self.blob = first_blob(self.case)
        log_in(client, self.user)

    def url(self, name, *args):
        return reverse(f"console:{name}", args=[self.case.pk, *args])

    def refresh(self):
        self.case.refresh_from_db()
        return self.case


def _refused(world, response, expected_statuses=(302, 403, 404)) -> None:
    assert response.status_code in expected_statuses, response.status_code
    if response.status_code == 302:
        # Refused but the case is visible: back to the case page with a message.
        assert response["Location"] == world.url("case")
        assert flash(response), "a refusal must say why"


def probe_view(world) -> bool:
    response = world.client.get(world.url("case"))
    assert response.status_code in (200, 404)
    return response.status_code == 200


def probe_assign(world) -> bool:
    response = world.client.post(world.url("assign"), {"assign_to_me": "1", "assignee": ""})
    done = world.refresh().assignee_id == world.user.pk
    if not done:
        _refused(world, response, (302, 404))
    return done


def probe_transition(world) -> bool:
    response = world.client.post(world.url("transition"), {"target": "triaged", "reason": "Đã xem nội dung phản ánh."})
    done = world.refresh().state == "triaged"
    if not done:
        _refused(world, response, (302, 404))
    return done


def probe_edit(world) -> bool:
    response = world.client.post(world.url("classify"), {"priority": "P1", "category": "grooming"})
    done = world.refresh().priority == "P1" and world.case.category == "grooming"
    if not done:
        _refused(world, response, (302, 404))
    return done


def probe_merge(world) -> bool:
    target = report_case(world.unit, description="Cùng một vụ việc, phản ánh lần hai.")
    response = world.client.post(world.url("merge"), {"into": target.reference, "reason": "Trùng", "confirm": "on"})
    done = world.refresh().state == "duplicate" and world.case.merged_into_id == target.pk
    if not done:
        _refused(world, response, (302, 404))
    return done


def probe_note(world) -> bool:
    response = world.client.post(world.url("note"), {"text": "Ghi chú nội bộ."})
    done = CaseEvent.objects.filter(case=world.case, kind=EventKind.NOTE).exists()
    if not done:
        _refused(world, response, (302, 404))
    return done


def probe_message(world) -> bool:
    response = world.client.post(world.url("message"), {"text": "Chúng tôi đang xem phản ánh của em."})
    done = CaseEvent.objects.filter(case=world.case, kind=EventKind.MESSAGE).exists()
    if not done:
        _refused(world, response, (302, 404))
    return done


def probe_enter(world) -> bool:
    received = timezone.localtime() - timedelta(minutes=30)
    response = world.client.post(reverse("console:entry"), {
        "channel": "phone_111", "received_at": received.strftime("%Y-%m-%dT%H:%M"), "unit": world.unit.pk,
        "reporter_kind": "parent", "category": "cyberbullying", "description": "Phụ huynh gọi qua 111.",
    })
    done = Submission.objects.filter(entered_by=world.user, unit=world.unit).exists()
    if done:
        assert response.status_code == 200
    else:
        # No unit to enter for at all: 403; a unit outside the account's reach: the form refuses it.
        assert response.status_code in (200, 403)
        if response.status_code == 200:
            assert response.context["form"].errors["unit"]
    return done


def probe_preview(world) -> bool:
    response = world.client.get(world.url("evidence_preview", world.blob.pk))
    if response.status_code == 200:
        assert response["Content-Type"] == "image/jpeg"
        return True
    assert response.status_code in (403, 404)
    return False


def probe_clear(world) -> bool:
    response = world.client.post(world.url("evidence_clear", world.blob.pk))
    if response.status_code == 200:
        assert b"".join(response.streaming_content) == png_bytes()
        return True
    assert response.status_code in (403, 404)
    return False


def probe_attach(world) -> bool:
    response = world.client.post(world.url("attach"), {"files": [upload()]})
    done = CaseFile.objects.filter(case=world.case).exists()
    if not done:
        _refused(world, response, (302, 404))
    return done


def probe_confirm(world) -> bool:
    response = world.client.post(world.url("evidence_confirm", world.blob.pk), {"confirm": "on"})
    done = is_confirmed(world.blob.sha256)
    if not done:
        assert response.status_code in (403, 404), response.status_code
    return done


PROBES = {
    "case.view": probe_view, "case.assign": probe_assign, "case.transition": probe_transition, "case.edit": probe_edit,
    "case.merge": probe_merge, "case.note": probe_note, "case.message": probe_message, "submission.enter": probe_enter,
    "evidence.view_preview": probe_preview, "evidence.view_clear": probe_clear, "evidence.attach": probe_attach,
    "evidence.confirm": probe_confirm,
}


@pytest.mark.django_db
@pytest.mark.parametrize("role,action,where", CELLS)
def test_http_views(client, units, role, action, where):
    world = World(client, units, role, units[WHERE[where][0]])
    assert PROBES[action](world) is EXPECTED[where][(role, action)]
