"""Case work: opening, triage, transitions, notes, messages, merging.

Every change writes a timeline event and an audit record in the same
transaction as the change itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cophub.audit.services import record
from cophub.core.categories import BY_CODE

from . import permissions, workflow
from .models import Case, CaseEvent, CaseFile, CaseLink, CaseSubmission, EventKind, Priority, State

SYSTEM = None  # actor for what the hub does by itself


# --- Opening and triage ---------------------------------------------------------


def triage_priority(submission) -> str:
    if submission.danger:
        return Priority.P1
    category = BY_CODE.get(submission.category)
    return category.default_priority if category else Priority.P3


def sla_due(priority: str, start: datetime) -> datetime:
    return start + timedelta(hours=settings.COPHUB_SLA_HOURS[priority])


def open_for_submission(submission) -> Case:
    """Open a case for a new submission (inside the submission's transaction)."""
    priority = triage_priority(submission)
    now = timezone.now()
    case = Case.objects.create(
        reference=f"tmp-{submission.code}",
        unit=submission.unit,
        priority=priority,
        category=submission.category,
        sla_due_at=sla_due(priority, now),
    )
    case.reference = f"{now:%Y}-{case.pk:06d}"
    case.save(update_fields=["reference"])
    CaseSubmission.objects.create(case=case, submission=submission)
    CaseEvent.objects.create(case=case, kind=EventKind.OPENED, data={"submission": submission.code, "channel": submission.channel, "priority": priority})
    record("case.opened", actor=submission.entered_by, obj=case, unit=case.unit, channel=submission.channel, priority=priority)
    return case


# --- Finding cases ------------------------------------------------------------------


@dataclass
class QueueFilter:
    unit: int | None = None
    priority: str = ""
    state: str = ""  # "" means every open state; "all" means every state
    category: str = ""
    due: str = ""  # "overdue", "today" (next 24 h)
    assignee: str = ""  # "me", "none"
    q: str = ""


def queue(user, filters: QueueFilter):
    cases = Case.objects.filter(permissions.visible_filter(user)).select_related("unit", "assignee")
    if filters.unit:
        from cophub.orgs.models import Unit

        unit = Unit.objects.filter(pk=filters.unit).first()
        cases = cases.filter(unit__path__startswith=unit.path) if unit else cases.none()
    if filters.state == "all":
        pass
    elif filters.state:
        cases = cases.filter(state=filters.state)
    else:
        cases = cases.filter(state__in=workflow.OPEN)
    if filters.priority:
        cases = cases.filter(priority=filters.priority)
    if filters.category:
        cases = cases.filter(category=filters.category)
    now = timezone.now()
    if filters.due == "overdue":
        cases = cases.filter(sla_due_at__lt=now, state__in=workflow.OPEN)
    elif filters.due == "today":
        cases = cases.filter(sla_due_at__lt=now + timedelta(hours=24), state__in=workflow.OPEN)
    if filters.assignee == "me":
        cases = cases.filter(assignee=user)
    elif filters.assignee == "none":
        cases = cases.filter(assignee__isnull=True)
    if filters.q:
        cases = cases.filter(Q(reference__icontains=filters.q) | Q(links__submission__code__iexact=filters.q.upper()))
    return cases.order_by("priority", "sla_due_at", "created_at")


def get_case(user, pk: int, action: str = "case.view") -> Case:
    """The case if the user may do `action` on it.

    A case the user may not even view is a 404, so its existence does not leak.
    """
    case = Case.objects.select_related("unit", "assignee", "merged_into").filter(pk=pk).first()
    if case is None or not permissions.can(user, "case.view", case.unit):
        raise Http404
    if not permissions.can(user, action, case.unit):
        raise PermissionDenied
    return case


def require(user, action: str, case: Case) -> None:
    if not permissions.can(user, action, case.unit):
        raise PermissionDenied


def case_for_submission(submission) -> Case | None:
    link = CaseSubmission.objects.select_related("case").filter(submission=submission).first()
    return link.case if link else None


def effective_case(case: Case) -> Case:
    """Follow merges to the case that now carries the work."""
    seen = set()
    while case.merged_into_id and case.pk not in seen:
        seen.add(case.pk)
        case = case.merged_into
    return case


def submissions_of(case: Case):
    """Submissions of the case and of every case merged into it."""
    from cophub.intake.models import Submission

    case_ids = _merged_family(case)
    return Submission.objects.filter(case_link__case_id__in=case_ids).select_related("school", "unit", "entered_by").prefetch_related("files__blob", "addenda__files__blob").order_by("created_at")


def _merged_family(case: Case) -> list[int]:
    family = [case.pk]
    frontier = [case.pk]
    while frontier:
        children = list(Case.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True))
        frontier = [c for c in children if c not in family]
        family.extend(frontier)
    return family


