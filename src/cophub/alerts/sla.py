"""SLA clocks: warnings before a case's response is due and alerts once it is late.

`sweep()` is on COPHUB_SCHEDULE: every worker runs it every
COPHUB_SCHEDULE_EVERY, and it is safe to run from several at once (the
alerts' dedupe keys make each alert once). A case is warned when the time
left is at most COPHUB_SLA_WARN_FRACTION of its priority's SLA hours, and
alerted as overdue once its due time has passed. The keys carry the due
time, so a case whose due time moves (a new priority) is warned again.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from cophub.cases import workflow
from cophub.cases.models import Case

from .models import Alert
from .services import case_recipients, raise_alert, unit_leadership

WARNING = "sla.warning"
OVERDUE = "sla.overdue"


def dedupe_key(kind: str, case: Case) -> str:
    return f"{kind}:{case.pk}:{case.sla_due_at.isoformat(timespec='seconds')}"


def warning_window(priority: str) -> timedelta:
    hours = settings.COPHUB_SLA_HOURS.get(priority)
    if hours is None:
        return timedelta(0)
    return timedelta(hours=hours * settings.COPHUB_SLA_WARN_FRACTION)


def _params(case: Case, now: datetime) -> dict:
    left = case.sla_due_at - now
    return {
        "reference": case.reference,
        "priority": case.priority,
        "due": timezone.localtime(case.sla_due_at).strftime("%H:%M %d/%m/%Y"),
        "minutes": max(0, math.ceil(left.total_seconds() / 60)),
    }


def candidates(now: datetime):
    """Open cases due within their warning window or overdue.

    Overdue cases that already had an overdue alert since their current due
    time are left out in the query, so a backlog of late cases costs nothing
    each round; near-due cases are few.
    """
    near = Q()
    for priority in settings.COPHUB_SLA_HOURS:
        near |= Q(priority=priority, sla_due_at__gt=now, sla_due_at__lte=now + warning_window(priority))
    alerted_late = Alert.objects.filter(case=OuterRef("pk"), kind=OVERDUE, created_at__gte=OuterRef("sla_due_at"))
    overdue = Q(sla_due_at__lte=now) & ~Q(Exists(alerted_late))
    return (Case.objects.filter(near | overdue, state__in=workflow.OPEN, merged_into__isnull=True, sla_due_at__isnull=False)
            .select_related("unit", "assignee").order_by("sla_due_at", "pk"))


def sweep(now: datetime | None = None) -> dict:
    """Raise the SLA warnings and overdue alerts that are due; returns counts for the log and tests."""
    now = now or timezone.now()
    cases = list(candidates(now))
    keys = {dedupe_key(WARNING if c.sla_due_at > now else OVERDUE, c): c for c in cases}
    # One query for what was already raised; then work only on what is new.
    raised = set(Alert.objects.filter(dedupe_key__in=list(keys)).values_list("dedupe_key", flat=True).distinct())
    result = {"cases": len(cases), "warnings": 0, "overdue": 0}
    for key, case in keys.items():
        if key in raised:
            continue
        late = case.sla_due_at <= now
        if late:
            recipients = case_recipients(case)
        else:
            recipients = [case.assignee] if case.assignee and case.assignee.is_active else unit_leadership(case.unit)
        with transaction.atomic():
            created = raise_alert(OVERDUE if late else WARNING, recipients, params=_params(case, now), case=case,
                                  link=reverse("console:case", args=[case.pk]), dedupe_key=key)
        result["overdue" if late else "warnings"] += len(created)
    return result
