"""Forms of the referral console: referring a case, a takedown notice, answers, and the target directory."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from . import services
from .models import Channel, ChannelKind, Target


class ChannelChoiceField(forms.ModelChoiceField):
    """A channel shown with its recipient: "VN-COP — Email with a PDF letter: abuse@…"."""

    def label_from_instance(self, obj: Channel) -> str:
        return f"{obj.target.name} — {obj}"


class ReferForm(forms.Form):
    channel = ChannelChoiceField(label=_("Recipient and channel"), queryset=Channel.objects.none(), empty_label=None,
                                 help_text=_("The case's details (never the files themselves) are sent with an official letter."))
    note = forms.CharField(label=_("Message to the recipient"), required=False, max_length=5000,
                           widget=forms.Textarea(attrs={"rows": 2}),
                           help_text=_("Added to the letter as written; the recipient reads it."))

    def __init__(self, case, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.case = case
        self.fields["channel"].queryset = services.usable_channels(case)


class TakedownForm(forms.Form):
    url = forms.ChoiceField(label=_("Link to take down"), choices=())
    channel = ChannelChoiceField(label=_("Recipient and channel"), queryset=Channel.objects.none(), empty_label=None,
                                 help_text=_("The platform or host that serves the link. It must remove the content within 24 hours."))
    note = forms.CharField(label=_("Message to the recipient"), required=False, max_length=5000,
                           widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, case, urls: list[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.case = case
        self.fields["url"].choices = [(url, url if len(url) <= 100 else url[:99] + "…") for url in urls]
        channels = list(services.usable_channels(case))
        field = self.fields["channel"]
        field.queryset = services.usable_channels(case)
        suggested_targets = {target.pk for url in urls for target in services.targets_for_url(url)}
        suggested = [c for c in channels if c.target_id in suggested_targets]
        others = [c for c in channels if c.target_id not in suggested_targets]
        self.suggested = suggested
        if suggested:
            # The platforms whose listed domains serve these links come first.
            field.choices = [(_("Serves these links"), [(str(c.pk), field.label_from_instance(c)) for c in suggested]),
                             (_("Other recipients"), [(str(c.pk), field.label_from_instance(c)) for c in others])]
            if not self.is_bound:
                self.initial.setdefault("channel", suggested[0].pk)


class RespondForm(forms.Form):
    what = forms.ChoiceField(label=_("What the recipient did"), choices=[
        ("acknowledged", _("Acknowledged receipt")), ("answered", _("Answered")), ("closed", _("Closed the referral"))])
    reference = forms.CharField(label=_("Their reference"), required=False, max_length=200)
    text = forms.CharField(label=_("What they said"), required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class HandDeliveredForm(forms.Form):
    text = forms.CharField(label=_("Delivered to whom, and how"), required=False, max_length=2000)


class CancelForm(forms.Form):
    text = forms.CharField(label=_("Why it is cancelled"), required=False, max_length=2000)


class ListFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False)

    def __init__(self, *args, **kwargs):
        from .models import ReferralState

        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [("", _("All"))] + list(ReferralState.choices)

    def chosen_state(self) -> str:
        return self.cleaned_data.get("state", "") if self.is_valid() else ""


# --- The target directory ---------------------------------------------------------------------------


class TargetForm(forms.ModelForm):
    class Meta:
        model = Target
        fields = ["name", "kind", "domains", "addressee", "notes", "active"]
        widgets = {"domains": forms.Textarea(attrs={"rows": 3}), "notes": forms.Textarea(attrs={"rows": 3})}
        # Words of this form's own (the models' lower-case names are shared with other apps' catalogs).
        labels = {"name": _("Name"), "kind": _("Kind"), "domains": _("Domains"), "addressee": _("Addressed as"), "notes": _("Notes"),
                  "active": _("In use")}

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("Enter the recipient's name."))
        return name

    def clean_domains(self) -> str:
        names = []
        for line in self.cleaned_data.get("domains", "").splitlines():
            line = line.strip().lower()
            if not line:
                continue
            host = (urlsplit(line).hostname or "") if "//" in line else line.split("/")[0]
            host = host.strip(".")
            if not host or " " in host or "." not in host:
                raise forms.ValidationError(_("“%(line)s” is not a host name (write one per line, e.g. tiktok.com).") % {"line": line})
            names.append(host)
        return "\n".join(dict.fromkeys(names))


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(label=pgettext_lazy("referral", "Channel"), choices=ChannelKind.choices)
    address = forms.CharField(label=_("Address"), required=False, max_length=500,
                              help_text=_("An email address for email, an https:// address for a webhook; empty otherwise."))
    upstream = forms.ModelChoiceField(label=_("Upstream hub"), required=False, queryset=None,
                                      help_text=_("Only for the upstream hub's provider API."))

    def __init__(self, *args, **kwargs):
        from cophub.federation.models import Upstream

        super().__init__(*args, **kwargs)
        self.fields["upstream"].queryset = Upstream.objects.filter(active=True).order_by("name")
