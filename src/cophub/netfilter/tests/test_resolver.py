"""The resolver against real DNS clients (dnspython, and dig in test_dig.py) on loopback."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from cophub.netfilter import snapshot
from cophub.netfilter.tests.dnspeers import Authority, RunningResolver, group, write_policy

pytestmark = pytest.mark.dbfree

VN = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def authority():
    server = Authority().start()
    server.add("www.example.test", "A", "192.0.2.10")
    server.add("school.edu.test", "A", "192.0.2.20")
    yield server
    server.stop()


@pytest.fixture
def state(tmp_path):
    return snapshot.ensure(tmp_path / "netfilter")


@pytest.fixture
def running(state):
    started = []

    def start(**kwargs):
        resolver = RunningResolver(state, **kwargs).start()
        started.append(resolver)
        return resolver

    yield start
    for resolver in started:
        resolver.stop()


def ask(resolver, name, rdtype="A", *, source="127.0.0.1", tcp=False, timeout=2.0, edns=True, payload=1232, port=None):
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=payload)
    where = "::1" if ":" in source else "127.0.0.1"
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, where, port=port or resolver.port, source=source, timeout=timeout)


def addresses(response):
    return sorted(item.address for rrset in response.answer for item in rrset if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))


def wait_until(check, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# --- forwarding and the cache ---------------------------------------------------


def test_forwards_then_answers_from_cache_with_decreasing_ttl(state, authority, running):
    write_policy(state, upstream_port=authority.port)
    resolver = running()
    first = ask(resolver, "www.example.test")
    assert first.rcode() == dns.rcode.NOERROR
    assert addresses(first) == ["192.0.2.10"]
    assert first.answer[0].ttl == 300
    asked = len(authority.queries)
    time.sleep(1.1)
    second = ask(resolver, "www.example.test")
    assert addresses(second) == ["192.0.2.10"]
    assert len(authority.queries) == asked  # from the cache
    assert 297 <= second.answer[0].ttl < 300  # the TTL ages
    assert second.id != first.id or True
    nx = ask(resolver, "missing.example.test")
    assert nx.rcode() == dns.rcode.NXDOMAIN


def test_mixed_case_and_no_edns_queries(state, authority, running):
    write_policy(state, upstream_port=authority.port)
    resolver = running()
    response = ask(resolver, "WwW.ExAmPlE.TeSt", edns=False)
    assert addresses(response) == ["192.0.2.10"]
    assert response.question[0].name.to_text() == "WwW.ExAmPlE.TeSt."  # the client's own question echoed
    assert response.edns < 0


def _raw(resolver, wire: bytes, timeout: float = 2.0) -> bytes | None:
    """Send bytes as they are; the reply's bytes, or None when there is none."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(wire, ("127.0.0.1", resolver.port))
        try:
            return sock.recvfrom(4096)[0]
        except TimeoutError:
            return None


@pytest.mark.parametrize("edns", [True, False])
def test_a_question_seen_before_is_answered_alike(state, running, edns):
    """The second and later queries of a name take the verdict path: same answers, each with its own ID."""
    upstream = Authority(ttl=0).start()  # TTL 0: never cached, every query goes upstream
    try:
        upstream.add("fresh.fwd.test", "A", "192.0.2.30")
        write_policy(state, upstream_port=upstream.port, lists=LISTS,
                     groups=[group(1, "127.0.0.0/8", categories=["adult", "gambling"])])
        resolver = running()
        for _ in range(3):
            blocked = ask(resolver, "casino.test", edns=edns)  # dnspython checks the ID and the question
            assert blocked.rcode() == dns.rcode.NXDOMAIN
            assert (blocked.edns >= 0) is edns
            if edns:
                assert blocked.extended_errors()[0].text == "||casino.test^"
            forwarded = ask(resolver, "fresh.fwd.test", edns=edns)
            assert addresses(forwarded) == ["192.0.2.30"]
            assert (forwarded.edns >= 0) is edns
        assert sum(1 for name, _type, _transport in upstream.queries if name == "fresh.fwd.test.") == 3
        # Another type of the same name is a question of its own.
        assert ask(resolver, "casino.test", "AAAA", edns=edns).rcode() == dns.rcode.NXDOMAIN
    finally:
        upstream.stop()


