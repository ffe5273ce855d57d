"""Background work of the provider API (run by `cophub worker`)."""

from __future__ import annotations

import logging

from django_tasks import task

from . import webhooks

logger = logging.getLogger(__name__)


@task()
def deliver_webhook(delivery_id: int) -> str:
    """One attempt at one webhook delivery; safe to run twice (the claim and the state decide)."""
    outcome = webhooks.attempt(delivery_id)
    logger.info("webhook delivery %s: %s", delivery_id, outcome)
    return outcome
