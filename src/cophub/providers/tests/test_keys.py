"""API keys: issued once, stored hashed, found by prefix, rotated, revoked, expiring."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.audit.services import verify
from cophub.providers import keys
from cophub.providers.models import ApiKey

pytestmark = pytest.mark.django_db


def test_issue_shows_the_secret_once_and_stores_only_its_digest(provider):
    key, plaintext = keys.issue_key(provider, ["reports:write", "hashes:read"])
    mode, prefix, secret = plaintext[:8], plaintext.split("_")[2], plaintext.split("_", 3)[3]
    assert mode == "cph_live" and prefix == key.prefix and len(secret) >= 40
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.secret_digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiKey.objects.filter(pk=key.pk).values().get())
    assert stored.scopes == ["hashes:read", "reports:write"]
    assert AuditEvent.objects.filter(action="api_key.issued", object_id=str(key.pk)).exists()


def test_sandbox_keys_say_so_and_a_live_form_of_them_is_refused(provider):
    key, plaintext = keys.issue_key(provider, ["reports:write"], sandbox=True)
    assert plaintext.startswith(f"cph_test_{key.prefix}_")
    assert keys.authenticate(f"Bearer {plaintext}") == key
    assert keys.authenticate("Bearer " + plaintext.replace("cph_test_", "cph_live_", 1)) is None


def test_unknown_scope_is_refused(provider):
    with pytest.raises(ValueError):
        keys.issue_key(provider, ["everything"])


def test_authenticate_finds_the_key_by_prefix_with_one_query(provider):
    key, plaintext = keys.issue_key(provider, ["reports:write"])
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())  # no write on this use
    with CaptureQueriesContext(connection) as queries:
        assert keys.authenticate(f"Bearer {plaintext}") == key
    assert len(queries) == 1
    assert "prefix" in queries[0]["sql"] and key.prefix in queries[0]["sql"]


def test_wrong_secret_unknown_prefix_and_garbage_are_refused(provider):
    key, plaintext = keys.issue_key(provider, ["reports:write"])
    assert keys.authenticate(f"Bearer {plaintext[:-2]}xx") is None
    assert keys.authenticate(f"Bearer cph_live_zzzzzzzzzz_{plaintext.split('_', 3)[3]}") is None
    assert keys.authenticate("Bearer nonsense") is None
    assert keys.authenticate(f"Basic {plaintext}") is None
    assert keys.authenticate("") is None


def test_the_secret_is_compared_in_constant_time(provider, monkeypatch):
    """Both a known and an unknown prefix end in hmac.compare_digest of two SHA-256 digests."""
    key, plaintext = keys.issue_key(provider, ["reports:write"])
    compared = []
    real = keys.hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: compared.append((len(a), len(b))) or real(a, b))
    keys.authenticate(f"Bearer {plaintext}")
    keys.authenticate(f"Bearer cph_live_unknownpfx_{'x' * 43}")
    assert compared == [(64, 64), (64, 64)]


def test_revoke_stops_the_key_and_is_audited(provider):
    key, plaintext = keys.issue_key(provider, ["reports:write"])
    keys.revoke_key(key, actor="test")
    assert keys.authenticate(f"Bearer {plaintext}") is None
    with pytest.raises(keys.ApiProblem) as refused:
        keys.check_key(plaintext)
    assert refused.value.code == "auth.revoked_key"
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1
    assert verify().ok


def test_rotate_gives_a_new_key_and_ends_the_old_now_or_after_grace(provider):
    key, old_plain = keys.issue_key(provider, ["reports:write", "hashes:read"])
    new, new_plain = keys.rotate_key(key)
    assert new.scopes == key.scopes and new.prefix != key.prefix
    assert keys.authenticate(f"Bearer {new_plain}") == new
    assert keys.authenticate(f"Bearer {old_plain}") is None
    assert ApiKey.objects.get(pk=key.pk).replaced_by == new

    newer, newer_plain = keys.rotate_key(new, grace=timedelta(hours=1))
    assert keys.authenticate(f"Bearer {new_plain}") == new, "still valid during the grace period"
    assert keys.authenticate(f"Bearer {newer_plain}") == newer
    ApiKey.objects.filter(pk=new.pk).update(revoked_at=timezone.now() - timedelta(seconds=1))
    assert keys.authenticate(f"Bearer {new_plain}") is None
    assert AuditEvent.objects.filter(action="api_key.rotated").count() == 2


def test_expired_key_is_refused(provider):
    key, plaintext = keys.issue_key(provider, ["reports:write"], expires_at=timezone.now() + timedelta(days=1))
    assert keys.authenticate(f"Bearer {plaintext}") == key
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(keys.ApiProblem) as refused:
        keys.check_key(plaintext)
    assert refused.value.code == "auth.expired_key"


def test_inactive_provider_keys_are_refused(provider):
    _, plaintext = keys.issue_key(provider, ["reports:write"])
    provider.active = False
    provider.save()
    assert keys.authenticate(f"Bearer {plaintext}") is None


def test_last_used_is_written_at_most_once_a_minute(provider):
    key, plaintext = keys.issue_key(provider, ["reports:write"])
    keys.authenticate(f"Bearer {plaintext}")
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    keys.authenticate(f"Bearer {plaintext}")
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
