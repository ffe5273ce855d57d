"""Background work of federation (run by `cophub worker`)."""

from __future__ import annotations

import logging

from django_tasks import task

from . import services

logger = logging.getLogger(__name__)


@task()
def send_forwarding(forwarding_id: int) -> str:
    """File one forwarded case upstream; safe to run twice (stable Idempotency-Keys, the row's state)."""
    outcome = services.send(forwarding_id)
    logger.info("forwarding %s: %s", forwarding_id, outcome)
    return outcome
