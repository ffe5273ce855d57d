"""Background detection work (run by `cophub worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def compute_signals(blob_id: int) -> str:
    """A file's perceptual hashes ahead of need (staff-attached files, which no report scan reads)."""
    from cophub.evidence.services import get_blob

    from .services import signals_for

    blob = get_blob(blob_id)
    return signals_for(blob).status if blob is not None else "missing"
