"""Blurred, grey previews: what a reviewer sees by default."""

from __future__ import annotations

import io

from PIL import Image, ImageFilter, ImageOps

PREVIEW_EDGE = 360


def blurred_preview(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        image = ImageOps.exif_transpose(image)
        image.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
        grey = image.convert("L")
    # Strong enough that shapes remain but no detail does.
    radius = max(6, max(grey.size) // 18)
    blurred = grey.filter(ImageFilter.GaussianBlur(radius))
    out = io.BytesIO()
    blurred.save(out, format="JPEG", quality=70)
    return out.getvalue()
