"""Federation: forward a case to an upstream hub through its provider API, and hear back by webhook.

The downstream hub is a provider of the upstream one: it holds a live API key
issued by the upstream and a webhook endpoint registered there. Forwarding
a case writes a `Forwarding` row and enqueues the sending task in the same
transaction (outbox); the task files the report with `cophub.client`, using
Idempotency-Keys derived from the forwarding's stable key, so a retried task
never files twice upstream. The upstream's `report.state_changed` events
arrive at `/federation/webhook/<upstream id>`, are verified, acted on once
per event id, and recorded on the case's timeline.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cophub.audit.services import record

from .models import Forwarding, ForwardingState, ReceivedEvent, Upstream

logger = logging.getLogger(__name__)

SEAL_AAD = b"cophub/federation/v1/"
MAX_ATTEMPTS = 12
INCIDENT_TYPES = {"csam", "grooming", "sextortion", "obscene_to_child", "trafficking", "cyberbullying", "privacy_disclosure",
                  "self_harm", "violent_content", "scam", "misleading_content", "other"}
AGE_BANDS = {"under_9", "9_12", "13_15", "16_17", "adult", "unsure"}
STEPS = {"received", "working", "referred", "done", "withdrawn"}


# --- Sealed secrets ------------------------------------------------------------------------


def _seal_key() -> bytes:
    from cophub.evidence.vault import master_key

    return master_key().derive(b"federation-secret")


def seal(value: str, name: str, purpose: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_seal_key()).encrypt(nonce, value.encode(), SEAL_AAD + f"{purpose}/{name}".encode())


def unseal(sealed, name: str, purpose: str) -> str:
    sealed = bytes(sealed)
    return AESGCM(_seal_key()).decrypt(sealed[:12], sealed[12:], SEAL_AAD + f"{purpose}/{name}".encode()).decode()


def api_key(upstream: Upstream) -> str:
    return unseal(upstream.sealed_key, upstream.name, "api-key")


def webhook_secret(upstream: Upstream) -> str | None:
    if not upstream.sealed_webhook_secret:
        return None
    return unseal(upstream.sealed_webhook_secret, upstream.name, "webhook-secret")


def client_for(upstream: Upstream, retries: int = 3):
    from cophub.client import CophubClient

    return CophubClient(upstream.base_url, api_key(upstream), timeout=30, retries=retries)


# --- Connecting -----------------------------------------------------------------------------


def receiver_url(upstream: Upstream, public_url: str) -> str:
    from django.urls import reverse

    return public_url.rstrip("/") + reverse("federation:webhook", args=[upstream.pk])


def connect(name: str, url: str, key: str, public_url: str | None = None, *, register_webhook: bool = True, actor=None) -> Upstream:
    """Store (or replace) an upstream hub and register this hub's receiver there for its state changes.

    The hub also goes into the referral directory as a target with a hub channel.
    """
    from cophub.referrals.services import hub_target_for

    public_url = public_url or settings.COPHUB_PUBLIC_URL
    with transaction.atomic():
        upstream, created = Upstream.objects.get_or_create(name=name, defaults={"base_url": url, "sealed_key": b""})
        upstream.base_url = url
        upstream.sealed_key = seal(key, name, "api-key")
        upstream.active = True
        upstream.save()
        record("federation.connected", actor=actor, obj=upstream, url=url, created=created)
        hub_target_for(upstream)
    if register_webhook:
        if not public_url:
            raise ValueError("COPHUB_PUBLIC_URL (or --public-url) is needed to register the webhook receiver")
        answer = client_for(upstream)._json(
            "POST", "/webhooks", {"url": receiver_url(upstream, public_url), "event_types": ["report.state_changed"]},
            f"federation-webhook-{upstream.pk}-{uuid.uuid4()}")
        with transaction.atomic():
            upstream.sealed_webhook_secret = seal(answer.body["secret"], name, "webhook-secret")
            upstream.webhook_id = answer.body["id"]
            upstream.save(update_fields=["sealed_webhook_secret", "webhook_id"])
            record("federation.webhook_registered", actor=actor, obj=upstream, webhook=upstream.webhook_id)
    return upstream


# --- Forwarding -----------------------------------------------------------------------------


def upstreams_for(case):
    """Active upstream hubs the case has not been forwarded to yet."""
    return Upstream.objects.filter(active=True).exclude(forwardings__case=case)


def forwardings_of(case):
    return Forwarding.objects.filter(case=case).select_related("upstream")


def forward(case, upstream: Upstream, actor) -> Forwarding:
    """Queue `case` for the upstream hub; once per (case, upstream). Needs `case.transition`."""
    from cophub.cases import services as cases

    cases.require(actor, "case.transition", case)
    if not upstream.active:
        raise ValueError("the upstream hub is not active")
    with transaction.atomic():
        existing = Forwarding.objects.filter(case=case, upstream=upstream).first()
        if existing is not None:
            return existing
        forwarding = Forwarding.objects.create(case=case, upstream=upstream, idempotency_key=uuid.uuid4().hex)
        cases.record_forwarded(case, upstream.name, actor)
        record("federation.forward", actor=actor, obj=case, unit=case.unit, upstream=upstream.name, forwarding=forwarding.pk)
        _enqueue(forwarding.pk)
    return forwarding


def _enqueue(forwarding_id: int, run_after: datetime | None = None) -> None:
    """With the change (core.outbox.enqueue)."""
    from cophub.core.outbox import enqueue

    from .tasks import send_forwarding

    enqueue(send_forwarding, forwarding_id, run_after=run_after)


def report_body(case) -> dict:
    """The upstream report for a case: what the provider API takes, from the case's first submission."""
    from cophub.cases.services import submissions_of

    submission = submissions_of(case).first()
    body: dict = {
        "incident_type": case.category if case.category in INCIDENT_TYPES else "other",
        "incident_time": (submission.received_at if submission else case.created_at).isoformat(),
    }
    lines = [f"Forwarded by hub {settings.COPHUB_PUBLIC_URL or ''} case {case.reference}".replace("  ", " ")]
    if submission is not None:
        if submission.description:
            lines.append(submission.description)
        if submission.where_url.startswith(("http://", "https://")) or submission.where_app:
            detail = {"kind": "other"}
            if submission.where_url.startswith(("http://", "https://")):
                detail["url"] = submission.where_url[:4000]
            if submission.where_app:
                detail["app"] = submission.where_app[:200]
            body["internet_details"] = [detail]
        if submission.reported_account:
            body["reported_user"] = {"username": submission.reported_account[:200]}
        victim = {}
        if submission.age_band in AGE_BANDS:
            victim["age_band"] = submission.age_band
        if submission.school_id:
            victim["school"] = submission.school.name[:200]
        if victim:
            body["victim"] = victim
    body["summary"] = "\n\n".join(lines)[:20000]
    if case.priority == "P1":
        body["escalate_reason"] = "Priority P1 (immediate danger) at the forwarding hub"
    return body


