"""Forms of the network filter's console pages and of the public "this is a mistake" page.

Everything the resolver will read is checked here, with the line or the
value that is wrong named in the message: an address that is not one, a
custom rule the resolver cannot use, a slot without a day.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, time, timedelta

from django import forms
from django.forms import inlineformset_factory
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import catalog
from .models import Action, Category, ClientGroup, ClientRange, FilterList, ResolverSettings, ScheduleSlot

MAX_UPLOAD_MB = 64
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_CUSTOM_RULES = 5000
# "One school day": a temporary unblock made during the day ends when lessons end.
SCHOOL_DAY_END = time(17, 30)

DAYS = [(0, _("Mon")), (1, _("Tue")), (2, _("Wed")), (3, _("Thu")), (4, _("Fri")), (5, _("Sat")), (6, _("Sun"))]


def category_choices(*, with_harmful: bool = True) -> list[tuple[str, str]]:
    return [(value, label) for value, label in Category.choices if with_harmful or value != Category.HARMFUL]


class AlwaysOnCheckboxes(forms.CheckboxSelectMultiple):
    """Checkboxes where some options are always on: shown ticked and disabled."""

    def __init__(self, *args, always_on=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.always_on = set(always_on)

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if str(value) in self.always_on:
            option["selected"] = True
            option["attrs"] = {**option["attrs"], "checked": True, "disabled": True}
        return option


def categories_field(label, *, help_text="") -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=label, required=False, choices=category_choices(), help_text=help_text,
        widget=AlwaysOnCheckboxes(always_on={Category.HARMFUL.value}))


def services_field(label, *, help_text="") -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(label=label, required=False, choices=catalog.choices(), help_text=help_text,
                                     widget=forms.CheckboxSelectMultiple)


def _without_harmful(values) -> list[str]:
    # The hub's confirmed list is on for every client: never stored as a choice.
    return [value for value in values if value != Category.HARMFUL]


# --- Names, addresses and rules --------------------------------------------------------------------------


def clean_domain(text: str) -> str:
    """A domain name as the resolver compares it (lower case, IDNA), or a ValidationError in the user's words."""
    from .rules import normalize_name

    raw = (text or "").strip()
    if "//" in raw:  # a pasted link: keep its host
        from urllib.parse import urlsplit

        raw = urlsplit(raw).hostname or ""
    raw = raw.split("/")[0].strip().rstrip(".")
    name = normalize_name(raw) if raw else None
    if not name or b"." not in name:
        raise forms.ValidationError(_("“%(text)s” is not a domain name (for example: hoc.example.edu.vn).") % {"text": text.strip()[:100]})
    return name.decode("ascii")


def rule_line_errors(text: str, *, block: bool = False) -> tuple[list[str], list[int]]:
    """The usable rules of a custom-rules box, and the numbers of the lines the resolver could not use.

    A block rule that the list check would hold back (a public suffix such as
    `com.vn`, the hub itself, a government name) is refused here too.
    """
    from .rules import check_list, parse_rules

    lines = (text or "").splitlines()
    kept, bad = [], []
    protected = _protected_names() if block else ()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("!", "#")):
            continue
        parsed = parse_rules([stripped])
        report = parsed.report
        usable = report["rules"] >= 1 and not report["invalid"] and not report["skipped"]
        if usable and block and check_list(parsed, protected=protected):
            usable = False
        if usable:
            kept.append(stripped)
        else:
            bad.append(number)
    return kept, bad


def _protected_names() -> tuple[str, ...]:
    from .services import protected_names

    return protected_names()


