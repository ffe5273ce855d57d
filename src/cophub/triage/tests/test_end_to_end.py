"""End to end: reports come in through the real doors; detection and triage rank them before anyone looks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from cophub.audit.models import AuditEvent
from cophub.cases.models import Case, CaseLink, EventKind
from cophub.cases.tests.helpers import log_in
from cophub.conftest import make_user
from cophub.detection import hashing
from cophub.detection.models import Match
from cophub.hashbanks import services as banks
from cophub.intake.models import Submission
from cophub.providers import keys
from cophub.providers.models import Provider
from cophub.providers.tests.conftest import ApiClient, minimal_report

pytestmark = pytest.mark.django_db


def picture(seed: int, size=(800, 600)) -> Image.Image:
    """A picture with real structure: smooth random shapes, not a flat colour."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC)


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def adult_report(client, **fields):
    data = {"reporter_kind": "parent", "age_band": "9_12", "category": "other", "where_app": "Messenger",
            "description": "Con tôi nhận được ảnh này.", "contact_name": "", "contact_phone": "", "contact_email": ""}
    data.update(fields)
    response = client.post("/adult/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Submission.objects.order_by("-pk").first()


def case_of(submission) -> Case:
    return Case.objects.get(links__submission=submission)


def test_a_picture_matching_the_confirmed_list_becomes_p1_and_is_never_shown(client, units, staff):
    original = picture(seed=7)
    banks.add_signals(banks.hub_bank(), {"pdq": hashing.pdq_for_image(jpeg(original)).hash},
                      source="case:2026-000001", actor=staff["handler"])
    # A smaller, harder-compressed copy of the same picture arrives from a parent.
    copy = jpeg(original.resize((400, 300)), quality=45)
    submission = adult_report(client, school=units["school_a"].pk, files=[upload("anh.jpg", copy)])

    case = case_of(submission)
    assert case.priority == "P1" and case.category == "csam"
    assert case.unit == units["province"]  # abuse material goes to the province, not the school
    match = Match.objects.get(submission=submission)
    assert (match.bank_kind, match.signal_type) == ("hub", "pdq") and 0 < match.distance <= 31
    triage = case.events.get(kind=EventKind.TRIAGE)
    assert triage.data["to"] == "P1" and "known_material" in triage.data["reasons"]
    # No human looked: no preview or clear view was ever served.
    assert not AuditEvent.objects.filter(action__startswith="evidence.view").exists()

    lead = make_user("province-admin", "admin", units["province"])
    log_in(client, lead)
    blob_id = submission.files.get().blob_id
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    assert "evidence/%d/preview" % blob_id not in page and "evidence/%d/clear" % blob_id not in page
    assert "Known material" in page or "Tư liệu đã biết" in page
    for view in ("preview", "clear"):
        response = client.get(f"/console/cases/{case.pk}/evidence/{blob_id}/{view}/")
        assert response.status_code == 403
    assert not AuditEvent.objects.filter(action__startswith="evidence.view").exists()
    assert AuditEvent.objects.filter(action="evidence.known_refused").count() == 2


def test_an_unrelated_picture_is_not_a_match(client, units, staff):
    banks.add_signals(banks.hub_bank(), {"pdq": hashing.pdq_for_image(jpeg(picture(seed=7))).hash},
                      source="case:2026-000001", actor=staff["handler"])
    submission = adult_report(client, school=units["school_a"].pk, files=[upload("khac.jpg", jpeg(picture(seed=99)))])
    case = case_of(submission)
    assert not Match.objects.filter(submission=submission).exists()
    assert case.priority == "P3" and case.unit == units["school_a"]


def test_an_allow_list_cancels_a_perceptual_lead(client, units, staff):
    image = jpeg(picture(seed=11))
    pdq = hashing.pdq_for_image(image).hash
    imported = banks.Bank.objects.create(name="Danh sách nhập", kind="imported")
    allow = banks.Bank.objects.create(name="Ảnh vô hại đã biết", kind="allow")
    banks.add_signals(imported, {"pdq": pdq}, source="import", actor=staff["admin"])
    submission = adult_report(client, school=units["school_a"].pk, files=[upload("a.jpg", image)])
    assert case_of(submission).priority == "P2"
    banks.add_signals(allow, {"pdq": pdq}, source="false positive", actor=staff["admin"])
    second = adult_report(client, school=units["school_a"].pk, files=[upload("b.jpg", jpeg(picture(seed=11), quality=60))])
    assert {m.bank_kind for m in Match.objects.filter(submission=second)} == {"allow"}
    assert case_of(second).priority == "P3"


def test_a_childs_teen_code_message_about_a_secret_meeting_is_p1(client, units):
    """“có người lạ nhắn riêng bảo muốn gặp em, dặn không được nói với bố mẹ” in teen code."""
    text = "có ng lạ ib bảo mún gặp e, dặn ko dc nói vs bme"
    client.post("/child/", {"step": "1", "category": "other", "age_band": "9_12"})
    client.post("/child/", {"step": "2", "category": "other", "age_band": "9_12", "where_app": "Zalo"})
    response = client.post("/child/", {"step": "3", "category": "other", "age_band": "9_12", "where_app": "Zalo",
                                       "contact": "none", "description": text})
    assert response.status_code == 302
    case = case_of(Submission.objects.order_by("-pk").first())
    assert case.priority == "P1"
    assert case.category == "grooming"
    reasons = case.events.get(kind=EventKind.TRIAGE).data["reasons"]
    assert "meeting_secret" in reasons


def test_the_same_url_from_the_web_form_and_the_api_ends_in_linked_cases(client, units):
    url = "https://www.tiktok.com/@nguoi.la/video/7301234567890?utm_source=zalo&is_from_webapp=1"
    web = adult_report(client, school=units["school_a"].pk, where_url=url, category="grooming")
    provider = Provider.objects.create(name="Nền tảng A", unit=units["district"])
    api = ApiClient(keys.issue_key(provider, ["reports:write"])[1])
    # The provider writes the same page differently: no tracking parameter, scheme and host in capitals.
    body = minimal_report(internet_details=[{"kind": "social", "url": "HTTPS://WWW.TIKTOK.COM/@nguoi.la/video/7301234567890?is_from_webapp=1"}],
                         finish=True)
    response = api.post("/api/v1/reports", body, idempotency_key="same-url-1")
    assert response.status_code in (200, 201), response.content
    from_api = Submission.objects.filter(channel="provider").get()

    web_case, api_case = case_of(web), case_of(from_api)
    assert web_case.pk != api_case.pk
    link = CaseLink.objects.get()
    assert {link.case_a_id, link.case_b_id} == {web_case.pk, api_case.pk} and link.reason == "url"
    for case, other in ((web_case, api_case), (api_case, web_case)):
        event = case.events.get(kind=EventKind.LINKED)
        assert event.data["reference"] == other.reference


def test_the_same_file_twice_links_the_cases(client, units):
    image = jpeg(picture(seed=3))
    first = adult_report(client, school=units["school_a"].pk, files=[upload("1.jpg", image)])
    second = adult_report(client, school=units["school_b"].pk, files=[upload("2.jpg", image)])
    link = CaseLink.objects.get()
    assert link.reason == "sha256"
    assert {link.case_a_id, link.case_b_id} == {case_of(first).pk, case_of(second).pk}


def test_a_resized_copy_links_the_cases_through_pdq(client, units):
    image = picture(seed=5)
    first = adult_report(client, school=units["school_a"].pk, files=[upload("1.jpg", jpeg(image))])
    second = adult_report(client, school=units["school_a"].pk, files=[upload("2.jpg", jpeg(image.resize((500, 375)), quality=50))])
    link = CaseLink.objects.get()
    assert link.reason == "pdq"
    assert {link.case_a_id, link.case_b_id} == {case_of(first).pk, case_of(second).pk}


def test_a_homepage_alone_does_not_link_cases(client, units):
    adult_report(client, school=units["school_a"].pk, where_url="https://facebook.com/")
    adult_report(client, school=units["school_a"].pk, where_url="https://www.facebook.com")
    assert not CaseLink.objects.exists()


def test_a_file_confirmed_by_a_handler_is_known_in_the_next_report(client, units, staff):
    image = jpeg(picture(seed=21))
    first = adult_report(client, school=units["school_a"].pk, files=[upload("1.jpg", image)])
    case = case_of(first)
    handler = make_user("school-handler", "handler", units["district"])
    log_in(client, handler)
    blob_id = first.files.get().blob_id
    response = client.post(f"/console/cases/{case.pk}/evidence/{blob_id}/confirm/", {"confirm": "on"})
    assert response.status_code == 302
    client.logout()
    # A re-encoded copy (a different SHA-256) arrives: known through the PDQ added at confirmation.
    second = adult_report(client, school=units["school_b"].pk, files=[upload("2.jpg", jpeg(picture(seed=21), quality=55))])
    assert case_of(second).priority == "P1"
    assert Match.objects.get(submission=second, signal_type="pdq").bank_kind == "hub"


def test_a_known_video_re_encoded_smaller_is_recognised_through_vpdq(client, units, staff, tmp_path):
    from cophub.detection.tests.test_video import FFMPEG, HAVE_VPDQ, SETUP_HINT, encoder, ffmpeg, require_system

    require_system(FFMPEG is not None, f"the ffmpeg CLI is not installed: {SETUP_HINT}")
    require_system(HAVE_VPDQ, f"vpdq is not installed: {SETUP_HINT}")
    original, smaller = tmp_path / "original.mp4", tmp_path / "smaller.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=5", *encoder(), "-b:v", "1200k", str(original))
    ffmpeg("-i", str(original), "-vf", "scale=320:180", *encoder(), "-b:v", "150k", str(smaller))

    first = adult_report(client, school=units["school_a"].pk, files=[SimpleUploadedFile("v.mp4", original.read_bytes(), "video/mp4")])
    handler = make_user("video-handler", "handler", units["district"])
    log_in(client, handler)
    blob_id = first.files.get().blob_id
    assert client.post(f"/console/cases/{case_of(first).pk}/evidence/{blob_id}/confirm/", {"confirm": "on"}).status_code == 302
    assert banks.BankEntry.objects.filter(signal_type="vpdq", bank=banks.hub_bank()).count() == 1
    client.logout()

    second = adult_report(client, school=units["school_b"].pk, files=[SimpleUploadedFile("w.mp4", smaller.read_bytes(), "video/mp4")])
    match = Match.objects.get(submission=second)
    assert (match.bank_kind, match.signal_type) == ("hub", "vpdq")
    assert match.detail["target_percent"] >= 80
    case = case_of(second)
    assert case.priority == "P1" and case.category == "csam"


