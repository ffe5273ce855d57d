"""Triage: after a report arrives, detect, rank, route and link — before anyone reads it.

`submission_received()` is called by intake inside the transaction that
stores the submission; the work itself runs in the task worker, where the
in-memory indexes live.
"""

from __future__ import annotations

import logging

from django.db import transaction

from cophub.cases import services as cases
from cophub.detection import services as detection
from cophub.intake import services as intake
from cophub.orgs.models import Unit

from . import rules

logger = logging.getLogger(__name__)

MAX_LINKS_PER_REPORT = 50  # a very common picture or link must not tie hundreds of cases together


def submission_received(submission) -> None:
    from .tasks import triage_submission

    triage_submission.enqueue(submission.pk)


def triage(submission_id: int) -> rules.Decision | None:
    """Scan the submission, then rank its case, route it and link it to cases about the same thing."""
    submission = intake.get_submission(submission_id)
    if submission is None:
        return None
    blobs = intake.blobs_of(submission)
    findings = detection.scan_submission(submission, blobs, extra_text=intake.text_of(submission),
                                         declared=intake.declared_hashes(submission))
    case = cases.cases_for_submissions([submission.pk]).get(submission.pk)
    if case is None:
        return None
    decision = rules.decide(findings, danger=submission.danger, current_category=case.category)
    with transaction.atomic():
        unit = _unit_in_charge(case.unit, decision.route_to_kind)
        cases.apply_triage(case, priority=decision.priority, category=decision.category, unit=unit, reasons=decision.reasons)
        _link_duplicates(case, submission, findings, blobs)
    return decision


def _unit_in_charge(unit, kind: str | None):
    """The nearest unit of `kind` at or above `unit` (None: stays where it is)."""
    if not kind or unit.kind == kind:
        return None
    ids = [int(part) for part in unit.path.strip("/").split("/") if part]
    above = {u.pk: u for u in Unit.objects.filter(pk__in=ids, kind=kind)}
    for pk in reversed(ids):  # the nearest first
        if pk in above:
            return above[pk]
    return None


def _link_duplicates(case, submission, findings, blobs) -> None:
    """Same file, similar picture or same page → linked cases (the handler decides whether to merge)."""
    reasons: dict[int, tuple[str, dict]] = {}
    blob_ids = {blob.pk for blob in blobs}
    for other, _shared in intake.submissions_with_blobs(blob_ids, exclude=submission.pk).items():
        reasons.setdefault(other, ("sha256", {}))
    for blob_id, (pdq, quality) in findings.pdq_by_blob.items():
        similar = detection.similar_files(pdq, quality, exclude_blob_ids=blob_ids)
        for other, _shared in intake.submissions_with_blobs(similar, exclude=submission.pk).items():
            reasons.setdefault(other, ("pdq", {}))
    for other in detection.submissions_naming(findings.urls, exclude_submission=submission.pk):
        reasons.setdefault(other, ("url", {}))
    if not reasons:
        return
    others = cases.cases_for_submissions(list(reasons)[:MAX_LINKS_PER_REPORT])
    for other_submission, other_case in others.items():
        reason, detail = reasons[other_submission]
        cases.link_cases(case, other_case, reason, **detail)
