"""Alerts to staff, in the console and by email: what other apps call.

`raise_alert()` runs inside the transaction of the change it reports, like
`audit.services.record()`: the alerts, their audit row and their email
tasks commit (or vanish) with it. Each alert is sent by email once, by a
task of its own; `send_pending_emails()` (on COPHUB_SCHEDULE) sends again
what a lost task or a mail server that was down left unsent.

An alert keeps its kind and parameters; the words are rendered when they
are shown, in the reader's language, and for email in the hub's language
(settings.LANGUAGE_CODE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urljoin

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from cophub.audit.services import record

from .models import Alert

logger = logging.getLogger(__name__)

# An email that failed this many times is left alone (the alert stays in the console).
MAX_EMAIL_ATTEMPTS = 5
# What `email_error` says when the recipient has no address: never retried.
NO_ADDRESS = "no address"
# A sender holds an alert this long while it talks to the mail server.
EMAIL_CLAIM = timedelta(minutes=5)
# The sweep leaves older unsent alerts alone: a week-old warning by email helps nobody.
SWEEP_MAX_AGE = timedelta(days=7)


@dataclass(frozen=True)
class Kind:
    title: str
    body: str


KINDS: dict[str, Kind] = {
    "sla.warning": Kind(
        _("Case %(reference)s is due in %(minutes)s minutes"),
        _("The first response to case %(reference)s (%(priority)s) is due at %(due)s. Please act on it, or hand it to someone who can."),
    ),
    "sla.overdue": Kind(
        _("Case %(reference)s is overdue"),
        _("The first response to case %(reference)s (%(priority)s) was due at %(due)s and has not been given. The assignee and the unit's leadership are alerted."),
    ),
    "referral.dead": Kind(
        _("A referral for case %(reference)s could not be delivered"),
        _("A referral to %(target)s for case %(reference)s could not be delivered after %(attempts)s attempts: %(error)s. Staff must act: send it another way and note it on the case."),
    ),
    "takedown.overdue": Kind(
        _("Reported content is still online at %(target)s"),
        _("Content reported to %(target)s is still online %(hours)s hours after the notice. Follow it up with the platform, or escalate it."),
    ),
    "netfilter.repeated_hits": Kind(
        _("Repeated blocked visits to %(category)s sites in %(group)s"),
        _("A device in %(group)s (%(device)s) was stopped %(count)s times within %(window)s minutes from opening %(category)s sites. "
          "A pupil may need someone to talk to: look at the network filter's query log with the IT administrator, and follow it up with care."),
    ),
}


class _Params(dict):
    """Parameters for %-formatting: a missing one shows as "?" instead of failing the page."""

    def __missing__(self, key):
        return "?"


def _format(text, params: dict) -> str:
    try:
        return str(text) % _Params(params or {})
    except (TypeError, ValueError):
        return str(text)


def render(alert: Alert, language: str | None = None) -> tuple[str, str]:
    """The alert's title and body, in `language` (the active one when None)."""
    kind = KINDS.get(alert.kind)
    if kind is None:
        return alert.kind, ""
    if language is None:
        return _format(kind.title, alert.params), _format(kind.body, alert.params)
    with translation.override(language):
        return _format(kind.title, alert.params), _format(kind.body, alert.params)


# --- Who is alerted ---------------------------------------------------------------------------


def _active_distinct(users) -> list:
    seen: set[int] = set()
    result = []
    for user in users:
        if user is None or not user.is_active or user.pk in seen:
            continue
        seen.add(user.pk)
        result.append(user)
    return result


def unit_leadership(unit) -> list:
    """The administrators of `unit`, or of its nearest ancestor that has one (active accounts)."""
    from cophub.orgs.models import Membership, Role

    ancestor_ids = [int(pk) for pk in unit.path.strip("/").split("/") if pk] or [unit.pk]
    rows = (Membership.objects.filter(unit_id__in=ancestor_ids, role=Role.ADMIN, user__is_active=True)
            .select_related("user").order_by("user__username"))
    by_unit: dict[int, list] = {}
    for membership in rows:
        by_unit.setdefault(membership.unit_id, []).append(membership.user)
    for unit_id in reversed(ancestor_ids):  # nearest first
        if by_unit.get(unit_id):
            return _active_distinct(by_unit[unit_id])
    return []


def case_recipients(case) -> list:
    """The case's assignee (if any) and the leadership of its unit, once each, active only."""
    return _active_distinct([case.assignee, *unit_leadership(case.unit)])


# --- Raising ----------------------------------------------------------------------------------


