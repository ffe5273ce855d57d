"""Is the reported content still there? One look at a URL, through the guarded fetcher.

A takedown notice is closed when its URL answers "gone"; it is re-sent while
it answers "present"; "unknown" (a timeout, a server error, a refusal by
policy) changes nothing and is tried again at the next round, because a
platform that is down for an hour has not removed anything.

What counts as gone:
- 404 Not Found and 410 Gone (after redirects);
- a host that no longer resolves (the site itself is gone);
- a page that says so: the large platforms answer 200 with a "this content
  isn't available" page, in English or Vietnamese; their wording is matched
  in the first part of the page (`GONE_PHRASES`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from . import safehttp

GONE, PRESENT, UNKNOWN = "gone", "present", "unknown"
GONE_STATUSES = frozenset({404, 410})
# Read enough of a page to find a platform's "not available" notice, no more.
PAGE_BYTES = 256 * 1024

# Lower case, as the platforms write them (Facebook, TikTok, YouTube, Instagram, X, Zalo and generic pages).
GONE_PHRASES = (
    "this content isn't available",
    "this content isn't available right now",
    "content not available",
    "video currently unavailable",
    "video unavailable",
    "this video has been removed",
    "this video is no longer available",
    "sorry, this page isn't available",
    "this page doesn't exist",
    "this account doesn't exist",
    "page not found",
    "nội dung này hiện không hiển thị",
    "nội dung này không khả dụng",
    "video hiện không khả dụng",
    "video không khả dụng",
    "trang này không khả dụng",
    "không tìm thấy trang",
)


@dataclass(frozen=True)
class Check:
    """The answer of one look: `state` is gone, present or unknown; `detail` says why, for the case's timeline."""

    state: str
    status: int | None
    final_url: str
    detail: str


def check(url: str, *, timeout: float = 15.0, allow_private: bool | None = None) -> Check:
    try:
        page = safehttp.fetch(url, timeout=timeout, max_bytes=PAGE_BYTES, allow_private=allow_private)
    except safehttp.FetchFailed as exc:
        if exc.reason == "dns":
            return Check(GONE, None, url, "the host name no longer resolves")
        return Check(UNKNOWN, None, url, f"fetch failed: {exc.reason}")
    except safehttp.FetchRefused as exc:
        return Check(UNKNOWN, None, url, f"not fetched: {exc.reason}")
    if page.status in GONE_STATUSES:
        return Check(GONE, page.status, page.final_url, f"HTTP {page.status}")
    if 200 <= page.status < 300:
        phrase = _gone_phrase(page.body)
        if phrase:
            return Check(GONE, page.status, page.final_url, f"the page says “{phrase}”")
        return Check(PRESENT, page.status, page.final_url, f"HTTP {page.status}")
    return Check(UNKNOWN, page.status, page.final_url, f"HTTP {page.status}")


def _gone_phrase(body: bytes) -> str | None:
    text = unicodedata.normalize("NFC", body.decode("utf-8", errors="replace")).lower().replace("’", "'")
    return next((phrase for phrase in GONE_PHRASES if phrase in text), None)
