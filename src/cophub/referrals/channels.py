"""How one delivery of a referral leaves the hub: email, signed webhook, or the upstream hub's API.

Each sender takes a `Delivery` and returns an `Outcome`; it never writes to
the database (the outbox does, and only while it holds the claim). Each
passes the delivery's idempotency key on, so a receiver can recognise a
retried send: the email's Message-ID, the webhook's Cophub-Event-Id, the
upstream hub's Idempotency-Keys. A delivery "by hand" has no sender: staff
record it.
"""

from __future__ import annotations

import json
import smtplib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from .models import ChannelKind, Delivery, ReferralKind

USER_AGENT = "cophub-referrals/1"
# Mail backends that only keep the message on this machine: a referral "sent"
# through them would say delivered while nobody received it.
LOCAL_MAIL_BACKENDS = ("django.core.mail.backends.filebased.EmailBackend", "django.core.mail.backends.console.EmailBackend",
                       "django.core.mail.backends.dummy.EmailBackend")


@dataclass
class Outcome:
    ok: bool
    status: str = ""
    error: str = ""
    retry: bool = True  # False: the receiver refused for good; the delivery goes to the dead letter now
    external_ref: str = ""


def send(delivery: Delivery) -> Outcome:
    channel = delivery.referral.channel
    sender = {ChannelKind.EMAIL: send_email, ChannelKind.WEBHOOK: send_webhook, ChannelKind.HUB: send_to_hub}.get(channel.kind)
    if sender is None:
        return Outcome(False, error=f"channel {channel.kind} is delivered by hand", retry=False)
    return sender(delivery)


def document(delivery: Delivery) -> dict:
    """The machine-readable referral: the snapshot plus which send this is."""
    referral = delivery.referral
    return {
        "id": referral.public_id,
        "delivery": delivery.idempotency_key,
        "sequence": delivery.sequence,
        "type": "takedown.notice" if referral.kind == ReferralKind.TAKEDOWN else "referral.created",
        "referral": referral.snapshot,
    }


def document_bytes(delivery: Delivery) -> bytes:
    # The same bytes on every attempt of one delivery.
    return json.dumps(document(delivery), ensure_ascii=False, sort_keys=True, indent=1).encode()


# --- Email ---------------------------------------------------------------------------------


def message_id(delivery: Delivery) -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "cophub.local"
    return f"<{delivery.idempotency_key}@{domain}>"


def build_email(delivery: Delivery) -> EmailMessage:
    from .services import letter_pdf, letter_subject, letter_text

    referral = delivery.referral
    subject = letter_subject(referral)
    if delivery.sequence > 1:
        subject = f"[Nhắc lại lần {delivery.sequence - 1}] {subject}"
    message = EmailMessage(
        subject=subject, body=letter_text(referral, delivery.sequence), to=[referral.channel.address],
        headers={"Message-ID": message_id(delivery), "X-Cophub-Referral": referral.public_id,
                 "X-Cophub-Delivery": delivery.idempotency_key, "Auto-Submitted": "auto-generated"})
    name = (referral.number or referral.public_id).replace("/", "-")
    message.attach(f"{name}.pdf", letter_pdf(referral), "application/pdf")
    message.attach(f"{referral.public_id}.json", document_bytes(delivery), "application/json")
    return message


def send_email(delivery: Delivery) -> Outcome:
    if settings.EMAIL_BACKEND in LOCAL_MAIL_BACKENDS:
        return Outcome(False, error="no mail server is configured (COPHUB_SMTP_HOST): the letter was not sent")
    message = build_email(delivery)
    try:
        with get_connection(fail_silently=False) as connection:
            sent = connection.send_messages([message])
    except smtplib.SMTPResponseException as error:
        # 5xx: the server refused for good (no such mailbox, policy); 4xx: try again later.
        return Outcome(False, status=str(error.smtp_code), error=_smtp_text(error), retry=error.smtp_code < 500)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _text in error.recipients.values()]
        return Outcome(False, status=str(max(codes, default=0)), error=f"recipient refused: {error.recipients}"[:500],
                       retry=not all(code >= 500 for code in codes))
    except (smtplib.SMTPException, OSError) as error:
        return Outcome(False, error=f"{type(error).__name__}: {error}"[:500])
    if not sent:
        return Outcome(False, error="the mail server did not take the message")
    return Outcome(True, status="250", external_ref=message_id(delivery))


def _smtp_text(error: smtplib.SMTPResponseException) -> str:
    text = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else str(error.smtp_error)
    return f"{error.smtp_code} {text}"[:500]


# --- Webhook ---------------------------------------------------------------------------------


def webhook_headers(delivery: Delivery, body: bytes) -> dict[str, str]:
    from cophub.providers.webhooks import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign

    from .services import channel_secret

    doc_type = "takedown.notice" if delivery.referral.kind == ReferralKind.TAKEDOWN else "referral.created"
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        # Signed at send time: the receiver's replay window counts from this attempt.
        SIGNATURE_HEADER: sign(channel_secret(delivery.referral.channel), body, int(time.time())),
        EVENT_ID_HEADER: delivery.idempotency_key,
        EVENT_TYPE_HEADER: doc_type,
        "Idempotency-Key": delivery.idempotency_key,
    }


def send_webhook(delivery: Delivery) -> Outcome:
    from cophub.providers.webhooks import post

    body = document_bytes(delivery)
    answer = post(delivery.referral.channel.address, body, webhook_headers(delivery, body))
    if answer.status is None:
        return Outcome(False, error=answer.error)
    if not answer.ok:
        # 4xx other than 408/429 will not heal by itself, but a receiver being
        # redeployed answers 404 for a minute: retried all the same, to the dead letter.
        return Outcome(False, status=str(answer.status), error=f"HTTP {answer.status}: {answer.body[:200].decode(errors='replace')}")
    return Outcome(True, status=str(answer.status), external_ref=_their_reference(answer.body))


def _their_reference(body: bytes) -> str:
    """A receiver may answer {"reference": "…"}: its own ticket number, kept on the referral."""
    try:
        value = json.loads(body or b"{}").get("reference", "")
    except (ValueError, AttributeError):
        return ""
    return str(value)[:200] if isinstance(value, (str, int)) else ""


# --- Upstream hub ------------------------------------------------------------------------------


def send_to_hub(delivery: Delivery) -> Outcome:
    from cophub.federation import services as federation

    referral = delivery.referral
    upstream = referral.channel.upstream
    if upstream is None or not upstream.active:
        return Outcome(False, error="the upstream hub is not connected or not active", retry=False)
    try:
        # Keyed on the referral, not the delivery: one report upstream, however often it is sent.
        report_id, step = federation.file_report(upstream, referral.case, referral.public_id)
    except federation.FilingError as error:
        return Outcome(False, error=str(error), retry=error.retry)
    return Outcome(True, status=step, external_ref=report_id)
