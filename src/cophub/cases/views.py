"""The staff console: login, the case queue, the case page and its actions, staff entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import LoginView, LogoutView
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import redirect, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from cophub.audit.services import record
from cophub.core.categories import label as category_label
from cophub.evidence import permissions as evidence_permissions
from cophub.evidence.services import discard_uploads
from cophub.detection import services as detection
from cophub.federation.services import forwardings_of
from cophub.hashbanks import services as hashbanks
from cophub.intake import services as intake_services
from cophub.intake.models import Channel
from cophub.referrals import views as referral_views

from . import permissions, services, two_factor, workflow
from .console import console_error, console_login_step, console_view, form_errors, render_console
from .forms import (AssignForm, AttachForm, ClassifyForm, EntryForm, MergeForm, MessageForm, NoteForm, OTPTokenForm,
                    QueueFilterForm, TransitionForm, entry_units)
from .models import EventKind, LinkReason, Priority, State

QUEUE_PAGE_SIZE = 50

# --- Login ---------------------------------------------------------------------------------


def _login_rate(group, request) -> str:
    # Read at request time so a deployment (or a test) can change it.
    return settings.COPHUB_RATE_LOGIN


@ratelimit(key="ip", rate=_login_rate, method="POST", block=False)
def login_view(request):
    if getattr(request, "limited", False):
        return console_error(request, 429)
    return LoginView.as_view(template_name="cases/login.html", redirect_authenticated_user=True)(request)


logout_view = LogoutView.as_view()


# --- The two-factor step (staff who can see evidence) --------------------------------------------

OTP_RATE_GROUP = "console.otp"


def _otp_rate(group, request) -> str:
    return settings.COPHUB_RATE_OTP


def _otp_rate_limited(view):
    """Count code attempts per account and per client address, across the code and enrolment pages.

    Per account, so one stolen password cannot be tried from many addresses;
    per address, so one machine cannot walk through many accounts.
    django-otp's own back-off on the device comes on top.
    """
    view = ratelimit(group=OTP_RATE_GROUP, key="user", rate=_otp_rate, method="POST", block=False)(view)
    return ratelimit(group=OTP_RATE_GROUP, key="ip", rate=_otp_rate, method="POST", block=False)(view)


def _next_url(request) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return wanted
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _to_step(request, name: str):
    """Move between the code and enrolment pages, keeping where the user was going."""
    wanted = request.GET.get("next", "")
    return redirect(f"{reverse(name)}?{urlencode({'next': wanted})}" if wanted else reverse(name))


OTP_REFUSALS = {
    two_factor.WRONG_CODE: gettext_lazy("That code is not right. Type the newest code the app shows; if it keeps failing, "
                                        "check that the phone sets its clock automatically."),
    two_factor.THROTTLED: gettext_lazy("Too many wrong codes in a row. Wait a few seconds (the wait doubles after each "
                                       "wrong code), then type the newest code."),
}


def _code_step(request, device, template: str, context: dict):
    """The form both pages share: show it, or check the posted code and go on to the page asked for."""
    context = {**context, "next": _next_url(request), "two_factor_step": True}
    if request.method == "GET":
        return render_console(request, template, {**context, "form": OTPTokenForm()})
    if getattr(request, "limited", False):
        refusal = _("Too many codes were tried. Please wait a few minutes and try again.")
        return render_console(request, template, {**context, "form": OTPTokenForm(), "refusal": refusal}, status=429)
    form = OTPTokenForm(request.POST)
    if form.is_valid():
        outcome = two_factor.check_code(request, device, form.cleaned_data["otp_token"])
        if outcome == two_factor.VERIFIED:
            return redirect(context["next"])
        form.add_error("otp_token", OTP_REFUSALS[outcome])
    return render_console(request, template, {**context, "form": form})


@console_login_step
@require_http_methods(["GET", "POST"])
@_otp_rate_limited
def otp_view(request):
    """After the password: the code from the authenticator app."""
    if two_factor.passed(request):
        return redirect(_next_url(request))
    device = two_factor.confirmed_device(request.user)
    if device is None:
        return _to_step(request, "console:otp_enrol")
    return _code_step(request, device, "cases/otp.html", {})


@console_login_step
@require_http_methods(["GET", "POST"])
@_otp_rate_limited
def otp_enrol_view(request):
    """First log-in of an account that needs the second factor: set up the app, confirm with a first code."""
    if two_factor.passed(request):
        return redirect(_next_url(request))
    if two_factor.confirmed_device(request.user):
        # Enrolment closes once a device is confirmed; a lost phone is reset by an administrator,
        # otherwise anyone holding the password alone could enrol a phone of their own.
        return _to_step(request, "console:otp")
    device = two_factor.pending_device(request.user)
    secret = two_factor.base32_secret(device)
    context = {"qr_code": two_factor.qr_data_uri(device), "secret": two_factor.grouped(secret)}
    return _code_step(request, device, "cases/otp_enrol.html", context)


# --- The queue -------------------------------------------------------------------------------


def sla_overdue(case, now) -> bool:
    return bool(case.sla_due_at and case.state in workflow.OPEN and case.sla_due_at < now)


def sla_running(case) -> bool:
    return bool(case.sla_due_at and case.state in workflow.OPEN)


def duration_text(delta) -> str:
    """"2 days 3 hours", "5 hours 10 minutes", "4 minutes": the two largest units.

    Written here rather than with Django's timesince, whose Vietnamese
    catalog lacks these words.
    """
    minutes = max(1, int(abs(delta.total_seconds()) // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if days:
        parts.append(ngettext("%(count)d day", "%(count)d days", days) % {"count": days})
    if hours:
        parts.append(ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours})
    if minutes and not days:
        parts.append(ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes})
    return " ".join(parts[:2])


def sla_text(case, now) -> str:
    """How long until the response is due, or how long it is overdue ("" when the clock is stopped)."""
    if not sla_running(case):
        return ""
    return duration_text(case.sla_due_at - now)


@dataclass
class QueueRow:
    case: object
    overdue: bool
    due_text: str
    category: str


@console_view
@require_GET
def queue_view(request):
    form = QueueFilterForm(request.user, request.GET or None)
    cases = services.queue(request.user, form.to_filter())
    page = Paginator(cases, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [QueueRow(case, sla_overdue(case, now), sla_text(case, now), category_label(case.category)) for case in page]
    return render_console(request, "cases/queue.html", {"form": form, "page": page, "rows": rows, "now": now})


# --- The case page ------------------------------------------------------------------------------

KIND_ICONS = {"image": "🖼", "video": "🎞", "audio": "🔊", "document": "📄"}


@dataclass
class EvidenceItem:
    """One file as the case page shows it: never the clear file inline."""

    blob: object
    name: str
    preview_url: str = ""
    clear_url: str = ""
    icon: str = ""
    listed_since: object = None  # on the hub's hash list since then
    confirm_url: str = ""
    withdraw_url: str = ""
    # Known material: the hub-list match it inherited its verdict from. Never shown again.
    verdict: object = None

    @property
    def preview_state(self) -> str:
        return self.blob.preview_status


@dataclass
class SubmissionView:
    submission: object
    files: list = field(default_factory=list)
    addenda: list = field(default_factory=list)  # (addendum, [EvidenceItem])
    channel: str = ""
    from_case: object = None  # the duplicate it came from, when merged


def _evidence_item(request, case, blob, name: str, verdicts: dict) -> EvidenceItem:
    item = EvidenceItem(blob=blob, name=name, icon=KIND_ICONS.get(blob.kind, "📄"), verdict=verdicts.get(blob.pk))
    item.listed_since = hashbanks.listed_since(blob.sha256)
    if item.verdict is not None:
        # Assessed once, never shown to anyone again (INHOPE ICCAM's rule): no preview, no clear view.
        if permissions.can(request.user, "evidence.confirm", case.unit) and item.listed_since:
            item.withdraw_url = reverse("console:evidence_withdraw", args=[case.pk, blob.pk])
        return item
    if evidence_permissions.can(request.user, "evidence.view_preview", case.unit) and blob.kind == "image":
        item.preview_url = reverse("console:evidence_preview", args=[case.pk, blob.pk])
    if evidence_permissions.can(request.user, "evidence.view_clear", case.unit):
        item.clear_url = reverse("console:evidence_clear", args=[case.pk, blob.pk])
    if permissions.can(request.user, "evidence.confirm", case.unit):
        item.confirm_url = reverse("console:evidence_confirm", args=[case.pk, blob.pk])
        item.withdraw_url = reverse("console:evidence_withdraw", args=[case.pk, blob.pk])
    return item


def _submission_views(request, case, submissions, verdicts: dict) -> list[SubmissionView]:
    views = []
    for submission in submissions:
        link_case = submission.case_link.case
        view = SubmissionView(
            submission=submission,
            channel=Channel(submission.channel).label if submission.channel in Channel.values else submission.channel,
            from_case=link_case if link_case.pk != case.pk else None,
        )
        addendum_files: dict[int, list] = {}
        for upload in submission.files.all():
            item = _evidence_item(request, case, upload.blob, upload.original_name, verdicts)
            if upload.addendum_id:
                addendum_files.setdefault(upload.addendum_id, []).append(item)
            else:
                view.files.append(item)
        view.addenda = [(addendum, addendum_files.get(addendum.pk, [])) for addendum in submission.addenda.all()]
        views.append(view)
    return views


BANK_KIND_LABELS = {"hub": gettext_lazy("Confirmed (the hub's list)"), "imported": gettext_lazy("Lead (imported list)"),
                    "allow": gettext_lazy("Known harmless (allow list)")}
TEXT_CATEGORY_LABELS = {"grooming": gettext_lazy("Grooming"), "meeting": gettext_lazy("Meeting in person"),
                        "sextortion": gettext_lazy("Sextortion"), "self_harm": gettext_lazy("Self-harm or suicide"),
                        "bullying": gettext_lazy("Bullying"), "private_info": gettext_lazy("Private information"),
                        "secrecy": gettext_lazy("Secrecy")}


def detection_panel(case, submissions) -> dict:
    """What the hub found by itself: bank matches, words of concern, links, related cases."""
    ids = [s.pk for s in submissions]
    names = {f.blob_id: f.original_name for s in submissions for f in s.files.all()}
    matches = [{"match": m, "kind": BANK_KIND_LABELS.get(m.bank_kind, m.bank_kind), "file": names.get(m.blob_id, "")}
               for m in detection.matches_for(ids)]
    words = [{"finding": f, "category": TEXT_CATEGORY_LABELS.get(f.category, f.category)} for f in detection.text_findings_for(ids)]
    return {"matches": matches, "words": words, "links": services.linked_cases(case), "urls": detection.urls_for(ids)}


def _state_label(code: str) -> str:
    return State(code).label if code in State.values else code


def _priority_label(code: str) -> str:
    return Priority(code).label if code in Priority.values else code


UPSTREAM_STEPS = {"received": gettext_lazy("received"), "working": gettext_lazy("being worked on"),
                  "referred": gettext_lazy("referred"), "done": gettext_lazy("done"), "withdrawn": gettext_lazy("withdrawn")}


def describe_event(event) -> str:
    """One line saying what happened, in the reader's language."""
    data = event.data or {}
    kind = event.kind
    if kind == EventKind.OPENED:
        channel = data.get("channel", "")
        channel = Channel(channel).label if channel in Channel.values else channel
        return _("Case opened from report %(code)s (%(channel)s), priority %(priority)s.") % {
            "code": data.get("submission", ""), "channel": channel, "priority": data.get("priority", "")}
    if kind == EventKind.STATE:
        return _("State changed from “%(from)s” to “%(to)s”.") % {"from": _state_label(data.get("from", "")), "to": _state_label(data.get("to", ""))}
    if kind == EventKind.ASSIGNED:
        if data.get("assignee"):
            return _("Assigned to %(name)s.") % {"name": data["assignee"]}
        return _("Unassigned.")
    if kind == EventKind.PRIORITY:
        return _("Priority changed from %(from)s to %(to)s.") % {"from": _priority_label(data.get("from", "")), "to": _priority_label(data.get("to", ""))}
    if kind == EventKind.CATEGORY:
        return _("Category changed from “%(from)s” to “%(to)s”.") % {"from": category_label(data.get("from", "")), "to": category_label(data.get("to", ""))}
    if kind == EventKind.MERGED:
        if data.get("into"):
            return _("Marked as a duplicate of case %(reference)s.") % {"reference": data["into"]}
        return _("Case %(reference)s was merged into this one as a duplicate.") % {"reference": data.get("absorbed", "")}
    if kind == EventKind.ADDENDUM:
        return _("The reporter added information (%(count)s file(s)).") % {"count": data.get("files", 0)}
    if kind == EventKind.EVIDENCE:
        if data.get("hash_list") == "added":
            return _("A file was confirmed as illegal material and added to the hub's hash list.")
        if data.get("hash_list") == "removed":
            return _("A file was withdrawn from the hub's hash list.")
        if data.get("url_list") == "added":
            return _("A link was confirmed as harmful and added to the hub's list of addresses: %(url)s") % {"url": data.get("url", "")}
        if data.get("url_list") == "removed":
            return _("A link was withdrawn from the hub's list of addresses: %(url)s") % {"url": data.get("url", "")}
        return _("Staff attached a file.")
    if kind == EventKind.UPSTREAM:
        if data.get("forwarded"):
            return _("Forwarded to the upstream hub %(name)s.") % {"name": data.get("upstream", "")}
        step = data.get("step", "")
        return _("The upstream hub %(name)s reports: %(step)s.") % {"name": data.get("upstream", ""), "step": UPSTREAM_STEPS.get(step, step)}
    if kind == EventKind.TRIAGE:
        return _describe_triage(data)
    if kind == EventKind.LINKED:
        reason = LinkReason(data["reason"]).label if data.get("reason") in LinkReason.values else data.get("reason", "")
        return _("Linked to case %(reference)s: %(reason)s.") % {"reference": data.get("reference", ""), "reason": reason}
    if kind == EventKind.REFERRAL:
        from cophub.referrals.services import describe_event as describe_referral

        return describe_referral(data)
    if kind == EventKind.NOTE:
        return _("Internal note")
    if kind == EventKind.MESSAGE:
        return _("Message to the reporter")
    return str(EventKind(kind).label) if kind in EventKind.values else kind


