"""Forms of the staff console: the two-factor code, queue filters, case actions and staff entry."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cophub.core.categories import AGE_BANDS, CATEGORY_CHOICES
from cophub.intake.models import STAFF_CHANNELS, HowKnown, ReporterKind
from cophub.orgs.models import Unit, UnitKind
from cophub.orgs.permissions import units_for

from . import permissions, services, workflow
from .models import Priority, State
from .services import QueueFilter


def unit_choices(units) -> list[tuple[str, str]]:
    """Units as select options, indented by depth so the tree shows."""
    units = list(units)
    top = min((u.path.count("/") for u in units), default=0)
    return [(str(u.pk), "— " * (u.path.count("/") - top) + u.name) for u in units]


class OneTimeCodeInput(forms.TextInput):
    """Comes back empty after a refusal: a wrong or used code is of no use again, the next one is typed afresh."""

    def format_value(self, value):
        return None


class OTPTokenForm(forms.Form):
    """The 6-digit code from the authenticator app."""

    otp_token = forms.CharField(
        label=_("6-digit code"),
        max_length=20,
        help_text=_("Open the authenticator app on your phone and type the code it shows now."),
        widget=OneTimeCodeInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True,
                                       "pattern": "[0-9 ]*", "size": 8}),
    )

    def clean_otp_token(self) -> str:
        # Apps show the code as "123 456"; people copy it with the space.
        token = "".join(self.cleaned_data["otp_token"].split())
        if not (token.isascii() and token.isdigit() and len(token) == 6):
            raise forms.ValidationError(_("Enter the 6 digits the app shows, without letters."))
        return token


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input; the vault inspects each one itself."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            files = [f for f in data if f]
        else:
            files = [data] if data else []
        if self.required and not files:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return files


# --- The queue ------------------------------------------------------------------------


class QueueFilterForm(forms.Form):
    DUE_CHOICES = [("", _("Any time")), ("overdue", _("Overdue")), ("today", _("Due within 24 hours"))]
    ASSIGNEE_CHOICES = [("", _("Anyone")), ("me", _("Assigned to me")), ("none", _("Unassigned"))]

    q = forms.CharField(label=_("Reference or tracking code"), required=False, max_length=40,
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("e.g. 2025-000012 or ABCD-EFGH")}))
    unit = forms.ChoiceField(label=_("Unit"), required=False)
    priority = forms.ChoiceField(label=_("Priority"), required=False, choices=[("", _("Any priority"))] + Priority.choices)
    state = forms.ChoiceField(label=_("State"), required=False,
                              choices=[("", _("Open cases")), ("all", _("All states"))] + State.choices)
    category = forms.ChoiceField(label=_("Category"), required=False, choices=[("", _("Any category"))] + CATEGORY_CHOICES)
    due = forms.ChoiceField(label=_("Response due"), required=False, choices=DUE_CHOICES)
    assignee = forms.ChoiceField(label=_("Assignee"), required=False, choices=ASSIGNEE_CHOICES)

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        visible_units = units_for(user, permissions.ACTIONS["case.view"]).order_by("path")
        self.fields["unit"].choices = [("", _("All my units"))] + unit_choices(visible_units)

    def to_filter(self) -> QueueFilter:
        """The filter to apply; a value that does not validate is simply not applied."""
        if not self.is_bound:
            return QueueFilter()
        self.is_valid()
        values = {name: value for name, value in self.cleaned_data.items() if value}
        if "unit" in values:
            values["unit"] = int(values["unit"])
        if "q" in values:
            values["q"] = values["q"].strip()
        return QueueFilter(**values)


# --- Case actions ------------------------------------------------------------------------


class CaseForm(forms.Form):
    """A form about one case: its choices depend on the case."""

    def __init__(self, case, *args, **kwargs):
        self.case = case
        super().__init__(*args, **kwargs)


class StaffChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user):
        full_name = user.get_full_name()
        return f"{full_name} ({user.get_username()})" if full_name else user.get_username()


class AssignForm(CaseForm):
    assignee = StaffChoiceField(label=_("Assign to"), queryset=None, required=False, empty_label=_("Nobody (unassign)"))

    def __init__(self, case, *args, **kwargs):
        super().__init__(case, *args, **kwargs)
        self.fields["assignee"].queryset = services.assignable_staff(case)
        self.fields["assignee"].initial = case.assignee_id


class TransitionForm(CaseForm):
    target = forms.ChoiceField(label=_("Move to"))
    reason = forms.CharField(label=_("Why"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text=_("Written to the timeline and the audit log."))

    def __init__(self, case, *args, **kwargs):
        super().__init__(case, *args, **kwargs)
        self.fields["target"].choices = [(s, State(s).label) for s in workflow.allowed(case.state)]
        self.fields["target"].error_messages["invalid_choice"] = _(
            "The case cannot move to this state from where it is now. Reload the page to see its current state.")


class ClassifyForm(CaseForm):
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices)
    category = forms.ChoiceField(label=_("Category"), choices=CATEGORY_CHOICES)

    def __init__(self, case, *args, **kwargs):
        super().__init__(case, *args, **kwargs)
        self.fields["priority"].initial = case.priority
        self.fields["category"].initial = case.category


class NoteForm(CaseForm):
    text = forms.CharField(label=_("Internal note"), max_length=10000, widget=forms.Textarea(attrs={"rows": 3}),
                           help_text=_("Only staff see notes. The reporter never does."))


class MessageForm(CaseForm):
    text = forms.CharField(label=_("Message to the reporter"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3}),
                           help_text=_("The reporter will see this on their status page, exactly as written. Use plain, kind words a child understands, and no names or details of other people."))


class MergeForm(CaseForm):
    into = forms.CharField(label=_("Reference of the case this one duplicates"), max_length=24,
                           widget=forms.TextInput(attrs={"placeholder": _("e.g. 2025-000012")}))
    reason = forms.CharField(label=_("Why"), max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    confirm = forms.BooleanField(label=_("I have checked that both cases are about the same incident. Merging cannot be undone."))

    def __init__(self, case, user, *args, **kwargs):
        self.user = user
        super().__init__(case, *args, **kwargs)

    def clean_into(self):
        target = services.find_by_reference(self.user, self.cleaned_data["into"])
        if target is None:
            raise forms.ValidationError(_("There is no case with this reference that you can see."))
        if target.pk == self.case.pk:
            raise forms.ValidationError(_("A case cannot be merged into itself."))
        return target


class AttachForm(CaseForm):
    files = MultipleFileField(label=_("Files"), help_text=_("Pictures, videos, sound recordings or PDF files. They are encrypted as soon as they arrive."))


# --- Staff entry ------------------------------------------------------------------------------


def entry_units(user):
    return units_for(user, permissions.ACTIONS["submission.enter"]).order_by("path")


class EntryForm(forms.Form):
    """A report received by phone, letter, email or in person, typed in by staff."""

    channel = forms.ChoiceField(label=_("Received by"), choices=[(c.value, c.label) for c in STAFF_CHANNELS])
    received_at = forms.DateTimeField(label=_("Received at"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
                                      help_text=_("When the call, letter, email or visit came in."))
    unit = forms.ModelChoiceField(label=_("Unit in charge"), queryset=Unit.objects.none(), empty_label=None)
    danger = forms.BooleanField(label=_("A child is in danger now"), required=False,
                                help_text=_("The case opens as P1. Make sure the caller has also been given 111 and 113."))
    reporter_kind = forms.ChoiceField(label=_("Who is reporting"), choices=ReporterKind.choices, initial=ReporterKind.PARENT)
    category = forms.ChoiceField(label=_("Type of incident"), choices=CATEGORY_CHOICES, initial="other")
    description = forms.CharField(label=_("Description"), max_length=settings.COPHUB_MAX_TEXT_CHARS, widget=forms.Textarea(attrs={"rows": 6}),
                                  help_text=_("What the caller said, in their words where possible."))
    age_band = forms.ChoiceField(label=_("Child's age"), choices=[("", _("Not known"))] + AGE_BANDS, required=False)
    school = forms.ModelChoiceField(label=_("Child's school"), queryset=Unit.objects.none(), required=False, empty_label=_("Not known"))
    where_url = forms.CharField(label=_("Link"), max_length=2000, required=False)
    where_app = forms.CharField(label=_("App, game or website"), max_length=200, required=False)
    where_unknown = forms.BooleanField(label=_("The caller does not know where it happened"), required=False)
    reported_account = forms.CharField(label=_("Reported account"), max_length=300, required=False,
                                       help_text=_("The name, number or link of the account that did it."))
    how_known = forms.ChoiceField(label=_("How they know"), choices=[("", _("Not known"))] + HowKnown.choices, required=False)
    contact_ok = forms.BooleanField(label=_("The caller agrees to be contacted"), required=False)
    contact_name = forms.CharField(label=_("Caller's name"), max_length=120, required=False)
    contact_phone = forms.CharField(label=_("Caller's phone"), max_length=40, required=False)
    contact_email = forms.EmailField(label=_("Caller's email"), required=False)
    files = MultipleFileField(label=_("Files"), required=False,
                              help_text=_("Anything the caller sent or brought (scans of a letter, screenshots). Optional."))

    SUBMISSION_FIELDS = ("danger", "reporter_kind", "category", "description", "age_band", "school", "where_url", "where_app",
                         "where_unknown", "reported_account", "how_known", "contact_ok", "contact_name", "contact_phone", "contact_email")

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        units = entry_units(user)
        self.fields["unit"].queryset = units
        self.fields["unit"].choices = unit_choices(units)
        self.fields["school"].queryset = units.filter(kind=UnitKind.SCHOOL).order_by("name")
        self.fields["received_at"].initial = timezone.localtime().replace(second=0, microsecond=0)

    def clean_received_at(self):
        value = self.cleaned_data["received_at"]
        # A few minutes of leeway for clocks that disagree.
        if value > timezone.now() + timedelta(minutes=5):
            raise forms.ValidationError(_("This time is in the future."))
        return value

    def submission_fields(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.SUBMISSION_FIELDS}
