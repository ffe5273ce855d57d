"""Hub-to-hub federation: the upstream hubs this hub reports to, and the cases it forwarded."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Upstream(models.Model):
    """A hub above this one (district, province), reached through its provider API with a live key."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    base_url = models.URLField(_("address"), max_length=500)
    # The API key and the webhook secret, sealed with AES-GCM under a key derived from the vault master key.
    sealed_key = models.BinaryField()
    sealed_webhook_secret = models.BinaryField(null=True, blank=True)
    webhook_id = models.CharField(max_length=64, blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("upstream hub")
        verbose_name_plural = _("upstream hubs")

    def __str__(self) -> str:
        return self.name


class ForwardingState(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class Forwarding(models.Model):
    """One case forwarded to one upstream hub, and the upstream's last known step."""

    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="forwardings")
    upstream = models.ForeignKey(Upstream, on_delete=models.PROTECT, related_name="forwardings")
    # Stable per forwarding: every retry of every API call reuses keys derived from it.
    idempotency_key = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=16, choices=ForwardingState.choices, default=ForwardingState.PENDING)
    upstream_report_id = models.CharField(max_length=64, blank=True, db_index=True)
    upstream_step = models.CharField(max_length=16, blank=True)
    upstream_step_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["case", "upstream"], name="federation_one_forwarding_per_upstream")]


class ReceivedEvent(models.Model):
    """Webhook events accepted from an upstream, so a replay or retry is acted on once."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=64)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upstream", "event_id"], name="federation_event_once")]