def _describe_triage(data: dict) -> str:
    from cophub.triage.rules import reason_label

    parts = []
    if data.get("to"):
        parts.append(_("priority %(from)s → %(to)s") % {"from": data.get("from", ""), "to": data["to"]})
    if data.get("category"):
        parts.append(_("category “%(to)s”") % {"to": category_label(data["category"][1])})
    if data.get("handed_to"):
        parts.append(_("handed to %(unit)s") % {"unit": data["handed_to"][1]})
    reasons = "; ".join(reason_label(code) for code in data.get("reasons", []))
    if not parts:
        return _("Automatic triage: %(reasons)s.") % {"reasons": reasons or _("nothing found")}
    return _("Automatic triage: %(changes)s, because %(reasons)s.") % {"changes": ", ".join(parts), "reasons": reasons}


@dataclass
class TimelineEntry:
    event: object
    summary: str
    css: str


TIMELINE_CSS = {EventKind.NOTE: "note", EventKind.MESSAGE: "message", EventKind.STATE: "state", EventKind.ADDENDUM: "addendum"}


def _timeline(case) -> list[TimelineEntry]:
    return [TimelineEntry(event, describe_event(event), TIMELINE_CSS.get(event.kind, "")) for event in services.timeline(case)]


def _allowed(user, case) -> dict[str, bool]:
    can = {action.split(".")[1]: permissions.can(user, action, case.unit) for action in permissions.ACTIONS if action.startswith("case.")}
    can["attach"] = evidence_permissions.can(user, "evidence.attach", case.unit)
    can["preview"] = evidence_permissions.can(user, "evidence.view_preview", case.unit)
    can["view_clear"] = evidence_permissions.can(user, "evidence.view_clear", case.unit)
    can["confirm"] = permissions.can(user, "evidence.confirm", case.unit)
    return can


