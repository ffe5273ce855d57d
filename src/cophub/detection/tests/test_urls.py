"""URL extraction from Vietnamese free text, normalisation and domain suffixes."""

from __future__ import annotations

import pytest

from cophub.detection.urls import domain_candidates, extract_urls, is_specific, normalise_domain, normalise_url, url_domain


def test_extracts_scheme_less_links_from_vietnamese_text():
    text = ("Con em nhận được tin nhắn: vào facebook.com/nhom.kin để nhận quà, "
            "hoặc www.nap-the-free.vn/su-kien… Nguy hiểm quá!")
    assert extract_urls(text) == ["facebook.com/nhom.kin", "www.nap-the-free.vn/su-kien"]


def test_trailing_punctuation_and_brackets():
    text = ("Xem (https://vi.wikipedia.org/wiki/Foo_(bar)), rồi https://t.me/joinchat/AbC. "
            "“https://zalo.me/g/xyz” và bit.ly/3abc! Hết.")
    assert extract_urls(text) == ["https://vi.wikipedia.org/wiki/Foo_(bar)", "https://t.me/joinchat/AbC",
                                  "https://zalo.me/g/xyz", "bit.ly/3abc"]


def test_deobfuscates_defanged_links():
    text = "Cảnh báo: hxxps://lua-dao[.]com/login, lua-dao(dot)net và trang-xau[chấm]vn, hXXp[:]//x[.]org"
    assert extract_urls(text) == ["https://lua-dao.com/login", "lua-dao.net", "trang-xau.vn", "http://x.org"]


def test_deduplicates_in_order():
    text = "tiktok.com/@be.an rồi youtube.com/watch?v=1 rồi lại tiktok.com/@be.an."
    assert extract_urls(text) == ["tiktok.com/@be.an", "youtube.com/watch?v=1"]


@pytest.mark.parametrize("text", [
    "Liên hệ cô Lan: nguyen.thi.lan@gmail.com",
    "Trường ở TP.HCM, gửi ảnh anh.jpg và bao-cao.pdf",
    "Em học lớp 6.1, điểm 8.5 môn Toán.Sau đó em về nhà",
    "v.v. và các thứ khác",
])
def test_ignores_non_urls(text):
    assert extract_urls(text) == []


def test_unicode_host_and_unknown_tld_with_path():
    assert extract_urls("trang ví-dụ.vn nhé, và abc.click/xyz") == ["ví-dụ.vn", "abc.click/xyz"]


@pytest.mark.parametrize(("raw", "expected"), [
    ("HTTPS://User:pw@WWW.Example.COM:443//a//b/?utm_source=x&b=2&a=1&si=z#frag",
     "https://www.example.com/a/b?a=1&b=2"),
    ("facebook.com/Nhom.Kin/?fbclid=IwAR0&mibextid=abc", "http://facebook.com/Nhom.Kin"),
    ("http://example.com:80", "http://example.com/"),
    ("https://example.com:8443/x/", "https://example.com:8443/x"),
    ("example.com:8080/x/", "http://example.com:8080/x"),
    ("https://ví-dụ.vn/Trang", "https://xn--v-d-rma6749a.vn/Trang"),
    ("https://münchen.de/Ä b", "https://xn--mnchen-3ya.de/%C3%84%20b"),
    ("https://example.com/%c3%a1", "https://example.com/%C3%A1"),
    ("https://instagram.com/p/abc/?igshid=1&utm_medium=copy_link&gclid=2", "https://instagram.com/p/abc"),
    ("http://[::1]:80/", "http://[::1]/"),
    ("http://192.168.1.1/admin", "http://192.168.1.1/admin"),
    ("https://example.com.", "https://example.com/"),
])
def test_normalise(raw, expected):
    assert normalise_url(raw) == expected


@pytest.mark.parametrize("raw", [
    "mailto:a@b.com", "ftp://example.com/file", "javascript:alert(1)", "http://localhost/",
    "http://x.com:99999/", "http://bad_host.com/", "http://-x.com/", "http://1.2.3/", "",
    "http://" + "a" * 64 + ".com/",
])
def test_normalise_rejects(raw):
    assert normalise_url(raw) is None


def test_normalise_is_idempotent():
    once = normalise_url("WWW.Ví-Dụ.VN//a/?b=1&a=2&utm_campaign=z#x")
    assert normalise_url(once) == once


def test_is_specific():
    assert not is_specific(normalise_url("https://www.facebook.com/?fbclid=1"))
    assert is_specific(normalise_url("https://www.facebook.com/nhom.kin"))
    assert is_specific(normalise_url("https://example.com/?p=12"))


def test_url_domain():
    assert url_domain(normalise_url("www.x.vn/a")) == "x.vn"
    assert url_domain("https://m.facebook.com/abc") == "m.facebook.com"


def test_domain_candidates():
    assert domain_candidates("a.b.example.com.vn") == [
        "a.b.example.com.vn", "b.example.com.vn", "example.com.vn", "com.vn"]
    assert domain_candidates("example.com") == ["example.com"]
    assert domain_candidates("Example.COM.") == ["example.com"]
    assert domain_candidates("192.168.1.1") == ["192.168.1.1"]


@pytest.mark.parametrize(("raw", "expected"), [
    ("Example.COM", "example.com"), ("*.lua-dao.vn", "lua-dao.vn"), ("www.x.vn", "x.vn"),
    ("https://Ví-Dụ.vn/path?q=1", "xn--v-d-rma6749a.vn"), ("localhost", None), ("", None), ("mailto:a@b.c", None),
])
def test_normalise_domain(raw, expected):
    assert normalise_domain(raw) == expected
