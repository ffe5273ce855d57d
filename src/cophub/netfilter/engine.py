"""The filter's policy as the resolver holds it: which group a client is in,
and what a group does with a name now.

Built from `policy.json` and the compiled rule table (docs/netfilter.md);
no Django. The order in which rules decide is the one the document lists.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import safesearch
from .rules import RuleTable, SmallRules, parse_rules

log = logging.getLogger("cophub.netfilter")

ALLOW, BLOCK, FORWARD = 0, 1, 2
HARMFUL = "harmful"


_CONTROLS = {code: "?" for code in [*range(32), 127]}


@dataclass(slots=True)
class Decision:
    kind: int
    rule: str = ""
    category: str = ""
    log_rule: str = field(init=False, default="")  # the rule as the query log's tab-separated lines carry it
    ede_opt: bytes = field(init=False, default=b"")  # the EDNS record naming the rule (set by the resolver)

    def __post_init__(self) -> None:
        rule = self.rule
        self.log_rule = rule if rule.isprintable() and len(rule) <= 300 else rule.translate(_CONTROLS)[:300]


FORWARD_DECISION = Decision(FORWARD)


def parents(name: bytes):
    """The name and each name above it: a.b.com, b.com, com."""
    yield name
    dot = name.find(b".")
    while dot >= 0:
        yield name[dot + 1:]
        dot = name.find(b".", dot + 1)


def mask_for(table: RuleTable, categories) -> int:
    """The bit mask of the table's slots (lists) whose category is chosen; the hub's list always."""
    mask = table.important_mask
    for slot in table.slots:
        if slot.get("category") in categories:
            mask |= 1 << int(slot["slot"])
    return mask


def slot_info(table: RuleTable, slot: int) -> dict:
    return table.slot_by_number.get(slot, {})


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")[:2]
    return int(hours) * 60 + int(minutes)


class Slot:
    """A schedule slot; `days` are the days it starts on (0 = Monday)."""

    __slots__ = ("label", "days", "start", "end", "block_all", "services", "categories")

    def __init__(self, data: dict):
        self.label = data.get("label") or f"{data['start']}–{data['end']}"
        self.days = frozenset(int(day) for day in data.get("days", ()))
        self.start = _minutes(data["start"])
        self.end = _minutes(data["end"])
        self.block_all = bool(data.get("block_all"))
        self.services = tuple(data.get("services", ()))
        self.categories = tuple(data.get("categories", ()))

    def active(self, weekday: int, minute: int) -> bool:
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Until at or before from: the slot runs across midnight into the next day.
        return (weekday in self.days and minute >= self.start) or ((weekday - 1) % 7 in self.days and minute < self.end)

    def boundaries(self, day_start: datetime, weekday: int):
        """The slot's start and end times that fall on this day."""
        if weekday in self.days:
            yield day_start + timedelta(minutes=self.start)
            if self.start < self.end:
                yield day_start + timedelta(minutes=self.end)
        if self.end <= self.start and (weekday - 1) % 7 in self.days:
            yield day_start + timedelta(minutes=self.end)


