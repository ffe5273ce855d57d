"""`GET /api/v1/hashes`: the hub's hash list as a feed of changes, for providers to poll;
`GET /api/v1/lists/blocked-urls`: the published list of harmful addresses, for school network filters.

Mounted on the provider API (providers/api.py), so it shares its key
authentication, rate limit, problem documents and OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from ninja import Query, Router, Schema
from pydantic import Field

from cophub.audit.services import record

from cophub.providers import keys
from cophub.providers.models import Scope
from cophub.providers.problems import json_response
from cophub.providers.schemas import Problem

from . import services, urllist
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


# --- The published list of harmful addresses -------------------------------------------------------


_ENTRY = {"type": "object", "properties": {
    "kind": {"type": "string", "enum": ["url", "domain"]}, "value": {"type": "string"}, "host": {"type": "string"},
    "source": {"type": "string"}, "listed_at": {"type": "string", "format": "date-time"},
    "reviewed_at": {"type": ["string", "null"], "format": "date-time"}, "review_by": {"type": "string", "format": "date-time"},
    "bank": {"type": "string"}}}
BLOCKED_URLS_200 = {
    "description": "The list, streamed, in the format asked for.",
    "headers": {"ETag": {"description": "Send it back as If-None-Match: 304 while the list is unchanged.", "schema": {"type": "string"}},
                "Last-Modified": {"description": "When the list last changed.", "schema": {"type": "string"}}},
    "content": {
        "application/json": {"schema": {"type": "object", "required": ["generated_at", "entries", "count"], "properties": {
            "generated_at": {"type": "string", "format": "date-time"}, "entries": {"type": "array", "items": _ENTRY},
            "count": {"type": "integer"}}}},
        "text/csv": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string", "description": "domains: one host per line; hosts: '0.0.0.0 host' lines."}},
    },
}


@router.get("/lists/blocked-urls", tags=["lists"], response={200: None, 304: None, 422: Problem},
            summary="The hub's list of confirmed harmful addresses, for network filters",
            description="Needs the `lists:read` scope. Streamed; answer 304 to `If-None-Match` with the last `ETag`. "
                        "`json` (default) and `csv` give every entry with its source and review date; `domains` and "
                        "`hosts` give the hosts a DNS filter blocks (domain entries, and the host of a URL only when the "
                        "URL is a site's front page). See docs/api.md.",
            openapi_extra={"responses": {200: BLOCKED_URLS_200, 304: {"description": "Not modified since the ETag sent."}}})
def blocked_urls(request, format: Literal[urllist.FORMATS] = Query("json", description="json, csv, domains or hosts.")):  # type: ignore[valid-type]  # noqa: A002
    key = request.auth
    keys.require_scope(key, Scope.LISTS_READ)
    # Over the API only lists the hub may share leave it; a sandbox key reads the sandbox list.
    options = {"sandbox": key.sandbox, "shared_only": True}
    version, changed = services.published_version(**options)
    etag = f'"{version}-{format}"'
    last_modified = int(changed.timestamp()) if changed else None
    response = get_conditional_response(request, etag=etag, last_modified=last_modified)
    if response is None:
        with transaction.atomic():
            record("url_list.downloaded", actor=f"provider:{key.provider_id}", obj=key.provider, unit=key.provider.unit,
                   request=request, key=key.prefix, format=format, sandbox=key.sandbox, version=version)
        response = StreamingHttpResponse(urllist.write(format, **options), content_type=urllist.CONTENT_TYPES[format])
    response["ETag"] = etag
    if last_modified is not None:
        response["Last-Modified"] = http_date(last_modified)
    response["Cache-Control"] = "private, no-cache"
    return response
