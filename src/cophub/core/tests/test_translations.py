"""Every app speaks Vietnamese: complete catalogs, compiled and up to date."""

from __future__ import annotations

from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ["core", "orgs", "audit", "evidence", "intake", "cases", "providers", "federation", "hashbanks", "detection", "triage", "referrals", "alerts", "netfilter"]


def catalog(app: str) -> Path:
    return ROOT / app / "locale" / "vi" / "LC_MESSAGES" / "django.po"


@pytest.mark.parametrize("app", APPS)
def test_catalog_is_complete(app):
    po = polib.pofile(str(catalog(app)))
    assert len(po) > 0
    untranslated = [e.msgid for e in po.untranslated_entries()]
    fuzzy = [e.msgid for e in po.fuzzy_entries()]
    assert untranslated == [] and fuzzy == [], f"{app}: untranslated {untranslated[:5]}, fuzzy {fuzzy[:5]}"


@pytest.mark.parametrize("app", APPS)
def test_compiled_catalog_matches_source(app):
    po = polib.pofile(str(catalog(app)))
    mo = polib.mofile(str(catalog(app).with_suffix(".mo")))
    def key(entry):
        return (entry.msgctxt or "", entry.msgid)
    compiled = {key(e): (e.msgstr, tuple(sorted(e.msgstr_plural.items()))) for e in mo}
    source = {key(e): (e.msgstr, tuple(sorted(e.msgstr_plural.items()))) for e in po.translated_entries()}
    assert compiled == source, f"{app}: run `cophub compilemessages` in src/cophub/{app}"
