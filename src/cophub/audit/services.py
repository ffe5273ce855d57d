"""Writing and verifying the audit log.

`record()` must be called inside the transaction that makes the change it
describes, so the change and its audit row commit (or vanish) together.
"""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import contextmanager
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
    """Append one event to the chain (inside the caller's transaction).

    Inside `batched()` the event is only built here and appended with the
    block's other events when the block ends.
    """
    actor_id, actor_label = _actor_fields(actor)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    ip = ""
    if request is not None:
        from cophub.core.ratelimits import client_ip

        ip = client_ip(request)
    event = AuditEvent(
        actor_id=actor_id,
        actor=actor_label[:150],
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        unit_id=getattr(unit, "pk", unit),
        ip=ip,
        data=json.loads(json.dumps(data, default=str)),
    )
    pending = getattr(_batch, "events", None)
    if pending is not None:
        pending.append(event)
    else:
        _append([event])
    return event


_batch = threading.local()


@contextmanager
def batched():
    """Collect the events recorded in the block; append them together at its end.

    The chain's head row is locked from the first append until COMMIT, and
    every audited write in the hub waits for it. A busy path (a provider
    report writes several rows and events) wraps its work in this, as the
    last thing inside its transaction, so the lock is taken once and only
    for the final statements. Nested blocks join the outermost one; if the
    block raises, its events are dropped with the caller's rollback.
    """
    if getattr(_batch, "events", None) is not None:
        yield
        return
    _batch.events = []
    try:
        yield
        events = _batch.events
    finally:
        _batch.events = None
    if events:
        _append(events)


def _append(events: list[AuditEvent]) -> None:
    # savepoint=False: a failed append must fail the caller's whole
    # transaction anyway, and a savepoint costs two statements per event.
    with transaction.atomic(savepoint=False):
        head, _ = AuditHead.objects.select_for_update().get_or_create(id=1)
        seq, digest = head.seq, head.digest
        now = timezone.now()
        for event in events:
            seq += 1
            event.seq, event.at, event.prev_digest = seq, now, digest
            event.digest = digest = compute_digest(digest, event)
        AuditEvent.objects.bulk_create(events)
        head.seq, head.digest = seq, digest
        head.save(update_fields=["seq", "digest"])


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


def count_by_actor(actions, since, actor_ids=None) -> dict[int, dict[str, int]]:
    """How many events of these actions each user caused since a time: actor id → {action: count}."""
    from django.db.models import Count

    events = AuditEvent.objects.filter(action__in=list(actions), at__gte=since, actor_id__isnull=False)
    if actor_ids is not None:
        events = events.filter(actor_id__in=list(actor_ids))
    counts: dict[int, dict[str, int]] = {}
    for actor_id, action, n in events.values_list("actor_id", "action").annotate(n=Count("pk")).order_by():
        counts.setdefault(actor_id, {})[action] = n
    return counts
