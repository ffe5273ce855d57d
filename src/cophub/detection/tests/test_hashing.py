"""PDQ image hashing on generated images with real structure (no fixtures on disk)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from cophub.detection.hashing import bits_to_hex, hamming, is_usable, min_distance, pdq_for_image

MATCH = 31  # PDQ's recommended match threshold


def scene(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    """Smooth random noise plus a gradient and a few shapes: photo-like structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 40 + 2, width // 40 + 2, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    # Fine texture on top, so that JPEG artefacts have detail to destroy.
    fine = rng.normal(0, 25, (height // 6 + 1, width // 6 + 1)).astype(np.float32)
    fine = np.asarray(Image.fromarray(fine, mode="F").resize((width, height), Image.Resampling.BILINEAR))
    ramp = np.linspace(0, 80, width, dtype=np.float32)[None, :, None]
    pixels = np.asarray(image, np.float32) * 0.7 + ramp + fine[:, :, None]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, width - 120)), int(rng.integers(0, height - 120))
        size = int(rng.integers(40, 120))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + size, y + size), fill=colour)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def hashed(image: Image.Image, fmt: str = "PNG", **options):
    result = pdq_for_image(encode(image, fmt, **options))
    assert result is not None
    return result


def test_hash_shape_and_orientations():
    result = hashed(scene(1))
    assert len(result.hash) == 64 and result.hash == result.hash.lower()
    assert len(result.orientations) == 8 and result.orientations[0] == result.hash
    assert len(set(result.orientations)) == 8
    assert is_usable(result.quality)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hex_is_identical_to_threatexchange(seed):
    """Our bit order must give the same hex as Meta's threatexchange library."""
    pdq_hasher = pytest.importorskip("threatexchange.signal_type.pdq.pdq_hasher")
    data = encode(scene(seed, 480, 360))  # under 512 px: no downscale on our side
    reference_hex, reference_quality = pdq_hasher.pdq_from_bytes(data)
    result = pdq_for_image(data)
    assert result.hash == reference_hex
    assert result.quality == reference_quality


def test_bits_to_hex_puts_first_bit_most_significant():
    bits = [1] + [0] * 254 + [1]
    assert bits_to_hex(bits) == "8" + "0" * 62 + "1"


def test_large_image_is_downscaled_yet_close_to_full_resolution_reference():
    pdq_hasher = pytest.importorskip("threatexchange.signal_type.pdq.pdq_hasher")
    data = encode(scene(4, 1600, 1200), "JPEG", quality=92)
    distance = hamming(pdq_for_image(data).hash, pdq_hasher.pdq_from_bytes(data)[0])
    # PDQ's own blur window scales with the input size, so a 512 px copy is not
    # bit-identical to hashing 1600 px (8-10 bits on these images, whatever the
    # resampling filter): a known, small share of the 31-bit match budget.
    print(f"512 px downscale vs full-resolution hash: distance {distance}")
    assert distance <= 16


def test_jpeg_quality_40_matches(capsys):
    original = scene(5)
    distance = hamming(hashed(original).hash, hashed(original, "JPEG", quality=40).hash)
    print(f"JPEG q40 distance {distance}")
    assert distance <= MATCH


def test_half_size_copy_matches():
    original = scene(6)
    half = original.resize((original.width // 2, original.height // 2), Image.Resampling.BILINEAR)
    distance = hamming(hashed(original).hash, hashed(half, "JPEG", quality=85).hash)
    print(f"50 % resize distance {distance}")
    assert distance <= MATCH


def test_mirrored_copy_matches_only_through_an_orientation():
    original = hashed(scene(7))
    mirrored = hashed(ImageOps.mirror(scene(7)))
    plain = hamming(original.hash, mirrored.hash)
    best = min_distance(mirrored, original.hash)
    print(f"mirror: plain distance {plain}, best orientation distance {best}")
    assert plain > MATCH
    assert best <= MATCH


def test_exif_rotation_is_applied():
    original = scene(8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    sideways = original.transpose(Image.Transpose.ROTATE_90)  # stored sideways
    tagged = hashed(sideways, "JPEG", quality=95, exif=exif)
    assert hamming(tagged.hash, hashed(original).hash) <= MATCH


@pytest.mark.parametrize("seeds", [(10, 11), (12, 13), (14, 15), (16, 17)])
def test_unrelated_images_do_not_match(seeds):
    a, b = (hashed(scene(seed)).hash for seed in seeds)
    distance = hamming(a, b)
    print(f"unrelated {seeds}: distance {distance}")
    assert distance > MATCH


def test_flat_image_is_not_usable():
    result = hashed(Image.new("RGB", (300, 200), (40, 90, 200)))
    assert result.quality < 50
    assert not is_usable(result.quality)


def test_other_modes_and_first_frame_of_animation():
    assert pdq_for_image(encode(scene(9).convert("L"))) is not None
    assert pdq_for_image(encode(scene(9).convert("RGBA"))) is not None
    frames = [scene(9), scene(19)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    first = pdq_for_image(gif.getvalue())
    assert hamming(first.hash, hashed(scene(9)).hash) <= MATCH


def test_undecodable_input_returns_none():
    assert pdq_for_image(b"not an image") is None
    assert pdq_for_image(encode(scene(1), "JPEG")[:200]) is None


def test_oversized_image_is_refused(settings):
    settings.COPHUB_MAX_IMAGE_PIXELS = 100 * 100
    assert pdq_for_image(encode(scene(1, 200, 200))) is None


def test_hamming():
    zero, ones = "0" * 64, "f" * 64
    assert hamming(zero, ones) == 256
    assert hamming(zero, "0" * 63 + "3") == 2
    with pytest.raises(ValueError):
        hamming("abc", zero)
