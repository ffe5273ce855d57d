"""The school network filter's configuration, query log and statistics.

The resolver (`cophub dns`, module `resolver`) never reads these tables: the
hub writes a snapshot of them (`services.publish`) into the state folder
and the resolver picks it up within a second. What the resolver saw comes
back the other way, as query-log files the worker ingests
(`services.ingest_query_logs`). See docs/netfilter.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Category(models.TextChoices):
    HARMFUL = "harmful", _("Confirmed harmful (this hub)")
    ADULT = "adult", _("Adult content")
    GAMBLING = "gambling", _("Gambling")
    VIOLENCE = "violence", _("Violence")
    SELF_HARM = "self_harm", _("Self-harm and suicide")
    DRUGS = "drugs", _("Drugs")
    SOCIAL = "social", _("Social networks")
    GAMES = "games", _("Games")
    VIDEO = "video", _("Video and streaming")
    CHAT = "chat", _("Chat and dating")
    ADS = "ads", _("Ads and tracking")
    MALWARE = "malware", _("Malware and phishing")
    OTHER = "other", _("Other")


class ListSource(models.TextChoices):
    SUBSCRIPTION = "subscription", _("Subscription (downloaded)")
    UPLOAD = "upload", _("Uploaded file")
    HUB = "hub", _("This hub's confirmed list")


class ListStatus(models.TextChoices):
    NEW = "new", _("Not loaded yet")
    OK = "ok", _("Loaded")
    FLAGGED = "flagged", _("Loaded; some rules held back")
    ERROR = "error", _("Error")


class FilterList(models.Model):
    """One block list. Its text lives in <state>/lists/<pk>.txt, not here."""

    unit = models.ForeignKey("orgs.Unit", on_delete=models.PROTECT, related_name="+", verbose_name=_("unit"))
    name = models.CharField(_("name"), max_length=200)
    category = models.CharField(_("category"), max_length=16, choices=Category.choices)
    source = models.CharField(_("source"), max_length=16, choices=ListSource.choices)
    url = models.URLField(_("address"), max_length=1000, blank=True)
    # Plain domain lines ("example.com") also cover the names under them, as
    # category lists (squidGuard, UT1) mean them. Hosts lines never do.
    match_subdomains = models.BooleanField(_("plain domains cover their subdomains"), default=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    refresh_hours = models.PositiveSmallIntegerField(_("refresh every (hours)"), default=24)
    status = models.CharField(_("status"), max_length=16, choices=ListStatus.choices, default=ListStatus.NEW)
    error = models.TextField(_("error"), blank=True)
    # The import check's report: counts by syntax, skipped lines, held-back rules with reasons.
    report = models.JSONField(default=dict, blank=True)
    rule_count = models.PositiveIntegerField(_("rules"), default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    etag = models.CharField(max_length=200, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    checked_at = models.DateTimeField(_("checked"), null=True, blank=True)
    changed_at = models.DateTimeField(_("changed"), null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["category", "name"]
        verbose_name = _("block list")
        verbose_name_plural = _("block lists")

    def __str__(self) -> str:
        return self.name


class GroupKind(models.TextChoices):
    PUPILS = "pupils", _("Pupils")
    TEACHERS = "teachers", _("Teachers and staff")
    GUESTS = "guests", _("Guests")
    OTHER = "other", _("Other")


class YouTubeMode(models.TextChoices):
    OFF = "off", _("Off")
    MODERATE = "moderate", _("Moderate")
    STRICT = "strict", _("Strict")


class ClientGroup(models.Model):
    """Devices that share a policy: a grade, a class, the teachers, guests."""

    unit = models.ForeignKey("orgs.Unit", on_delete=models.PROTECT, related_name="+", verbose_name=_("unit"))
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=16, choices=GroupKind.choices, default=GroupKind.PUPILS)
    grade = models.PositiveSmallIntegerField(_("grade"), null=True, blank=True)
    class_name = models.CharField(_("class"), max_length=40, blank=True)
    categories = models.JSONField(_("blocked categories"), default=list, blank=True)
    blocked_services = models.JSONField(_("blocked services"), default=list, blank=True)
    safe_search_google = models.BooleanField(_("Google SafeSearch"), default=True)
    safe_search_youtube = models.CharField(_("YouTube restricted mode"), max_length=10, choices=YouTubeMode.choices, default=YouTubeMode.STRICT)
    safe_search_bing = models.BooleanField(_("Bing SafeSearch"), default=True)
    safe_search_duckduckgo = models.BooleanField(_("DuckDuckGo safe search"), default=True)
    # Custom rules, one per line, in any list syntax (adblock-style, hosts, plain domain).
    allow_rules = models.TextField(_("always allow"), blank=True)
    deny_rules = models.TextField(_("always block"), blank=True)
    # When a client's address is in two groups' ranges, the longer prefix wins, then the higher priority.
    priority = models.SmallIntegerField(_("priority"), default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["unit", "-priority", "name"]
        verbose_name = _("client group")
        verbose_name_plural = _("client groups")

    def __str__(self) -> str:
        return self.name


class ClientRange(models.Model):
    """An address or subnet whose devices belong to a group."""

    group = models.ForeignKey(ClientGroup, on_delete=models.CASCADE, related_name="ranges", verbose_name=_("group"))
    cidr = models.CharField(_("address or subnet"), max_length=50)
    # How many devices share this address (a classroom behind one NAT address):
    # the rate limit is per device, so it is multiplied by this.
    devices = models.PositiveIntegerField(_("devices behind this address"), default=1)
    label = models.CharField(_("label"), max_length=120, blank=True)

    class Meta:
        ordering = ["group", "cidr"]
        verbose_name = _("address range")
        verbose_name_plural = _("address ranges")

    def __str__(self) -> str:
        return self.cidr


class ScheduleSlot(models.Model):
    """A time of the week when more is blocked for a group.

    `days` are the days the slot starts on (0 = Monday); a slot whose end is
    not after its start runs across midnight into the next day.
    """

    group = models.ForeignKey(ClientGroup, on_delete=models.CASCADE, related_name="slots", verbose_name=_("group"))
    label = models.CharField(_("label"), max_length=120, blank=True)
    days = models.JSONField(_("days"), default=list)
    start = models.TimeField(_("from"))
    end = models.TimeField(_("until"))
    block_all = models.BooleanField(_("block all internet"), default=False)
    services = models.JSONField(_("blocked services"), default=list, blank=True)
    categories = models.JSONField(_("blocked categories"), default=list, blank=True)

    class Meta:
        ordering = ["group", "start"]
        verbose_name = _("schedule slot")
        verbose_name_plural = _("schedule slots")


class TemporaryUnblock(models.Model):
    """A name let through for one group until a time, then blocked again on its own."""

    group = models.ForeignKey(ClientGroup, on_delete=models.CASCADE, related_name="unblocks", verbose_name=_("group"))
    domain = models.CharField(_("domain"), max_length=253)
    until = models.DateTimeField(_("until"))
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-until"]
        verbose_name = _("temporary unblock")
        verbose_name_plural = _("temporary unblocks")


class BlockMode(models.TextChoices):
    NXDOMAIN = "nxdomain", _("Name does not exist (NXDOMAIN)")
    NULL = "null", _("Empty address (0.0.0.0 and ::)")
    PAGE = "page", _("Address of the block page")


class Privacy(models.TextChoices):
    KEEP = "keep", _("Keep the client's address")
    HASH = "hash", _("Keep a keyed hash of the address")
    DROP = "drop", _("Do not keep the address")


class ResolverSettings(models.Model):
    """The resolver's installation-wide settings: one row (pk=1)."""

    upstreams = models.TextField(_("upstream servers"), default="1.1.1.1\n8.8.8.8", help_text=_("One per line: an address, optionally with a port (9.9.9.9:53, [2620:fe::fe]:53)."))
    upstream_timeout_ms = models.PositiveIntegerField(_("upstream timeout (ms)"), default=1000)
    block_mode = models.CharField(_("answer for blocked names"), max_length=10, choices=BlockMode.choices, default=BlockMode.NXDOMAIN)
    block_page_ipv4 = models.GenericIPAddressField(_("block page address (IPv4)"), protocol="IPv4", null=True, blank=True)
    block_page_ipv6 = models.GenericIPAddressField(_("block page address (IPv6)"), protocol="IPv6", null=True, blank=True)
    blocked_ttl = models.PositiveIntegerField(_("TTL of blocked answers (s)"), default=10)
    cache_size = models.PositiveIntegerField(_("cache size (answers)"), default=100_000)
    privacy = models.CharField(_("client addresses in the log"), max_length=8, choices=Privacy.choices, default=Privacy.HASH)
    log_queries = models.BooleanField(_("keep a query log"), default=True)
    log_retention_days = models.PositiveSmallIntegerField(_("keep the query log for (days)"), default=30)
    rate_limit_qps = models.PositiveIntegerField(_("queries per second per device"), default=50, help_text=_("0 turns the limit off. Multiplied by the devices behind an address."))
    rate_limit_exempt = models.TextField(_("never rate-limited"), default="127.0.0.1\n::1", blank=True)
    default_group = models.ForeignKey(ClientGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("group for other clients"))
    alert_enabled = models.BooleanField(_("alert the counsellor"), default=False)
    alert_categories = models.JSONField(_("alert on categories"), default=list, blank=True)
    alert_threshold = models.PositiveSmallIntegerField(_("blocked queries before an alert"), default=20)
    alert_window_minutes = models.PositiveSmallIntegerField(_("within (minutes)"), default=30)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        verbose_name = _("resolver settings")
        verbose_name_plural = _("resolver settings")


