"""The public forms: the child's three steps, the adult's page, tracking.

Every form validates on the server and speaks the active language: the
browser's own required-field bubbles are turned off because they would
speak the phone's language, not the one the reporter chose.
"""

from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from cophub.core.categories import AGE_BANDS, CATEGORIES, CATEGORY_CHOICES
from cophub.orgs.services import unit_by_code

from .models import HowKnown, ReporterKind

PHONE_RE = re.compile(r"^\+?[\d\s().\-]{6,30}$")
POPULAR_APPS = (
    "Facebook", "Messenger", "Zalo", "TikTok", "YouTube", "Instagram", "Discord", "Telegram",
    "Roblox", "Minecraft", "Free Fire", "Liên Quân Mobile", "PUBG Mobile", "Snapchat", "X (Twitter)", "Google",
)


class PublicForm(forms.Form):
    use_required_attribute = False


def text_field(max_length: int, **kwargs) -> forms.CharField:
    return forms.CharField(required=False, max_length=max_length, **kwargs)


def description_field(label, help_text="") -> forms.CharField:
    return forms.CharField(
        label=label, help_text=help_text, required=False,
        max_length=settings.COPHUB_MAX_TEXT_CHARS,
        widget=forms.Textarea(attrs={"rows": 5}),
    )


def clean_phone(value: str) -> str:
    value = value.strip()
    if value and (not PHONE_RE.match(value) or sum(ch.isdigit() for ch in value) < 6):
        raise forms.ValidationError(_("This does not look like a phone number. Please check it."))
    return value


class RoutingForm(PublicForm):
    """The unit a report goes to, carried through the pages as a hidden code."""

    unit = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)

    def clean_unit(self):
        code = self.cleaned_data["unit"].strip()
        return unit_by_code(code) if code else None


# --- The child's three steps ------------------------------------------------


class ChildWhatForm(PublicForm):
    """Step 1: what happened, and how old the child is."""

    category = forms.ChoiceField(
        label=_("What happened?"),
        choices=[(c.code, c.child_label) for c in CATEGORIES],
        error_messages={"required": _("Please choose the one that fits best. If none fits, choose “Something else”.")},
        widget=forms.RadioSelect,
    )
    age_band = forms.ChoiceField(
        label=_("How old are you?"),
        choices=AGE_BANDS,
        error_messages={"required": _("Please choose how old you are. You can choose “I'd rather not say”.")},
        widget=forms.RadioSelect,
    )


class ChildWhereForm(PublicForm):
    """Step 2: where it happened: a link, an app's name, or "I don't know"."""

    where_url = text_field(2000, label=_("A link, if you have one"),
                           help_text=_("Copy the address from the app or browser and paste it here."))
    where_app = text_field(200, label=_("Or the name of the app, game or website"),
                           help_text=_("For example TikTok, Zalo, Roblox or Free Fire."))
    where_unknown = forms.BooleanField(required=False, label=_("I don't know, or I'd rather not say"))

    def clean(self):
        data = super().clean()
        if not (data.get("where_url", "").strip() or data.get("where_app", "").strip() or data.get("where_unknown")):
            raise forms.ValidationError(
                _("Please write a link or the name of the app or game, or tick “I don't know, or I'd rather not say”."),
                code="where_missing",
            )
        return data


class ContactChoice:
    NONE = "none"
    YES = "yes"


