"""Small helpers for console tests: log in, file a report, find its case, read messages."""

from __future__ import annotations

import io
import wave

from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp.oath import TOTP

from cophub.cases import two_factor
from cophub.cases.models import Case
from cophub.cases.services import case_for_submission
from cophub.conftest import png_bytes
from cophub.intake import services as intake_services
from cophub.intake.models import Channel


def log_in(client, user):
    """A console session as the user would have after logging in: with the
    two-factor step passed when the account needs it.

    The device is confirmed and the session marked verified by django-otp's
    own `login`, as the code step does; posting a real code each time would
    trip over TOTP's rule that a code is used once (tests log in the same
    account twice within 30 seconds). test_two_factor.py covers the form.
    """
    client.force_login(user)
    if two_factor.required_for(user):
        request = HttpRequest()
        request.user = user
        request.session = client.session
        otp_login(request, two_factor.ensure_confirmed_device(user))
        request.session.save()
    return user


def current_code(device) -> str:
    """The code an authenticator app shows now for this device."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def report(unit, *, files=(), category="other", description="Có người nhắn tin đe doạ em.", channel=Channel.WEB_CHILD, **fields):
    """A report from the public web form, as intake stores it."""
    return intake_services.receive(unit=unit, channel=channel, files=list(files), reporter_kind="child",
                                   category=category, description=description, **fields)


def case_of(receipt) -> Case:
    return case_for_submission(receipt.submission)


def report_case(unit, **kwargs) -> Case:
    return case_of(report(unit, **kwargs))


def case_with_image(unit, colour=(200, 30, 30), **kwargs) -> Case:
    return report_case(unit, files=[("anh.png", png_bytes(colour=colour))], **kwargs)


def upload(name: str = "them.png", data: bytes | None = None, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(colour=(10, 200, 90)) if data is None else data, content_type=content_type)


def flash(response) -> list[str]:
    """The django.contrib.messages texts a response carries (or queued for the next page)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def first_blob(case):
    from cophub.cases.services import submissions_of

    return submissions_of(case)[0].files.all()[0].blob


def wav_bytes() -> bytes:
    """One second of a quiet tone: a real sound file the vault accepts as audio."""
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\x00\x10" * 8000)
    return out.getvalue()
