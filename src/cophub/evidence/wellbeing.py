"""Reviewer wellbeing: how much material each reviewer has looked at, for their lead.

Looking at abuse material harms the people who must do it (the reason
previews are blurred and grey, and video never plays by itself). A lead —
an administrator of the unit — sees per reviewer how many previews and
clear files they opened in the last day, week and month, and who is over
the weekly mark the hub is configured with, so work can be shared out and
breaks taken before it is too late. The counts come from the audit log,
which records every view already; nothing else is tracked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.views.decorators.http import require_GET

from cophub.audit.services import count_by_actor, record
from cophub.cases.console import console_view, render_console
from cophub.cases.permissions import ACTIONS
from cophub.orgs.models import Membership, Role
from cophub.orgs.permissions import unit_paths

VIEW_ACTIONS = ("evidence.view_preview", "evidence.view_clear")
PERIODS = (("day", timedelta(days=1)), ("week", timedelta(days=7)), ("month", timedelta(days=30)))
REVIEWER_ROLES = (Role.ADMIN, Role.HANDLER, Role.COUNSELLOR, Role.OBSERVER)


@dataclass
class ReviewerCounts:
    user: object
    units: list
    previews: dict  # period → count
    clear: dict
    over_mark: bool = False


def reviewers_under(paths: list[str]):
    """Members with a reviewing role in the units under these paths."""
    memberships = Membership.objects.filter(role__in=REVIEWER_ROLES).select_related("user", "unit")
    return [m for m in memberships if any(m.unit.path.startswith(p) for p in paths)]


def counts_for(lead) -> list[ReviewerCounts]:
    paths = unit_paths(lead, ACTIONS["staff.wellbeing"])
    if not paths:
        return []
    by_user: dict[int, list] = {}
    for membership in reviewers_under(paths):
        by_user.setdefault(membership.user_id, []).append(membership.unit)
    now = timezone.now()
    counts = {name: count_by_actor(VIEW_ACTIONS, now - span, by_user) for name, span in PERIODS}
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=by_user)}
    rows = []
    for user_id, units in by_user.items():
        previews = {name: counts[name].get(user_id, {}).get("evidence.view_preview", 0) for name, _ in PERIODS}
        clear = {name: counts[name].get(user_id, {}).get("evidence.view_clear", 0) for name, _ in PERIODS}
        mark = settings.COPHUB_WELLBEING_WEEKLY_MARK
        rows.append(ReviewerCounts(users[user_id], units, previews, clear, over_mark=previews["week"] + clear["week"] > mark))
    rows.sort(key=lambda r: (-(r.previews["week"] + r.clear["week"]), r.user.get_username()))
    return rows


@console_view
@require_GET
def wellbeing_view(request):
    if not unit_paths(request.user, ACTIONS["staff.wellbeing"]):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied
    rows = counts_for(request.user)
    record("staff.wellbeing_viewed", actor=request.user, request=request)
    return render_console(request, "cases/wellbeing.html", {"rows": rows, "mark": settings.COPHUB_WELLBEING_WEEKLY_MARK})
