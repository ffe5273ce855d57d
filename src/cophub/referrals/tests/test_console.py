"""The referral console: the case page's panel and its actions, the letter, the referrals page, the directory, the callback.

Tasks run at once in tests (cophub/conftest.py), but a delivery is enqueued
after commit: the tests that want it sent run the commit callbacks. Nothing
here reaches the network: channels are by hand, email (the test mail box),
or a webhook at a closed local port.
"""

from __future__ import annotations

import html
import json
import socket
import time
from datetime import timedelta

import pytest
from django.contrib.messages import constants, get_messages
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.cases import services as cases
from cophub.cases.models import CaseEvent, EventKind, State
from cophub.cases.tests.helpers import log_in, report_case
from cophub.conftest import make_user
from cophub.orgs.models import Role
from cophub.providers.webhooks import sign
from cophub.referrals import services
from cophub.referrals.models import Channel, ChannelKind, Delivery, DeliveryState, Referral, ReferralKind, ReferralState, Target

pytestmark = pytest.mark.django_db

LINK = "https://www.tiktok.com/@ke_xau/video/7301"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def top_admin(units):
    return make_user("admin-province", Role.ADMIN, units["province"])


@pytest.fixture
def handler(staff):
    return staff[Role.HANDLER]


@pytest.fixture
def case(units, handler):
    case = report_case(units["school_a"], description=f"Có người đăng video của em ở đây: {LINK}", where_url=LINK)
    return cases.transition(case, State.ASSESSING, handler, "Đang xem xét.")


@pytest.fixture
def police(top_admin):
    target = services.save_target(top_admin, name="Công an tỉnh Hải Phòng", kind="police", addressee="Công an tỉnh Hải Phòng (PA05)")
    services.add_channel(target, ChannelKind.MANUAL, top_admin)
    return target


@pytest.fixture
def tiktok(top_admin):
    target = services.save_target(top_admin, name="TikTok Việt Nam", kind="platform", domains="tiktok.com")
    services.add_channel(target, ChannelKind.EMAIL, top_admin, address="legal-vn@tiktok.example")
    return target


def channel_of(target) -> Channel:
    return target.channels.get()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def page(response) -> str:
    return html.unescape(response.content.decode())


def post(client, path: str, data=None):
    """POST, keep the messages the action left, then open the page it leads to (which shows, and so uses, them)."""
    response = client.post(path, data or {})
    response.notes = [(m.level, str(m)) for m in get_messages(response.wsgi_request)]
    if response.status_code == 302:
        client.get(response["Location"])
    return response


def notes(response, level=None) -> list[str]:
    return [text for message_level, text in response.notes if level is None or message_level == level]


def case_url(case) -> str:
    return reverse("console:case", args=[case.pk])


def url(name, *args) -> str:
    return reverse(f"referrals:{name}", args=args)


# --- Referring from the case page ------------------------------------------------------------------


def test_a_handler_refers_the_case_through_the_form(client, handler, case, police):
    log_in(client, handler)
    text = page(client.get(case_url(case)))
    assert "Chuyển vụ việc và yêu cầu gỡ bỏ" in text and url("refer", case.pk) in text
    response = post(client, url("refer", case.pk), {"channel": channel_of(police).pk, "note": "Đề nghị xác minh tài khoản."})
    assert response.status_code == 302 and response["Location"] == case_url(case)
    assert notes(response, constants.SUCCESS)
    referral = Referral.objects.get(case=case)
    assert referral.state == ReferralState.BY_HAND and referral.kind == ReferralKind.REFERRAL and referral.created_by == handler
    assert referral.snapshot["case"]["reference"] == case.reference and referral.snapshot["note"] == "Đề nghị xác minh tài khoản."
    assert referral.snapshot_sha256 and referral.number.endswith("/CV-TH-HUNG-VUONG")
    case.refresh_from_db()
    assert case.state == State.REFERRED
    assert CaseEvent.objects.filter(case=case, kind=EventKind.REFERRAL, data__what="queued").exists()
    text = page(client.get(case_url(case)))
    assert "Công an tỉnh Hải Phòng" in text and referral.number in text
    assert url("hand_delivered", referral.public_id) in text and url("letter", referral.public_id) in text


