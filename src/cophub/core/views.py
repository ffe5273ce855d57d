from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from .services import database_ok, worker_ok


@require_GET
def healthz(request):
    checks = {"database": database_ok()}
    checks["worker"] = checks["database"] and worker_ok()
    status = 200 if all(checks.values()) else 503
    response = JsonResponse({k: "ok" if v else "down" for k, v in checks.items()}, status=status)
    # A 503 here is a state report (e.g. while the worker starts), not a
    # server error: keep it out of django.request's error log.
    response._has_been_logged = True
    return response


@require_GET
def switch_language(request, code: str):
    """A plain link switches language: works with no JavaScript at all."""
    target = request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        target = "/"
    response = HttpResponseRedirect(urlsplit(target).path + (f"?{urlsplit(target).query}" if urlsplit(target).query else ""))
    if code in dict(settings.LANGUAGES):
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, code, max_age=settings.LANGUAGE_COOKIE_AGE, samesite="Lax", httponly=True)
    return response


def rate_limited(request, exception=None):
    return render(request, "core/error.html", {"title": _("Please wait a moment"), "message": _("You have sent many requests in a short time. Please wait a few minutes and try again. If you are in danger now, call 111 or 113.")}, status=429)


def request_too_large(request):
    limit = settings.COPHUB_MAX_FILE_BYTES // (1024 * 1024)
    return render(request, "core/error.html", {"title": _("The files are too large"), "message": _("What you sent is too large. Each file can be at most %(limit)s MB. Please go back and send smaller files, or send the report without files.") % {"limit": limit}}, status=413)


def bad_request(request, exception=None):
    return render(request, "core/error.html", {"title": _("Something was wrong with that request"), "message": _("We could not read what was sent. Please go back and try again.")}, status=400)


def csrf_failure(request, reason=""):
    return render(request, "core/error.html", {"title": _("The page had expired"), "message": _("For your safety the form has expired. Please go back, reload the page and send it again.")}, status=403)


def not_found(request, exception=None):
    return render(request, "core/error.html", {"title": _("Page not found"), "message": _("We could not find this page.")}, status=404)


def server_error(request):
    return render(request, "core/error.html", {"title": _("Something went wrong"), "message": _("Something went wrong on our side. What you sent before this was kept. Please try again in a moment; if you are in danger now, call 111 or 113.")}, status=500)


def permission_denied(request, exception=None):
    return render(request, "core/error.html", {"title": _("Not allowed"), "message": _("Your account is not allowed to do this.")}, status=403)
