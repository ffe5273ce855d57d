"""The provider API over HTTP: reports, files, finish and retract, errors, idempotency."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from cophub.cases.models import Case
from cophub.cases.services import case_for_submission
from cophub.evidence import vault
from cophub.intake.models import Submission
from cophub.providers import keys
from cophub.providers.models import IdempotencyRecord, ProviderReport, ReportFile

from .conftest import ApiClient, minimal_report

pytestmark = pytest.mark.django_db

REPORTS = "/api/v1/reports"


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), (10, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"].endswith(code) and body["title"] and body["detail"]
    return body


def open_draft(client: ApiClient, **extra) -> str:
    response = client.post(REPORTS, minimal_report(**extra))
    assert response.status_code == 201, response.content
    return response.json()["id"]


# --- Opening, reading, finishing ------------------------------------------------------


def test_minimal_report_opens_a_draft_with_a_public_id(live):
    response = live.post(REPORTS, minimal_report())
    assert response.status_code == 201 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["state"] == "draft" and body["id"].startswith("rpt_") and not body["id"][4:].isdigit()
    assert body["links"]["finish"] == f"{REPORTS}/{body['id']}/finish"
    assert body["takedown_requests"] == [] and body["case"] is None
    assert not Submission.objects.exists()


def test_an_incident_time_without_a_zone_is_vietnam_time(live):
    from datetime import datetime, timezone as tz

    naive = live.post(REPORTS, {**minimal_report(), "incident_time": "2026-11-01T10:00:00"}).json()
    zoned = live.post(REPORTS, {**minimal_report(), "incident_time": "2026-11-01T10:00:00+09:00"}).json()
    utc = {r.public_id: r.incident_time.astimezone(tz.utc) for r in [ProviderReport.objects.get(public_id=naive["id"]), ProviderReport.objects.get(public_id=zoned["id"])]}
    assert utc[naive["id"]] == datetime(2026, 11, 1, 3, 0, tzinfo=tz.utc)
    assert utc[zoned["id"]] == datetime(2026, 11, 1, 1, 0, tzinfo=tz.utc)
    assert datetime.fromisoformat(naive["incident_time"]) == utc[naive["id"]]


def test_one_call_report_with_every_detail_becomes_a_provider_submission_at_p1(live, units):
    report = minimal_report(
        incident_type="sextortion", summary="Tài khoản đe doạ phát tán ảnh của một học sinh.",
        escalate_reason="Đe doạ tự hại trong 24 giờ tới", annotations=["sextortion", "minor_to_minor"],
        internet_details=[{"kind": "chat", "url": "https://chat.example/c/1", "app": "ChatApp", "user_ids": ["u-1"]}],
        reported_user={"username": "ke_xau_99", "user_id": "9876"}, victim={"age_band": "13_15", "school": "THCS Hồng Bàng"},
        reporter_contact={"name": "Trust & Safety", "email": "ts@a.example"}, finish=True,
    )
    response = live.post(REPORTS, report)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "finished" and body["case"]["step"] == "received"
    submission = ProviderReport.objects.get(public_id=body["id"]).submission
    assert submission.channel == "provider" and submission.unit == units["district"] and submission.category == "sextortion"
    assert submission.danger and submission.age_band == "13_15" and submission.reported_account == "ke_xau_99"
    assert "Đe doạ tự hại" in submission.description and "minor_to_minor" in submission.description
    case = case_for_submission(submission)
    assert case.priority == "P1"


def test_finish_attaches_uploaded_files_and_lists_declared_hashes(live):
    report_id = open_draft(live)
    upload = live.post(f"{REPORTS}/{report_id}/files", data={"file": io_named(jpeg_bytes(), "anh.jpg")})
    assert upload.status_code == 201, upload.content
    declared = live.post(f"{REPORTS}/{report_id}/files", {"md5": "a" * 32, "original_name": "old.mp4", "grade": "B1"})
    assert declared.status_code == 201 and declared.json()["hash_only"]
    finished = live.post(f"{REPORTS}/{report_id}/finish")
    assert finished.status_code == 200 and finished.json()["state"] == "finished"
    submission = ProviderReport.objects.get(public_id=report_id).submission
    assert [f.blob.sha256 for f in submission.files.all()] == [upload.json()["sha256"]]
    assert "md5=" + "a" * 32 in submission.description
    assert case_for_submission(submission).priority == "P2"


def io_named(data: bytes, name: str):
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def test_upload_returns_server_hashes_and_the_vault_holds_it_encrypted(live):
    report_id = open_draft(live)
    data = jpeg_bytes()
    metadata = {"viewed_by_provider": True, "publicly_available": False, "annotations": ["screenshot"], "grade": "A2",
                "original_sha256": "b" * 64, "exif": {"Model": "Phone"}}
    response = live.post(f"{REPORTS}/{report_id}/files", data={"file": io_named(data, "chup.jpg"), "metadata": json.dumps(metadata)})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["md5"] == hashlib.md5(data).hexdigest()
    assert body["size"] == len(data) and body["original_name"] == "chup.jpg" and not body["hash_only"]
    assert body["metadata"]["grade"] == "A2" and body["metadata"]["exif"] == {"Model": "Phone"}
    blob = ReportFile.objects.get(public_id=body["id"]).blob
    on_disk = vault.object_path(blob).read_bytes()
    assert not on_disk.startswith(b"\xff\xd8\xff") and data[:200] not in on_disk
    assert vault.read_plaintext(blob) == data


def test_a_refused_upload_is_a_problem(live):
    report_id = open_draft(live)
    response = live.post(f"{REPORTS}/{report_id}/files", data={"file": io_named(b"<svg onload=alert(1)></svg>", "x.svg")})
    body = assert_problem(response, 422, "file.refused")
    assert body["reason"]
    assert not ReportFile.objects.exists()


def test_hash_only_file_needs_a_valid_hash(live):
    report_id = open_draft(live)
    ok = live.post(f"{REPORTS}/{report_id}/files", {"sha256": "C" * 64, "viewed_by_provider": False})
    assert ok.status_code == 201 and ok.json()["sha256"] == "c" * 64 and ok.json()["md5"] == ""
    assert ReportFile.objects.get(public_id=ok.json()["id"]).blob is None
    assert_problem(live.post(f"{REPORTS}/{report_id}/files", {"original_name": "x"}), 422, "validation.error")
    assert_problem(live.post(f"{REPORTS}/{report_id}/files", {"md5": "zz"}), 422, "validation.error")


def test_get_shows_state_and_never_staff_details(live, staff):
    from cophub.cases import services as cases

    report_id = open_draft(live, finish=True)
    submission = ProviderReport.objects.get(public_id=report_id).submission
    case = case_for_submission(submission)
    handler = staff["handler"]
    cases.add_note(case, "Ghi chú nội bộ bí mật", handler)
    cases.transition(case, "triaged", handler, "")
    cases.transition(case, "assessing", handler, "")
    body = live.get(f"{REPORTS}/{report_id}").json()
    assert body["state"] == "finished" and body["case"]["step"] == "working"
    text = json.dumps(body, ensure_ascii=False)
    assert "bí mật" not in text and handler.username not in text and case.reference not in text


# --- Finish, retract, expiry ------------------------------------------------------------


def test_finish_twice_is_a_stable_conflict(live):
    report_id = open_draft(live)
    assert live.post(f"{REPORTS}/{report_id}/finish").status_code == 200
    assert_problem(live.post(f"{REPORTS}/{report_id}/finish"), 409, "report.already_finished")
    assert Submission.objects.count() == 1


def test_retract_after_finish_is_refused(live):
    report_id = open_draft(live, finish=True)
    assert_problem(live.post(f"{REPORTS}/{report_id}/retract"), 409, "report.already_finished")
    assert ProviderReport.objects.get(public_id=report_id).state == "finished"


def test_retract_twice_and_nothing_after(live):
    report_id = open_draft(live)
    live.post(f"{REPORTS}/{report_id}/files", {"md5": "d" * 32})
    retracted = live.post(f"{REPORTS}/{report_id}/retract")
    assert retracted.status_code == 200 and retracted.json()["state"] == "retracted" and retracted.json()["files"] == []
    assert_problem(live.post(f"{REPORTS}/{report_id}/retract"), 409, "report.already_retracted")
    assert_problem(live.post(f"{REPORTS}/{report_id}/finish"), 409, "report.already_retracted")
    assert_problem(live.post(f"{REPORTS}/{report_id}/files", {"md5": "d" * 32}), 409, "report.already_retracted")
    assert not Submission.objects.exists()


def test_an_expired_draft_refuses_work_and_the_command_removes_it(live):
    report_id = open_draft(live)
    live.post(f"{REPORTS}/{report_id}/files", data={"file": io_named(jpeg_bytes(), "a.jpg")})
    ProviderReport.objects.filter(public_id=report_id).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert live.get(f"{REPORTS}/{report_id}").json()["state"] == "expired"
    assert_problem(live.post(f"{REPORTS}/{report_id}/finish"), 410, "report.expired")
    assert_problem(live.post(f"{REPORTS}/{report_id}/files", {"md5": "e" * 32}), 410, "report.expired")
    fresh = open_draft(live)
    out = io.StringIO()
    call_command("api_expire_drafts", stdout=out)
    assert "expired drafts: 1" in out.getvalue()
    assert list(ProviderReport.objects.values_list("public_id", flat=True)) == [fresh]
    assert not ReportFile.objects.exists()
    assert_problem(live.get(f"{REPORTS}/{report_id}"), 404, "report.not_found")


# --- Keys, scopes, other providers --------------------------------------------------------


def test_missing_wrong_and_revoked_keys(live, provider):
    assert_problem(ApiClient("").client.post(REPORTS, data="{}", content_type="application/json"), 401, "auth.missing_key")
    assert_problem(ApiClient("cph_live_abcdefghij_wrong").post(REPORTS, minimal_report()), 401, "auth.invalid_key")
    key, plaintext = keys.issue_key(provider, ["reports:write"])
    keys.revoke_key(key)
    assert_problem(ApiClient(plaintext).post(REPORTS, minimal_report()), 401, "auth.revoked_key")
    assert not ProviderReport.objects.exists()


def test_sandbox_reports_are_finished_without_a_submission(sandbox):
    report_id = open_draft(sandbox)
    sandbox.post(f"{REPORTS}/{report_id}/files", data={"file": io_named(jpeg_bytes(), "a.jpg")})
    finished = sandbox.post(f"{REPORTS}/{report_id}/finish")
    assert finished.status_code == 200 and finished.json()["state"] == "finished" and finished.json()["sandbox"]
    assert finished.json()["case"] is None
    one_call = sandbox.post(REPORTS, minimal_report(finish=True, escalate_reason="khẩn"))
    assert one_call.json()["state"] == "finished"
    assert not Submission.objects.exists() and not Case.objects.exists()
    assert_problem(sandbox.post(REPORTS, minimal_report(incident_type="nope")), 422, "validation.error")


def test_a_key_without_reports_write_gets_403(provider):
    reader = ApiClient(keys.issue_key(provider, ["hashes:read"])[1])
    body = assert_problem(reader.post(REPORTS, minimal_report()), 403, "auth.scope")
    assert body["required_scope"] == "reports:write"
    assert_problem(reader.get(f"{REPORTS}/rpt_x"), 403, "auth.scope")


def test_another_providers_report_is_as_missing_as_a_wrong_id(live, other):
    report_id = open_draft(live)
    theirs = other.get(f"{REPORTS}/{report_id}")
    missing = other.get(f"{REPORTS}/rpt_doesnotexist")
    assert_problem(theirs, 404, "report.not_found")
    assert json.loads(theirs.content.replace(report_id.encode(), b"X")) == json.loads(missing.content.replace(b"rpt_doesnotexist", b"X"))
    for action in ("finish", "retract"):
        assert_problem(other.post(f"{REPORTS}/{report_id}/{action}"), 404, "report.not_found")
    assert_problem(other.post(f"{REPORTS}/{report_id}/files", {"md5": "f" * 32}), 404, "report.not_found")
    assert ProviderReport.objects.get(public_id=report_id).state == "draft"


# --- Validation and other problems -------------------------------------------------------------


def test_validation_errors_are_problem_documents_with_the_fields(live):
    body = assert_problem(live.post(REPORTS, {"incident_type": "csam"}), 422, "validation.error")
    assert any("incident_time" in e["loc"] for e in body["errors"])
    body = assert_problem(live.post(REPORTS, minimal_report(annotations=["made_up"])), 422, "validation.error")
    assert_problem(live.post(REPORTS, minimal_report(victim={"age_band": "ancient"})), 422, "validation.error")
    bad_json = live.client.post(REPORTS, data="{not json", content_type="application/json", headers=live.headers())
    assert bad_json.status_code in (400, 422) and bad_json["Content-Type"] == "application/problem+json" and bad_json.json()["code"]


def test_unknown_paths_and_methods_under_api_are_problems(live):
    assert_problem(live.get("/api/v1/nothing-here"), 404, "request.not_found")
    wrong_method = live.client.delete(REPORTS, headers=live.headers())
    assert_problem(wrong_method, 405, "request.method_not_allowed")
    assert "POST" in wrong_method["Allow"]


def test_too_large_bodies_are_problems(live, settings):
    settings.COPHUB_MAX_REQUEST_BYTES = 1000
    assert_problem(live.post(REPORTS, minimal_report(summary="x" * 2000)), 413, "request.too_large")


def test_rate_limit_gives_429_with_retry_after(live, settings):
    from django.core.cache import cache

    cache.clear()
    settings.RATELIMIT_ENABLE = True
    settings.COPHUB_API_RATE = "3/m"
    statuses = [live.get(f"{REPORTS}/rpt_x").status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    limited = live.get(f"{REPORTS}/rpt_x")
    assert_problem(limited, 429, "request.rate_limited")
    assert limited["Retry-After"] == "60"
    cache.clear()


# --- Idempotency ----------------------------------------------------------------------------------


def replay(client: ApiClient, path: str, body=None, **multipart):
    """Send the same request twice with one key; returns both answers."""
    key = uuid.uuid4().hex
    first = client.post(path, body, idempotency_key=key, **multipart)
    if multipart:
        multipart = {"data": {name: io_named(value.getvalue(), value.name) if hasattr(value, "getvalue") else value
                              for name, value in multipart["data"].items()}}
    second = client.post(path, body, idempotency_key=key, **multipart)
    return first, second


def assert_replayed(first, second):
    assert first.status_code < 500 and "Idempotent-Replayed" not in first
    assert second.status_code == first.status_code and second.content == first.content
    assert second["Idempotent-Replayed"] == "true"


def test_every_post_is_idempotent(live):
    first, second = replay(live, REPORTS, minimal_report())
    assert_replayed(first, second)
    assert ProviderReport.objects.count() == 1
    report_id = first.json()["id"]

    assert_replayed(*replay(live, f"{REPORTS}/{report_id}/files", {"sha256": "1" * 64}))
    assert_replayed(*replay(live, f"{REPORTS}/{report_id}/files", data={"file": io_named(jpeg_bytes(), "a.jpg")}))
    assert ReportFile.objects.count() == 2

    assert_replayed(*replay(live, f"{REPORTS}/batch", {"reports": [minimal_report(), minimal_report()]}))
    assert ProviderReport.objects.count() == 3

    assert_replayed(*replay(live, f"{REPORTS}/{report_id}/finish"))
    assert Submission.objects.count() == 1

    other_id = open_draft(live)
    assert_replayed(*replay(live, f"{REPORTS}/{other_id}/retract"))


def test_same_key_with_another_body_is_refused(live):
    assert live.post(REPORTS, minimal_report(), idempotency_key="abc").status_code == 201
    assert_problem(live.post(REPORTS, minimal_report(summary="khác"), idempotency_key="abc"), 422, "idempotency.key_reused")
    report_id = ProviderReport.objects.get().public_id
    assert_problem(live.post(f"{REPORTS}/{report_id}/finish", idempotency_key="abc"), 422, "idempotency.key_reused")
    assert ProviderReport.objects.count() == 1


def test_errors_are_replayed_too_and_keys_belong_to_one_provider(live, other):
    missing = live.post(f"{REPORTS}/rpt_nope/finish", idempotency_key="e1")
    assert_problem(missing, 404, "report.not_found")
    assert_replayed(missing, live.post(f"{REPORTS}/rpt_nope/finish", idempotency_key="e1"))
    assert other.post(REPORTS, minimal_report(), idempotency_key="e1").status_code == 201


def test_a_key_still_in_progress_is_not_run_twice(live, provider):
    """The insert-first record makes a concurrent duplicate wait instead of running."""
    from cophub.providers.idempotency import request_digest

    from django.test import RequestFactory

    body = json.dumps(minimal_report()).encode()
    factory_request = RequestFactory().post(REPORTS, data=body, content_type="application/json")
    IdempotencyRecord.objects.create(provider=provider, key="busy", method="POST", path=REPORTS, request_digest=request_digest(factory_request))
    response = live.post(REPORTS, minimal_report(), idempotency_key="busy")
    assert_problem(response, 409, "idempotency.in_progress")
    assert response["Retry-After"] == "1" and not ProviderReport.objects.exists()


def test_old_idempotency_records_are_forgotten(live):
    live.post(REPORTS, minimal_report(), idempotency_key="old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    again = live.post(REPORTS, minimal_report(), idempotency_key="old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert ProviderReport.objects.count() == 2


def test_one_call_report_with_two_inline_hash_only_files(live):
    files = [{"sha256": "A" * 64, "original_name": "clip.mp4", "grade": "B1", "viewed_by_provider": True},
             {"md5": "b" * 32, "annotations": ["screenshot"]}]
    response = live.post(REPORTS, minimal_report(files=files, finish=True), idempotency_key=str(uuid.uuid4()))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "finished" and body["case"]["step"] == "received"
    assert [(f["sha256"], f["md5"], f["hash_only"], f["size"]) for f in body["files"]] == [("a" * 64, "", True, None), ("", "b" * 32, True, None)]
    assert body["files"][0]["original_name"] == "clip.mp4" and body["files"][0]["metadata"]["grade"] == "B1"
    assert body["files"][1]["metadata"]["annotations"] == ["screenshot"]
    report = ProviderReport.objects.get(public_id=body["id"])
    assert report.files.count() == 2 and not report.files.exclude(blob=None).exists()
    submission = report.submission
    assert submission.channel == "provider" and not submission.files.exists()
    assert "sha256=" + "a" * 64 in submission.description and "md5=" + "b" * 32 in submission.description
    # Without finish the files wait on the draft, as if declared one by one.
    draft = live.post(REPORTS, minimal_report(files=files[:1])).json()
    assert draft["state"] == "draft" and len(draft["files"]) == 1


@pytest.mark.parametrize("files", [
    [{"sha256": "a" * 64}, {"original_name": "no hash"}],
    [{"sha256": "a" * 64}, {"md5": "zz"}],
    [{"sha256": "g" * 64}],
    [{"sha256": "a" * 64}] * 11,
    {"sha256": "a" * 64},
])
def test_bad_inline_files_refuse_the_whole_report(live, files):
    body = assert_problem(live.post(REPORTS, minimal_report(files=files, finish=True)), 422, "validation.error")
    assert any("files" in error["loc"] for error in body["errors"])
    assert not ProviderReport.objects.exists() and not ReportFile.objects.exists() and not Submission.objects.exists()


# --- Batch ---------------------------------------------------------------------------------------------


def test_batch_with_one_invalid_item_files_the_others(live):
    items = [minimal_report(summary="một"), {"incident_type": "not-a-category"}, minimal_report(finish=True)]
    response = live.post(f"{REPORTS}/batch", {"reports": items})
    assert response.status_code == 200
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (2, 1)
    assert [r["status"] for r in body["results"]] == [201, 422, 201]
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert body["results"][1]["problem"]["code"] == "validation.error" and "report" not in body["results"][1]
    assert body["results"][2]["report"]["state"] == "finished"
    assert ProviderReport.objects.count() == 2 and Submission.objects.count() == 1


def test_batch_all_valid_is_201_and_over_100_is_refused(live):
    response = live.post(f"{REPORTS}/batch", {"reports": [minimal_report()] * 3})
    assert response.status_code == 201 and response.json()["succeeded"] == 3
    assert_problem(live.post(f"{REPORTS}/batch", {"reports": [minimal_report()] * 101}), 422, "validation.error")
    assert_problem(live.post(f"{REPORTS}/batch", {"reports": []}), 422, "validation.error")


def test_batch_items_may_carry_inline_files(live):
    items = [minimal_report(files=[{"sha256": "c" * 64}, {"md5": "d" * 32}], finish=True),
             minimal_report(files=[{"md5": "not-a-hash"}], finish=True)]
    response = live.post(f"{REPORTS}/batch", {"reports": items})
    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["status"] for r in body["results"]] == [201, 422]
    assert [f["sha256"] or f["md5"] for f in body["results"][0]["report"]["files"]] == ["c" * 64, "d" * 32]
    assert body["results"][1]["problem"]["errors"][0]["loc"][0] == "files"
    assert ReportFile.objects.count() == 2 and Submission.objects.count() == 1


# --- OpenAPI ----------------------------------------------------------------------------------------------


def _refs(node):
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def assert_openapi3(document: dict) -> None:
    """The OpenAPI 3 rules a client generator trips on: required fields, responses, resolvable refs."""
    assert document["openapi"].startswith("3.") and document["info"]["title"] and document["info"]["version"]
    for path, item in document["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in {"get", "post", "put", "patch", "delete"}
            assert operation["responses"] and operation["operationId"]
            assert all(code.isdigit() and "description" in answer for code, answer in operation["responses"].items())
    for ref in _refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in document["components"]["schemas"], ref


def test_openapi_document_is_valid_and_lists_every_operation(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert_openapi3(document)
    assert document["openapi"].startswith("3.") and document["info"]["version"] == "1"
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("POST", "/api/v1/reports"), ("POST", "/api/v1/reports/batch"), ("GET", "/api/v1/reports/{report_id}"),
        ("POST", "/api/v1/reports/{report_id}/files"), ("POST", "/api/v1/reports/{report_id}/finish"),
        ("POST", "/api/v1/reports/{report_id}/retract"),
        ("POST", "/api/v1/webhooks"), ("GET", "/api/v1/webhooks"), ("GET", "/api/v1/webhooks/deliveries"),
        ("DELETE", "/api/v1/webhooks/{webhook_id}"), ("GET", "/api/v1/hashes"), ("GET", "/api/v1/lists/blocked-urls"),
    }
    files_body = document["paths"]["/api/v1/reports/{report_id}/files"]["post"]["requestBody"]["content"]
    assert set(files_body) == {"multipart/form-data", "application/json"}
    assert {"type": "http", "scheme": "bearer"}.items() <= next(iter(document["components"]["securitySchemes"].values())).items()
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_docs_page_is_served(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200 and b"openapi.json" in response.content


def test_api_needs_no_csrf_token_and_sets_no_cookie(live):
    """Bearer keys are not ambient credentials: the API is CSRF-exempt and stateless."""
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(REPORTS, data=json.dumps(minimal_report()), content_type="application/json", headers=live.headers())
    assert response.status_code == 201 and not response.cookies


@pytest.mark.django_db(transaction=True)
def test_files_of_retracted_and_expired_drafts_leave_the_vault(live):
    """A draft's vaulted file goes with the draft, unless another report holds it too."""
    from cophub.evidence.models import Blob

    retracted_id = open_draft(live)
    live.post(f"{REPORTS}/{retracted_id}/files", data={"file": io_named(jpeg_bytes(), "a.jpg")})
    blob = Blob.objects.get()
    path = vault.object_path(blob)
    live.post(f"{REPORTS}/{retracted_id}/retract")
    assert not Blob.objects.exists() and not path.exists()

    shared = jpeg_bytes()
    kept_id, expired_id = open_draft(live), open_draft(live)
    for report_id in (kept_id, expired_id):
        live.post(f"{REPORTS}/{report_id}/files", data={"file": io_named(shared, "b.jpg")})
    ProviderReport.objects.filter(public_id=expired_id).update(expires_at=timezone.now() - timedelta(minutes=1))
    call_command("api_expire_drafts", stdout=io.StringIO())
    assert Blob.objects.count() == 1, "still held by the other draft"
    assert vault.read_plaintext(Blob.objects.get()) == shared


def test_nul_and_lone_surrogates_are_made_storable_not_a_500(live):
    """PostgreSQL refuses NUL and unpaired surrogates in text and jsonb (schemathesis found it)."""
    report = minimal_report(
        summary="Tin nhắn\x00 lạ \udaa3 👍",
        reported_user={"username": "ke\x00xau", "display_name": "\udc00"},
        internet_details=[{"kind": "chat", "app": "Zalo\x00", "url": "https://zalo.me/x\udbff"}],
        finish=True,
    )
    response = live.post(REPORTS, report)
    assert response.status_code == 201, response.content
    stored = ProviderReport.objects.get(public_id=response.json()["id"])
    assert stored.summary == "Tin nhắn lạ \ufffd 👍"
    assert stored.details["reported_user"]["username"] == "kexau"
    submission = Submission.objects.get()
    assert "\x00" not in submission.description and submission.where_app == "Zalo"