def test_an_email_referral_is_delivered_after_commit(client, handler, case, tiktok, mailoutbox, django_capture_on_commit_callbacks):
    log_in(client, handler)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, url("refer", case.pk), {"channel": channel_of(tiktok).pk})
    referral = Referral.objects.get(case=case)
    assert referral.state == ReferralState.DELIVERED and referral.delivered_at is not None
    assert [m.to for m in mailoutbox] == [["legal-vn@tiktok.example"]]
    assert "Đã chuyển vụ việc đến TikTok Việt Nam." in page(client.get(case_url(case)))


@pytest.mark.parametrize("role", [Role.COUNSELLOR, Role.OBSERVER])
def test_read_only_roles_see_the_panel_without_forms_and_are_refused(client, staff, handler, case, police, role):
    referral = services.refer(case, channel_of(police), handler)
    log_in(client, staff[role])
    text = page(client.get(case_url(case)))
    assert "Công an tỉnh Hải Phòng" in text and url("letter", referral.public_id) in text
    for action in (url("refer", case.pk), url("respond", referral.public_id), url("hand_delivered", referral.public_id),
                   url("cancel", referral.public_id)):
        assert action not in text
    response = post(client, url("refer", case.pk), {"channel": channel_of(police).pk})
    assert response.status_code == 302 and response["Location"] == case_url(case)
    assert notes(response, constants.ERROR) == ["Tài khoản của bạn không được phép thực hiện thao tác này với vụ việc này."]
    response = post(client, url("hand_delivered", referral.public_id), {})
    assert response["Location"] == case_url(case) and notes(response, constants.ERROR)
    assert Referral.objects.filter(case=case).count() == 1
    assert Referral.objects.get(pk=referral.pk).state == ReferralState.BY_HAND


def test_a_case_out_of_reach_is_404(client, units, case, police):
    outsider = make_user("handler-le-chan", Role.HANDLER, units["other_district"])
    log_in(client, outsider)
    assert post(client, url("refer", case.pk), {"channel": channel_of(police).pk}).status_code == 404
    assert not Referral.objects.exists()


# --- Takedown notices -------------------------------------------------------------------------------------


def test_the_takedown_form_offers_only_the_cases_links_and_suggests_the_platform(client, handler, case, police, tiktok):
    assert LINK in services_urls(case)
    log_in(client, handler)
    text = page(client.get(case_url(case)))
    assert url("takedown", case.pk) in text
    assert f'<option value="{LINK}"' in text
    form_part = text.split(url("takedown", case.pk), 1)[1]
    # The platform that serves the link comes first, in its own group.
    assert form_part.index("Đơn vị phục vụ các liên kết này") < form_part.index("TikTok Việt Nam") < form_part.index("Công an tỉnh")

    response = post(client, url("takedown", case.pk), {"url": "https://elsewhere.example/x", "channel": channel_of(tiktok).pk})
    assert response["Location"] == case_url(case) and notes(response, constants.ERROR)
    assert not Referral.objects.exists()

    response = post(client, url("takedown", case.pk), {"url": LINK, "channel": channel_of(tiktok).pk, "note": "Gỡ trong 24 giờ."})
    assert notes(response, constants.SUCCESS)
    notice = Referral.objects.get(case=case)
    assert notice.kind == ReferralKind.TAKEDOWN and notice.url == LINK and notice.snapshot["url"] == LINK
    # A takedown notice does not move the case on by itself.
    case.refresh_from_db()
    assert case.state == State.ASSESSING

    again = post(client, url("takedown", case.pk), {"url": LINK, "channel": channel_of(tiktok).pk})
    assert notes(again, constants.ERROR) == ["Đã có một yêu cầu đang mở về liên kết này gửi cho đơn vị nhận này."]


def services_urls(case) -> list[str]:
    from cophub.referrals.views import case_urls

    return case_urls(case)


