"""What every console view shares: a login, the console's look, and its own error pages.

Console errors are answered inside the console (with its navigation) rather
than by the public error pages, so a handler who follows a stale link lands
somewhere they can carry on from.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from cophub.orgs.permissions import units_for

from . import permissions


def may_enter_reports(user) -> bool:
    return units_for(user, permissions.ACTIONS["submission.enter"]).exists()


def render_console(request, template: str, context: dict | None = None, status: int = 200):
    context = dict(context or {})
    if request.user.is_authenticated:
        context.setdefault("nav_can_enter", may_enter_reports(request.user))
    return render(request, template, context, status=status)


def console_error(request, status: int):
    titles = {
        403: (_("Not allowed"), _("Your account is not allowed to do this. If you think it should be, ask your unit's administrator.")),
        404: (_("Not found"), _("There is no such case or file, or your account cannot see it.")),
        429: (pgettext("console", "Please wait a moment"), _("There have been too many attempts from this address. Please wait a few minutes and try again.")),
    }
    title, message = titles[status]
    return render_console(request, "cases/error.html", {"title": title, "message": message}, status=status)


def console_view(view):
    """Require a login; answer 404 and 403 with the console's own page."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return console_error(request, 404)
        except PermissionDenied:
            return console_error(request, 403)

    return login_required(wrapped)
