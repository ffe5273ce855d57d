"""The receipt, and following a report with its code and secret words."""

from __future__ import annotations

import re

import pytest

from cophub.cases import services as cases
from cophub.cases.models import Case
from cophub.conftest import png_bytes
from cophub.intake.models import Addendum, Submission, SubmissionFile

from .conftest import child_report, main_of, receipt_of, upload

pytestmark = pytest.mark.django_db


def file_and_keep_receipt(client, base="/s/th-hung-vuong", **answers) -> tuple[str, str]:
    response = child_report(client, base=base, **answers)
    return receipt_of(client.get(response["Location"]).content.decode())


def test_the_receipt_is_shown_once(client, units):
    response = child_report(client)
    first = client.get(response["Location"])
    code, phrase = receipt_of(first.content.decode())
    assert "Hãy ghi lại hoặc chụp màn hình ngay." in main_of(first)
    again = client.get(response["Location"])
    assert code not in again.content.decode() and phrase not in again.content.decode()
    assert "Biên nhận này đã được hiện" in main_of(again)


def test_track_then_see_progress_without_staff_names(client, units, staff):
    code, phrase = file_and_keep_receipt(client)
    other = client.__class__()
    response = other.post("/track/", {"code": code.lower().replace("-", " "), "phrase": phrase})
    assert response.status_code == 302 and response["Location"] == "/status/"
    page = main_of(other.get("/status/"))
    assert code in page
    assert re.search(r'class="current" aria-current="step">Đã nhận<', page)
    assert "Trường TH Hùng Vương" in page
    assert "đang chờ một người nhận xử lý" in page

    case = Case.objects.get(links__submission__code=code)
    cases.assign(case, staff["handler"], staff["handler"])
    cases.transition(case, "triaged", staff["handler"])
    cases.transition(case, "assessing", staff["handler"])
    page = main_of(other.get("/status/"))
    assert re.search(r'class="current" aria-current="step">Có người đang xem xét<', page)
    assert "đang lo việc này" in page
    assert "handler-district" not in page


def test_status_shows_the_message_staff_chose_to_send(client, units, staff):
    code, phrase = file_and_keep_receipt(client)
    case = Case.objects.get(links__submission__code=code)
    assert case.unit == units["school_a"]  # routed by the school's link, inside the handler's district
    cases.add_note(case, "Ghi chú nội bộ: kiểm tra tài khoản.", staff["handler"])
    cases.send_message(case, "Cảm ơn em. Thầy cô đã báo cho trang web gỡ nội dung này.", staff["handler"])

    client.post("/track/", {"code": code, "phrase": phrase})
    page = main_of(client.get("/status/"))
    assert "Cảm ơn em. Thầy cô đã báo cho trang web gỡ nội dung này." in page
    assert "Ghi chú nội bộ" not in page


def test_add_information_later_with_a_file(client, units, settings):
    code, phrase = file_and_keep_receipt(client)
    client.post("/track/", {"code": code, "phrase": phrase})
    response = client.post("/status/", {"text": "Nó lại nhắn tin tối qua.",
                                        "files": [upload("moi.png", png_bytes(colour=(1, 2, 3)), "image/png"),
                                                  upload("virus.jpg", b"MZ\x90\x00" + b"\x00" * 200, "image/jpeg")]})
    assert response.status_code == 302
    page = main_of(client.get("/status/"))
    assert "Cảm ơn. Những gì bạn gửi đã được thêm vào phản ánh." in page
    assert "Tệp “virus.jpg” không phải là ảnh" in page

    submission = Submission.objects.get(code=code)
    addendum = Addendum.objects.get(submission=submission)
    assert addendum.text == "Nó lại nhắn tin tối qua."
    assert SubmissionFile.objects.filter(addendum=addendum).count() == 1
    assert main_of(client.get("/status/")).count("Cảm ơn. Những gì bạn gửi") == 0  # said once


def test_adding_nothing_is_explained(client, units):
    code, phrase = file_and_keep_receipt(client)
    client.post("/track/", {"code": code, "phrase": phrase})
    response = client.post("/status/", {"text": "  "})
    assert "Vui lòng viết điều gì đó hoặc chọn một tệp để thêm." in main_of(response)
    assert Addendum.objects.count() == 0


def test_wrong_code_and_wrong_phrase_look_exactly_the_same(client, units):
    code, phrase = file_and_keep_receipt(client)
    unknown_code = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"

    def answer(typed_code, typed_phrase):
        response = client.post("/track/", {"code": typed_code, "phrase": typed_phrase})
        page = response.content.decode().replace(typed_code, "<code>")
        return response.status_code, re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)

    wrong_phrase = answer(code, "sai sai sai sai")
    wrong_code = answer(unknown_code, phrase)
    assert wrong_phrase == wrong_code
    assert wrong_phrase[0] == 200
    assert "Chúng tôi không tìm thấy phản ánh nào với mã và các từ bí mật này." in wrong_phrase[1]
    assert phrase not in wrong_code[1]  # the secret words are never echoed back
    assert client.get("/status/").status_code == 302


def test_secret_words_work_without_accents(client, units):
    code, phrase = file_and_keep_receipt(client)
    import unicodedata

    plain = "".join(ch for ch in unicodedata.normalize("NFD", phrase.replace("đ", "d")) if unicodedata.category(ch) != "Mn")
    assert client.post("/track/", {"code": code, "phrase": plain.upper()}).status_code == 302


def test_the_status_page_needs_the_code_and_forget_wipes_it(client, units):
    assert client.get("/status/")["Location"] == "/track/"
    code, phrase = file_and_keep_receipt(client)
    client.post("/track/", {"code": code, "phrase": phrase})
    assert client.get("/status/").status_code == 200
    response = client.post("/forget/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/status/").status_code == 302
