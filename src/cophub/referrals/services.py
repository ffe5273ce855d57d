"""Referral work: the target directory, referring a case, takedown notices, answers, the dead letter.

Every change is written with its case timeline event and audit record in one
transaction; a send is a `Delivery` in the outbox (outbox.py), never a
network call inside the request.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
from datetime import timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cophub.audit.services import record

from . import outbox
from .letters import Letter, render_letter
from .models import (
    Channel,
    ChannelKind,
    Delivery,
    DeliveryState,
    Referral,
    ReferralKind,
    ReferralState,
    Target,
    TargetKind,
)

SNAPSHOT_SCHEMA = "cophub.referral/1"
SECRET_AAD = b"cophub/referrals/channel-secret/v1/"
# States in which a referral still waits for something from the recipient.
OPEN_STATES = (ReferralState.QUEUED, ReferralState.BY_HAND, ReferralState.DELIVERED, ReferralState.ACKNOWLEDGED)
DECISION_830 = ("Căn cứ Quyết định số 830/QĐ-TTg ngày 01/6/2021 của Thủ tướng Chính phủ phê duyệt Chương trình "
                "“Bảo vệ và hỗ trợ trẻ em tương tác lành mạnh, sáng tạo trên môi trường mạng giai đoạn 2021 - 2025”;")
DECREE_147 = ("Căn cứ Nghị định số 147/2024/NĐ-CP ngày 09/11/2024 của Chính phủ về quản lý, cung cấp, sử dụng dịch vụ "
              "Internet và thông tin trên mạng;")


# --- Permissions ------------------------------------------------------------------------------


def may_manage_targets(user) -> bool:
    """The directory is hub-wide, like the hash lists: administrators of a top unit and superusers."""
    from cophub.hashbanks.permissions import may_manage

    return may_manage(user)


def may_refer(user, case) -> bool:
    from cophub.cases import permissions

    return permissions.can(user, "case.transition", case.unit)


def _require_refer(user, case) -> None:
    if not may_refer(user, case):
        raise PermissionDenied


# --- The directory ------------------------------------------------------------------------------


def _secret_key() -> bytes:
    from cophub.evidence.vault import master_key

    return master_key().derive(b"referral-channel-secret")


def _seal(secret: str, channel_id: int) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_secret_key()).encrypt(nonce, secret.encode(), SECRET_AAD + str(channel_id).encode())


def channel_secret(channel: Channel) -> str:
    sealed = bytes(channel.sealed_secret or b"")
    return AESGCM(_secret_key()).decrypt(sealed[:12], sealed[12:], SECRET_AAD + str(channel.pk).encode()).decode()


def active_targets():
    return Target.objects.filter(active=True).prefetch_related("channels")


@transaction.atomic
def save_target(actor, *, target: Target | None = None, **values) -> Target:
    if not may_manage_targets(actor):
        raise PermissionDenied
    TargetKind(values.get("kind", target.kind if target else ""))
    created = target is None
    target = target or Target()
    for name, value in values.items():
        setattr(target, name, value)
    target.full_clean()
    target.save()
    record("referral_target.created" if created else "referral_target.changed", actor=actor, obj=target, **{k: str(v) for k, v in values.items()})
    return target


def check_channel_address(kind: str, address: str) -> str:
    """A clear ValueError for an address the channel cannot use."""
    from cophub.providers.problems import ApiProblem
    from cophub.providers.webhooks import check_url

    address = address.strip()
    if kind == ChannelKind.EMAIL:
        try:
            validate_email(address)
        except ValidationError as error:
            raise ValueError(_("Enter a valid email address.")) from error
    elif kind == ChannelKind.WEBHOOK:
        try:
            check_url(address)
        except ApiProblem as problem:
            raise ValueError(str(problem.detail)) from problem
    return address


@transaction.atomic
def add_channel(target: Target, kind: str, actor, *, address: str = "", upstream=None) -> tuple[Channel, str | None]:
    """A new channel of `target`; a webhook's signing secret is returned this once."""
    if not may_manage_targets(actor):
        raise PermissionDenied
    ChannelKind(kind)
    address = check_channel_address(kind, address)
    if kind == ChannelKind.HUB and upstream is None:
        raise ValueError(_("Choose the upstream hub."))
    position = target.channels.count()
    channel = Channel.objects.create(target=target, kind=kind, address=address if kind in (ChannelKind.EMAIL, ChannelKind.WEBHOOK) else "",
                                     upstream=upstream if kind == ChannelKind.HUB else None, position=position)
    secret = None
    if kind == ChannelKind.WEBHOOK:
        secret = "whsec_" + secrets.token_urlsafe(32)
        channel.sealed_secret = _seal(secret, channel.pk)
        channel.save(update_fields=["sealed_secret"])
    record("referral_channel.added", actor=actor, obj=target, channel=channel.pk, kind=kind, address=address)
    return channel, secret