class ChildMoreForm(PublicForm):
    """Step 3: anything else, and whether (and how) we may reach the child."""

    description = description_field(
        _("Anything else you want to tell us?"),
        _("You don't need to tell us every detail. A few words are enough."),
    )
    contact = forms.ChoiceField(
        label=pgettext_lazy("child", "How can we reach you?"),
        choices=[(ContactChoice.NONE, _("Don't contact me")), (ContactChoice.YES, _("You can contact me"))],
        initial=ContactChoice.NONE,
        widget=forms.RadioSelect,
    )
    contact_name = text_field(120, label=_("Your name or nickname"))
    contact_phone = text_field(40, label=_("Phone number"),
                               widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"}))
    contact_email = forms.EmailField(required=False, max_length=254, label=_("Email"),
                                     widget=forms.EmailInput(attrs={"autocomplete": "email"}))

    def clean_contact(self):
        return self.cleaned_data.get("contact") or ContactChoice.NONE

    def clean_contact_phone(self):
        return clean_phone(self.cleaned_data["contact_phone"])

    def clean(self):
        data = super().clean()
        typed = any(data.get(name) for name in ("contact_name", "contact_phone", "contact_email"))
        reachable = data.get("contact_phone") or data.get("contact_email")
        if data.get("contact") == ContactChoice.NONE and typed:
            self.add_error("contact", _(
                "You wrote how to reach you but chose “Don't contact me”. "
                "Choose “You can contact me”, or clear the boxes."))
        elif data.get("contact") == ContactChoice.YES and not reachable and not self.has_error("contact_phone") and not self.has_error("contact_email"):
            self.add_error("contact_phone", _("Please write a phone number or an email, or choose “Don't contact me”."))
        return data

    def contact_fields(self) -> dict:
        if self.cleaned_data["contact"] != ContactChoice.YES:
            return {"contact_ok": False}
        return {
            "contact_ok": True,
            "contact_name": self.cleaned_data["contact_name"],
            "contact_phone": self.cleaned_data["contact_phone"],
            "contact_email": self.cleaned_data["contact_email"],
        }


CHILD_STEPS: tuple[type[PublicForm], ...] = (ChildWhatForm, ChildWhereForm, ChildMoreForm)


def step_field_names(step: int) -> list[str]:
    return list(CHILD_STEPS[step - 1].base_fields)


# --- The adult's page -------------------------------------------------------------

ADULT_KINDS = [(k.value, k.label) for k in (ReporterKind.PARENT, ReporterKind.TEACHER, ReporterKind.OTHER_ADULT)]


class AdultForm(PublicForm):
    reporter_kind = forms.ChoiceField(
        label=_("You are"), choices=ADULT_KINDS, widget=forms.RadioSelect,
        error_messages={"required": _("Please tell us whether you are a parent, a teacher or another adult.")},
    )
    school = forms.ModelChoiceField(
        label=_("The child's school"), queryset=None, required=False,
        empty_label=_("I don't know, or it is not listed"),
    )
    age_band = forms.ChoiceField(label=_("The child's age"), choices=[("", _("Choose…"))] + list(AGE_BANDS), required=False)
    category = forms.ChoiceField(
        label=_("What is it about?"), choices=[("", _("Choose…"))] + CATEGORY_CHOICES,
        error_messages={"required": _("Please choose what the report is about. If nothing fits, choose “Anything else”.")},
    )
    reported_account = text_field(300, label=_("The account, user name or phone number involved"),
                                  help_text=_("The profile link or the name the person uses, if you know it."))
    where_url = text_field(2000, label=_("Link to the content"))
    where_app = text_field(200, label=_("App, game or website"))
    how_known = forms.ChoiceField(label=_("How do you know about it?"), choices=HowKnown.choices,
                                  required=False, widget=forms.RadioSelect)
    description = description_field(
        _("What happened?"),
        _("When it happened, what you saw, and what has been done so far. You don't need every detail."),
    )
    contact_name = text_field(120, label=_("Your name"))
    contact_phone = text_field(40, label=_("Phone number"),
                               widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"}))
    contact_email = forms.EmailField(required=False, max_length=254, label=_("Email"),
                                     widget=forms.EmailInput(attrs={"autocomplete": "email"}))

    def __init__(self, *args, schools, has_files: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["school"].queryset = schools
        self.has_files = has_files

    def clean_contact_phone(self):
        return clean_phone(self.cleaned_data["contact_phone"])

    def clean(self):
        data = super().clean()
        told = any((data.get(name) or "").strip() for name in ("description", "where_url", "reported_account", "where_app"))
        if not told and not self.has_files:
            raise forms.ValidationError(
                _("Please tell us a little about what happened, or give the link or the account involved."),
                code="empty_report",
            )
        return data

    def submission_fields(self) -> dict:
        data = self.cleaned_data
        fields = {name: data[name] for name in (
            "reporter_kind", "school", "age_band", "category", "reported_account", "where_url", "where_app",
            "how_known", "description", "contact_name", "contact_phone", "contact_email")}
        fields["contact_ok"] = bool(data["contact_phone"] or data["contact_email"])
        return fields


# --- Later: tracking, adding information, the danger follow-up ----------------------


class UnechoedTextInput(forms.TextInput):
    """A visible box (a child must see what they type) that is never refilled:
    secret words do not come back in a page after a failed try."""

    def format_value(self, value):
        return None


class TrackForm(PublicForm):
    code = forms.CharField(label=_("Tracking code"), max_length=20,
                           widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
                           error_messages={"required": _("Please write the tracking code.")})
    phrase = forms.CharField(label=_("Secret words"), max_length=200,
                             widget=UnechoedTextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
                             error_messages={"required": _("Please write the secret words.")})


class AddInformationForm(PublicForm):
    text = description_field(_("What do you want to add?"))


class DangerMoreForm(PublicForm):
    text = description_field(
        _("Tell us more (if you can)"),
        _("For example: what is happening, where you are, and how we can reach you."),
    )

    def clean_text(self):
        text = self.cleaned_data["text"]
        if not text:
            raise forms.ValidationError(_("Please write something first."))
        return text