def test_the_verdict_path_checks_what_follows_the_question(state, authority, running):
    write_policy(state, upstream_port=authority.port, lists=LISTS, groups=[group(1, "127.0.0.0/8", categories=["gambling"])])
    resolver = running()
    plain = dns.message.make_query("casino.test", "A", use_edns=False)
    plain.id = 0x1111
    with_edns = dns.message.make_query("casino.test", "A", use_edns=0)
    with_edns.id = 0x2222
    for query in (plain, with_edns):  # the verdicts are made
        assert dns.message.from_wire(_raw(resolver, query.to_wire())).rcode() == dns.rcode.NXDOMAIN
    # Trailing bytes after a question without EDNS: malformed, dropped, not answered from the verdict.
    assert _raw(resolver, plain.to_wire() + b"\x00\x00", timeout=0.3) is None
    # A second record where the EDNS record should be alone: dropped.
    assert _raw(resolver, with_edns.to_wire() + b"\x00", timeout=0.3) is None
    # EDNS version 1 with the same question bytes: BADVERS, not the blocked answer.
    newer = dns.message.make_query("casino.test", "A", use_edns=1)
    newer.id = 0x3333
    reply = dns.message.from_wire(_raw(resolver, newer.to_wire()))
    assert reply.rcode() == dns.rcode.BADVERS and not reply.answer and not reply.authority
    # A large EDNS payload is honoured on the verdict path (the answer is small either way).
    big = dns.message.make_query("casino.test", "A", use_edns=0, payload=4096)
    big.id = 0x4444
    reply = dns.message.from_wire(_raw(resolver, big.to_wire()))
    assert reply.id == 0x4444 and reply.rcode() == dns.rcode.NXDOMAIN


def test_blocked_answers_never_outlive_a_coming_change(state, authority, running):
    """A blocked answer given ten seconds before the rules change carries a TTL that ends by then."""
    until = (datetime.now(VN) + timedelta(seconds=5)).isoformat()
    write_policy(state, upstream_port=authority.port, lists=LISTS, settings={"blocked_ttl": 3}, groups=[
        group(1, "127.0.0.0/8", categories=["gambling"], unblocks=[{"domain": "other.test", "until": until}]),
    ])
    resolver = running()
    assert ask(resolver, "casino.test").authority[0].ttl == 3  # 5 s to the change: the full TTL (a verdict is kept)
    time.sleep(3.2)  # now under 2 s to the change: the verdict is gone, the TTL is capped
    late = ask(resolver, "casino.test")
    assert late.rcode() == dns.rcode.NXDOMAIN
    assert late.authority[0].ttl <= 2


def test_udp_and_tcp_share_a_port_even_when_the_first_free_one_is_taken_for_tcp(monkeypatch):
    import errno
    import socket

    from cophub.netfilter import netsock

    real, refused = netsock.listening, []

    def listening(host, port, kind):
        if kind == socket.SOCK_STREAM and not refused:  # another program holds that port for TCP
            refused.append(port)
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return real(host, port, kind)

    monkeypatch.setattr(netsock, "listening", listening)
    udp, tcp = netsock.udp_and_tcp("127.0.0.1", 0)
    try:
        assert refused and udp.getsockname()[1] == tcp.getsockname()[1]
    finally:
        udp.close()
        tcp.close()
    # A port asked for by number is not swapped for another.
    holder = real("127.0.0.1", 0, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError):
            netsock.udp_and_tcp("127.0.0.1", holder.getsockname()[1])
    finally:
        holder.close()


