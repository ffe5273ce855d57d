"""vPDQ video hashes: one PDQ hash per sampled frame, compared as a bag of frames.

Hashing uses Meta's `vpdq` binding (the optional `video` extra, compiled
against FFmpeg). Without it, `vpdq_for_video` raises VideoHashingUnavailable
and callers keep only the cryptographic digests.

Matching follows the published vPDQ algorithm (vpdq/README.md, and
threatexchange.extensions.vpdq.vpdq_brute_matcher): drop duplicate frame
hashes, drop frames below the quality floor, then count the query frames that
have any target frame within the distance, and vice versa.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
from django.conf import settings

from cophub.detection.hashing import PDQ_HEX_LEN

DEFAULT_MAX_SECONDS = 600
MATCH_DISTANCE = 31  # vPDQ / PDQ default frame distance
MIN_QUALITY = 50  # frames below this are too featureless to compare
# vPDQ README defaults: 80 % of the target (known) video must be found in the
# query; the query may carry any amount of extra footage (P_q = 0), so a known
# clip inside a longer compilation still matches.
TARGET_MATCH_PERCENT = 80.0
QUERY_MATCH_PERCENT = 0.0
CUT_TIMEOUT_SECONDS = 120
_BLOCK = 64  # query rows compared per numpy step in _percent_found


class VideoHashingUnavailable(RuntimeError):
    """vPDQ (or the ffmpeg CLI that caps the duration) is not installed."""


class VideoFrame(NamedTuple):
    frame_number: int | None  # None when parsed from a threatexchange signal
    timestamp: float  # seconds from the start
    quality: int
    hash: str  # 64 lowercase hex digits, PDQ reference format


@dataclass(frozen=True)
class VideoPdq:
    frames: tuple[VideoFrame, ...]


@dataclass(frozen=True)
class VideoMatch:
    query_match_percent: float
    target_match_percent: float

    def is_match(self, *, query_percent: float = QUERY_MATCH_PERCENT,
                 target_percent: float = TARGET_MATCH_PERCENT) -> bool:
        return self.query_match_percent >= query_percent and self.target_match_percent >= target_percent

    @property
    def matched(self) -> bool:
        """is_match() with the vPDQ README's default thresholds."""
        return self.is_match()


# --- hashing -------------------------------------------------------------------

def _vpdq():
    try:
        import vpdq
    except ImportError as exc:
        raise VideoHashingUnavailable(
            "video hashing needs the 'video' extra (vpdq), built against FFmpeg: "
            "run scripts/setup-system --runtime, then pip install -e '.[video]'") from exc
    return vpdq


def available() -> bool:
    """Whether videos can be hashed here: the vpdq binding and the ffmpeg CLI."""
    try:
        _vpdq()
    except VideoHashingUnavailable:
        return False
    return shutil.which("ffmpeg") is not None


def _max_seconds(max_seconds: float | None) -> float:
    if max_seconds is not None:
        return max_seconds
    return getattr(settings, "COPHUB_VIDEO_MAX_SECONDS", DEFAULT_MAX_SECONDS)