class GroupPolicy:
    """One group's rules; `refresh` works out what is in force now."""

    def __init__(self, data: dict, table: RuleTable, services: dict, tz):
        self.id = int(data.get("id") or 0)
        self.name = data.get("name", "")
        self.priority = int(data.get("priority") or 0)
        self.table = table
        self.tz = tz
        self.services_catalog = services
        self.base_categories = set(data.get("categories", ())) | {HARMFUL}
        self.base_services = tuple(data.get("blocked_services", ()))
        self.allow = SmallRules(parse_rules(data.get("allow", ())))
        self.deny = SmallRules(parse_rules(data.get("deny", ())))
        self.has_allow, self.has_deny = bool(self.allow), bool(self.deny)  # most groups have neither: no call per name
        self.safe = safesearch.build_map(data.get("safe_search") or {})
        self.slots = [Slot(slot) for slot in data.get("slots", ())]
        self.unblocks = []
        for unblock in data.get("unblocks", ()):
            until = datetime.fromisoformat(unblock["until"]).timestamp()
            self.unblocks.append((unblock["domain"].strip(".").lower().encode("idna"), until))
        # What is in force now (set by refresh).
        self.state = None
        self.mask = 0
        self.block_all: Slot | None = None
        self.blocked_services: dict[bytes, str] = {}
        self.active_unblocks: dict[bytes, float] = {}
        self.next_change = 0.0
        self.seconds_left = 0  # until next_change, refreshed every second: caps the TTLs handed out
        # This group's answers, keyed by the query's bytes after its ID (resolver's fast path);
        # its verdicts by the same key: a blocked name's whole answer, or "forward" with the
        # parsed question (so a name seen before is not parsed or decided again); and its
        # decisions by name (TCP, and questions the verdicts do not cover).
        self.cache: dict = {}
        self.verdicts: dict = {}
        self.decisions: dict[bytes, Decision] = {}

    def refresh(self, now: float) -> bool:
        """Recompute what is in force at `now` (a Unix time); True when it changed."""
        local = datetime.fromtimestamp(now, self.tz)
        weekday, minute = local.weekday(), local.hour * 60 + local.minute
        active = [slot for slot in self.slots if slot.active(weekday, minute)]
        unblocked = {name: until for name, until in self.unblocks if until > now}
        state = (tuple(id(slot) for slot in active), tuple(sorted(unblocked)))
        changed = state != self.state
        if changed:
            self.state = state
            categories = set(self.base_categories)
            services = list(self.base_services)
            self.block_all = None
            for slot in active:
                categories.update(slot.categories)
                services.extend(slot.services)
                if slot.block_all and self.block_all is None:
                    self.block_all = slot
            self.mask = mask_for(self.table, categories)
            self.blocked_services = {}
            for key in services:
                entry = self.services_catalog.get(key)
                for domain in (entry or {}).get("domains", ()):
                    self.blocked_services[domain.lower().encode("idna")] = entry.get("name", key)
            self.active_unblocks = unblocked
        if changed or now >= self.next_change:
            self.next_change = self._next_change(local, now)
        self.seconds_left = max(0, int(self.next_change - now))
        return changed

    def _next_change(self, local: datetime, now: float) -> float:
        """When this group's rules next change: a slot starts or ends, an unblock runs out."""
        candidates = [until for until in self.active_unblocks.values() if until > now]
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for offset in range(8):
            day = day_start + timedelta(days=offset)
            for slot in self.slots:
                for moment in slot.boundaries(day, day.weekday()):
                    stamp = moment.timestamp()
                    if stamp > now:
                        candidates.append(stamp)
        return min(candidates, default=now + 7 * 86400)

    def decide(self, name: bytes) -> Decision:
        """What this group does with a name (lower case, no final dot) now."""
        important = self.table.important_mask
        if important:
            # The hub's confirmed harmful list: no school rule, unblock or list exception lets it through.
            match = self.table.match(name, important)
            if match is not None and not match.allow:
                return Decision(BLOCK, match.rule, HARMFUL)
        if self.active_unblocks:
            for parent in parents(name):
                if parent in self.active_unblocks:
                    return Decision(ALLOW, f"unblock:{parent.decode('ascii', 'replace')}")
        if self.has_allow:
            rule = self.allow.match(name)
            if rule is not None:
                return Decision(ALLOW, f"custom-allow:{rule}")
        if self.block_all is not None:
            return Decision(BLOCK, f"schedule:{self.block_all.label}", "schedule")
        if self.has_deny:
            rule = self.deny.match(name)
            if rule is not None:
                return Decision(BLOCK, f"custom:{rule}", "custom")
        if self.blocked_services:
            for parent in parents(name):
                service = self.blocked_services.get(parent)
                if service is not None:
                    return Decision(BLOCK, f"service:{service}", "service")
        match = self.table.match(name, self.mask)
        if match is not None:
            if match.allow:
                return Decision(ALLOW, match.rule)
            return Decision(BLOCK, match.rule, self.table.category_by_slot.get(match.slot, ""))
        return FORWARD_DECISION

    def explain(self, name: bytes) -> tuple[Decision, str]:
        """The decision and the name of the list behind it (for the block page)."""
        decision = self.decide(name)
        list_name = ""
        if decision.kind == BLOCK and not decision.rule.split(":", 1)[0] in ("schedule", "custom", "service"):
            match = self.table.match(name, self.mask)
            if match is not None:
                list_name = slot_info(self.table, match.slot).get("name", "")
        return decision, list_name


class Client:
    """What the resolver remembers about one source address (reset on every policy change)."""

    __slots__ = ("group", "count", "limit", "cache", "verdicts", "log_id", "allowed")

    def __init__(self, group: GroupPolicy, limit: int, log_id: str, allowed: bool):
        self.group = group
        self.count = 0
        self.limit = limit
        # A source the resolver refuses never reads the group's answers (no open resolver):
        # its own empty dictionaries send every query of it down the slow path, which refuses.
        self.cache = group.cache if allowed else {}
        self.verdicts = group.verdicts if allowed else {}
        self.log_id = log_id
        self.allowed = allowed


