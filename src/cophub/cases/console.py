"""What every console view shares: a login (with the two-factor step when the
account needs it), the console's look, and its own error pages.

Console errors are answered inside the console (with its navigation) rather
than by the public error pages, so a handler who follows a stale link lands
somewhere they can carry on from.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from cophub.hashbanks import permissions as hashbank_permissions
from cophub.orgs.permissions import unit_paths, units_for
from cophub.providers import permissions as provider_permissions

from . import permissions, two_factor


def may_enter_reports(user) -> bool:
    return units_for(user, permissions.ACTIONS["submission.enter"]).exists()


def render_console(request, template: str, context: dict | None = None, status: int = 200):
    context = dict(context or {})
    if request.user.is_authenticated:
        context.setdefault("nav_can_enter", may_enter_reports(request.user))
        context.setdefault("nav_can_manage_providers", provider_permissions.may_manage_any(request.user))
        context.setdefault("nav_can_manage_hash_lists", hashbank_permissions.may_manage(request.user))
        context.setdefault("nav_can_see_wellbeing", bool(unit_paths(request.user, permissions.ACTIONS["staff.wellbeing"])))
    return render(request, template, context, status=status)


def form_errors(form) -> str:
    """A refused form's errors as one line, for the message on the page the action returns to."""
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def console_error(request, status: int):
    titles = {
        403: (_("Not allowed"), _("Your account is not allowed to do this. If you think it should be, ask your unit's administrator.")),
        404: (_("Not found"), _("There is no such case or file, or your account cannot see it.")),
        429: (pgettext("console", "Please wait a moment"), _("There have been too many attempts from this address. Please wait a few minutes and try again.")),
    }
    title, message = titles[status]
    return render_console(request, "cases/error.html", {"title": title, "message": message}, status=status)


def _console_errors(view):
    """Answer 404 and 403 with the console's own page."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return console_error(request, 404)
        except PermissionDenied:
            return console_error(request, 403)

    return wrapped


def two_factor_step_url(request) -> str:
    """Where a session that still owes its code goes: the code, or enrolment when there is no device yet."""
    name = "console:otp" if two_factor.confirmed_device(request.user) else "console:otp_enrol"
    return reverse(name)


def _two_factor_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not two_factor.passed(request):
            # Same shape as the log-in redirect, so the page asked for is reached afterwards.
            return redirect_to_login(request.get_full_path(), two_factor_step_url(request))
        return view(request, *args, **kwargs)

    return wrapped


def console_view(view):
    """Require a login and, for staff who can see evidence, the two-factor step."""
    return login_required(_two_factor_required(_console_errors(view)))


def console_login_step(view):
    """The two-factor pages themselves: a password login is enough to reach them."""
    return login_required(_console_errors(view))
