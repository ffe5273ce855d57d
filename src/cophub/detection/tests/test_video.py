"""vPDQ on videos generated with the ffmpeg CLI; pure-Python parts always run."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cophub.detection import video
from cophub.detection.video import VideoFrame, VideoPdq, parse, serialise, to_threatexchange, video_match

FFMPEG = shutil.which("ffmpeg")
HAVE_VPDQ = importlib.util.find_spec("vpdq") is not None
SETUP_HINT = "run scripts/setup-system as root, then pip install -e '.[video]'"


def require_system(available: bool, reason: str) -> None:
    """Skip when a system dependency is missing, but fail under CI=true."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120)


def encoder() -> list[str]:
    listing = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return ["-c:v", "libx264", "-pix_fmt", "yuv420p"] if "libx264" in listing else ["-c:v", "mpeg4"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    require_system(FFMPEG is not None, f"the ffmpeg CLI is not installed: {SETUP_HINT}")
    require_system(HAVE_VPDQ, f"vpdq is not installed: {SETUP_HINT}")
    folder = tmp_path_factory.mktemp("videos")
    paths = {name: str(folder / f"{name}.mp4") for name in ("original", "smaller", "unrelated", "long")}
    codec = encoder()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=6", *codec, "-b:v", "1500k",
           paths["original"])
    ffmpeg("-i", paths["original"], "-vf", "scale=320:180", *codec, "-b:v", "150k", paths["smaller"])
    ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=640x360:rate=25", "-t", "6", *codec, paths["unrelated"])
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=10:duration=12", *codec, paths["long"])
    return paths


def test_hash_has_one_frame_per_second(videos):
    assert video.available()
    result = video.vpdq_for_video(videos["original"])
    assert [round(f.timestamp) for f in result.frames] == [0, 1, 2, 3, 4, 5]
    assert all(len(f.hash) == 64 and f.quality >= 50 for f in result.frames)


def test_reencoded_smaller_copy_matches_both_ways(videos):
    original = video.vpdq_for_video(videos["original"])
    smaller = video.vpdq_for_video(videos["smaller"])
    result = video_match(smaller, original)
    print(f"re-encode: {result}")
    assert result.query_match_percent >= 80 and result.target_match_percent >= 80
    assert result.is_match()


def test_unrelated_video_does_not_match(videos):
    original = video.vpdq_for_video(videos["original"])
    unrelated = video.vpdq_for_video(videos["unrelated"])
    result = video_match(unrelated, original)
    print(f"unrelated: {result}")
    assert result.query_match_percent < 50 and result.target_match_percent < 50
    assert not result.is_match()


def test_duration_cap_is_enforced(videos, settings):
    capped = video.vpdq_for_video(videos["long"], max_seconds=4)
    assert capped.frames and max(f.timestamp for f in capped.frames) <= 4
    settings.COPHUB_VIDEO_MAX_SECONDS = 3
    assert max(f.timestamp for f in video.vpdq_for_video(videos["long"]).frames) <= 3
    full = video.vpdq_for_video(videos["long"], max_seconds=600)
    assert max(f.timestamp for f in full.frames) >= 11


def test_frame_hex_equals_our_image_hex(videos, tmp_path):
    """Meta's C++ PDQ inside vpdq and our pdqhash bit order agree bit for bit."""
    from cophub.detection.hashing import pdq_for_image
    from cophub.detection.tests.test_hashing import encode, scene

    still = tmp_path / "still.png"
    still.write_bytes(encode(scene(3, 480, 360)))
    lossless = tmp_path / "still.mkv"  # PNG frames: the decoder sees the exact RGB
    ffmpeg("-loop", "1", "-i", str(still), "-t", "1", "-r", "5", "-c:v", "png", str(lossless))
    frame = video.vpdq_for_video(str(lossless)).frames[0]
    assert frame.hash == pdq_for_image(still.read_bytes()).hash