def _files(case):
    from cophub.cases.services import staff_files_of, submissions_of
    from cophub.intake.models import SubmissionFile

    seen = set()
    files = SubmissionFile.objects.filter(submission__in=submissions_of(case).values("pk")).select_related("blob").order_by("pk")
    for item in [*files, *staff_files_of(case)]:
        if item.blob.sha256 not in seen:
            seen.add(item.blob.sha256)
            yield item.blob, item.original_name or f"{item.blob.sha256[:12]}"


class FilingError(Exception):
    """Filing upstream failed; `retry` tells a passing fault (network, 5xx, 429) from a refusal."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


def file_report(upstream: Upstream, case, key: str, on_opened=None, report_id: str = "") -> tuple[str, str]:
    """File `case` at the upstream hub (open, files, finish); returns (report id, public step).

    Every call uses Idempotency-Keys derived from `key`, so running it again
    after a crash or a lost answer files nothing twice upstream. `on_opened`
    is called with the report id as soon as the upstream has one.
    """
    from cophub.client import CophubError
    from cophub.evidence.services import iter_clear

    client = client_for(upstream)
    try:
        if not report_id:  # known from an earlier try: not opened again
            report_id = client.open_report(idempotency_key=f"{key}:open", **report_body(case)).id
            if on_opened is not None:
                on_opened(report_id)
        for blob, name in _files(case):
            file_key = f"{key}:file:{blob.sha256}"
            try:
                client.upload_file(report_id, b"".join(iter_clear(blob)), filename=name, content_type=blob.mime,
                                   metadata={"original_name": name[:200]}, idempotency_key=file_key)
            except CophubError as error:
                if error.code != "file.refused":
                    raise
                client.declare_file(report_id, sha256=blob.sha256, md5=blob.md5, metadata={"original_name": name[:200]},
                                    idempotency_key=file_key + ":declared")
        try:
            report = client.finish(report_id, idempotency_key=f"{key}:finish")
            step = report.case.step if report.case else "received"
        except CophubError as error:
            if error.code != "report.already_finished":
                raise
            step = "received"
    except CophubError as error:
        raise FilingError(f"{error.status} {error.code}: {error.detail}"[:1000],
                          retry=error.status in (0, 409, 429) or error.status >= 500) from error
    except Exception as error:  # noqa: BLE001 - a fault on this side; retried like a network error
        logger.exception("filing case %s upstream at %s failed", case.pk, upstream.name)
        raise FilingError(f"{type(error).__name__}: {error}"[:1000], retry=True) from error
    return report_id, step


def track(case, upstream: Upstream, report_id: str, key: str, step: str = "received") -> Forwarding:
    """Remember a report filed upstream so the upstream's state changes reach the case (sent state)."""
    forwarding, _created = Forwarding.objects.get_or_create(
        case=case, upstream=upstream,
        defaults={"idempotency_key": key, "state": ForwardingState.SENT, "upstream_report_id": report_id, "upstream_step": step})
    return forwarding


