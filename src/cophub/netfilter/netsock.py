"""Listening sockets for the resolver and its block page (no Django)."""

from __future__ import annotations

import socket


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


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
