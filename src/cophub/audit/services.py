"""Writing and verifying the audit log.

`record()` must be called inside the transaction that makes the change it
describes, so the change and its audit row commit (or vanish) together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _canonical(event: AuditEvent) -> bytes:
    body = {
        "seq": event.seq,
        "at": event.at.isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "unit_id": event.unit_id,
        "ip": event.ip,
        "data": event.data,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def compute_digest(prev_digest: str, event: AuditEvent) -> str:
    return hashlib.sha256(prev_digest.encode() + b"\n" + _canonical(event)).hexdigest()


def _actor_fields(actor) -> tuple[int | None, str]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None, str(actor) if isinstance(actor, str) else ""
    return actor.pk, actor.get_username()


def record(action: str, *, actor=None, obj=None, object_type: str = "", object_id="", unit=None, request=None, **data) -> AuditEvent:
    """Append one event to the chain (inside the caller's transaction)."""
    actor_id, actor_label = _actor_fields(actor)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    ip = ""
    if request is not None:
        from cophub.core.ratelimits import client_ip

        ip = client_ip(request)
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(id=1)
        event = AuditEvent(
            seq=head.seq + 1,
            at=timezone.now(),
            actor_id=actor_id,
            actor=actor_label[:150],
            action=action,
            object_type=object_type,
            object_id=str(object_id or ""),
            unit_id=getattr(unit, "pk", unit),
            ip=ip,
            data=json.loads(json.dumps(data, default=str)),
            prev_digest=head.digest,
        )
        event.digest = compute_digest(head.digest, event)
        event.save(force_insert=True)
        head.seq, head.digest = event.seq, event.digest
        head.save(update_fields=["seq", "digest"])
    return event


@dataclass
class Verification:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""


def verify(batch_size: int = 2000) -> Verification:
    """Walk the chain from the start; report the first broken link."""
    prev_digest = GENESIS
    expected_seq = 1
    checked = 0
    last_seq = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size):
        if event.seq != expected_seq:
            return Verification(False, checked, expected_seq, f"row {expected_seq} is missing")
        if event.prev_digest != prev_digest:
            return Verification(False, checked, event.seq, "link to the previous row does not match")
        if compute_digest(prev_digest, event) != event.digest:
            return Verification(False, checked, event.seq, "row content does not match its digest")
        prev_digest = event.digest
        expected_seq += 1
        last_seq = event.seq
        checked += 1
    head = AuditHead.objects.filter(id=1).first()
    head_seq, head_digest = (head.seq, head.digest) if head else (0, GENESIS)
    if head_seq != last_seq or head_digest != prev_digest:
        return Verification(False, checked, last_seq + 1, "rows after the last one found are missing (head does not match)")
    return Verification(True, checked)
