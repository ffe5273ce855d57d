"""The child's path: three steps, no JavaScript, anonymous by default."""

from __future__ import annotations

import pytest

from cophub.cases.models import Case
from cophub.conftest import png_bytes
from cophub.core.categories import CATEGORIES
from cophub.intake.models import Submission

from .conftest import child_report, hidden_fields, latest_submission, main_of, receipt_of, upload

pytestmark = pytest.mark.django_db


def test_child_files_a_report_step_by_step_with_an_image(client, units):
    base = "/s/th-hung-vuong"
    first = client.get(f"{base}/child/")
    page = first.content.decode()
    assert first.status_code == 200
    for category in CATEGORIES:
        assert f'value="{category.code}"' in page
    assert "Em bao nhiêu tuổi?" in page
    assert "<script" not in page

    step2 = client.post(f"{base}/child/", {"step": "1", "category": "sextortion", "age_band": "13_15", **hidden_fields(page)})
    carried = hidden_fields(step2.content.decode())
    assert carried["step"] == "2" and carried["category"] == "sextortion" and carried["age_band"] == "13_15"
    assert carried["unit"] == "th-hung-vuong"

    step3 = client.post(f"{base}/child/", {**carried, "where_url": "https://example.com/u/bad", "where_app": "Zalo"})
    carried = hidden_fields(step3.content.decode())
    assert carried["step"] == "3" and carried["where_url"] == "https://example.com/u/bad"
    page3 = step3.content.decode()
    assert 'enctype="multipart/form-data"' in page3
    assert "Em không cần gửi ảnh." in page3
    assert 'id="contact-none" name="contact" value="none" checked' in page3

    filed = client.post(f"{base}/child/", {**carried, "contact": "none", "description": "Có người đòi em gửi thêm ảnh.",
                                           "files": [upload("chup-man-hinh.png", png_bytes(), "image/png")]})
    assert filed.status_code == 302
    receipt = client.get(filed["Location"])
    code, phrase = receipt_of(receipt.content.decode())
    assert len(code) == 9 and len(phrase.split()) == 4

    submission = Submission.objects.get(code=code)
    assert submission.channel == "web_child" and submission.reporter_kind == "child"
    assert submission.unit == units["school_a"]
    assert (submission.category, submission.age_band) == ("sextortion", "13_15")
    assert (submission.where_url, submission.where_app) == ("https://example.com/u/bad", "Zalo")
    assert submission.description == "Có người đòi em gửi thêm ảnh."
    assert submission.contact_ok is False and submission.contact_phone == ""
    [stored] = submission.files.select_related("blob")
    assert stored.original_name == "chup-man-hinh.png" and stored.blob.kind == "image" and stored.blob.width == 64
    # The category alone gives P2; triage read "someone demands more photos" as sextortion: P1.
    assert Case.objects.get(links__submission=submission).priority == "P1"


def test_each_step_shows_a_clear_error_and_keeps_the_answers(client, units):
    nothing = client.post("/child/", {"step": "1", "age_band": "9_12"})
    page = main_of(nothing)
    assert 'name="step" value="1"' in page
    assert "Em hãy chọn điều giống nhất" in page
    assert 'id="age-9_12" name="age_band" value="9_12" checked' in page

    nowhere = client.post("/child/", {"step": "2", "category": "scam", "age_band": "9_12"})
    page = main_of(nowhere)
    assert 'name="step" value="2"' in page
    assert "Em hãy viết một đường link hoặc tên ứng dụng, trò chơi" in page
    assert Submission.objects.count() == 0


def test_an_earlier_step_is_checked_again_at_the_end(client, units):
    """Hidden answers can be tampered with: the last step re-validates all of them."""
    response = client.post("/child/", {"step": "3", "category": "not-a-category", "age_band": "9_12", "where_unknown": "on", "contact": "none"})
    assert 'name="step" value="1"' in main_of(response)
    assert Submission.objects.count() == 0


def test_back_button_returns_with_the_answers_filled_in(client, units):
    response = client.post("/child/", {"step": "2", "back": "1", "category": "cyberbullying", "age_band": "13_15", "where_app": "TikTok"})
    page = main_of(response)
    assert 'name="step" value="1"' in page
    assert 'id="category-cyberbullying" name="category" value="cyberbullying" checked' in page
    assert hidden_fields(page)["where_app"] == "TikTok"
    forward = client.post("/child/", {**hidden_fields(page), "category": "cyberbullying", "age_band": "13_15"})
    assert 'value="TikTok"' in main_of(forward)


def test_i_dont_know_where_is_enough(client, units):
    response = child_report(client, where={"where_unknown": "on"})
    assert response.status_code == 302
    assert latest_submission().where_unknown is True


def test_contact_is_anonymous_by_default_and_asked_plainly(client, units):
    mixed = child_report(client, contact="none", contact_phone="0912 345 678")
    assert mixed.status_code == 200
    assert "Em đã viết cách liên lạc nhưng lại chọn" in main_of(mixed)
    assert Submission.objects.count() == 0

    no_way = child_report(client, contact="yes")
    assert "Em hãy viết số điện thoại hoặc email" in main_of(no_way)

    filed = child_report(client, contact="yes", contact_name="Lan", contact_phone="0912 345 678")
    assert filed.status_code == 302
    submission = latest_submission()
    assert submission.contact_ok and submission.contact_phone == "0912 345 678" and submission.contact_name == "Lan"


def test_files_must_be_chosen_again_after_an_error(client, units, settings):
    response = child_report(client, contact="yes", files=[upload("a.png", png_bytes(), "image/png")])
    assert "Em hãy chọn lại tệp" in main_of(response)
    staging = settings.COPHUB_VAULT_DIR / "staging"
    assert list(staging.glob("*")) == []  # the upload that was not used is gone


def test_the_hidden_unit_routes_and_an_unknown_one_falls_back(client, units):
    child_report(client, unit="th-quang-trung")
    assert latest_submission().unit == units["school_b"]
    child_report(client, base="/s/th-le-chan", unit="no-such-school")
    assert latest_submission().unit == units["school_c"]
    child_report(client)
    assert latest_submission().unit == units["province"]  # the hub's home unit


def test_an_unknown_school_link_is_not_found(client, units):
    assert client.get("/s/no-such-school/child/").status_code == 404
