"""What detection found: signals of files, text indicators and URLs of submissions, matches against banks.

Files are content-addressed (one Blob per SHA-256), so a file's signals are
computed once however many reports carry it. Matches and findings belong to
a submission: the same file may be a lead in one report and known material
in the next, after a handler confirmed it.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ScanStatus(models.TextChoices):
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Not hashable")


class FileSignals(models.Model):
    """The perceptual hashes of one evidence file (SHA-256 and MD5 are on the Blob itself)."""

    blob = models.OneToOneField("evidence.Blob", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=ScanStatus.choices)
    pdq = models.CharField(max_length=64, blank=True)
    pdq_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    # The eight rotations and mirror images, space-separated, the original first.
    pdq_orientations = models.TextField(blank=True)
    # vPDQ, one frame per line: "frame,quality,hash,seconds".
    vpdq = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    def orientations(self) -> list[str]:
        return self.pdq_orientations.split() if self.pdq_orientations else ([self.pdq] if self.pdq else [])


class SubmissionScan(models.Model):
    """Detection ran over a submission: its text scores and when."""

    submission = models.OneToOneField("intake.Submission", on_delete=models.CASCADE, related_name="+")
    # {"meeting": 2.5, ...}: the summed weights of the text indicators per category.
    text_scores = models.JSONField(default=dict)
    # {"text:<classifier>": [[category, score], …], "image:<classifier>:<blob id>": […]}: pluggable classifiers' labels.
    labels = models.JSONField(default=dict)
    scanned_at = models.DateTimeField(default=timezone.now)


class TextFinding(models.Model):
    """A lexicon rule that fired on a text field of a submission."""

    submission = models.ForeignKey("intake.Submission", on_delete=models.CASCADE, related_name="+")
    field = models.CharField(max_length=32)
    category = models.CharField(max_length=32, db_index=True)
    rule = models.CharField(max_length=200)
    phrase = models.CharField(max_length=300)
    weight = models.FloatField()

    class Meta:
        ordering = ["-weight", "pk"]


class SubmissionUrl(models.Model):
    """A normalised URL named in a submission: for list matching and linking reports of the same page."""

    submission = models.ForeignKey("intake.Submission", on_delete=models.CASCADE, related_name="+")
    url = models.CharField(max_length=1000, db_index=True)
    domain = models.CharField(max_length=253, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["submission", "url"], name="detection_one_url_per_submission")]


class Match(models.Model):
    """A bank entry that matched a file or a URL of a submission, with its distance."""

    submission = models.ForeignKey("intake.Submission", on_delete=models.CASCADE, related_name="+")
    blob = models.ForeignKey("evidence.Blob", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    url = models.CharField(max_length=1000, blank=True)
    entry = models.ForeignKey("hashbanks.BankEntry", on_delete=models.PROTECT, related_name="+")
    bank = models.ForeignKey("hashbanks.Bank", on_delete=models.PROTECT, related_name="+")
    # The bank's kind when it matched: "hub" is a verdict, "imported" a lead, "allow" a known false positive.
    bank_kind = models.CharField(max_length=16)
    signal_type = models.CharField(max_length=16)
    distance = models.PositiveSmallIntegerField(default=0)
    # e.g. {"orientation": 3} for a mirrored image, {"query_percent": 92.0, "target_percent": 88.5} for video.
    detail = models.JSONField(default=dict, blank=True)
    matched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["distance", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["submission", "blob", "url", "entry"], name="detection_one_match_per_entry"),
        ]