def test_a_provider_file_named_by_its_hash_alone_matches_the_confirmed_list(units, staff):
    sha256 = "ab" * 32
    banks.add_signals(banks.hub_bank(), {"sha256": sha256}, source="case:2026-000009", actor=staff["handler"])
    provider = Provider.objects.create(name="Nền tảng B", unit=units["district"])
    api = ApiClient(keys.issue_key(provider, ["reports:write"])[1])
    body = minimal_report(incident_type="other", files=[{"sha256": sha256.upper(), "original_name": "x.jpg"}], finish=True)
    response = api.post("/api/v1/reports", body, idempotency_key="hash-only-1")
    assert response.status_code == 201, response.content
    submission = Submission.objects.get(channel="provider")
    match = Match.objects.get(submission=submission)
    assert (match.bank_kind, match.signal_type, match.blob_id, match.detail) == ("hub", "sha256", None, {"declared": "x.jpg"})
    assert case_of(submission).priority == "P1"


def test_withdrawing_a_mistaken_confirmation_lifts_the_verdict(client, units, staff):
    image = picture(seed=31)
    first = adult_report(client, school=units["school_a"].pk, files=[upload("1.jpg", jpeg(image))])
    handler = make_user("handler-w", "handler", units["district"])
    log_in(client, handler)
    case = case_of(first)
    blob_id = first.files.get().blob_id
    client.post(f"/console/cases/{case.pk}/evidence/{blob_id}/confirm/", {"confirm": "on"})
    client.logout()
    second = adult_report(client, school=units["school_a"].pk, files=[upload("2.jpg", jpeg(image))])
    log_in(client, handler)
    other = case_of(second)
    assert other.priority == "P1" and other.unit == units["province"]
    lead = make_user("province-lead", "admin", units["province"])
    log_in(client, lead)
    assert client.get(f"/console/cases/{other.pk}/evidence/{blob_id}/preview/").status_code == 403
    response = client.post(f"/console/cases/{other.pk}/evidence/{blob_id}/withdraw/", {"reason": "nhầm: ảnh vô hại"})
    assert response.status_code == 302
    assert client.get(f"/console/cases/{other.pk}/evidence/{blob_id}/preview/").status_code == 200


