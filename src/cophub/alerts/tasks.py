"""Background work of the alerts (run by `cophub worker`)."""

from __future__ import annotations

import logging

from django_tasks import task

logger = logging.getLogger(__name__)


@task()
def send_alert_email(alert_id: int) -> str:
    """Send one alert by email; safe to run twice (the claim and `emailed_at` decide)."""
    from .services import send_email

    outcome = send_email(alert_id)
    logger.info("alert %s email: %s", alert_id, outcome)
    return outcome
