"""The public callback endpoint: a webhook recipient answers about a referral it received.

POST /referrals/callback/<public_id>, signed like the hub's own webhooks
(`Cophub-Signature: t=…,v1=…` with the channel's secret) and carrying
{"status": "acknowledged"|"answered"|"closed"|"removed", "message": …,
"reference": …}. The answer is services.receive_callback's status with a
small JSON body; bad input is a 4xx, never a 500.
"""

from __future__ import annotations

import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import services

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
ERRORS = {400: "bad_request", 401: "bad_signature", 404: "not_found", 413: "too_large", 503: "try_again_later"}


def _answer(status: int) -> JsonResponse:
    body = {"ok": True} if status < 300 else {"ok": False, "error": ERRORS.get(status, "error")}
    return JsonResponse(body, status=status)


@csrf_exempt
@require_POST
def callback(request, public_id: str):
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _answer(400)
    if declared > MAX_BODY_BYTES:
        return _answer(413)
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _answer(413)
    if len(public_id) > 40:
        return _answer(404)
    try:
        status = services.receive_callback(public_id, request.headers, body)
    except Exception:  # noqa: BLE001 - a fault of ours, not of the sender's input: "try again later", never a 500 page
        logger.exception("referral callback for %s could not be handled", public_id)
        return _answer(503)
    return _answer(status)
