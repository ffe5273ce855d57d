"""Alerts by email: sent once, in the hub's language; a failing server is retried up to a cap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cophub.alerts import services
from cophub.alerts.models import Alert

from .helpers import FailingBackend, make_case

pytestmark = pytest.mark.django_db

FAILING = "cophub.alerts.tests.helpers.FailingBackend"


@pytest.fixture
def handler(staff):
    user = staff["handler"]
    user.email = "xu-ly@truong.edu.vn"
    user.save()
    return user


def raise_one(user, case=None, **params):
    return services.raise_alert("takedown.overdue", [user], params={"target": "Nền tảng X", "hours": 30, **params},
                                case=case, link="/console/")[0]


def test_one_email_per_new_alert_after_commit(units, handler, staff, mailoutbox, django_capture_on_commit_callbacks, settings):
    staff["admin"].email = "lanh-dao@phong.edu.vn"
    staff["admin"].save()
    case = make_case(units["district"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.raise_alert("sla.overdue", [handler, staff["admin"]], case=case, dedupe_key="x",
                             params={"reference": case.reference, "priority": "P2", "due": "08:00 01/12/2026"})
        assert mailoutbox == []  # nothing leaves before the change commits
    for callback in callbacks:
        callback()
    assert sorted(m.to[0] for m in mailoutbox) == ["lanh-dao@phong.edu.vn", "xu-ly@truong.edu.vn"]
    message = mailoutbox[0]
    assert message.subject == f"Vụ việc {case.reference} đã quá hạn"
    assert "08:00 01/12/2026" in message.body and "lãnh đạo" in message.body
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert "http" not in message.body  # no COPHUB_PUBLIC_URL, no absolute link
    assert Alert.objects.filter(emailed_at__isnull=True).count() == 0


def test_never_sent_twice(handler, mailoutbox):
    alert = raise_one(handler)
    assert services.send_email(alert.pk) == "sent"
    assert "Nền tảng X" in mailoutbox[0].subject and "30 giờ" in mailoutbox[0].body
    assert services.send_email(alert.pk) == "sent"
    assert services.send_pending_emails() == 0
    assert len(mailoutbox) == 1


def test_a_claimed_alert_is_not_sent_by_a_second_sender(handler, mailoutbox):
    alert = raise_one(handler)
    Alert.objects.filter(pk=alert.pk).update(email_claimed_until=timezone.now() + timedelta(minutes=1))
    assert services.send_email(alert.pk) == "busy"
    assert services.send_pending_emails() == 0 and mailoutbox == []
    Alert.objects.filter(pk=alert.pk).update(email_claimed_until=timezone.now() - timedelta(seconds=1))  # the sender died
    assert services.send_pending_emails() == 1 and len(mailoutbox) == 1


def test_no_address_is_not_retried(staff, mailoutbox):
    alert = raise_one(staff["admin"])
    assert services.send_email(alert.pk) == "no_address"
    alert.refresh_from_db()
    assert alert.email_error == "no address" and alert.emailed_at is None and alert.email_attempts == 0
    assert services.send_pending_emails() == 0
    assert services.send_email(alert.pk) == "given_up"
    assert mailoutbox == []


def test_failing_server_retried_by_the_sweep_up_to_the_cap(handler, settings, mailoutbox):
    settings.EMAIL_BACKEND = FAILING
    FailingBackend.calls = 0
    alert = raise_one(handler)
    assert services.send_email(alert.pk) == "failed"
    alert.refresh_from_db()
    assert alert.email_attempts == 1 and "SMTPServerDisconnected" in alert.email_error and alert.emailed_at is None
    for expected in range(2, services.MAX_EMAIL_ATTEMPTS + 1):
        assert services.send_pending_emails() == 0
        alert.refresh_from_db()
        assert alert.email_attempts == expected
    assert FailingBackend.calls == services.MAX_EMAIL_ATTEMPTS
    assert services.send_pending_emails() == 0  # the cap: left alone
    assert services.send_email(alert.pk) == "given_up"
    assert FailingBackend.calls == services.MAX_EMAIL_ATTEMPTS


def test_sweep_recovers_after_the_server_is_back(handler, settings, mailoutbox):
    settings.EMAIL_BACKEND = FAILING
    alert = raise_one(handler)
    assert services.send_email(alert.pk) == "failed"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert services.send_pending_emails() == 1
    alert.refresh_from_db()
    assert alert.emailed_at is not None and alert.email_error == "" and alert.email_attempts == 1
    assert len(mailoutbox) == 1


def test_sweep_sends_alerts_whose_task_was_lost(handler, mailoutbox):
    raise_one(handler)  # the on-commit task never runs inside the test's transaction
    raise_one(handler)
    assert services.send_pending_emails() == 2
    assert len(mailoutbox) == 2


def test_sweep_leaves_old_alerts(handler, mailoutbox):
    alert = raise_one(handler)
    Alert.objects.filter(pk=alert.pk).update(created_at=timezone.now() - services.SWEEP_MAX_AGE - timedelta(minutes=1))
    assert services.send_pending_emails() == 0


def test_absolute_link_with_public_url(handler, settings, mailoutbox):
    settings.COPHUB_PUBLIC_URL = "https://hub.example/base"
    alert = raise_one(handler)
    services.send_email(alert.pk)
    assert "https://hub.example/base/console/" in mailoutbox[0].body
