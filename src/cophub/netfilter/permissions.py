"""Who may run the school network filter from the console.

IT administrators and administrators manage it. What belongs to a school
(its client groups, their temporary unblocks, the mistake reports about
them, the query log of their devices) is scoped to the units the user holds
one of these roles in, and the units below them, like every other console
page (orgs.permissions). What belongs to the installation (the block lists,
the resolver's settings) is one for the whole resolver: any of these users
may change it; the hub's own confirmed list is read-only for everyone.

Queries answered for no group (devices outside every group's ranges) are
the installation's, not a school's: only a user whose role sits on a top
unit (or a superuser) sees them in the query log.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from cophub.orgs.models import Role, Unit
from cophub.orgs.permissions import has_role, scope_filter, unit_paths, units_for

from .models import ClientGroup

ACTIONS: dict[str, set[str]] = {
    # Every page of the network filter: groups, lists, unblocks, settings, query log, mistake reports.
    "netfilter.manage": {Role.IT_ADMIN, Role.ADMIN},
}
ROLES = ACTIONS["netfilter.manage"]


def _active(user) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active)


def may_manage(user) -> bool:
    """Whether the console shows the filter to this user (from the memberships already loaded: no query per page)."""
    if not _active(user):
        return False
    return user.is_superuser or bool(unit_paths(user, ROLES))


def require(user) -> None:
    if not may_manage(user):
        raise PermissionDenied


def whole_installation(user) -> bool:
    """Superusers and managers on a top unit (one without a parent) see what belongs to no school."""
    if not _active(user):
        return False
    return user.is_superuser or any(path.count("/") == 2 for path in unit_paths(user, ROLES))


def managed_units(user):
    """The units whose groups the user manages."""
    if _active(user) and user.is_superuser:
        return Unit.objects.all()
    return units_for(user, ROLES)


def groups_for(user):
    """The client groups the user may see and change."""
    if _active(user) and user.is_superuser:
        return ClientGroup.objects.all()
    return ClientGroup.objects.filter(scope_filter(user, ROLES))


def may_manage_group(user, group: ClientGroup) -> bool:
    if not _active(user):
        return False
    return user.is_superuser or has_role(user, ROLES, group.unit)


def list_owner_unit(user) -> Unit | None:
    """The unit a new block list is recorded under: the user's highest managed unit."""
    paths = sorted(unit_paths(user, ROLES), key=lambda path: (path.count("/"), path))
    if paths:
        return Unit.objects.filter(path=paths[0]).first()
    from cophub.orgs.services import home_unit

    return home_unit()