def _case_forms(request, case, can: dict) -> dict:
    forms = {}
    if case.state == State.DUPLICATE:
        # A duplicate is finished: the work goes on in the case it was merged into.
        if can["note"]:
            forms["note"] = NoteForm(case)
        return forms
    if can["assign"]:
        forms["assign"] = AssignForm(case)
    if can["transition"] and workflow.allowed(case.state):
        forms["transition"] = TransitionForm(case)
    if can["edit"]:
        forms["classify"] = ClassifyForm(case)
    if can["message"]:
        forms["message"] = MessageForm(case)
    if can["note"]:
        forms["note"] = NoteForm(case)
    if can["merge"] and State.DUPLICATE in workflow.TRANSITIONS.get(case.state, set()):
        forms["merge"] = MergeForm(case, request.user)
    if can["attach"]:
        forms["attach"] = AttachForm(case)
    return forms


@console_view
@require_GET
def case_view(request, pk: int):
    case = services.get_case(request.user, pk)
    record("case.view", actor=request.user, obj=case, unit=case.unit, request=request)
    can = _allowed(request.user, case)
    now = timezone.now()
    submissions = list(services.submissions_of(case))
    staff_files = list(services.staff_files_of(case))
    blob_ids = {f.blob_id for s in submissions for f in s.files.all()} | {f.blob_id for f in staff_files}
    verdicts = detection.verdicts_for(blob_ids)
    context = {
        "case": case,
        "category": category_label(case.category),
        "overdue": sla_overdue(case, now),
        "due_text": sla_text(case, now),
        "can": can,
        "forms": _case_forms(request, case, can),
        "submissions": _submission_views(request, case, submissions, verdicts),
        "staff_files": [(f, _evidence_item(request, case, f.blob, f.original_name, verdicts)) for f in staff_files],
        "detection": detection_panel(case, submissions),
        "listed_urls": hashbanks.listed_urls(detection.urls_for([s.pk for s in submissions])),
        "timeline": _timeline(case),
        "merged_cases": list(case.merged_cases.order_by("reference")),
        "target_case": services.effective_case(case) if case.merged_into_id else None,
        "forwardings": list(forwardings_of(case)),
        "referrals_panel": referral_views.case_panel(request, case),
    }
    return render_console(request, "cases/case.html", context)


