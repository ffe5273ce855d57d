"""Console actions on a case file: confirm it for the hub's hash list, or withdraw it.

Mounted in the console's urls (cases/urls.py) beside the other evidence
views. Like every case action they answer with the case page and a message;
a case the user may not see is a 404, an action their role lacks a 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cophub.cases import services as cases
from cophub.cases.console import console_view, form_errors
from cophub.evidence.services import get_blob

from . import services
from .forms import ConfirmForm, WithdrawForm


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
