"""The two small forms under each case file: confirm it for the hash list, or withdraw it."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(label=_("I have looked at this file: it is illegal material and may be shared with providers as a hash."),
                                 error_messages={"required": _("Tick the box to confirm the file as illegal material.")})


class ConfirmUrlForm(forms.Form):
    confirm = forms.BooleanField(label=_("I have looked at this page: it harms children and may go on the hub's list of addresses."),
                                 error_messages={"required": _("Tick the box to confirm the link as harmful.")})


class WithdrawForm(forms.Form):
    reason = forms.CharField(label=_("Why it comes off the list"), max_length=2000,
                             error_messages={"required": _("Say why the file comes off the hash list.")})


# --- The hash-list console pages ---------------------------------------------------------------

MAX_UPLOAD_MB = 5


class BankSettingsForm(forms.Form):
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)
    origin = forms.CharField(label=_("Origin"), required=False, max_length=300,
                             help_text=_("Who publishes the list (e.g. NCMEC, IWF), shown with every match."))
    pdq_threshold = forms.IntegerField(label=_("PDQ distance threshold"), min_value=0, max_value=256, initial=31,
                                       help_text=_("The largest PDQ distance that still counts as a match (31 is usual)."))
    min_quality = forms.IntegerField(label=_("Minimum PDQ quality"), min_value=0, max_value=100, initial=50,
                                     help_text=_("PDQ hashes of lower quality are neither imported nor matched."))


class BankCreateForm(BankSettingsForm):
    name = forms.CharField(label=_("Name"), max_length=200)
    kind = forms.ChoiceField(label=_("Kind"), choices=[("imported", _("Imported list")), ("allow", _("Allow list (known harmless)"))])
    shared = forms.BooleanField(label=_("Send its entries to providers"), required=False,
                                help_text=_("Only for lists the hub may share; never for an allow list. It cannot be changed later."))
    field_order = ["name", "kind", "origin", "description", "pdq_threshold", "min_quality", "shared"]

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("Enter the list's name."))
        return name

    def clean(self):
        data = super().clean()
        if data.get("kind") == "allow" and data.get("shared"):
            self.add_error("shared", _("An allow list is never sent to providers."))
        return data


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=2000,
                             error_messages={"required": _("Say why: the reason goes in the audit log.")})


class EntryFilterForm(forms.Form):
    q = forms.CharField(label=_("Value starts with"), required=False, max_length=1000)
    signal_type = forms.ChoiceField(label=_("Type"), required=False)
    state = forms.ChoiceField(label=_("State"), required=False,
                              choices=[("", _("All")), ("enabled", _("In use")), ("disabled", _("Removed")),
                                       ("review", _("Due for review (URLs and domains)"))])

    def __init__(self, *args, **kwargs):
        from .models import SignalType

        super().__init__(*args, **kwargs)
        self.fields["signal_type"].choices = [("", _("All"))] + list(SignalType.choices)


class ImportForm(forms.Form):
    file = forms.FileField(label=_("File"))
    format = forms.ChoiceField(label=_("Format"), choices=[
        ("csv", _("CSV (cophub, or threatexchange CSV)")), ("te", _("threatexchange lines: \"signal_type value\"")),
        ("te-json", _("ThreatExchange descriptors (JSON)")), ("plain", _("One value per line (choose the type)")),
    ])
    signal_type = forms.ChoiceField(label=_("Type of a one-value-per-line list"), required=False,
                                    choices=[("", "—"), ("sha256", "SHA-256"), ("md5", "MD5"), ("pdq", "PDQ"), ("url", "URL"),
                                             ("domain", _("Domain"))])

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_MB * 1024 * 1024:
            raise forms.ValidationError(_("The file is larger than %(mb)d MB: import it on the server with `cophub hashes import`.")
                                        % {"mb": MAX_UPLOAD_MB})
        return upload

    def clean(self):
        data = super().clean()
        if data.get("format") == "plain" and not data.get("signal_type"):
            self.add_error("signal_type", _("Choose the type of the values in the list."))
        return data