def test_the_panel_shows_the_legal_clock(client, handler, case, tiktok, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notice = services.send_takedown(case, LINK, channel_of(tiktok), handler)
    notice.refresh_from_db()
    assert notice.delivered_at is not None
    log_in(client, handler)
    text = page(client.get(case_url(case)))
    deadline = services.legal_deadline(notice)
    assert f"hạn chót {timezone.localtime(deadline):%d/%m/%Y %H:%M} — còn 23 giờ" in text
    Referral.objects.filter(pk=notice.pk).update(delivered_at=notice.delivered_at - timedelta(hours=30))
    text = page(client.get(case_url(case)))
    assert "— đã quá hạn 6 giờ" in text


# --- By hand, answers, retries, cancelling ---------------------------------------------------------------------


def test_hand_delivery_then_the_answers(client, handler, case, police):
    referral = services.refer(case, channel_of(police), handler)
    log_in(client, handler)
    response = post(client, url("hand_delivered", referral.public_id), {"text": "Giao trực tiếp cho cán bộ trực ban."})
    assert notes(response, constants.SUCCESS) and response["Location"] == case_url(case)
    referral.refresh_from_db()
    assert referral.state == ReferralState.DELIVERED and referral.delivered_at is not None
    again = post(client, url("hand_delivered", referral.public_id), {})
    assert notes(again, constants.ERROR) == ["Văn bản này không chờ giao tận tay."]

    post(client, url("respond", referral.public_id), {"what": "acknowledged", "reference": "CV-123/PA05"})
    referral.refresh_from_db()
    assert referral.state == ReferralState.ACKNOWLEDGED and referral.external_ref == "CV-123/PA05" and referral.acknowledged_at
    post(client, url("respond", referral.public_id), {"what": "answered", "text": "Đã tiếp nhận xử lý, đang xác minh."})
    referral.refresh_from_db()
    assert referral.state == ReferralState.ANSWERED and referral.answered_at
    post(client, url("respond", referral.public_id), {"what": "closed"})
    referral.refresh_from_db()
    assert referral.state == ReferralState.CLOSED and referral.closed_at
    whats = list(CaseEvent.objects.filter(case=case, kind=EventKind.REFERRAL).order_by("pk").values_list("data__what", flat=True))
    assert whats == ["queued", "delivered", "acknowledged", "answered", "closed"]
    text = page(client.get(case_url(case)))
    assert "Công an tỉnh Hải Phòng đã trả lời." in text
    # A closed referral takes no more answers.
    response = post(client, url("respond", referral.public_id), {"what": "answered"})
    assert notes(response, constants.ERROR)
    referral.refresh_from_db()
    assert referral.state == ReferralState.CLOSED


def test_a_bad_answer_is_a_message(client, handler, case, police):
    referral = services.refer(case, channel_of(police), handler)
    log_in(client, handler)
    response = post(client, url("respond", referral.public_id), {"what": "removed"})
    assert response["Location"] == case_url(case) and notes(response, constants.ERROR)
    assert Referral.objects.get(pk=referral.pk).state == ReferralState.BY_HAND


def test_cancel(client, handler, case, police):
    referral = services.refer(case, channel_of(police), handler)
    log_in(client, handler)
    response = post(client, url("cancel", referral.public_id), {"text": "Gửi nhầm đơn vị."})
    assert notes(response, constants.SUCCESS)
    assert Referral.objects.get(pk=referral.pk).state == ReferralState.CANCELLED
    assert url("cancel", referral.public_id) not in page(client.get(case_url(case)))


# --- The letter --------------------------------------------------------------------------------------------------


def test_the_letter_downloads_and_is_audited(client, units, handler, staff, case, police):
    referral = services.refer(case, channel_of(police), handler)
    log_in(client, staff[Role.OBSERVER])
    response = client.get(url("letter", referral.public_id))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;") and ".pdf" in response["Content-Disposition"]
    assert response.content.startswith(b"%PDF")
    event = AuditEvent.objects.get(action="referral.letter_viewed")
    assert event.actor_id == staff[Role.OBSERVER].pk and event.object_id == str(referral.pk)

    outsider = make_user("handler-le-chan", Role.HANDLER, units["other_district"])
    log_in(client, outsider)
    assert client.get(url("letter", referral.public_id)).status_code == 404
    assert client.get(url("letter", "ref_no-such-thing")).status_code == 404
    assert AuditEvent.objects.filter(action="referral.letter_viewed").count() == 1


# --- The dead letter ---------------------------------------------------------------------------------------------


@override_settings(COPHUB_REFERRAL_MAX_ATTEMPTS=1, COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK=True)
def test_a_failed_referral_is_listed_with_a_banner_and_sent_again(client, handler, top_admin, case, django_capture_on_commit_callbacks):
    target = services.save_target(top_admin, name="Đường dây nóng 111", kind="hotline")
    channel, _secret = services.add_channel(target, ChannelKind.WEBHOOK, top_admin, address=f"http://127.0.0.1:{closed_port()}/hook")
    log_in(client, handler)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, url("refer", case.pk), {"channel": channel.pk})
    referral = Referral.objects.get(case=case)
    assert referral.state == ReferralState.FAILED
    delivery = referral.deliveries.get()
    assert delivery.state == DeliveryState.DEAD and delivery.attempts == 1 and delivery.last_error
    assert CaseEvent.objects.filter(case=case, kind=EventKind.REFERRAL, data__what="dead").exists()

    response = client.get(url("list") + "?state=failed")
    text = page(response)
    assert response.status_code == 200
    assert "1 lượt chuyển vụ việc không gửi được." in text  # the banner
    assert case.reference in text and "Đường dây nóng 111" in text and url("retry", referral.public_id) in text
    assert "Gửi lại" in text
    assert '<tr class="overdue"' in text
    # The console's navigation warns too.
    assert "⚠ 1" in page(client.get(reverse("console:queue")))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, url("retry", referral.public_id), {"back": "list", "state": "failed"})
    assert response.status_code == 302 and response["Location"] == url("list") + "?state=failed"
    assert notes(response, constants.SUCCESS) and callbacks  # the send is enqueued at commit
    delivery.refresh_from_db()
    referral.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 0
    assert referral.state == ReferralState.QUEUED
    assert CaseEvent.objects.filter(case=case, kind=EventKind.REFERRAL, data__what="retried").exists()
    text = page(client.get(url("list")))
    assert "không gửi được" not in text


