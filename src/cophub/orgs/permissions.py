"""Scoped roles: the machinery every app's own permission module builds on.

A membership grants its role in its unit and in every unit below it. An app
declares which roles may do each of its actions (see cases/permissions.py,
evidence/permissions.py); these helpers answer "may this user do it here?"
and "in which units may this user do it?".
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from .models import Membership, Role, Unit


def _memberships(user) -> list[Membership]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    cached = getattr(user, "_cophub_memberships", None)
    if cached is None:
        cached = list(Membership.objects.filter(user=user).select_related("unit"))
        user._cophub_memberships = cached
    return cached


def roles_in(user, unit: Unit | None) -> set[str]:
    """Every role the user holds over `unit` (its own or inherited from above)."""
    if unit is None:
        return set()
    return {m.role for m in _memberships(user) if unit.path.startswith(m.unit.path)}


def has_role(user, roles: Iterable[str], unit: Unit | None) -> bool:
    return bool(roles_in(user, unit) & set(roles))


def unit_paths(user, roles: Iterable[str]) -> list[str]:
    """The paths of the units where the user holds one of `roles`."""
    wanted = set(roles)
    return [m.unit.path for m in _memberships(user) if m.role in wanted]


def scope_filter(user, roles: Iterable[str], unit_field: str = "unit") -> Q:
    """A filter keeping rows whose unit lies under one of the user's units."""
    return _path_q(unit_paths(user, roles), f"{unit_field}__path")


def units_for(user, roles: Iterable[str]):
    """The units where the user may act in one of `roles`."""
    return Unit.objects.filter(_path_q(unit_paths(user, roles)))


def _path_q(paths: list[str], field: str = "path") -> Q:
    if not paths:
        return Q(pk__in=[])
    query = Q()
    for path in paths:
        query |= Q(**{f"{field}__startswith": path})
    return query


ALL_ROLES = [r.value for r in Role]
