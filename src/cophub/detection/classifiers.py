"""Pluggable classifiers: text and image models behind one small interface.

A classifier is any class with a `name` and a `classify()` that returns
Labels (a category and a score in 0..1). The hub loads them by dotted path:

    COPHUB_TEXT_CLASSIFIERS = ["cophub.detection.classifiers.LexiconClassifier"]  # default
    COPHUB_IMAGE_CLASSIFIERS = []  # default; e.g. ["cophub.detection.classifiers.NudeNetClassifier"]

Each path names a class (or a factory) called without arguments. Instances
are made once per configuration and reused: a model loads once per process.

NudeNet is AGPL-3.0, so it is never a default and never a dependency: it
comes with the extra `pip install 'cophub[nudity]'` for a deployment that
accepts that licence (docs/dependencies.md).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import text

DEFAULT_TEXT_CLASSIFIERS = ["cophub.detection.classifiers.LexiconClassifier"]
DEFAULT_IMAGE_CLASSIFIERS: list[str] = []


@dataclass(frozen=True)
class Label:
    """What a classifier saw: a category code and how sure it is (0..1)."""

    category: str
    score: float

    def __post_init__(self):
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"a label's score is in 0..1, not {self.score}")


@runtime_checkable
class TextClassifier(Protocol):
    name: str

    def classify(self, text: str) -> list[Label]: ...


@runtime_checkable
class ImageClassifier(Protocol):
    name: str

    def classify(self, image_bytes: bytes) -> list[Label]: ...


# --- Built-in: the lexicon of detection/text.py ---------------------------------------------------------


def lexicon_score(weight: float) -> float:
    """Summed rule weight → 0..1: the triage minimum (1.0) is 0.5, 2.0 is 0.75, and it never reaches 1."""
    return round(1.0 - 0.5 ** max(weight, 0.0), 4)


class LexiconClassifier:
    """The hub's own lexicons (Vietnamese and English) as a classifier: one label per category found."""

    name = "lexicon"

    def __init__(self, language: str | None = None):
        self.language = language

    def classify(self, text_: str) -> list[Label]:
        scores = text.summarise(text.find_indicators(text_, self.language))
        return [Label(category, lexicon_score(weight)) for category, weight in sorted(scores.items())]


# --- Optional: NudeNet (AGPL-3.0, extra "nudity") ------------------------------------------------------------

# NudeNet's detector classes that are sexual content. Faces, feet, bellies, armpits,
# covered parts and a bare male chest are not: a boy at the swimming pool is not a report.
NUDENET_SEXUAL = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
})


class NudeNetClassifier:
    """NudeNet's detector (its bundled 320n ONNX model, run offline) as a `sexual_content` score."""

    name = "nudenet"

    def __init__(self, model_path: str | None = None):
        try:
            from nudenet import NudeDetector
        except ImportError as exc:
            raise ImproperlyConfigured(
                "NudeNetClassifier needs the optional NudeNet package, which is AGPL-3.0: "
                "install cophub[nudity] (pip install 'cophub[nudity]') or remove it from COPHUB_IMAGE_CLASSIFIERS."
            ) from exc
        self._detector = NudeDetector(model_path=model_path)

    def classify(self, image_bytes: bytes) -> list[Label]:
        detections = self._detector.detect(_bgr_pixels(image_bytes))
        scores = [float(d["score"]) for d in detections if d.get("class") in NUDENET_SEXUAL]
        return [Label("sexual_content", min(max(scores), 1.0))] if scores else []


def _bgr_pixels(image_bytes: bytes):
    """Decoded with Pillow (any mode, within the hub's pixel limit) into what NudeNet's own path reads:
    a 3-channel BGR array, as cv2.imread gives (its bytes path fails on greyscale and palette images)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(image_bytes)) as image:
        limit = getattr(settings, "COPHUB_MAX_IMAGE_PIXELS", 40_000_000)
        if image.width * image.height > limit:
            raise ValueError(f"image of {image.width}×{image.height} pixels is over COPHUB_MAX_IMAGE_PIXELS")
        return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


# --- Loading from settings -----------------------------------------------------------------------------------------


def _paths(setting: str, default: list[str]) -> tuple[str, ...]:
    paths = getattr(settings, setting, default)
    if isinstance(paths, str) or not all(isinstance(p, str) and p for p in paths):
        raise ImproperlyConfigured(f"{setting} must be a list of dotted paths, not {paths!r}")
    return tuple(paths)


@lru_cache(maxsize=8)
def _instances(setting: str, paths: tuple[str, ...], protocol: type) -> tuple:
    found = []
    for path in paths:
        try:
            factory = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"{setting}: cannot import {path!r} ({exc})") from exc
        try:
            instance = factory()
        except TypeError as exc:  # a function or a class that wants arguments: a wrong path, not a crash later
            raise ImproperlyConfigured(f"{setting}: {path!r} cannot be made without arguments ({exc})") from exc
        if not isinstance(instance, protocol) or not isinstance(instance.name, str):
            raise ImproperlyConfigured(f"{setting}: {path!r} has no `name` and `classify()`; it is not a {protocol.__name__}")
        found.append(instance)
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        raise ImproperlyConfigured(f"{setting}: two classifiers share a name in {names}")
    return tuple(found)


def text_classifiers() -> tuple[TextClassifier, ...]:
    return _instances("COPHUB_TEXT_CLASSIFIERS", _paths("COPHUB_TEXT_CLASSIFIERS", DEFAULT_TEXT_CLASSIFIERS), TextClassifier)


def image_classifiers() -> tuple[ImageClassifier, ...]:
    return _instances("COPHUB_IMAGE_CLASSIFIERS", _paths("COPHUB_IMAGE_CLASSIFIERS", DEFAULT_IMAGE_CLASSIFIERS), ImageClassifier)


def classify_text(text_: str) -> dict[str, list[Label]]:
    """Labels of every configured text classifier, by classifier name."""
    return {c.name: c.classify(text_) for c in text_classifiers()}


def classify_image(image_bytes: bytes) -> dict[str, list[Label]]:
    """Labels of every configured image classifier, by classifier name (empty when none is configured)."""
    return {c.name: c.classify(image_bytes) for c in image_classifiers()}


def forget_classifiers() -> None:
    """Drop the loaded instances (tests, or a settings change in a long-running process)."""
    _instances.cache_clear()