def test_a_refused_source_never_reads_the_groups_answers(state, authority):
    from cophub.netfilter import engine

    write_policy(state, upstream_port=authority.port, groups=[group(1, "203.0.113.0/24")])
    policy = engine.load(state, snapshot.read_json(state / "policy.json"))
    policy.refresh(time.time())
    inside, outside = policy.client("203.0.113.9"), policy.client("8.8.4.4")
    assert inside.cache is inside.group.cache and inside.verdicts is inside.group.verdicts
    inside.cache[b"key"] = "an answer"
    inside.verdicts[b"key"] = "a verdict"
    assert outside.cache == {} and outside.verdicts == {}


def test_concurrent_identical_queries_share_one_upstream_query(state, authority, running):
    import socket

    write_policy(state, upstream_port=authority.port)
    resolver = running()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    for qid in range(20):
        query = dns.message.make_query("same.fwd.test", "A")
        query.id = qid
        sock.sendto(query.to_wire(), ("127.0.0.1", resolver.port))
    ids = {dns.message.from_wire(sock.recvfrom(4096)[0]).id for _ in range(20)}
    assert ids == set(range(20))
    assert [q for q in authority.queries if q[0] == "same.fwd.test."] == [("same.fwd.test.", "A", "udp")]


# --- lists -------------------------------------------------------------------------

LISTS = [
    {"category": "adult", "text": "0.0.0.0 hosts-exact.test\n127.0.0.1 two.test three.test # trailing comment\n", "name": "hosts"},
    {"category": "adult", "text": "plain-tree.test\n", "name": "plain, with subdomains", "match_subdomains": True},
    {"category": "adult", "text": "plain-exact.test\n", "name": "plain, exact", "match_subdomains": False},
    {"category": "gambling", "text": "! adblock\n||casino.test^\n@@||ok.casino.test^\n|exact-only.test^\n||ads*.tracker.test^\n*.wild.test\n/^bet[0-9]+\\.test$/\n", "name": "adblock"},
]


@pytest.mark.parametrize("name, blocked", [
    ("hosts-exact.test", True), ("sub.hosts-exact.test", False), ("two.test", True), ("three.test", True),
    ("plain-tree.test", True), ("a.b.plain-tree.test", True),
    ("plain-exact.test", True), ("sub.plain-exact.test", False),
    ("casino.test", True), ("www.casino.test", True), ("ok.casino.test", False), ("x.ok.casino.test", False),
    ("exact-only.test", True), ("www.exact-only.test", False),
    ("ads1.tracker.test", True), ("adsfoo.tracker.test", True), ("tracker.test", False),
    ("a.wild.test", True), ("wild.test", False),
    ("bet365.test", True), ("bet.test", False),
    ("www.example.test", False),
])
def test_every_list_syntax(state, authority, running, name, blocked):
    authority.add(name, "A", "192.0.2.99")
    write_policy(state, upstream_port=authority.port, lists=LISTS,
                 groups=[group(1, "127.0.0.0/8", categories=["adult", "gambling"])])
    resolver = running()
    response = ask(resolver, name)
    if blocked:
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert response.authority and response.authority[0].rdtype == dns.rdatatype.SOA
        assert response.authority[0].ttl == 10
    else:
        assert response.rcode() == dns.rcode.NOERROR, name
        assert addresses(response) == ["192.0.2.99"]


def test_extended_error_names_the_rule(state, authority, running):
    write_policy(state, upstream_port=authority.port, lists=LISTS, groups=[group(1, "127.0.0.0/8", categories=["gambling"])])
    resolver = running()
    response = ask(resolver, "www.casino.test")
    assert response.rcode() == dns.rcode.NXDOMAIN
    ede = [option for option in response.options if option.otype == 15]
    assert ede and ede[0].code == 15 and "casino.test" in ede[0].text