def staff_files_of(case: Case):
    """Evidence staff attached to the case or to cases merged into it."""
    return CaseFile.objects.filter(case_id__in=_merged_family(case)).select_related("blob", "added_by", "case").order_by("added_at", "pk")


def find_by_reference(user, reference: str) -> Case | None:
    """A case the user may view, by its exact reference (e.g. the target of a merge)."""
    reference = (reference or "").strip()
    if not reference:
        return None
    return Case.objects.filter(permissions.visible_filter(user), reference__iexact=reference).select_related("unit").first()


def blob_belongs_to(case: Case, blob_id: int) -> bool:
    from cophub.intake.models import SubmissionFile

    family = _merged_family(case)
    return (
        SubmissionFile.objects.filter(blob_id=blob_id, submission__case_link__case_id__in=family).exists()
        or CaseFile.objects.filter(blob_id=blob_id, case_id__in=family).exists()
    )


# --- Changing cases -------------------------------------------------------------------


def _event(case: Case, kind: str, actor, text: str = "", **data) -> CaseEvent:
    return CaseEvent.objects.create(case=case, kind=kind, actor=actor, text=text, data=data)


@transaction.atomic
def transition(case: Case, target: str, actor, reason: str = "") -> Case:
    require(actor, "case.transition", case)
    case = Case.objects.select_for_update().get(pk=case.pk)
    workflow.check(case.state, target)
    previous = case.state
    case.state = target
    case.save(update_fields=["state", "updated_at"])
    _event(case, EventKind.STATE, actor, reason, **{"from": previous, "to": target})
    record("case.transition", actor=actor, obj=case, unit=case.unit, **{"from": previous, "to": target, "reason": reason})
    _announce_to_providers(case)
    return case


@transaction.atomic
def assign(case: Case, assignee, actor) -> Case:
    require(actor, "case.assign", case)
    if assignee is not None and not permissions.can(assignee, "case.transition", case.unit):
        raise PermissionDenied("the assignee cannot work this case")
    case = Case.objects.select_for_update().get(pk=case.pk)
    case.assignee = assignee
    case.save(update_fields=["assignee", "updated_at"])
    label = assignee.get_username() if assignee else ""
    _event(case, EventKind.ASSIGNED, actor, assignee=label)
    record("case.assign", actor=actor, obj=case, unit=case.unit, assignee=label)
    return case


def _change_field(case: Case, field_name: str, value: str, actor, kind: str, **also) -> Case:
    """Change one classification field, with its timeline event and audit row."""
    require(actor, "case.edit", case)
    case = Case.objects.select_for_update().get(pk=case.pk)
    previous = getattr(case, field_name)
    setattr(case, field_name, value)
    for name, compute in also.items():
        setattr(case, name, compute(case))
    case.save(update_fields=[field_name, *also, "updated_at"])
    change = {"from": previous, "to": value}
    _event(case, kind, actor, **change)
    record(f"case.{field_name}", actor=actor, obj=case, unit=case.unit, **change)
    return case


@transaction.atomic
def set_priority(case: Case, priority: str, actor) -> Case:
    Priority(priority)  # refuses an unknown priority
    return _change_field(case, "priority", priority, actor, EventKind.PRIORITY,
                         sla_due_at=lambda c: sla_due(c.priority, c.created_at))


@transaction.atomic
def set_category(case: Case, category: str, actor) -> Case:
    if category not in BY_CODE:
        raise ValueError(f"unknown category {category}")
    return _change_field(case, "category", category, actor, EventKind.CATEGORY)


# --- What automatic triage may change ------------------------------------------------------------


@dataclass
class TriageChange:
    priority: tuple[str, str] | None = None  # (from, to)
    category: tuple[str, str] | None = None
    unit: tuple[object, object] | None = None

    def __bool__(self) -> bool:
        return bool(self.priority or self.category or self.unit)


@transaction.atomic
def apply_triage(case: Case, *, priority: str, category: str | None, unit=None, reasons: list[str]) -> TriageChange:
    """The hub's own triage: priority only ever raised, the response due time recomputed,
    the category set when the reporter chose none (or when the material is known),
    the case handed to the unit in charge. One timeline event says why."""
    case = Case.objects.select_for_update().select_related("unit").get(pk=case.pk)
    change = TriageChange()
    fields = ["updated_at"]
    if priority < case.priority:  # "P1" < "P2": a smaller code is more urgent
        change.priority = (case.priority, priority)
        case.priority, case.sla_due_at = priority, sla_due(priority, case.created_at)
        fields += ["priority", "sla_due_at"]
    if category and category != case.category:
        change.category = (case.category, category)
        case.category = category
        fields.append("category")
    if unit is not None and unit.pk != case.unit_id:
        change.unit = (case.unit, unit)
        case.unit = unit
        fields.append("unit")
    if change:
        case.save(update_fields=fields)
    data = {"reasons": reasons}
    if change.priority:
        data.update({"from": change.priority[0], "to": change.priority[1]})
    if change.category:
        data["category"] = change.category
    if change.unit:
        data["handed_to"] = [change.unit[0].name, change.unit[1].name]
    if change or reasons:
        _event(case, EventKind.TRIAGE, SYSTEM, **data)
        record("case.triaged", actor=SYSTEM, obj=case, unit=case.unit, **data)
    return change


