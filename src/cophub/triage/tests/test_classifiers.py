"""Pluggable classifiers reach triage: their labels are kept with the scan and ranked as leads."""

from __future__ import annotations

import pytest

from cophub.cases.models import Case, EventKind
from cophub.conftest import jpeg_bytes
from cophub.detection import classifiers
from cophub.detection.classifiers import Label
from cophub.detection.models import SubmissionScan
from cophub.intake.services import receive

pytestmark = pytest.mark.django_db


class SuspiciousPictures:
    """Stands in for an image model (NudeNet needs the AGPL extra): every picture scores 0.9."""

    name = "test-images"

    def classify(self, image_bytes: bytes) -> list[Label]:
        assert image_bytes[:2] == b"\xff\xd8"  # it gets the clear JPEG bytes from the vault
        return [Label("sexual_content", 0.9)]


class WorriedReader:
    name = "test-text"

    def classify(self, text: str) -> list[Label]:
        return [Label("self_harm", 0.95)] if "tạm biệt mọi người" in text else []


class Broken:
    name = "broken"

    def classify(self, value) -> list[Label]:
        raise RuntimeError("model file missing")


@pytest.fixture
def configured(settings):
    here = "cophub.triage.tests.test_classifiers"
    settings.COPHUB_IMAGE_CLASSIFIERS = [f"{here}.SuspiciousPictures", f"{here}.Broken"]
    settings.COPHUB_TEXT_CLASSIFIERS = ["cophub.detection.classifiers.LexiconClassifier", f"{here}.WorriedReader"]
    classifiers.forget_classifiers()
    yield
    classifiers.forget_classifiers()


def test_an_image_classifier_label_is_a_lead(units, configured):
    receipt = receive(unit=units["school_a"], channel="web_adult", description="ảnh lạ", files=[("a.jpg", jpeg_bytes())])
    case = Case.objects.get(pk=receipt.case.pk)
    assert case.priority == "P2" and case.category == "other"  # a lead: no verdict, no csam category
    assert "image:sexual_content" in case.events.get(kind=EventKind.TRIAGE).data["reasons"]
    labels = SubmissionScan.objects.get(submission=receipt.submission).labels
    blob_id = receipt.submission.files.get().blob_id
    assert labels[f"image:test-images:{blob_id}"] == [["sexual_content", 0.9]]
    assert labels[f"image:broken:{blob_id}"] == []  # a failing plug-in is logged, the report goes on


def test_a_text_classifier_label_ranks_like_the_lexicon(units, configured):
    receipt = receive(unit=units["school_a"], channel="web_child", description="tạm biệt mọi người nhé")
    case = Case.objects.get(pk=receipt.case.pk)
    assert case.priority == "P1" and "text:self_harm" in case.events.get(kind=EventKind.TRIAGE).data["reasons"]


def test_under_the_minimum_score_a_label_is_ignored(units, configured, settings):
    settings.COPHUB_CLASSIFIER_MIN_SCORE = 0.95
    receipt = receive(unit=units["school_a"], channel="web_adult", description="ảnh", files=[("a.jpg", jpeg_bytes())])
    assert Case.objects.get(pk=receipt.case.pk).priority == "P3"
