"""Client identity for rate limits and audit."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    """The client's address; behind a proxy, the header the proxy sets."""
    raw = request.META.get(settings.COPHUB_CLIENT_IP_HEADER) or request.META.get("REMOTE_ADDR", "")
    raw = raw.split(",")[0].strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "unknown"
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped:
        return str(address.ipv4_mapped)
    # One IPv6 client usually owns a whole /64.
    return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
