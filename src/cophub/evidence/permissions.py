"""Who may see evidence. Checked against the unit of the case it belongs to."""

from __future__ import annotations

from cophub.orgs.models import Role
from cophub.orgs.permissions import has_role

# Blurred, grey previews: staff who work cases and need to know what a case is about.
VIEW_PREVIEW = {Role.ADMIN, Role.HANDLER, Role.COUNSELLOR}
# The clear file: only those who assess material.
VIEW_CLEAR = {Role.ADMIN, Role.HANDLER}
# Adding files to a case.
ATTACH = {Role.ADMIN, Role.HANDLER, Role.COUNSELLOR}

ACTIONS = {
    "evidence.view_preview": VIEW_PREVIEW,
    "evidence.view_clear": VIEW_CLEAR,
    "evidence.attach": ATTACH,
}


def can(user, action: str, unit) -> bool:
    return has_role(user, ACTIONS[action], unit)