def send(forwarding_id: int) -> str:
    """File the case upstream (open, files, finish); safe to run again at any point."""
    forwarding = Forwarding.objects.select_related("upstream", "case").get(pk=forwarding_id)
    if forwarding.state != ForwardingState.PENDING:
        return str(forwarding.state)

    def opened(report_id: str) -> None:
        Forwarding.objects.filter(pk=forwarding.pk).update(upstream_report_id=report_id)

    try:
        report_id, step = file_report(forwarding.upstream, forwarding.case, forwarding.idempotency_key, on_opened=opened,
                                      report_id=forwarding.upstream_report_id)
    except FilingError as error:
        return _failed(forwarding, str(error), retry=error.retry)
    with transaction.atomic():
        forwarding = Forwarding.objects.select_for_update().get(pk=forwarding.pk)
        forwarding.state = ForwardingState.SENT
        forwarding.attempts += 1
        forwarding.last_error = ""
        if not forwarding.upstream_step:
            forwarding.upstream_step = step
        forwarding.save()
        record("federation.sent", obj=forwarding.case, unit=forwarding.case.unit, upstream=forwarding.upstream.name, report=report_id)
    return "sent"


def _failed(forwarding: Forwarding, error: str, retry: bool) -> str:
    from cophub.providers.webhooks import backoff_seconds

    with transaction.atomic():
        forwarding = Forwarding.objects.select_for_update().get(pk=forwarding.pk)
        forwarding.attempts += 1
        forwarding.last_error = error
        if retry and forwarding.attempts < MAX_ATTEMPTS:
            forwarding.save()
            _enqueue(forwarding.pk, run_after=timezone.now() + timedelta(seconds=backoff_seconds(forwarding.attempts)))
            return "retry"
        forwarding.state = ForwardingState.FAILED
        forwarding.save()
        record("federation.failed", obj=forwarding.case, unit=forwarding.case.unit, upstream=forwarding.upstream.name, error=error)
    return "failed"


# --- Webhooks from the upstream ---------------------------------------------------------------


def receive_event(upstream: Upstream, headers, body: bytes) -> int:
    """Handle one signed webhook POST; returns the HTTP status to answer."""
    from cophub.cases.services import record_upstream_state
    from cophub.referrals.services import upstream_step_changed
    from cophub.providers.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature

    secret = webhook_secret(upstream)
    if not secret or not verify_signature(secret, headers.get(SIGNATURE_HEADER, ""), body):
        return 401
    try:
        event = json.loads(body)
        event_id = str(event["id"])
        data = event.get("data") or {}
    except (ValueError, KeyError, TypeError):
        return 400
    if headers.get(EVENT_ID_HEADER, event_id) != event_id or len(event_id) > 64:
        return 400
    try:
        with transaction.atomic():
            ReceivedEvent.objects.create(upstream=upstream, event_id=event_id)
            if event.get("type") != "report.state_changed" or data.get("state") not in STEPS:
                return 200
            forwarding = (Forwarding.objects.select_for_update().select_related("case")
                          .filter(upstream=upstream, upstream_report_id=str(data.get("report_id", ""))).first())
            if forwarding is None:
                return 200
            at = parse_datetime(str(event.get("created_at", ""))) or timezone.now()
            if forwarding.upstream_step_at and at < forwarding.upstream_step_at:
                return 200  # an older event arriving late: the newer step stands
            forwarding.upstream_step = data["state"]
            forwarding.upstream_step_at = at
            forwarding.save(update_fields=["upstream_step", "upstream_step_at", "updated_at"])
            record_upstream_state(forwarding.case, upstream.name, data["state"], event=event_id)
            upstream_step_changed(upstream, forwarding.upstream_report_id, data["state"])
    except IntegrityError:
        return 200  # seen before: a replay or a retry after a lost answer
    return 200


