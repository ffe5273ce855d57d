"""Stored evidence: one row per distinct file content (by SHA-256)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Kind(models.TextChoices):
    IMAGE = "image", _("Image")
    VIDEO = "video", _("Video")
    AUDIO = "audio", _("Audio")
    DOCUMENT = "document", _("Document")


class PreviewStatus(models.TextChoices):
    PENDING = "pending", _("Being prepared")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Could not be made")
    NONE = "none", _("Not available for this type")


class Blob(models.Model):
    """An encrypted file in the vault.

    Content-addressed: the SHA-256 of the plaintext is unique, so a file sent
    twice is stored once. The object's name in storage is random and says
    nothing about its content; its data key is stored wrapped by the master
    key (`key_id` names which one).
    """

    sha256 = models.CharField(max_length=64, unique=True)
    md5 = models.CharField(max_length=32, db_index=True)
    size = models.PositiveBigIntegerField()
    mime = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    storage_name = models.CharField(max_length=200, unique=True)
    wrapped_key = models.BinaryField()
    key_id = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    preview_status = models.CharField(max_length=16, choices=PreviewStatus.choices, default=PreviewStatus.PENDING)
    preview_name = models.CharField(max_length=200, blank=True)
    preview_wrapped_key = models.BinaryField(null=True, blank=True)

    class Meta:
        verbose_name = _("evidence file")
        verbose_name_plural = _("evidence files")

    def __str__(self) -> str:
        return f"{self.kind} {self.sha256[:12]}… ({self.size} B)"
