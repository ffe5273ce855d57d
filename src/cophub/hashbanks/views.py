"""Console pages of the hash lists, and the actions on a case file that put it on the hub's list.

Confirm and withdraw are mounted in the console's urls (cases/urls.py)
beside the other evidence views; like every case action they answer with
the case page and a message; a case the user may not see is a 404, an
action their role lacks a 403.

The hash-list pages live under /console/hash-lists/ (urls.py here, names in
the `hashlists` namespace). Only administrators of a top unit and superusers
reach them (permissions.py): anyone else gets the console's 403 page. Every
change goes through services.py, which writes its audit row.
"""

from __future__ import annotations

import io

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cophub.cases import services as cases
from cophub.cases.console import console_view, form_errors, render_console
from cophub.evidence.services import get_blob

from . import formats, permissions, services
from .forms import MAX_UPLOAD_MB, BankCreateForm, BankSettingsForm, ConfirmForm, ConfirmUrlForm, EntryFilterForm, ImportForm, ReasonForm, WithdrawForm
from .models import Bank, BankEntry

ENTRIES_PER_PAGE = 50
REFUSALS_SHOWN = 100


def _case_link_action(request, pk: int, form_class, perform, done: str, nothing: str):
    """Put a link of the case on the hub's list or take it off: the case page with a message after."""
    case = cases.get_case(request.user, pk, action="evidence.confirm")
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("console:case", pk=case.pk)
    try:
        changed = perform(case, request.POST.get("url", ""), form.cleaned_data)
    except ValueError:  # not a link of this case
        raise Http404 from None
    (messages.success if changed else messages.info)(request, done if changed else nothing)
    return redirect("console:case", pk=case.pk)


@console_view
@require_POST
def confirm_url_view(request, pk: int):
    return _case_link_action(request, pk, ConfirmUrlForm,
                             lambda case, url, data: services.confirm_url(case, url, request.user).changed,
                             _("The link is on the hub's list of harmful addresses."),
                             _("The link was already on the hub's list of harmful addresses."))


@console_view
@require_POST
def withdraw_url_view(request, pk: int):
    return _case_link_action(request, pk, WithdrawForm,
                             lambda case, url, data: services.withdraw_url(case, url, request.user, data["reason"]),
                             _("The link is off the hub's list of harmful addresses."),
                             _("The link was not on the hub's list."))


def _case_and_blob(request, pk: int, blob_id: int):
    case = cases.get_case(request.user, pk, action="evidence.confirm")
    blob = get_blob(blob_id) if cases.blob_belongs_to(case, blob_id) else None
    if blob is None:
        raise Http404
    return case, blob


@console_view
@require_POST
def confirm_view(request, pk: int, blob_id: int):
    case, blob = _case_and_blob(request, pk, blob_id)
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
    elif services.confirm_blob(case, blob, request.user).changed:
        messages.success(request, _("The file is on the hub's hash list. Providers will receive its hashes."))
    else:
        messages.info(request, _("The file was already on the hub's hash list."))
    return redirect("console:case", pk=case.pk)


@console_view
@require_POST
def withdraw_view(request, pk: int, blob_id: int):
    case, blob = _case_and_blob(request, pk, blob_id)
    form = WithdrawForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
    elif services.withdraw_blob(case, blob, request.user, form.cleaned_data["reason"]):
        messages.success(request, _("The file is off the hub's hash list. Providers will be told to remove its hashes."))
    else:
        messages.info(request, _("The file was not on the hub's hash list."))
    return redirect("console:case", pk=case.pk)


# --- The hash-list pages ------------------------------------------------------------------------


def _require_manager(user) -> None:
    if not permissions.may_manage(user):
        raise PermissionDenied


def _bank(user, pk: int) -> Bank:
    _require_manager(user)
    return get_object_or_404(Bank, pk=pk)


@console_view
@require_GET
def bank_list_view(request):
    _require_manager(request.user)
    banks = Bank.objects.annotate(active=Count("entries", filter=Q(entries__enabled=True)), total=Count("entries"))
    return render_console(request, "hashbanks/bank_list.html", {"banks": banks.order_by("sandbox", "kind", "name")})


@console_view
@require_http_methods(["GET", "POST"])
def bank_create_view(request):
    _require_manager(request.user)
    form = BankCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        bank = services.create_bank(data["name"], data["kind"], actor=request.user, origin=data["origin"], description=data["description"],
                                    pdq_threshold=data["pdq_threshold"], min_quality=data["min_quality"], shared=data["shared"])
        messages.success(request, _("The hash list %(name)s is created. Import its entries below.") % {"name": bank.name})
        return redirect("hashlists:bank", pk=bank.pk)
    return render_console(request, "hashbanks/bank_create.html", {"form": form})


def _entries(bank: Bank, filters: EntryFilterForm):
    entries = BankEntry.objects.filter(bank=bank).select_related("added_by").order_by("-pk")
    if not filters.is_valid():
        return entries
    query, signal_type, state = (filters.cleaned_data[k] for k in ("q", "signal_type", "state"))
    if query.strip():
        entries = entries.filter(Q(value__startswith=query.strip()) | Q(value__startswith=query.strip().lower()))
    if signal_type:
        entries = entries.filter(signal_type=signal_type)
    if state == "review":
        entries = entries.filter(pk__in=services.entries_due_for_review(bank).values("pk"))
    elif state:
        entries = entries.filter(enabled=state == "enabled")
    return entries