@transaction.atomic
def link_cases(case: Case, other: Case, reason: str, **detail) -> bool:
    """Link two cases about the same thing; False when they already were (or are the same)."""
    if case.pk == other.pk:
        return False
    first, second = sorted([case, other], key=lambda c: c.pk)
    link, created = CaseLink.objects.get_or_create(case_a=first, case_b=second, defaults={"reason": reason, "detail": detail})
    if created:
        for this, that in ((first, second), (second, first)):
            _event(this, EventKind.LINKED, SYSTEM, reference=that.reference, reason=reason, **detail)
        record("case.linked", actor=SYSTEM, obj=first, unit=first.unit, other=second.reference, reason=reason)
    return created


def linked_cases(case: Case) -> list[tuple[Case, CaseLink]]:
    links = CaseLink.objects.filter(Q(case_a=case) | Q(case_b=case)).select_related("case_a", "case_b").order_by("created_at")
    return [(link.case_b if link.case_a_id == case.pk else link.case_a, link) for link in links]


def cases_for_submissions(submission_ids) -> dict[int, Case]:
    """The case that holds each submission (following merges)."""
    links = CaseSubmission.objects.filter(submission_id__in=list(submission_ids)).select_related("case__merged_into")
    return {link.submission_id: effective_case(link.case) for link in links}


@transaction.atomic
def add_note(case: Case, text: str, actor) -> CaseEvent:
    require(actor, "case.note", case)
    event = _event(case, EventKind.NOTE, actor, text)
    record("case.note", actor=actor, obj=case, unit=case.unit, event=event.pk)
    return event


@transaction.atomic
def send_message(case: Case, text: str, actor) -> CaseEvent:
    """A message the reporter will see on their status page."""
    require(actor, "case.message", case)
    event = _event(case, EventKind.MESSAGE, actor, text)
    record("case.message", actor=actor, obj=case, unit=case.unit, event=event.pk)
    return event


@transaction.atomic
def merge(case: Case, into: Case, actor, reason: str = "") -> Case:
    """Mark `case` a duplicate of `into`; its submissions show on `into`."""
    require(actor, "case.merge", case)
    require(actor, "case.merge", into)
    into = effective_case(into)
    if into.pk == case.pk:
        raise workflow.TransitionError("a case cannot be merged into itself")
    case = Case.objects.select_for_update().get(pk=case.pk)
    workflow.check(case.state, State.DUPLICATE)
    previous = case.state
    case.state = State.DUPLICATE
    case.merged_into = into
    case.save(update_fields=["state", "merged_into", "updated_at"])
    _event(case, EventKind.MERGED, actor, reason, into=into.reference, **{"from": previous})
    _event(into, EventKind.MERGED, actor, reason, absorbed=case.reference)
    record("case.merge", actor=actor, obj=case, unit=case.unit, into=into.reference, reason=reason)
    _announce_to_providers(case)
    return case


def _announce_to_providers(case: Case) -> None:
    """Providers behind the case hear of its new public step, in this transaction (outbox)."""
    from cophub.providers.webhooks import case_changed  # providers imports this module

    case_changed(case)


def attach_files(case: Case, files, actor):
    """Staff add evidence to a case; returns (accepted, refused)."""
    from cophub.evidence import permissions as evidence_permissions
    from cophub.evidence.services import check_files, discard_checked, store_checked

    if not evidence_permissions.can(actor, "evidence.attach", case.unit):
        raise PermissionDenied
    checked, refused = check_files(files)  # outside the transaction: decoding is slow
    try:
        with transaction.atomic():
            accepted = store_checked(checked)
            from cophub.detection.tasks import compute_signals

            for item in accepted:
                CaseFile.objects.create(case=case, blob=item.blob, original_name=item.name, added_by=actor)
                compute_signals.enqueue(item.blob.pk)  # ready when a handler confirms the file
                _event(case, EventKind.EVIDENCE, actor, item.name, blob=item.blob.pk)
                record("evidence.attach", actor=actor, obj=case, unit=case.unit, blob=item.blob.pk, sha256=item.blob.sha256)
    except BaseException:
        discard_checked(checked)
        raise
    return accepted, refused


