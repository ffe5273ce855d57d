"""Referral delivery through the outbox, against real peers on loopback: an SMTP server (aiosmtpd) and a webhook receiver."""

from __future__ import annotations

import json
import subprocess
import unicodedata
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from cophub.alerts.models import Alert
from cophub.alerts.services import send_pending_emails
from cophub.cases.models import EventKind
from cophub.cases.services import transition
from cophub.cases.tests.helpers import report_case
from cophub.orgs.models import Role
from cophub.referrals import outbox, services
from cophub.referrals.channels import message_id
from cophub.referrals.models import ChannelKind, Delivery, DeliveryState, Referral, ReferralState, TargetKind

from .peers import SmtpServer, WebhookReceiver
from .test_letters import _tool

pytestmark = pytest.mark.django_db
ARTIFACTS = Path(__file__).resolve().parents[4] / "test-artifacts" / "referrals"


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


@pytest.fixture
def top_admin(units):
    from cophub.conftest import make_user

    return make_user("admin-province", Role.ADMIN, units["province"])


@pytest.fixture
def case(units, staff):
    case = report_case(units["school_a"], category="sextortion", description="Có kẻ đòi ảnh nóng và doạ tung lên mạng.",
                       where_url="https://video.example.com/v/123", reported_account="ke_xau_99")
    transition(case, "assessing", staff["handler"])
    return case


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def receiver():
    peer = WebhookReceiver()
    yield peer
    peer.release.set()
    peer.stop()


def channel(top_admin, kind, address="", name="Phòng An ninh mạng (A05)", target_kind=TargetKind.POLICE):
    target = services.save_target(top_admin, name=name, kind=target_kind, addressee="Cục An ninh mạng và phòng, chống tội phạm sử dụng công nghệ cao")
    made, secret = services.add_channel(target, kind, top_admin, address=address)
    return made, secret


# --- Email -------------------------------------------------------------------------------------------


def test_a_referral_by_email_arrives_once_with_a_vietnamese_pdf_letter_and_the_json(top_admin, staff, case, smtp):
    chan, _ = channel(top_admin, ChannelKind.EMAIL, "tiepnhan@a05.example.vn")
    referral = services.refer(case, chan, staff["handler"], note="Đề nghị xác minh tài khoản ke_xau_99.")
    with override_settings(**smtp.settings()):
        assert outbox.deliver_due() == {"delivered": 1}
        assert outbox.deliver_due(later(3600)) == {}
    assert smtp.received == 1 and len(smtp.messages) == 1
    message = smtp.messages[0]
    delivery = referral.deliveries.get()
    assert message["X-Envelope-To"] == "tiepnhan@a05.example.vn"
    assert message["Message-ID"] == message_id(delivery)
    assert referral.number in message["Subject"] and "V/v chuyển thông tin vụ việc" in message["Subject"]
    parts = {part.get_content_type(): part for part in message.iter_attachments()}
    assert set(parts) == {"application/pdf", "application/json"}
    document = json.loads(parts["application/json"].get_content())
    referral.refresh_from_db()
    assert document["referral"] == referral.snapshot and document["id"] == referral.public_id
    assert document["referral"]["reports"][0]["reported_account"] == "ke_xau_99"
    assert "Trường TH Hùng Vương".upper() in message.get_body(("plain",)).get_content()

    pdf = parts["application/pdf"].get_content()
    text = _pdf_text(pdf, "referral-letter")
    for words in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc", "Kính gửi", "Cục An ninh mạng",
                  "TRƯỜNG TH HÙNG VƯƠNG", "PHÒNG GD&ĐT HỒNG BÀNG", "Quyết định số 830/QĐ-TTg", "Đề nghị xác minh tài khoản",
                  "Tống tiền bằng hình ảnh nhạy cảm", case.reference, referral.number):
        assert words in text, words
    assert referral.state == ReferralState.DELIVERED and referral.external_ref == message_id(delivery)
    assert case.events.filter(kind=EventKind.REFERRAL, data__what="delivered").count() == 1


