"""The console pages where a hub administrator manages providers and their API keys."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.cases.tests.helpers import log_in
from cophub.conftest import make_user
from cophub.orgs.models import Role
from cophub.providers import keys
from cophub.providers.models import ApiKey, Provider, ProviderReport, WebhookDelivery, WebhookEndpoint, WebhookEvent

from .conftest import ApiClient, minimal_report

pytestmark = pytest.mark.django_db

REPORTS = "/api/v1/reports"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client(client, staff):
    log_in(client, staff["admin"])
    return client


def page(response) -> str:
    return html.unescape(response.content.decode())


def issue(client, provider, **data):
    body = {"scopes": ["reports:write"], **data}
    return client.post(reverse("console:provider_issue_key", args=[provider.pk]), body)


def plaintext_of(response) -> str:
    text = page(response)
    start = text.index('id="api-key">') + len('id="api-key">')
    return text[start:text.index("</code>", start)].strip()


def works(token: str) -> int:
    return ApiClient(token).post(REPORTS, minimal_report()).status_code


# --- Keys ----------------------------------------------------------------------------------------


def test_issued_key_is_shown_once_uncached_and_works(admin_client, provider, staff):
    response = issue(admin_client, provider)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = plaintext_of(response)
    key = ApiKey.objects.get(provider=provider)
    assert token.startswith(f"cph_live_{key.prefix}_") and not key.sandbox and key.scopes == ["reports:write"]
    assert "chỉ hiển thị một lần" in page(response)
    assert works(token) == 201
    detail = page(admin_client.get(reverse("console:provider", args=[provider.pk])))
    secret = token.split("_", 3)[3]
    assert f"cph_live_{key.prefix}_…" in detail and secret not in detail and token not in detail
    event = AuditEvent.objects.get(action="api_key.issued", object_id=str(key.pk))
    assert event.actor_id == staff["admin"].pk


def test_sandbox_checkbox_and_expiry_date_and_scopes(admin_client, provider):
    day = timezone.localdate() + timedelta(days=10)
    response = issue(admin_client, provider, scopes=["reports:write", "hashes:read"], sandbox="on", expires_on=day.isoformat())
    token = plaintext_of(response)
    key = ApiKey.objects.get(provider=provider)
    assert token.startswith(f"cph_test_{key.prefix}_") and key.sandbox
    assert key.scopes == ["hashes:read", "reports:write"]
    assert timezone.localtime(key.expires_at).date() == day + timedelta(days=1)
    assert works(token) == 201
    assert ProviderReport.objects.get().sandbox


def test_issue_refuses_no_scope_and_a_past_date(admin_client, provider):
    response = issue(admin_client, provider, scopes=[])
    assert response.status_code == 200 and "Chọn ít nhất một quyền" in page(response)
    response = issue(admin_client, provider, expires_on=(timezone.localdate() - timedelta(days=1)).isoformat())
    assert "Ngày hết hạn không được ở trong quá khứ" in page(response)
    assert not ApiKey.objects.exists()


def test_rotate_now_stops_the_old_key_at_once(admin_client, provider):
    old_token = plaintext_of(issue(admin_client, provider))
    old = ApiKey.objects.get()
    response = admin_client.post(reverse("console:provider_rotate_key", args=[provider.pk, old.pk]), {"grace": "now"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_token = plaintext_of(response)
    assert new_token != old_token
    assert works(old_token) == 401 and works(new_token) == 201
    old.refresh_from_db()
    assert old.replaced_by.prefix == new_token.split("_")[2]
    assert AuditEvent.objects.filter(action="api_key.rotated", object_id=str(old.pk), data__grace_seconds=0).exists()
    detail = page(admin_client.get(reverse("console:provider", args=[provider.pk])))
    assert new_token not in detail and f"Được thay bằng cph_live_{old.replaced_by.prefix}_…" in detail


def test_rotate_with_an_hour_of_grace_keeps_both_working(admin_client, provider):
    old_token = plaintext_of(issue(admin_client, provider))
    old = ApiKey.objects.get()
    response = admin_client.post(reverse("console:provider_rotate_key", args=[provider.pk, old.pk]), {"grace": "1h"})
    new_token = plaintext_of(response)
    assert works(old_token) == 201 and works(new_token) == 201
    old.refresh_from_db()
    assert timedelta(minutes=59) < old.revoked_at - timezone.now() <= timedelta(hours=1)
    assert AuditEvent.objects.filter(action="api_key.rotated", data__grace_seconds=3600).exists()
    # A key already rotated is not rotated twice.
    again = admin_client.post(reverse("console:provider_rotate_key", args=[provider.pk, old.pk]), {"grace": "now"})
    assert again.status_code == 302 and ApiKey.objects.count() == 2


def test_revoke_asks_for_confirmation_then_refuses_the_key(admin_client, provider):
    token = plaintext_of(issue(admin_client, provider))
    key = ApiKey.objects.get()
    url = reverse("console:provider_revoke_key", args=[provider.pk, key.pk])
    assert "Thu hồi khoá" in page(admin_client.get(url))
    unconfirmed = admin_client.post(url, {})
    assert unconfirmed.status_code == 200 and works(token) == 201
    response = admin_client.post(url, {"confirm": "on"})
    assert response.status_code == 302 and works(token) == 401
    assert AuditEvent.objects.filter(action="api_key.revoked", object_id=str(key.pk)).exists()


def test_actions_need_post_and_csrf(staff, provider):
    client = Client(enforce_csrf_checks=True)
    log_in(client, staff["admin"])
    assert client.get(reverse("console:provider_issue_key", args=[provider.pk])).status_code == 405
    assert client.post(reverse("console:provider_issue_key", args=[provider.pk]), {"scopes": ["reports:write"]}).status_code == 403
    assert client.post(reverse("console:provider_set_active", args=[provider.pk]), {"active": "0"}).status_code == 403
    assert not ApiKey.objects.exists() and Provider.objects.get().active


# --- Providers -----------------------------------------------------------------------------------


def test_admin_registers_a_provider_in_a_unit_they_administer(admin_client, units, staff):
    form = page(admin_client.get(reverse("console:provider_create")))
    assert units["school_a"].name in form and units["school_c"].name not in form
    refused = admin_client.post(reverse("console:provider_create"), {"name": "X", "unit": units["school_c"].pk})
    assert refused.status_code == 200 and not Provider.objects.exists()
    response = admin_client.post(reverse("console:provider_create"),
                                 {"name": "  Mạng   xã hội C ", "contact_email": "ts@c.example", "unit": units["school_a"].pk})
    provider = Provider.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("console:provider", args=[provider.pk])
    assert provider.name == "Mạng xã hội C" and provider.unit == units["school_a"] and provider.active
    event = AuditEvent.objects.get(action="provider.created")
    assert event.object_id == str(provider.pk) and event.actor_id == staff["admin"].pk and event.unit_id == units["school_a"].pk


def test_deactivate_refuses_every_key_and_activate_restores_them(admin_client, provider):
    token = plaintext_of(issue(admin_client, provider))
    url = reverse("console:provider_set_active", args=[provider.pk])
    response = admin_client.post(url, {"active": "0"})
    assert response.status_code == 302 and works(token) == 401
    assert AuditEvent.objects.filter(action="provider.deactivated", object_id=str(provider.pk)).exists()
    admin_client.post(url, {"active": "0"})
    assert AuditEvent.objects.filter(action="provider.deactivated").count() == 1  # nothing changed, nothing logged
    admin_client.post(url, {"active": "1"})
    assert works(token) == 201
    assert AuditEvent.objects.filter(action="provider.activated", object_id=str(provider.pk)).exists()


def test_list_counts_keys_and_recent_reports(admin_client, provider, other_provider, live, sandbox):
    for _ in range(3):
        assert live.post(REPORTS, minimal_report()).status_code == 201
    keys.issue_key(provider, ["reports:write"])  # a second live key
    keys.revoke_key(keys.issue_key(provider, ["reports:write"])[0])  # not in use
    old = ProviderReport.objects.create(public_id="rpt_old", provider=provider, incident_type="other", incident_time=timezone.now(),
                                        expires_at=timezone.now())
    ProviderReport.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    response = admin_client.get(reverse("console:providers"))
    assert response.status_code == 200
    text = page(response)
    assert provider.name in text and other_provider.name not in text  # school_c is outside the district
    listed = response.context["providers"].get(pk=provider.pk)
    assert (listed.live_keys, listed.sandbox_keys, listed.recent_reports) == (2, 1, 3)
    assert provider.unit.name in text


def test_detail_shows_webhook_deliveries_read_only(admin_client, provider):
    endpoint = WebhookEndpoint.objects.create(public_id="wh_1", provider=provider, url="https://hooks.a.example/cophub",
                                              sealed_secret=b"x", event_types=["report.state_changed"])
    for n in range(25):
        event = WebhookEvent.objects.create(public_id=f"evt_{n}", provider=provider, type="report.state_changed")
        WebhookDelivery.objects.create(public_id=f"dlv_{n}", event=event, endpoint=endpoint, state="failed", attempts=12,
                                       last_status=503, last_error=f"lỗi số {n:02d}")
    text = page(admin_client.get(reverse("console:provider", args=[provider.pk])))
    assert "https://hooks.a.example/cophub" in text and "report.state_changed" in text
    assert "lỗi số 24" in text and "lỗi số 05" in text and "lỗi số 04" not in text  # the last 20
    assert "503" in text and "Thất bại" in text


# --- Who may ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.HANDLER, Role.TEACHER, Role.OBSERVER, Role.COUNSELLOR, Role.IT_ADMIN])
def test_other_roles_are_refused(client, staff, provider, role):
    log_in(client, staff[role])
    for url in (reverse("console:providers"), reverse("console:provider_create"), reverse("console:provider", args=[provider.pk])):
        response = client.get(url)
        assert response.status_code == 403 and "Không được phép" in page(response)
    assert client.post(reverse("console:provider_issue_key", args=[provider.pk]), {"scopes": ["reports:write"]}).status_code == 403
    assert not ApiKey.objects.exists()
    assert reverse("console:providers") not in page(client.get(reverse("console:queue")))


def test_admin_of_a_sibling_unit_gets_404(client, units, provider):
    sibling = make_user("admin-le-chan", Role.ADMIN, units["other_district"])
    log_in(client, sibling)
    assert reverse("console:providers") in page(client.get(reverse("console:queue")))
    for url in (reverse("console:provider", args=[provider.pk]), reverse("console:provider_set_active", args=[provider.pk])):
        response = client.get(url) if url.endswith(f"{provider.pk}/") else client.post(url, {"active": "0"})
        assert response.status_code == 404 and "Không tìm thấy" in page(response)
    response = client.post(reverse("console:provider_issue_key", args=[provider.pk]), {"scopes": ["reports:write"]})
    assert response.status_code == 404 and not ApiKey.objects.exists()
    assert provider.name not in page(client.get(reverse("console:providers")))


def test_admin_above_the_unit_manages_it(client, units, provider):
    log_in(client, make_user("admin-province", Role.ADMIN, units["province"]))
    assert client.get(reverse("console:provider", args=[provider.pk])).status_code == 200


def test_a_key_of_another_provider_is_not_found(admin_client, provider, other_provider):
    other_key = ApiKey.objects.create(provider=other_provider, prefix="otherkey01", secret_digest="0" * 64, scopes=["reports:write"])
    response = admin_client.post(reverse("console:provider_revoke_key", args=[provider.pk, other_key.pk]), {"confirm": "on"})
    assert response.status_code == 404
    other_key.refresh_from_db()
    assert other_key.revoked_at is None


def test_login_required(client, provider):
    response = client.get(reverse("console:providers"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("console:login"))


# --- Languages -------------------------------------------------------------------------------------


def test_pages_are_vietnamese_by_default_and_english_after_switching(admin_client, provider):
    url = reverse("console:provider", args=[provider.pk])
    vietnamese = page(admin_client.get(url))
    assert '<html lang="vi">' in vietnamese and "Cấp khoá mới" in vietnamese and "Nhà cung cấp nội dung" in vietnamese
    assert "Issue a new key" not in vietnamese
    admin_client.get(reverse("switch-language", args=["en"]) + f"?next={url}")
    english = page(admin_client.get(url))
    assert '<html lang="en">' in english and "Issue a new key" in english and "Content providers" in english
    assert "Cấp khoá mới" not in english
    shown = issue(admin_client, provider)
    assert "It is shown only this once" in page(shown)


def _english_sentences() -> list[str]:
    import polib

    from .test_language import CATALOG

    return [e.msgid for e in polib.pofile(str(CATALOG)) if len(e.msgid) > 14 and "%(" not in e.msgid and "{" not in e.msgid and not e.msgid_plural]


def test_no_english_left_on_any_page_in_vietnamese(admin_client, provider):
    endpoint = WebhookEndpoint.objects.create(public_id="wh_1", provider=provider, url="https://hooks.a.example/cophub",
                                              sealed_secret=b"x", event_types=["report.state_changed"])
    event = WebhookEvent.objects.create(public_id="evt_1", provider=provider, type="report.state_changed")
    WebhookDelivery.objects.create(public_id="dlv_1", event=event, endpoint=endpoint)
    shown = issue(admin_client, provider, sandbox="on")
    key = ApiKey.objects.get()
    rotated = admin_client.post(reverse("console:provider_rotate_key", args=[provider.pk, key.pk]), {"grace": "24h"})
    key.refresh_from_db()
    pages = [shown, rotated,
             admin_client.get(reverse("console:providers")),
             admin_client.get(reverse("console:provider_create")),
             admin_client.post(reverse("console:provider_create"), {"name": ""}),
             admin_client.get(reverse("console:provider", args=[provider.pk])),
             admin_client.get(reverse("console:provider_revoke_key", args=[provider.pk, key.replaced_by_id])),
             issue(admin_client, provider, scopes=[])]
    sentences = _english_sentences()
    for response in pages:
        text = page(response)
        assert response.status_code == 200 and '<html lang="vi">' in text
        assert [s for s in sentences if s in text] == []