def record_addendum(submission, addendum, file_count: int) -> None:
    """The reporter added something: it shows on the case timeline (same transaction)."""
    case = case_for_submission(submission)
    if case is None:
        return
    _event(case, EventKind.ADDENDUM, None, addendum.text, submission=submission.code, files=file_count, addendum=addendum.pk)
    record("case.addendum", obj=case, unit=case.unit, submission=submission.code)


def record_forwarded(case: Case, upstream_name: str, actor) -> CaseEvent:
    """The case was queued for an upstream hub (federation); call inside its transaction."""
    event = _event(case, EventKind.UPSTREAM, actor, upstream=upstream_name, forwarded=True)
    record("case.forwarded", actor=actor, obj=case, unit=case.unit, upstream=upstream_name)
    return event


def record_hash_list(case: Case, blob, actor, *, listed: bool, reason: str = "") -> CaseEvent:
    """A file of the case went on (or came off) the hub's hash list; call inside that change's transaction."""
    action = "added" if listed else "removed"
    event = _event(case, EventKind.EVIDENCE, actor, reason, blob=blob.pk, hash_list=action)
    record(f"case.hash_list_{action}", actor=actor, obj=case, unit=case.unit, blob=blob.pk, sha256=blob.sha256)
    return event


def record_url_list(case: Case, url: str, actor, *, listed: bool, reason: str = "") -> CaseEvent:
    """A link of the case went on (or came off) the hub's list of harmful addresses."""
    action = "added" if listed else "removed"
    event = _event(case, EventKind.EVIDENCE, actor, reason, url=url, url_list=action)
    record(f"case.url_list_{action}", actor=actor, obj=case, unit=case.unit, url=url)
    return event


def record_referral(case: Case, actor, what: str, text: str = "", **data) -> CaseEvent:
    """A referral of the case moved on (queued, delivered, answered, failed …); call inside that change's transaction."""
    event = _event(case, EventKind.REFERRAL, actor, text, what=what, **data)
    record(f"case.referral_{what}", actor=actor, obj=case, unit=case.unit, **data)
    return event


def record_upstream_state(case: Case, upstream_name: str, step: str, **data) -> CaseEvent:
    """An upstream hub reported a new public step for the case it received from this hub."""
    event = _event(case, EventKind.UPSTREAM, SYSTEM, upstream=upstream_name, step=step, **data)
    record("case.upstream_state", obj=case, unit=case.unit, upstream=upstream_name, step=step, **data)
    return event


def timeline(case: Case):
    return CaseEvent.objects.filter(case=case).select_related("actor").order_by("created_at", "pk")


def assignable_staff(case: Case):
    from cophub.orgs.services import staff_in

    return staff_in(case.unit, sorted(permissions.ACTIONS["case.transition"]))


# --- What the reporter sees ---------------------------------------------------------------

PUBLIC_STATES = {
    State.NEW: ("received", _("We have received your report. Someone will look at it soon.")),
    State.TRIAGED: ("received", _("We have received your report. Someone will look at it soon.")),
    State.ASSESSING: ("working", _("Someone is looking into your report now.")),
    State.REFERRED: ("referred", _("Your report has been passed to people who can act on it, such as the police or the website.")),
    State.RESOLVED: ("done", _("We have finished dealing with your report.")),
    State.CLOSED: ("done", _("We have finished dealing with your report.")),
    State.NOT_ACTIONABLE: ("done", _("We have looked at your report. We could not do more about this content, but you can still talk to the school counsellor or call 111.")),
    State.RETRACTED: ("withdrawn", _("This report was withdrawn.")),
}
PUBLIC_STEPS = ["received", "working", "referred", "done"]


@dataclass
class PublicStatus:
    step: str
    text: str
    unit_name: str
    has_handler: bool
    messages: list = field(default_factory=list)
    updated_at: datetime | None = None


def opening_status(case: Case) -> PublicStatus:
    """The public status of a case opened in this same request: nothing to read back yet."""
    step, text = PUBLIC_STATES.get(case.state, PUBLIC_STATES[State.NEW])
    return PublicStatus(step=step, text=str(text), unit_name=case.unit.name, has_handler=case.assignee_id is not None, updated_at=case.updated_at)


def public_status(submission) -> PublicStatus | None:
    case = case_for_submission(submission)
    if case is None:
        return None
    case = effective_case(case)
    step, text = PUBLIC_STATES.get(case.state, PUBLIC_STATES[State.NEW])
    family = _merged_family(case)
    messages = list(CaseEvent.objects.filter(case_id__in=family, kind=EventKind.MESSAGE).order_by("created_at").values("text", "created_at"))
    return PublicStatus(step=step, text=str(text), unit_name=case.unit.name, has_handler=case.assignee_id is not None, messages=messages, updated_at=case.updated_at)
