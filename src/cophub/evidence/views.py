"""Evidence as the console serves it: always through a case, always checked and audited.

A file is reached only through a case the user may see, only if the file
belongs to that case (or to a case merged into it), and only with the
evidence permission for the case's unit. Every preview and every clear view
is written to the audit log. The case page never shows a clear file inline:
the clear view sits behind a confirmation page, and sound and video are
played by a page of ours that never starts playing by itself.
"""

from __future__ import annotations

from functools import wraps

from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from cophub.audit.services import record
from cophub.cases import services as case_services
from cophub.detection import services as detection
from cophub.cases.console import console_view, render_console

from . import permissions, services

PLAYED_KINDS = {"video", "audio"}
SHOWING = {"evidence.view_preview", "evidence.view_clear"}
STREAM_SALT = "cophub.evidence.clear-stream"
# How long the player page may fetch the file after the reviewer confirmed.
STREAM_TOKEN_SECONDS = 15 * 60


def _case_and_blob(user, case_pk: int, blob_id: int, action: str):
    case = case_services.get_case(user, case_pk)  # 404 when the case is not the user's to see
    if not permissions.can(user, action, case.unit):
        raise PermissionDenied
    blob = services.get_blob(blob_id) if case_services.blob_belongs_to(case, blob_id) else None
    if blob is None:
        raise Http404
    if action in SHOWING and detection.known_blob_ids([blob.pk]):
        raise KnownMaterial(case, blob)
    return case, blob


class KnownMaterial(Exception):
    """The file matched the hub's confirmed list: assessed once, never shown to anyone again."""

    def __init__(self, case, blob):
        super().__init__(blob.pk)
        self.case, self.blob = case, blob


def _known_material_page(request, exc: KnownMaterial):
    record("evidence.known_refused", actor=request.user, obj=exc.blob, unit=exc.case.unit, case=exc.case.reference, request=request)
    title = _("Known material")
    message = _("This file matches the hub's list of confirmed illegal material. It was assessed once and is not shown again to anyone; the case carries the verdict it inherited.")
    return render_console(request, "cases/error.html", {"title": title, "message": message}, status=403)


def _refusing_known(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except KnownMaterial as exc:
            return _known_material_page(request, exc)

    return wrapper


def _sealed(response):
    """Headers for evidence bytes: not cached, not sniffed, not able to run anything."""
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    response["Referrer-Policy"] = "no-referrer"
    return response


@console_view
@_refusing_known
@require_GET
def preview(request, pk: int, blob_id: int):
    """The blurred, grey preview of an image."""
    case, blob = _case_and_blob(request.user, pk, blob_id, "evidence.view_preview")
    data = services.preview_bytes(blob)
    if data is None:
        raise Http404
    record("evidence.view_preview", actor=request.user, obj=blob, unit=case.unit, case=case.reference, request=request)
    return _sealed(HttpResponse(data, content_type="image/jpeg"))


@console_view
@_refusing_known
@require_http_methods(["GET", "POST"])
def clear(request, pk: int, blob_id: int):
    """GET: the wellbeing warning. POST (confirmed): the clear file itself."""
    case, blob = _case_and_blob(request.user, pk, blob_id, "evidence.view_clear")
    context = {"case": case, "blob": blob}
    if request.method == "GET":
        return render_console(request, "cases/evidence_clear_confirm.html", context)
    if blob.kind in PLAYED_KINDS:
        token = signing.dumps([request.user.pk, case.pk, blob.pk], salt=STREAM_SALT)
        context["stream_url"] = f"{reverse('console:evidence_stream', args=[case.pk, blob.pk])}?t={token}"
        return render_console(request, "cases/evidence_player.html", context)
    return _stream_clear(request, case, blob)


@console_view
@_refusing_known
@require_GET
def stream(request, pk: int, blob_id: int):
    """The clear bytes of a video or sound file, for the player page only."""
    case, blob = _case_and_blob(request.user, pk, blob_id, "evidence.view_clear")
    try:
        granted = signing.loads(request.GET.get("t", ""), salt=STREAM_SALT, max_age=STREAM_TOKEN_SECONDS)
    except signing.BadSignature:
        raise PermissionDenied from None
    if granted != [request.user.pk, case.pk, blob.pk]:
        raise PermissionDenied
    return _stream_clear(request, case, blob)


def _stream_clear(request, case, blob):
    record("evidence.view_clear", actor=request.user, obj=blob, unit=case.unit, case=case.reference, request=request)
    response = StreamingHttpResponse(services.iter_clear(blob), content_type=blob.mime)
    response["Content-Length"] = str(blob.size)
    response["Content-Disposition"] = "inline"
    return _sealed(response)
