"""Services other apps call to learn about units and staff."""

from __future__ import annotations

from django.conf import settings

from .models import Membership, Role, Unit, UnitKind


def home_unit() -> Unit | None:
    """The unit whose public pages this hub serves."""
    code = settings.COPHUB_HOME_UNIT
    if code:
        unit = Unit.objects.filter(code=code).first()
        if unit:
            return unit
    return Unit.objects.filter(is_hub_home=True).order_by("pk").first() or Unit.objects.filter(parent__isnull=True).order_by("pk").first()


def unit_by_code(code: str) -> Unit | None:
    return Unit.objects.filter(code=code).first()


def schools_under(unit: Unit | None):
    qs = Unit.objects.filter(kind=UnitKind.SCHOOL)
    if unit is not None:
        qs = qs.filter(path__startswith=unit.path)
    return qs.order_by("name")


def counsellor_contact(unit: Unit | None) -> Unit | None:
    """The nearest unit, from `unit` upward, that lists a counsellor."""
    while unit is not None:
        if unit.counsellor_phone or unit.counsellor_email:
            return unit
        unit = unit.parent
    return None


def staff_in(unit: Unit, roles: list[str]):
    """Accounts that hold one of `roles` over `unit` (at it or above it)."""
    ancestor_ids = [int(pk) for pk in unit.path.strip("/").split("/") if pk]
    user_ids = Membership.objects.filter(unit_id__in=ancestor_ids, role__in=roles).values_list("user_id", flat=True)
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk__in=user_ids, is_active=True).order_by("username")


def grant(user, unit: Unit, role: str) -> Membership:
    return Membership.objects.get_or_create(user=user, unit=unit, role=Role(role))[0]