def clean_rules(text: str, *, label, block: bool = False) -> str:
    lines = [line.strip() for line in (text or "").splitlines()]
    if sum(1 for line in lines if line) > MAX_CUSTOM_RULES:
        raise forms.ValidationError(_("At most %(n)d rules in one box.") % {"n": MAX_CUSTOM_RULES})
    kept, bad = rule_line_errors(text, block=block)
    if bad:
        shown = ", ".join(str(n) for n in bad[:20]) + ("…" if len(bad) > 20 else "")
        raise forms.ValidationError(
            _("%(box)s: the filter cannot use line(s) %(lines)s. Write one rule per line: a domain (example.com), "
              "||example.com^, *.example.com or a hosts line (0.0.0.0 example.com). A block rule may not cover a whole "
              "domain ending such as com.vn, this hub or a government site.") % {"box": label, "lines": shown})
    return "\n".join(line for line in lines if line)


def parse_endpoint(text: str) -> str:
    """"9.9.9.9", "9.9.9.9:53", "2620:fe::fe", "[2620:fe::fe]:53" → the same, checked; ValueError otherwise."""
    text = text.strip()
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(text)
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(text)
            port = rest[1:]
        if ipaddress.ip_address(host).version != 6:
            raise ValueError(text)
    elif text.count(":") == 1:
        host, port = text.split(":")
        if ipaddress.ip_address(host).version != 4:
            raise ValueError(text)
    else:
        ipaddress.ip_address(host)
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(text)
    return text


def clean_lines(text: str, check, message) -> str:
    values = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            values.append(check(line))
        except ValueError:
            raise forms.ValidationError(message % {"line": line[:100]}) from None
    return "\n".join(dict.fromkeys(values))


def _address_or_network(text: str) -> str:
    return str(ipaddress.ip_network(text, strict=False)) if "/" in text else str(ipaddress.ip_address(text))


# --- Block lists -----------------------------------------------------------------------------------


