"""Background work of referrals (run by `cophub worker`)."""

from __future__ import annotations

import logging

from django_tasks import task

from . import outbox, takedown

logger = logging.getLogger(__name__)


@task()
def deliver_referral(delivery_id: int) -> str:
    """One attempt at one referral delivery; safe to run twice (the claim and the state decide)."""
    outcome = outbox.attempt(delivery_id)
    logger.info("referral delivery %s: %s", delivery_id, outcome)
    return outcome


@task()
def check_takedown(referral_id: int) -> str:
    """Look once more at a takedown notice's URL; safe to run twice (the schedule claim decides)."""
    outcome = takedown.check_now(referral_id)
    logger.info("takedown %s: %s", referral_id, outcome)
    return outcome