def test_categories_not_chosen_are_not_blocked_but_the_hub_list_always_is(state, authority, running):
    lists = LISTS + [{"category": "harmful", "text": "confirmed-harm.test\n", "name": "hub"}]
    authority.add("casino.test", "A", "192.0.2.5")
    write_policy(state, upstream_port=authority.port, lists=lists, groups=[group(1, "127.0.0.0/8", categories=["adult"])])
    resolver = running()
    assert ask(resolver, "casino.test").rcode() == dns.rcode.NOERROR
    assert ask(resolver, "confirmed-harm.test").rcode() == dns.rcode.NXDOMAIN
    assert ask(resolver, "x.confirmed-harm.test", source="127.0.0.9").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("mode, rdtype, expected", [
    ("null", "A", ["0.0.0.0"]), ("null", "AAAA", ["::"]),
    ("page", "A", ["10.0.0.80"]), ("page", "AAAA", ["fd00::80"]),
])
def test_block_answers(state, authority, running, mode, rdtype, expected):
    write_policy(state, upstream_port=authority.port, lists=LISTS, groups=[group(1, "127.0.0.0/8", categories=["adult"])],
                 settings={"block_mode": mode, "block_page_ipv4": "10.0.0.80", "block_page_ipv6": "fd00::80"})
    resolver = running()
    response = ask(resolver, "plain-tree.test", rdtype)
    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == expected
    mx = ask(resolver, "plain-tree.test", "MX")
    assert mx.rcode() == dns.rcode.NOERROR and not mx.answer  # no data for other types


def test_custom_rules_and_services(state, authority, running):
    services = {"tiktok": {"name": "TikTok", "domains": ["tiktok.test", "tiktokcdn.test"]}}
    authority.add("allowed.casino.test", "A", "192.0.2.7")
    write_policy(state, upstream_port=authority.port, lists=LISTS, services=services, groups=[
        group(1, "127.0.0.0/8", categories=["gambling"], blocked_services=["tiktok"],
              allow=["allowed.casino.test"], deny=["||school-blocks.test^"]),
    ])
    resolver = running()
    assert ask(resolver, "allowed.casino.test").rcode() == dns.rcode.NOERROR
    assert ask(resolver, "www.school-blocks.test").rcode() == dns.rcode.NXDOMAIN
    assert ask(resolver, "v16.tiktokcdn.test").rcode() == dns.rcode.NXDOMAIN


# --- safe search -------------------------------------------------------------------


@pytest.mark.parametrize("name, youtube, target, address", [
    ("www.google.com", "off", "forcesafesearch.google.com.", "216.239.38.120"),
    ("www.google.com.vn", "off", "forcesafesearch.google.com.", "216.239.38.120"),
    ("google.de", "off", "forcesafesearch.google.com.", "216.239.38.120"),
    ("www.youtube.com", "strict", "restrict.youtube.com.", "216.239.38.120"),
    ("m.youtube.com", "moderate", "restrictmoderate.youtube.com.", "216.239.38.119"),
    ("www.bing.com", "off", "strict.bing.com.", "204.79.197.220"),
    ("duckduckgo.com", "off", "safe.duckduckgo.com.", "52.250.41.2"),
])
def test_safe_search_answers(state, authority, running, name, youtube, target, address):
    safe = {"google": True, "youtube": youtube, "bing": True, "duckduckgo": True}
    write_policy(state, upstream_port=authority.port, groups=[group(1, "127.0.0.2/32", safe_search=safe)])
    resolver = running()
    response = ask(resolver, name, source="127.0.0.2")
    assert response.rcode() == dns.rcode.NOERROR
    cname = [rrset for rrset in response.answer if rrset.rdtype == dns.rdatatype.CNAME]
    assert cname and cname[0].name.to_text() == name + "." and cname[0][0].target.to_text() == target
    a = [rrset for rrset in response.answer if rrset.rdtype == dns.rdatatype.A]
    assert a and a[0].name.to_text() == target and a[0][0].address == address
    # The same name for a device outside the group is not rewritten.
    authority.add(name, "A", "192.0.2.77")
    other = ask(resolver, name, source="127.0.0.3")
    assert addresses(other) == ["192.0.2.77"]


