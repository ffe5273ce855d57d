"""Every public page, in Vietnamese (the default) and English: help is always
one tap away, and no English is left on a Vietnamese page."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import polib
import pytest

from cophub.intake.models import Submission

from .conftest import child_report, main_of, receipt_of

pytestmark = pytest.mark.django_db

SRC = Path(__file__).resolve().parents[2]


def catalog_sentences() -> list[tuple[str, str]]:
    """Whole sentences of the public catalogs, as (English, Vietnamese)."""
    pairs = []
    for app in ("intake", "core"):
        for entry in polib.pofile(str(SRC / app / "locale" / "vi" / "LC_MESSAGES" / "django.po")):
            if entry.msgstr and entry.msgstr != entry.msgid and len(entry.msgid) > 24 and "%(" not in entry.msgid and "{" not in entry.msgid:
                pairs.append((entry.msgid, entry.msgstr))
    return pairs


def public_pages(client, base: str) -> dict[str, object]:
    """Visit every public page as a reporter would; returns the responses by name."""
    pages = {
        "home": client.get(f"{base}/"),
        "child step 1": client.get(f"{base}/child/"),
        "child step 1 error": client.post(f"{base}/child/", {"step": "1"}),
        "child step 2": client.post(f"{base}/child/", {"step": "1", "category": "scam", "age_band": "9_12"}),
        "child step 2 error": client.post(f"{base}/child/", {"step": "2", "category": "scam", "age_band": "9_12"}),
        "child step 3": client.post(f"{base}/child/", {"step": "2", "category": "scam", "age_band": "9_12", "where_unknown": "on"}),
        "child step 3 error": client.post(f"{base}/child/", {"step": "3", "category": "scam", "age_band": "9_12", "where_unknown": "on", "contact": "yes"}),
        "adult": client.get(f"{base}/adult/"),
        "adult error": client.post(f"{base}/adult/", {}),
        "danger": client.get(f"{base}/danger/"),
        "track": client.get(f"{base}/track/"),
        "track error": client.post(f"{base}/track/", {"code": "AAAA-BBBB", "phrase": "x"}),
        "receipt gone": client.get(f"{base}/received/"),
        "not found": client.get(f"{base}/no-such-page/"),
    }
    filed = child_report(client, base=base)
    pages["receipt"] = client.get(filed["Location"])
    code, phrase = receipt_of(pages["receipt"].content.decode())
    client.post(f"{base}/track/", {"code": code, "phrase": phrase})
    pages["status"] = client.get(f"{base}/status/")
    pages["status error"] = client.post(f"{base}/status/", {"text": ""})
    pages["danger alert"] = client.post(f"{base}/danger/")
    pages["danger more error"] = client.post(f"{base}/danger/more/", {"text": ""})
    return pages


@pytest.mark.parametrize("language", ["vi", "en"])
def test_every_public_page_has_111_the_danger_button_and_the_counsellor(client, units, language):
    if language == "en":
        client.get("/lang/en/?next=/")
    pages = public_pages(client, "/s/th-hung-vuong")
    for name, response in pages.items():
        page = response.content.decode()
        if name == "not found":
            continue  # no page resolved, so no school known: checked without a school link below
        assert f'<html lang="{language}">' in page, name
        assert 'href="tel:111"' in page, name
        assert re.search(r'<form method="post" action="/s/th-hung-vuong/danger/">.*?name="danger"', page, re.S), name
        assert "Cô Lan" in page and 'href="tel:02253000111"' in page, name


def test_vietnamese_pages_have_no_english_left(client, units):
    english = [en for en, _ in catalog_sentences()]
    assert len(english) > 50
    for name, response in public_pages(client, "").items():
        page = unescape(response.content.decode())
        leftovers = [sentence for sentence in english if sentence in page]
        assert leftovers == [], f"{name}: {leftovers[:3]}"
        assert "Tôi đang gặp nguy hiểm" in page and 'href="tel:111"' in page and 'href="tel:113"' in page, name


def test_english_pages_have_no_vietnamese_left(client, units):
    vietnamese = [vi for _, vi in catalog_sentences()]
    client.get("/lang/en/?next=/")
    for name, response in public_pages(client, "").items():
        page = unescape(response.content.decode())
        leftovers = [sentence for sentence in vietnamese if sentence in page]
        assert leftovers == [], f"{name}: {leftovers[:3]}"
        assert "I am in danger now" in page, name


def test_vietnamese_is_the_default(client, units):
    page = client.get("/").content.decode()
    assert '<html lang="vi">' in page
    assert "Em là trẻ em hoặc học sinh" in page
    assert "Tôi là phụ huynh, thầy cô hoặc người lớn khác" in page
    assert "Xem lại phản ánh đã gửi" in page


def test_the_language_switch_turns_the_site_english_and_back(client, units):
    response = client.get("/lang/en/?next=/")
    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/").content.decode()
    assert '<html lang="en">' in page and "I am a child or young person" in page
    assert "Check on a report I sent" in page
    client.get("/lang/vi/?next=/")
    assert "Em là trẻ em hoặc học sinh" in client.get("/").content.decode()


def test_pages_without_a_school_link_still_show_help(client, units, settings):
    page = client.get("/").content.decode()
    assert 'href="tel:111"' in page and 'action="/danger/"' in page
    assert "Tư vấn học đường" in page
    settings.COPHUB_HOME_UNIT = "th-hung-vuong"
    assert "Cô Lan" in client.get("/").content.decode()


def test_forms_keep_the_origin_header_that_csrf_needs(client, units):
    """With "no-referrer" browsers post "Origin: null" and Django refuses every form."""
    response = client.get("/")
    assert '<meta name="referrer" content="same-origin">' in response.content.decode()
    assert response["Referrer-Policy"] != "no-referrer"


def test_no_public_page_needs_javascript(client, units):
    for name, response in public_pages(client, "").items():
        assert "<script" not in response.content.decode(), name


def test_a_hub_without_units_says_so_and_still_shows_the_numbers(client, db):
    page = client.get("/").content.decode()
    assert 'href="tel:111"' in page
    response = client.post("/adult/", {"reporter_kind": "parent", "category": "scam", "description": "x"})
    assert response.status_code == 503 and 'href="tel:111"' in response.content.decode()
    assert Submission.objects.count() == 0
