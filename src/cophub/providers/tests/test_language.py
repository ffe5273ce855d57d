"""Admin labels and problem details speak Vietnamese; an API client may ask for English."""

from __future__ import annotations

from pathlib import Path

import polib
import pytest

from .conftest import minimal_report

CATALOG = Path(__file__).resolve().parents[1] / "locale" / "vi" / "LC_MESSAGES" / "django.po"


def test_catalog_is_complete_and_compiled():
    po = polib.pofile(str(CATALOG))
    assert len(po) > 0 and not po.untranslated_entries() and not po.fuzzy_entries()
    compiled = {e.msgid: e.msgstr for e in polib.mofile(str(CATALOG.with_suffix(".mo")))}
    assert compiled == {e.msgid: e.msgstr for e in po.translated_entries()}, "run `cophub compilemessages` in src/cophub/providers"


@pytest.mark.django_db
def test_problem_detail_follows_accept_language_and_the_code_does_not(live):
    vietnamese = live.client.get("/api/v1/reports/rpt_x", headers=live.headers())
    english = live.client.get("/api/v1/reports/rpt_x", headers=live.headers({"Accept-Language": "en"}))
    assert vietnamese.json()["detail"] == "Không có báo cáo nào với mã này cho khoá API này."
    assert english.json()["detail"] == "There is no report with this id for this API key."
    assert vietnamese["Content-Language"] == "vi" and english["Content-Language"] == "en"
    assert vietnamese.json()["code"] == english.json()["code"] == "report.not_found"
    assert vietnamese.json()["title"] == english.json()["title"]
    unauthenticated = live.client.post("/api/v1/reports", data=minimal_report(), content_type="application/json", headers={"Accept-Language": "en"})
    assert unauthenticated.json()["detail"].startswith("Send the API key")
