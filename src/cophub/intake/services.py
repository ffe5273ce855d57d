"""Receiving reports from every channel as one kind of Submission.

`receive()` is the single door: the web forms, the danger button and staff
entry all go through it (the provider API will too). The receipt is handed
out only after the submission, its files and its case have committed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import get_language

from cophub.evidence.services import Refused, check_files, discard_checked, discard_uploads, store_checked

from . import receipts
from .models import Addendum, DeclaredFile, Submission, SubmissionFile

TEXT_FIELDS = ("where_url", "where_app", "reported_account", "description", "contact_name", "contact_phone", "contact_email")


def clean_text(value: str) -> str:
    """NFC (Vietnamese typed on some systems arrives decomposed), no NULs, no stray ends."""
    if not value:
        return ""
    value = value.replace("\x00", "").replace("\r\n", "\n")
    return unicodedata.normalize("NFC", value).strip()


@dataclass
class Receipt:
    submission: Submission
    code: str
    phrase: str
    refused: list[Refused] = field(default_factory=list)
    accepted_files: int = 0
    # The case opened for it (cases.models.Case), for callers that answer at once.
    case: object = None


def receive(*, unit, channel: str, files=(), blobs=(), declared=(), entered_by=None, received_at: datetime | None = None,
            **fields) -> Receipt:
    """Store a submission with its files and open its case, atomically.

    `blobs` are (Blob, name) pairs already in the vault (the provider API
    stores a draft report's files as they are uploaded); `declared` are
    (sha256, md5, name) of files named by their hashes alone.
    """
    from cophub.cases.services import open_for_submission
    from cophub.triage.services import submission_received

    files, blobs = list(files), list(blobs)
    for name in TEXT_FIELDS:
        if name in fields:
            fields[name] = clean_text(fields[name])
    phrase = receipts.new_phrase()
    checked = []
    try:
        # Pictures are decoded before the transaction opens, so the
        # database's write lock is never held while they are.
        checked, refused = check_files(files)
        for attempt in range(5):
            code = receipts.new_code()
            try:
                with transaction.atomic():
                    submission = Submission.objects.create(
                        code=code,
                        secret_digest=receipts.digest(code, phrase),
                        channel=channel,
                        unit=unit,
                        entered_by=entered_by,
                        received_at=received_at or timezone.now(),
                        language=(get_language() or "vi")[:8],
                        **fields,
                    )
                    accepted = store_checked(checked)
                    SubmissionFile.objects.bulk_create(
                        [SubmissionFile(submission=submission, blob=a.blob, original_name=a.name) for a in accepted]
                        + [SubmissionFile(submission=submission, blob=blob, original_name=name) for blob, name in blobs]
                    )
                    DeclaredFile.objects.bulk_create([DeclaredFile(submission=submission, sha256=(sha or "").lower(), md5=(md5 or "").lower(),
                                                                   original_name=name[:200]) for sha, md5, name in declared])
                    case = open_for_submission(submission)
                    # In the same transaction: with the database task backend the
                    # job exists exactly when the submission does.
                    submission_received(submission)
                break
            except IntegrityError:
                # A code collision (one in 10¹² per pair): draw another code.
                if attempt == 4 or Submission.objects.filter(code=code).count() == 0:
                    raise
    except BaseException:
        discard_checked(checked)
        discard_uploads(files)
        raise
    return Receipt(submission=submission, code=code, phrase=phrase, refused=refused, accepted_files=len(accepted), case=case)


def lookup(code: str, phrase: str) -> Submission | None:
    """The submission for a code and phrase, or None: never says which was wrong."""
    normalised = receipts.normalise_code(code)
    submission = Submission.objects.filter(code=normalised).first() if normalised else None
    stored = submission.secret_digest if submission else None
    if receipts.matches(stored, normalised or "-", phrase):
        return submission
    return None


def add_information(submission: Submission, text: str, files=()) -> tuple[Addendum | None, list[Refused], int]:
    """The reporter adds text or files later, from the status page."""
    from cophub.cases.services import record_addendum

    files = list(files)
    text = clean_text(text)
    checked = []
    try:
        checked, refused = check_files(files)
        if not text and not checked:
            return None, refused, 0
        with transaction.atomic():
            addendum = Addendum.objects.create(submission=submission, text=text)
            accepted = store_checked(checked)
            SubmissionFile.objects.bulk_create(
                [SubmissionFile(submission=submission, addendum=addendum, blob=a.blob, original_name=a.name) for a in accepted]
            )
            record_addendum(submission, addendum, len(accepted))
            if accepted or text:
                from cophub.triage.services import submission_received

                submission_received(submission)  # the new files and words are read too
    except BaseException:
        discard_checked(checked)
        discard_uploads(files)
        raise
    return addendum, refused, len(accepted)


def public_status(submission: Submission):
    from cophub.cases.services import public_status as case_status

    return case_status(submission)


# --- For detection and triage ------------------------------------------------------------------


def get_submission(pk: int) -> Submission | None:
    return Submission.objects.filter(pk=pk).first()


def blobs_of(submission: Submission) -> list:
    """Every distinct file of the submission, its additions included."""
    seen, blobs = set(), []
    for item in SubmissionFile.objects.filter(submission=submission).select_related("blob").order_by("pk"):
        if item.blob_id not in seen:
            seen.add(item.blob_id)
            blobs.append(item.blob)
    return blobs


def declared_hashes(submission: Submission) -> list[tuple[str, str, str]]:
    """(sha256, md5, name) of the files the report named by hash alone."""
    return list(DeclaredFile.objects.filter(submission=submission).values_list("sha256", "md5", "original_name"))


def text_of(submission: Submission) -> str:
    """What the reporter wrote later, for reading with the submission's own text."""
    return "\n".join(a.text for a in submission.addenda.all() if a.text)


def submissions_with_blobs(blob_ids, *, exclude: int) -> dict[int, set[int]]:
    """Other submissions holding one of these files: submission id → the blob ids they share."""
    shared: dict[int, set[int]] = {}
    rows = SubmissionFile.objects.filter(blob_id__in=list(blob_ids)).exclude(submission_id=exclude).values_list("submission_id", "blob_id")
    for submission_id, blob_id in rows[:1000]:
        shared.setdefault(submission_id, set()).add(blob_id)
    return shared
