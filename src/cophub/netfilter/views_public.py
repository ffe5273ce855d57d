"""The public "this is a mistake" page, linked from the filter's block page.

GET /netfilter/mistake/?name=<blocked name>&rule=<rule>&group=<group id>
shows a short form (an optional message); POST files a MistakeReport for
the school's IT administrator (console: Network filter → Mistake reports)
and thanks the person. No account, no JavaScript; rate-limited per address
like the other public forms. A second report of the same name for the same
group while one is still open is not filed again.
"""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django_ratelimit.decorators import ratelimit

from .forms import MistakeForm
from .models import MistakeReport

RATE_GROUP = "netfilter.mistake"


def mistake_rate(group, request) -> str:
    # The public forms' rate (read per request, so a changed setting applies at once).
    return settings.COPHUB_RATE_SUBMIT


@ratelimit(group=RATE_GROUP, key="ip", rate=mistake_rate, method="POST")
@require_http_methods(["GET", "POST"])
def mistake(request):
    if request.method == "POST":
        form = MistakeForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            already = MistakeReport.objects.filter(name=data["name"], group=data["group"], status=MistakeReport.Status.OPEN).exists()
            if not already:
                MistakeReport.objects.create(name=data["name"], rule=data["rule"][:300], group=data["group"], message=data["message"].strip())
            return redirect("netfilter-mistake-sent")
    else:
        initial = {key: request.GET.get(key, "")[:300] for key in ("name", "rule")}
        group = request.GET.get("group", "")
        initial["group"] = group if group.isdigit() else None
        form = MistakeForm(initial=initial)
    return render(request, "netfilter/mistake.html", {"form": form})


@require_GET
def mistake_sent(request):
    return render(request, "netfilter/mistake_sent.html")
