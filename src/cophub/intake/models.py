"""What reaches the hub: submissions, their files, and later additions.

A Submission is never changed once stored; anything the reporter adds later
is an Addendum beside it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from cophub.core.categories import AGE_BANDS, CATEGORY_CHOICES


class Channel(models.TextChoices):
    WEB_CHILD = "web_child", _("Web form (child)")
    WEB_ADULT = "web_adult", _("Web form (adult)")
    WEB_DANGER = "web_danger", _("“I am in danger now” button")
    PHONE_111 = "phone_111", _("Transferred from hotline 111")
    PHONE = "phone", _("Phone call")
    LETTER = "letter", _("Letter")
    IN_PERSON = "in_person", _("In person")
    EMAIL = "email", _("Email")
    PROVIDER = "provider", _("Content provider (automatic)")
    FEDERATION = "federation", _("Another hub")


STAFF_CHANNELS = [Channel.PHONE_111, Channel.PHONE, Channel.LETTER, Channel.IN_PERSON, Channel.EMAIL]


class ReporterKind(models.TextChoices):
    CHILD = "child", _("A child or young person")
    PARENT = "parent", _("A parent or carer")
    TEACHER = "teacher", _("A teacher or school staff")
    OTHER_ADULT = "other_adult", _("Another adult")
    UNKNOWN = "unknown", _("Not known")


class HowKnown(models.TextChoices):
    CHILD_TOLD = "child_told", _("The child told me")
    SAW_IT = "saw_it", _("I saw it myself")
    SOMEONE_TOLD = "someone_told", _("Someone else told me")
    OTHER = "other", _("Another way")


class Submission(models.Model):
    code = models.CharField(_("tracking code"), max_length=16, unique=True)
    secret_digest = models.CharField(max_length=64)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    reporter_kind = models.CharField(_("reporter"), max_length=16, choices=ReporterKind.choices, default=ReporterKind.UNKNOWN)
    category = models.CharField(_("category"), max_length=32, choices=CATEGORY_CHOICES, default="other")
    age_band = models.CharField(_("age"), max_length=16, choices=AGE_BANDS, blank=True)
    where_url = models.TextField(_("link"), blank=True)
    where_app = models.CharField(_("app, game or website"), max_length=200, blank=True)
    where_unknown = models.BooleanField(_("does not know where"), default=False)
    reported_account = models.CharField(_("reported account"), max_length=300, blank=True)
    how_known = models.CharField(_("how they know"), max_length=16, choices=HowKnown.choices, blank=True)
    description = models.TextField(_("what happened"), blank=True)
    danger = models.BooleanField(_("in danger now"), default=False)
    school = models.ForeignKey("orgs.Unit", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("child's school"))
    unit = models.ForeignKey("orgs.Unit", on_delete=models.PROTECT, related_name="submissions", verbose_name=_("received by"))
    contact_ok = models.BooleanField(_("may be contacted"), default=False)
    contact_name = models.CharField(_("name"), max_length=120, blank=True)
    contact_phone = models.CharField(_("phone"), max_length=40, blank=True)
    contact_email = models.EmailField(_("email"), blank=True)
    language = models.CharField(max_length=8, default="vi")
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("entered by"))
    received_at = models.DateTimeField(_("received at"))
    created_at = models.DateTimeField(_("stored at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("submission")
        verbose_name_plural = _("submissions")

    def __str__(self) -> str:
        return self.code


class SubmissionFile(models.Model):
    submission = models.ForeignKey(Submission, on_delete=models.PROTECT, related_name="files")
    addendum = models.ForeignKey("Addendum", on_delete=models.PROTECT, null=True, blank=True, related_name="files")
    blob = models.ForeignKey("evidence.Blob", on_delete=models.PROTECT, related_name="+")
    original_name = models.CharField(max_length=200, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]


class Addendum(models.Model):
    """Information the reporter added later from the status page."""

    submission = models.ForeignKey(Submission, on_delete=models.PROTECT, related_name="addenda")
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]


class DeclaredFile(models.Model):
    """A file a report names by its hashes alone (a platform that may not send the file itself)."""

    submission = models.ForeignKey(Submission, on_delete=models.PROTECT, related_name="declared_files")
    sha256 = models.CharField(max_length=64, blank=True)
    md5 = models.CharField(max_length=32, blank=True)
    original_name = models.CharField(max_length=200, blank=True)
