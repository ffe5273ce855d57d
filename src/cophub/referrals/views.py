"""Console pages of referrals and takedown notices: the case page's panel, its actions, the list, the directory.

Mounted at /console/referrals/ (names in the `referrals` namespace) by
cophub/urls.py. The actions on a case answer like every case action: POST,
then back to the case page with a message; a refusal (a role that may not
refer, a form that does not validate, a service's ValueError) is a message,
never an error page. A case the user may not see is the console's 404.

The target directory is hub-wide, like the hash lists: only administrators
of a top unit and superusers reach it (services.may_manage_targets), anyone
else gets the console's 403 page. A new webhook channel's signing secret is
shown once, on the answer to the POST that made it, and never again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cophub.audit.services import record
from cophub.cases.console import console_view, form_errors, render_console

from . import services
from .forms import (CancelForm, ChannelForm, HandDeliveredForm, ListFilterForm, ReferForm, RespondForm, TakedownForm,
                    TargetForm)
from .models import Channel, DeliveryState, ReferralKind, ReferralState, Target

ROWS_PER_PAGE = 50
# A referral in these states is finished: nothing more is recorded on it.
FINISHED = (ReferralState.CLOSED, ReferralState.CANCELLED)


def _duration(delta) -> str:
    from cophub.cases.views import duration_text  # the console's words for "2 days 3 hours"

    return duration_text(delta)


def _when(moment) -> str:
    return date_format(timezone.localtime(moment), "d/m/Y H:i")


# --- One referral as the pages show it ---------------------------------------------------------------


@dataclass
class ReferralRow:
    referral: object
    delivery: object = None  # the latest send
    clock: str = ""  # the takedown's 24-hour legal clock, in words
    clock_overdue: bool = False
    removal: str = ""  # time to removal, in words
    letter_url: str = ""
    can_respond: bool = False
    can_hand: bool = False
    can_retry: bool = False
    can_cancel: bool = False
    forms: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.referral.state == ReferralState.FAILED


def legal_clock(referral, now) -> tuple[str, bool]:
    """("deadline 02/12/2026 14:00 — in 5 hours", overdue) for a takedown notice; ("", False) otherwise."""
    if referral.kind != ReferralKind.TAKEDOWN:
        return "", False
    deadline = services.legal_deadline(referral)
    if deadline is None:
        return _("the 24 hours start when the notice is delivered"), False
    values = {"date": _when(deadline)}
    if referral.removed_at is not None:
        values["time"] = _duration(services.time_to_removal(referral))
        return _("deadline %(date)s — removed after %(time)s") % values, referral.removed_at > deadline
    if referral.state in FINISHED:
        return _("deadline %(date)s") % values, False
    if now < deadline:
        values["time"] = _duration(deadline - now)
        return _("deadline %(date)s — in %(time)s") % values, False
    values["time"] = _duration(now - deadline)
    return _("deadline %(date)s — passed %(time)s ago") % values, True


def _row(referral, now, may_act: bool, *, with_forms: bool = False) -> ReferralRow:
    deliveries = list(referral.deliveries.all())
    row = ReferralRow(referral=referral, delivery=deliveries[-1] if deliveries else None,
                      letter_url=reverse("referrals:letter", args=[referral.public_id]))
    row.clock, row.clock_overdue = legal_clock(referral, now)
    removal = services.time_to_removal(referral)
    if removal is not None:
        row.removal = _duration(removal)
    if may_act:
        open_ = referral.state not in FINISHED
        row.can_respond = open_
        row.can_cancel = open_
        row.can_hand = referral.state == ReferralState.BY_HAND
        row.can_retry = open_ and any(d.state == DeliveryState.DEAD for d in deliveries)
    if with_forms:
        suffix = f"_{referral.pk}_%s"
        if row.can_respond:
            row.forms["respond"] = RespondForm(auto_id="respond" + suffix)
        if row.can_hand:
            row.forms["hand"] = HandDeliveredForm(auto_id="hand" + suffix)
        if row.can_cancel:
            row.forms["cancel"] = CancelForm(auto_id="cancel" + suffix)
    return row


def case_urls(case) -> list[str]:
    """The links named in the case's reports: the only addresses a takedown notice may be about."""
    from cophub.cases.services import submissions_of
    from cophub.detection.services import urls_for

    return urls_for([s.pk for s in submissions_of(case)])


