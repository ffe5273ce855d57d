"""Two-factor login (TOTP) for staff who can see evidence.

Who needs it follows from the evidence permissions: any account holding, in
any unit, a role that grants an evidence action (and any Django superuser,
who can grant themselves such a role in the admin). The devices are
django-otp's TOTP devices; a session counts as verified once django-otp's
`login` has recorded the device in it (OTPMiddleware then sets
`request.user.otp_device`).
"""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from cophub.audit.services import record
from cophub.evidence import permissions as evidence_permissions
from cophub.orgs.permissions import unit_paths

EVIDENCE_ROLES = frozenset().union(*evidence_permissions.ACTIONS.values())
DEVICE_NAME = "console"


def required_for(user) -> bool:
    """Whether this account must pass the code step before the console."""
    if settings.COPHUB_STAFF_2FA == "off" or not getattr(user, "is_authenticated", False):
        return False
    return user.is_superuser or bool(unit_paths(user, EVIDENCE_ROLES))


def session_verified(request) -> bool:
    """True once the session passed the code step (OTPMiddleware reads it from the session)."""
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified and is_verified())


def passed(request) -> bool:
    """May this session use the console (and the admin) beyond the log-in steps?"""
    return not required_for(request.user) or session_verified(request)


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).order_by("pk").first()


def pending_device(user) -> TOTPDevice:
    """The device being enrolled: the same one until it is confirmed, so a reload keeps the QR code valid."""
    device = TOTPDevice.objects.devices_for_user(user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def ensure_confirmed_device(user, name: str = DEVICE_NAME) -> TOTPDevice:
    """The account's confirmed device, made (and audited) when it has none: for accounts set up by a command."""
    device = confirmed_device(user)
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        record("auth.otp_enrolled", obj=device, user=user.get_username(), set_up_by="command")
    return device


def base32_secret(device: TOTPDevice) -> str:
    """The key as authenticator apps take it when typed in."""
    return base64.b32encode(device.bin_key).decode("ascii")


def grouped(secret: str) -> str:
    """"ABCD EFGH …": easier to copy by hand; apps ignore the spaces."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def qr_data_uri(device: TOTPDevice) -> str:
    """The enrolment QR code as an SVG data: URI, which the site's CSP (img-src data:) allows without inline styles."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=10, border=4)
    svg = io.BytesIO()
    image.save(svg)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.getvalue()).decode("ascii")


def throttled(device: TOTPDevice) -> bool:
    """django-otp's back-off after wrong codes (1, 2, 4, 8 … seconds) is still running."""
    allowed, _ = device.verify_is_allowed()
    return not allowed


VERIFIED, WRONG_CODE, THROTTLED = "verified", "wrong_code", "throttled"


def check_code(request, device: TOTPDevice, token: str) -> str:
    """Verify a code and, when right, mark the session verified; audited either way.

    Returns VERIFIED, WRONG_CODE, or THROTTLED (django-otp refused to look at
    the code because the back-off after earlier wrong codes is still running).
    A right code on a device being enrolled confirms it.
    """
    with transaction.atomic():
        # Locked so two tabs cannot both use one code, nor race the throttle counter.
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        outcome = THROTTLED if throttled(device) else WRONG_CODE
        if device.verify_token(token):
            outcome = VERIFIED
            _record_success(request, device)
        else:
            record("auth.otp_failed", actor=request.user, obj=device, request=request, reason=outcome,
                   stage="verify" if device.confirmed else "enrol")
    if outcome == VERIFIED:
        # The session gains rights here, so it gets a new id, as Django's login does for the password.
        request.session.cycle_key()
        otp_login(request, device)
    return outcome


def _record_success(request, device: TOTPDevice) -> None:
    if device.confirmed:
        record("auth.otp_verified", actor=request.user, obj=device, request=request)
        return
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    record("auth.otp_enrolled", actor=request.user, obj=device, request=request)