def test_cut_leaves_no_temporary_files(videos, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    assert video.vpdq_for_video(videos["original"], max_seconds=2) is not None
    assert video.vpdq_for_video(str(Path(videos["original"]).with_name("missing.mp4"))) is None
    assert list(scratch.iterdir()) == []


def test_undecodable_file_gives_none(videos, tmp_path):
    require_system(FFMPEG is not None, "ffmpeg CLI missing")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    assert video.vpdq_for_video(str(junk)) is None


def test_serialisation_round_trip_and_threatexchange_format(videos):
    original = video.vpdq_for_video(videos["original"])
    text = serialise(original)
    assert text.splitlines()[0].startswith("0,")  # frame,quality,hash,timestamp
    assert parse(text) == original
    from_te = parse(to_threatexchange(original))
    assert [(f.hash, f.quality, f.timestamp) for f in from_te.frames] == \
           [(f.hash, f.quality, f.timestamp) for f in original.frames]


def test_threatexchange_reads_our_signal_string(videos):
    vpdq_util = pytest.importorskip("threatexchange.extensions.vpdq.vpdq_util")
    original = video.vpdq_for_video(videos["original"])
    features = vpdq_util.json_to_vpdq(to_threatexchange(original))
    assert [f.pdq_hex for f in features] == [f.hash for f in original.frames]


def test_matches_threatexchange_brute_matcher(videos):
    matcher = pytest.importorskip("threatexchange.extensions.vpdq.vpdq_brute_matcher")
    vpdq_util = pytest.importorskip("threatexchange.extensions.vpdq.vpdq_util")
    smaller = video.vpdq_for_video(videos["smaller"])
    original = video.vpdq_for_video(videos["original"])
    reference = matcher.match_VPDQ_hash_brute(
        vpdq_util.json_to_vpdq(to_threatexchange(smaller)),
        vpdq_util.json_to_vpdq(to_threatexchange(original)), 50, 31)
    ours = video_match(smaller, original)
    assert (ours.query_match_percent, ours.target_match_percent) == \
           (reference.query_match_percent, reference.compared_match_percent)


def test_missing_binding_raises_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "vpdq", None)
    assert not video.available()
    with pytest.raises(video.VideoHashingUnavailable, match="vpdq"):
        video.vpdq_for_video(str(tmp_path / "any.mp4"))


# --- no system dependencies below ---------------------------------------------

A = "f" * 64
B = "0" * 64
NEAR_A = "f" * 60 + "0000"  # 16 bits from A


def clip(*frames: tuple[str, int]) -> VideoPdq:
    return VideoPdq(tuple(VideoFrame(i, float(i), q, h) for i, (h, q) in enumerate(frames)))


def test_match_dedupes_and_filters_quality():
    query = clip((A, 100), (A, 100), (A, 100), (B, 100))  # unique: A, B
    target = clip((NEAR_A, 90), (B, 10))  # B is below the quality floor
    result = video_match(query, target)
    assert result.query_match_percent == 50.0
    assert result.target_match_percent == 100.0
    assert result.is_match() and result.matched  # README defaults: 80 % of the target, any % of the query
    assert not result.is_match(query_percent=80)


def test_match_distance_threshold_and_empty_inputs():
    assert video_match(clip((A, 100)), clip((NEAR_A, 100)), distance=15).query_match_percent == 0.0
    assert video_match(clip((A, 100)), clip((NEAR_A, 100)), distance=16).query_match_percent == 100.0
    empty = video_match(clip((A, 10)), clip((A, 100)))
    assert (empty.query_match_percent, empty.target_match_percent) == (0.0, 0.0)


def test_parse_rejects_garbage_and_reads_vpdq_files():
    with pytest.raises(ValueError):
        parse("0,100,abc,0.0")
    with pytest.raises(ValueError):
        parse(json.dumps(["nonsense"]))
    with pytest.raises(ValueError):
        parse(f"0,101,{A},0.000")
    # A line as vpdq-hash-video writes it (vpdq/sample-hashes).
    line = "1,100,c0f11178372c6aaccddea259648fbfd62f434c89c9e99b249772be216c8d055c,0.033\n"
    frame = parse(line).frames[0]
    assert frame == VideoFrame(1, 0.033, 100, "c0f11178372c6aaccddea259648fbfd62f434c89c9e99b249772be216c8d055c")
    assert serialise(parse(line)) == line