def test_a_confirmed_case_link_goes_on_the_hub_list_and_matches_the_next_report(client, units):
    url = "https://nhom-kin.example/bai/123?utm_source=fb"
    first = adult_report(client, school=units["school_a"].pk, where_url=url)
    case = case_of(first)
    handler = make_user("url-handler", "handler", units["district"])
    log_in(client, handler)
    normalised = "https://nhom-kin.example/bai/123"
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    assert normalised in page
    # A link that is not the case's is refused (no way to list an arbitrary address through a case).
    assert client.post(f"/console/cases/{case.pk}/links/confirm/", {"url": "https://other.example/x", "confirm": "on"}).status_code == 404
    assert client.post(f"/console/cases/{case.pk}/links/confirm/", {"url": normalised, "confirm": "on"}).status_code == 302
    assert banks.BankEntry.objects.get(bank=banks.hub_bank(), signal_type="url").value == normalised
    assert case.events.filter(kind=EventKind.EVIDENCE, data__url_list="added").exists()
    assert AuditEvent.objects.filter(action="case.url_list_added").exists()
    client.logout()

    second = adult_report(client, school=units["school_b"].pk, description=f"Trang này: {url.replace('https://nhom-kin.example', 'hxxps://NHOM-KIN[.]example')} ạ")
    match = Match.objects.get(submission=second)
    assert (match.signal_type, match.bank_kind, match.url) == ("url", "hub", normalised)
    assert case_of(second).events.get(kind=EventKind.TRIAGE).data["reasons"] == ["url_listed"]
    assert case_of(second).priority == "P2"

    log_in(client, handler)
    response = client.post(f"/console/cases/{case.pk}/links/withdraw/", {"url": normalised, "reason": "trang đã sạch"})
    assert response.status_code == 302
    assert not banks.BankEntry.objects.get(signal_type="url").enabled


def test_a_file_staff_attach_is_hashed_by_the_worker(units, staff):
    from cophub.cases import services as cases
    from cophub.detection.models import FileSignals

    receipt = receive_report(units)
    accepted, _ = cases.attach_files(receipt.case, [("ban-chup.jpg", jpeg(picture(seed=41)))], staff["handler"])
    signals = FileSignals.objects.get(blob=accepted[0].blob)
    assert signals.status == "done" and len(signals.orientations()) == 8


def receive_report(units):
    from cophub.intake.services import receive

    return receive(unit=units["school_a"], channel="web_adult", description="có ảnh")
