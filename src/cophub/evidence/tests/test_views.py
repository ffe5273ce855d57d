"""Evidence through the console: blurred previews, the guarded clear view, and their audit."""

from __future__ import annotations

import io
import random

import pytest
from django.urls import reverse
from PIL import Image, ImageFilter, ImageStat

from cophub.audit.models import AuditEvent
from cophub.audit.services import verify
from cophub.cases import services as case_services
from cophub.cases.tests.helpers import case_with_image, first_blob, log_in, report_case, wav_bytes
from cophub.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def detailed_png(seed: int = 7, size=(320, 240)) -> bytes:
    """A picture full of sharp detail: coloured noise with hard-edged stripes."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(size[0] * size[1])])
    for x in range(0, size[0], 16):
        for y in range(size[1]):
            image.putpixel((x, y), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def url(name, case, blob, query=""):
    return reverse(f"console:{name}", args=[case.pk, blob.pk]) + query


def distinct_values(image: Image.Image) -> int:
    return sum(1 for count in image.histogram() if count)


def edge_energy(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]


def test_the_preview_is_grey_blurred_and_never_the_original(client, units, staff):
    original = detailed_png()
    case = report_case(units["school_a"], files=[("bang-chung.png", original)])
    blob = first_blob(case)
    log_in(client, staff["handler"])

    response = client.get(url("evidence_preview", case, blob))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "no-store, private"
    assert response["X-Content-Type-Options"] == "nosniff"
    served = response.content
    assert served != original and original[:64] not in served

    preview = Image.open(io.BytesIO(served))
    assert preview.format == "JPEG" and preview.mode == "L"
    source = Image.open(io.BytesIO(original)).convert("L")
    assert distinct_values(preview) < distinct_values(source) / 4
    assert edge_energy(preview) < edge_energy(source) / 10


def test_a_preview_view_is_audited(client, units, staff):
    case = case_with_image(units["school_a"])
    blob = first_blob(case)
    log_in(client, staff["counsellor"])
    assert client.get(url("evidence_preview", case, blob)).status_code == 200
    event = AuditEvent.objects.get(action="evidence.view_preview")
    assert (event.actor, event.object_type, event.object_id, event.unit_id, event.data["case"]) == (
        "counsellor-district", "evidence.blob", str(blob.pk), units["school_a"].pk, case.reference)
    assert event.ip == "127.0.0.1"


def test_an_observer_gets_no_preview(client, units, staff):
    case = case_with_image(units["school_a"])
    log_in(client, staff["observer"])
    assert client.get(url("evidence_preview", case, first_blob(case))).status_code == 403
    assert not AuditEvent.objects.filter(action="evidence.view_preview").exists()


def test_a_preview_not_ready_yet_is_not_found(client, units, staff):
    case = case_with_image(units["school_a"])
    blob = first_blob(case)
    blob.preview_status = "pending"
    blob.save(update_fields=["preview_status"])
    log_in(client, staff["handler"])
    assert client.get(url("evidence_preview", case, blob)).status_code == 404


def test_the_clear_view_warns_first_then_serves_the_file_sealed_and_audited(client, units, staff):
    original = detailed_png(seed=11)
    case = report_case(units["school_a"], files=[("bang-chung.png", original)])
    blob = first_blob(case)
    log_in(client, staff["handler"])

    warning = client.get(url("evidence_clear", case, blob))
    assert warning.status_code == 200
    assert "<img" not in warning.content.decode()
    assert not AuditEvent.objects.filter(action="evidence.view_clear").exists()

    response = client.post(url("evidence_clear", case, blob))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == "inline"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Cache-Control"] == "no-store, private"
    assert response["Content-Length"] == str(len(original))
    assert b"".join(response.streaming_content) == original

    event = AuditEvent.objects.get(action="evidence.view_clear")
    assert (event.actor, event.object_id, event.unit_id, event.data["case"]) == ("handler-district", str(blob.pk), units["school_a"].pk, case.reference)


@pytest.mark.parametrize("role", ["counsellor", "observer"])
def test_the_clear_view_is_refused_to_roles_without_it(client, units, staff, role):
    case = case_with_image(units["school_a"])
    blob = first_blob(case)
    log_in(client, staff[role])
    assert client.get(url("evidence_clear", case, blob)).status_code == 403
    response = client.post(url("evidence_clear", case, blob))
    assert response.status_code == 403
    assert not response.streaming
    assert not AuditEvent.objects.filter(action="evidence.view_clear").exists()


@pytest.mark.parametrize("role", ["teacher", "it_admin"])
def test_roles_that_cannot_see_the_case_do_not_learn_it_exists(client, units, staff, role):
    case = case_with_image(units["school_a"])
    log_in(client, staff[role])
    for name in ("evidence_preview", "evidence_clear"):
        assert client.get(url(name, case, first_blob(case))).status_code == 404


def test_a_blob_of_another_case_cannot_be_fetched_through_a_case_you_can_see(client, units):
    mine = case_with_image(units["school_a"], colour=(10, 10, 10))
    theirs = case_with_image(units["school_c"], colour=(250, 250, 250))
    foreign = first_blob(theirs)
    # The province handler may see both cases; the district handler only the first.
    for user in (make_user("handler-province", "handler", units["province"]), make_user("handler-hb", "handler", units["district"])):
        log_in(client, user)
        assert client.get(url("evidence_preview", mine, foreign)).status_code == 404
        assert client.get(url("evidence_clear", mine, foreign)).status_code == 404
        assert client.post(url("evidence_clear", mine, foreign)).status_code == 404
    log_in(client, make_user("handler-lc", "handler", units["other_district"]))
    assert client.get(url("evidence_preview", theirs, foreign)).status_code == 200
    assert client.get(url("evidence_preview", mine, first_blob(mine))).status_code == 404
    assert AuditEvent.objects.filter(action="evidence.view_preview").count() == 1


def test_files_of_a_merged_duplicate_are_reachable_through_the_target(client, units, staff):
    target = report_case(units["school_a"])
    duplicate = case_with_image(units["school_a"])
    handler = staff["handler"]
    case_services.merge(duplicate, target, handler, "trùng")
    log_in(client, handler)
    blob = first_blob(duplicate)
    assert client.get(url("evidence_preview", target, blob)).status_code == 200
    assert url("evidence_preview", target, blob) in client.get(reverse("console:case", args=[target.pk])).content.decode()


def test_sound_is_played_by_our_page_never_by_itself(client, units, staff):
    case = report_case(units["school_a"], files=[("ghi-am.wav", wav_bytes())])
    blob = first_blob(case)
    assert blob.kind == "audio"
    log_in(client, staff["handler"])

    case_page = client.get(reverse("console:case", args=[case.pk])).content.decode()
    assert "<audio" not in case_page and "autoplay" not in case_page

    player = client.post(url("evidence_clear", case, blob))
    assert player.status_code == 200 and not player.streaming
    html = player.content.decode()
    assert "<audio" in html and 'preload="none"' in html and "autoplay" not in html
    stream_url = player.context["stream_url"]

    streamed = client.get(stream_url)
    assert streamed.status_code == 200
    assert streamed["Content-Type"] == "audio/x-wav" and streamed["Content-Security-Policy"] == "sandbox"
    assert b"".join(streamed.streaming_content) == wav_bytes()
    assert AuditEvent.objects.filter(action="evidence.view_clear", object_id=str(blob.pk)).count() == 1

    assert client.get(url("evidence_stream", case, blob)).status_code == 403
    assert client.get(url("evidence_stream", case, blob, "?t=forged")).status_code == 403
    log_in(client, make_user("handler-2", "handler", units["district"]))
    assert client.get(stream_url).status_code == 403
    assert AuditEvent.objects.filter(action="evidence.view_clear").count() == 1


def test_the_audit_chain_holds_after_evidence_views(client, units, staff):
    case = case_with_image(units["school_a"])
    blob = first_blob(case)
    log_in(client, staff["handler"])
    client.get(reverse("console:case", args=[case.pk]))
    client.get(url("evidence_preview", case, blob))
    b"".join(client.post(url("evidence_clear", case, blob)).streaming_content)
    actions = list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))
    assert actions[-3:] == ["case.view", "evidence.view_preview", "evidence.view_clear"]
    assert verify().ok
