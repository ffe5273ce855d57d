"""Signed webhooks to providers: endpoints, events, the delivery outbox, and a reference receiver.

An event and one WebhookDelivery per subscribed endpoint are written in the
transaction of the change they announce, and the delivery task is enqueued
in that same transaction (the database task backend makes that atomic), so
an event exists exactly when its change does. A sender claims a delivery
with a token before POSTing and records the answer only while it still holds
the claim: a delivery is never sent twice at once, and a task that runs again
after success stops. Retries back off exponentially with jitter; after
COPHUB_WEBHOOK_MAX_ATTEMPTS the delivery is `failed` and stays in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cophub.audit.services import record
from cophub.core import outbox as core_outbox

from .models import ApiKey, DeliveryState, EventType, Provider, ProviderReport, ReportState, WebhookDelivery, WebhookEndpoint, WebhookEvent
from .problems import ApiProblem

SIGNATURE_HEADER = "Cophub-Signature"
EVENT_ID_HEADER = "Cophub-Event-Id"
EVENT_TYPE_HEADER = "Cophub-Event-Type"
TOLERANCE_SECONDS = 300
TIMEOUT_SECONDS = 5
# Longer than one attempt can take (connect + read timeouts), so a live
# sender never loses its claim mid-request.
CLAIM_SECONDS = 60
MAX_RESPONSE_BYTES = 64 * 1024
SECRET_AAD = b"cophub/providers/webhook-secret/v1"


def max_attempts() -> int:
    return int(settings.COPHUB_WEBHOOK_MAX_ATTEMPTS)


def backoff_seconds(attempt: int) -> float:
    """Wait after failed attempt `attempt` (1-based): base·factor^(n−1), capped, ±20 % jitter.

    Jitter spreads the retries of many deliveries that failed together (one
    receiver outage) so they do not all come back in the same second.
    """
    base = float(settings.COPHUB_WEBHOOK_BACKOFF_BASE)
    factor = float(settings.COPHUB_WEBHOOK_BACKOFF_FACTOR)
    cap = float(settings.COPHUB_WEBHOOK_BACKOFF_MAX)
    delay = min(cap, base * factor ** (attempt - 1))
    return min(cap, delay * random.uniform(0.8, 1.2))


def _public_id(kind: str) -> str:
    return f"{kind}_{secrets.token_urlsafe(16)}"


# --- Endpoints ------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """HTTPS only; plain HTTP to a loopback address only when the setting allows it (tests, local work)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise _url_problem(_("The URL must be an https:// address without credentials."))
    loopback = host == "localhost" or _ip_is(host, "is_loopback")
    if parts.scheme == "http" and not (loopback and settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK):
        raise _url_problem(_("The URL must use https://."))
    # A literal private address would make the hub POST into its own network.
    if not loopback and any(_ip_is(host, flag) for flag in ("is_private", "is_link_local", "is_reserved", "is_multicast", "is_unspecified")):
        raise _url_problem(_("The URL must not point at a private network address."))
    if loopback and not settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK:
        raise _url_problem(_("The URL must not point at the hub itself."))
    return url


def _ip_is(host: str, flag: str) -> bool:
    try:
        return getattr(ipaddress.ip_address(host.strip("[]")), flag)
    except ValueError:
        return False


def _url_problem(message) -> ApiProblem:
    return ApiProblem("validation.error", message, errors=[{"loc": ["url"], "msg": str(message), "type": "value_error"}])


def _secret_key() -> bytes:
    from cophub.evidence.vault import master_key

    return master_key().derive(b"webhook-secret")


def _seal(secret: str, endpoint_id: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_secret_key()).encrypt(nonce, secret.encode(), SECRET_AAD + endpoint_id.encode())


def endpoint_secret(endpoint: WebhookEndpoint) -> str:
    sealed = bytes(endpoint.sealed_secret)
    return AESGCM(_secret_key()).decrypt(sealed[:12], sealed[12:], SECRET_AAD + endpoint.public_id.encode()).decode()


