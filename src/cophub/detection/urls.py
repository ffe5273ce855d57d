"""Finding and normalising URLs in reports, for matching against domain lists.

Reports are typed by children, parents and teachers, mostly in Vietnamese:
links often lack a scheme ("facebook.com/abc"), sit against punctuation, or
are deliberately defanged ("hxxps://evil[.]com", "evil(dot)com", "evil[chấm]com").
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

# --- extraction ---------------------------------------------------------------

# Defanging conventions used in threat reports and by people dodging filters.
_DEFANGED_SCHEME = re.compile(r"\bhxxp(s?)", re.I)
_DEFANGED_DOT = re.compile(r"\s*[\[({]\s*(?:\.|dot|chấm)\s*[\])}]\s*", re.I)
_DEFANGED_COLON = re.compile(r"[\[({](:|://)[\])}]")

# Characters that end a URL in running text (whitespace, quotes, angle brackets).
_STOP = r"\s<>\"'`“”‘’«»"
_URL = re.compile(
    rf"""
    (?<![\w@.:/-])                      # not the tail of a word, e-mail or longer URL
    (?:
        https?://[^{_STOP}]+            # explicit scheme: everything up to a stop
      |
        (?:[^\W_][\w-]*\.)+             # bare host: one or more labels (IDN allowed) ...
        [^\W\d_]{{2,63}}(?![\w@-])      # ... then an alphabetic TLD, not an e-mail local part
        (?::\d{{1,5}})?                 # optional port
        (?:[/?#][^{_STOP}]*)?           # optional path, query, fragment
    )
    """,
    re.X | re.I,
)

# A bare "word.word" is only taken for a URL if the TLD is one people actually
# use for links here, or if a path follows ("abc.click/xyz"); otherwise
# "TP.HCM", "anh.jpg" or a missing space after a full stop would count.
COMMON_TLDS = frozenset("""
    vn com net org info biz edu gov int io co me tv cc ly gg to in us uk eu de fr ru cn jp kr
    tw hk sg th la kh my id ph au ca xyz top online site club app dev link live shop store vip
    pro asia fun icu click win bet tk ml ga cf gq ws su nu fm am ai so st sh lol mobi name
""".split())

_TRAILING = ".,;:!?…"
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _refang(text: str) -> str:
    text = _DEFANGED_SCHEME.sub(r"http\1", text)
    text = _DEFANGED_DOT.sub(".", text)
    return _DEFANGED_COLON.sub(r"\1", text)


def _strip_trailing(candidate: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets from the end."""
    while candidate:
        last = candidate[-1]
        if last in _TRAILING:
            candidate = candidate[:-1]
        elif last in _CLOSERS and candidate.count(last) > candidate.count(_CLOSERS[last]):
            candidate = candidate[:-1]  # "(xem abc.vn/x)" but keep "/Foo_(bar)"
        else:
            break
    return candidate


def _plausible(candidate: str) -> bool:
    if "://" in candidate:
        return "." in candidate.split("://", 1)[1]
    host, rest = re.match(r"([^:/?#]*)(.*)", candidate, re.S).groups()
    tld = host.rsplit(".", 1)[-1].lower()
    has_path = rest.lstrip(":0123456789").startswith(("/", "?"))
    return tld in COMMON_TLDS or has_path


def extract_urls(text: str) -> list[str]:
    """URLs found in free text, refanged, trailing punctuation stripped, in order, unique.

    Scheme-less ones are returned as written ("facebook.com/abc");
    normalise_url adds the scheme.
    """
    found: dict[str, None] = {}
    for match in _URL.finditer(_refang(text)):
        candidate = _strip_trailing(match.group(0))
        if candidate and _plausible(candidate):
            found.setdefault(candidate, None)
    return list(found)


# --- normalisation ------------------------------------------------------------

# Click and share trackers: they differ per visit but name the same page.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid",
    "igshid", "igsh", "si", "mibextid", "mc_cid", "mc_eid", "_ga", "_gl", "__cft__", "__tn__",
    "ref_src", "is_from_webapp", "sender_device", "share_app_id", "share_link_id",
})
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:(?!\d)", re.I)  # "mailto:", not "host:8080"
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def _ascii_host(host: str) -> str | None:
    """Lower-case ASCII (punycode) form of a host name or IP literal, or None if invalid."""
    host = host.rstrip(".").lower()
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    try:
        # Python's codec is IDNA 2003; it agrees with browsers for Vietnamese
        # letters, which is what occurs in our reports.
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_host.split(".")
    if len(labels) < 2 or not _TLD.fullmatch(labels[-1]):
        return None
    return ascii_host if all(_LABEL.fullmatch(label) for label in labels) else None


def _netloc(scheme: str, host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is None or port == DEFAULT_PORTS[scheme]:
        return host
    return f"{host}:{port}"


def _path(path: str) -> str:
    path = re.sub(r"/{2,}", "/", path) or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    # Percent-encode raw non-ASCII/space as browsers do; upper-case existing
    # escapes so "%c3%a1" and "%C3%A1" compare equal.
    return _ESCAPE.sub(lambda m: m.group(0).upper(), quote(path, safe=_PATH_SAFE))


def _query(query: str) -> str:
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
             if not _is_tracking(k)]
    return urlencode(sorted(pairs))


def _is_tracking(key: str) -> bool:
    key = key.lower()
    return key.startswith("utm_") or key in TRACKING_PARAMS


def normalise_url(url: str) -> str | None:
    """Canonical form of an http(s) URL for comparison and storage; None if not one.

    Scheme-less input ("facebook.com/abc") is taken as http.
    """
    url = url.strip()
    if "://" not in url and not _SCHEME.match(url):
        url = "http://" + url
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError if out of range or not a number
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = _ascii_host(parts.hostname)
    if host is None:
        return None
    return urlunsplit((scheme, _netloc(scheme, host, port), _path(parts.path), _query(parts.query), ""))


def url_domain(normalised: str) -> str:
    """Host of a normalised URL without a leading "www."."""
    host = urlsplit(normalised).hostname or ""
    return host[4:] if host.startswith("www.") else host


def is_specific(normalised: str) -> bool:
    """Whether a normalised URL names more than a site's front page (a path or a query)."""
    parts = urlsplit(normalised)
    return parts.path not in ("", "/") or bool(parts.query)


def normalise_domain(value: str) -> str | None:
    """Domain-list entry form of a host, "*.host" or URL: punycode, no "www.".

    "www." goes because url_domain drops it from the URLs being matched, so an
    entry keeping it could never match.
    """
    value = value.strip().lstrip("*").lstrip(".")
    normalised = normalise_url(value) if value else None
    return url_domain(normalised) if normalised else None


def domain_candidates(host: str) -> list[str]:
    """The host and each parent domain, most specific first, stopping before the TLD.

    "a.b.example.com.vn" -> [a.b.example.com.vn, b.example.com.vn, example.com.vn, com.vn];
    a list entry "example.com.vn" then matches all its subdomains.
    """
    host = host.rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
        return [host]  # an IP address has no parents
    except ValueError:
        pass
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]
