"""Shared helpers of the alerts tests."""

from __future__ import annotations

import itertools
import smtplib
from datetime import timedelta

from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from cophub.cases.models import Case

_numbers = itertools.count(1)


def make_case(unit, *, priority="P2", due_in=timedelta(hours=5), assignee=None, **fields) -> Case:
    """An open case due `due_in` from now."""
    number = next(_numbers)
    return Case.objects.create(reference=f"2026-{number:06d}", unit=unit, priority=priority, assignee=assignee,
                               sla_due_at=timezone.now() + due_in, **fields)


class FailingBackend(BaseEmailBackend):
    """A mail server that drops the connection."""

    calls = 0

    def send_messages(self, email_messages):
        FailingBackend.calls += 1
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
