"""Background triage (run by `cophub worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def triage_submission(submission_id: int) -> str:
    from .services import triage

    decision = triage(submission_id)
    return decision.priority if decision else "missing"
