"""The two small forms under each case file: confirm it for the hash list, or withdraw it."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(label=_("I have looked at this file: it is illegal material and may be shared with providers as a hash."),
                                 error_messages={"required": _("Tick the box to confirm the file as illegal material.")})


class WithdrawForm(forms.Form):
    reason = forms.CharField(label=_("Why it comes off the list"), max_length=2000,
                             error_messages={"required": _("Say why the file comes off the hash list.")})
