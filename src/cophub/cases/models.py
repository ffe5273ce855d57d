"""Cases: the unit of work a handler takes from new to closed."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from cophub.core.categories import CATEGORY_CHOICES


class State(models.TextChoices):
    NEW = "new", _("New")
    TRIAGED = "triaged", _("Triaged")
    ASSESSING = "assessing", _("Assessing")
    REFERRED = "referred", _("Referred")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")
    DUPLICATE = "duplicate", _("Duplicate")
    RETRACTED = "retracted", _("Retracted")
    NOT_ACTIONABLE = "not_actionable", _("Not actionable")


class Priority(models.TextChoices):
    P1 = "P1", _("P1 — immediate danger")
    P2 = "P2", _("P2 — urgent")
    P3 = "P3", _("P3 — normal")
    P4 = "P4", _("P4 — informational")


class Case(models.Model):
    reference = models.CharField(_("reference"), max_length=24, unique=True)
    unit = models.ForeignKey("orgs.Unit", on_delete=models.PROTECT, related_name="cases", verbose_name=_("unit"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.NEW, db_index=True)
    priority = models.CharField(_("priority"), max_length=2, choices=Priority.choices, default=Priority.P3, db_index=True)
    category = models.CharField(_("category"), max_length=32, choices=CATEGORY_CHOICES, default="other", db_index=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="assigned_cases", verbose_name=_("assignee"))
    sla_due_at = models.DateTimeField(_("respond by"), null=True, blank=True, db_index=True)
    merged_into = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="merged_cases", verbose_name=_("merged into"))
    created_at = models.DateTimeField(_("opened"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["priority", "sla_due_at", "created_at"]
        verbose_name = _("case")
        verbose_name_plural = _("cases")

    def __str__(self) -> str:
        return self.reference


class CaseSubmission(models.Model):
    """Which submissions a case holds. A submission belongs to one case."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="links")
    submission = models.OneToOneField("intake.Submission", on_delete=models.PROTECT, related_name="case_link")
    linked_at = models.DateTimeField(auto_now_add=True)


class CaseFile(models.Model):
    """Evidence staff attached to the case themselves."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="staff_files")
    blob = models.ForeignKey("evidence.Blob", on_delete=models.PROTECT, related_name="+")
    original_name = models.CharField(max_length=200, blank=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)


class EventKind(models.TextChoices):
    OPENED = "opened", _("Opened")
    STATE = "state", _("State changed")
    ASSIGNED = "assigned", _("Assigned")
    NOTE = "note", _("Internal note")
    MESSAGE = "message", _("Message to the reporter")
    ADDENDUM = "addendum", _("Reporter added information")
    EVIDENCE = "evidence", _("Evidence added")
    MERGED = "merged", _("Merged")
    PRIORITY = "priority", _("Priority changed")
    CATEGORY = "category", _("Category changed")
    UPSTREAM = "upstream", _("Upstream hub")
    TRIAGE = "triage", _("Automatic triage")
    LINKED = "linked", _("Linked case")
    REFERRAL = "referral", _("Referral")


class CaseEvent(models.Model):
    """The case timeline. Internal notes and reporter messages are both here,
    told apart by `kind`; only MESSAGE events ever reach the reporter."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    text = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]


class LinkReason(models.TextChoices):
    SAME_FILE = "sha256", _("Same file (SHA-256)")
    SIMILAR_PICTURE = "pdq", _("Similar picture (PDQ)")
    SAME_URL = "url", _("Same link")


class CaseLink(models.Model):
    """Two cases about the same material or page. Unlike a merge, both go on:
    the handler sees the other and decides. Stored once per pair (lower id first)."""

    case_a = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="+")
    case_b = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=16, choices=LinkReason.choices)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case_a", "case_b"], name="cases_one_link_per_pair"),
            models.CheckConstraint(condition=models.Q(case_a__lt=models.F("case_b")), name="cases_link_ordered"),
        ]