class SubscriptionForm(forms.ModelForm):
    url = forms.URLField(label=_("Address of the list"), max_length=1000, assume_scheme="https",
                         help_text=_("An https:// address of a block list (hosts file, adblock list or one domain per line)."))

    class Meta:
        model = FilterList
        fields = ["url", "name", "category", "match_subdomains", "refresh_hours"]
        labels = {"url": _("Address of the list"), "name": _("Name"), "category": _("Category"),
                  "match_subdomains": _("A plain domain line also blocks the names under it"),
                  "refresh_hours": _("Check for a new version every (hours)")}
        help_texts = {"url": _("An https:// address of a block list (hosts file, adblock list or one domain per line)."),
                      "match_subdomains": _("Lines in hosts format (0.0.0.0 example.com) always block only the name itself.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["url"].required = True
        self.fields["category"].choices = category_choices(with_harmful=False)
        self.fields["refresh_hours"].min_value = 1
        self.fields["refresh_hours"].widget.attrs.update({"min": 1, "max": 24 * 30})

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url.lower().startswith(("https://", "http://")):
            raise forms.ValidationError(_("The address must start with https:// or http://."))
        return url

    def clean_refresh_hours(self) -> int:
        hours = self.cleaned_data["refresh_hours"]
        if not 1 <= hours <= 24 * 30:
            raise forms.ValidationError(_("Choose between 1 hour and 720 hours (30 days)."))
        return hours


class UploadForm(forms.Form):
    file = forms.FileField(label=_("File"), help_text=_("A block list of at most 64 MB, in any text encoding: hosts file, adblock list or one domain per line."))
    name = forms.CharField(label=_("Name"), max_length=200, required=False,
                           help_text=_("Empty: the file's name."))
    category = forms.ChoiceField(label=_("Category"), choices=category_choices(with_harmful=False))
    match_subdomains = forms.BooleanField(label=_("A plain domain line also blocks the names under it"), required=False, initial=True)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is larger than %(mb)d MB.") % {"mb": MAX_UPLOAD_MB})
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        return upload


# --- Groups -------------------------------------------------------------------------------------------


class GroupForm(forms.ModelForm):
    categories = categories_field(_("Blocked categories"), help_text=_("The hub's confirmed harmful list is always on, for every group."))
    blocked_services = services_field(_("Blocked services"))

    class Meta:
        model = ClientGroup
        fields = ["unit", "name", "kind", "grade", "class_name", "priority", "categories", "blocked_services",
                  "safe_search_google", "safe_search_youtube", "safe_search_bing", "safe_search_duckduckgo",
                  "allow_rules", "deny_rules"]
        labels = {"unit": _("School or unit"), "name": _("Name"), "kind": _("Kind"), "grade": _("Grade"), "class_name": _("Class"),
                  "priority": _("Priority"), "safe_search_google": _("Google SafeSearch"),
                  "safe_search_youtube": _("YouTube restricted mode"), "safe_search_bing": _("Bing SafeSearch"),
                  "safe_search_duckduckgo": _("DuckDuckGo safe search"), "allow_rules": _("Always allow"),
                  "deny_rules": _("Always block")}
        help_texts = {
            "grade": _("For a grade or a class: 1 to 12."),
            "priority": _("When a device's address is in two groups, the narrower range wins, then the higher priority."),
            "allow_rules": _("One rule per line: example.com (with the names under it), ||example.com^, *.example.com. Checked before everything else, except the hub's confirmed harmful list."),
            "deny_rules": _("One rule per line, same forms as above."),
        }
        widgets = {"allow_rules": forms.Textarea(attrs={"rows": 4, "class": "mono"}),
                   "deny_rules": forms.Textarea(attrs={"rows": 4, "class": "mono"})}

    def __init__(self, *args, units=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].queryset = units
        self.fields["unit"].empty_label = None
        self.fields["grade"].widget.attrs.update({"min": 1, "max": 12})
        if self.instance.pk:
            self.initial["categories"] = _without_harmful(self.instance.categories)

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("Enter the group's name."))
        return name

    def clean_grade(self):
        grade = self.cleaned_data.get("grade")
        if grade is not None and not 1 <= grade <= 12:
            raise forms.ValidationError(_("A grade is between 1 and 12."))
        return grade

    def clean_categories(self) -> list[str]:
        return _without_harmful(self.cleaned_data["categories"])

    def clean_allow_rules(self) -> str:
        return clean_rules(self.cleaned_data["allow_rules"], label=_("Always allow"))

    def clean_deny_rules(self) -> str:
        return clean_rules(self.cleaned_data["deny_rules"], label=_("Always block"), block=True)


class RangeForm(forms.ModelForm):
    class Meta:
        model = ClientRange
        fields = ["cidr", "devices", "label"]
        labels = {"cidr": _("Address or subnet"), "devices": _("Devices behind it"), "label": _("Label")}
        help_texts = {"cidr": _("10.1.6.0/24, 192.168.1.25 or 2001:db8:6::/64."),
                      "devices": _("More than 1 when a whole room shares one address (NAT): the rate limit is multiplied by it.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["devices"].widget.attrs.update({"min": 1})

    def clean_cidr(self) -> str:
        text = self.cleaned_data["cidr"].strip()
        try:
            if "/" not in text:
                return str(ipaddress.ip_address(text))
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise forms.ValidationError(_("“%(text)s” is not an address or a subnet (10.1.6.0/24).") % {"text": text[:60]}) from None
        try:
            return str(ipaddress.ip_network(text))
        except ValueError:
            raise forms.ValidationError(_("“%(text)s” has host bits set: did you mean %(network)s?") % {"text": text, "network": loose}) from None

    def clean_devices(self) -> int:
        devices = self.cleaned_data["devices"]
        if devices < 1:
            raise forms.ValidationError(_("At least 1."))
        return devices


class SlotForm(forms.ModelForm):
    days = forms.TypedMultipleChoiceField(label=_("Days"), choices=DAYS, coerce=int, widget=forms.CheckboxSelectMultiple,
                                          help_text=_("The days the slot starts on."))
    services = services_field(_("Blocked services"))
    categories = forms.MultipleChoiceField(label=_("Blocked categories"), required=False, choices=category_choices(with_harmful=False),
                                           widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ScheduleSlot
        fields = ["label", "days", "start", "end", "block_all", "services", "categories"]
        labels = {"label": _("Label"), "start": _("From"), "end": _("Until"), "block_all": _("Block all internet")}
        help_texts = {"end": _("An end not after the start runs across midnight: 22:00 until 06:00 is the night into the next day.")}
        widgets = {"start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
                   "end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M")}

    def clean(self):
        data = super().clean()
        if data.get("DELETE"):
            return data
        if not (data.get("block_all") or data.get("services") or data.get("categories")) and not self.errors:
            raise forms.ValidationError(_("Choose what the slot blocks: all internet, services or categories."))
        return data


class BaseSlotFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        for form in self.forms:
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.has_changed() and not form.cleaned_data.get("days"):
                form.add_error("days", _("Choose at least one day."))


RangeFormSet = inlineformset_factory(ClientGroup, ClientRange, form=RangeForm, extra=2, can_delete=True, max_num=500, validate_max=True)
SlotFormSet = inlineformset_factory(ClientGroup, ScheduleSlot, form=SlotForm, formset=BaseSlotFormSet, extra=1, can_delete=True,
                                    max_num=50, validate_max=True)


# --- Temporary unblocks ------------------------------------------------------------------------------------


DURATIONS = [("15m", _("15 minutes")), ("1h", _("1 hour")), ("day", _("Until the end of the school day (17:30)")),
             ("until", _("Until a date and time"))]


def end_of_school_day(now: datetime) -> datetime:
    """17:30 today, local time; after that, 17:30 on the next day that is not a Sunday."""
    local = timezone.localtime(now)
    end = local.replace(hour=SCHOOL_DAY_END.hour, minute=SCHOOL_DAY_END.minute, second=0, microsecond=0)
    while end <= local or end.weekday() == 6:
        end = (end + timedelta(days=1)).replace(hour=SCHOOL_DAY_END.hour, minute=SCHOOL_DAY_END.minute)
    return end


def unblock_until(duration: str, until: datetime | None, now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    if duration == "15m":
        return now + timedelta(minutes=15)
    if duration == "1h":
        return now + timedelta(hours=1)
    if duration == "day":
        return end_of_school_day(now)
    return until


class DurationMixin:
    """The duration choice and the date it needs for "until"; cleaned to `until_at`."""

    max_days = 90

    def clean(self):
        data = super().clean()
        duration = data.get("duration")
        until = data.get("until")
        if duration == "until":
            if until is None:
                self.add_error("until", _("Choose the date and time the unblock ends."))
            elif until <= timezone.now():
                self.add_error("until", _("The end must be in the future."))
            elif until > timezone.now() + timedelta(days=self.max_days):
                self.add_error("until", _("At most %(days)d days: for longer, add the name to the group's “Always allow”.") % {"days": self.max_days})
        if duration and not self.errors:
            data["until_at"] = unblock_until(duration, until)
        return data


class UnblockForm(DurationMixin, forms.Form):
    group = forms.ModelChoiceField(label=_("Group"), queryset=ClientGroup.objects.none(), empty_label=None)
    domain = forms.CharField(label=_("Domain"), max_length=253, help_text=_("The name and the names under it are let through."))
    duration = forms.ChoiceField(label=_("For how long"), choices=DURATIONS, initial="1h", widget=forms.RadioSelect)
    until = forms.DateTimeField(label=_("Until"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                input_formats=["%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M"],
                                help_text=_("Only for “Until a date and time”."))
    reason = forms.CharField(label=_("Reason"), max_length=300, required=False)

    def __init__(self, *args, groups=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = groups if groups is not None else ClientGroup.objects.none()

    def clean_domain(self) -> str:
        return clean_domain(self.cleaned_data["domain"])


class MistakeDecisionForm(DurationMixin, forms.Form):
    decision = forms.ChoiceField(choices=[("unblock", _("Unblock for the group")), ("keep", _("Keep blocked"))], widget=forms.HiddenInput)
    duration = forms.ChoiceField(label=_("For how long"), choices=DURATIONS, initial="day", required=False)
    until = forms.DateTimeField(label=_("Until"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                input_formats=["%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M"])

    def clean(self):
        data = forms.Form.clean(self)
        if data.get("decision") == "unblock":
            if not data.get("duration"):
                self.add_error("duration", _("Choose for how long."))
                return data
            return super().clean()
        return data


# --- Settings ---------------------------------------------------------------------------------------------


class SettingsForm(forms.ModelForm):
    alert_categories = forms.MultipleChoiceField(label=_("Alert on blocked queries in these categories"), required=False,
                                                 choices=category_choices(), widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ResolverSettings
        fields = ["upstreams", "upstream_timeout_ms", "block_mode", "block_page_ipv4", "block_page_ipv6", "blocked_ttl", "cache_size",
                  "privacy", "log_queries", "log_retention_days", "rate_limit_qps", "rate_limit_exempt", "default_group",
                  "alert_enabled", "alert_categories", "alert_threshold", "alert_window_minutes"]
        labels = {
            "upstreams": _("Upstream DNS servers"), "upstream_timeout_ms": _("Upstream timeout (ms)"),
            "block_mode": _("Answer for blocked names"), "block_page_ipv4": _("Block page address (IPv4)"),
            "block_page_ipv6": _("Block page address (IPv6)"), "blocked_ttl": _("TTL of blocked answers (seconds)"),
            "cache_size": _("Cache size (answers)"), "privacy": _("Client addresses in the query log"),
            "log_queries": _("Keep a query log"), "log_retention_days": _("Keep the query log for (days)"),
            "rate_limit_qps": _("Queries per second per device"), "rate_limit_exempt": _("Never rate-limited"),
            "default_group": _("Group for devices in no group"), "alert_enabled": _("Alert the school counsellor"),
            "alert_threshold": _("Blocked queries before an alert"), "alert_window_minutes": _("Within (minutes)"),
        }
        help_texts = {
            "upstreams": _("One per line: an address, optionally with a port (9.9.9.9:53, [2620:fe::fe]:53)."),
            "block_mode": _("“Block page” shows pupils a page that explains the block and lets them report a mistake."),
            "rate_limit_qps": _("0 turns the limit off. Multiplied by the devices behind an address."),
            "rate_limit_exempt": _("One address or subnet per line."),
            "default_group": _("Empty: devices outside every group's ranges get only the hub's confirmed harmful list."),
            "alert_enabled": _("When a device is blocked many times in a short time, the counsellor gets an alert."),
        }
        widgets = {"upstreams": forms.Textarea(attrs={"rows": 3, "class": "mono"}),
                   "rate_limit_exempt": forms.Textarea(attrs={"rows": 3, "class": "mono"})}

    def __init__(self, *args, groups=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_group"].queryset = groups if groups is not None else ClientGroup.objects.all()
        self.fields["default_group"].empty_label = _("— none —")
        self.fields["default_group"].label_from_instance = lambda group: f"{group.name} ({group.unit.name})"

    def clean_upstreams(self) -> str:
        value = clean_lines(self.cleaned_data["upstreams"], parse_endpoint,
                            _("“%(line)s” is not a server address (9.9.9.9, 9.9.9.9:53 or [2620:fe::fe]:53)."))
        if not value:
            raise forms.ValidationError(_("Enter at least one upstream server."))
        if len(value.splitlines()) > 8:
            raise forms.ValidationError(_("At most 8 upstream servers."))
        return value

    def clean_rate_limit_exempt(self) -> str:
        return clean_lines(self.cleaned_data["rate_limit_exempt"], _address_or_network,
                           _("“%(line)s” is not an address or a subnet."))

    def clean_upstream_timeout_ms(self) -> int:
        value = self.cleaned_data["upstream_timeout_ms"]
        if not 100 <= value <= 10_000:
            raise forms.ValidationError(_("Between 100 and 10000 ms."))
        return value

    def clean_blocked_ttl(self) -> int:
        value = self.cleaned_data["blocked_ttl"]
        if value > 86_400:
            raise forms.ValidationError(_("At most 86400 seconds (one day)."))
        return value

    def clean_cache_size(self) -> int:
        value = self.cleaned_data["cache_size"]
        if value > 5_000_000:
            raise forms.ValidationError(_("At most 5000000 answers."))
        return value

    def clean_log_retention_days(self) -> int:
        value = self.cleaned_data["log_retention_days"]
        if not 1 <= value <= 365:
            raise forms.ValidationError(_("Between 1 and 365 days."))
        return value

    def clean_alert_window_minutes(self) -> int:
        value = self.cleaned_data["alert_window_minutes"]
        if not 1 <= value <= 24 * 60:
            raise forms.ValidationError(_("Between 1 and 1440 minutes."))
        return value

    def clean(self):
        data = super().clean()
        if data.get("block_mode") == "page" and not (data.get("block_page_ipv4") or data.get("block_page_ipv6")):
            self.add_error("block_page_ipv4", _("The block page mode needs the block page's address."))
        if data.get("alert_enabled"):
            if not data.get("alert_categories"):
                self.add_error("alert_categories", _("Choose the categories that raise an alert."))
            if not data.get("alert_threshold"):
                self.add_error("alert_threshold", _("At least 1."))
        return data


# --- The query log's filters -------------------------------------------------------------------------------


class QueryLogFilterForm(forms.Form):
    since = forms.DateTimeField(label=_("From"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                input_formats=["%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M"])
    until = forms.DateTimeField(label=_("Until"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                input_formats=["%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M"])
    client = forms.CharField(label=_("Device"), required=False, max_length=64, widget=forms.TextInput(attrs={"class": "mono"}))
    group = forms.TypedChoiceField(label=_("Group"), required=False, coerce=int, empty_value=None)
    action = forms.ChoiceField(label=_("Answer"), required=False)
    category = forms.ChoiceField(label=_("Category"), required=False)
    name = forms.CharField(label=_("Name contains"), required=False, max_length=100, widget=forms.TextInput(attrs={"type": "search"}))

    def __init__(self, *args, groups=(), no_group: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        group_choices = [("", _("All"))] + [(str(g.pk), g.name) for g in groups]
        if no_group:
            group_choices.append(("0", _("No group")))
        self.fields["group"].choices = group_choices
        self.fields["action"].choices = [("", _("All"))] + list(Action.choices)
        self.fields["category"].choices = [("", _("All"))] + category_choices()

    def chosen(self) -> dict:
        return {key: value for key, value in self.cleaned_data.items() if value not in (None, "")} if self.is_valid() else {}


# --- The public "this is a mistake" form ---------------------------------------------------------------------


class MistakeForm(forms.Form):
    name = forms.CharField(label=_("The blocked site"), max_length=255)
    rule = forms.CharField(widget=forms.HiddenInput, max_length=300, required=False)
    group = forms.IntegerField(widget=forms.HiddenInput, required=False)
    message = forms.CharField(label=_("What were you trying to do? (optional)"), required=False, max_length=1000,
                              widget=forms.Textarea(attrs={"rows": 3}),
                              help_text=_("For example: “This is my class's homework site.” Do not write your name or phone number."))

    def clean_name(self) -> str:
        return clean_domain(self.cleaned_data["name"])

    def clean_group(self):
        pk = self.cleaned_data.get("group")
        return ClientGroup.objects.filter(pk=pk).first() if pk else None
