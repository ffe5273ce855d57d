"""`GET /api/v1/hashes`: the hub's hash list as a feed of changes, for providers to poll.

Mounted on the provider API (providers/api.py), so it shares its key
authentication, rate limit, problem documents and OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Query, Router, Schema
from pydantic import Field

from cophub.providers import keys
from cophub.providers.models import Scope
from cophub.providers.problems import json_response
from cophub.providers.schemas import Problem

from . import services
from .models import SignalType

router = Router(tags=["hashes"])

# The largest id a database integer column holds: a larger cursor is refused, never sent to the database.
MAX_CURSOR = 2**63 - 1
SignalTypeName = Literal[tuple(v for v in SignalType.values if v != SignalType.VPDQ)]  # type: ignore[valid-type]


class HashAdded(Schema):
    signal_type: SignalTypeName = Field(description="sha256, md5 (hex), pdq (64 hex digits: a distance up to 31 is a match), "
                                            "url (normalised) or domain (it and every name under it).")
    value: str = Field(description="Lowercase hex for hashes.")
    added_at: datetime


class HashRemoved(Schema):
    signal_type: SignalTypeName
    value: str
    removed_at: datetime


class HashFeed(Schema):
    added: list[HashAdded] = Field(description="Signals to add to your list (each entry's latest state in this page).")
    removed: list[HashRemoved] = Field(description="Signals to take off your list.")
    cursor: int = Field(description="Send it back as `cursor` on the next call.")
    more: bool = Field(description="true: more changes wait after this cursor; call again at once.")


@router.get("/hashes", response={200: HashFeed, 422: Problem}, summary="Changes to the hub's hash list after a cursor")
def hash_feed(request,
              cursor: int = Query(0, ge=0, le=MAX_CURSOR, description="The cursor of the previous answer; 0 for the whole list."),
              limit: int = Query(1000, ge=1, le=10_000, description="At most this many changes in one answer.")):
    key = request.auth
    keys.require_scope(key, Scope.HASHES_READ)
    # A sandbox key reads the sandbox list only: test entries, never real material.
    return json_response(services.feed(cursor, limit, sandbox=key.sandbox))
