"""Console pages of the school network filter, mounted at /console/network-filter/ (namespace `netfilter`).

Only IT administrators and administrators reach them (permissions.py);
anyone else gets the console's 403 page. A school's groups, their unblocks
and mistake reports are scoped to the units the user manages: another
school's group is the console's 404. The block lists and the resolver's
settings are the installation's; the hub's own confirmed list is read-only.

Every change is written with its audit row in one transaction and then
published to the resolver when it commits (services.publish_on_commit):
the resolver applies it within a second. Reading the query log is recorded
in the audit log too: it shows which device asked for which name.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cophub.audit.services import record
from cophub.cases.console import console_view, form_errors, render_console

from . import catalog, permissions, services
from .forms import (GroupForm, MistakeDecisionForm, QueryLogFilterForm, RangeFormSet, SettingsForm, SlotFormSet, SubscriptionForm,
                    UnblockForm, UploadForm)
from .models import Action, Category, ClientGroup, FilterList, ListSource, ListStatus, MistakeReport, QueryLog, TemporaryUnblock

LOG_ROWS_PER_PAGE = 100
TOP_BLOCKED = 15
SKIPPED_SHOWN = 20
HELD_BACK_SHOWN = 200


def manager_view(view):
    """A console page of the filter: logged in, and an IT administrator or administrator somewhere."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        permissions.require(request.user)
        return view(request, *args, **kwargs)

    return console_view(wrapped)


def _when(moment) -> str:
    return date_format(timezone.localtime(moment), "d/m/Y H:i") if moment else ""


def _group(user, pk: int) -> ClientGroup:
    """A group the user manages; any other is the console's 404."""
    return get_object_or_404(permissions.groups_for(user).select_related("unit"), pk=pk)


def _group_refs(user) -> list[int] | None:
    """The group ids whose queries the user may see (None: every query, the whole installation's)."""
    if permissions.whole_installation(user):
        return None
    return list(permissions.groups_for(user).values_list("pk", flat=True))


def _scoped(queryset, refs: list[int] | None):
    return queryset if refs is None else queryset.filter(group_ref__in=refs)


def _published(request) -> None:
    messages.success(request, _("Saved. The filter applies the change within a few seconds."))


# --- Dashboard -------------------------------------------------------------------------------------------


@dataclass
class Bar:
    label: str
    count: int
    maximum: int
    extra: str = ""


def _bars(items) -> list[Bar]:
    """(label, count[, extra]) → bars scaled to the largest count (shown as <meter>: no script, no inline style)."""
    items = [item for item in items if item[1]]
    top = max((item[1] for item in items), default=0)
    return [Bar(str(item[0]), int(item[1]), top, str(item[2]) if len(item) > 2 else "") for item in items]


def dashboard_stats(user, since) -> dict:
    """Queries since a time, by answer, group and category, and the most blocked names, within the user's reach."""
    whole = permissions.whole_installation(user)
    groups = None if whole else list(permissions.groups_for(user).values_list("pk", flat=True))
    numbers = services.stats(groups, since=since, include_ungrouped=whole, top=TOP_BLOCKED)
    actions = dict(Action.choices)
    categories = dict(Category.choices)
    by_action = sorted(numbers["by_action"].items(), key=lambda kv: -kv[1])
    by_group = [(g["name"] or (_("No group") if not g["group_ref"] else _("Deleted group #%(id)s") % {"id": g["group_ref"]}),
                 g["total"], _("%(n)d blocked") % {"n": g["blocked"]}) for g in numbers["by_group"]]
    return {
        "total": numbers["total"],
        "blocked": numbers["blocked"],
        "blocked_percent": round(100 * numbers["blocked_share"], 1),
        "by_action": _bars((actions.get(key, key), count) for key, count in by_action),
        "by_group": _bars(by_group),
        "by_category": _bars((categories.get(c["category"], c["category"] or _("Not categorised")), c["count"]) for c in numbers["by_category"]),
        "top_blocked": _bars((t["name"], t["count"], categories.get(t["category"], t["category"])) for t in numbers["top_blocked"]),
    }


