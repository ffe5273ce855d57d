"""Fetching reported addresses without becoming a tool against the network
we run on (server-side request forgery).

The hub re-checks reported URLs on a schedule ("is the content still
there?").  Those URLs come from the public, so every fetch goes through
:func:`fetch`, which:

* accepts only ``http`` and ``https`` URLs without user information
  (any port is allowed: abusive content is often served on odd ports, and
  the address check below, not the port, is what keeps internal services
  out of reach);
* resolves the host name once with :func:`socket.getaddrinfo` and refuses
  the fetch if *any* resolved address is loopback, private, link-local,
  multicast, reserved, unspecified, shared (100.64.0.0/10), in 0.0.0.0/8,
  the cloud metadata address, or an IPv6 address embedding such an IPv4
  address (IPv4-mapped, 6to4, Teredo, NAT64) -- unless private addresses
  are allowed (``allow_private=True`` or the setting
  ``COPHUB_FETCH_ALLOW_PRIVATE``, for tests and a lab);
* connects to the checked address itself, never resolving the name again
  (no DNS rebinding), sends the original ``Host`` header and, for https,
  verifies the certificate against the host name;
* follows redirects by hand, checking every hop by the same rules;
* bounds the whole fetch, redirects included, by one deadline and reads at
  most ``max_bytes`` of the body.

Policy refusals raise :class:`FetchRefused`, network trouble raises
:class:`FetchFailed`; both are :class:`FetchError` with a ``reason`` code.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

__all__ = [
    "Fetched",
    "FetchError",
    "FetchFailed",
    "FetchRefused",
    "USER_AGENT",
    "check_address",
    "check_url",
    "fetch",
    "is_forbidden_address",
    "resolve_redirect",
]

USER_AGENT = "cophub-url-check/0.1 (child online protection hub; +https://github.com/cophub)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ALLOWED_METHODS = frozenset({"GET", "HEAD"})
CHUNK = 64 * 1024
# Headers that must not follow a redirect to another origin.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
# Listed explicitly, whatever the ipaddress flags say in this Python version.
FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",        # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",    # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",   # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",     # IETF protocol assignments
        "192.168.0.0/16",
        "198.18.0.0/15",    # benchmarking
        "224.0.0.0/4",      # multicast
        "240.0.0.0/4",      # reserved, broadcast
        "::/128",
        "::1/128",
        "fc00::/7",         # unique local
        "fe80::/10",        # link-local
        "ff00::/8",         # multicast
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# --------------------------------------------------------------------------- errors


class FetchError(Exception):
    """Base of every error :func:`fetch` raises; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str = "", *, url: str = ""):
        self.reason = reason
        self.url = url
        super().__init__(f"{reason}: {message}" if message else reason)


class FetchRefused(FetchError):
    """Refused by policy: ``scheme``, ``userinfo``, ``bad_url``,
    ``private_address`` or ``too_many_redirects``."""


class FetchFailed(FetchError):
    """The network let us down: ``dns``, ``timeout``, ``connect``, ``tls``
    or ``protocol``."""


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Fetched:
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool
    redirects: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0


# --------------------------------------------------------------------------- policy


