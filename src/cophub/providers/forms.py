"""Forms of the console pages that manage content providers and their API keys."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from . import permissions
from .models import Scope


def _unit_choices(units) -> list[tuple[str, str]]:
    """Units as select options, indented by depth so the tree shows."""
    units = list(units)
    top = min((u.path.count("/") for u in units), default=0)
    return [(str(u.pk), "— " * (u.path.count("/") - top) + u.name) for u in units]


class ProviderForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    contact_email = forms.EmailField(label=_("Contact email"), required=False,
                                     help_text=_("Who at the provider the hub writes to about its keys and reports."))
    unit = forms.ModelChoiceField(label=_("Reports go to"), queryset=None,
                                  help_text=_("The unit whose staff receive this provider's reports; usually a district or province office."))

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        units = permissions.managed_units(user)
        self.fields["unit"].queryset = units
        self.fields["unit"].choices = _unit_choices(units)

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("Enter the provider's name."))
        return name


def _scope_choices():
    return [(scope.value, format_lazy("{label} ({code})", label=scope.label, code=scope.value)) for scope in Scope]


class IssueKeyForm(forms.Form):
    scopes = forms.MultipleChoiceField(label=_("Scopes"), choices=_scope_choices, widget=forms.CheckboxSelectMultiple,
                                       initial=[Scope.REPORTS_WRITE.value],
                                       error_messages={"required": _("Choose at least one scope.")})
    sandbox = forms.BooleanField(label=_("Sandbox key (cph_test_…): its reports are checked but never reach anyone"), required=False)
    expires_on = forms.DateField(label=_("Expires on"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                                 help_text=_("The key works until the end of this day. Leave empty for a key without an expiry date."))

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.localdate():
            raise forms.ValidationError(_("The expiry date cannot be in the past."))
        return day

    def expires_at(self):
        """The end of the chosen day in the hub's time zone, or None."""
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


GRACE_PERIODS = {
    "now": (timedelta(0), _("Now: the old key stops working at once")),
    "1h": (timedelta(hours=1), _("In 1 hour")),
    "24h": (timedelta(hours=24), _("In 24 hours")),
    "7d": (timedelta(days=7), _("In 7 days")),
}


class RotateKeyForm(forms.Form):
    grace = forms.ChoiceField(label=_("The old key stops working"), choices=[(code, label) for code, (_delta, label) in GRACE_PERIODS.items()],
                              initial="now")

    def grace_period(self) -> timedelta:
        return GRACE_PERIODS[self.cleaned_data["grace"]][0]


class RevokeKeyForm(forms.Form):
    confirm = forms.BooleanField(label=_("Yes, revoke this key: every request made with it will be refused from now on"),
                                 error_messages={"required": _("Tick the box to confirm.")})