# --- Case actions: POST, then back to the case page with a message ------------------------------


def _case_action(request, pk: int, action_allowed, build_form, perform):
    """The shape every case action shares.

    Refusals (a role that may not act, a move the workflow forbids, a form
    that does not validate) come back as a message on the case page, never
    as an error page.
    """
    case = services.get_case(request.user, pk)
    back = redirect("console:case", pk=case.pk)
    if not action_allowed(request.user, case):
        messages.error(request, _("Your account is not allowed to do this on this case."))
        return back
    form = build_form(case)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return back
    try:
        done = perform(case, form.cleaned_data)
    except PermissionDenied:
        messages.error(request, _("Your account is not allowed to do this on this case."))
    except workflow.TransitionError:
        messages.error(request, _("This change is not possible from the case's current state (it may have just been changed by someone else)."))
    else:
        messages.success(request, done)
    return back


def _may(action: str):
    return lambda user, case: permissions.can(user, action, case.unit)


@console_view
@require_POST
def assign_view(request, pk: int):
    def perform(case, data):
        assignee = request.user if "assign_to_me" in request.POST else data["assignee"]
        services.assign(case, assignee, request.user)
        if assignee is None:
            return _("The case is now unassigned.")
        return _("The case is now assigned to %(name)s.") % {"name": assignee.get_username()}

    return _case_action(request, pk, _may("case.assign"), lambda case: AssignForm(case, request.POST), perform)