def test_safe_search_answers_https_records_with_nothing(state, authority, running):
    write_policy(state, upstream_port=authority.port, groups=[group(1, "127.0.0.0/8", safe_search={"google": True})])
    resolver = running()
    response = ask(resolver, "www.google.com.vn", "HTTPS")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    assert not [q for q in authority.queries if q[0] == "www.google.com.vn."]


# --- groups, schedules, unblocks -----------------------------------------------------


def test_groups_by_address_and_subnet(state, authority, running):
    authority.add("casino.test", "A", "192.0.2.5")
    write_policy(state, upstream_port=authority.port, lists=LISTS, groups=[
        group(1, "127.0.0.0/24", name="Khối 6", categories=["gambling"]),
        group(2, "127.0.0.5", name="Giáo viên", categories=[]),  # a longer prefix wins
    ])
    resolver = running()
    assert ask(resolver, "casino.test", source="127.0.0.4").rcode() == dns.rcode.NXDOMAIN
    assert ask(resolver, "casino.test", source="127.0.0.5").rcode() == dns.rcode.NOERROR
    # Not in any range: the default (here: only the hub's list).
    assert ask(resolver, "casino.test", source="127.0.1.1").rcode() == dns.rcode.NOERROR


def _slot(start: datetime, end: datetime, **fields) -> dict:
    return {"label": fields.pop("label", "slot"), "days": fields.pop("days", [start.weekday()]),
            "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "block_all": False,
            "services": [], "categories": [], **fields}


def test_schedule_slots_block_now_and_not_outside(state, authority, running):
    now = datetime.now(VN)
    authority.add("game.test", "A", "192.0.2.6")
    services = {"game": {"name": "Game", "domains": ["game.test"]}}
    active = _slot(now - timedelta(minutes=30), now + timedelta(minutes=30), services=["game"])
    later = _slot(now + timedelta(hours=2), now + timedelta(hours=3), block_all=True)
    write_policy(state, upstream_port=authority.port, services=services, groups=[
        group(1, "127.0.0.2", slots=[active]), group(2, "127.0.0.3", slots=[later]),
    ])
    resolver = running()
    blocked = ask(resolver, "game.test", source="127.0.0.2")
    assert blocked.rcode() == dns.rcode.NXDOMAIN
    assert addresses(ask(resolver, "game.test", source="127.0.0.3")) == ["192.0.2.6"]
    # Answers given before the next boundary never outlive it.
    assert ask(resolver, "www.example.test", source="127.0.0.2").answer[0].ttl <= 31 * 60


def test_slot_across_midnight_blocks_all(state, authority, running):
    now = datetime.now(VN)
    # From an hour ago until two hours ago "tomorrow": it crosses midnight and is on now.
    start = now - timedelta(hours=1)
    end = now - timedelta(hours=2)
    overnight = {"label": "đêm", "days": list(range(7)), "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"),
                 "block_all": True, "services": [], "categories": []}
    write_policy(state, upstream_port=authority.port, groups=[group(1, "127.0.0.2", slots=[overnight])])
    resolver = running()
    response = ask(resolver, "www.example.test", source="127.0.0.2")
    assert response.rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("weekday, time_of_day, active", [
    (4, "22:00", True),   # Friday night: starts
    (4, "21:59", False),
    (5, "05:59", True),   # Saturday before 06:00: still Friday's slot
    (5, "06:00", False),
    (5, "23:00", False),  # Saturday is not a start day
    (6, "03:00", False),
    (0, "03:00", False),  # Monday morning: Sunday did not start one
    (0, "22:30", True),
])
def test_slot_across_midnight_belongs_to_the_day_it_starts(weekday, time_of_day, active):
    from cophub.netfilter.engine import Slot

    slot = Slot({"days": [0, 1, 2, 3, 4], "start": "22:00", "end": "06:00", "block_all": True})
    hours, minutes = map(int, time_of_day.split(":"))
    assert slot.active(weekday, hours * 60 + minutes) is active