@transaction.atomic
def set_channel_active(channel: Channel, active: bool, actor) -> Channel:
    if not may_manage_targets(actor):
        raise PermissionDenied
    channel.active = active
    channel.save(update_fields=["active"])
    record("referral_channel.enabled" if active else "referral_channel.disabled", actor=actor, obj=channel.target, channel=channel.pk)
    return channel


def hub_target_for(upstream) -> Target:
    """The directory entry of a connected upstream hub (made when it is connected)."""
    target, _created = Target.objects.get_or_create(name=upstream.name[:200], defaults={"kind": TargetKind.HUB, "addressee": upstream.name})
    if not target.channels.filter(kind=ChannelKind.HUB, upstream=upstream).exists():
        Channel.objects.create(target=target, kind=ChannelKind.HUB, upstream=upstream, position=target.channels.count())
    return target


def targets_for_url(url: str) -> list[Target]:
    """Platforms and hosts whose listed domains cover the URL's host."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower().strip(".")
    found = []
    for target in Target.objects.filter(active=True).exclude(domains=""):
        if any(host == domain or host.endswith("." + domain) for domain in target.domain_list()):
            found.append(target)
    return found


def usable_channels(case=None):
    """Active channels of active targets, in directory order."""
    return Channel.objects.filter(active=True, target__active=True).select_related("target", "upstream").order_by("target__name", "position", "pk")


# --- Referring ------------------------------------------------------------------------------------


def _public_id() -> str:
    return f"ref_{secrets.token_urlsafe(12)}"


def _vi(value) -> str:
    with translation.override("vi"):
        return str(value)


def _issuer(case) -> tuple[str, str]:
    """(parent body, issuing body) for the letter head."""
    name = settings.COPHUB_LETTER_ISSUER or case.unit.name
    parent = case.unit.parent.name if case.unit.parent_id and not settings.COPHUB_LETTER_ISSUER else ""
    return parent, name


def _reports(case) -> list[dict]:
    """What the reports say, for agencies: words, places, accounts and file fingerprints, never the files."""
    from cophub.cases.services import submissions_of
    from cophub.detection.services import urls_for

    rows = []
    for submission in submissions_of(case).prefetch_related("files__blob"):
        rows.append({
            "received_at": submission.received_at.isoformat(),
            "channel": submission.channel,
            "category": submission.category,
            "age_band": submission.age_band,
            "description": submission.description,
            "where_url": submission.where_url,
            "where_app": submission.where_app,
            "reported_account": submission.reported_account,
            "urls": urls_for([submission.pk]),
            "files": [{"sha256": f.blob.sha256, "md5": f.blob.md5, "size": f.blob.size, "mime": f.blob.mime} for f in submission.files.all()],
        })
    return rows


def _letter_text(case, kind: str, target: Target, url: str, note: str, number: str, actor) -> dict:
    """The letter's words (always Vietnamese: an official letter), kept in the snapshot."""
    from cophub.core.categories import BY_CODE

    parent, issuer = _issuer(case)
    category = _vi(BY_CODE[case.category].label) if case.category in BY_CODE else case.category
    if kind == ReferralKind.TAKEDOWN:
        subject = "đề nghị ngăn chặn, gỡ bỏ nội dung gây hại cho trẻ em trên mạng"
        paragraphs = [
            DECREE_147, DECISION_830,
            f"{issuer} đã tiếp nhận tin báo về nội dung có dấu hiệu “{category.lower()}” gây hại cho trẻ em tại địa chỉ nêu dưới đây "
            f"(mã vụ việc {case.reference}).",
            f"{issuer} đề nghị Quý đơn vị ngăn chặn, gỡ bỏ nội dung này trong thời hạn {settings.COPHUB_TAKEDOWN_LEGAL_HOURS} giờ kể từ khi "
            "nhận được văn bản và phản hồi kết quả xử lý. Nội dung sẽ được kiểm tra lại định kỳ; văn bản được gửi nhắc lại "
            f"sau mỗi {settings.COPHUB_TAKEDOWN_RESEND_HOURS} giờ cho đến khi nội dung được gỡ bỏ.",
        ]
    else:
        subject = f"chuyển thông tin vụ việc {case.reference} liên quan đến trẻ em trên môi trường mạng"
        paragraphs = [
            DECISION_830,
            f"{issuer} đã tiếp nhận tin báo về vụ việc có dấu hiệu “{category.lower()}” liên quan đến trẻ em trên môi trường mạng "
            f"(mã vụ việc {case.reference}). {issuer} chuyển thông tin vụ việc đến Quý cơ quan để xem xét, xử lý theo thẩm quyền.",
            "Tệp dữ liệu kèm theo (định dạng JSON) chứa đầy đủ nội dung tin báo. Hình ảnh, video làm chứng cứ được lưu giữ an toàn, "
            "chỉ ghi dấu vân tay tệp (SHA-256, MD5) trong văn bản này và được cung cấp theo yêu cầu của cơ quan có thẩm quyền.",
        ]
    if note:
        paragraphs.append(note)
    paragraphs.append(f"Đề nghị Quý cơ quan phản hồi, ghi rõ số văn bản {number} hoặc mã tham chiếu của văn bản này.")
    facts = [("Mã vụ việc", case.reference), ("Loại vụ việc", category), ("Mức ưu tiên", case.priority),
             ("Thời điểm tiếp nhận", timezone.localtime(case.created_at).strftime("%H:%M %d/%m/%Y"))]
    if url:
        facts.append(("Địa chỉ nội dung", url))
    signer = (actor.get_full_name() or actor.get_username()) if actor else ""
    return {
        "issuer_parent": parent.upper(), "issuer_name": issuer.upper(), "number": number, "subject": subject,
        "place": settings.COPHUB_LETTER_PLACE, "date": timezone.localdate().isoformat(),
        "recipients": [target.addressee or target.name], "paragraphs": paragraphs, "facts": facts,
        "cc": ["Như trên;", f"Lưu: hồ sơ vụ việc {case.reference}."], "signer_title": "NGƯỜI XỬ LÝ VỤ VIỆC", "signer_name": signer,
    }


