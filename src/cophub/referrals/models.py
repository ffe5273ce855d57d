"""Referrals: who the hub passes cases to, what it sent them, and the delivery outbox.

A `Target` is an agency, a platform, a hosting provider or an upstream hub;
each has one or more `Channel`s (email with a PDF letter, a signed webhook,
the upstream hub's provider API, or by hand). A `Referral` is one case sent
to one target, with a frozen `snapshot` of exactly what was sent. Every send
of a referral is a `Delivery` row: the transactional outbox the workers
drain. A takedown notice is a referral of kind `takedown` about one URL; the
hub re-checks that URL and sends the notice again (a new Delivery) every
24 hours until the content is gone.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class TargetKind(models.TextChoices):
    POLICE = "police", _("Police (A05, provincial police)")
    HOTLINE = "hotline", _("Hotline 111")
    VNCOP = "vncop", _("VN-COP")
    EDUCATION = "education", _("Education office")
    PLATFORM = "platform", _("Online platform")
    HOSTING = "hosting", _("Hosting provider")
    HUB = "hub", _("Upstream hub")
    OTHER = "other", _("Other agency")


class Target(models.Model):
    """An agency, platform, host or hub that receives referrals."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=TargetKind.choices)
    # Host names this platform or host serves (one per line): suggests it for a takedown of a URL there.
    domains = models.TextField(_("domains"), blank=True, help_text=_("One host name per line, e.g. tiktok.com; it covers the names under it."))
    # How the letter addresses it: "Kính gửi: …".
    addressee = models.CharField(_("addressed as"), max_length=300, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("referral target")
        verbose_name_plural = _("referral targets")

    def __str__(self) -> str:
        return self.name

    def domain_list(self) -> list[str]:
        return [line.strip().lower().strip(".") for line in self.domains.splitlines() if line.strip()]


class ChannelKind(models.TextChoices):
    EMAIL = "email", _("Email with a PDF letter")
    WEBHOOK = "webhook", _("Signed JSON webhook")
    HUB = "hub", _("Upstream hub's provider API")
    MANUAL = "manual", _("By hand (printed letter)")


class Channel(models.Model):
    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="channels", verbose_name=_("target"))
    kind = models.CharField(_("channel"), max_length=16, choices=ChannelKind.choices)
    # An email address for EMAIL, an https URL for WEBHOOK; empty otherwise.
    address = models.CharField(_("address"), max_length=500, blank=True)
    # The webhook signing secret, sealed with AES-GCM under a key derived from the vault master key.
    sealed_secret = models.BinaryField(null=True, blank=True, editable=False)
    upstream = models.ForeignKey("federation.Upstream", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("upstream hub"))
    active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["target", "position", "pk"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        label = self.get_kind_display()
        if self.kind == ChannelKind.HUB and self.upstream_id:
            return f"{label}: {self.upstream.name}"
        return f"{label}: {self.address}" if self.address else str(label)


class ReferralKind(models.TextChoices):
    REFERRAL = "referral", _("Referral")
    TAKEDOWN = "takedown", _("Takedown notice")


class ReferralState(models.TextChoices):
    QUEUED = "queued", _("Waiting to be delivered")
    BY_HAND = "by_hand", _("Letter to be delivered by hand")
    DELIVERED = "delivered", _("Delivered")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    ANSWERED = "answered", _("Answered")
    FAILED = "failed", _("Delivery failed")
    CLOSED = "closed", _("Closed")
    CANCELLED = "cancelled", _("Cancelled")


class ContentState(models.TextChoices):
    UNCHECKED = "unchecked", _("Not checked yet")
    PRESENT = "present", _("Still online")
    GONE = "gone", _("Removed")
    UNKNOWN = "unknown", _("Could not tell")


class Referral(models.Model):
    public_id = models.CharField(max_length=40, unique=True)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="referrals")
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="referrals", verbose_name=_("target"))
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="referrals", verbose_name=_("channel"))
    kind = models.CharField(_("kind"), max_length=16, choices=ReferralKind.choices, default=ReferralKind.REFERRAL)
    state = models.CharField(_("state"), max_length=16, choices=ReferralState.choices, default=ReferralState.QUEUED, db_index=True)
    url = models.CharField(_("address"), max_length=2000, blank=True)
    number = models.CharField(_("letter number"), max_length=60, blank=True)
    # Exactly what was sent (the JSON attachment, the webhook body, the letter's text), frozen at creation.
    snapshot = models.JSONField(default=dict)
    snapshot_sha256 = models.CharField(max_length=64)
    note = models.TextField(_("message to the recipient"), blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # The recipient's own reference (the upstream hub's report id, a ticket number …).
    external_ref = models.CharField(_("their reference"), max_length=200, blank=True)
    # Takedown notices: the schedule of checks and the outcome.
    content_state = models.CharField(max_length=16, choices=ContentState.choices, default=ContentState.UNCHECKED)
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_detail = models.CharField(max_length=300, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")

    def __str__(self) -> str:
        return self.public_id


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    DEAD = "dead", _("Dead letter")
    CANCELLED = "cancelled", _("Cancelled")


class Delivery(models.Model):
    """One send of a referral: the outbox row a worker claims, attempts and settles.

    `sequence` 1 is the first send; takedown reminders are 2, 3, …. The pair
    (referral public id, sequence) is the idempotency key every channel
    passes on, so a retried attempt is recognised by the receiver.
    """

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="deliveries")
    sequence = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=40, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["referral", "sequence"], name="referrals_one_delivery_per_sequence")]

    @property
    def idempotency_key(self) -> str:
        return f"{self.referral.public_id}.{self.sequence}"