def case_panel(request, case) -> dict:
    """What the case page's referral panel shows (cases.views.case_view puts it in the context)."""
    from cophub.cases.models import State

    user = request.user
    now = timezone.now()
    may = services.may_refer(user, case)
    panel = {
        "rows": [_row(referral, now, may, with_forms=True) for referral in services.referrals_of(case)],
        "may_refer": may,
        "forms": {},
        "no_channels": False,
        "directory_url": reverse("referrals:targets") if services.may_manage_targets(user) else "",
    }
    if may and case.state != State.DUPLICATE:
        if services.usable_channels(case).exists():
            panel["forms"]["refer"] = ReferForm(case, auto_id="refer_%s")
            urls = case_urls(case)
            if urls:
                panel["forms"]["takedown"] = TakedownForm(case, urls, auto_id="takedown_%s")
        else:
            panel["no_channels"] = True
    return panel


# --- Actions on a case and on a referral: POST, then the case page with a message ------------------------


def _act(request, case, build_form, perform, back=None):
    back = back or redirect("console:case", pk=case.pk)
    if not services.may_refer(request.user, case):
        messages.error(request, _("Your account is not allowed to do this on this case."))
        return back
    form = build_form()
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return back
    try:
        done = perform(form.cleaned_data)
    except PermissionDenied:
        messages.error(request, _("Your account is not allowed to do this on this case."))
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return back


def _duplicate_refused(request, case):
    from cophub.cases.models import State

    if case.state == State.DUPLICATE:
        messages.error(request, _("This case is a duplicate: refer the case it was merged into."))
        return redirect("console:case", pk=case.pk)
    return None


@console_view
@require_POST
def refer_view(request, pk: int):
    from cophub.cases.services import get_case

    case = get_case(request.user, pk)
    refused = _duplicate_refused(request, case)
    if refused:
        return refused

    def perform(data):
        referral = services.refer(case, data["channel"], request.user, data["note"])
        if referral.state == ReferralState.BY_HAND:
            return _("The letter to %(target)s is ready: print it, deliver it by hand, then record the delivery.") % {
                "target": referral.target.name}
        return _("The case is referred to %(target)s; the letter is being delivered.") % {"target": referral.target.name}

    return _act(request, case, lambda: ReferForm(case, request.POST), perform)


@console_view
@require_POST
def takedown_view(request, pk: int):
    from cophub.cases.services import get_case

    case = get_case(request.user, pk)
    refused = _duplicate_refused(request, case)
    if refused:
        return refused

    def perform(data):
        referral = services.send_takedown(case, data["url"], data["channel"], request.user, data["note"])
        return _("The takedown notice to %(target)s is on its way; the hub checks the link until the content is gone.") % {
            "target": referral.target.name}

    return _act(request, case, lambda: TakedownForm(case, case_urls(case), request.POST), perform)


def _referral_action(request, public_id: str, build_form, perform, *, allowed=lambda referral: True, back=None):
    referral = services.get_referral(request.user, public_id)  # 404 outside the user's reach
    back = back or redirect("console:case", pk=referral.case_id)
    if services.may_refer(request.user, referral.case) and not allowed(referral):
        messages.error(request, _("This is not possible in the referral's current state (it may have just changed)."))
        return back
    return _act(request, referral.case, build_form, lambda data: perform(referral, data), back=back)


@console_view
@require_POST
def respond_view(request, public_id: str):
    labels = {"acknowledged": _("Recorded: %(target)s acknowledged the referral."),
              "answered": _("Recorded: %(target)s answered the referral."),
              "closed": _("The referral to %(target)s is closed.")}

    def perform(referral, data):
        services.record_response(referral, data["what"], request.user, data["text"], data["reference"])
        return labels[data["what"]] % {"target": referral.target.name}

    return _referral_action(request, public_id, lambda: RespondForm(request.POST), perform,
                            allowed=lambda referral: referral.state not in FINISHED)


@console_view
@require_POST
def hand_delivered_view(request, public_id: str):
    def perform(referral, data):
        services.record_hand_delivery(referral, request.user, data["text"])
        return _("Recorded: the letter to %(target)s was delivered by hand.") % {"target": referral.target.name}

    return _referral_action(request, public_id, lambda: HandDeliveredForm(request.POST), perform)


@console_view
@require_POST
def retry_view(request, public_id: str):
    back = None
    if request.POST.get("back") == "list":
        state = request.POST.get("state", "")
        back = redirect(reverse("referrals:list") + (f"?state={state}" if state in ReferralState.values else ""))

    def perform(referral, data):
        if not services.retry_dead(referral, request.user):
            raise ValueError(_("Nothing to send again: no delivery of this referral has failed."))
        return _("The referral to %(target)s is back in the queue and will be sent again.") % {"target": referral.target.name}

    return _referral_action(request, public_id, lambda: forms.Form({}), perform, back=back)


@console_view
@require_POST
def cancel_view(request, public_id: str):
    def perform(referral, data):
        services.cancel(referral, request.user, data["text"])
        return _("The referral to %(target)s is cancelled; nothing more is sent.") % {"target": referral.target.name}

    return _referral_action(request, public_id, lambda: CancelForm(request.POST), perform,
                            allowed=lambda referral: referral.state not in FINISHED)