class Action(models.TextChoices):
    FORWARDED = "forwarded", _("Forwarded")
    CACHED = "cached", _("From the cache")
    BLOCKED = "blocked", _("Blocked")
    SAFE_SEARCH = "safe_search", _("Safe search")
    SERVFAIL = "servfail", _("Upstream failed")
    REFUSED = "refused", _("Refused")
    RATE_LIMITED = "rate_limited", _("Rate limited")


class QueryLog(models.Model):
    """What the resolver answered: one row per client, name and outcome per second (`count` repeats)."""

    ts = models.DateTimeField(db_index=True)
    client = models.CharField(max_length=64, blank=True)
    # The group's id when the query was answered (0: no group); groups may be deleted since.
    group_ref = models.BigIntegerField(default=0)
    name = models.CharField(max_length=255, db_index=True)
    qtype = models.PositiveIntegerField()
    action = models.CharField(max_length=16, choices=Action.choices)
    category = models.CharField(max_length=16, blank=True)
    rule = models.CharField(max_length=300, blank=True)
    count = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["action", "ts"])]


class QueryStat(models.Model):
    """Queries per hour, by group, outcome and category; kept after the log expires."""

    hour = models.DateTimeField()
    group_ref = models.BigIntegerField(default=0)
    action = models.CharField(max_length=16, choices=Action.choices)
    category = models.CharField(max_length=16, blank=True)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "group_ref", "action", "category"], name="netfilter_stat_once")]


class MistakeReport(models.Model):
    """"This is a mistake" from the block page: for the IT admin to review."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        UNBLOCKED = "unblocked", _("Unblocked")
        DECLINED = "declined", _("Kept blocked")

    name = models.CharField(_("name"), max_length=255)
    rule = models.CharField(_("rule"), max_length=300, blank=True)
    group = models.ForeignKey(ClientGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("group"))
    message = models.TextField(_("message"), blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("mistake report")
        verbose_name_plural = _("mistake reports")


class IngestedLog(models.Model):
    """A query-log file the worker has ingested: its name is taken once, in the transaction that adds its rows."""

    name = models.CharField(max_length=200, unique=True)
    rows = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    ingested_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("ingested query-log file")
        verbose_name_plural = _("ingested query-log files")
