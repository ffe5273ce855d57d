"""The console page of a user's own alerts, and marking them read.

Only the user's own alerts are ever shown or changed: another user's
alert answers 404, like a case the user may not see.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from cophub.cases.console import console_view, render_console

from . import services
from .models import Alert

ALERTS_PER_PAGE = 50


@dataclass
class AlertRow:
    alert: Alert
    title: str
    body: str

    @property
    def link(self) -> str:
        """The alert's own link, when it is a path on this site."""
        link = self.alert.link
        return link if link.startswith("/") and not link.startswith("//") else ""


@console_view
@require_GET
def alerts_view(request):
    page = Paginator(services.alerts_for(request.user), ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [AlertRow(alert, *services.render(alert)) for alert in page]
    return render_console(request, "alerts/alerts.html", {"page": page, "rows": rows})


@console_view
@require_POST
def mark_read_view(request):
    if "all" in request.POST:
        count = services.mark_read(request.user)
        if count:
            messages.success(request, _("All alerts are marked read."))
    else:
        try:
            services.mark_read(request.user, int(request.POST.get("alert", "")))
        except (ValueError, Alert.DoesNotExist):
            raise Http404 from None
    page = request.POST.get("page", "")
    return redirect(reverse("console:alerts") + (f"?page={page}" if page.isdigit() else ""))
