"""Who may do what to a case, by role, in the case's unit or a unit above it."""

from __future__ import annotations

from cophub.orgs.models import Role
from cophub.orgs.permissions import has_role, scope_filter

A, H, C, T, I, O = Role.ADMIN, Role.HANDLER, Role.COUNSELLOR, Role.TEACHER, Role.IT_ADMIN, Role.OBSERVER

ACTIONS: dict[str, set[str]] = {
    "case.view": {A, H, C, O},
    "case.assign": {A, H},
    "case.transition": {A, H},
    "case.edit": {A, H},  # priority, category
    "case.merge": {A, H},
    "case.note": {A, H, C},
    "case.message": {A, H, C},
    "submission.enter": {A, H, C, T},
    # Confirm a case file as illegal material: it goes on the hub's hash list, shared with providers.
    "evidence.confirm": {A, H},
    # See how much material each reviewer of the unit has looked at (reviewer wellbeing).
    "staff.wellbeing": {A},
}


def can(user, action: str, unit) -> bool:
    return has_role(user, ACTIONS[action], unit)


def visible_filter(user, action: str = "case.view"):
    return scope_filter(user, ACTIONS[action])