def test_temporary_unblock_expires_on_its_own(state, authority, running):
    authority.add("casino.test", "A", "192.0.2.5")
    until = (datetime.now(VN) + timedelta(seconds=3)).isoformat()
    write_policy(state, upstream_port=authority.port, lists=LISTS, groups=[
        group(1, "127.0.0.0/8", categories=["gambling"], unblocks=[{"domain": "casino.test", "until": until}]),
    ])
    resolver = running()
    first = ask(resolver, "casino.test")
    assert addresses(first) == ["192.0.2.5"]
    assert first.answer[0].ttl <= 3  # never cached by the device beyond the unblock
    assert wait_until(lambda: ask(resolver, "casino.test").rcode() == dns.rcode.NXDOMAIN, 6)


def test_policy_change_applies_within_seconds_without_losing_queries(state, authority, running):
    import socket
    import threading

    write_policy(state, upstream_port=authority.port)
    resolver = running()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    sent = answered = 0
    stop = threading.Event()
    changed_at = []

    def change():
        time.sleep(0.5)
        write_policy(state, upstream_port=authority.port, groups=[group(1, "127.0.0.0/8", deny=["www.example.test"])])
        changed_at.append(time.monotonic())

    threading.Thread(target=change).start()
    blocked_at = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and blocked_at is None:
        query = dns.message.make_query("www.example.test", "A")
        sock.sendto(query.to_wire(), ("127.0.0.1", resolver.port))
        sent += 1
        reply = dns.message.from_wire(sock.recvfrom(4096)[0])
        answered += 1
        if reply.rcode() == dns.rcode.NXDOMAIN:
            blocked_at = time.monotonic()
        time.sleep(0.002)
    stop.set()
    assert blocked_at is not None and changed_at
    assert blocked_at - changed_at[0] < 2.5
    assert answered == sent


# --- transport ---------------------------------------------------------------------


def test_tcp_fallback_when_the_upstream_truncates(state, authority, running):
    authority.truncate.add("big.fwd.test.")
    write_policy(state, upstream_port=authority.port)
    resolver = running()
    response = ask(resolver, "big.fwd.test", "TXT", payload=4096)
    assert response.rcode() == dns.rcode.NOERROR
    assert len(response.answer[0]) == 12
    assert ("big.fwd.test.", "TXT", "tcp") in authority.queries
    # A client without EDNS gets TC and retries over TCP, as real stubs do.
    small = ask(resolver, "big.fwd.test", "TXT", edns=False)
    assert small.flags & dns.flags.TC
    over_tcp = ask(resolver, "big.fwd.test", "TXT", tcp=True)
    assert len(over_tcp.answer[0]) == 12


def test_ipv6_and_tcp_clients(state, authority, running):
    write_policy(state, upstream_port=authority.port)
    resolver = running(hosts=["::"])
    assert addresses(ask(resolver, "www.example.test", source="::1")) == ["192.0.2.10"]
    assert addresses(ask(resolver, "www.example.test", source="127.0.0.1")) == ["192.0.2.10"]
    assert addresses(ask(resolver, "www.example.test", tcp=True)) == ["192.0.2.10"]


def test_upstream_down_gives_servfail_quickly_and_recovers(state, authority, running):
    write_policy(state, upstream_port=authority.port)
    resolver = running()
    assert addresses(ask(resolver, "one.fwd.test")) == ["192.0.2.14"]
    port = authority.port
    authority.stop()
    started = time.monotonic()
    response = ask(resolver, "two.fwd.test")
    assert response.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    assert ask(resolver, "three.fwd.test").rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < 0.5
    # Cached names still answer while the upstream is down.
    assert addresses(ask(resolver, "one.fwd.test")) == ["192.0.2.14"]
    revived = Authority(port=port).start()
    try:
        assert wait_until(lambda: ask(resolver, "four.fwd.test").rcode() == dns.rcode.NOERROR, 12)
    finally:
        revived.stop()