def raise_alert(kind: str, recipients, *, params: dict, case=None, link: str = "", dedupe_key: str = "") -> list[Alert]:
    """Alert each distinct active recipient; call inside the transaction of the change.

    With a `dedupe_key`, a recipient who already has an alert with that key
    gets no other (two workers raising the same alert at once included).
    Returns the alerts created.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    users = _active_distinct(recipients)
    if not users:
        return []
    created: list[Alert] = []
    with transaction.atomic():
        if dedupe_key:
            already = _already_alerted(dedupe_key, users)
            users = [u for u in users if u.pk not in already]
        for user in users:
            try:
                with transaction.atomic():  # a savepoint: a duplicate key loses only this row
                    alert = Alert.objects.create(recipient=user, kind=kind, params=params, case=case, link=link, dedupe_key=dedupe_key)
            except IntegrityError:
                if not dedupe_key:
                    raise
                continue  # another worker raised it first
            created.append(alert)
            _enqueue(alert.pk)
        if created:
            record("alert.raised", obj=case if case is not None else created[0], unit=getattr(case, "unit", None),
                   kind=kind, recipients=[a.recipient_id for a in created], alerts=[a.pk for a in created], dedupe_key=dedupe_key)
    return created


def _already_alerted(dedupe_key: str, users) -> set[int]:
    return set(Alert.objects.filter(dedupe_key=dedupe_key, recipient__in=users).values_list("recipient_id", flat=True))


def _enqueue(alert_id: int) -> None:
    """With the alert (core.outbox.enqueue): no mail for an alert that may still roll back."""
    from cophub.core.outbox import enqueue

    from .tasks import send_alert_email

    enqueue(send_alert_email, alert_id)


# --- Email ------------------------------------------------------------------------------------


def _message(alert: Alert) -> EmailMessage:
    title, body = render(alert, settings.LANGUAGE_CODE)
    if alert.link and settings.COPHUB_PUBLIC_URL:
        body = f"{body}\n\n{urljoin(settings.COPHUB_PUBLIC_URL.rstrip('/') + '/', alert.link.lstrip('/'))}"
    return EmailMessage(subject=" ".join(title.split()), body=body + "\n", to=[alert.recipient.email])


def _claimable(now) -> Q:
    return (Q(emailed_at__isnull=True, email_attempts__lt=MAX_EMAIL_ATTEMPTS)
            & ~Q(email_error=NO_ADDRESS)
            & (Q(email_claimed_until__isnull=True) | Q(email_claimed_until__lt=now)))


def send_email(alert_id: int) -> str:
    """Send one alert by email (the task body). Safe to run twice and from two workers at once:
    an alert is claimed before it is sent and never sent again once `emailed_at` is set."""
    now = timezone.now()
    if not Alert.objects.filter(_claimable(now), pk=alert_id).update(email_claimed_until=now + EMAIL_CLAIM):
        alert = Alert.objects.filter(pk=alert_id).only("emailed_at", "email_error", "email_attempts").first()
        if alert is None:
            return "missing"
        if alert.emailed_at:
            return "sent"
        if alert.email_error == NO_ADDRESS or alert.email_attempts >= MAX_EMAIL_ATTEMPTS:
            return "given_up"
        return "busy"
    alert = Alert.objects.select_related("recipient").get(pk=alert_id)
    if not alert.recipient.email:
        Alert.objects.filter(pk=alert_id).update(email_error=NO_ADDRESS, email_claimed_until=None)
        return "no_address"
    try:
        _message(alert).send()
    except Exception as exc:  # smtplib's errors are OSErrors; another backend may raise anything
        error = f"{type(exc).__name__}: {exc}"[:500]
        attempts = alert.email_attempts + 1
        Alert.objects.filter(pk=alert_id).update(email_attempts=attempts, email_error=error, email_claimed_until=None)
        logger.warning("alert %s: email failed (attempt %s of %s): %s", alert_id, attempts, MAX_EMAIL_ATTEMPTS, error)
        return "failed" if attempts < MAX_EMAIL_ATTEMPTS else "given_up"
    Alert.objects.filter(pk=alert_id).update(emailed_at=timezone.now(), email_error="", email_claimed_until=None)
    return "sent"


def send_pending_emails() -> int:
    """Send what is still unsent (a lost task, a mail server that was down); returns how many went out."""
    now = timezone.now()
    ids = list(Alert.objects.filter(_claimable(now), created_at__gte=now - SWEEP_MAX_AGE)
               .order_by("created_at").values_list("pk", flat=True)[:500])
    return sum(send_email(pk) == "sent" for pk in ids)


# --- Reading ----------------------------------------------------------------------------------


def alerts_for(user):
    """The user's alerts: unread first, newest first."""
    unread = ExpressionWrapper(Q(read_at__isnull=True), output_field=BooleanField())
    return (Alert.objects.filter(recipient=user).select_related("case")
            .annotate(unread=unread).order_by("-unread", "-created_at", "-pk"))


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Alert.objects.filter(recipient=user, read_at__isnull=True).count()


def mark_read(user, alert_id: int | None = None) -> int:
    """Mark one of the user's alerts read (`alert_id`), or all of them; returns how many changed.

    Raises Alert.DoesNotExist when `alert_id` is not one of the user's alerts."""
    alerts = Alert.objects.filter(recipient=user)
    if alert_id is not None:
        alert = alerts.get(pk=alert_id)
        alerts = alerts.filter(pk=alert.pk)
    return alerts.filter(read_at__isnull=True).update(read_at=timezone.now())
