"""Logging in and out of the console, with failed attempts audited and rate limited."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from cophub.audit.models import AuditEvent
from cophub.cases import two_factor
from cophub.conftest import make_user

from .helpers import current_code, log_in, report_case

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery 1"


@pytest.fixture
def handler(units):
    return make_user("nguyen.van.a", "handler", units["district"], password=PASSWORD)


def test_login_page_in_vietnamese_by_default_and_english_on_request(client):
    vi = client.get(reverse("console:login"))
    assert vi.status_code == 200
    assert '<html lang="vi">' in vi.content.decode() and "Đăng nhập" in vi.content.decode()
    client.cookies["cophub_lang"] = "en"
    en = client.get(reverse("console:login")).content.decode()
    assert '<html lang="en">' in en and "Staff log-in" in en and "Tiếng Việt" in en


def test_login_then_the_queue_and_audit(client, handler):
    device = two_factor.ensure_confirmed_device(handler)
    response = client.post(reverse("console:login"), {"username": "nguyen.van.a", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("console:queue")
    # A handler can see evidence, so the code from the app comes between the password and the queue.
    code_step = client.get(reverse("console:queue"))
    assert code_step["Location"] == f"{reverse('console:otp')}?next={reverse('console:queue')}"
    assert client.post(code_step["Location"], {"otp_token": current_code(device)})["Location"] == reverse("console:queue")
    assert client.get(reverse("console:queue")).status_code == 200
    assert AuditEvent.objects.filter(action="auth.login", actor="nguyen.van.a").count() == 1


def test_failed_login_is_refused_and_audited(client, handler):
    response = client.post(reverse("console:login"), {"username": "nguyen.van.a", "password": "wrong one"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert AuditEvent.objects.filter(action="auth.login_failed", actor="nguyen.van.a").count() == 1
    assert client.get(reverse("console:queue")).status_code == 302


def test_login_returns_to_the_page_asked_for_but_never_off_site(client, handler, units):
    case = report_case(units["school_a"])
    wanted = reverse("console:case", args=[case.pk])
    response = client.get(wanted)
    assert response["Location"] == f"{reverse('console:login')}?next={wanted}"
    response = client.post(response["Location"], {"username": "nguyen.van.a", "password": PASSWORD, "next": wanted})
    assert response["Location"] == wanted
    client.logout()
    response = client.post(reverse("console:login"), {"username": "nguyen.van.a", "password": PASSWORD, "next": "https://evil.example/"})
    assert response["Location"] == reverse("console:queue")


def test_logout_is_a_post_and_audited(client, handler):
    log_in(client, handler)
    assert client.get(reverse("console:logout")).status_code == 405
    response = client.post(reverse("console:logout"))
    assert response.status_code == 302 and response["Location"] == reverse("console:login")
    assert AuditEvent.objects.filter(action="auth.logout", actor="nguyen.van.a").count() == 1
    assert client.get(reverse("console:queue")).status_code == 302


def test_login_attempts_are_rate_limited_per_address(client, handler, settings):
    settings.RATELIMIT_ENABLE = True
    settings.COPHUB_RATE_LOGIN = "3/m"
    cache.clear()
    try:
        for _ in range(3):
            assert client.post(reverse("console:login"), {"username": "nguyen.van.a", "password": "guess"}).status_code == 200
        blocked = client.post(reverse("console:login"), {"username": "nguyen.van.a", "password": PASSWORD})
        assert blocked.status_code == 429
        assert "_auth_user_id" not in client.session
        # Reading the page is not an attempt.
        assert client.get(reverse("console:login")).status_code == 200
        other_address = client.post(reverse("console:login"), {"username": "nguyen.van.a", "password": PASSWORD}, REMOTE_ADDR="10.1.2.3")
        assert other_address.status_code == 302
    finally:
        cache.clear()
