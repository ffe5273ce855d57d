"""Provider reports: drafts, their files, finishing into intake, retracting, expiry.

A draft belongs to its provider only. Finishing hands it to
`intake.services.receive()` (channel "provider") in one transaction with the
draft's change of state, so a report is finished exactly when its Submission
and case exist. Sandbox reports run the same checks but never reach intake.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cophub.audit.services import batched as audit_batch
from cophub.audit.services import record
from cophub.evidence.services import check_files, discard_checked, release_blobs, store_checked

from .models import ApiKey, Provider, ProviderReport, ReportFile, ReportState
from .problems import ApiProblem
from .schemas import FileMetadata, HashOnlyFileIn, ReportIn


def _public_id(kind: str) -> str:
    return f"{kind}_{secrets.token_urlsafe(16)}"


def draft_lifetime() -> timedelta:
    return timedelta(hours=settings.COPHUB_API_DRAFT_HOURS)


def open_report(key: ApiKey, data: ReportIn) -> ProviderReport:
    """A new draft; with `finish` set it is filed at once.

    Hash-only files may be declared inline (`data.files`): the same rows as
    POST /reports/{id}/files makes. The report's rows and its one audit event
    are written in one transaction, the event last (see audit.batched).
    """
    now = timezone.now()
    provider = key.provider
    report = ProviderReport(
        public_id=_public_id("rpt"), provider=provider, sandbox=key.sandbox,
        incident_type=data.incident_type, incident_time=data.incident_time,
        summary=data.summary, escalate_reason=data.escalate_reason, details=_report_details(data),
        expires_at=now + draft_lifetime(),
    )
    files = [_hash_only_file(report, item) for item in data.files]
    with transaction.atomic(), audit_batch():
        if data.finish:
            _file_with_intake(report, files, now)
        report.save(force_insert=True)
        ReportFile.objects.bulk_create(files)
        record("provider_report.finished" if data.finish else "provider_report.opened", actor=f"provider:{provider.pk}", obj=report,
               unit=provider.unit, key=key.prefix, sandbox=key.sandbox, files=[_file_audit(f) for f in files],
               submission=report.submission.code if report.submission else "")
    report.fresh_files = files
    return report


def _report_details(data: ReportIn) -> dict:
    return data.model_dump(mode="json", include={"annotations", "internet_details", "reported_user", "victim", "reporter_contact"}, exclude_none=True)


def _file_audit(file: ReportFile) -> dict:
    return {"sha256": file.sha256, "md5": file.md5} if file.blob_id is None else {"sha256": file.sha256, "blob": file.blob_id}


def get_report(provider: Provider, public_id: str) -> ProviderReport:
    """The provider's own report; another provider's is as missing as a wrong id."""
    report = ProviderReport.objects.filter(provider=provider, public_id=public_id).select_related("submission").first()
    if report is None:
        raise ApiProblem("report.not_found")
    return report


def _locked_draft(provider: Provider, public_id: str) -> ProviderReport:
    """The report locked for change; refuses anything that is not a live draft."""
    get_report(provider, public_id)
    report = ProviderReport.objects.select_for_update().select_related("provider__unit").get(provider=provider, public_id=public_id)
    if report.state == ReportState.FINISHED:
        raise ApiProblem("report.already_finished")
    if report.state == ReportState.RETRACTED:
        raise ApiProblem("report.already_retracted")
    if report.is_expired():
        raise ApiProblem("report.expired")
    return report


def add_uploaded_file(provider: Provider, public_id: str, upload, metadata: FileMetadata) -> ReportFile:
    """Inspect an uploaded (already encrypted) file and keep it in the vault with the draft.

    A staged file's data key lives only in this request's memory, so the file
    goes into the vault now, not at finish; the draft row is what keeps it.
    """
    get_report(provider, public_id)  # a wrong id costs no inspection
    checked, refused = check_files([upload], max_files=1)
    if refused:
        raise ApiProblem("file.refused", refused[0].message, reason=refused[0].code)
    try:
        with transaction.atomic():
            report = _locked_draft(provider, public_id)
            accepted = store_checked(checked)[0]
            blob = accepted.blob
            file = ReportFile.objects.create(
                public_id=_public_id("file"), report=report, blob=blob, sha256=blob.sha256, md5=blob.md5, size=blob.size,
                original_name=metadata.original_name or accepted.name, metadata=_file_metadata(metadata),
            )
            record("provider_report.file_added", actor=f"provider:{provider.pk}", obj=report, unit=provider.unit, sha256=blob.sha256)
    except BaseException:
        discard_checked(checked)
        raise
    return file


def add_hash_only_file(provider: Provider, public_id: str, data: HashOnlyFileIn) -> ReportFile:
    with transaction.atomic(), audit_batch():
        report = _locked_draft(provider, public_id)
        file = _hash_only_file(report, data)
        file.save(force_insert=True)
        record("provider_report.file_declared", actor=f"provider:{provider.pk}", obj=report, unit=provider.unit, sha256=file.sha256, md5=file.md5)
    return file


def _hash_only_file(report: ProviderReport, data: HashOnlyFileIn) -> ReportFile:
    """A file known by its hashes alone (not saved yet)."""
    return ReportFile(
        public_id=_public_id("file"), report=report, sha256=(data.sha256 or "").lower(), md5=(data.md5 or "").lower(),
        original_name=data.original_name, metadata=_file_metadata(data),
    )


def _file_metadata(data: FileMetadata) -> dict:
    return data.model_dump(mode="json", exclude={"original_name", "sha256", "md5"}, exclude_none=True)


def finish_report(provider: Provider, public_id: str) -> ProviderReport:
    with transaction.atomic(), audit_batch():
        report = _locked_draft(provider, public_id)
        now = timezone.now()
        _file_with_intake(report, list(report.files.select_related("blob")), now)
        report.save(update_fields=["state", "finished_at", "submission", "notified_step"])
        record("provider_report.finished", actor=f"provider:{provider.pk}", obj=report, unit=provider.unit, sandbox=report.sandbox,
               submission=report.submission.code if report.submission else "")
    return report


def _file_with_intake(report: ProviderReport, files: list[ReportFile], now) -> None:
    """Mark the report finished; unless it is a sandbox report, hand it to intake (a Submission and its case)."""
    from cophub.intake.services import receive

    if not report.sandbox:
        blobs = [(f.blob, f.original_name) for f in files if f.blob_id is not None]
        declared = [(f.sha256, f.md5, f.original_name) for f in files if f.blob_id is None]
        receipt = receive(unit=report.provider.unit, channel="provider", blobs=blobs, declared=declared, received_at=now,
                          **_submission_fields(report, files))
        report.submission = receipt.submission
        report.case_opened = receipt.case
        # The step the finish answer already shows; webhooks announce the next ones.
        report.notified_step = "received"
    report.state = ReportState.FINISHED
    report.finished_at = now


def retract_report(provider: Provider, public_id: str) -> ProviderReport:
    """A draft is withdrawn; a filed report is not (the hub already acts on it)."""
    with transaction.atomic():
        report = _locked_draft(provider, public_id)
        report.state = ReportState.RETRACTED
        report.retracted_at = timezone.now()
        report.save(update_fields=["state", "retracted_at"])
        blob_ids = _drop_files(report.files.all())
        record("provider_report.retracted", actor=f"provider:{provider.pk}", obj=report, unit=provider.unit)
        _release_after_commit(blob_ids)
    return report


def _release_after_commit(blob_ids: list[int]) -> None:
    # Only once the rows that held them are gone for good: a rollback must
    # never find its blob rows restored but their encrypted objects deleted.
    if blob_ids:
        transaction.on_commit(lambda: release_blobs(blob_ids))


def _drop_files(files) -> list[int]:
    """Delete a draft's file rows; returns the blobs they held, to release after commit."""
    blob_ids = [pk for pk in files.values_list("blob_id", flat=True) if pk]
    files.delete()
    return blob_ids