def _pdf_text(pdf: bytes, name: str) -> str:
    """pdftotext's reading of the letter (NFC), and page 1 as PNG in the test artefacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.pdf"
    path.write_bytes(pdf)
    _tool("pdftotext")
    subprocess.run([_tool("pdftoppm"), "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(path), str(ARTIFACTS / name)], check=True)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 5000
    done = subprocess.run([_tool("pdftotext"), "-layout", str(path), "-"], capture_output=True, check=True)
    return unicodedata.normalize("NFC", done.stdout.decode())


def test_a_mail_server_that_says_try_later_gets_the_letter_on_the_next_attempt(top_admin, staff, case, smtp):
    chan, _ = channel(top_admin, ChannelKind.EMAIL, "tiepnhan@a05.example.vn")
    services.refer(case, chan, staff["handler"])
    smtp.fail_first = 1
    with override_settings(**smtp.settings()):
        assert outbox.deliver_due() == {"retry": 1}
        delivery = Delivery.objects.get()
        assert delivery.last_status == "451" and "try again" in delivery.last_error
        assert outbox.deliver_due(later(60)) == {"delivered": 1}
    assert smtp.received == 2 and len(smtp.messages) == 1


def test_a_mailbox_that_does_not_exist_is_a_dead_letter_at_once_with_alerts(top_admin, staff, case, smtp):
    chan, _ = channel(top_admin, ChannelKind.EMAIL, "nobody@refused.invalid")
    referral = services.refer(case, chan, staff["handler"])
    with override_settings(**smtp.settings()):
        assert outbox.deliver_due() == {"dead": 1}
    referral.refresh_from_db()
    assert referral.state == ReferralState.FAILED
    assert Alert.objects.filter(kind="referral.dead", recipient=staff["handler"]).exists()


def test_without_a_mail_server_a_letter_is_never_reported_as_delivered(top_admin, staff, case, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    chan, _ = channel(top_admin, ChannelKind.EMAIL, "tiepnhan@a05.example.vn")
    referral = services.refer(case, chan, staff["handler"])
    assert outbox.deliver_due() == {"retry": 1}
    assert "no mail server" in Delivery.objects.get().last_error
    referral.refresh_from_db()
    assert referral.state == ReferralState.QUEUED and referral.delivered_at is None


# --- Webhook -----------------------------------------------------------------------------------------


def test_a_webhook_referral_is_signed_kept_once_and_their_reference_recorded(top_admin, staff, case, receiver, settings):
    settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    chan, secret = channel(top_admin, ChannelKind.WEBHOOK, receiver.url, name="VN-COP", target_kind=TargetKind.VNCOP)
    receiver.secret = secret
    referral = services.refer(case, chan, staff["handler"])
    assert outbox.deliver_due() == {"delivered": 1}
    # The same delivery again (a task run twice) is refused by the claim, not sent.
    delivery = referral.deliveries.get()
    assert outbox.attempt(delivery.pk) == "delivered"
    assert len(receiver.requests) == 1 and receiver.rejected == []
    assert receiver.accepted[0]["referral"]["id"] == referral.public_id
    assert receiver.accepted[0]["delivery"] == f"{referral.public_id}.1"
    referral.refresh_from_db()
    assert referral.external_ref == "TICKET-1" and referral.state == ReferralState.DELIVERED


def test_a_receiver_down_then_answering_errors_gets_the_referral_exactly_once(top_admin, staff, case, receiver, settings):
    settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    chan, secret = channel(top_admin, ChannelKind.WEBHOOK, receiver.url)
    receiver.secret = secret
    receiver.stop()  # connection refused
    services.refer(case, chan, staff["handler"])
    assert outbox.deliver_due() == {"retry": 1}
    assert "Connection" in Delivery.objects.get().last_error
    receiver.start()
    receiver.fail_first = 2
    assert outbox.deliver_due(later(15)) == {"retry": 1}
    assert outbox.deliver_due(later(60)) == {"retry": 1}
    assert outbox.deliver_due(later(300)) == {"delivered": 1}
    assert outbox.deliver_due(later(7200)) == {}
    delivery = Delivery.objects.get()
    assert delivery.attempts == 4 and delivery.state == DeliveryState.DELIVERED
    assert len(receiver.accepted) == 1 and len(receiver.requests) == 3


def test_a_sender_that_died_holding_the_claim_is_replaced_after_the_claim_runs_out(top_admin, staff, case, receiver, settings):
    settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    chan, secret = channel(top_admin, ChannelKind.WEBHOOK, receiver.url)
    receiver.secret = secret
    services.refer(case, chan, staff["handler"])
    delivery = Delivery.objects.get()
    assert outbox.claim(delivery.pk, timezone.now()) is not None  # a worker took it, then died
    assert outbox.deliver_due() == {"busy": 1}
    assert receiver.requests == []
    after_claim = later(settings.COPHUB_REFERRAL_CLAIM_SECONDS + 1)
    assert outbox.deliver_due(after_claim) == {"delivered": 1}
    assert len(receiver.accepted) == 1
    assert Delivery.objects.get().attempts == 2  # the dead worker's attempt counts: a delivery that kills workers still ends


def test_after_n_failures_the_dead_letter_shows_in_the_console_and_an_alert_email_goes_out(top_admin, staff, case, receiver, settings, client, smtp):
    from cophub.cases.tests.helpers import log_in

    settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    settings.COPHUB_REFERRAL_MAX_ATTEMPTS = 3
    chan, secret = channel(top_admin, ChannelKind.WEBHOOK, receiver.url)
    receiver.secret, receiver.mode = secret, "error"
    staff["handler"].email = "canbo@truong.example.vn"
    staff["handler"].save()
    case.assignee = staff["handler"]
    case.save()
    referral = services.refer(case, chan, staff["handler"])
    outcomes = [outbox.deliver_due(later(hours * 3600)) for hours in (0, 1, 2, 3)]
    assert outcomes == [{"retry": 1}, {"retry": 1}, {"dead": 1}, {}]
    referral.refresh_from_db()
    assert referral.state == ReferralState.FAILED
    assert case.events.filter(kind=EventKind.REFERRAL, data__what="dead").count() == 1

    log_in(client, staff["handler"])
    page = client.get("/console/referrals/?state=failed").content.decode()
    assert referral.case.reference in page and "Phòng An ninh mạng (A05)" in page

    with override_settings(**smtp.settings()):
        send_pending_emails()
    alert_mail = [m for m in smtp.messages if m["X-Envelope-To"] == "canbo@truong.example.vn"]
    assert len(alert_mail) == 1
    body = alert_mail[0].get_body(("plain",)).get_content()
    assert case.reference in body and "Phòng An ninh mạng (A05)" in body

    # Fixed on their side: staff send it again, and it arrives.
    receiver.mode = "up"
    assert services.retry_dead(referral, staff["handler"]) == 1
    assert outbox.deliver_due() == {"delivered": 1}
    referral.refresh_from_db()
    assert referral.state == ReferralState.DELIVERED and len(receiver.accepted) == 1


def test_the_outbox_row_is_written_with_the_referral_or_not_at_all(top_admin, staff, case):
    from django.db import transaction

    chan, _ = channel(top_admin, ChannelKind.EMAIL, "tiepnhan@a05.example.vn")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.refer(case, chan, staff["handler"])
        raise RuntimeError("the request failed after the referral")
    assert not Referral.objects.exists() and not Delivery.objects.exists()


def test_by_hand_there_is_nothing_to_send_until_staff_record_the_delivery(top_admin, staff, case):
    chan, _ = channel(top_admin, ChannelKind.MANUAL)
    referral = services.refer(case, chan, staff["handler"])
    assert referral.state == ReferralState.BY_HAND and not Delivery.objects.exists()
    assert services.letter_pdf(referral).startswith(b"%PDF")
    services.record_hand_delivery(referral, staff["handler"], "Giao trực tiếp cho cán bộ trực ban.")
    referral.refresh_from_db()
    assert referral.state == ReferralState.DELIVERED and referral.delivered_at is not None


def test_the_snapshot_keeps_what_was_sent_even_after_the_case_changes(top_admin, staff, case):
    from cophub.cases.services import set_category

    chan, _ = channel(top_admin, ChannelKind.MANUAL)
    referral = services.refer(case, chan, staff["handler"])
    before = services.letter_pdf(referral)
    set_category(case, "scam", staff["handler"])
    referral.refresh_from_db()
    assert referral.snapshot["case"]["category"] == "sextortion"
    assert "Tống tiền" in _pdf_text(services.letter_pdf(referral), "snapshot-letter")
    assert len(before) > 1000
    assert services._digest(referral.snapshot) == referral.snapshot_sha256


def test_only_case_handlers_may_refer(top_admin, staff, case):
    from django.core.exceptions import PermissionDenied

    chan, _ = channel(top_admin, ChannelKind.MANUAL)
    for role in ("counsellor", "teacher", "observer"):
        with pytest.raises(PermissionDenied):
            services.refer(case, chan, staff[role])
    assert mail.outbox == [] and not Referral.objects.exists()
