"""Console pages where a hub administrator manages content providers and their API keys.

Mounted under /console/providers/ (names in the `console` namespace). Only an
administrator of the provider's unit or a unit above it reaches a provider;
a provider elsewhere answers 404, so its existence does not leak. A new key's
plaintext is shown once, on the answer to the POST that made it, and never
stored: the page is sent with `Cache-Control: no-store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cophub.cases.console import console_view, render_console

from . import keys, management_services, permissions
from .forms import IssueKeyForm, ProviderForm, RevokeKeyForm, RotateKeyForm
from .models import ApiKey, EventType, Provider, ProviderReport, Scope

RECENT_DAYS = 30
DELIVERIES_SHOWN = 20


def _require_admin(user) -> None:
    if not permissions.may_manage_any(user):
        raise PermissionDenied


def _providers(user):
    return Provider.objects.filter(permissions.visible_filter(user)).select_related("unit")


def _provider(user, pk: int) -> Provider:
    """The provider if the user administers its unit; 404 otherwise (also for an admin elsewhere)."""
    _require_admin(user)
    provider = _providers(user).filter(pk=pk).first()
    if provider is None:
        raise Http404
    return provider


def _key(provider: Provider, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(provider=provider, pk=key_id).select_related("provider__unit", "replaced_by").first()
    if key is None:
        raise Http404
    return key


# --- The list and a new provider ------------------------------------------------------------------


def _count(rows):
    """The number of `rows` (a queryset filtered on OuterRef("pk")), as an annotation."""
    return Coalesce(Subquery(rows.order_by().values("provider").annotate(n=Count("pk")).values("n")), 0)


@console_view
@require_GET
def provider_list_view(request):
    _require_admin(request.user)
    now = timezone.now()
    usable = ApiKey.objects.filter(provider=OuterRef("pk")).filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=now),
                                                                   Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    recent = ProviderReport.objects.filter(provider=OuterRef("pk"), sandbox=False, created_at__gte=now - timedelta(days=RECENT_DAYS))
    # One counting subquery each: joining keys and reports in one query would
    # count over their product (every key times every recent report).
    providers = _providers(request.user).annotate(
        live_keys=_count(usable.filter(sandbox=False)), sandbox_keys=_count(usable.filter(sandbox=True)), recent_reports=_count(recent),
    ).order_by("name", "pk")
    return render_console(request, "providers/list.html", {"providers": providers, "days": RECENT_DAYS})


@console_view
@require_http_methods(["GET", "POST"])
def provider_create_view(request):
    _require_admin(request.user)
    form = ProviderForm(request.user, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        provider = management_services.create_provider(actor=request.user, request=request, **form.cleaned_data)
        messages.success(request, _("The provider %(name)s is registered. Issue it a key below.") % {"name": provider.name})
        return redirect("console:provider", pk=provider.pk)
    return render_console(request, "providers/create.html", {"form": form})


# --- The provider page ------------------------------------------------------------------------


@dataclass
class KeyRow:
    key: ApiKey
    state: str  # active, grace, revoked, expired
    scopes: list = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.state in ("active", "grace")


def _key_row(key: ApiKey, now) -> KeyRow:
    if key.is_revoked(now):
        state = "revoked"
    elif key.is_expired(now):
        state = "expired"
    elif key.revoked_at is not None:
        state = "grace"  # rotated: works until revoked_at
    else:
        state = "active"
    labels = dict(Scope.choices)
    return KeyRow(key=key, state=state, scopes=[(scope, labels.get(scope, scope)) for scope in key.scopes])


@dataclass
class EndpointRow:
    endpoint: object
    events: list
    deliveries: list


def _endpoint_rows(provider: Provider) -> list[EndpointRow]:
    labels = dict(EventType.choices)
    rows = []
    for endpoint in provider.webhooks.order_by("-created_at", "-pk"):
        deliveries = list(endpoint.deliveries.select_related("event").order_by("-pk")[:DELIVERIES_SHOWN])
        rows.append(EndpointRow(endpoint, [(event, labels.get(event, event)) for event in endpoint.event_types], deliveries))
    return rows


def _detail_context(provider: Provider, issue_form=None) -> dict:
    now = timezone.now()
    rows = [_key_row(key, now) for key in provider.keys.select_related("replaced_by").order_by("-created_at", "-pk")]
    return {
        "provider": provider,
        "key_rows": rows,
        "endpoints": _endpoint_rows(provider),
        "issue_form": issue_form or IssueKeyForm(),
        "rotate_form": RotateKeyForm(),
        "deliveries_shown": DELIVERIES_SHOWN,
    }


@console_view
@require_GET
def provider_detail_view(request, pk: int):
    provider = _provider(request.user, pk)
    return render_console(request, "providers/detail.html", _detail_context(provider))


# --- Actions: POST only ------------------------------------------------------------------------


def _show_key_once(request, provider: Provider, key: ApiKey, plaintext: str, *, replaced: ApiKey | None = None):
    """The only page that ever shows a key's plaintext: not cached, not stored, not shown again."""
    response = render_console(request, "providers/key_shown.html",
                              {"provider": provider, "key": key, "plaintext": plaintext, "replaced": replaced})
    response["Cache-Control"] = "no-store, private"
    response["Pragma"] = "no-cache"
    return response


@console_view
@require_POST
@never_cache
def issue_key_view(request, pk: int):
    provider = _provider(request.user, pk)
    form = IssueKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The key was not issued: please correct the form below."))
        return render_console(request, "providers/detail.html", _detail_context(provider, issue_form=form), status=200)
    key, plaintext = keys.issue_key(provider, form.cleaned_data["scopes"], form.cleaned_data["sandbox"],
                                    expires_at=form.expires_at(), actor=request.user)
    return _show_key_once(request, provider, key, plaintext)


@console_view
@require_POST
@never_cache
def rotate_key_view(request, pk: int, key_id: int):
    provider = _provider(request.user, pk)
    key = _key(provider, key_id)
    back = redirect("console:provider", pk=provider.pk)
    now = timezone.now()
    if key.revoked_at is not None or key.replaced_by_id or key.is_expired(now):
        messages.error(request, _("This key is already revoked, replaced or expired; issue a new key instead."))
        return back
    form = RotateKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose when the old key stops working."))
        return back
    new, plaintext = keys.rotate_key(key, grace=form.grace_period(), actor=request.user)
    key.refresh_from_db()
    return _show_key_once(request, provider, new, plaintext, replaced=key)


@console_view
@require_http_methods(["GET", "POST"])
def revoke_key_view(request, pk: int, key_id: int):
    provider = _provider(request.user, pk)
    key = _key(provider, key_id)
    if key.is_revoked():
        messages.info(request, _("This key was already revoked."))
        return redirect("console:provider", pk=provider.pk)
    form = RevokeKeyForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        keys.revoke_key(key, actor=request.user)
        messages.success(request, _("The key %(key)s is revoked.") % {"key": str(key)})
        return redirect("console:provider", pk=provider.pk)
    return render_console(request, "providers/revoke_confirm.html", {"provider": provider, "key": key, "form": form})


@console_view
@require_POST
def set_active_view(request, pk: int):
    provider = _provider(request.user, pk)
    active = request.POST.get("active") == "1"
    changed = management_services.set_active(provider, active, actor=request.user, request=request)
    if not changed:
        messages.info(request, _("Nothing was changed."))
    elif active:
        messages.success(request, _("The provider is active again: its keys that are not revoked or expired work again."))
    else:
        messages.success(request, _("The provider is deactivated: every request with its keys is refused until it is activated again."))
    return redirect("console:provider", pk=provider.pk)
