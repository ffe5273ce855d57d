"""The adult's page: parent, teacher or another adult reporting for a child."""

from __future__ import annotations

import pytest

from cophub.conftest import jpeg_bytes
from cophub.intake.models import Submission

from .conftest import main_of, receipt_of, upload

pytestmark = pytest.mark.django_db


def test_parent_reports_with_every_detail(client, units):
    page = client.get("/adult/").content.decode()
    for school in ("Trường TH Hùng Vương", "Trường TH Quang Trung", "Trường TH Lê Chân"):
        assert school in page
    assert "<script" not in page

    response = client.post("/adult/", {
        "reporter_kind": "parent",
        "school": units["school_b"].pk,
        "age_band": "under_9",
        "category": "grooming",
        "reported_account": "facebook.com/nguoi.la.123",
        "where_url": "https://facebook.com/nguoi.la.123/posts/1",
        "where_app": "Messenger",
        "how_known": "child_told",
        "description": "Một người lạ nhắn tin rủ con tôi đi gặp và dặn giữ bí mật.",
        "contact_name": "Nguyễn Văn A",
        "contact_phone": "0912 345 678",
        "contact_email": "",
        "files": [upload("tin-nhan.jpg", jpeg_bytes(), "image/jpeg")],
    })
    assert response.status_code == 302
    code, _ = receipt_of(client.get(response["Location"]).content.decode())

    submission = Submission.objects.get(code=code)
    assert submission.channel == "web_adult" and submission.reporter_kind == "parent"
    # Routed to the child's school, which lies under the hub's unit.
    assert submission.school == units["school_b"] and submission.unit == units["school_b"]
    assert (submission.age_band, submission.category, submission.how_known) == ("under_9", "grooming", "child_told")
    assert submission.reported_account == "facebook.com/nguoi.la.123"
    assert submission.where_app == "Messenger"
    assert submission.contact_ok and submission.contact_phone == "0912 345 678"
    assert submission.files.count() == 1


def test_a_school_link_preselects_that_school_and_routes_there(client, units):
    page = client.get("/s/th-hung-vuong/adult/").content.decode()
    assert f'<option value="{units["school_a"].pk}" selected>' in page
    response = client.post("/s/th-hung-vuong/adult/", {"reporter_kind": "teacher", "category": "cyberbullying",
                                                        "school": units["school_a"].pk, "unit": "th-hung-vuong",
                                                        "description": "Nhóm lớp chế ảnh một học sinh."})
    assert response.status_code == 302
    submission = Submission.objects.get()
    assert submission.unit == units["school_a"] and submission.contact_ok is False


def test_a_school_outside_the_pages_unit_does_not_move_the_report(client, units):
    """On school A's own link, picking school B records B but keeps the case at A:
    a page never sends a report sideways to a unit it does not serve."""
    response = client.post("/s/th-hung-vuong/adult/", {"reporter_kind": "parent", "category": "scam",
                                                        "school": units["school_b"].pk, "unit": "th-hung-vuong",
                                                        "description": "Trang web giả tặng quà."})
    assert response.status_code == 302
    submission = Submission.objects.get()
    assert submission.school == units["school_b"] and submission.unit == units["school_a"]


def test_an_empty_adult_report_is_explained_not_lost(client, units):
    response = client.post("/adult/", {"description": "   "})
    page = main_of(response)
    assert response.status_code == 200
    assert "Vui lòng cho biết bạn là phụ huynh, giáo viên hay người lớn khác." in page
    assert "Vui lòng kể một chút về chuyện đã xảy ra" in page
    assert Submission.objects.count() == 0


def test_a_bad_phone_number_is_explained(english, units):
    response = english.post("/adult/", {"reporter_kind": "other_adult", "category": "scam", "description": "x", "contact_phone": "call me maybe"})
    assert "This does not look like a phone number." in main_of(response)
    assert Submission.objects.count() == 0