def is_forbidden_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> bool:
    """True when ``ip`` is not a public unicast address we may fetch from."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and is_forbidden_address(embedded):
            return True
        if ip.ipv4_mapped is not None:
            return False  # a mapped public IPv4 address is as good as the address itself
    if ip in METADATA_ADDRESSES or any(ip in net for net in FORBIDDEN_NETWORKS):
        return True
    return bool(
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_address(ip, allow_private: bool) -> None:
    """Raise :class:`FetchRefused` ("private_address") unless ``ip`` may be fetched."""
    if not allow_private and is_forbidden_address(ip):
        raise FetchRefused("private_address", f"{ip} is not a public address")


def check_url(url: str) -> tuple[str, str, int, str]:
    """Validate ``url``; return (scheme, ascii host, port, request target).

    Raises :class:`FetchRefused` with ``scheme``, ``userinfo`` or ``bad_url``.
    """
    if not isinstance(url, str) or not url or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise FetchRefused("bad_url", "empty address or control characters/spaces in it", url=str(url)[:200])
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise FetchRefused("bad_url", str(exc), url=url) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused("scheme", f"scheme {scheme!r} is not http or https", url=url)
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise FetchRefused("userinfo", "user information in the address", url=url)
    host = parts.hostname
    if not host:
        raise FetchRefused("bad_url", "no host", url=url)
    try:
        port = parts.port
        if port is None:
            port = 443 if scheme == "https" else 80
    except ValueError:
        raise FetchRefused("bad_url", "bad port", url=url) from None
    if not 0 < port < 65536:
        raise FetchRefused("bad_url", "bad port", url=url)
    try:
        ipaddress.ip_address(host)
        ascii_host = host
    except ValueError:
        if "%" in host or "[" in parts.netloc:
            raise FetchRefused("bad_url", "bad IPv6 literal", url=url) from None
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise FetchRefused("bad_url", "bad host name", url=url) from None
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    target = path + ("?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?") if parts.query else "")
    return scheme, ascii_host, port, target


def resolve_redirect(current_url: str, location: str) -> str:
    """The absolute address a ``Location`` header points to (fragment dropped)."""
    new = urljoin(current_url, location.strip())
    parts = urlsplit(new)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def _allow_private_setting() -> bool:
    try:
        from django.conf import settings

        return bool(getattr(settings, "COPHUB_FETCH_ALLOW_PRIVATE", False))
    except Exception:  # settings not configured: the safe default
        return False


def _resolve(host: str, port: int, deadline: float) -> list[str]:
    """All addresses of ``host``, resolved once.  getaddrinfo cannot be
    interrupted, so it runs in a helper thread that we stop waiting for at
    the deadline."""
    result: dict = {}

    def work():
        try:
            result["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            result["error"] = exc

    worker = threading.Thread(target=work, name="safehttp-dns", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise FetchFailed("timeout", f"resolving {host} took too long")
    if "error" in result:
        raise FetchFailed("dns", f"cannot resolve {host}: {result['error']}")
    addresses = []
    for _family, _type, _proto, _canon, sockaddr in result["infos"]:
        addr = sockaddr[0].split("%", 1)[0]
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise FetchFailed("dns", f"no address for {host}")
    return addresses


# --------------------------------------------------------------------------- connections


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a fixed, already checked IP address; the name
    is only used for the Host header."""

    def __init__(self, host, port, *, ip, connect_timeout):
        super().__init__(host, port, timeout=connect_timeout)
        self._ip = ip

    def connect(self):
        try:
            self.sock = socket.create_connection((self._ip, self.port), self.timeout)
        except (TimeoutError, socket.timeout):
            raise FetchFailed("timeout", f"connecting to {self._ip}:{self.port} timed out") from None
        except OSError as exc:
            raise FetchFailed("connect", f"cannot connect to {self._ip}:{self.port}: {exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def connect(self):
        super().connect()
        context = ssl.create_default_context()
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        except (TimeoutError, socket.timeout):
            self.sock.close()
            raise FetchFailed("timeout", "TLS handshake timed out") from None
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self.sock.close()
            raise FetchFailed("tls", f"TLS with {self.host} failed: {exc}") from None


# --------------------------------------------------------------------------- fetch


def fetch(
    url: str,
    *,
    method: str = "GET",
    timeout: float = 10.0,
    max_bytes: int = 2_000_000,
    max_redirects: int = 5,
    allow_private: bool | None = None,
    headers: dict[str, str] | None = None,
) -> Fetched:
    """Fetch ``url`` under the rules in this module's docstring.

    ``timeout`` bounds the whole fetch, redirects included.  Only GET and
    HEAD are supported (the hub only looks).  Raises :class:`FetchRefused`
    or :class:`FetchFailed`.
    """
    method = method.upper()
    if method not in ALLOWED_METHODS:
        raise ValueError(f"method {method!r} not supported; use GET or HEAD")
    if timeout <= 0 or max_bytes < 0 or max_redirects < 0:
        raise ValueError("timeout must be positive, max_bytes and max_redirects not negative")
    if allow_private is None:
        allow_private = _allow_private_setting()
    start = time.monotonic()
    deadline = start + timeout
    request_headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
    for name, value in (headers or {}).items():
        if name.lower() == "host":
            continue  # the Host header always names the fetched host
        request_headers = {k: v for k, v in request_headers.items() if k.lower() != name.lower()}
        request_headers[name] = value

    redirects: list[str] = []
    current = url
    origin = None
    while True:
        scheme, host, port, target = check_url(current)
        if origin is not None and origin != (scheme, host, port):
            request_headers = {k: v for k, v in request_headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        origin = (scheme, host, port)
        status, response_headers, body, truncated = _one_request(
            scheme, host, port, target, method, request_headers, deadline, max_bytes, allow_private, current
        )
        location = response_headers.get("location")
        if status in REDIRECT_STATUSES and location:
            if len(redirects) >= max_redirects:
                raise FetchRefused("too_many_redirects", f"more than {max_redirects} redirects", url=current)
            try:
                current = resolve_redirect(current, location)
            except ValueError:
                raise FetchRefused("bad_url", "bad redirect location", url=current) from None
            redirects.append(current)
            if status == 303 and method != "HEAD":
                method = "GET"
            continue
        return Fetched(
            final_url=current,
            status=status,
            headers=response_headers,
            body=body,
            truncated=truncated,
            redirects=redirects,
            elapsed_seconds=time.monotonic() - start,
        )


def _remaining(deadline: float, url: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchFailed("timeout", "the fetch took too long", url=url)
    return left


def _one_request(scheme, host, port, target, method, request_headers, deadline, max_bytes, allow_private, url):
    """One request to one checked address; returns (status, headers, body, truncated)."""
    addresses = _resolve(host, port, deadline)
    for address in addresses:  # every address must pass, not just the one we use
        try:
            check_address(address, allow_private)
        except FetchRefused as exc:
            exc.url = url
            raise
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    last_error: FetchFailed | None = None
    conn = None
    for address in addresses:
        conn = cls(host, port, ip=address, connect_timeout=min(_remaining(deadline, url), 10.0))
        try:
            conn.connect()
            break
        except FetchFailed as exc:
            conn.close()
            conn = None
            if exc.reason != "connect":
                exc.url = url
                raise
            last_error = exc
    if conn is None:
        last_error.url = url
        raise last_error

    # A watchdog shuts the socket at the deadline, so a server trickling one
    # byte at a time cannot stretch the fetch past it.
    expired = threading.Event()
    sock = conn.sock  # http.client drops conn.sock on "Connection: close"; we keep it
    response = None

    def expire():
        expired.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    watchdog = threading.Timer(_remaining(deadline, url), expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            sock.settimeout(_remaining(deadline, url))
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in request_headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            status = response.status
            response_headers: dict[str, str] = {}
            for name, value in response.getheaders():
                key = name.lower()
                response_headers[key] = f"{response_headers[key]}, {value}" if key in response_headers else value
            chunks: list[bytes] = []
            size = 0
            truncated = False
            if method != "HEAD":
                while size < max_bytes:
                    if response.isclosed():
                        # The whole body is read and the server closes the
                        # connection (HTTP/1.0, "Connection: close"): http.client
                        # has closed the socket, so there is nothing to time.
                        break
                    sock.settimeout(_remaining(deadline, url))
                    chunk = response.read(min(CHUNK, max_bytes - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                if size >= max_bytes:
                    # With a Content-Length we know whether more was coming;
                    # without one we cannot tell without reading on, so we
                    # say truncated.
                    truncated = response.length is None or response.length > 0
            body = b"".join(chunks)
        except FetchError:
            raise
        except (TimeoutError, socket.timeout):
            raise FetchFailed("timeout", "the server took too long", url=url) from None
        except ssl.SSLError as exc:
            if expired.is_set():
                raise FetchFailed("timeout", "the fetch took too long", url=url) from None
            raise FetchFailed("tls", str(exc), url=url) from None
        except (http.client.HTTPException, OSError, ValueError) as exc:
            if expired.is_set():
                raise FetchFailed("timeout", "the fetch took too long", url=url) from None
            raise FetchFailed("protocol", f"{type(exc).__name__}: {exc}", url=url) from None
        if expired.is_set():
            raise FetchFailed("timeout", "the fetch took too long", url=url)
        return status, response_headers, body, truncated
    finally:
        watchdog.cancel()
        if response is not None:
            response.close()
        conn.close()
        sock.close()
