"""Two-factor login: staff who can see evidence pass a TOTP code after the password."""

from __future__ import annotations

import base64
import io
import re
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from cophub.audit.models import AuditEvent
from cophub.cases import two_factor
from cophub.conftest import make_user

from .helpers import case_with_image, current_code, first_blob, log_in

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery 1"
QUEUE = "/console/"


def password_login(client, username: str):
    response = client.post(reverse("console:login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, "the password itself was refused"
    return response


def let_the_throttle_pass(device) -> None:
    """Stand in for waiting out django-otp's back-off after a wrong code (1, 2, 4 … seconds)."""
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=timezone.now() - timedelta(minutes=5))
    device.refresh_from_db()


def audit_actions(username: str) -> list[str]:
    return list(AuditEvent.objects.filter(actor=username, action__startswith="auth.otp_").order_by("seq").values_list("action", flat=True))


@pytest.fixture
def handler(units):
    return make_user("nguyen.van.a", "handler", units["district"], password=PASSWORD)


@pytest.fixture
def fresh_rate_limits(settings):
    """A private cache, so that rate-limit counts start from zero."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"otp-{uuid.uuid4().hex}"}}
    settings.RATELIMIT_ENABLE = True
    return settings


# --- Who needs it ------------------------------------------------------------------------------


@pytest.mark.parametrize("role, needed", [("admin", True), ("handler", True), ("counsellor", True),
                                          ("teacher", False), ("it_admin", False), ("observer", False)])
def test_roles_that_can_see_evidence_need_the_second_factor(staff, role, needed):
    assert two_factor.required_for(staff[role]) is needed


def test_a_role_held_in_a_school_is_enough(units):
    counsellor = make_user("co.lan", "counsellor", units["school_c"], password=PASSWORD)
    assert two_factor.required_for(counsellor)


@pytest.mark.parametrize("role", ["teacher", "observer", "it_admin"])
def test_staff_who_cannot_see_evidence_log_in_with_the_password_only(client, units, role):
    make_user("nhan.vien", role, units["district"], password=PASSWORD)
    assert password_login(client, "nhan.vien")["Location"] == QUEUE
    assert client.get(QUEUE).status_code == 200
    # The code step has nothing to ask them.
    assert client.get(reverse("console:otp"))["Location"] == QUEUE
    assert not TOTPDevice.objects.exists()


def test_setting_off_disables_the_second_factor(client, handler, units, settings):
    settings.COPHUB_STAFF_2FA = "off"
    case = case_with_image(units["school_a"])
    password_login(client, "nguyen.van.a")
    assert client.get(QUEUE).status_code == 200
    assert client.get(reverse("console:case", args=[case.pk])).status_code == 200
    assert client.get(reverse("console:evidence_clear", args=[case.pk, first_blob(case).pk])).status_code == 200


# --- Enrolment: no device yet -------------------------------------------------------------------


def test_without_a_device_nothing_opens_until_a_device_is_confirmed(client, handler, units):
    case = case_with_image(units["school_a"])
    blob = first_blob(case)
    password_login(client, "nguyen.van.a")
    enrol = reverse("console:otp_enrol")
    guarded = [
        QUEUE,
        reverse("console:case", args=[case.pk]),
        reverse("console:entry"),
        reverse("console:evidence_preview", args=[case.pk, blob.pk]),
        reverse("console:evidence_clear", args=[case.pk, blob.pk]),
    ]
    for url in guarded:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(f"{enrol}?next="), url
    note = client.post(reverse("console:note", args=[case.pk]), {"text": "ghi chú"})
    assert note["Location"].startswith(enrol)
    clear = client.post(reverse("console:evidence_clear", args=[case.pk, blob.pk]), {"confirm": "1"})
    assert clear["Location"].startswith(enrol)
    # The code step itself sends an account without a device to enrolment.
    assert client.get(reverse("console:otp"))["Location"] == enrol
    assert not AuditEvent.objects.filter(action__in=["case.view", "evidence.view_preview", "evidence.view_clear"]).exists()
    assert case.events.filter(kind="note").count() == 0


def test_enrolment_shows_a_qr_code_and_the_key_and_a_first_code_confirms_it(client, handler):
    password_login(client, "nguyen.van.a")
    page = client.get(reverse("console:otp_enrol") + f"?next={QUEUE}")
    html = page.content.decode()
    assert page.status_code == 200 and "nguyen.van.a" in html
    device = TOTPDevice.objects.get(user=handler)
    assert not device.confirmed
    secret = two_factor.base32_secret(device)
    shown = re.search(r'id="otp-secret">([^<]+)<', html).group(1)
    assert shown.replace(" ", "") == secret and len(secret) == 32
    qr = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(qr).lstrip().startswith(b"<?xml") and b"<svg" in base64.b64decode(qr)
    assert 'name="otp_token"' in html and "<script" not in html and "style=" not in html
    # A reload keeps the same key, so a code scanned a moment ago still works.
    client.get(reverse("console:otp_enrol"))
    assert TOTPDevice.objects.get(user=handler).key == device.key

    done = client.post(reverse("console:otp_enrol"), {"otp_token": current_code(device), "next": QUEUE})
    assert done.status_code == 302 and done["Location"] == QUEUE
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert client.get(QUEUE).status_code == 200
    assert audit_actions("nguyen.van.a") == ["auth.otp_enrolled"]


def test_a_wrong_first_code_leaves_the_device_unconfirmed(client, handler):
    password_login(client, "nguyen.van.a")
    client.get(reverse("console:otp_enrol"))
    response = client.post(reverse("console:otp_enrol"), {"otp_token": "000000"})
    assert response.status_code == 200
    assert "Mã không đúng" in response.content.decode()
    assert not TOTPDevice.objects.get(user=handler).confirmed
    assert client.get(QUEUE)["Location"].startswith(reverse("console:otp_enrol"))
    failed = AuditEvent.objects.get(action="auth.otp_failed", actor="nguyen.van.a")
    assert failed.data == {"reason": "wrong_code", "stage": "enrol"}


def test_enrolment_is_closed_once_a_device_is_confirmed(client, handler):
    device = two_factor.ensure_confirmed_device(handler)
    password_login(client, "nguyen.van.a")
    # Someone with the password alone must not be able to put their own phone on the account.
    assert client.get(reverse("console:otp_enrol"))["Location"] == reverse("console:otp")
    assert client.post(reverse("console:otp_enrol"), {"otp_token": current_code(device)})["Location"] == reverse("console:otp")
    assert TOTPDevice.objects.filter(user=handler).count() == 1


def test_after_an_administrator_deletes_a_lost_device_the_next_login_enrols_a_new_one(client, handler):
    old = two_factor.ensure_confirmed_device(handler)
    old.delete()  # what the admin's "delete" does
    password_login(client, "nguyen.van.a")
    assert client.get(QUEUE)["Location"].startswith(reverse("console:otp_enrol"))
    client.get(reverse("console:otp_enrol"))
    new = TOTPDevice.objects.get(user=handler)
    assert new.key != old.key
    assert client.post(reverse("console:otp_enrol"), {"otp_token": current_code(new)})["Location"] == QUEUE


# --- The code step: a device is there ------------------------------------------------------------


def test_a_wrong_code_is_refused_and_the_right_one_lets_the_handler_in(client, handler, units):
    device = two_factor.ensure_confirmed_device(handler)
    case = case_with_image(units["school_a"])
    wanted = reverse("console:case", args=[case.pk])
    to_login = client.get(wanted)["Location"]
    assert client.post(to_login, {"username": "nguyen.van.a", "password": PASSWORD, "next": wanted})["Location"] == wanted
    code_step = client.get(wanted)["Location"]
    assert code_step == f"{reverse('console:otp')}?next={wanted}"
    page = client.get(code_step).content.decode()
    assert 'name="otp_token"' in page and 'autocomplete="one-time-code"' in page and f'value="{wanted}"' in page
    nav = page.split("<main", 1)[0]
    assert nav.count(f'href="{QUEUE}"') == 1 and reverse("console:entry") not in nav, "no console links before the code"

    wrong = client.post(code_step, {"otp_token": "123 456" if current_code(device) != "123456" else "654321"})
    assert wrong.status_code == 200 and "Mã không đúng" in wrong.content.decode()
    assert client.get(wanted)["Location"] == code_step

    # django-otp's back-off: straight after a wrong code even the right one is not looked at.
    too_soon = client.post(code_step, {"otp_token": current_code(device)})
    assert too_soon.status_code == 200 and "Nhập sai quá nhiều lần" in too_soon.content.decode()

    let_the_throttle_pass(device)
    session_before = client.session.session_key
    right = client.post(code_step, {"otp_token": current_code(device), "next": wanted})
    assert right.status_code == 302 and right["Location"] == wanted
    assert client.session.session_key != session_before, "a verified session gets a new id"
    assert client.get(wanted).status_code == 200
    assert client.get(reverse("console:evidence_preview", args=[case.pk, first_blob(case).pk])).status_code == 200
    assert audit_actions("nguyen.van.a") == ["auth.otp_failed", "auth.otp_failed", "auth.otp_verified"]
    reasons = [e.data["reason"] for e in AuditEvent.objects.filter(action="auth.otp_failed").order_by("seq")]
    assert reasons == ["wrong_code", "throttled"]


def test_refusals_speak_english_when_chosen(client, handler):
    two_factor.ensure_confirmed_device(handler)
    client.cookies["cophub_lang"] = "en"
    password_login(client, "nguyen.van.a")
    page = client.post(reverse("console:otp"), {"otp_token": "12ab56"}).content.decode()
    assert "Two-step log-in" in page and "Enter the 6 digits the app shows" in page


def test_a_code_is_used_only_once(client, handler):
    device = two_factor.ensure_confirmed_device(handler)
    code = current_code(device)
    password_login(client, "nguyen.van.a")
    assert client.post(reverse("console:otp"), {"otp_token": code})["Location"] == QUEUE
    client.post(reverse("console:logout"))
    password_login(client, "nguyen.van.a")
    # Someone who watched the code being typed cannot use it again.
    assert client.post(reverse("console:otp"), {"otp_token": code}).status_code == 200
    assert client.get(QUEUE)["Location"].startswith(reverse("console:otp"))


def test_a_device_of_another_account_is_never_accepted(client, handler, units):
    other = make_user("tran.thi.b", "handler", units["district"], password=PASSWORD)
    their_device = two_factor.ensure_confirmed_device(other)
    two_factor.ensure_confirmed_device(handler)
    password_login(client, "nguyen.van.a")
    assert client.post(reverse("console:otp"), {"otp_token": current_code(their_device)}).status_code == 200
    assert client.get(QUEUE).status_code == 302


def test_logging_out_ends_the_verified_session(client, handler):
    log_in(client, handler)
    assert client.get(QUEUE).status_code == 200
    client.post(reverse("console:logout"))
    password_login(client, "nguyen.van.a")
    assert client.get(QUEUE)["Location"].startswith(reverse("console:otp"))


def test_the_code_step_is_rate_limited_per_account_and_per_address(client, handler, units, fresh_rate_limits):
    fresh_rate_limits.COPHUB_RATE_OTP = "2/h"
    device = two_factor.ensure_confirmed_device(handler)
    password_login(client, "nguyen.van.a")
    for _ in range(2):
        assert client.post(reverse("console:otp"), {"otp_token": "000000"}).status_code == 200
        let_the_throttle_pass(device)
    blocked = client.post(reverse("console:otp"), {"otp_token": current_code(device)})
    assert blocked.status_code == 429 and "Đã thử quá nhiều mã" in blocked.content.decode()
    # The same account from another address is still counted.
    assert client.post(reverse("console:otp"), {"otp_token": current_code(device)}, REMOTE_ADDR="10.9.8.7").status_code == 429
    assert client.get(QUEUE).status_code == 302
    # Another account from the first address is counted too.
    other = make_user("tran.thi.b", "counsellor", units["district"], password=PASSWORD)
    two_factor.ensure_confirmed_device(other)
    second = Client()
    password_login(second, "tran.thi.b")
    assert second.post(reverse("console:otp"), {"otp_token": "000000"}).status_code == 429
    # Reading the page is not an attempt.
    assert client.get(reverse("console:otp")).status_code == 200


# --- The Django admin is no way around it --------------------------------------------------------


def test_the_admin_needs_the_console_login_and_the_code(client, units):
    admin = make_user("quan.tri", "admin", units["province"], password=PASSWORD)
    admin.is_staff = admin.is_superuser = True
    admin.save()
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    assert client.get("/admin/login/?next=/admin/")["Location"] == f"{reverse('console:login')}?next=/admin/"
    # The admin's own password form is not a second, unthrottled log-in.
    client.post("/admin/login/?next=/admin/", {"username": "quan.tri", "password": PASSWORD})
    assert "_auth_user_id" not in client.session

    password_login(client, "quan.tri")
    assert client.get("/admin/login/?next=/admin/")["Location"] == f"{reverse('console:otp_enrol')}?next=/admin/"
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 302
    log_in(client, admin)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 200


def test_a_superuser_without_roles_still_needs_the_code(units):
    root = make_user("root", password=PASSWORD)
    root.is_superuser = True
    assert two_factor.required_for(root)


# --- The demo ------------------------------------------------------------------------------------


def run_demo() -> dict[str, str | None]:
    out = io.StringIO()
    call_command("demo", stdout=out)
    lines = [line for line in out.getvalue().splitlines() if "login: " in line]
    found = {}
    for line in lines:
        username = re.search(r"login: (\S+)", line).group(1)
        totp = re.search(r"totp: (\S+)", line)
        found[username] = totp.group(1) if totp else None
    return found


def test_the_demo_prints_a_kept_totp_key_for_accounts_that_need_one():
    first = run_demo()
    assert {u for u, key in first.items() if key} == {"admin", "handler", "counsellor"}
    assert {u for u, key in first.items() if not key} == {"teacher", "itadmin", "observer"}
    assert run_demo() == first, "a second run reuses the devices"
    device = TOTPDevice.objects.get(user__username="handler")
    assert device.confirmed and two_factor.base32_secret(device) == first["handler"]
    assert base64.b32decode(first["handler"]) == device.bin_key
