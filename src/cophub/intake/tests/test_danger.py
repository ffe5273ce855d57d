"""The "I am in danger now" button: numbers first, a P1 alert at once."""

from __future__ import annotations

import pytest

from cophub.cases.models import Case
from cophub.intake.models import Addendum, Submission

from .conftest import main_of, receipt_of

pytestmark = pytest.mark.django_db


def test_danger_button_files_a_p1_alert_and_shows_the_numbers_first(client, units):
    response = client.post("/s/th-hung-vuong/danger/", {"danger": "1"})
    assert response.status_code == 200
    main = main_of(response)
    code, phrase = receipt_of(response.content.decode())
    assert main.index('href="tel:111"') < main.index('href="tel:113"') < main.index(code)

    submission = Submission.objects.get(code=code)
    assert submission.channel == "web_danger" and submission.danger is True
    assert submission.category == "other" and submission.reporter_kind == "unknown"
    assert submission.unit == units["school_a"]
    case = Case.objects.get(links__submission=submission)
    assert case.priority == "P1"
    assert "Chúng tôi đã gửi cảnh báo khẩn" in main


def test_looking_at_the_danger_page_files_nothing(client, units):
    response = client.get("/danger/")
    main = main_of(response)
    assert 'href="tel:111"' in main and 'href="tel:113"' in main
    assert Submission.objects.count() == 0


def test_telling_more_after_the_alert_adds_to_it(client, units):
    client.post("/danger/")
    submission = Submission.objects.get()
    response = client.post("/danger/more/", {"text": "Em đang ở nhà một mình, có người lạ gõ cửa."})
    assert response.status_code == 302
    page = main_of(client.get(response["Location"]))
    assert "Cảm ơn. Chúng tôi đã thêm những gì bạn viết vào cảnh báo." in page
    assert Addendum.objects.get(submission=submission).text == "Em đang ở nhà một mình, có người lạ gõ cửa."


def test_pressing_again_soon_does_not_raise_a_second_alert(client, units):
    client.post("/danger/")
    again = client.post("/danger/")
    assert Submission.objects.count() == 1
    assert Submission.objects.get().code in main_of(again)
    assert 'href="tel:111"' in main_of(again)


def test_telling_more_needs_the_alert_from_this_browser(client, units):
    client.post("/danger/")
    stranger = client.__class__()
    response = stranger.post("/danger/more/", {"text": "giả mạo"})
    assert response.status_code == 302
    assert Addendum.objects.count() == 0


def test_danger_is_limited_too_but_still_shows_the_numbers(client, units, fresh_cache):
    fresh_cache.COPHUB_RATE_SUBMIT = "1/10m"
    client.post("/child/", {"step": "3", "category": "scam", "age_band": "9_12", "where_unknown": "on", "contact": "none"})
    response = client.post("/danger/")
    assert response.status_code == 429
    assert 'href="tel:111"' in main_of(response) and 'href="tel:113"' in main_of(response)
    assert Submission.objects.filter(danger=True).count() == 0
