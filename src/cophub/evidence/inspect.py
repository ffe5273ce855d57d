"""Deciding what a file is from its bytes, and refusing what must not be kept."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import filetype
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from PIL import Image

from .vault import StagedFile

# Pillow's own guard is a second line behind the explicit pixel check below.
# It is set well above our limit so that ordinary bombs reach our check,
# which reads the size from the header and can tell the reporter what it was.
Image.MAX_IMAGE_PIXELS = settings.COPHUB_MAX_IMAGE_PIXELS * 16

ACCEPTED = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/gif": "image",
    "image/webp": "image",
    "image/bmp": "image",
    "image/heic": "image",
    "image/heif": "image",
    "video/mp4": "video",
    "video/quicktime": "video",
    "video/webm": "video",
    "video/x-matroska": "video",
    "video/3gpp": "video",
    "video/x-msvideo": "video",
    "audio/mpeg": "audio",
    "audio/ogg": "audio",
    "audio/x-wav": "audio",
    "audio/mp4": "audio",
    "audio/aac": "audio",
    "audio/amr": "audio",
    "audio/x-flac": "audio",
    "application/pdf": "document",
}
# Formats Pillow decodes; others (HEIC) are kept without a preview.
DECODABLE_IMAGES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"}

REFUSALS = {
    "empty": _("The file “%(name)s” is empty."),
    "too_large": _("The file “%(name)s” is larger than %(limit)s MB."),
    "type": _("The file “%(name)s” is not a picture, video, sound recording or PDF, so we could not accept it."),
    "too_many_pixels": _("The picture “%(name)s” is far too large (%(width)s × %(height)s pixels), so we could not accept it."),
    "too_many_pixels_unknown": _("The picture “%(name)s” is far too large, so we could not accept it."),
    "damaged": _("The picture “%(name)s” is damaged and cannot be opened."),
    "too_many_files": _("Only %(limit)s files can be sent at once; “%(name)s” was not accepted."),
}


@dataclass
class Inspection:
    ok: bool
    mime: str = ""
    kind: str = ""
    width: int | None = None
    height: int | None = None
    refusal: str = ""
    details: dict | None = None

    def message(self, name: str) -> str:
        params = {"name": name, "limit": settings.COPHUB_MAX_FILE_BYTES // (1024 * 1024), **(self.details or {})}
        return str(REFUSALS[self.refusal]) % params


def refuse(code: str, **details) -> Inspection:
    return Inspection(ok=False, refusal=code, details=details)


def inspect(staged: StagedFile) -> Inspection:
    if staged.too_large:
        return refuse("too_large")
    if staged.size == 0:
        return refuse("empty")
    guess = filetype.guess(staged.head)
    mime = guess.mime if guess else ""
    kind = ACCEPTED.get(mime)
    if kind is None:
        return refuse("type")
    if mime in DECODABLE_IMAGES:
        return _inspect_image(staged, mime)
    return Inspection(ok=True, mime=mime, kind=kind)


def _inspect_image(staged: StagedFile, mime: str) -> Inspection:
    limit = settings.COPHUB_MAX_IMAGE_PIXELS
    data = staged.plaintext()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                frames = getattr(image, "n_frames", 1)
                if width * height > limit or width * height * min(frames, 1000) > limit * 4:
                    return refuse("too_many_pixels", width=width, height=height)
                image.load()  # decode fully: truncated or corrupt data fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return refuse("too_many_pixels_unknown")
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError, EOFError):
        return refuse("damaged")
    return Inspection(ok=True, mime=mime, kind="image", width=width, height=height)
