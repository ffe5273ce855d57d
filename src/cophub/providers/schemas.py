"""Request and response shapes of the provider API (OpenAPI comes from these)."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from typing import Literal

from django.conf import settings
from django.utils import timezone
from ninja import Schema
from pydantic import BaseModel, Field, StrictBool, field_validator, model_validator

from cophub.core.categories import AGE_BANDS, CODES

IncidentType = Literal[tuple(CODES)]  # type: ignore[valid-type]
AgeBand = Literal[tuple(code for code, _ in AGE_BANDS)]  # type: ignore[valid-type]
ReportAnnotation = Literal["sextortion", "minor_to_minor", "livestream", "trafficking_indicators", "self_generated",
                           "grooming_indicators", "violent_extremism", "physical_danger", "ai_generated"]
FileAnnotation = Literal["animated", "ai_generated", "self_generated", "livestream_capture", "screenshot", "physical_harm"]
Grade = Literal["A1", "A2", "B1", "B2"]
Text = Field(default="", max_length=20_000)
MAX_INLINE_FILES = 10  # hash-only files declared in the report body itself


def storable(value):
    """Text as the databases can keep it, recursively through lists and objects.

    JSON may carry NUL characters and unpaired surrogate escapes ("\\udaa3");
    PostgreSQL refuses both (text and jsonb), so they would fail the whole
    report. NULs are dropped (as the web forms do) and lone surrogates become
    U+FFFD. Found by schemathesis on PostgreSQL.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class In(BaseModel):
    """A request body. Plain pydantic, not ninja's Schema: that one reads any object by its attributes,
    so a list or a string stood in for a nested object (found by schemathesis' negative_data_rejection)."""

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data):
        return storable(data)


class InternetDetail(In):
    kind: Literal["web_page", "chat", "game", "email", "social", "other"]
    url: str = Field(default="", max_length=4000)
    app: str = Field(default="", max_length=200)
    user_ids: list[str] = Field(default_factory=list, max_length=50)
    description: str = Text


class ReportedUser(In):
    username: str = Field(default="", max_length=300)
    user_id: str = Field(default="", max_length=300)
    display_name: str = Field(default="", max_length=300)
    profile_url: str = Field(default="", max_length=4000)
    email: str = Field(default="", max_length=300)
    phone: str = Field(default="", max_length=60)


class Victim(In):
    age_band: AgeBand | None = None
    school: str = Field(default="", max_length=300)


class ReporterContact(In):
    name: str = Field(default="", max_length=120)
    email: str = Field(default="", max_length=254)
    phone: str = Field(default="", max_length=40)


class FileMetadata(In):
    original_name: str = Field(default="", max_length=200)
    viewed_by_provider: StrictBool | None = None
    publicly_available: StrictBool | None = None
    annotations: list[FileAnnotation] = Field(default_factory=list, max_length=20)
    grade: Grade | None = None
    original_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    original_md5: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{32}$")
    exif: dict | None = None


class HashOnlyFileIn(FileMetadata):
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    md5: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{32}$")

    @model_validator(mode="after")
    def _one_hash(self):
        if not self.sha256 and not self.md5:
            raise ValueError("declare at least one of sha256 and md5")
        return self


class ReportIn(In):
    incident_type: IncidentType = Field(description="A category code of the hub (ARCHITECTURE.md).")
    incident_time: datetime = Field(description="ISO 8601, with a time zone; a time without one is read as Vietnam time (UTC+07:00).")
    summary: str = Text
    escalate_reason: str = Field(default="", max_length=5000, description="Non-empty means urgent: the case opens at P1.")
    annotations: list[ReportAnnotation] = Field(default_factory=list, max_length=20)
    internet_details: list[InternetDetail] = Field(default_factory=list, max_length=50)
    reported_user: ReportedUser | None = None
    victim: Victim | None = None
    reporter_contact: ReporterContact | None = None
    files: list[HashOnlyFileIn] = Field(default_factory=list, max_length=MAX_INLINE_FILES,
                                        description="Files declared by their hashes alone (at least one of sha256 and md5 each), "
                                                    "as POST /reports/{id}/files with JSON; stored with the report in one transaction.")
    finish: StrictBool = Field(default=False, description="File the report at once (a one-call report).")

    @field_validator("incident_time", mode="before")
    @classmethod
    def _iso_text(cls, value):
        # pydantic would also read a number as Unix time; the API promises (and documents) ISO 8601 text.
        if not isinstance(value, (str, datetime)):
            raise ValueError("incident_time must be an ISO 8601 string")
        return value

    @field_validator("incident_time", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # A provider in Vietnam writing local time without an offset means Vietnam time, not UTC.
        if timezone.is_naive(value):
            return timezone.make_aware(value, zoneinfo.ZoneInfo(settings.TIME_ZONE))
        return value

    @field_validator("annotations")
    @classmethod
    def _distinct(cls, value):
        return list(dict.fromkeys(value))


class FileOut(Schema):
    id: str
    sha256: str
    md5: str
    size: int | None
    original_name: str
    hash_only: bool
    metadata: dict


class CaseStatusOut(Schema):
    step: str = Field(description="received, working, referred, done or withdrawn")
    text: str
    updated_at: datetime


class ReportOut(Schema):
    id: str
    state: Literal["draft", "finished", "retracted", "expired"]
    sandbox: bool
    incident_type: str
    incident_time: datetime
    created_at: datetime
    expires_at: datetime | None
    finished_at: datetime | None
    retracted_at: datetime | None
    files: list[FileOut]
    case: CaseStatusOut | None
    takedown_requests: list[dict]
    links: dict[str, str]


class ProblemError(Schema):
    loc: list[str | int]
    msg: str
    type: str


class Problem(Schema):
    """An RFC 9457 problem document (application/problem+json); a code may add members (reason, required_scope)."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="The stable machine code (docs/api.md, Errors).")
    instance: str | None = None
    errors: list[ProblemError] | None = Field(default=None, description="With validation.error: what is wrong, field by field.")


class BatchIn(In):
    reports: list[dict] = Field(min_length=1, max_length=100, description="Each item is a ReportIn; items are validated one by one.")


class BatchItemOut(Schema):
    index: int
    status: int
    report: ReportOut | None = None
    problem: Problem | None = None


class BatchOut(Schema):
    succeeded: int
    failed: int
    results: list[BatchItemOut]


WebhookEventType = Literal["report.state_changed", "takedown.requested"]


class WebhookIn(In):
    url: str = Field(max_length=2000, description="https:// address the hub POSTs events to.")
    event_types: list[WebhookEventType] = Field(default_factory=lambda: ["report.state_changed", "takedown.requested"], min_length=1, max_length=10)


class WebhookOut(Schema):
    id: str
    url: str
    event_types: list[str]
    active: bool
    sandbox: bool
    created_at: datetime
    secret: str | None = Field(default=None, description="The signing secret; in the registration answer only.")
    links: dict[str, str] = Field(description="`self`: the endpoint's address; DELETE it to stop deliveries.")


class WebhookList(Schema):
    webhooks: list[WebhookOut]


class DeliveryOut(Schema):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    last_status: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None


class DeliveryPage(Schema):
    deliveries: list[DeliveryOut]
    next_cursor: str | None
