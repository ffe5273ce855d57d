"""Who may manage the hash lists: administrators of a top unit (the whole hub), and superusers.

A hash list is not tied to a unit: an imported list or an allow list changes
what matches in every school, and the hub's list goes to every provider. So
a district's administrator does not get these pages; only an administrator
whose membership sits on a top unit (one with no parent), the same role
table as providers/permissions.py but without the unit scope.
"""

from __future__ import annotations

from cophub.orgs.models import Role
from cophub.orgs.permissions import unit_paths

ACTIONS: dict[str, set[str]] = {
    # List, create, edit and switch hash lists, remove entries, import files.
    "hashbank.manage": {Role.ADMIN},
}


def _is_top(path: str) -> bool:
    return path.count("/") == 2  # "/<pk>/": a unit without a parent (orgs.models.Unit.path)


def may_manage(user) -> bool:
    """From the memberships already loaded with the user: no query per page."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or any(_is_top(path) for path in unit_paths(user, ACTIONS["hashbank.manage"]))
