"""Hash banks on the model of Meta's HMA: a bank holds entries, each one signal (a hash of a file).

The hub's own bank ("hub") holds the material its staff confirmed as illegal
and is shared with providers through `GET /api/v1/hashes`. Every change to an
entry appends a `BankChange`; its id is the feed's sequence number, so a
provider that polls with the last id it saw gets every change exactly once.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class BankKind(models.TextChoices):
    HUB = "hub", _("The hub's confirmed list")
    IMPORTED = "imported", _("Imported list")
    ALLOW = "allow", _("Allow list (known harmless)")


class SignalType(models.TextChoices):
    # A new type needs its format in services.SIGNAL_FORMATS (or a normaliser).
    SHA256 = "sha256", "SHA-256"
    MD5 = "md5", "MD5"
    PDQ = "pdq", "PDQ"  # 64 hex digits, matched by distance (detection.pdq_index)
    # A video's vPDQ: `value` is the SHA-256 of its frame list, the frames are in `data`.
    VPDQ = "vpdq", "vPDQ"
    URL = "url", "URL"  # normalised (detection.urls.normalise_url)
    DOMAIN = "domain", _("Domain")  # a host name: it and every name under it


class Bank(models.Model):
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16, choices=BankKind.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    shared_with_providers = models.BooleanField(_("shared with providers"), default=False)
    # A sandbox bank holds test entries: sandbox API keys read it instead of the real banks.
    sandbox = models.BooleanField(_("sandbox"), default=False)
    # For perceptual hashes (issue 4): the largest PDQ distance that still matches, the least quality kept.
    pdq_threshold = models.PositiveSmallIntegerField(_("PDQ distance threshold"), default=31)
    min_quality = models.PositiveSmallIntegerField(_("minimum PDQ quality"), default=50)
    description = models.TextField(_("description"), blank=True)
    # Where an imported list comes from (its publisher, a file name): shown with every match.
    origin = models.CharField(_("origin"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("hash list")
        verbose_name_plural = _("hash lists")
        constraints = [
            # Exactly one hub bank (and one sandbox twin): services.hub_bank() relies on it.
            models.UniqueConstraint(fields=["kind", "sandbox"], condition=Q(kind="hub"), name="hashbanks_one_hub_bank"),
        ]

    def __str__(self) -> str:
        return self.name


class BankEntry(models.Model):
    bank = models.ForeignKey(Bank, on_delete=models.PROTECT, related_name="entries", verbose_name=_("hash list"))
    signal_type = models.CharField(_("signal type"), max_length=16, choices=SignalType.choices)
    value = models.CharField(_("value"), max_length=1000)  # lowercase hex for hashes
    # PDQ: the quality the hash was computed with, when known.
    quality = models.PositiveSmallIntegerField(_("quality"), null=True, blank=True)
    # vPDQ: one frame per line, "frame,quality,hash,seconds".
    data = models.TextField(blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    note = models.TextField(_("note"), blank=True)
    source = models.CharField(_("source"), max_length=200, blank=True)  # e.g. "case:2026-000012"
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                 verbose_name=_("added by"))
    added_at = models.DateTimeField(_("added"), default=timezone.now)
    disabled_at = models.DateTimeField(_("removed"), null=True, blank=True)
    # URL and domain entries: when staff last checked the address is still harmful (see review_by).
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)

    class Meta:
        ordering = ["-added_at"]
        verbose_name = _("hash list entry")
        verbose_name_plural = _("hash list entries")
        constraints = [models.UniqueConstraint(fields=["bank", "signal_type", "value"], name="hashbanks_one_entry_per_signal")]
        indexes = [models.Index(fields=["signal_type", "value"], name="hashbanks_signal_idx"),
                   # The published URL list's version (services.published_version) reads the latest review.
                   models.Index(fields=["reviewed_at"], name="hashbanks_reviewed_idx")]

    def __str__(self) -> str:
        return f"{self.signal_type}:{self.value[:16]}…"

    @property
    def is_address(self) -> bool:
        return self.signal_type in (SignalType.URL, SignalType.DOMAIN)

    @property
    def review_by(self):
        """When a URL or domain entry is due to be looked at again (COPHUB_URL_REVIEW_DAYS after its last review)."""
        return review_by(self.added_at, self.reviewed_at)

    @property
    def review_overdue(self) -> bool:
        return self.is_address and self.enabled and self.review_by <= timezone.now()


def review_by(added_at, reviewed_at):
    """An address entry's next review: its last review (or when it was listed) plus COPHUB_URL_REVIEW_DAYS."""
    return (reviewed_at or added_at) + timedelta(days=settings.COPHUB_URL_REVIEW_DAYS)


class ChangeAction(models.TextChoices):
    ADDED = "added", _("added")
    REMOVED = "removed", _("removed")


class BankChange(models.Model):
    """One step of the feed. Never updated or deleted: providers page through these by id."""

    id = models.BigAutoField(primary_key=True)
    entry = models.ForeignKey(BankEntry, on_delete=models.PROTECT, related_name="changes")
    action = models.CharField(max_length=8, choices=ChangeAction.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.action} {self.entry}"
