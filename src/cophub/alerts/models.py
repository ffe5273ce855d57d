"""Alerts to staff: shown in the console and sent by email.

An alert stores its kind and the parameters of its words, not the words
themselves: the title and body are rendered when shown, in the reader's
language (services.KINDS).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Alert(models.Model):
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts", verbose_name=_("recipient"))
    kind = models.CharField(_("kind"), max_length=40)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("case"))
    link = models.CharField(_("link"), max_length=500, blank=True)
    # Alerts with the same non-empty key reach each recipient once.
    dedupe_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    emailed_at = models.DateTimeField(_("emailed"), null=True, blank=True)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_error = models.CharField(max_length=500, blank=True)
    # Set while a sender talks to the mail server, so two senders never send one alert twice.
    email_claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [
            models.UniqueConstraint(fields=["recipient", "dedupe_key"], condition=~models.Q(dedupe_key=""), name="alerts_once_per_key"),
        ]
        indexes = [
            models.Index(fields=["recipient", "read_at"], name="alerts_unread"),
            models.Index(fields=["emailed_at", "email_attempts"], name="alerts_unsent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.recipient_id}"