class Policy:
    """Everything the resolver needs from one `policy.json`."""

    def __init__(self, data: dict, table: RuleTable, table_path: Path | None = None):
        from zoneinfo import ZoneInfo

        self.version = data.get("version", "")
        self.table = table
        self.table_path = table_path
        settings = data.get("settings") or {}
        self.settings = settings
        try:
            self.tz = ZoneInfo(data.get("timezone") or "Asia/Ho_Chi_Minh")
        except Exception:  # an unknown zone must not stop the filter: Vietnam's offset
            self.tz = timezone(timedelta(hours=7))
        self.upstreams = [parse_address(text) for text in settings.get("upstreams", ())]
        self.timeout = max(50, int(settings.get("upstream_timeout_ms", 1000))) / 1000
        self.block_mode = settings.get("block_mode", "nxdomain")
        self.block_page_ipv4 = settings.get("block_page_ipv4") or ""
        self.block_page_ipv6 = settings.get("block_page_ipv6") or ""
        self.blocked_ttl = int(settings.get("blocked_ttl", 10))
        self.cache_size = int(settings.get("cache_size", 100_000))
        self.privacy = settings.get("privacy", "hash")
        self.hash_key = bytes.fromhex(settings.get("hash_key") or "") or b"cophub"
        self.log_queries = bool(settings.get("log_queries", True))
        self.rate_limit = int(settings.get("rate_limit_qps", 0))
        self.exempt = [ipaddress.ip_network(_plain(text), strict=False) for text in settings.get("rate_limit_exempt", ()) if text.strip()]
        self.hub_url = settings.get("hub_url") or ""
        services = data.get("services") or {}
        self.groups = {}
        ranges = []
        for group_data in data.get("groups", ()):
            group = GroupPolicy(group_data, table, services, self.tz)
            self.groups[group.id] = group
            for entry in group_data.get("ranges", ()):
                network = ipaddress.ip_network(entry["cidr"], strict=False)
                ranges.append((network, group, max(1, int(entry.get("devices") or 1))))
        # Longest prefix first, then the group's priority.
        ranges.sort(key=lambda item: (item[0].prefixlen, item[1].priority), reverse=True)
        self.ranges = ranges
        default = settings.get("default_group")
        self.default_group = self.groups.get(default) if default is not None else None
        if self.default_group is None:
            self.default_group = GroupPolicy({"id": 0, "name": ""}, table, services, self.tz)
        self.all_groups = list(self.groups.values()) + ([] if self.default_group.id else [self.default_group])

    def refresh(self, now: float) -> list[GroupPolicy]:
        """Recompute every group's state; the groups whose rules changed."""
        return [group for group in self.all_groups if group.refresh(now)]

    def client(self, address: str) -> Client:
        ip = ipaddress.ip_address(_plain(address))
        group, devices, listed = self.default_group, 1, False
        for network, candidate, count in self.ranges:
            if ip.version == network.version and ip in network:
                group, devices, listed = candidate, count, True
                break
        allowed = listed or ip.is_private or ip.is_loopback or ip.is_link_local
        text = str(ip)
        exempt = any(ip.version == network.version and ip in network for network in self.exempt)
        limit = 0 if (not self.rate_limit or exempt) else self.rate_limit * devices
        return Client(group, limit, self.log_id(text), allowed)

    def log_id(self, address: str) -> str:
        if self.privacy == "keep":
            return address
        if self.privacy == "hash":
            return "h:" + hmac.new(self.hash_key, address.encode(), hashlib.sha256).hexdigest()[:16]
        return ""


def _plain(address: str) -> str:
    """'::ffff:10.0.0.1' -> '10.0.0.1' (IPv4 clients on a dual-stack socket)."""
    address = address.split("%", 1)[0]
    if address.startswith("::ffff:") and "." in address:
        return address[7:]
    return address


def parse_address(text: str, default_port: int = 53) -> tuple[str, int]:
    """'9.9.9.9', '9.9.9.9:5353', '2620:fe::fe', '[2620:fe::fe]:53' -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host, port = text, default_port
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, port


def load(state_dir: Path, data: dict, previous: Policy | None = None) -> Policy:
    """A Policy from parsed policy.json; reuses the mapped rule table when the file is the same."""
    rules = data.get("rules") or None
    bin_path = None
    if rules:
        bin_path = Path(state_dir) / rules["bin"]
        if previous is not None and previous.table_path == bin_path:
            table = previous.table
        else:
            table = RuleTable.open(bin_path, Path(state_dir) / rules["meta"])
    else:
        table = RuleTable.empty()
    return Policy(data, table, bin_path)