def _snapshot(case, channel: Channel, kind: str, url: str, note: str, public_id: str, number: str, actor) -> dict:
    from cophub.core.categories import BY_CODE

    target = channel.target
    snapshot = {
        "schema": SNAPSHOT_SCHEMA,
        "id": public_id,
        "kind": kind,
        "number": number,
        "created_at": timezone.now().isoformat(),
        "hub": {"name": _issuer(case)[1], "unit": case.unit.name, "url": settings.COPHUB_PUBLIC_URL},
        "target": {"name": target.name, "kind": target.kind},
        "case": {"reference": case.reference, "category": case.category,
                 "category_label": _vi(BY_CODE[case.category].label) if case.category in BY_CODE else case.category,
                 "priority": case.priority, "opened_at": case.created_at.isoformat()},
        "note": note,
        "letter": _letter_text(case, kind, target, url, note, number, actor),
    }
    if kind == ReferralKind.TAKEDOWN:
        # A platform gets the address and the kind of harm, not what the child told us.
        snapshot["url"] = url
        snapshot["respond_within_hours"] = settings.COPHUB_TAKEDOWN_LEGAL_HOURS
    else:
        snapshot["reports"] = _reports(case)
    if channel.kind == ChannelKind.HUB:
        from cophub.federation.services import report_body

        snapshot["upstream_report"] = report_body(case)
    return snapshot


