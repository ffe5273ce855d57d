"""API keys: issued once, stored as a SHA-256 of the secret, found by prefix.

A key looks like `cph_live_<prefix>_<secret>` (`cph_test_` for sandbox keys).
The secret is 256 random bits, so a plain SHA-256 is enough: there is nothing
to brute-force that a slow hash would protect, and checking stays cheap on
every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from cophub.audit.services import record

from .models import ApiKey, Provider, Scope
from .problems import ApiProblem

LIVE, TEST = "cph_live", "cph_test"
PREFIX_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
# last_used_at is written at most this often, so authentication is not a write per request.
LAST_USED_PRECISION = timedelta(minutes=1)
# Compared against when the prefix is unknown, so both paths do the same work.
_DUMMY_DIGEST = hashlib.sha256(b"no such key").hexdigest()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_prefix() -> str:
    return "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(10))


def _valid_scopes(scopes) -> list[str]:
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(Scope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    return scopes


def issue_key(provider: Provider, scopes, sandbox: bool = False, *, expires_at=None, actor=None) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which is never stored and cannot be shown again."""
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        key = ApiKey.objects.create(
            provider=provider, prefix=_new_prefix(), secret_digest=_digest(secret),
            scopes=_valid_scopes(scopes), sandbox=sandbox, expires_at=expires_at,
        )
        record("api_key.issued", actor=actor, obj=key, unit=provider.unit, provider=provider.pk, prefix=key.prefix, scopes=key.scopes, sandbox=sandbox)
    return key, f"{TEST if sandbox else LIVE}_{key.prefix}_{secret}"


def rotate_key(key: ApiKey, *, grace: timedelta | None = None, actor=None) -> tuple[ApiKey, str]:
    """A new key with the same scopes; the old one stops working now or after `grace`."""
    with transaction.atomic():
        new, plaintext = issue_key(key.provider, key.scopes, key.sandbox, expires_at=key.expires_at, actor=actor)
        key.revoked_at = timezone.now() + (grace or timedelta(0))
        key.replaced_by = new
        key.save(update_fields=["revoked_at", "replaced_by"])
        record("api_key.rotated", actor=actor, obj=key, unit=key.provider.unit, prefix=key.prefix, new_prefix=new.prefix,
               grace_seconds=int((grace or timedelta(0)).total_seconds()))
    return new, plaintext


def revoke_key(key: ApiKey, *, actor=None) -> None:
    with transaction.atomic():
        now = timezone.now()
        if key.revoked_at is None or key.revoked_at > now:
            key.revoked_at = now
            key.save(update_fields=["revoked_at"])
        record("api_key.revoked", actor=actor, obj=key, unit=key.provider.unit, prefix=key.prefix)


@dataclass
class _Parsed:
    mode: str
    prefix: str
    secret: str


def _parse(token: str) -> _Parsed | None:
    parts = (token or "").strip().split("_", 3)
    if len(parts) != 4 or f"{parts[0]}_{parts[1]}" not in (LIVE, TEST):
        return None
    return _Parsed(mode=f"{parts[0]}_{parts[1]}", prefix=parts[2], secret=parts[3])


def check_key(token: str) -> ApiKey:
    """The key a bearer token names, or an ApiProblem saying why not.

    The row is found by its public prefix; the secret is then compared in
    constant time, and an unknown prefix costs the same comparison.
    """
    parsed = _parse(token)
    key = ApiKey.objects.select_related("provider", "provider__unit").filter(prefix=parsed.prefix).first() if parsed else None
    stored = key.secret_digest if key else _DUMMY_DIGEST
    offered = _digest(parsed.secret) if parsed else _digest("")
    matches = hmac.compare_digest(stored, offered)
    if key is None or not matches or parsed.mode != (TEST if key.sandbox else LIVE) or not key.provider.active:
        raise ApiProblem("auth.invalid_key")
    now = timezone.now()
    if key.is_revoked(now):
        raise ApiProblem("auth.revoked_key")
    if key.is_expired(now):
        raise ApiProblem("auth.expired_key")
    _note_use(key, now)
    return key


def authenticate(header_value: str) -> ApiKey | None:
    """The valid key in an `Authorization: Bearer …` value, or None."""
    scheme, _, token = (header_value or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        return check_key(token)
    except ApiProblem:
        return None


def _note_use(key: ApiKey, now) -> None:
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def require_scope(key: ApiKey, scope: str) -> None:
    if scope not in key.scopes:
        raise ApiProblem("auth.scope", format_lazy(_("This operation needs the scope '{scope}'."), scope=scope), required_scope=scope)
