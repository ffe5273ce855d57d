"""Every console page renders in Vietnamese (the default) and in English."""

from __future__ import annotations

import html
from pathlib import Path

import polib
import pytest
from django.core.cache import cache
from django.urls import reverse

from cophub.cases import services, two_factor

from .helpers import case_of, case_with_image, first_blob, log_in, report, report_case, upload, wav_bytes
from .test_entry import entry_data

pytestmark = pytest.mark.django_db

CATALOG = Path(__file__).resolve().parents[1] / "locale" / "vi" / "LC_MESSAGES" / "django.po"


def english_sentences() -> list[str]:
    """The console's own English texts long enough not to occur by chance."""
    return [e.msgid for e in polib.pofile(str(CATALOG)) if len(e.msgid) > 14 and "%(" not in e.msgid and not e.msgid_plural]


def page_login(client, staff, units):
    return client.get(reverse("console:login"))


def page_too_many_logins(client, staff, units, settings):
    settings.RATELIMIT_ENABLE = True
    settings.COPHUB_RATE_LOGIN = "1/m"
    cache.clear()
    client.post(reverse("console:login"), {"username": "x", "password": "y"})
    response = client.post(reverse("console:login"), {"username": "x", "password": "y"})
    cache.clear()
    return response


def page_wrong_code(client, staff, units):
    two_factor.ensure_confirmed_device(staff["handler"])
    client.force_login(staff["handler"])  # the password step only
    return client.post(reverse("console:otp"), {"otp_token": "000000"})


def page_enrol(client, staff, units):
    client.force_login(staff["counsellor"])  # the password step only, no device yet
    return client.get(reverse("console:otp_enrol"))


def page_too_many_codes(client, staff, units, settings):
    settings.RATELIMIT_ENABLE = True
    settings.COPHUB_RATE_OTP = "1/h"
    cache.clear()
    two_factor.ensure_confirmed_device(staff["handler"])
    client.force_login(staff["handler"])
    client.post(reverse("console:otp"), {"otp_token": "000000"})
    response = client.post(reverse("console:otp"), {"otp_token": "000000"})
    cache.clear()
    return response


def page_queue(client, staff, units):
    report_case(units["school_a"], danger=True)
    log_in(client, staff["handler"])
    return client.get(reverse("console:queue"))


def page_case(client, staff, units):
    handler = staff["handler"]
    target = case_with_image(units["school_a"])
    duplicate = report_case(units["school_a"])
    services.merge(duplicate, target, handler, "trùng")
    services.assign(target, handler, handler)
    services.transition(target, "triaged", handler, "đã xem")
    services.add_note(target, "ghi chú", handler)
    services.send_message(target, "tin nhắn", handler)
    log_in(client, handler)
    client.post(reverse("console:attach", args=[target.pk]), {"files": [upload()]})
    return client.get(reverse("console:case", args=[target.pk]))


def page_duplicate_case(client, staff, units):
    handler = staff["handler"]
    target, duplicate = report_case(units["school_a"]), report_case(units["school_a"])
    services.merge(duplicate, target, handler, "trùng")
    log_in(client, handler)
    return client.get(reverse("console:case", args=[duplicate.pk]))


def page_entry(client, staff, units):
    log_in(client, staff["teacher"])
    return client.get(reverse("console:entry"))


def page_entry_with_errors(client, staff, units):
    log_in(client, staff["teacher"])
    return client.post(reverse("console:entry"), entry_data(units["school_a"], description="", received_at="not a time"))


def page_entry_done(client, staff, units):
    log_in(client, staff["handler"])
    return client.post(reverse("console:entry"), entry_data(units["school_a"]))


def page_not_found(client, staff, units):
    case = report_case(units["school_c"])
    log_in(client, staff["handler"])
    return client.get(reverse("console:case", args=[case.pk]))


def page_not_allowed(client, staff, units):
    log_in(client, staff["observer"])
    return client.get(reverse("console:entry"))


def page_clear_warning(client, staff, units):
    case = case_with_image(units["school_a"])
    log_in(client, staff["handler"])
    return client.get(reverse("console:evidence_clear", args=[case.pk, first_blob(case).pk]))


def page_player(client, staff, units):
    case = case_of(report(units["school_a"], files=[("ghi-am.wav", wav_bytes())]))
    log_in(client, staff["handler"])
    return client.post(reverse("console:evidence_clear", args=[case.pk, first_blob(case).pk]))


PAGES = {
    "login": (page_login, 200, "Đăng nhập dành cho cán bộ", "Staff log-in"),
    "too_many_logins": (page_too_many_logins, 429, "Vui lòng chờ trong giây lát", "Please wait a moment"),
    "wrong_code": (page_wrong_code, 200, "Mã không đúng", "That code is not right"),
    "enrol": (page_enrol, 200, "Thiết lập đăng nhập hai bước", "Set up two-step log-in"),
    "too_many_codes": (page_too_many_codes, 429, "Đã thử quá nhiều mã", "Too many codes were tried"),
    "queue": (page_queue, 200, "Danh sách vụ việc", "Case queue"),
    "case": (page_case, 200, "Diễn biến xử lý", "Timeline"),
    "duplicate_case": (page_duplicate_case, 200, "việc xử lý được tiếp tục tại đó", "the work goes on there"),
    "entry": (page_entry, 200, "Nhập phản ánh tiếp nhận qua điện thoại", "Enter a report received by phone"),
    "entry_with_errors": (page_entry_with_errors, 200, "Vui lòng sửa các trường", "Please correct the fields"),
    "entry_done": (page_entry_done, 200, "Cụm từ bí mật", "Secret phrase"),
    "not_found": (page_not_found, 404, "Không tìm thấy", "Not found"),
    "not_allowed": (page_not_allowed, 403, "Không được phép", "Not allowed"),
    "clear_warning": (page_clear_warning, 200, "Trước khi mở bản gốc", "Before you open the clear file"),
    "player": (page_player, 200, "chế độ tắt tiếng", "with the sound off"),
}


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize("name", list(PAGES))
def test_console_page_in_both_languages(client, staff, units, settings, name, language):
    build, status, vietnamese, english = PAGES[name]
    if language == "en":
        client.cookies["cophub_lang"] = "en"
    args = (client, staff, units, settings) if name.startswith("too_many") else (client, staff, units)
    response = build(*args)
    assert response.status_code == status
    page = html.unescape(response.content.decode())
    assert f'<html lang="{language}">' in page
    expected, other = (vietnamese, english) if language == "vi" else (english, vietnamese)
    assert expected in page and other not in page
    if language == "vi":
        left_in_english = [s for s in english_sentences() if s in page]
        assert left_in_english == []
