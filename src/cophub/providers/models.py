"""Content providers, their API keys, and the reports they file through the API.

A provider report is the provider's own draft until it is finished; only then
does it become an intake Submission (channel "provider") in the pipeline.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cophub.core.categories import CATEGORY_CHOICES


class Scope(models.TextChoices):
    REPORTS_WRITE = "reports:write", _("File reports")
    HASHES_READ = "hashes:read", _("Read the hash list")
    LISTS_READ = "lists:read", _("Read the list of harmful addresses (school filters)")


class Provider(models.Model):
    name = models.CharField(_("name"), max_length=200)
    contact_email = models.EmailField(_("contact email"), blank=True)
    unit = models.ForeignKey("orgs.Unit", on_delete=models.PROTECT, related_name="+", verbose_name=_("reports go to"))
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("content provider")
        verbose_name_plural = _("content providers")

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A key is shown once; only the SHA-256 of its secret part is kept."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="keys", verbose_name=_("provider"))
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    secret_digest = models.CharField(_("secret digest (SHA-256)"), max_length=64)
    scopes = models.JSONField(_("scopes"), default=list)
    sandbox = models.BooleanField(_("sandbox"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    # A rotated key is revoked in the future (its grace period ends then).
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    replaced_by = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("replaced by"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{'cph_test' if self.sandbox else 'cph_live'}_{self.prefix}_…"

    def is_revoked(self, now=None) -> bool:
        return self.revoked_at is not None and self.revoked_at <= (now or timezone.now())

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class ReportState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    FINISHED = "finished", _("Finished")
    RETRACTED = "retracted", _("Retracted")


class ProviderReport(models.Model):
    public_id = models.CharField(max_length=40, unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="reports")
    sandbox = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=ReportState.choices, default=ReportState.DRAFT)
    incident_type = models.CharField(max_length=32, choices=CATEGORY_CHOICES)
    incident_time = models.DateTimeField()
    summary = models.TextField(blank=True)
    escalate_reason = models.TextField(blank=True)
    # annotations, internet_details, reported_user, victim, reporter_contact:
    # kept as the provider sent them (validated by the API schema).
    details = models.JSONField(default=dict)
    submission = models.OneToOneField("intake.Submission", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    retracted_at = models.DateTimeField(null=True, blank=True)
    # The public case step last announced by webhook: a state change inside
    # the same step (new -> triaged) announces nothing.
    notified_step = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("provider report")
        verbose_name_plural = _("provider reports")

    def __str__(self) -> str:
        return self.public_id

    def is_expired(self, now=None) -> bool:
        return self.state == ReportState.DRAFT and self.expires_at <= (now or timezone.now())


class ReportFile(models.Model):
    """A file of a provider report: a vaulted blob, or declared by its hashes alone."""

    public_id = models.CharField(max_length=40, unique=True)
    report = models.ForeignKey(ProviderReport, on_delete=models.CASCADE, related_name="files")
    blob = models.ForeignKey("evidence.Blob", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    sha256 = models.CharField(max_length=64, blank=True)
    md5 = models.CharField(max_length=32, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    original_name = models.CharField(max_length=200, blank=True)
    # viewed_by_provider, publicly_available, annotations, grade, original hashes, exif.
    metadata = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]


class IdempotencyRecord(models.Model):
    """One POST per (provider, Idempotency-Key): its request digest and stored answer."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    request_digest = models.CharField(max_length=64)
    # Null while the first request is still running.
    status = models.PositiveSmallIntegerField(null=True)
    body = models.BinaryField(null=True)
    content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "key"], name="providers_idempotency_unique")]


class EventType(models.TextChoices):
    REPORT_STATE_CHANGED = "report.state_changed", _("A report's case changed step")
    TAKEDOWN_REQUESTED = "takedown.requested", _("A takedown was requested")


class WebhookEndpoint(models.Model):
    """Where the hub POSTs a provider's events; sandbox endpoints get sandbox events only."""

    public_id = models.CharField(max_length=40, unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="webhooks", verbose_name=_("provider"))
    sandbox = models.BooleanField(_("sandbox"), default=False)
    url = models.URLField(_("URL"), max_length=2000)
    # The signing secret must be usable to sign, so it cannot be hashed: it is
    # sealed with AES-GCM under a key derived from the vault master key.
    sealed_secret = models.BinaryField()
    event_types = models.JSONField(_("event types"), default=list)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # Deleted endpoints are kept so their deliveries stay in the log.
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url


class WebhookEvent(models.Model):
    public_id = models.CharField(max_length=40, unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="+")
    sandbox = models.BooleanField(default=False)
    type = models.CharField(max_length=40, choices=EventType.choices)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class WebhookDelivery(models.Model):
    """One event to one endpoint: the outbox row, and the delivery log the provider sees."""

    public_id = models.CharField(max_length=40, unique=True)
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # A sender claims the row with a random token until claimed_until, so one
    # delivery is never sent by two workers at once.
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="providers_delivery_once_per_endpoint")]
