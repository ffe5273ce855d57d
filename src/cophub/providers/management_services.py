"""Registering content providers and switching them on and off, from the console; audited.

Keys are issued, rotated and revoked by `keys`; this module holds the rest of
what an administrator does to a provider.
"""

from __future__ import annotations

from django.db import transaction

from cophub.audit.services import record

from .models import Provider


def create_provider(*, name: str, unit, contact_email: str = "", actor=None, request=None) -> Provider:
    with transaction.atomic():
        provider = Provider.objects.create(name=name, contact_email=contact_email, unit=unit)
        record("provider.created", actor=actor, obj=provider, unit=unit, request=request,
               name=provider.name, contact_email=provider.contact_email)
    return provider


def set_active(provider: Provider, active: bool, *, actor=None, request=None) -> bool:
    """Switch the provider on or off; False when it already was. An inactive provider's keys are all refused."""
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk)
        if locked.active == active:
            provider.active = active
            return False
        locked.active = active
        locked.save(update_fields=["active"])
        provider.active = active
        record("provider.activated" if active else "provider.deactivated", actor=actor, obj=locked, unit=locked.unit_id,
               request=request, name=locked.name)
    return True