def test_the_list_shows_only_visible_referrals(client, units, handler, case, police):
    services.refer(case, channel_of(police), handler)
    log_in(client, handler)
    assert case.reference in page(client.get(url("list")))
    assert case.reference not in page(client.get(url("list") + "?state=failed"))
    outsider = make_user("handler-le-chan", Role.HANDLER, units["other_district"])
    log_in(client, outsider)
    assert case.reference not in page(client.get(url("list")))


# --- The directory ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.HANDLER])
def test_the_directory_is_only_for_top_administrators(client, staff, police, role):
    log_in(client, staff[role])  # at the district: not a top unit
    assert client.get(url("targets")).status_code == 403
    assert client.get(url("target_new")).status_code == 403
    assert client.get(url("target_edit", police.pk)).status_code == 403
    assert post(client, url("target_new"), {"name": "Mới", "kind": "other", "active": "on"}).status_code == 403
    assert post(client, url("channel_add", police.pk), {"kind": "email", "address": "a@b.example"}).status_code == 403
    assert post(client, url("channel_toggle", channel_of(police).pk), {"active": "0"}).status_code == 403
    assert police.channels.count() == 1 and channel_of(police).active and not Target.objects.filter(name="Mới").exists()
    assert url("targets") not in page(client.get(reverse("console:queue")))