def _digest(snapshot: dict) -> str:
    return hashlib.sha256(json.dumps(snapshot, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _create(case, channel: Channel, actor, *, kind: str, url: str = "", note: str = "") -> Referral:
    from cophub.cases import services as cases
    from cophub.cases.models import Case, State

    _require_refer(actor, case)
    if not channel.active or not channel.target.active:
        raise ValueError(_("This channel is not active."))
    case = Case.objects.select_for_update(no_key=True, of=("self",)).get(pk=case.pk)
    public_id = _public_id()
    referral = Referral.objects.create(public_id=public_id, case=case, target=channel.target, channel=channel, kind=kind, url=url,
                                       note=note, created_by=actor, snapshot={}, snapshot_sha256="")
    number = f"{referral.pk}/CV-{case.unit.code.upper()}"
    snapshot = _snapshot(case, channel, kind, url, note, public_id, number, actor)
    referral.number, referral.snapshot, referral.snapshot_sha256 = number, snapshot, _digest(snapshot)
    if channel.kind == ChannelKind.MANUAL:
        referral.state = ReferralState.BY_HAND
    referral.save(update_fields=["number", "snapshot", "snapshot_sha256", "state"])
    if channel.kind != ChannelKind.MANUAL:
        outbox.new_delivery(referral)
    cases.record_referral(case, actor, "queued", note, referral=public_id, target=channel.target.name, channel=str(channel.kind),
                          referral_kind=str(kind), url=url)
    if case.state == State.ASSESSING and kind == ReferralKind.REFERRAL:
        cases.transition(case, State.REFERRED, actor, _("Referred to %(target)s.") % {"target": channel.target.name})
    return referral


@transaction.atomic
def refer(case, channel: Channel, actor, note: str = "") -> Referral:
    """Refer `case` to the channel's target; delivered by the outbox after commit."""
    return _create(case, channel, actor, kind=ReferralKind.REFERRAL, note=note)


@transaction.atomic
def send_takedown(case, url: str, channel: Channel, actor, note: str = "") -> Referral:
    """A takedown notice for one link of the case; the hub re-checks it until it is gone."""
    from cophub.cases.services import submissions_of
    from cophub.detection.services import urls_for

    if url not in urls_for([s.pk for s in submissions_of(case)]):
        raise ValueError(_("This link is not one of the case's links."))
    if Referral.objects.filter(case=case, kind=ReferralKind.TAKEDOWN, url=url, target=channel.target, state__in=OPEN_STATES).exists():
        raise ValueError(_("A notice for this link to this recipient is already open."))
    referral = _create(case, channel, actor, kind=ReferralKind.TAKEDOWN, url=url, note=note)
    return referral


# --- What the outbox reports ---------------------------------------------------------------------


def delivered(delivery: Delivery, outcome, now) -> None:
    """A delivery went out (inside the outbox's transaction)."""
    from cophub.cases.services import record_referral

    # Only the referral row is locked (no key update), never the joined case
    # or target: a referral being made for the same target at the same time
    # checks its foreign keys on them at commit, and on PostgreSQL the two
    # would deadlock (bench/outbox.py found it).
    referral = (Referral.objects.select_for_update(no_key=True, of=("self",)).select_related("case__unit", "target", "channel")
                .get(pk=delivery.referral_id))
    fields = ["last_sent_at"]
    referral.last_sent_at = now
    if referral.state in (ReferralState.QUEUED, ReferralState.FAILED):
        referral.state = ReferralState.DELIVERED
        fields.append("state")
    if referral.delivered_at is None:
        referral.delivered_at = now
        fields.append("delivered_at")
    if outcome.external_ref and not referral.external_ref:
        referral.external_ref = outcome.external_ref[:200]
        fields.append("external_ref")
    if referral.kind == ReferralKind.TAKEDOWN and referral.removed_at is None and referral.next_check_at is None:
        referral.next_check_at = now + timedelta(minutes=settings.COPHUB_TAKEDOWN_CHECK_MINUTES)
        fields.append("next_check_at")
    referral.save(update_fields=fields)
    if referral.channel.kind == ChannelKind.HUB and outcome.external_ref:
        from cophub.federation.services import track

        track(referral.case, referral.channel.upstream, outcome.external_ref, referral.public_id, outcome.status or "received")
    record_referral(referral.case, None, "delivered" if delivery.sequence == 1 else "reminded", referral=referral.public_id,
                    target=referral.target.name, sequence=delivery.sequence, reference=referral.external_ref)


def dead_letter(delivery: Delivery, outcome) -> None:
    """Delivery gave up: the referral shows as failed, and the case's people are alerted (console and email)."""
    from cophub.alerts.services import case_recipients, raise_alert
    from cophub.cases.services import record_referral

    referral = (Referral.objects.select_for_update(no_key=True, of=("self",)).select_related("case__unit", "target", "created_by")
                .get(pk=delivery.referral_id))
    if referral.state in (ReferralState.QUEUED,):
        referral.state = ReferralState.FAILED
        referral.save(update_fields=["state"])
    record_referral(referral.case, None, "dead", outcome.error, referral=referral.public_id, target=referral.target.name,
                    attempts=delivery.attempts, sequence=delivery.sequence)
    recipients = case_recipients(referral.case)
    if referral.created_by is not None:
        recipients.append(referral.created_by)
    from django.urls import reverse

    raise_alert("referral.dead", recipients, case=referral.case, link=reverse("referrals:list") + "?state=failed",
                params={"target": referral.target.name, "reference": referral.case.reference, "attempts": delivery.attempts,
                        "error": outcome.error[:300]},
                dedupe_key=f"referral.dead:{delivery.pk}:{delivery.attempts}")


# --- Staff actions on a referral ---------------------------------------------------------------------


def get_referral(user, public_id: str) -> Referral:
    from cophub.cases.services import get_case

    referral = Referral.objects.select_related("case", "target", "channel").filter(public_id=public_id).first()
    if referral is None:
        from django.http import Http404

        raise Http404
    get_case(user, referral.case_id)  # 404 when the case is out of the user's reach
    return referral


RESPONSES = {"acknowledged": ReferralState.ACKNOWLEDGED, "answered": ReferralState.ANSWERED, "closed": ReferralState.CLOSED}


@transaction.atomic
def record_response(referral: Referral, what: str, actor, text: str = "", reference: str = "") -> Referral:
    """The recipient acknowledged or answered (told by phone, mail, a letter): written on the case."""
    from cophub.cases.services import record_referral

    if actor is not None:
        _require_refer(actor, referral.case)
    state = RESPONSES[what]
    referral = Referral.objects.select_for_update(no_key=True, of=("self",)).get(pk=referral.pk)
    now = timezone.now()
    referral.state = state
    fields = ["state"]
    stamp = {"acknowledged": "acknowledged_at", "answered": "answered_at", "closed": "closed_at"}[what]
    if getattr(referral, stamp) is None:
        setattr(referral, stamp, now)
        fields.append(stamp)
    if reference:
        referral.external_ref = reference[:200]
        fields.append("external_ref")
    if what == "closed":
        referral.next_check_at = None
        fields.append("next_check_at")
        Delivery.objects.filter(referral=referral, state=DeliveryState.PENDING).update(state=DeliveryState.CANCELLED, next_attempt_at=None)
    referral.save(update_fields=fields)
    record_referral(referral.case, actor, what, text, referral=referral.public_id, target=referral.target.name, reference=reference)
    return referral


@transaction.atomic
def record_hand_delivery(referral: Referral, actor, text: str = "") -> Referral:
    """Staff delivered the printed letter themselves."""
    from cophub.cases.services import record_referral

    _require_refer(actor, referral.case)
    referral = Referral.objects.select_for_update(no_key=True, of=("self",)).get(pk=referral.pk)
    if referral.state != ReferralState.BY_HAND:
        raise ValueError(_("This referral is not waiting for delivery by hand."))
    now = timezone.now()
    referral.state, referral.delivered_at, referral.last_sent_at = ReferralState.DELIVERED, now, now
    if referral.kind == ReferralKind.TAKEDOWN:
        referral.next_check_at = now + timedelta(minutes=settings.COPHUB_TAKEDOWN_CHECK_MINUTES)
    referral.save(update_fields=["state", "delivered_at", "last_sent_at", "next_check_at"])
    record_referral(referral.case, actor, "delivered", text, referral=referral.public_id, target=referral.target.name, by_hand=True)
    return referral


@transaction.atomic
def retry_dead(referral: Referral, actor) -> int:
    """Send the dead deliveries of a referral again (after the address was fixed, the receiver mended)."""
    from cophub.cases.services import record_referral

    _require_refer(actor, referral.case)
    dead = list(Delivery.objects.select_for_update(no_key=True, of=("self",)).filter(referral=referral, state=DeliveryState.DEAD))
    for delivery in dead:
        outbox.retry(delivery)
    if dead:
        Referral.objects.filter(pk=referral.pk, state=ReferralState.FAILED).update(state=ReferralState.QUEUED)
        record_referral(referral.case, actor, "retried", referral=referral.public_id, target=referral.target.name)
    return len(dead)


@transaction.atomic
def cancel(referral: Referral, actor, text: str = "") -> Referral:
    from cophub.cases.services import record_referral

    _require_refer(actor, referral.case)
    referral = Referral.objects.select_for_update(no_key=True, of=("self",)).get(pk=referral.pk)
    Delivery.objects.filter(referral=referral, state=DeliveryState.PENDING).update(state=DeliveryState.CANCELLED, next_attempt_at=None)
    referral.state, referral.next_check_at = ReferralState.CANCELLED, None
    referral.save(update_fields=["state", "next_check_at"])
    record_referral(referral.case, actor, "cancelled", text, referral=referral.public_id, target=referral.target.name)
    return referral


# --- Answers from machines: webhook callbacks and upstream hubs -------------------------------------------


CALLBACK_STATUSES = {"acknowledged", "answered", "closed", "removed"}


def receive_callback(public_id: str, headers, body: bytes) -> int:
    """A webhook target answers about a referral it received (signed with the channel's secret); the HTTP status."""
    from cophub.providers.webhooks import SIGNATURE_HEADER, verify_signature

    referral = Referral.objects.select_related("channel", "case").filter(public_id=public_id).first()
    if referral is None or referral.channel.kind != ChannelKind.WEBHOOK or not referral.channel.sealed_secret:
        return 404
    if not verify_signature(channel_secret(referral.channel), headers.get(SIGNATURE_HEADER, ""), body):
        return 401
    try:
        data = json.loads(body)
        status = str(data["status"])
    except (ValueError, KeyError, TypeError):
        return 400
    if status not in CALLBACK_STATUSES:
        return 400
    text, reference = str(data.get("message", ""))[:5000], str(data.get("reference", ""))[:200]
    if status == "removed":
        # Taken as a claim to verify, not a fact: the hub looks at the link itself now.
        with transaction.atomic():
            record_response(referral, "answered", None, text=text, reference=reference)
            if referral.kind == ReferralKind.TAKEDOWN and referral.removed_at is None:
                Referral.objects.filter(pk=referral.pk).update(next_check_at=timezone.now())
        return 200
    record_response(referral, status, None, text=text, reference=reference)
    return 200


def upstream_step_changed(upstream, report_id: str, step: str) -> None:
    """An upstream hub moved the report this hub filed: the referral follows (inside the receiver's transaction)."""
    referral = Referral.objects.filter(channel__upstream=upstream, external_ref=report_id).first()
    if referral is None or referral.state in (ReferralState.CLOSED, ReferralState.CANCELLED):
        return
    if step == "working" and referral.state == ReferralState.DELIVERED:
        record_response(referral, "acknowledged", None, reference=report_id)
    elif step in ("referred", "done"):
        record_response(referral, "answered", None, reference=report_id)


# --- Reading ------------------------------------------------------------------------------------------


def referrals_of(case):
    return Referral.objects.filter(case=case).select_related("target", "channel").prefetch_related("deliveries").order_by("-created_at", "-pk")


def visible_referrals(user, state: str = ""):
    """Referrals of the cases the user may view, newest first; `state` narrows them (e.g. "failed")."""
    referrals = Referral.objects.filter(case__in=_visible_cases(user))
    if state:
        referrals = referrals.filter(state=state)
    return referrals.select_related("case", "target", "channel").order_by("-created_at", "-pk")


def _visible_cases(user):
    from cophub.cases import permissions
    from cophub.cases.models import Case

    return Case.objects.filter(permissions.visible_filter(user)).values("pk")


def failed_count(user) -> int:
    return Referral.objects.filter(case__in=_visible_cases(user), state=ReferralState.FAILED).count()


def legal_deadline(referral: Referral):
    """When the platform's 24 hours run out: counted from the first delivery of the notice."""
    if referral.kind != ReferralKind.TAKEDOWN or referral.delivered_at is None:
        return None
    return referral.delivered_at + timedelta(hours=settings.COPHUB_TAKEDOWN_LEGAL_HOURS)


def time_to_removal(referral: Referral) -> timedelta | None:
    if referral.removed_at is None or referral.delivered_at is None:
        return None
    return max(timedelta(0), referral.removed_at - referral.delivered_at)


# --- The letter ----------------------------------------------------------------------------------------------


def letter_for(referral: Referral) -> Letter:
    words = dict(referral.snapshot["letter"])
    words["date"] = datetime.date.fromisoformat(words["date"])
    words["facts"] = [tuple(pair) for pair in words["facts"]]
    return Letter(**words)


def letter_pdf(referral: Referral) -> bytes:
    """The letter as sent, rebuilt from the snapshot: the same words every time."""
    return render_letter(letter_for(referral))


def letter_subject(referral: Referral) -> str:
    return f"{referral.number} V/v {referral.snapshot['letter']['subject']}"


def letter_text(referral: Referral, sequence: int = 1) -> str:
    """The email body: the letter in plain text, for readers that do not open attachments."""
    letter = referral.snapshot["letter"]
    lines = [letter["issuer_name"], f"Số: {letter['number']}", "", f"Kính gửi: {', '.join(letter['recipients'])}", ""]
    if sequence > 1:
        lines += [f"Văn bản này được gửi nhắc lại lần {sequence - 1} vì nội dung vẫn còn trên mạng.", ""]
    lines += [*letter["paragraphs"], ""]
    lines += [f"- {name}: {value}" for name, value in letter["facts"]]
    lines += ["", f"Mã tham chiếu: {referral.public_id}",
              "Văn bản chính thức (PDF) và dữ liệu có cấu trúc (JSON) được gửi kèm thư này."]
    return "\n".join(lines)


# --- Timeline words -----------------------------------------------------------------------------------------------

EVENT_TEXT = {
    "queued": gettext_lazy("Referral to %(target)s queued for delivery."),
    "delivered": gettext_lazy("Referral delivered to %(target)s."),
    "reminded": gettext_lazy("Takedown notice sent again to %(target)s (reminder %(sequence)s)."),
    "dead": gettext_lazy("Delivery to %(target)s FAILED after %(attempts)s attempts: staff must act."),
    "acknowledged": gettext_lazy("%(target)s acknowledged the referral."),
    "answered": gettext_lazy("%(target)s answered the referral."),
    "closed": gettext_lazy("Referral to %(target)s closed."),
    "retried": gettext_lazy("Failed delivery to %(target)s put back in the queue."),
    "cancelled": gettext_lazy("Referral to %(target)s cancelled."),
    "removed": gettext_lazy("The reported content is gone (%(url)s); time to removal: %(hours)s hours."),
    "still_online": gettext_lazy("The reported content is still online %(hours)s hours after the notice to %(target)s."),
}


def describe_event(data: dict) -> str:
    template = EVENT_TEXT.get(data.get("what", ""))
    if template is None:
        return _("Referral")
    values = {"target": "", "attempts": "", "sequence": "", "url": "", "hours": ""}
    values.update({key: value for key, value in data.items() if isinstance(value, (str, int, float))})
    return str(template) % values
