"""PDQ perceptual hashes for images, with all eight dihedral variants.

Hex format: 64 lowercase hex digits, exactly what Meta's reference C++
(`Hash256::format`, words w[15]..w[0] as %04hx), the `threatexchange`
library and the vPDQ binding produce, so our hashes can be compared with and
exchanged against hash lists from those tools.

pdqhash returns the hash as a 256-long 0/1 vector whose index 0 is the most
significant bit of w[15] (it builds the vector from w[0] bit 0 upwards and
then reverses it). Packing that vector most-significant-bit first
(numpy.packbits' default "big" bit order) therefore gives the reference hex.
test_hashing checks this against threatexchange for generated images.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pdqhash
from django.conf import settings
from PIL import Image, ImageOps

PDQ_HEX_LEN = 64
DEFAULT_MIN_QUALITY = 50
# PDQ reduces every image to 64x64 luma (via a Jarosz filter sized for the
# input); hashing a 512 px copy gives practically the same hash but avoids
# filtering tens of megapixels. Meta's PDQ notes recommend this.
MAX_SIDE = 512


@dataclass(frozen=True)
class ImagePdq:
    hash: str  # original orientation, 64 lowercase hex digits
    quality: int  # 0..100; below ~50 the hash is too featureless to trust
    # All 8 dihedral variants in pdqhash's order: original, rotate 90, 180,
    # 270, flip X, flip Y, flip main diagonal, flip anti-diagonal.
    orientations: tuple[str, ...]


def bits_to_hex(bits) -> str:
    """pdqhash bit vector -> reference hex (vector index 0 = most significant bit)."""
    packed = np.packbits(np.asarray(bits, dtype=np.uint8))
    return packed.tobytes().hex()


def _load_rgb(data: bytes) -> Image.Image | None:
    """Decode the first frame, upright per EXIF, as RGB; None if undecodable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > _max_pixels():
                return None  # Pillow only errors at 2x its own limit
            image.seek(0)
            # JPEG only: decode at a reduced DCT scale no smaller than needed.
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))
            # Phones store sideways pixels plus a rotation tag; hash what a
            # person sees, as the reporting tools do.
            return ImageOps.exif_transpose(image).convert("RGB")
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        # Pillow raises these for truncated, corrupt or bomb-sized inputs.
        return None


def _max_pixels() -> int:
    return getattr(settings, "COPHUB_MAX_IMAGE_PIXELS", 40_000_000)


def _downscale(image: Image.Image) -> Image.Image:
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return image


def pdq_for_image(data: bytes) -> ImagePdq | None:
    """PDQ hash, quality and the 8 orientation hashes of an image file's bytes."""
    image = _load_rgb(data)
    if image is None:
        return None
    pixels = np.ascontiguousarray(np.asarray(_downscale(image), dtype=np.uint8))
    vectors, quality = pdqhash.compute_dihedral(pixels)
    hexes = tuple(bits_to_hex(v) for v in vectors)
    return ImagePdq(hash=hexes[0], quality=int(quality), orientations=hexes)


def hamming(a_hex: str, b_hex: str) -> int:
    """Number of differing bits between two PDQ hex hashes."""
    if len(a_hex) != PDQ_HEX_LEN or len(b_hex) != PDQ_HEX_LEN:
        raise ValueError("PDQ hashes are 64 hex digits")
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


def min_distance(candidate: ImagePdq, known_hex: str) -> int:
    """Smallest distance from a known hash to any orientation of the candidate.

    Catches mirrored or rotated re-uploads that the plain hash misses.
    """
    return min(hamming(h, known_hex) for h in candidate.orientations)


def is_usable(quality: int, min_quality: int = DEFAULT_MIN_QUALITY) -> bool:
    """Whether a hash carries enough image structure to be matched on (Meta: 50)."""
    return quality >= min_quality