def _moment(value):
    """A time in status.json (unix seconds or ISO 8601) as an aware datetime; None when absent or unreadable."""
    if value in (None, ""):
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(float(value), tz=UTC)
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _published_at(version: str):
    """The time in a policy version ("20261201T104500.123456Z-3f2a")."""
    try:
        return datetime.strptime((version or "").split("-")[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def resolver_view_model() -> dict:
    """What the dashboard shows of the resolver: running, versions, delay of the last policy, counters, upstreams."""
    status = services.resolver_status()
    published = services.published_policy() or {}
    published_version = published.get("version", "")
    model = {"status": status, "published_version": published_version, "running": False, "applied_after": None,
             "counters": [], "upstreams": [], "started_at": None, "age": None}
    if status is None:
        return model
    model["running"] = bool(status.get("alive"))
    model["age"] = int(status.get("age_seconds") or 0)
    model["started_at"] = _moment(status.get("started_at"))
    applied = _moment(status.get("applied_at"))
    loaded_at = _published_at(status.get("policy_version", ""))
    if applied and loaded_at:
        model["applied_after"] = max(0.0, round((applied - loaded_at).total_seconds(), 1))
    counters = status.get("counters") or {}
    labels = dict(Action.choices)
    model["counters"] = [(str(labels.get(key, key.replace("_", " "))), value) for key, value in sorted(counters.items())
                         if isinstance(value, (int, float))]
    model["upstreams"] = [u for u in status.get("upstreams") or [] if isinstance(u, dict)]
    return model


@manager_view
@require_GET
def dashboard_view(request):
    now = timezone.now()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return render_console(request, "netfilter/dashboard.html", {
        "resolver": resolver_view_model(),
        "today": dashboard_stats(request.user, today),
        "week": dashboard_stats(request.user, now - timedelta(days=7)),
        "open_mistakes": _mistakes(request.user).filter(status=MistakeReport.Status.OPEN).count(),
        "lists_in_error": FilterList.objects.filter(status=ListStatus.ERROR, enabled=True).count(),
        "group_count": permissions.groups_for(request.user).count(),
    })


# --- Block lists -------------------------------------------------------------------------------------------


def _held_back(filter_list) -> list:
    report = filter_list.report if isinstance(filter_list.report, dict) else {}
    return report.get("held_back") or []


def _held_back_count(filter_list) -> int:
    report = filter_list.report if isinstance(filter_list.report, dict) else {}
    return int(report.get("held_back_count", len(report.get("held_back") or [])))


@dataclass
class ListRow:
    filter_list: FilterList
    held_back: int

    @property
    def read_only(self) -> bool:
        return self.filter_list.source == ListSource.HUB


def _lists_page(request, subscription_form=None, upload_form=None, status=200):
    lists = FilterList.objects.all().order_by("-enabled", "category", "name")
    return render_console(request, "netfilter/lists.html", {
        "rows": [ListRow(filter_list=fl, held_back=_held_back_count(fl)) for fl in lists],
        "subscription_form": subscription_form or SubscriptionForm(auto_id="sub_%s"),
        "upload_form": upload_form or UploadForm(auto_id="upload_%s"),
    }, status=status)


@manager_view
@require_GET
def lists_view(request):
    return _lists_page(request)


@manager_view
@require_POST
def list_subscribe_view(request):
    form = SubscriptionForm(request.POST, auto_id="sub_%s")
    if not form.is_valid():
        messages.error(request, _("The list was not added: please correct the form below."))
        return _lists_page(request, subscription_form=form)
    with transaction.atomic():
        filter_list = form.save(commit=False)
        filter_list.source = ListSource.SUBSCRIPTION
        filter_list.unit = permissions.list_owner_unit(request.user)
        filter_list.created_by = request.user
        filter_list.save()
        record("netfilter.list_added", actor=request.user, obj=filter_list, unit=filter_list.unit, request=request,
               name=filter_list.name, url=filter_list.url, category=filter_list.category)
        services.publish_on_commit()
        _enqueue_refresh()
    messages.success(request, _("The list “%(name)s” is added; it is downloaded and checked now.") % {"name": filter_list.name})
    return redirect("netfilter:list", pk=filter_list.pk)


def _enqueue_refresh() -> None:
    """Download the due subscriptions in the worker (a list asked for now is made due first)."""
    from cophub.core.outbox import enqueue

    from .tasks import refresh_lists

    enqueue(refresh_lists)


def _upload_bytes(upload) -> bytes:
    """The uploaded file's bytes (at most 64 MB, UploadForm checks).

    Every upload is encrypted as it streams in (evidence.uploads); the staged
    plaintext is read back here and the staging file is discarded after the
    request by the evidence middleware.
    """
    staged = getattr(upload, "staged", None)
    return staged.plaintext() if staged is not None else upload.read()


@manager_view
@require_POST
def list_upload_view(request):
    form = UploadForm(request.POST, request.FILES, auto_id="upload_%s")
    if not form.is_valid():
        messages.error(request, _("The file was not imported: please correct the form below."))
        return _lists_page(request, upload_form=form)
    data = form.cleaned_data
    upload = data["file"]
    content = as_utf8(_upload_bytes(upload))
    try:
        with transaction.atomic():
            filter_list = FilterList.objects.create(
                unit=permissions.list_owner_unit(request.user), name=(data["name"] or upload.name or _("Uploaded list"))[:200],
                category=data["category"], source=ListSource.UPLOAD, match_subdomains=data["match_subdomains"],
                created_by=request.user)
            refused = services.import_upload(filter_list, content, request.user)  # audited there; compiled after the commit
            if refused:
                raise _Refused(refused)  # a new list that was refused is not kept
            services.publish_on_commit()
    except _Refused as refusal:
        form.add_error("file", refusal_text(content, data["match_subdomains"], str(refusal)))
        messages.error(request, _("The file was not imported."))
        return _lists_page(request, upload_form=form)
    filter_list.refresh_from_db()
    messages.success(request, _("The list “%(name)s” is imported; it is in use once it is compiled, in a few seconds.") % {"name": filter_list.name})
    return redirect("netfilter:list", pk=filter_list.pk)


class _Refused(Exception):
    pass


def as_utf8(content: bytes) -> bytes:
    """The file in UTF-8 when it is UTF-16 or UTF-32 (Windows editors save those); other bytes as they are.

    Rules are ASCII (IDNA), so a list in UTF-8 or an 8-bit code page reads the
    same either way; only the wide encodings need decoding first.
    """
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if content.startswith(bom):
            return content.decode(codec, errors="replace").encode("utf-8")
    head = content[:4096]
    if head.count(0) * 4 >= len(head) > 0:  # wide text without a byte-order mark
        even_zeros = head[0::2].count(0)
        codec = "utf-16-be" if even_zeros > head[1::2].count(0) else "utf-16-le"
        return content.decode(codec, errors="replace").encode("utf-8")
    return content


def _editable_list(pk: int) -> FilterList:
    filter_list = get_object_or_404(FilterList, pk=pk)
    if filter_list.source == ListSource.HUB:
        raise Http404  # the hub's confirmed list is not edited here
    return filter_list


HELD_REASONS = {
    "public_suffix": gettext_lazy("it would block a whole domain ending (such as com.vn) and every site under it"),
    "protected": gettext_lazy("it would block this hub or a government site"),
    "too_broad_pattern": gettext_lazy("the pattern would block ordinary names of many sites"),
}
LINE_REASONS = [  # (start of the parser's reason, what the console says)
    ("cosmetic rule", gettext_lazy("a rule for page elements, not for names")),
    ("modifier", gettext_lazy("an option a DNS filter cannot honour")),
    ("path", gettext_lazy("a rule for a path or a link, not for a name")),
    ("not a rule", gettext_lazy("not a rule")),
    ("invalid name", gettext_lazy("not a valid domain name")),
    ("invalid wildcard", gettext_lazy("a wildcard with characters a name cannot have")),
    ("empty rule", gettext_lazy("an empty rule")),
    ("regex too long", gettext_lazy("the regular expression is too long")),
    ("nested quantifier", gettext_lazy("the regular expression could take too long to check")),
    ("back-reference", gettext_lazy("the regular expression could take too long to check")),
    ("bad regex", gettext_lazy("not a valid regular expression")),
]
REFUSALS = {
    "html": gettext_lazy("the file is a web page (HTML), not a block list — often an error page of the site it came from"),
    "not_a_list": gettext_lazy("most of its lines are not rules: it does not look like a block list"),
    "empty": gettext_lazy("the file holds no rule"),
}


def line_reason(reason: str) -> str:
    for start, text in LINE_REASONS:
        if reason.startswith(start):
            return str(text)
    return reason


def refusal_text(content: bytes, match_subdomains: bool, fallback: str) -> str:
    """Why a file was refused, in the user's words (the parser's reason code looked up again; refusals are rare)."""
    from . import rules

    code = rules.refuse_reason(rules.parse_list(content, match_subdomains=match_subdomains))
    if code in REFUSALS:
        return _("The file was refused: %(reason)s.") % {"reason": REFUSALS[code]}
    return fallback


@manager_view
@require_GET
def list_detail_view(request, pk: int):
    filter_list = get_object_or_404(FilterList, pk=pk)
    report = filter_list.report if isinstance(filter_list.report, dict) else {}
    syntax_labels = {"hosts": _("Hosts file lines (0.0.0.0 example.com)"), "domain": _("Plain domains"),
                     "adblock": _("Adblock rules (||example.com^)"), "wildcard": _("Wildcards (*.example.com)"),
                     "regex": _("Regular expressions")}
    counts = [(syntax_labels.get(key, key), value) for key, value in (report.get("syntax") or {}).items()]
    counts += [(label, report[key]) for key, label in (("comments", _("Comments")), ("ignored", _("Local names (localhost…), ignored")),
                                                       ("skipped", _("Skipped: options a DNS filter cannot honour")),
                                                       ("invalid", _("Not rules"))) if key in report]
    examples = [{"line": item.get("line"), "text": item.get("text", ""), "reason": line_reason(str(item.get("reason", "")))}
                for key in ("skipped_examples", "invalid_examples") for item in report.get(key) or [] if isinstance(item, dict)]
    held = [{"rule": item.get("rule", ""), "reason": str(HELD_REASONS.get(item.get("reason"), item.get("reason", "")))}
            for item in _held_back(filter_list)[:HELD_BACK_SHOWN] if isinstance(item, dict)]
    return render_console(request, "netfilter/list_detail.html", {
        "filter_list": filter_list, "read_only": filter_list.source == ListSource.HUB,
        "total_lines": report.get("total_lines"), "counts": counts, "examples": examples[:SKIPPED_SHOWN * 2],
        "held_back": held, "held_back_total": _held_back_count(filter_list),
        "truncated": report.get("truncated", False),
    })


@manager_view
@require_POST
def list_toggle_view(request, pk: int):
    filter_list = _editable_list(pk)
    enabled = request.POST.get("enabled") == "1"
    if filter_list.enabled == enabled:
        messages.info(request, _("Nothing was changed."))
        return redirect("netfilter:lists")
    with transaction.atomic():
        FilterList.objects.filter(pk=filter_list.pk).update(enabled=enabled)
        record("netfilter.list_enabled" if enabled else "netfilter.list_disabled", actor=request.user, obj=filter_list,
               unit=filter_list.unit, request=request, name=filter_list.name)
        services.enqueue_compile()
        services.publish_on_commit()
    if enabled:
        messages.success(request, _("The list “%(name)s” is in use again.") % {"name": filter_list.name})
    else:
        messages.success(request, _("The list “%(name)s” is switched off.") % {"name": filter_list.name})
    return redirect("netfilter:lists")


@manager_view
@require_POST
def list_refresh_view(request, pk: int):
    filter_list = _editable_list(pk)
    if filter_list.source != ListSource.SUBSCRIPTION:
        messages.error(request, _("Only a subscription is downloaded again; upload a new file instead."))
        return redirect("netfilter:list", pk=filter_list.pk)
    with transaction.atomic():
        # Due now: the worker's refresh downloads it (with the others that are due) and compiles when it changed.
        FilterList.objects.filter(pk=filter_list.pk).update(checked_at=None)
        record("netfilter.list_refresh_asked", actor=request.user, obj=filter_list, unit=filter_list.unit, request=request,
               name=filter_list.name)
        _enqueue_refresh()
    messages.success(request, _("The list is being downloaded and checked; reload this page in a moment."))
    return redirect("netfilter:list", pk=filter_list.pk)


@manager_view
@require_POST
def list_delete_view(request, pk: int):
    filter_list = _editable_list(pk)
    name = filter_list.name
    with transaction.atomic():
        record("netfilter.list_deleted", actor=request.user, obj=filter_list, unit=filter_list.unit, request=request,
               name=name, url=filter_list.url, category=filter_list.category)
        path = services.list_path(filter_list)
        filter_list.delete()
        services.enqueue_compile()
        services.publish_on_commit()
        transaction.on_commit(lambda: path.unlink(missing_ok=True))
    messages.success(request, _("The list “%(name)s” is deleted.") % {"name": name})
    return redirect("netfilter:lists")


# --- Groups ---------------------------------------------------------------------------------------------


@dataclass
class GroupRow:
    group: ClientGroup
    ranges: list
    slot_count: int
    active_unblocks: int

    @property
    def categories(self) -> str:
        labels = dict(Category.choices)
        return ", ".join(str(labels.get(c, c)) for c in self.group.categories)

    @property
    def services(self) -> str:
        return ", ".join(catalog.service_name(s) for s in self.group.blocked_services)


@manager_view
@require_GET
def groups_view(request):
    now = timezone.now()
    groups = (permissions.groups_for(request.user).select_related("unit").prefetch_related("ranges")
              .annotate(slot_count=Count("slots", distinct=True),
                        active_unblocks=Count("unblocks", filter=Q(unblocks__until__gt=now, unblocks__revoked_at__isnull=True), distinct=True))
              .order_by("unit__path", "-priority", "name"))
    rows = [GroupRow(group=g, ranges=list(g.ranges.all()), slot_count=g.slot_count, active_unblocks=g.active_unblocks) for g in groups]
    return render_console(request, "netfilter/groups.html", {"rows": rows})


def _group_page(request, group, form, ranges, slots, status=200):
    return render_console(request, "netfilter/group_form.html", {
        "group": group, "form": form, "ranges": ranges, "slots": slots,
    }, status=status)


def _group_summary(group: ClientGroup) -> dict:
    """What the audit row keeps of a group's policy."""
    return {
        "name": group.name, "kind": group.kind, "grade": group.grade, "class": group.class_name, "priority": group.priority,
        "categories": list(group.categories), "services": list(group.blocked_services),
        "safe_search": {"google": group.safe_search_google, "youtube": group.safe_search_youtube, "bing": group.safe_search_bing,
                        "duckduckgo": group.safe_search_duckduckgo},
        "allow": group.allow_rules.splitlines(), "deny": group.deny_rules.splitlines(),
        "ranges": [f"{r.cidr}×{r.devices}" for r in group.ranges.all()],
        "slots": [{"days": s.days, "from": s.start.strftime("%H:%M"), "until": s.end.strftime("%H:%M"), "all": s.block_all,
                   "services": s.services, "categories": s.categories} for s in group.slots.all()],
    }


def _edit_group(request, group: ClientGroup | None):
    units = permissions.managed_units(request.user).order_by("path")
    instance = group or ClientGroup()
    if request.method == "GET":
        initial = {} if group else {"unit": units.first(), "categories": [c for c in (Category.ADULT, Category.GAMBLING, Category.VIOLENCE,
                                                                                     Category.SELF_HARM, Category.DRUGS, Category.MALWARE)]}
        return _group_page(request, group, GroupForm(instance=instance, units=units, initial=initial),
                           RangeFormSet(instance=instance, prefix="ranges"), SlotFormSet(instance=instance, prefix="slots"))
    before = _group_summary(group) if group else None  # before validation: it writes the posted values on the instance
    form = GroupForm(request.POST, instance=instance, units=units)
    ranges = RangeFormSet(request.POST, instance=instance, prefix="ranges")
    slots = SlotFormSet(request.POST, instance=instance, prefix="slots")
    if not (form.is_valid() and ranges.is_valid() and slots.is_valid()):
        messages.error(request, _("Nothing was saved: please correct the form below."))
        return _group_page(request, group, form, ranges, slots)
    with transaction.atomic():
        saved = form.save()
        ranges.instance = saved
        slots.instance = saved
        ranges.save()
        slots.save()
        after = _group_summary(saved)
        record("netfilter.group_created" if group is None else "netfilter.group_changed", actor=request.user, obj=saved,
               unit=saved.unit, request=request, before=before, after=after)
        services.publish_on_commit()
    _published(request)
    return redirect("netfilter:group_edit", pk=saved.pk)


@manager_view
@require_http_methods(["GET", "POST"])
def group_new_view(request):
    if not permissions.managed_units(request.user).exists():
        raise Http404
    return _edit_group(request, None)


@manager_view
@require_http_methods(["GET", "POST"])
def group_edit_view(request, pk: int):
    return _edit_group(request, _group(request.user, pk))


@manager_view
@require_POST
def group_delete_view(request, pk: int):
    group = _group(request.user, pk)
    name = group.name
    with transaction.atomic():
        record("netfilter.group_deleted", actor=request.user, obj=group, unit=group.unit, request=request, before=_group_summary(group))
        group.delete()
        services.publish_on_commit()
    messages.success(request, _("The group “%(name)s” is deleted; its devices are now treated as devices in no group.") % {"name": name})
    return redirect("netfilter:groups")


# --- Temporary unblocks ---------------------------------------------------------------------------------------


def create_unblock(request, group: ClientGroup, domain: str, until, reason: str, **audit) -> TemporaryUnblock:
    """A temporary unblock with its audit row, published when the caller's transaction commits."""
    unblock = TemporaryUnblock.objects.create(group=group, domain=domain, until=until, reason=reason, created_by=request.user)
    record("netfilter.unblock_created", actor=request.user, obj=unblock, unit=group.unit, request=request,
           group=group.name, domain=domain, until=until.isoformat(), reason=reason, **audit)
    services.publish_on_commit()
    return unblock


def _unblocks_page(request, form=None, status=200):
    groups = permissions.groups_for(request.user).select_related("unit").order_by("unit__path", "name")
    now = timezone.now()
    unblocks = TemporaryUnblock.objects.filter(group__in=groups).select_related("group", "created_by")
    active = unblocks.filter(until__gt=now, revoked_at__isnull=True).order_by("until")
    ended = unblocks.filter(Q(until__lte=now) | Q(revoked_at__isnull=False)).order_by("-until")
    page = Paginator(ended, 50).get_page(request.GET.get("page"))
    initial = {"group": request.GET.get("group"), "domain": request.GET.get("domain", "")}
    return render_console(request, "netfilter/unblocks.html", {
        "form": form or UnblockForm(groups=groups, initial=initial), "active": active, "page": page, "now": now,
        "has_groups": groups.exists(),
    }, status=status)


@manager_view
@require_http_methods(["GET", "POST"])
def unblocks_view(request):
    if request.method == "GET":
        return _unblocks_page(request)
    groups = permissions.groups_for(request.user).select_related("unit")
    form = UnblockForm(request.POST, groups=groups)
    if not form.is_valid():
        messages.error(request, _("Nothing was unblocked: please correct the form below."))
        return _unblocks_page(request, form=form)
    data = form.cleaned_data
    with transaction.atomic():
        unblock = create_unblock(request, data["group"], data["domain"], data["until_at"], data["reason"])
    messages.success(request, _("%(domain)s is let through for “%(group)s” until %(until)s.")
                     % {"domain": unblock.domain, "group": unblock.group.name, "until": _when(unblock.until)})
    return redirect("netfilter:unblocks")


@manager_view
@require_POST
def unblock_revoke_view(request, pk: int):
    unblock = get_object_or_404(TemporaryUnblock.objects.select_related("group__unit").filter(group__in=permissions.groups_for(request.user)), pk=pk)
    if unblock.revoked_at is not None or unblock.until <= timezone.now():
        messages.info(request, _("This unblock has already ended."))
        return redirect("netfilter:unblocks")
    with transaction.atomic():
        TemporaryUnblock.objects.filter(pk=unblock.pk).update(revoked_at=timezone.now())
        record("netfilter.unblock_revoked", actor=request.user, obj=unblock, unit=unblock.group.unit, request=request,
               group=unblock.group.name, domain=unblock.domain)
        services.publish_on_commit()
    messages.success(request, _("%(domain)s is blocked again for “%(group)s”.") % {"domain": unblock.domain, "group": unblock.group.name})
    return redirect("netfilter:unblocks")


# --- Settings --------------------------------------------------------------------------------------------------


def _settings_groups(user):
    return permissions.groups_for(user).select_related("unit").order_by("unit__path", "name")


@manager_view
@require_http_methods(["GET", "POST"])
def settings_view(request):
    row = services.settings_row()
    groups = _settings_groups(request.user)
    if row.default_group_id and not groups.filter(pk=row.default_group_id).exists():
        # Another school's group is the default: keep it selectable, it is the installation's current setting.
        groups = (groups | ClientGroup.objects.filter(pk=row.default_group_id)).distinct()
    if request.method == "GET":
        return render_console(request, "netfilter/settings.html", {"form": SettingsForm(instance=row, groups=groups)})
    form = SettingsForm(request.POST, instance=row, groups=groups)
    if not form.is_valid():
        messages.error(request, _("Nothing was saved: please correct the form below."))
        return render_console(request, "netfilter/settings.html", {"form": form})
    with transaction.atomic():
        saved = form.save(commit=False)
        saved.updated_by = request.user
        saved.save()
        changed = {name: str(form.cleaned_data.get(name)) for name in form.changed_data}
        record("netfilter.settings_changed", actor=request.user, obj=saved, request=request, changed=changed)
        services.publish_on_commit()
    _published(request)
    return redirect("netfilter:settings")


# --- Query log ---------------------------------------------------------------------------------------------------


@manager_view
@require_GET
def log_view(request):
    refs = _group_refs(request.user)
    whole = refs is None
    groups = list(ClientGroup.objects.all().order_by("name") if whole else permissions.groups_for(request.user).order_by("name"))
    filters = QueryLogFilterForm(request.GET or None, groups=groups, no_group=whole)
    chosen = filters.chosen()
    rows = _scoped(QueryLog.objects.all(), refs)
    if "since" in chosen:
        rows = rows.filter(ts__gte=chosen["since"])
    if "until" in chosen:
        rows = rows.filter(ts__lt=chosen["until"])
    if "client" in chosen:
        rows = rows.filter(client=chosen["client"].strip())
    if "group" in chosen:
        rows = rows.filter(group_ref=chosen["group"])
    if "action" in chosen:
        rows = rows.filter(action=chosen["action"])
    if "category" in chosen:
        rows = rows.filter(category=chosen["category"])
    if "name" in chosen:
        rows = rows.filter(name__contains=chosen["name"].strip().lower())
    page = Paginator(rows.order_by("-ts", "-pk"), LOG_ROWS_PER_PAGE).get_page(request.GET.get("page"))
    names = {g.pk: g.name for g in groups}
    categories = dict(Category.choices)
    for row in page.object_list:
        row.group_name = names.get(row.group_ref) or _("Deleted group #%(id)s") % {"id": row.group_ref}
        row.category_label = categories.get(row.category, row.category)
    # Who looked at which devices' queries, and with what filter: the log shows pupils' browsing.
    record("netfilter.query_log_viewed", actor=request.user, object_type="netfilter.querylog", request=request,
           filters={key: str(value) for key, value in chosen.items()}, page=page.number)
    return render_console(request, "netfilter/log.html", {
        "filters": filters, "page": page,
    })


# --- Mistake reports -------------------------------------------------------------------------------------------


def _mistakes(user):
    reports = MistakeReport.objects.select_related("group__unit", "handled_by")
    if permissions.whole_installation(user):
        return reports
    return reports.filter(group__in=permissions.groups_for(user))


@manager_view
@require_GET
def mistakes_view(request):
    status = request.GET.get("status", MistakeReport.Status.OPEN)
    if status not in MistakeReport.Status.values and status != "all":
        status = MistakeReport.Status.OPEN
    reports = _mistakes(request.user)
    if status != "all":
        reports = reports.filter(status=status)
    page = Paginator(reports, 50).get_page(request.GET.get("page"))
    return render_console(request, "netfilter/mistakes.html", {
        "page": page, "status": status, "statuses": MistakeReport.Status.choices, "decision_form": MistakeDecisionForm(),
    })


@manager_view
@require_POST
def mistake_decide_view(request, pk: int):
    report = get_object_or_404(_mistakes(request.user), pk=pk)
    back = redirect(reverse("netfilter:mistakes"))
    if report.status != MistakeReport.Status.OPEN:
        messages.info(request, _("This report has already been handled."))
        return back
    form = MistakeDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return back
    data = form.cleaned_data
    now = timezone.now()
    if data["decision"] == "unblock":
        if report.group is None or not permissions.may_manage_group(request.user, report.group):
            messages.error(request, _("This report names no group you manage: add an unblock for the right group on the unblocks page."))
            return back
        with transaction.atomic():
            unblock = create_unblock(request, report.group, report.name, data["until_at"], _("Mistake report"), mistake_report=report.pk)
            MistakeReport.objects.filter(pk=report.pk).update(status=MistakeReport.Status.UNBLOCKED, handled_by=request.user, handled_at=now)
        messages.success(request, _("%(domain)s is let through for “%(group)s” until %(until)s.")
                         % {"domain": unblock.domain, "group": report.group.name, "until": _when(unblock.until)})
        return back
    with transaction.atomic():
        MistakeReport.objects.filter(pk=report.pk).update(status=MistakeReport.Status.DECLINED, handled_by=request.user, handled_at=now)
        record("netfilter.mistake_declined", actor=request.user, obj=report, unit=report.group.unit if report.group else None,
               request=request, name=report.name)
    messages.success(request, _("%(domain)s stays blocked.") % {"domain": report.name})
    return back
