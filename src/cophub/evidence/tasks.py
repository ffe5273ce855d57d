"""Background work on evidence (run by `cophub worker`)."""

from __future__ import annotations

import logging

from django_tasks import task
from PIL import Image

from . import vault
from .models import Blob, PreviewStatus
from .previews import blurred_preview

logger = logging.getLogger(__name__)


@task()
def make_preview(blob_id: int) -> str:
    blob = Blob.objects.filter(pk=blob_id).first()
    if blob is None:
        return "missing"
    if blob.preview_status == PreviewStatus.READY:
        return "ready"
    try:
        preview = blurred_preview(vault.read_plaintext(blob))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        logger.warning("preview failed for blob %s: %s", blob_id, exc)
        Blob.objects.filter(pk=blob_id).update(preview_status=PreviewStatus.FAILED)
        return "failed"
    vault.store_preview(blob, preview)
    return "ready"