@console_view
@require_POST
def transition_view(request, pk: int):
    def perform(case, data):
        case = services.transition(case, data["target"], request.user, data["reason"])
        return _("The case is now “%(state)s”.") % {"state": case.get_state_display()}

    return _case_action(request, pk, _may("case.transition"), lambda case: TransitionForm(case, request.POST), perform)


@console_view
@require_POST
def classify_view(request, pk: int):
    def perform(case, data):
        changed = False
        if data["priority"] != case.priority:
            case = services.set_priority(case, data["priority"], request.user)
            changed = True
        if data["category"] != case.category:
            case = services.set_category(case, data["category"], request.user)
            changed = True
        return _("Priority and category saved.") if changed else _("Nothing was changed.")

    return _case_action(request, pk, _may("case.edit"), lambda case: ClassifyForm(case, request.POST), perform)


@console_view
@require_POST
def note_view(request, pk: int):
    def perform(case, data):
        services.add_note(case, data["text"], request.user)
        return _("Internal note added. Only staff can see it.")

    return _case_action(request, pk, _may("case.note"), lambda case: NoteForm(case, request.POST), perform)


@console_view
@require_POST
def message_view(request, pk: int):
    def perform(case, data):
        services.send_message(case, data["text"], request.user)
        return _("Message sent. The reporter will see it on their status page.")

    return _case_action(request, pk, _may("case.message"), lambda case: MessageForm(case, request.POST), perform)


