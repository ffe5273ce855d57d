"""DNS messages on the wire (RFC 1035, 6891, 2308, 8482, 8914), by hand.

The resolver answers most queries from a cache keyed by the raw bytes of the
query, so it needs only a few exact operations: find where the question
ends, read and write names, walk resource records to find their TTLs and the
EDNS record, and build the few answers it makes itself (blocked names, safe
search, errors). A general DNS library builds objects for every record and
is several times slower on this path. Every function here bounds-checks and
raises `WireError` (a ValueError) on anything malformed, so a hostile packet
costs one exception and is dropped.
"""

from __future__ import annotations

import struct

HEADER_LEN = 12
MAX_NAME = 255
MAX_UDP = 1232  # the EDNS payload size we offer and ask for (DNS flag day 2020)
CLASSIC_UDP = 512

# Types and classes we treat specially.
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT, SVCB, HTTPS, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 64, 65, 255
HINFO = 13
CLASS_IN = 1

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

# Header flag bits (second 16-bit word).
QR = 0x8000
OPCODE_MASK = 0x7800
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010

EDE_BLOCKED = 15  # RFC 8914 extended error: blocked by the server's policy
EDNS_OPTION_EDE = 15

_HEADER = struct.Struct(">HHHHHH")
_COUNTS = struct.Struct(">HHHHH")  # flags and the four counts, after the ID
_RR_FIXED = struct.Struct(">HHIH")  # type, class, TTL, rdata length
_TYPE_CLASS = struct.Struct(">HH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class WireError(ValueError):
    """A malformed or unexpected DNS message."""


class Query:
    """A client's query, parsed once on the slow path."""

    __slots__ = ("id", "flags", "qend", "question", "name", "name_wire", "qtype", "qclass", "edns", "udp_size", "do", "edns_version", "text")

    def __init__(self) -> None:
        self.text = ""  # the name as the query log writes it (set by the resolver)
        self.edns = False
        self.udp_size = CLASSIC_UDP
        self.do = False
        self.edns_version = 0

    def upstream_question(self) -> bytes:
        """The question as asked upstream: the name in lower case (length bytes are < 64, which
        lower() leaves alone), then the type and class as they came."""
        question = self.name_wire + self.question[-4:]
        return self.question if question == self.question else question

    def shape(self) -> Query:
        """What every query with the same bytes after its ID shares, for answering them
        (the name's other forms are not kept: a resolver keeps many of these)."""
        shape = Query()
        shape.id = b"\x00\x00"  # a placeholder of the right length: each query's own ID travels beside it
        shape.flags, shape.qend, shape.question, shape.qtype, shape.qclass = self.flags, self.qend, self.question, self.qtype, self.qclass
        shape.edns, shape.udp_size, shape.do, shape.edns_version = self.edns, self.udp_size, self.do, self.edns_version
        shape.name = shape.name_wire = b""
        shape.text = self.text
        return shape

    @property
    def reply_limit(self) -> int:
        """The largest UDP answer this client accepts."""
        return max(CLASSIC_UDP, min(self.udp_size, 65535)) if self.edns else CLASSIC_UDP


def parse_query(packet: bytes) -> Query:
    """Parse a query with one question and at most an EDNS record; WireError otherwise."""
    size = len(packet)
    if size < HEADER_LEN + 5:
        raise WireError("too short")
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(packet)
    if flags & (QR | OPCODE_MASK):
        raise WireError("a response, or not a standard query")
    if qd != 1 or an or ns or ar > 1:
        raise WireError("unexpected section counts")
    # The name: labels only (a question has nothing earlier to point to).
    labels = []
    off = HEADER_LEN
    while True:
        if off >= size:
            raise WireError("name runs past the end")
        length = packet[off]
        if length == 0:
            off += 1
            break
        if length > 63:
            raise WireError("compressed or invalid label in a question")
        labels.append(packet[off + 1:off + 1 + length])
        off += 1 + length
    if off - HEADER_LEN > MAX_NAME:
        raise WireError("name too long")
    qend = off + 4
    if qend > size:
        raise WireError("question cut short")
    q = Query()
    q.id = packet[:2]
    q.flags = flags
    q.qtype, q.qclass = _TYPE_CLASS.unpack_from(packet, off)
    q.qend = qend
    q.question = packet[HEADER_LEN:qend]
    q.name_wire = packet[HEADER_LEN:off].lower()  # length bytes are < 64: lower() leaves them alone
    q.name = b".".join(labels).lower()
    if ar:
        _parse_opt(packet, qend, q)
    elif qend != size:
        raise WireError("trailing bytes")
    return q


def _parse_opt(packet: bytes, off: int, q: Query) -> None:
    if off + 11 > len(packet) or packet[off] != 0:
        raise WireError("additional record is not EDNS")
    rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(packet, off + 1)
    if rtype != OPT or off + 11 + rdlen != len(packet):
        raise WireError("bad EDNS record")
    q.edns = True
    q.udp_size = rclass
    q.edns_version = (ttl >> 16) & 0xFF
    q.do = bool(ttl & 0x8000)


def wire_to_dotted(name_wire: bytes) -> bytes:
    """b'\\x03www\\x07example\\x03com\\x00' -> b'www.example.com' (root -> b'')."""
    labels = []
    off = 0
    while True:
        length = name_wire[off]
        if length == 0:
            return b".".join(labels)
        labels.append(name_wire[off + 1:off + 1 + length])
        off += 1 + length


def dotted_to_wire(name: bytes) -> bytes:
    """b'www.example.com' -> wire form; WireError when a label is empty or too long."""
    if not name or name == b".":
        return b"\x00"
    out = bytearray()
    for label in name.rstrip(b".").split(b"."):
        if not label or len(label) > 63:
            raise WireError("bad label")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > MAX_NAME:
        raise WireError("name too long")
    return bytes(out)


def skip_name(buf: bytes, off: int) -> int:
    """Offset after a possibly compressed name in a message."""
    end = len(buf)
    while True:
        if off >= end:
            raise WireError("name runs past the end")
        length = buf[off]
        if length == 0:
            return off + 1
        if length >= 0xC0:
            if off + 2 > end:
                raise WireError("pointer cut short")
            return off + 2
        if length > 63:
            raise WireError("reserved label type")
        off += 1 + length


def read_name(buf: bytes, off: int) -> tuple[bytes, int]:
    """(lower-case dotted name, offset after it), following compression pointers safely."""
    labels = []
    end = len(buf)
    after = -1
    jumps = 0
    total = 0
    while True:
        if off >= end:
            raise WireError("name runs past the end")
        length = buf[off]
        if length >= 0xC0:
            if off + 2 > end:
                raise WireError("pointer cut short")
            if after < 0:
                after = off + 2
            target = ((length & 0x3F) << 8) | buf[off + 1]
            jumps += 1
            if target >= off or jumps > 64:  # pointers must go backwards: no loops
                raise WireError("bad compression pointer")
            off = target
            continue
        if length > 63:
            raise WireError("reserved label type")
        if length == 0:
            return b".".join(labels).lower(), (after if after >= 0 else off + 1)
        total += length + 1
        if total > MAX_NAME or off + 1 + length > end:
            raise WireError("name too long")
        labels.append(buf[off + 1:off + 1 + length])
        off += 1 + length


# --- Building answers -------------------------------------------------------


def reply_flags(query_flags: int, rcode: int, truncated: bool = False) -> int:
    """Response flags: QR and RA set, RD and CD copied from the query."""
    flags = QR | RA | (query_flags & (RD | CD)) | (rcode & 0xF)
    if truncated:
        flags |= TC
    return flags


def opt_record(extended_rcode: int = 0, ede: tuple[int, bytes] | None = None) -> bytes:
    """Our EDNS record: payload size, no DO bit; optionally an extended DNS error."""
    rdata = b""
    if ede is not None:
        info_code, text = ede
        body = _U16.pack(info_code) + text[:200]
        rdata = _U16.pack(EDNS_OPTION_EDE) + _U16.pack(len(body)) + body
    return b"\x00" + _RR_FIXED.pack(OPT, MAX_UDP, (extended_rcode & 0xFF) << 24, len(rdata)) + rdata


def rr(owner: bytes, rtype: int, ttl: int, rdata: bytes, rclass: int = CLASS_IN) -> bytes:
    return owner + _RR_FIXED.pack(rtype, rclass, ttl, len(rdata)) + rdata


POINTER_TO_QUESTION = b"\xc0\x0c"
OPT_RECORD = opt_record()  # ours, without options


def synthetic_soa(ttl: int) -> bytes:
    """A minimal SOA for negative answers: its TTL and MINIMUM bound negative caching (RFC 2308)."""
    rdata = b"\x00\x00" + struct.pack(">IIIII", 1, 3600, 600, 86400, ttl)
    return rr(POINTER_TO_QUESTION, SOA, ttl, rdata)


class Answer:
    """A reply's tail (everything after the ID), with where its TTLs are, for the cache.

    `ttl_offsets` are offsets of 4-byte TTL fields inside `tail`, `ttls` their
    values when built; the cache rewrites them as the answer ages.
    """

    __slots__ = ("tail", "ttl_offsets", "ttls")

    def __init__(self, tail: bytes, ttl_offsets: tuple[int, ...] = (), ttls: tuple[int, ...] = ()):
        self.tail = tail
        self.ttl_offsets = ttl_offsets
        self.ttls = ttls


def build_answer(q: Query, rcode: int, answers: list[bytes] = (), authority: list[bytes] = (), *, ede: tuple[int, bytes] | None = None, limit: int | None = None) -> Answer:
    """Build a reply from ready-made records; truncated (TC) when over the client's limit."""
    ar = 1 if q.edns else 0
    tail_head_len = 10 + len(q.question)
    offsets, ttls = [], []
    pos = tail_head_len
    for record in list(answers) + list(authority):
        name_end = skip_name(record, 0)
        offsets.append(pos + name_end + 4)
        ttls.append(_U32.unpack_from(record, name_end + 4)[0])
        pos += len(record)
    body = b"".join(answers) + b"".join(authority)
    opt = opt_record(ede=ede) if q.edns else b""
    tail = _COUNTS.pack(reply_flags(q.flags, rcode), 1, len(answers), len(authority), ar) + q.question + body + opt
    if limit is not None and len(tail) + 2 > limit:
        return truncated(q)
    return Answer(tail, tuple(offsets), tuple(ttls))


def truncated(q: Query) -> Answer:
    """An empty reply with TC set: the client asks again over TCP."""
    opt = opt_record() if q.edns else b""
    return Answer(_COUNTS.pack(reply_flags(q.flags, NOERROR, truncated=True), 1, 0, 0, 1 if q.edns else 0) + q.question + opt)


def error_reply(q: Query, rcode: int) -> bytes:
    """A whole reply (ID included) with no records: SERVFAIL, REFUSED, NOTIMP, FORMERR."""
    ar = 1 if q.edns else 0
    extended = 0
    if rcode > 15:  # BADVERS: the upper bits travel in the EDNS record
        extended, rcode = rcode >> 4, rcode & 0xF
    opt = opt_record(extended) if q.edns else b""
    return q.id + _COUNTS.pack(reply_flags(q.flags, rcode), 1, 0, 0, ar) + q.question + opt


def header_error(packet: bytes, rcode: int) -> bytes | None:
    """A bare error reply echoing only the header, for queries we cannot parse further (NOTIMP)."""
    if len(packet) < HEADER_LEN:
        return None
    qid, flags = struct.unpack_from(">HH", packet)
    if flags & QR:
        return None
    out_flags = QR | (flags & (OPCODE_MASK | RD | CD)) | RA | rcode
    return _HEADER.pack(qid, out_flags, 0, 0, 0, 0)


def render(answer: Answer, age: int) -> bytes:
    """The tail with every TTL lowered by `age` seconds (never below zero)."""
    if not answer.ttl_offsets or age <= 0:
        return answer.tail
    out = bytearray(answer.tail)
    for off, ttl in zip(answer.ttl_offsets, answer.ttls):
        _U32.pack_into(out, off, ttl - age if ttl > age else 0)
    return bytes(out)


# --- Upstream ---------------------------------------------------------------


def upstream_query(qid: int, question: bytes) -> bytes:
    """Our query upstream for `question` (name, type, class): recursion desired, EDNS with our payload size."""
    return _HEADER.pack(qid, RD, 1, 0, 0, 1) + question + OPT_RECORD


class UpstreamReply:
    """An upstream's answer, stripped of its EDNS record, ready to be re-served.

    `body` is everything after the question; compression pointers in it
    point into the question at offset 12, which is why a reply built for a
    client puts the client's question (same length) in the same place.
    """

    __slots__ = ("rcode", "flags", "an", "ns", "ar", "body", "ttl_offsets", "ttls", "cache_ttl", "truncated", "qend")


def parse_reply(packet: bytes, qid: int, question_lower: bytes) -> UpstreamReply:
    """Check an upstream reply against the question we asked and index its records."""
    size = len(packet)
    if size < HEADER_LEN:
        raise WireError("too short")
    rid, flags, qd, an, ns, ar = _HEADER.unpack_from(packet)
    if rid != qid or not flags & QR or qd != 1:
        raise WireError("not the reply we wait for")
    qend = HEADER_LEN + len(question_lower)
    asked = packet[HEADER_LEN:qend]
    if asked != question_lower and asked.lower() != question_lower:
        raise WireError("reply to another question")
    reply = UpstreamReply()
    reply.flags = flags
    reply.rcode = rcode = flags & 0xF
    reply.truncated = bool(flags & TC)
    reply.qend = qend
    if reply.truncated:
        reply.an = reply.ns = reply.ar = 0
        reply.body = b""
        reply.ttl_offsets = reply.ttls = ()
        reply.cache_ttl = 0
        return reply
    offsets, ttls = [], []
    answer_ttl = None
    negative_ttl = None
    off = qend
    kept_ar = 0
    cut = None
    unpack_fixed = _RR_FIXED.unpack_from
    authority_end = an + ns
    for index in range(authority_end + ar):
        start = off
        # A name: most records' owner is a pointer to the question (two bytes).
        if off < size and packet[off] >= 0xC0:
            off += 2
        else:
            off = skip_name(packet, off)
        rdata_at = off + 10
        if rdata_at > size:
            raise WireError("record cut short")
        rtype, _rclass, ttl, rdlen = unpack_fixed(packet, off)
        off = rdata_at + rdlen
        if off > size:
            raise WireError("record data cut short")
        if ttl > 0x7FFFFFFF:  # RFC 2181: a TTL with the top bit set means zero
            ttl = 0
        if rtype == OPT:
            if index < authority_end:
                raise WireError("EDNS record outside the additional section")
            cut = start  # drop it and what follows: nothing before points forward
            break
        offsets.append(rdata_at - 6 - qend)
        ttls.append(ttl)
        if index < an:
            if answer_ttl is None or ttl < answer_ttl:
                answer_ttl = ttl
        elif index < authority_end:
            if rtype == SOA and rdlen >= 22:
                minimum = _U32.unpack_from(packet, off - 4)[0]
                negative_ttl = min(ttl, minimum)
        else:
            kept_ar += 1
    if cut is None:
        cut = off
        if off != size:
            raise WireError("trailing bytes")
    reply.an, reply.ns, reply.ar = an, ns, kept_ar
    reply.body = packet[qend:cut]
    reply.ttl_offsets = tuple(offsets)
    reply.ttls = tuple(ttls)
    if rcode == NOERROR and an:
        reply.cache_ttl = answer_ttl or 0
    elif rcode == NOERROR or rcode == NXDOMAIN:
        reply.cache_ttl = negative_ttl or 0
    else:
        reply.cache_ttl = 0
    return reply


def answer_from_reply(q: Query, reply: UpstreamReply, *, ttl_cap: int | None = None, limit: int | None = None) -> Answer:
    """A client's answer built from a cached upstream reply (the client's own question echoed)."""
    question = q.question
    head = 10 + len(question)
    ttls = reply.ttls
    if ttl_cap is not None:
        ttls = tuple(ttl if ttl < ttl_cap else ttl_cap for ttl in ttls)
    opt = OPT_RECORD if q.edns else b""
    flags = reply_flags(q.flags, reply.rcode)
    tail = _COUNTS.pack(flags, 1, reply.an, reply.ns, reply.ar + (1 if q.edns else 0)) + question + reply.body + opt
    if limit is not None and len(tail) + 2 > limit:
        return truncated(q)
    answer = Answer(tail, tuple(head + off for off in reply.ttl_offsets), ttls)
    if ttls != reply.ttls:
        answer.tail = _with_ttls(tail, answer.ttl_offsets, ttls)
    return answer


def _with_ttls(tail: bytes, offsets: tuple[int, ...], ttls: tuple[int, ...]) -> bytes:
    out = bytearray(tail)
    for off, ttl in zip(offsets, ttls):
        _U32.pack_into(out, off, ttl)
    return bytes(out)


def records_of_type(reply: UpstreamReply, qtype: int) -> list[tuple[int, bytes]]:
    """(TTL, rdata) of the answer records of one type, for answers we rewrite (safe search)."""
    out = []
    buf = reply.body  # names are only skipped here: where their pointers lead does not matter
    off = 0
    for _ in range(reply.an):
        off = skip_name(buf, off)
        rtype, _rclass, ttl, rdlen = _RR_FIXED.unpack_from(buf, off)
        rdata = buf[off + 10:off + 10 + rdlen]
        off += 10 + rdlen
        if rtype == qtype:
            out.append((ttl, rdata))
    return out
