"""Who may manage content providers and their API keys: administrators of the provider's unit or a unit above it."""

from __future__ import annotations

from cophub.orgs.models import Role
from cophub.orgs.permissions import has_role, scope_filter, unit_paths, units_for

ACTIONS: dict[str, set[str]] = {
    # Register a provider, issue, rotate and revoke its keys, (de)activate it, read its webhook deliveries.
    "provider.manage": {Role.ADMIN},
}


def can(user, action: str, unit) -> bool:
    return has_role(user, ACTIONS[action], unit)


def managed_units(user):
    """The units where the user may register and manage providers."""
    return units_for(user, ACTIONS["provider.manage"]).order_by("path")


def may_manage_any(user) -> bool:
    """Whether the user administers any unit (read from the memberships already loaded: no query per page)."""
    return bool(unit_paths(user, ACTIONS["provider.manage"]))


def visible_filter(user, action: str = "provider.manage"):
    """Providers whose unit lies under one of the units the user administers."""
    return scope_filter(user, ACTIONS[action])