def register_endpoint(key: ApiKey, url: str, event_types: list[str]) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, which is returned this once."""
    check_url(url)
    secret = "whsec_" + secrets.token_urlsafe(32)
    public_id = _public_id("whk")
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            public_id=public_id, provider=key.provider, sandbox=key.sandbox, url=url,
            sealed_secret=_seal(secret, public_id), event_types=list(dict.fromkeys(event_types)))
        record("provider_webhook.registered", actor=f"provider:{key.provider.pk}", obj=endpoint, unit=key.provider.unit,
               url=url, events=endpoint.event_types, sandbox=key.sandbox)
    return endpoint, secret


def endpoints_of(key: ApiKey):
    return WebhookEndpoint.objects.filter(provider=key.provider, sandbox=key.sandbox, deleted_at=None)


def delete_endpoint(key: ApiKey, public_id: str) -> None:
    """The endpoint gets nothing more: its pending deliveries are cancelled, its log is kept."""
    with transaction.atomic():
        endpoint = endpoints_of(key).select_for_update().filter(public_id=public_id).first()
        if endpoint is None:
            raise ApiProblem("webhook.not_found")
        endpoint.active = False
        endpoint.deleted_at = timezone.now()
        endpoint.save(update_fields=["active", "deleted_at"])
        endpoint.deliveries.filter(state=DeliveryState.PENDING).update(state=DeliveryState.CANCELLED, next_attempt_at=None)
        record("provider_webhook.deleted", actor=f"provider:{key.provider.pk}", obj=endpoint, unit=key.provider.unit)


def deliveries_of(key: ApiKey):
    return WebhookDelivery.objects.filter(endpoint__provider=key.provider, endpoint__sandbox=key.sandbox).select_related("event", "endpoint")


# --- Events ------------------------------------------------------------------------------------


def emit(provider: Provider, event_type: str, data: dict, *, sandbox: bool = False) -> WebhookEvent:
    """Record an event and its deliveries; call inside the transaction of the change it announces."""
    EventType(event_type)  # refuses an event type the schema does not define
    event = WebhookEvent.objects.create(public_id=_public_id("evt"), provider=provider, sandbox=sandbox, type=event_type, data=data)
    endpoints = WebhookEndpoint.objects.filter(provider=provider, sandbox=sandbox, active=True, deleted_at=None)
    for endpoint in endpoints:
        if event_type in endpoint.event_types:
            delivery = WebhookDelivery.objects.create(public_id=_public_id("dlv"), event=event, endpoint=endpoint, next_attempt_at=event.created_at)
            _enqueue(delivery.pk)
    return event


def _enqueue(delivery_id: int, run_after: datetime | None = None) -> None:
    """Enqueue the sender with the change (core.outbox.enqueue): never a POST for a change that may still roll back."""
    from .tasks import deliver_webhook

    core_outbox.enqueue(deliver_webhook, delivery_id, run_after=run_after)


def case_changed(case) -> int:
    """Announce the new public step to the providers whose finished reports are behind `case`.

    Called by cases.services inside the transaction of the change. Follows
    merges: the reports of every case merged into the surviving one share
    its step. Returns the number of events recorded.
    """
    from cophub.cases.services import PUBLIC_STATES, effective_case, submissions_of

    # Read again: the merge target an operation holds may be a stale copy.
    surviving = type(case).objects.get(pk=effective_case(case).pk)
    step = PUBLIC_STATES.get(surviving.state, PUBLIC_STATES["new"])[0]
    submissions = submissions_of(surviving).values("pk")
    reports = (ProviderReport.objects.select_for_update(of=("self",)).select_related("provider")
               .filter(submission__in=submissions, state=ReportState.FINISHED).exclude(notified_step=step))
    count = 0
    for report in reports:
        report.notified_step = step
        report.save(update_fields=["notified_step"])
        emit(report.provider, EventType.REPORT_STATE_CHANGED, {"report_id": report.public_id, "state": step}, sandbox=report.sandbox)
        count += 1
    return count


def event_document(event: WebhookEvent) -> dict:
    return {"id": event.public_id, "type": event.type, "created_at": event.created_at.isoformat(), "data": event.data}


def event_body(event: WebhookEvent) -> bytes:
    # Built the same way on every attempt, so a retry sends the same bytes.
    return json.dumps(event_document(event), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


# --- Signing and the reference receiver ---------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, now: float | None = None, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Reference receiver check: a v1 HMAC-SHA256 of "t.body" under `secret`, with t within `tolerance` seconds.

    Compares in constant time and accepts any of several v1 values (a hub
    may sign with two secrets while one is being replaced). Receivers should
    also remember the Cophub-Event-Id of accepted events and drop repeats.
    """
    fields = [part.split("=", 1) for part in (header or "").split(",") if "=" in part]
    stamps = [value for name, value in fields if name.strip() == "t"]
    candidates = [value.strip() for name, value in fields if name.strip() == "v1"]
    if len(stamps) != 1 or not candidates or not stamps[0].strip().isdigit():
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# --- Delivery --------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None
    error: str = ""
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """One POST; redirects are not followed (http.client never does), timeouts of 5 s."""
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = cls(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, body=response.read(MAX_RESPONSE_BYTES))
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        connection.close()