def _submission_fields(report: ProviderReport, files: list[ReportFile]) -> dict:
    """What a Submission records of a provider report; the rest goes in the description."""
    details = report.details
    internet = details.get("internet_details") or []
    first = internet[0] if internet else {}
    user = details.get("reported_user") or {}
    contact = details.get("reporter_contact") or {}
    return {
        "category": report.incident_type,
        "danger": bool(report.escalate_reason),
        "reporter_kind": "other_adult",
        "age_band": (details.get("victim") or {}).get("age_band", "") or "",
        "where_url": first.get("url", ""),
        "where_app": first.get("app", "")[:200],
        "reported_account": (user.get("username") or user.get("user_id") or "")[:300],
        "contact_name": contact.get("name", ""),
        "contact_email": contact.get("email", ""),
        "contact_phone": contact.get("phone", ""),
        "description": _description(report, files),
    }


def _description(report: ProviderReport, files: list[ReportFile]) -> str:
    """The summary, then every detail the provider gave, readable by a handler."""
    details = report.details
    lines = [report.summary] if report.summary else []
    lines.append(f"Nền tảng: {report.provider.name} · báo cáo {report.public_id} · thời điểm sự việc {report.incident_time.isoformat()}")
    if report.escalate_reason:
        lines.append(f"KHẨN CẤP: {report.escalate_reason}")
    if details.get("annotations"):
        lines.append("Ghi chú: " + ", ".join(details["annotations"]))
    for item in details.get("internet_details") or []:
        lines.append("Trên mạng: " + ", ".join(f"{k}={v}" for k, v in item.items() if v))
    if details.get("reported_user"):
        lines.append("Người bị báo cáo: " + ", ".join(f"{k}={v}" for k, v in details["reported_user"].items() if v))
    if (details.get("victim") or {}).get("school"):
        lines.append(f"Trường của trẻ: {details['victim']['school']}")
    for file in (f for f in files if f.blob_id is None):
        lines.append(f"Tệp chỉ khai báo mã băm: sha256={file.sha256 or '-'} md5={file.md5 or '-'} {file.original_name}")
    return "\n".join(lines)


def expire_drafts(now=None) -> int:
    """Delete drafts past their time, and the vaulted files only they held; returns how many.

    Blobs are content-addressed and may be shared with other reports:
    evidence.services.release_blobs deletes only those nothing else refers to.
    """
    now = now or timezone.now()
    expired = list(ProviderReport.objects.filter(state=ReportState.DRAFT, expires_at__lte=now).values_list("pk", "public_id", "provider_id"))
    with transaction.atomic():
        blob_ids = _drop_files(ReportFile.objects.filter(report_id__in=[pk for pk, _, _ in expired]))
        ProviderReport.objects.filter(pk__in=[pk for pk, _, _ in expired], state=ReportState.DRAFT).delete()
        if expired:
            record("provider_report.drafts_expired", actor="system", count=len(expired), reports=[public_id for _, public_id, _ in expired])
        _release_after_commit(blob_ids)
    return len(expired)
