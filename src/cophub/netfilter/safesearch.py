"""Safe search through the names the search services publish for it.

Google, YouTube, Bing and DuckDuckGo each publish a host name that always
serves their filtered results; a network enforces safe search by answering
the service's own names with a CNAME to that host (Google's "Lock
SafeSearch for devices and networks", YouTube's "restricted mode for
networks", Microsoft's "strict.bing.com", DuckDuckGo's "safe.duckduckgo.com").
"""

from __future__ import annotations

GOOGLE_SAFE = b"forcesafesearch.google.com"
YOUTUBE_STRICT = b"restrict.youtube.com"
YOUTUBE_MODERATE = b"restrictmoderate.youtube.com"
BING_SAFE = b"strict.bing.com"
DUCKDUCKGO_SAFE = b"safe.duckduckgo.com"

# The country domains Google Search answers on (its published
# supported_domains list), google.com.vn among them.
GOOGLE_SUFFIXES = """
com ad ae com.af com.ag al am co.ao com.ar as at com.au az ba com.bd be bf bg
com.bh bi bj com.bn com.bo com.br bs bt co.bw by com.bz ca cat cd cf cg ch ci
co.ck cl cm cn com.co co.cr com.cu cv com.cy cz de dj dk dm com.do dz com.ec
ee com.eg es com.et fi com.fj fm fr ga ge gg com.gh com.gi gl gm gr com.gt gy
com.hk hn hr ht hu co.id ie co.il im co.in iq is it je com.jm jo co.jp co.ke
com.kh ki kg co.kr com.kw kz la com.lb li lk co.ls lt lu lv com.ly co.ma md
me mg mk ml com.mm mn com.mt mu mv mw com.mx com.my co.mz com.na com.ng com.ni
ne nl no com.np nr nu co.nz com.om com.pa com.pe com.pg com.ph com.pk pl pn
com.pr ps pt com.py com.qa ro rs ru rw com.sa com.sb sc se com.sg sh si sk
com.sl sn so sm sr st com.sv td tg co.th com.tj tl tm tn to com.tr tt com.tw
co.tz com.ua co.ug co.uk com.uy co.uz com.vc co.ve co.vi com.vn vu ws co.za
co.zm co.zw
""".split()

GOOGLE_NAMES = frozenset(
    name for suffix in GOOGLE_SUFFIXES for name in (f"www.google.{suffix}".encode(), f"google.{suffix}".encode())
)
YOUTUBE_NAMES = frozenset({
    b"www.youtube.com", b"m.youtube.com", b"youtube.com", b"youtubei.googleapis.com",
    b"youtube.googleapis.com", b"www.youtube-nocookie.com",
})
BING_NAMES = frozenset({b"www.bing.com", b"bing.com"})
DUCKDUCKGO_NAMES = frozenset({b"duckduckgo.com", b"www.duckduckgo.com", b"start.duckduckgo.com", b"html.duckduckgo.com"})


def build_map(config: dict) -> dict[bytes, bytes]:
    """Name -> safe host for one group's settings {"google", "youtube", "bing", "duckduckgo"}."""
    mapping: dict[bytes, bytes] = {}
    if config.get("google"):
        mapping.update(dict.fromkeys(GOOGLE_NAMES, GOOGLE_SAFE))
    youtube = config.get("youtube") or "off"
    if youtube in ("strict", "moderate"):
        target = YOUTUBE_STRICT if youtube == "strict" else YOUTUBE_MODERATE
        mapping.update(dict.fromkeys(YOUTUBE_NAMES, target))
    if config.get("bing"):
        mapping.update(dict.fromkeys(BING_NAMES, BING_SAFE))
    if config.get("duckduckgo"):
        mapping.update(dict.fromkeys(DUCKDUCKGO_NAMES, DUCKDUCKGO_SAFE))
    return mapping


def service_of(target: bytes) -> str:
    return {
        GOOGLE_SAFE: "google", YOUTUBE_STRICT: "youtube", YOUTUBE_MODERATE: "youtube",
        BING_SAFE: "bing", DUCKDUCKGO_SAFE: "duckduckgo",
    }.get(target, "")
