"""The Django admin behind the console's own log-in and two-factor step.

The admin can edit memberships, passwords and two-factor devices, so it must
not be a way around either: its log-in page hands over to the console's
(which is rate limited), and an account that needs the second factor uses
the admin only from a verified session. Otherwise a password alone would let
an administrator delete their device and enrol a new phone.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

from cophub.cases import two_factor
from cophub.cases.console import console_error, two_factor_step_url


class HubAdminSite(admin.AdminSite):
    def has_permission(self, request):
        return super().has_permission(request) and two_factor.passed(request)

    def login(self, request, extra_context=None):
        wanted = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index", current_app=self.name)
        if not request.user.is_authenticated:
            return redirect_to_login(wanted, reverse("console:login"))
        if not two_factor.passed(request):
            return redirect_to_login(wanted, two_factor_step_url(request))
        # Logged in and verified, yet not admin staff: answering with the log-in form would loop.
        return console_error(request, 403)