@console_view
@require_POST
def merge_view(request, pk: int):
    def perform(case, data):
        services.merge(case, data["into"], request.user, data["reason"])
        return _("This case is now marked as a duplicate of %(reference)s; its reports show there.") % {"reference": data["into"].reference}

    return _case_action(request, pk, _may("case.merge"), lambda case: MergeForm(case, request.user, request.POST), perform)


@console_view
@require_POST
def attach_view(request, pk: int):
    uploads = request.FILES.getlist("files")
    try:
        return _attach(request, pk, uploads)
    finally:
        # Whatever was not stored (refused, or the action was not allowed) leaves staging now.
        discard_uploads(uploads)


def _attach(request, pk: int, uploads):
    def may_attach(user, case):
        return evidence_permissions.can(user, "evidence.attach", case.unit)

    def perform(case, data):
        accepted, refused = services.attach_files(case, data["files"], request.user)
        for refusal in refused:
            messages.warning(request, refusal.message)
        return _("%(count)s file(s) attached.") % {"count": len(accepted)}

    return _case_action(request, pk, may_attach, lambda case: AttachForm(case, request.POST, request.FILES), perform)


# --- Staff entry ----------------------------------------------------------------------------------


@console_view
@require_http_methods(["GET", "POST"])
def entry_view(request):
    if not entry_units(request.user).exists():
        raise PermissionDenied
    if request.method == "GET":
        return render_console(request, "cases/entry.html", {"form": EntryForm(request.user)})
    form = EntryForm(request.user, request.POST, request.FILES)
    uploads = request.FILES.getlist("files")
    if not form.is_valid():
        discard_uploads(uploads)
        return render_console(request, "cases/entry.html", {"form": form, "files_dropped": bool(uploads)}, status=200)
    try:
        with transaction.atomic():
            receipt = intake_services.receive(
                unit=form.cleaned_data["unit"],
                channel=form.cleaned_data["channel"],
                files=form.cleaned_data["files"],
                entered_by=request.user,
                received_at=form.cleaned_data["received_at"],
                **form.submission_fields(),
            )
            record("submission.enter", actor=request.user, obj=receipt.submission, unit=receipt.submission.unit,
                   request=request, channel=receipt.submission.channel, code=receipt.code)
    finally:
        discard_uploads(uploads)
    case = services.case_for_submission(receipt.submission)
    may_open = case is not None and permissions.can(request.user, "case.view", case.unit)
    return render_console(request, "cases/entry_done.html", {"receipt": receipt, "case": case if may_open else None})
