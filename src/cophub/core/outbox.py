"""What every outbox of the hub shares: enqueueing with the change, and claiming a row for one attempt.

Outbox rows (provider webhook deliveries, referral deliveries) carry
`state`, `next_attempt_at`, `claim_token` and `claimed_until`. A sender
claims a pending, due row with a random token and a deadline; it writes the
outcome only while it still holds the token, so two senders never settle
one row, and a sender that died leaves a claim that simply runs out.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q


def enqueue(task, *args, run_after: datetime | None = None) -> None:
    """Enqueue `task`: in this transaction with the database backend, after commit otherwise.

    With the database backend the task row is part of the change, so it
    exists exactly when the change does. An in-process backend would run the
    task before the change commits (a message about a change that may still
    roll back), so it waits for the commit; such a backend cannot defer
    either, and a deferred retry is left to the owner's scheduled sweep.
    """
    if run_after is not None:
        if not task.get_backend().supports_defer:
            return
        task = task.using(run_after=run_after)
    if settings.TASKS["default"]["BACKEND"].endswith("DatabaseBackend"):
        task.enqueue(*args)
    else:
        transaction.on_commit(lambda: task.enqueue(*args))


def claim(model, pk: int, now: datetime, *, pending: str, seconds: float, **also) -> str | None:
    """Take row `pk` for one attempt; None when it is not pending, not due, or held by a live claim."""
    token = secrets.token_hex(16)
    claimed = (model.objects
               .filter(pk=pk, state=pending, next_attempt_at__lte=now)
               .filter(Q(claim_token="") | Q(claimed_until__lt=now))
               .update(claim_token=token, claimed_until=now + timedelta(seconds=seconds), **also))
    return token if claimed else None


def why_not(model, pk: int, now: datetime, *, pending: str, requeue) -> str:
    """Why a claim failed; when another sender holds the row, `requeue(run_after)` looks again once its claim runs out."""
    row = model.objects.filter(pk=pk).first()
    if row is None:
        return "missing"
    if row.state != pending:
        return str(row.state)
    if row.next_attempt_at and row.next_attempt_at > now:
        return "not_due"
    requeue(row.claimed_until)  # it may have died holding the claim
    return "busy"
