"""The hand-written packet code: exact against dnspython, and fuzzed.

The fuzz part feeds random, truncated and bit-flipped queries and replies to
the parsers (they may only raise WireError) and then to a running resolver
(it must drop them and keep answering).
"""

from __future__ import annotations

import random
import socket
import struct

import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import pytest

from cophub.netfilter import dnswire as wire
from cophub.netfilter.tests.dnspeers import Authority, RunningResolver, write_policy

pytestmark = pytest.mark.dbfree

SEED = 20261201


def _query(name="www.example.test", rdtype="A", **kwargs) -> bytes:
    return dns.message.make_query(name, rdtype, **kwargs).to_wire()


def _reply(query_wire: bytes, *records: str, rcode=0) -> bytes:
    query = dns.message.from_wire(query_wire)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for text in records:
        name, ttl, rdclass, rdtype, data = text.split(" ", 4)
        response.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, data))
    return response.to_wire()


def test_parse_query_reads_question_and_edns():
    q = wire.parse_query(_query("WWW.Example.Test", "AAAA", use_edns=0, payload=1400, want_dnssec=True))
    assert q.name == b"www.example.test"
    assert q.qtype == 28 and q.qclass == 1
    assert q.edns and q.udp_size == 1400 and q.do
    assert q.reply_limit == 1400
    plain = wire.parse_query(_query(use_edns=False))
    assert not plain.edns and plain.reply_limit == 512


@pytest.mark.parametrize("packet", [
    b"", b"\x00" * 11, b"\x12\x34\x81\x00" + b"\x00\x01" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01",  # a response
    b"\x12\x34\x01\x00\x00\x02" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01",  # two questions
    b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\xc0\x0c\x00\x01\x00\x01",  # a pointer in a question
    b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # label of 64
    b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x03www",  # cut in the name
])
def test_parse_query_rejects(packet):
    with pytest.raises(wire.WireError):
        wire.parse_query(packet)


def test_built_answers_read_back_with_dnspython():
    q = wire.parse_query(_query(use_edns=0))
    address = wire.rr(wire.POINTER_TO_QUESTION, wire.A, 60, bytes([192, 0, 2, 1]))
    answer = wire.build_answer(q, wire.NOERROR, [address], ede=(wire.EDE_BLOCKED, b"||example.test^"))
    message = dns.message.from_wire(q.id + wire.render(answer, 5))
    assert message.answer[0][0].address == "192.0.2.1"
    assert message.answer[0].ttl == 55
    assert [o.code for o in message.options if o.otype == dns.edns.EDE] == [15]
    negative = wire.build_answer(q, wire.NXDOMAIN, authority=[wire.synthetic_soa(10)])
    message = dns.message.from_wire(q.id + negative.tail)
    assert message.rcode() == dns.rcode.NXDOMAIN and message.authority[0].ttl == 10


def test_upstream_reply_is_re_served_with_the_clients_question():
    upstream_query = wire.upstream_query(0x4242, wire.dotted_to_wire(b"www.example.test") + b"\x00\x01\x00\x01")
    reply = _reply(upstream_query, "www.example.test. 300 IN A 192.0.2.1", "www.example.test. 100 IN A 192.0.2.2")
    parsed = wire.parse_reply(reply, 0x4242, wire.dotted_to_wire(b"www.example.test") + b"\x00\x01\x00\x01")
    assert parsed.cache_ttl == 100
    client = wire.parse_query(_query("WWW.EXAMPLE.TEST", use_edns=False))
    answer = wire.answer_from_reply(client, parsed)
    message = dns.message.from_wire(client.id + wire.render(answer, 40))
    assert message.question[0].name.to_text() == "WWW.EXAMPLE.TEST."
    assert sorted(item.address for item in message.answer[0]) == ["192.0.2.1", "192.0.2.2"]
    assert message.answer[0].ttl == 60  # the lower TTL, aged by 40 s