def _bank_page(request, bank: Bank, *, settings_form=None, import_form=None, import_result=None, status=200):
    filters = EntryFilterForm(request.GET or None)
    page = Paginator(_entries(bank, filters), ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "bank": bank, "page": page, "filters": filters, "query": query.urlencode(),
        "settings_form": settings_form or BankSettingsForm(initial={k: getattr(bank, k) for k in services.BANK_SETTINGS}),
        "import_form": import_form or ImportForm(), "reason_form": ReasonForm(), "max_upload_mb": MAX_UPLOAD_MB,
        "import_result": import_result, "refusals": import_result.refused[:REFUSALS_SHOWN] if import_result else [],
        "reaches_feed": services.reaches_feed(bank), "due_for_review": services.entries_due_for_review(bank).count(),
    }
    return render_console(request, "hashbanks/bank_detail.html", context, status=status)


@console_view
@require_GET
def bank_view(request, pk: int):
    return _bank_page(request, _bank(request.user, pk))


@console_view
@require_POST
def bank_settings_view(request, pk: int):
    bank = _bank(request.user, pk)
    form = BankSettingsForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Nothing was changed: please correct the form below."))
        return _bank_page(request, bank, settings_form=form)
    if services.update_bank(bank, actor=request.user, **form.cleaned_data):
        messages.success(request, _("The list's settings are saved."))
    else:
        messages.info(request, _("Nothing was changed."))
    return redirect("hashlists:bank", pk=bank.pk)


@console_view
@require_POST
def bank_switch_view(request, pk: int):
    bank = _bank(request.user, pk)
    form = ReasonForm(request.POST)
    enabled = request.POST.get("enabled") == "1"
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("hashlists:bank", pk=bank.pk)
    if bank.enabled == enabled:
        messages.info(request, _("Nothing was changed."))
        return redirect("hashlists:bank", pk=bank.pk)
    services.set_bank_enabled(bank, enabled, actor=request.user, reason=form.cleaned_data["reason"])
    if enabled:
        messages.success(request, _("The list is in use again; providers receive its entries again."))
    else:
        messages.success(request, _("The list is switched off: it matches nothing, and providers are told to remove its entries."))
    return redirect("hashlists:bank", pk=bank.pk)


@console_view
@require_POST
def entry_disable_view(request, pk: int, entry_id: int):
    bank = _bank(request.user, pk)
    entry = get_object_or_404(BankEntry, pk=entry_id, bank=bank)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
    elif services.disable_entry(entry, request.user, form.cleaned_data["reason"]):
        messages.success(request, _("The entry is removed from the list."))
    else:
        messages.info(request, _("The entry was already removed."))
    return redirect("hashlists:bank", pk=bank.pk)


@console_view
@require_POST
def entry_review_view(request, pk: int, entry_id: int):
    """Staff looked at a listed URL or domain again: still harmful, its next review moves on."""
    bank = _bank(request.user, pk)
    entry = get_object_or_404(BankEntry, pk=entry_id, bank=bank)
    if not entry.is_address or not entry.enabled:
        messages.error(request, _("Only a URL or domain in use on the list is reviewed."))
        return redirect("hashlists:bank", pk=bank.pk)
    entry = services.mark_reviewed(entry, request.user)
    messages.success(request, _("Marked as reviewed; the next review is due on %(date)s.")
                     % {"date": date_format(timezone.localtime(entry.review_by), "d/m/Y")})
    return redirect("hashlists:bank", pk=bank.pk)


def _upload_stream(upload) -> io.BytesIO:
    """The uploaded list's bytes (a few MB at most, ImportForm checks).

    Every upload is encrypted as it streams in (evidence.uploads); the staged
    plaintext is read back here and the staging file is discarded after the
    request by the evidence middleware.
    """
    staged = getattr(upload, "staged", None)
    return io.BytesIO(staged.plaintext() if staged is not None else upload.read())


@console_view
@require_POST
def bank_import_view(request, pk: int):
    bank = _bank(request.user, pk)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, _("Nothing was imported: please correct the form below."))
        return _bank_page(request, bank, import_form=form)
    upload = form.cleaned_data["file"]
    try:
        rows = formats.reader_for(form.cleaned_data["format"], _upload_stream(upload), form.cleaned_data["signal_type"] or None)
        result = services.import_signals(bank, rows, actor=request.user, source=f"upload:{upload.name}"[:200])
    except formats.FormatError as error:
        messages.error(request, str(error))
        return redirect("hashlists:bank", pk=bank.pk)
    messages.success(request, _("Imported: %(added)d added, %(again)d enabled again, %(unchanged)d already there, %(refused)d refused.")
                     % {"added": result.added, "again": result.enabled_again, "unchanged": result.unchanged, "refused": result.refused_count})
    return _bank_page(request, bank, import_result=result)