def _claim(delivery_id: int, now: datetime) -> str | None:
    """Take the delivery for one attempt; None when it is not pending, not due, or held by another sender."""
    return core_outbox.claim(WebhookDelivery, delivery_id, now, pending=DeliveryState.PENDING, seconds=CLAIM_SECONDS)


def attempt(delivery_id: int, now: datetime | None = None) -> str:
    """Send one delivery if it is due and free; returns what happened (for logs and tests)."""
    now = now or timezone.now()
    token = _claim(delivery_id, now)
    if token is None:
        return _why_not(delivery_id, now)
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    if not delivery.endpoint.active or delivery.endpoint.deleted_at:
        WebhookDelivery.objects.filter(pk=delivery_id, claim_token=token).update(state=DeliveryState.CANCELLED, claim_token="", next_attempt_at=None)
        return DeliveryState.CANCELLED.value
    answer = post(delivery.endpoint.url, event_body(delivery.event), _headers(delivery))
    return _record(delivery, token, answer, now)


def _headers(delivery: WebhookDelivery) -> dict[str, str]:
    body = event_body(delivery.event)
    # Signed at send time, not at event time: the receiver's replay window
    # counts from the attempt, so a retry an hour later is still accepted.
    return {
        "Content-Type": "application/json",
        "User-Agent": "cophub-webhooks/1",
        SIGNATURE_HEADER: sign(endpoint_secret(delivery.endpoint), body, int(time.time())),
        EVENT_ID_HEADER: delivery.event.public_id,
        EVENT_TYPE_HEADER: delivery.event.type,
    }


def _why_not(delivery_id: int, now: datetime) -> str:
    return core_outbox.why_not(WebhookDelivery, delivery_id, now, pending=DeliveryState.PENDING,
                               requeue=lambda run_after: _enqueue(delivery_id, run_after=run_after))


def _record(delivery: WebhookDelivery, token: str, answer: Answer, now: datetime) -> str:
    """Write the attempt's outcome, only if this sender still holds the claim."""
    attempts = delivery.attempts + 1
    changes = {"attempts": attempts, "last_status": answer.status, "last_error": answer.error, "claim_token": "", "claimed_until": None}
    if answer.ok:
        changes.update(state=DeliveryState.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
    elif attempts >= max_attempts():
        changes.update(state=DeliveryState.FAILED, next_attempt_at=None)
    else:
        changes.update(next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)))
    with transaction.atomic():
        if not WebhookDelivery.objects.filter(pk=delivery.pk, claim_token=token).update(**changes):
            return "lost_claim"
        if "state" not in changes:  # still pending: the next attempt is a task of its own
            _enqueue(delivery.pk, run_after=changes["next_attempt_at"])
    return str(changes.get("state", "retry"))


def deliver_due(now: datetime | None = None) -> dict[str, int]:
    """Attempt every pending delivery that is due: recovery when a task was lost, and a test driver."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    due = WebhookDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at", "pk")
    for delivery_id in list(due.values_list("pk", flat=True)):
        outcome = attempt(delivery_id, now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