@contextmanager
def _first_seconds(path: str, seconds: float) -> Iterator[Path | None]:
    """Yield a temporary copy of at most `seconds` of the video stream.

    vpdq has no duration limit, and container durations (ffprobe) can lie, so
    the cap is enforced by cutting: a stream copy, which is cheap and leaves
    frames untouched. Yields None if ffmpeg cannot read the input.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise VideoHashingUnavailable("the ffmpeg CLI is needed to cap the hashed duration")
    with tempfile.TemporaryDirectory(prefix="cophub-vpdq-") as tmp:
        out = Path(tmp) / "head.mkv"  # Matroska accepts nearly any video codec
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", path, "-map", "0:v:0",
               "-t", f"{seconds:g}", "-c", "copy", "-an", "-sn", "-dn", str(out)]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=CUT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            done = None
        ok = done is not None and done.returncode == 0 and out.exists() and out.stat().st_size > 0
        yield out if ok else None


def vpdq_for_video(path: str, *, seconds_per_frame: float = 1,
                   max_seconds: float | None = None) -> VideoPdq | None:
    """vPDQ of the first `max_seconds` (default COPHUB_VIDEO_MAX_SECONDS, 600) of a video.

    Returns None when the file has no decodable video stream.
    """
    vpdq = _vpdq()
    cap = _max_seconds(max_seconds)
    with _first_seconds(path, cap) as head:
        if head is None:
            return None
        try:
            features = vpdq.computeHash(str(head), seconds_per_hash=seconds_per_frame)
        except Exception:  # the binding raises a bare Exception on decode failure
            return None
    frames = tuple(VideoFrame(f.frame_number, round(f.timestamp, 3), int(f.quality), f.hex)
                   for f in features if f.timestamp <= cap)
    return VideoPdq(frames) if frames else None


# --- serialisation --------------------------------------------------------------

def serialise(video: VideoPdq) -> str:
    """vpdq's own hash-file format: one "frame,quality,hash,timestamp" line per frame.

    This is what vpdq-hash-video writes and its matchers read; it keeps frame
    numbers, which threatexchange's signal string (see to_threatexchange) drops.
    An unknown frame number is written as an empty field.
    """
    return "".join(
        f"{'' if f.frame_number is None else f.frame_number},{f.quality},{f.hash},{f.timestamp:.3f}\n"
        for f in video.frames)


def to_threatexchange(video: VideoPdq) -> str:
    """threatexchange's VPDQSignal string: a JSON list of "hash,quality,timestamp"."""
    return json.dumps([f"{f.hash},{f.quality},{f.timestamp:.3f}" for f in video.frames])


def _checked(frame: VideoFrame) -> VideoFrame:
    if len(frame.hash) != PDQ_HEX_LEN or frame.hash != frame.hash.lower():
        raise ValueError(f"malformed PDQ hash: {frame.hash!r}")
    int(frame.hash, 16)
    if not 0 <= frame.quality <= 100 or frame.timestamp < 0:
        raise ValueError(f"quality or timestamp out of range: {frame!r}")
    return frame


def _parse_line(line: str) -> VideoFrame:
    number, quality, pdq, timestamp = line.split(",")
    return VideoFrame(int(number) if number else None, float(timestamp), int(quality), pdq.strip().lower())


def _parse_threatexchange(item: str) -> VideoFrame:
    pdq, quality, timestamp = item.split(",")
    return VideoFrame(None, float(timestamp), int(quality), pdq.strip().lower())


def parse(text: str) -> VideoPdq:
    """Inverse of serialise; also accepts threatexchange's VPDQSignal string.

    Raises ValueError on anything malformed.
    """
    text = text.strip()
    try:
        if text.startswith("["):
            frames = [_parse_threatexchange(item) for item in json.loads(text)]
        else:
            frames = [_parse_line(line) for line in text.splitlines() if line.strip()]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a vPDQ hash: {exc}") from exc
    return VideoPdq(tuple(_checked(f) for f in frames))


# --- matching ---------------------------------------------------------------

def _comparable(video: VideoPdq, quality: int) -> np.ndarray:
    """Unique hashes of the frames at or above `quality`, as (n, 4) uint64 words."""
    unique = dict.fromkeys(f.hash for f in video.frames if f.quality >= quality)
    if not unique:
        return np.zeros((0, 4), dtype=np.uint64)
    raw = bytes.fromhex("".join(unique))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 4)


def _percent_found(a: np.ndarray, b: np.ndarray, distance: int) -> float:
    """Percentage of rows of `a` within `distance` bits of some row of `b`."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    found = 0
    # Pairwise popcounts of the XOR, a block of rows at a time so that
    # per-frame hashes of long videos stay within a few MB of memory.
    for start in range(0, len(a), _BLOCK):
        block = a[start:start + _BLOCK]
        distances = np.bitwise_count(block[:, None, :] ^ b[None, :, :]).sum(axis=2)
        found += int((distances <= distance).any(axis=1).sum())
    return found * 100.0 / len(a)


def video_match(query: VideoPdq, target: VideoPdq, *, distance: int = MATCH_DISTANCE,
                quality: int = MIN_QUALITY) -> VideoMatch:
    """vPDQ brute-force comparison: how much of each video is found in the other."""
    q = _comparable(query, quality)
    t = _comparable(target, quality)
    return VideoMatch(query_match_percent=_percent_found(q, t, distance),
                      target_match_percent=_percent_found(t, q, distance))
