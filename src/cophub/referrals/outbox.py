"""The referral outbox: deliveries written with the case change, sent by workers, never lost.

A `Delivery` row and its task are written in the transaction that creates
the referral (the database task backend makes the task part of it), so a
referral exists exactly when its delivery does. A worker claims a delivery
with a token and a deadline before sending, and counts the attempt at the
claim: a worker killed mid-send leaves a claim that runs out, after which
the task (put back by the worker heartbeat) or the scheduled sweep tries
again with the same idempotency key, and a delivery that keeps killing its
worker still reaches the dead letter. The outcome is written only while the
claim is held, so two workers never both settle one delivery. After
COPHUB_REFERRAL_MAX_ATTEMPTS the delivery is dead: the referral shows as
failed on the case and in the console, and staff are alerted by email.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from cophub.core import outbox as core_outbox

from .channels import Outcome, send
from .models import Delivery, DeliveryState

logger = logging.getLogger(__name__)
# A delivery due this long ago and still pending has lost its task (or the
# queue is that far behind): the sweep enqueues it again. Long enough that a
# busy queue is not filled with copies.
SWEEP_AFTER_SECONDS = 300


def max_attempts() -> int:
    return int(settings.COPHUB_REFERRAL_MAX_ATTEMPTS)


def enqueue(delivery_id: int, run_after: datetime | None = None) -> None:
    """Enqueue the sender with the change (core.outbox.enqueue); a deferred retry on an in-process backend waits for the sweep."""
    from .tasks import deliver_referral

    core_outbox.enqueue(deliver_referral, delivery_id, run_after=run_after)


def new_delivery(referral, sequence: int = 1) -> Delivery:
    """Write a delivery and its task; call inside the referral's transaction."""
    delivery = Delivery.objects.create(referral=referral, sequence=sequence, next_attempt_at=timezone.now())
    enqueue(delivery.pk)
    return delivery


def claim(delivery_id: int, now: datetime) -> str | None:
    """Take the delivery for one attempt (and count it); None when not pending, not due, or held."""
    return core_outbox.claim(Delivery, delivery_id, now, pending=DeliveryState.PENDING,
                             seconds=settings.COPHUB_REFERRAL_CLAIM_SECONDS, attempts=F("attempts") + 1)


def attempt(delivery_id: int, now: datetime | None = None) -> str:
    """Send one delivery if it is due and free; returns what happened (for logs and tests)."""
    now = now or timezone.now()
    token = claim(delivery_id, now)
    if token is None:
        return _why_not(delivery_id, now)
    delivery = Delivery.objects.select_related("referral__channel__upstream", "referral__target", "referral__case").get(pk=delivery_id)
    try:
        outcome = send(delivery)
    except Exception as error:  # noqa: BLE001 - a fault of ours (a bad letter, a bug) is retried, then dead-lettered, never lost
        logger.exception("referral delivery %s failed", delivery.idempotency_key)
        outcome = Outcome(False, error=f"{type(error).__name__}: {error}"[:500])
    return settle(delivery, token, outcome, now)


def _why_not(delivery_id: int, now: datetime) -> str:
    return core_outbox.why_not(Delivery, delivery_id, now, pending=DeliveryState.PENDING,
                               requeue=lambda run_after: enqueue(delivery_id, run_after=run_after))


def settle(delivery: Delivery, token: str, outcome: Outcome, now: datetime | None = None) -> str:
    """Write the attempt's outcome, only if this sender still holds the claim."""
    from cophub.providers.webhooks import backoff_seconds

    from . import services

    now = now or timezone.now()
    changes: dict = {"last_status": outcome.status[:40], "last_error": outcome.error, "claim_token": "", "claimed_until": None}
    if outcome.ok:
        changes.update(state=DeliveryState.DELIVERED, delivered_at=now, next_attempt_at=None, last_error="")
    elif not outcome.retry or delivery.attempts >= max_attempts():
        changes.update(state=DeliveryState.DEAD, next_attempt_at=None)
    else:
        changes.update(next_attempt_at=now + timedelta(seconds=backoff_seconds(delivery.attempts)))
    with transaction.atomic():
        if not Delivery.objects.filter(pk=delivery.pk, claim_token=token).update(**changes):
            return "lost_claim"
        if outcome.ok:
            services.delivered(delivery, outcome, now)
        elif changes.get("state") == DeliveryState.DEAD:
            services.dead_letter(delivery, outcome)
        else:
            enqueue(delivery.pk, run_after=changes["next_attempt_at"])
    return str(changes.get("state", "retry"))


def retry(delivery: Delivery) -> Delivery:
    """Staff put a dead delivery back: it starts over with a fresh count (same idempotency key)."""
    Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.DEAD).update(
        state=DeliveryState.PENDING, attempts=0, next_attempt_at=timezone.now(), claim_token="", claimed_until=None)
    enqueue(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def sweep(now: datetime | None = None) -> int:
    """Enqueue every pending delivery that is due and unclaimed (or whose claim ran out).

    Recovery for a task that was lost; runs on the worker schedule, so it
    only enqueues (no network here: the schedule shares the heartbeat thread).
    """
    from .tasks import deliver_referral

    now = now or timezone.now()
    # A claim that ran out means its sender died: send again now. An unclaimed
    # delivery has a task waiting, unless it is long overdue (or the backend
    # cannot defer tasks, so retries wait for this sweep).
    lost_before = now if not deliver_referral.get_backend().supports_defer else now - timedelta(seconds=SWEEP_AFTER_SECONDS)
    due = (Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
           .filter(Q(claim_token="", next_attempt_at__lte=lost_before) | Q(claimed_until__lt=now)))
    ids = list(due.values_list("pk", flat=True)[:500])
    for delivery_id in ids:
        enqueue(delivery_id)
    return len(ids)


def deliver_due(now: datetime | None = None) -> dict[str, int]:
    """Attempt every due delivery here and now: a test driver and an operator's command."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    due = Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at", "pk")
    for delivery_id in list(due.values_list("pk", flat=True)):
        outcome = attempt(delivery_id, now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
