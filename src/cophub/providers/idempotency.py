"""The Idempotency-Key header: a POST repeated with the same key runs once.

The record is inserted *before* the operation runs, under a unique
constraint on (provider, key): of two concurrent duplicates only one inserts,
and the other is told the first is still in progress. Answers are kept for
24 hours; 5xx and 429 answers are not kept, so a retry can succeed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from .models import IdempotencyRecord, Provider
from .problems import ApiProblem

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255


def request_digest(request) -> str:
    """SHA-256 over what makes two requests "the same"."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    if request.content_type == "multipart/form-data":
        # The raw multipart body cannot be read once parsed, and its boundary
        # differs between identical retries: hash fields and file contents.
        for name in sorted(request.POST):
            digest.update(f"{name}={request.POST.getlist(name)}\n".encode())
        for name in sorted(request.FILES):
            for upload in request.FILES.getlist(name):
                digest.update(f"{name}:{upload.name}:{upload.staged.sha256}\n".encode())
    else:
        digest.update(request.body)
    return digest.hexdigest()


def _claim(provider: Provider, key: str, request, digest: str) -> IdempotencyRecord | None:
    """Insert the in-progress record; None means this request holds the key now.

    Otherwise the record already holding it comes back. One past KEEP_FOR is
    forgotten and the claim tried once more: old records are deleted only
    here and by `forget_old()` (run by the worker's housekeeping), not on
    every request.
    """
    for attempt in range(2):
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(provider=provider, key=key, method=request.method, path=request.path, request_digest=digest)
            return None
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(provider=provider, key=key).first()
            if existing is None:
                continue  # removed between our insert and our read: claim again
            if attempt == 0 and existing.created_at < timezone.now() - KEEP_FOR:
                IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
                continue
            return existing
    return IdempotencyRecord.objects.get(provider=provider, key=key)


def _replay(existing: IdempotencyRecord, request, digest: str) -> HttpResponse:
    if (existing.method, existing.path, existing.request_digest) != (request.method, request.path, digest):
        raise ApiProblem("idempotency.key_reused")
    if existing.status is None:
        raise ApiProblem("idempotency.in_progress", headers={"Retry-After": "1"})
    response = HttpResponse(bytes(existing.body), status=existing.status, content_type=existing.content_type)
    response[REPLAYED] = "true"
    return response


def idempotent(request, provider: Provider, operation: Callable[[], HttpResponse]) -> HttpResponse:
    key = request.headers.get(HEADER, "").strip()
    if not key:
        return operation()
    if len(key) > MAX_KEY_LENGTH:
        raise ApiProblem("validation.error", format_lazy(_("The {header} header is longer than {limit} characters."), header=HEADER, limit=MAX_KEY_LENGTH))
    digest = request_digest(request)
    existing = _claim(provider, key, request, digest)
    if existing is not None:
        return _replay(existing, request, digest)
    try:
        response = operation()
    except ApiProblem as problem:
        from .problems import problem_response

        response = problem_response(problem, request)
    except BaseException:
        IdempotencyRecord.objects.filter(provider=provider, key=key).delete()
        raise
    if response.status_code >= 500 or response.status_code == 429:
        IdempotencyRecord.objects.filter(provider=provider, key=key).delete()
    else:
        IdempotencyRecord.objects.filter(provider=provider, key=key).update(
            status=response.status_code, body=response.content, content_type=response["Content-Type"])
    return response


def forget_old(now=None) -> int:
    return IdempotencyRecord.objects.filter(created_at__lt=(now or timezone.now()) - KEEP_FOR).delete()[0]
