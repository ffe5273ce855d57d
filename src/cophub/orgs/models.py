"""Organisation units (province ⊃ district ⊃ school) and staff roles in them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class UnitKind(models.TextChoices):
    PROVINCE = "province", _("Provincial department of education")
    DISTRICT = "district", _("District office of education")
    SCHOOL = "school", _("School")


class Role(models.TextChoices):
    ADMIN = "admin", _("Administrator")
    HANDLER = "handler", _("Case handler")
    COUNSELLOR = "counsellor", _("School counsellor")
    TEACHER = "teacher", _("Teacher")
    IT_ADMIN = "it_admin", _("IT administrator")
    OBSERVER = "observer", _("Observer")


class Unit(models.Model):
    """A unit of the education system.

    `path` is a materialised path ("/1/4/9/") so that "this unit and every
    unit below it" is one indexed prefix query on either database.
    """

    kind = models.CharField(_("kind"), max_length=16, choices=UnitKind.choices)
    code = models.SlugField(_("code"), max_length=40, unique=True, help_text=_("Short code used in links, e.g. th-hung-vuong."))
    name = models.CharField(_("name"), max_length=200)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children", verbose_name=_("parent unit"))
    path = models.CharField(max_length=255, editable=False, db_index=True, default="")
    is_hub_home = models.BooleanField(
        _("this hub's own unit"), default=False,
        help_text=_("Reports from the public pages land here unless a school's own link was used."),
    )
    counsellor_name = models.CharField(_("counsellor's name"), max_length=120, blank=True)
    counsellor_phone = models.CharField(_("counsellor's phone"), max_length=40, blank=True)
    counsellor_email = models.EmailField(_("counsellor's email"), blank=True)
    counsellor_hours = models.CharField(_("counsellor's hours"), max_length=120, blank=True)

    class Meta:
        ordering = ["path"]
        verbose_name = _("unit")
        verbose_name_plural = _("units")

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self.parent_id and self.parent_id == self.pk:
            raise ValueError("a unit cannot be its own parent")
        super().save(*args, **kwargs)
        new_path = f"{self.parent.path if self.parent else '/'}{self.pk}/"
        if new_path != self.path:
            old_path = self.path
            Unit.objects.filter(pk=self.pk).update(path=new_path)
            self.path = new_path
            if old_path:
                # Re-root every descendant after a move.
                for child in Unit.objects.filter(path__startswith=old_path).exclude(pk=self.pk):
                    child.path = new_path + child.path[len(old_path):]
                    Unit.objects.filter(pk=child.pk).update(path=child.path)

    def is_within(self, other: "Unit") -> bool:
        """True when this unit is `other` or lies below it."""
        return self.path.startswith(other.path)


class Membership(models.Model):
    """A staff account's role in a unit; it reaches the unit's descendants too."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user"))
    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("unit"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)

    class Meta:
        unique_together = [("user", "unit", "role")]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.unit}"
