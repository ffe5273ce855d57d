"""Listening sockets for the resolver and its block page (no Django)."""

from __future__ import annotations

import errno
import socket


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def udp_and_tcp(host: str, port: int, attempts: int = 20) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP listening socket on the same port. Port 0 asks the system for a free
    UDP port, which another program may hold for TCP: then another one is tried."""
    for attempt in range(attempts):
        udp = listening(host, port, socket.SOCK_DGRAM)
        try:
            return udp, listening(host, udp.getsockname()[1], socket.SOCK_STREAM)
        except OSError as exc:
            udp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def listening(host: str, port: int, kind: int) -> socket.socket:
    """A non-blocking socket bound to (host, port); "::" also takes IPv4 clients (as ::ffff:a.b.c.d)."""
    family = family_of(host)
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
    sock.bind((host, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock
