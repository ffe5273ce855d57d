"""The Django admin lists providers and keys (hash read-only) and revokes keys."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from cophub.audit.models import AuditEvent
from cophub.providers import keys
from cophub.providers.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, settings):
    settings.COPHUB_STAFF_2FA = "off"
    user = get_user_model().objects.create_superuser("root", password="correct horse battery 1")
    client.force_login(user)
    return client


def test_admin_lists_keys_without_secrets_and_revokes(admin_client, provider):
    key, plaintext = keys.issue_key(provider, ["reports:write"])
    listing = admin_client.get("/admin/providers/apikey/")
    assert listing.status_code == 200 and key.prefix.encode() in listing.content
    assert plaintext.split("_", 3)[3].encode() not in listing.content
    detail = admin_client.get(f"/admin/providers/apikey/{key.pk}/change/")
    assert detail.status_code == 200 and b'name="secret_digest"' not in detail.content
    assert admin_client.get("/admin/providers/apikey/add/").status_code == 403
    assert admin_client.get(f"/admin/providers/provider/{provider.pk}/change/").status_code == 200

    response = admin_client.post("/admin/providers/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=key.pk).is_revoked()
    assert keys.authenticate(f"Bearer {plaintext}") is None
    assert AuditEvent.objects.get(action="api_key.revoked").actor == "root"