def test_a_top_admin_builds_the_directory(client, top_admin):
    log_in(client, top_admin)
    assert url("targets") in page(client.get(reverse("console:queue")))
    response = post(client, url("target_new"), {"name": "Zalo", "kind": "platform", "domains": "zalo.me\nhttps://chat.zalo.me/abc",
                                               "addressee": "Công ty Cổ phần VNG", "notes": "", "active": "on"})
    target = Target.objects.get(name="Zalo")
    assert response.status_code == 302 and response["Location"] == url("target_edit", target.pk)
    assert target.domain_list() == ["zalo.me", "chat.zalo.me"]
    assert AuditEvent.objects.filter(action="referral_target.created").exists()

    response = post(client, url("channel_add", target.pk), {"kind": "email", "address": "khong-phai-email"})
    assert notes(response, constants.ERROR) == ["Hãy nhập một địa chỉ email hợp lệ."]
    assert not target.channels.exists()
    response = post(client, url("channel_add", target.pk), {"kind": "email", "address": "legal@zalo.example"})
    assert notes(response, constants.SUCCESS) and target.channels.get().address == "legal@zalo.example"

    response = post(client, url("channel_add", target.pk), {"kind": "webhook", "address": "https://hooks.zalo.example/cophub"})
    assert response.status_code == 200 and response["Cache-Control"].startswith("no-store")
    webhook = target.channels.get(kind=ChannelKind.WEBHOOK)
    secret = services.channel_secret(webhook)
    assert secret.startswith("whsec_") and secret in page(response)
    later = page(client.get(url("target_edit", target.pk)))
    assert secret not in later and "https://hooks.zalo.example/cophub" in later

    post(client, url("channel_toggle", webhook.pk), {"active": "0"})
    webhook.refresh_from_db()
    assert not webhook.active

    response = post(client, url("target_edit", target.pk), {"name": "Zalo", "kind": "platform", "domains": "zalo.me", "addressee": "VNG",
                                                           "notes": "Liên hệ qua email.", "active": ""})
    target.refresh_from_db()
    assert response.status_code == 302 and not target.active and target.addressee == "VNG"
    assert "TikTok" not in page(client.get(url("targets")))
    assert "Zalo" in page(client.get(url("targets")))


def test_a_duplicate_name_is_refused_on_the_form(client, top_admin, police):
    log_in(client, top_admin)
    response = post(client, url("target_new"), {"name": police.name, "kind": "police", "active": "on"})
    assert response.status_code == 200 and Target.objects.filter(name=police.name).count() == 1


# --- The callback endpoint -------------------------------------------------------------------------------------------


@pytest.fixture
def hooked(top_admin, handler, case):
    target = services.save_target(top_admin, name="VN-COP", kind="vncop")
    channel, secret = services.add_channel(target, ChannelKind.WEBHOOK, top_admin, address="https://hooks.vncop.example/in")
    referral = services.refer(case, channel, handler)  # its delivery waits for the commit: not sent here
    return referral, secret


def callback(client, referral, body: bytes, signature: str):
    return client.post(reverse("referral-callback", args=[referral.public_id]), body, content_type="application/json",
                       headers={"Cophub-Signature": signature})


def test_a_signed_callback_acknowledges(client, case, hooked):
    referral, secret = hooked
    body = json.dumps({"status": "acknowledged", "reference": "VNCOP-2026-77", "message": "Đã tiếp nhận."}).encode()
    response = callback(client, referral, body, sign(secret, body, int(time.time())))
    assert response.status_code == 200 and response.json() == {"ok": True}
    referral.refresh_from_db()
    assert referral.state == ReferralState.ACKNOWLEDGED and referral.external_ref == "VNCOP-2026-77"
    event = CaseEvent.objects.filter(case=case, kind=EventKind.REFERRAL, data__what="acknowledged").get()
    assert event.actor is None and event.text == "Đã tiếp nhận."


def test_callback_refusals(client, hooked):
    referral, secret = hooked
    body = json.dumps({"status": "acknowledged"}).encode()
    assert callback(client, referral, body, sign("whsec_wrong", body, int(time.time()))).status_code == 401
    assert callback(client, referral, body, "").status_code == 401
    assert callback(client, referral, body, sign(secret, body, int(time.time()) - 3600)).status_code == 401
    big = b'{"status": "acknowledged", "message": "' + b"x" * (64 * 1024) + b'"}'
    response = callback(client, referral, big, sign(secret, big, int(time.time())))
    assert response.status_code == 413 and response.json()["ok"] is False
    for junk in (b"{not json", b"[1, 2]", b'"acknowledged"', b'{"status": "deleted"}', b"\xff\xfe"):
        response = callback(client, referral, junk, sign(secret, junk, int(time.time())))
        assert response.status_code == 400, junk
    missing = client.post(reverse("referral-callback", args=["ref_nobody"]), body, content_type="application/json",
                          headers={"Cophub-Signature": sign(secret, body, int(time.time()))})
    assert missing.status_code == 404
    assert client.get(reverse("referral-callback", args=[referral.public_id])).status_code == 405
    referral.refresh_from_db()
    assert referral.state == ReferralState.QUEUED
    assert not Delivery.objects.filter(referral=referral).exclude(state=DeliveryState.PENDING).exists()