def test_reply_for_another_question_or_id_is_refused():
    asked = wire.dotted_to_wire(b"a.example.test") + b"\x00\x01\x00\x01"
    reply = _reply(_query("b.example.test", use_edns=False), "b.example.test. 60 IN A 192.0.2.1")
    qid = struct.unpack(">H", reply[:2])[0]
    with pytest.raises(wire.WireError):
        wire.parse_reply(reply, qid, asked)
    with pytest.raises(wire.WireError):
        wire.parse_reply(reply, qid ^ 1, wire.dotted_to_wire(b"b.example.test") + b"\x00\x01\x00\x01")


def test_compression_loops_are_refused():
    looping = b"\x00" * 12 + b"\xc0\x0c"
    with pytest.raises(wire.WireError):
        wire.read_name(looping, 12)
    forward = b"\x00" * 12 + b"\xc0\x20" + b"\x00" * 30
    with pytest.raises(wire.WireError):
        wire.read_name(forward, 12)


def _mutations(rng: random.Random, seeds: list[bytes], count: int):
    for _ in range(count):
        base = bytearray(rng.choice(seeds))
        action = rng.randrange(5)
        if action == 0 and base:
            base = base[:rng.randrange(len(base))]  # truncated
        elif action == 1:
            for _ in range(rng.randint(1, 6)):
                base[rng.randrange(len(base))] ^= 1 << rng.randrange(8)  # bit flips
        elif action == 2:
            at = rng.randrange(len(base) + 1)
            base[at:at] = rng.randbytes(rng.randint(1, 20))  # inserted bytes
        elif action == 3:
            base[rng.randrange(len(base))] = rng.choice([0x00, 0x3F, 0x40, 0xC0, 0xFF])  # label-length edge cases
        else:
            base = bytearray(rng.randbytes(rng.randint(0, 600)))  # noise
        yield bytes(base)


def test_fuzz_parsers_raise_only_wire_errors():
    rng = random.Random(SEED)
    queries = [_query(), _query("a.b.c.example.test", "TXT", use_edns=0), _query("x.test", "AAAA", use_edns=0, payload=4096)]
    asked = wire.dotted_to_wire(b"www.example.test") + b"\x00\x01\x00\x01"
    upstream_query = wire.upstream_query(7, wire.dotted_to_wire(b"www.example.test") + b"\x00\x01\x00\x01")
    replies = [
        _reply(upstream_query, "www.example.test. 300 IN A 192.0.2.1"),
        _reply(upstream_query, "www.example.test. 300 IN CNAME other.example.test.", "other.example.test. 30 IN A 192.0.2.9"),
        _reply(upstream_query, rcode=3),
    ]
    parsed = 0
    for packet in _mutations(rng, queries, 20000):
        try:
            wire.parse_query(packet)
            parsed += 1
        except wire.WireError:
            pass
    for packet in _mutations(rng, replies, 20000):
        try:
            reply = wire.parse_reply(packet, 7, asked)
            wire.records_of_type(reply, 1)
        except wire.WireError:
            pass
        try:
            wire.read_name(packet, 12)
        except wire.WireError:
            pass
    assert parsed > 100  # the mutations did not only produce garbage


def test_running_resolver_drops_garbage_and_keeps_answering(tmp_path):
    authority = Authority().start()
    authority.add("www.example.test", "A", "192.0.2.10")
    write_policy(tmp_path, upstream_port=authority.port)
    resolver = RunningResolver(tmp_path).start()
    try:
        rng = random.Random(SEED)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        seeds = [_query(), _query("a.fwd.test", use_edns=0)]
        for packet in _mutations(rng, seeds, 3000):
            try:
                sock.sendto(packet, ("127.0.0.1", resolver.port))
            except BlockingIOError:
                pass
        # A TCP client sending garbage is cut off without harm.
        with socket.create_connection(("127.0.0.1", resolver.port), timeout=2) as tcp:
            tcp.sendall(b"\x00\x05hello")
            assert tcp.recv(100) == b""
        query = dns.message.make_query("www.example.test", "A")
        response = dns.query.udp(query, "127.0.0.1", port=resolver.port, timeout=3)
        assert response.answer[0][0].address == "192.0.2.10"
        assert resolver.resolver.counters.get("malformed", 0) > 100
    finally:
        resolver.stop()
        authority.stop()