def test_silent_upstream_times_out_to_servfail_then_answers_fast(state, authority, running):
    write_policy(state, upstream_port=authority.port)
    resolver = running()
    authority.blackhole = True
    started = time.monotonic()
    assert ask(resolver, "a.fwd.test").rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < 1.2  # the 400 ms timeout, one upstream
    ask(resolver, "b.fwd.test")
    started = time.monotonic()
    assert ask(resolver, "c.fwd.test").rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < 0.6  # marked down: no more waiting
    authority.blackhole = False
    assert wait_until(lambda: ask(resolver, "d.fwd.test").rcode() == dns.rcode.NOERROR, 12)


def test_second_upstream_takes_over(state, authority, running):
    dead = Authority().start()
    dead_port = dead.port
    dead.stop()
    write_policy(state, upstream_port=dead_port, settings={"upstreams": [f"127.0.0.1:{dead_port}", f"127.0.0.1:{authority.port}"]})
    resolver = running()
    assert addresses(ask(resolver, "www.example.test")) == ["192.0.2.10"]


# --- who may ask, and how much ------------------------------------------------------


def test_rate_limit_per_device_spares_a_classroom_behind_one_address(state, authority, running):
    import socket

    write_policy(state, upstream_port=authority.port, settings={"rate_limit_qps": 20}, groups=[
        group(1, "127.0.0.2", name="lớp 6A (NAT)", devices=40), group(2, "127.0.0.3", name="một máy"),
    ])
    resolver = running()

    def burst(source: str, count: int) -> int:
        """`count` queries within about a third of a second, replies read as they come."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source, 0))
        wire = dns.message.make_query("www.example.test", "A").to_wire()
        got = 0

        def drain(wait: float) -> int:
            sock.settimeout(wait)
            n = 0
            try:
                while True:
                    sock.recvfrom(4096)
                    n += 1
            except TimeoutError:
                return n

        for index in range(count):
            sock.sendto(wire, ("127.0.0.1", resolver.port))
            if index % 10 == 9:
                got += drain(0.01)
        return got + drain(0.3)

    ask(resolver, "www.example.test", source="127.0.0.2")  # warm the cache
    time.sleep(1.05)
    assert burst("127.0.0.2", 300) == 300  # 40 devices × 20/s
    time.sleep(1.05)
    assert burst("127.0.0.3", 300) <= 40  # 20/s, in at most two one-second windows


def test_public_addresses_are_refused_unless_listed(state, authority, running):
    from cophub.netfilter import engine

    write_policy(state, upstream_port=authority.port, groups=[group(1, "203.0.113.0/24")])
    policy = engine.load(state, snapshot.read_json(state / "policy.json"))
    assert policy.client("8.8.4.4").allowed is False
    assert policy.client("2001:4860::1").allowed is False
    assert policy.client("203.0.113.9").allowed is True
    assert policy.client("10.1.2.3").allowed is True
    assert policy.client("::ffff:192.168.1.5").allowed is True


# --- the query log --------------------------------------------------------------------


def test_query_log_files_with_hashed_clients(state, authority, running):
    write_policy(state, upstream_port=authority.port, lists=LISTS, settings={"privacy": "hash"},
                 groups=[group(7, "127.0.0.0/8", categories=["adult"])])
    resolver = running()
    for _ in range(3):
        ask(resolver, "plain-tree.test", source="127.0.0.2")
    ask(resolver, "www.example.test", source="127.0.0.2")
    assert wait_until(lambda: list((state / "log").glob("q-*.tsv")), 6)
    lines = "".join(path.read_text() for path in (state / "log").glob("q-*.tsv")).splitlines()
    rows = [line.split("\t") for line in lines]
    assert all(len(row) == 9 for row in rows)
    blocked = [row for row in rows if row[3] == "plain-tree.test"]
    assert sum(int(row[8]) for row in blocked) == 3
    assert {row[5] for row in blocked} == {"blocked"}
    assert all(row[1].startswith("h:") for row in rows)
    assert "127.0.0.2" not in "\n".join(lines)
    assert {row[2] for row in rows} == {"7"}


def test_query_log_writer_takes_a_busy_second_in_pieces(tmp_path):
    """More entries than one piece (the writer pauses between pieces so the loop keeps the GIL):
    every line written, every query counted, kept or not."""
    from cophub.netfilter.resolver import LOG_CHUNK, QueryLogWriter

    writer = QueryLogWriter(tmp_path)
    try:
        entries = 2 * LOG_CHUNK + 7
        counts = {(f"h:{i:016x}", (3, f"n{i}.example.test", 1, "forwarded", "", "")): 2 for i in range(entries)}
        writer.record(1_800_000_000, counts, True)
        writer.record(1_800_000_001, {("h:0", (3, "x.test", 1, "blocked", "ads", "x.test")): 5}, False)
        writer.rotate(force=True)
    finally:
        writer.close()
    lines = "".join(path.read_text() for path in tmp_path.glob("q-*.tsv")).splitlines()
    assert len(lines) == entries
    assert lines[-1].split("\t") == ["1800000000", f"h:{entries - 1:016x}", "3", f"n{entries - 1}.example.test", "1",
                                      "forwarded", "", "", "2"]
    assert writer.actions == {"forwarded": 2 * entries, "blocked": 5}


def test_status_file_reports_the_policy_in_force(state, authority, running):
    policy = write_policy(state, upstream_port=authority.port)
    resolver = running()
    ask(resolver, "www.example.test")
    assert wait_until(lambda: (snapshot.read_json(state / "status.json") or {}).get("counters", {}).get("forwarded"), 5)
    status = snapshot.read_json(state / "status.json")
    assert status["policy_version"] == policy["version"]
    assert status["upstreams"][0]["up"] is True


def test_the_hub_list_beats_every_school_rule(state, authority, running):
    lists = [{"category": "harmful", "text": "confirmed-harm.test\n", "name": "hub"},
             {"category": "adult", "text": "@@||confirmed-harm.test^\n", "name": "third-party exceptions"}]
    until = (datetime.now(VN) + timedelta(hours=1)).isoformat()
    write_policy(state, upstream_port=authority.port, lists=lists, groups=[
        group(1, "127.0.0.0/8", categories=["adult"], allow=["confirmed-harm.test"],
              unblocks=[{"domain": "confirmed-harm.test", "until": until}]),
    ])
    resolver = running()
    assert ask(resolver, "www.confirmed-harm.test").rcode() == dns.rcode.NXDOMAIN


def test_rate_limit_exemptions_take_subnets(state, authority):
    from cophub.netfilter import engine

    write_policy(state, upstream_port=authority.port, settings={"rate_limit_qps": 10, "rate_limit_exempt": ["10.9.0.0/16", "::1"]})
    policy = engine.load(state, snapshot.read_json(state / "policy.json"))
    assert policy.client("10.9.3.4").limit == 0
    assert policy.client("::1").limit == 0
    assert policy.client("10.8.3.4").limit == 10


def test_other_opcodes_are_told_not_implemented(state, authority, running):
    import socket

    write_policy(state, upstream_port=authority.port)
    resolver = running()
    notify = dns.message.make_query("example.test", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.sendto(notify.to_wire(), ("127.0.0.1", resolver.port))
    reply = dns.message.from_wire(sock.recvfrom(4096)[0], question_only=True)
    assert reply.rcode() == dns.rcode.NOTIMP
