"""Helpers for driving the public pages as a reporter would."""

from __future__ import annotations

import re
import uuid
from html import unescape
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cophub.intake.models import Submission

STEP1 = {"category": "grooming", "age_band": "9_12"}
STEP2 = {"where_app": "Roblox"}


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def child_report(client, base: str = "", files=(), where=None, **answers):
    """Walk the three steps of the child's path; returns the last response (a redirect when filed)."""
    data = {**STEP1, **(STEP2 if where is None else where), **answers}
    url = f"{base}/child/"
    client.post(url, {"step": "1", **data})
    client.post(url, {"step": "2", **data})
    final = {"step": "3", "contact": "none", **data}
    if files:
        final["files"] = list(files)
    return client.post(url, final)


def hidden_fields(html: str) -> dict:
    """The hidden inputs a page carries forward (the csrf token aside)."""
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    return {name: unescape(value) for name, value in found if name != "csrfmiddlewaretoken"}


def receipt_of(html: str) -> tuple[str, str]:
    code = re.search(r'id="receipt-code">([^<]+)<', html).group(1)
    phrase = re.search(r'id="receipt-phrase">([^<]+)<', html).group(1)
    return code, phrase


def main_of(response) -> str:
    html = response.content.decode()
    return html.split('<main id="main"', 1)[1].split("</main>", 1)[0]


def latest_submission() -> Submission:
    return Submission.objects.order_by("-pk").first()


def vault_files(settings) -> list[Path]:
    return [p for p in Path(settings.COPHUB_VAULT_DIR).rglob("*") if p.is_file()]


@pytest.fixture
def fresh_cache(settings):
    """A private cache, so that rate-limit counts start from zero."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"test-{uuid.uuid4().hex}"}}
    settings.RATELIMIT_ENABLE = True
    return settings


@pytest.fixture
def english(client):
    client.get("/lang/en/?next=/")
    return client
