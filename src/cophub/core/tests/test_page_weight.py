"""Public pages stay light enough for a cheap phone on a slow connection.

On a 2G link (~50 kbit/s) every 6 KB costs about a second; a whole public
page, its stylesheet included, must stay under 25 KB compressed, load
nothing from another site, and need no script.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[1] / "static" / "cophub" / "site.css"
PAGES = ["/", "/child/", "/adult/", "/track/", "/danger/"]
BUDGET = 25 * 1024


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_public_page_weight(client, units, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content
    assets = re.findall(rb'(?:src|href)="([^"]+)"', html)
    external = [a for a in assets if re.match(rb"(https?:)?//", a)]
    assert external == [], f"{path} loads {external}"
    assert b"<script" not in html
    stylesheets = [a for a in assets if a.endswith(b".css")]
    assert stylesheets == [b"/static/cophub/site.css"]
    total = len(gzip.compress(html)) + len(gzip.compress(CSS.read_bytes()))
    assert total < BUDGET, f"{path}: {total} bytes compressed"
