"""Takedown notices: look at the reported link on a schedule until it is gone, and chase until then.

After a notice is delivered the hub looks at its URL every
COPHUB_TAKEDOWN_CHECK_MINUTES through the SSRF-guarded fetcher (removal.py).
Gone: the time to removal is recorded (from the first delivery of the
notice) and the notice is closed. Still there: the notice is sent again
every COPHUB_TAKEDOWN_RESEND_HOURS (as Project Arachnid does), and once the
legal 24 hours have passed the case's people are alerted. Could not tell
(timeout, 5xx, refused): nothing changes but the note; only "gone" closes,
and a host that no longer resolves must say so twice, ten minutes apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from . import outbox, removal
from .models import ChannelKind, ContentState, Delivery, DeliveryState, Referral, ReferralKind, ReferralState

# The detail a check writes when the host no longer resolves (removal.check).
DNS_GONE = "gone: the host name no longer resolves"
DNS_CONFIRM_AFTER = timedelta(minutes=10)
CHECKED_STATES = (ReferralState.DELIVERED, ReferralState.ACKNOWLEDGED, ReferralState.ANSWERED, ReferralState.FAILED, ReferralState.BY_HAND)


def _interval() -> timedelta:
    return timedelta(minutes=settings.COPHUB_TAKEDOWN_CHECK_MINUTES)


def _due(now: datetime):
    return Referral.objects.filter(kind=ReferralKind.TAKEDOWN, removed_at=None, next_check_at__lte=now, state__in=CHECKED_STATES)


def schedule(now: datetime | None = None) -> int:
    """Enqueue a check for every notice that is due (runs on the worker schedule: no network here)."""
    from .tasks import check_takedown

    now = now or timezone.now()
    ids = list(_due(now).order_by("next_check_at").values_list("pk", flat=True)[:500])
    for referral_id in ids:
        check_takedown.enqueue(referral_id)
    return len(ids)


def check_now(referral_id: int, now: datetime | None = None) -> str:
    """Look at the notice's URL once; returns gone/present/unknown, or not_due when another worker took it."""
    now = now or timezone.now()
    # The claim: whoever moves next_check_at forward does this check.
    if not _due(now).filter(pk=referral_id).update(next_check_at=now + _interval()):
        return "not_due"
    referral = Referral.objects.get(pk=referral_id)
    result = removal.check(referral.url)
    with transaction.atomic():
        referral = Referral.objects.select_for_update(no_key=True, of=("self",)).select_related("case", "target", "channel").get(pk=referral_id)
        previous = referral.last_check_detail
        referral.last_checked_at = now
        referral.last_check_detail = f"{result.state}: {result.detail}"[:300]
        referral.save(update_fields=["last_checked_at", "last_check_detail"])
        if result.state == removal.GONE and result.status is None and not previous.startswith(DNS_GONE):
            # A name that does not resolve may be a passing resolver fault:
            # closed only when the next look, soon, says the same.
            referral.next_check_at = now + DNS_CONFIRM_AFTER
            referral.save(update_fields=["next_check_at"])
        elif result.state == removal.GONE:
            mark_removed(referral, now=now)
        elif result.state == removal.PRESENT:
            _still_present(referral, now)
        elif referral.content_state == ContentState.UNCHECKED:
            referral.content_state = ContentState.UNKNOWN
            referral.save(update_fields=["content_state"])
    return result.state


def mark_removed(referral: Referral, *, now: datetime | None = None, text: str = "") -> Referral:
    """The content is gone: record the time to removal and close the notice (inside a transaction)."""
    from cophub.audit.services import record
    from cophub.cases.services import record_referral

    from .services import time_to_removal

    now = now or timezone.now()
    referral.removed_at = now
    referral.content_state = ContentState.GONE
    referral.state = ReferralState.CLOSED
    referral.closed_at = now
    referral.next_check_at = None
    referral.save(update_fields=["removed_at", "content_state", "state", "closed_at", "next_check_at"])
    Delivery.objects.filter(referral=referral, state=DeliveryState.PENDING).update(state=DeliveryState.CANCELLED, next_attempt_at=None)
    taken = time_to_removal(referral)
    hours = round(taken.total_seconds() / 3600, 1) if taken is not None else ""
    record_referral(referral.case, None, "removed", text, referral=referral.public_id, target=referral.target.name, url=referral.url,
                    hours=hours, seconds=int(taken.total_seconds()) if taken is not None else None)
    record("takedown.removed", obj=referral.case, unit=referral.case.unit, referral=referral.public_id, url=referral.url, hours=hours)
    return referral


def _still_present(referral: Referral, now: datetime) -> None:
    from .services import legal_deadline

    if referral.content_state != ContentState.PRESENT:
        referral.content_state = ContentState.PRESENT
        referral.save(update_fields=["content_state"])
    resend_after = timedelta(hours=settings.COPHUB_TAKEDOWN_RESEND_HOURS)
    pending = Delivery.objects.filter(referral=referral, state=DeliveryState.PENDING).exists()
    if (referral.channel.kind != ChannelKind.MANUAL and not pending and referral.last_sent_at
            and now - referral.last_sent_at >= resend_after):
        last = Delivery.objects.filter(referral=referral).aggregate(last=Max("sequence"))["last"] or 0
        outbox.new_delivery(referral, sequence=last + 1)
    deadline = legal_deadline(referral)
    if deadline is not None and now >= deadline:
        _alert_overdue(referral, now)


def _alert_overdue(referral: Referral, now: datetime) -> None:
    """Once per notice: the platform's legal time is up and the content is still there."""
    from django.urls import reverse

    from cophub.alerts.services import case_recipients, raise_alert
    from cophub.cases.services import record_referral

    hours = int((now - referral.delivered_at).total_seconds() // 3600)
    created = raise_alert("takedown.overdue", case_recipients(referral.case), case=referral.case,
                          link=reverse("console:case", args=[referral.case_id]),
                          params={"target": referral.target.name, "reference": referral.case.reference, "hours": hours, "url": referral.url},
                          dedupe_key=f"takedown.overdue:{referral.pk}")
    if created:
        record_referral(referral.case, None, "still_online", referral=referral.public_id, target=referral.target.name, url=referral.url,
                        hours=hours)