# --- The letter ----------------------------------------------------------------------------------------


@console_view
@require_GET
def letter_view(request, public_id: str):
    """The letter as sent, rebuilt from the snapshot; every download is in the audit log."""
    referral = services.get_referral(request.user, public_id)
    pdf = services.letter_pdf(referral)
    record("referral.letter_viewed", actor=request.user, obj=referral, unit=referral.case.unit, request=request,
           case=referral.case.reference, number=referral.number)
    response = HttpResponse(pdf, content_type="application/pdf")
    name = (referral.number or referral.public_id).replace("/", "-")
    response["Content-Disposition"] = f'attachment; filename="{name}.pdf"'
    response["Cache-Control"] = "no-store, private"
    return response


# --- The referrals page ------------------------------------------------------------------------------------


@console_view
@require_GET
def list_view(request):
    filters = ListFilterForm(request.GET or None)
    state = filters.chosen_state()
    referrals = services.visible_referrals(request.user, state).select_related("case__unit").prefetch_related("deliveries")
    page = Paginator(referrals, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    may: dict[int, bool] = {}
    rows = []
    for referral in page:
        unit_id = referral.case.unit_id
        if unit_id not in may:
            may[unit_id] = services.may_refer(request.user, referral.case)
        rows.append(_row(referral, now, may[unit_id]))
    return render_console(request, "referrals/list.html", {
        "filters": filters, "state": state, "page": page, "rows": rows,
        "failed": services.failed_count(request.user),
    })


# --- The target directory ------------------------------------------------------------------------------------


def _require_manager(user) -> None:
    if not services.may_manage_targets(user):
        raise PermissionDenied


@console_view
@require_GET
def targets_view(request):
    _require_manager(request.user)
    targets = Target.objects.prefetch_related("channels__upstream").order_by("-active", "name")
    return render_console(request, "referrals/targets.html", {"targets": targets})


@console_view
@require_http_methods(["GET", "POST"])
def target_new_view(request):
    _require_manager(request.user)
    form = TargetForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        target = services.save_target(request.user, **form.cleaned_data)
        messages.success(request, _("%(name)s is in the directory. Add the channels it is reached by below.") % {"name": target.name})
        return redirect("referrals:target_edit", pk=target.pk)
    return render_console(request, "referrals/target_form.html", {"form": form})


def _target_page(request, target: Target, form=None, channel_form=None):
    context = {"target": target, "form": form or TargetForm(instance=target), "channel_form": channel_form or ChannelForm(),
               "channels": target.channels.select_related("upstream").order_by("position", "pk")}
    return render_console(request, "referrals/target_form.html", context)


@console_view
@require_http_methods(["GET", "POST"])
def target_edit_view(request, pk: int):
    _require_manager(request.user)
    target = get_object_or_404(Target, pk=pk)
    if request.method == "GET":
        return _target_page(request, target)
    form = TargetForm(request.POST, instance=Target.objects.get(pk=target.pk))
    if not form.is_valid():
        messages.error(request, _("Nothing was changed: please correct the form below."))
        return _target_page(request, target, form=form)
    services.save_target(request.user, target=target, **form.cleaned_data)
    messages.success(request, _("Saved."))
    return redirect("referrals:target_edit", pk=target.pk)


@console_view
@require_POST
@never_cache
def channel_add_view(request, pk: int):
    _require_manager(request.user)
    target = get_object_or_404(Target, pk=pk)
    back = redirect("referrals:target_edit", pk=target.pk)
    form = ChannelForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return back
    data = form.cleaned_data
    try:
        channel, secret = services.add_channel(target, data["kind"], request.user, address=data["address"], upstream=data["upstream"])
    except ValueError as error:
        messages.error(request, str(error))
        return back
    if secret is None:
        messages.success(request, _("The channel is added: %(channel)s.") % {"channel": str(channel)})
        return back
    # The only page that ever shows the secret: not cached, not stored, not shown again.
    response = render_console(request, "referrals/secret_shown.html", {"target": target, "channel": channel, "secret": secret})
    response["Cache-Control"] = "no-store, private"
    response["Pragma"] = "no-cache"
    return response


@console_view
@require_POST
def channel_toggle_view(request, pk: int):
    _require_manager(request.user)
    channel = get_object_or_404(Channel.objects.select_related("target"), pk=pk)
    active = request.POST.get("active") == "1"
    if channel.active == active:
        messages.info(request, _("Nothing was changed."))
    else:
        services.set_channel_active(channel, active, request.user)
        if active:
            messages.success(request, _("The channel is in use again."))
        else:
            messages.success(request, _("The channel is switched off: no new referral is sent through it."))
    return redirect("referrals:target_edit", pk=channel.target_id)

