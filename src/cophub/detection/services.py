"""Detection: hashing files, reading texts, matching both against the banks.

As in HMA, hashing, matching and acting are apart: the signal functions
(hashing, video, urls, text) are pure; this module computes them for a
submission, looks them up in the banks and records what it found; acting on
it (priority, routing, links) is the triage app's job, which reads the
result of `scan_submission()`.

Rules kept here:
- the hub's own bank is a verdict, an imported bank a lead for review, an
  allow-list a known false positive;
- an allow-list hit on a file cancels the perceptual (PDQ, vPDQ) leads of
  that file, never an exact hash on the hub's own list;
- PDQ hashes under a bank's minimum quality are not matched against it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cophub.evidence import vault
from cophub.hashbanks import lookup

from . import classifiers, hashing, indexes, text, urls
from .models import FileSignals, Match, ScanStatus, SubmissionScan, SubmissionUrl, TextFinding

logger = logging.getLogger(__name__)

# The submission fields whose words are read for indicators and URLs.
TEXT_FIELDS = ("description", "where_url", "where_app", "reported_account")
VERDICT, LEAD, ALLOWED = "hub", "imported", "allow"


# --- Signals of one file ---------------------------------------------------------------------------


def signals_for(blob) -> FileSignals:
    """The file's perceptual hashes, computed once per content (the Blob is content-addressed)."""
    existing = FileSignals.objects.filter(blob=blob).first()
    if existing is not None:
        return existing
    signals = _compute(blob)
    with transaction.atomic():
        saved, _ = FileSignals.objects.get_or_create(blob=blob, defaults=_fields(signals))
    return saved


def _fields(signals: FileSignals) -> dict:
    return {name: getattr(signals, name) for name in ("status", "pdq", "pdq_quality", "pdq_orientations", "vpdq", "error")}


def _compute(blob) -> FileSignals:
    result = FileSignals(blob=blob, status=ScanStatus.SKIPPED)
    try:
        if blob.kind == "image":
            pdq = hashing.pdq_for_image(vault.read_plaintext(blob))
            if pdq is not None:
                result.status, result.pdq, result.pdq_quality = ScanStatus.DONE, pdq.hash, pdq.quality
                result.pdq_orientations = " ".join(pdq.orientations)
        elif blob.kind == "video":
            result.vpdq = _video_frames(blob)
            result.status = ScanStatus.DONE if result.vpdq else ScanStatus.SKIPPED
    except Exception as exc:  # a hostile or broken file must not stop the report's other work
        logger.warning("hashing blob %s failed: %s", blob.pk, exc)
        result.status, result.error = ScanStatus.FAILED, f"{type(exc).__name__}: {exc}"[:300]
    return result


def _video_frames(blob) -> str:
    """vPDQ of a video, through a private temporary file that is removed at once."""
    from . import video

    if not video.available():
        logger.info("vPDQ is not installed: video %s keeps its SHA-256 and MD5 only", blob.pk)
        return ""
    directory = settings.DATA_DIR / "tmp"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(dir=directory, suffix=".video")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in vault.iter_plaintext(blob):
                out.write(chunk)
        frames = video.vpdq_for_video(path, seconds_per_frame=1, max_seconds=settings.COPHUB_VIDEO_MAX_SECONDS)
        return video.serialise(frames) if frames is not None else ""
    finally:
        os.unlink(path)


def perceptual_signals(blob) -> dict[str, tuple[str, int | None, str]]:
    """What a confirmed file adds to a bank besides its SHA-256 and MD5: {type: (value, quality, data)}.

    A PDQ under the minimum quality is left out: it would match unrelated flat pictures.
    Called from a web request (a handler's confirmation), so a video is never hashed here:
    the worker has hashed it already (report scan, or `tasks.compute_signals` for staff files).
    """
    signals = FileSignals.objects.filter(blob=blob).first()
    if signals is None:
        if blob.kind != "image":
            logger.warning("confirming blob %s before its signals were computed: SHA-256 and MD5 only", blob.pk)
            return {}
        signals = signals_for(blob)  # a picture's PDQ takes some milliseconds
    found = {}
    if signals.pdq and hashing.is_usable(signals.pdq_quality or 0, settings.COPHUB_PDQ_MIN_QUALITY):
        found["pdq"] = (signals.pdq, signals.pdq_quality, "")
    if signals.vpdq:
        found["vpdq"] = (hashlib.sha256(signals.vpdq.encode()).hexdigest(), None, signals.vpdq)
    return found


# --- Matching one file ------------------------------------------------------------------------------


@dataclass
class Hit:
    entry: lookup.EntryRef
    signal_type: str
    distance: int = 0
    detail: dict = field(default_factory=dict)


def match_file(blob, signals: FileSignals) -> list[Hit]:
    hits = [Hit(entry, "sha256") for entry in lookup.exact_entries("sha256", [blob.sha256])]
    hits += [Hit(entry, "md5") for entry in lookup.exact_entries("md5", [blob.md5])]
    if signals.pdq:
        hits += match_pdq(signals.orientations(), signals.pdq_quality or 0)
    if signals.vpdq:
        hits += match_video(signals.vpdq)
    return _apply_allow_list(hits)


def match_pdq(orientations: list[str], quality: int) -> list[Hit]:
    """Bank entries within their bank's distance of any of the eight orientations."""
    if not orientations:
        return []
    # One search for all eight orientations; the index reports each entry once.
    candidates = indexes.get(indexes.BankPdqIndex).search_many(orientations, lookup.largest_pdq_threshold())
    hits = []
    for entry in lookup.entries_by_ids(entry_id for entry_id, _ in candidates):
        # Re-measured on the stored value: the index may lag a change, the database does not.
        distance, slot = min((hashing.hamming(value, entry.value), slot) for slot, value in enumerate(orientations))
        if distance <= entry.pdq_threshold and quality >= entry.min_quality:
            hits.append(Hit(entry, "pdq", distance, {"orientation": slot} if slot else {}))
    return hits


def match_video(frames_text: str) -> list[Hit]:
    """Bank videos whose vPDQ matches: frames found through the frame index, then compared whole."""
    from . import video

    query = video.parse(frames_text)
    index = indexes.get(indexes.BankVideoFrameIndex)
    candidates = set()
    for frame in {f.hash for f in query.frames}:
        for frame_id, _distance in index.search(frame, 31):
            candidates.add(frame_id // indexes.FRAME_SLOTS)
    hits = []
    for entry in lookup.entries_by_ids(candidates):
        result = video.video_match(query, video.parse(entry.data), distance=entry.pdq_threshold, quality=entry.min_quality)
        if result.matched:
            hits.append(Hit(entry, "vpdq", 0, {"query_percent": round(result.query_match_percent, 1),
                                               "target_percent": round(result.target_match_percent, 1)}))
    return hits


def _apply_allow_list(hits: list[Hit]) -> list[Hit]:
    if not any(hit.entry.bank_kind == ALLOWED for hit in hits):
        return hits
    perceptual = {"pdq", "vpdq"}
    return [hit for hit in hits
            if not (hit.signal_type in perceptual and hit.entry.bank_kind != ALLOWED)
            and not (hit.entry.bank_kind == LEAD)]


def match_declared(declared) -> list[Hit]:
    """Exact matches of files named by hash alone (a provider that did not send the file)."""
    hits = []
    for sha256, md5, name in declared:
        found = lookup.exact_entries("sha256", [sha256]) if sha256 else []
        found_md5 = lookup.exact_entries("md5", [md5]) if md5 else []
        hits += [Hit(entry, "sha256", 0, {"declared": name}) for entry in found]
        hits += [Hit(entry, "md5", 0, {"declared": name}) for entry in found_md5]
    return hits


# --- URLs ----------------------------------------------------------------------------------------------


def urls_of(submission, extra_text: str = "") -> list[str]:
    found: list[str] = []
    texts = [getattr(submission, name, "") or "" for name in TEXT_FIELDS] + [extra_text]
    for value in texts:
        for raw in urls.extract_urls(value):
            normalised = urls.normalise_url(raw)
            if normalised and normalised not in found and len(normalised) <= 1000:
                found.append(normalised)
    return found


def match_urls(found: list[str]) -> list[tuple[str, Hit]]:
    hits = [(entry.value, Hit(entry, "url")) for entry in lookup.exact_entries("url", found)]
    by_domain: dict[str, list[str]] = defaultdict(list)
    for url in found:
        for candidate in urls.domain_candidates(urls.url_domain(url)):
            by_domain[candidate].append(url)
    for entry in lookup.exact_entries("domain", by_domain):
        hits += [(url, Hit(entry, "domain")) for url in by_domain[entry.value]]
    return hits


# --- A whole submission -----------------------------------------------------------------------------


@dataclass
class Findings:
    """What detection found in one submission, for triage."""

    submission_id: int
    matches: list[Match] = field(default_factory=list)
    text_scores: dict = field(default_factory=dict)
    strong_text: set = field(default_factory=set)  # categories whose strongest rule is marked strong
    urls: list[str] = field(default_factory=list)
    pdq_by_blob: dict = field(default_factory=dict)  # blob id → (pdq, quality)
    # Labels of the configured classifiers besides the lexicon: "text:<name>" / "image:<name>:<blob id>" → [(category, score)].
    labels: dict = field(default_factory=dict)
    blob_ids: list[int] = field(default_factory=list)

    def verdicts(self) -> list[Match]:
        """Files (sent or named by hash) on the hub's own list: known material."""
        return [m for m in self.matches if m.bank_kind == VERDICT and not m.url]

    def leads(self) -> list[Match]:
        """Files on an imported list."""
        return [m for m in self.matches if m.bank_kind == LEAD and not m.url]

    def listed_urls(self) -> list[Match]:
        return [m for m in self.matches if m.url and m.bank_kind != ALLOWED]


def scan_submission(submission, blobs, extra_text: str = "", declared=()) -> Findings:
    """Hash the files, read the texts, match everything; record it (again) for this submission.

    Safe to run twice (a retried task, information added later): the
    submission's findings are replaced, its matches kept once each.
    `declared` are (sha256, md5, name) of files named by their hashes alone.
    """
    findings = Findings(submission.pk, blob_ids=[b.pk for b in blobs])
    rows: list[Match] = []
    for blob in blobs:
        signals = signals_for(blob)
        if signals.pdq:
            findings.pdq_by_blob[blob.pk] = (signals.pdq, signals.pdq_quality or 0)
        rows += [_match_row(submission, hit, blob=blob) for hit in match_file(blob, signals)]
    declared_rows = [_match_row(submission, hit) for hit in match_declared(declared)]
    findings.urls = urls_of(submission, extra_text)
    rows += [_match_row(submission, hit, url=url) for url, hit in match_urls(findings.urls)]
    indicators = _indicators(submission, extra_text)
    findings.text_scores = text.summarise([i for _, i in indicators])
    findings.strong_text = {i.category for _, i in indicators if getattr(i, "strong", False)}
    findings.labels = _classifier_labels(submission, blobs, extra_text)
    with transaction.atomic():
        Match.objects.bulk_create(rows, ignore_conflicts=True)
        # Without a file or a URL the unique constraint cannot tell them apart (NULLs differ): replace them.
        Match.objects.filter(submission=submission, blob__isnull=True, url="").delete()
        Match.objects.bulk_create(declared_rows)
        _replace_text(submission, indicators, findings)
    findings.matches = list(Match.objects.filter(submission=submission).select_related("bank", "entry"))
    return findings


def _classifier_labels(submission, blobs, extra_text: str) -> dict:
    """What the configured classifiers say, the built-in lexicon aside (its findings are kept rule by rule)."""
    labels: dict[str, list] = {}
    words = "\n".join(filter(None, [getattr(submission, name, "") or "" for name in TEXT_FIELDS] + [extra_text]))
    for classifier in classifiers.text_classifiers():
        if classifier.name != "lexicon" and words:
            labels[f"text:{classifier.name}"] = [[l.category, l.score] for l in _safely(classifier.classify, words)]
    image_classifiers = classifiers.image_classifiers()
    for blob in blobs if image_classifiers else ():
        if blob.kind != "image":
            continue
        data = vault.read_plaintext(blob)
        for classifier in image_classifiers:
            labels[f"image:{classifier.name}:{blob.pk}"] = [[l.category, l.score] for l in _safely(classifier.classify, data)]
    return labels


def _safely(classify, value) -> list:
    try:
        return list(classify(value))
    except Exception as exc:  # a plug-in's failure must not stop the report's triage
        logger.warning("classifier %r failed: %s", getattr(classify, "__self__", classify), exc)
        return []


def _match_row(submission, hit: Hit, *, blob=None, url: str = "") -> Match:
    return Match(submission=submission, blob=blob, url=url, entry_id=hit.entry.id, bank_id=hit.entry.bank_id,
                 bank_kind=hit.entry.bank_kind, signal_type=hit.signal_type, distance=hit.distance, detail=hit.detail)


def _indicators(submission, extra_text: str) -> list[tuple[str, object]]:
    found = []
    fields = [(name, getattr(submission, name, "") or "") for name in ("description", "where_app", "reported_account")]
    for name, value in fields + [("addendum", extra_text)]:
        if value:
            found += [(name, indicator) for indicator in text.find_indicators(value)]
    return found


def _replace_text(submission, indicators, findings: Findings) -> None:
    TextFinding.objects.filter(submission=submission).delete()
    TextFinding.objects.bulk_create([
        TextFinding(submission=submission, field=name, category=i.category, rule=str(i.rule)[:200],
                    phrase=str(i.phrase)[:300], weight=float(i.weight))
        for name, i in indicators
    ])
    SubmissionUrl.objects.bulk_create(
        [SubmissionUrl(submission=submission, url=url, domain=urls.url_domain(url)[:253]) for url in findings.urls],
        ignore_conflicts=True,
    )
    SubmissionScan.objects.update_or_create(submission=submission, defaults={
        "text_scores": findings.text_scores, "labels": findings.labels, "scanned_at": timezone.now()})


# --- Linking reports of the same thing -----------------------------------------------------------------


def similar_files(pdq: str, quality: int, *, exclude_blob_ids=(), threshold: int = 31) -> list[int]:
    """Blob ids of other hashed files whose PDQ is within `threshold` (quality ≥ 50 on both sides)."""
    if not hashing.is_usable(quality, settings.COPHUB_PDQ_MIN_QUALITY):
        return []
    hits = indexes.get(indexes.SeenFilesIndex).search(pdq, threshold)
    rows = FileSignals.objects.filter(pk__in=[pk for pk, _ in hits], pdq_quality__gte=settings.COPHUB_PDQ_MIN_QUALITY)
    found = []
    for blob_id, value in rows.values_list("blob_id", "pdq"):
        if blob_id not in exclude_blob_ids and hashing.hamming(pdq, value) <= threshold:
            found.append(blob_id)
    return found


def submissions_naming(url_values: list[str], *, exclude_submission: int) -> list[int]:
    """Other submissions that named one of these URLs (a site's front page alone does not count)."""
    specific = [u for u in url_values if urls.is_specific(u)]
    if not specific:
        return []
    return list(SubmissionUrl.objects.filter(url__in=specific).exclude(submission_id=exclude_submission)
                .values_list("submission_id", flat=True).distinct()[:100])


# --- What the case page shows ------------------------------------------------------------------------


def matches_for(submission_ids) -> list[Match]:
    return list(Match.objects.filter(submission_id__in=submission_ids).select_related("bank", "entry", "blob"))


def urls_for(submission_ids) -> list[str]:
    """The normalised links named in these submissions, in order of first appearance."""
    rows = SubmissionUrl.objects.filter(submission_id__in=list(submission_ids)).order_by("pk").values_list("url", flat=True)
    return list(dict.fromkeys(rows))


def text_findings_for(submission_ids) -> list[TextFinding]:
    return list(TextFinding.objects.filter(submission_id__in=submission_ids))


def _verdicts(blob_ids):
    # Only while the entry is still on an enabled list: a withdrawn confirmation lifts the verdict.
    return Match.objects.filter(blob_id__in=list(blob_ids), bank_kind=VERDICT, entry__enabled=True, bank__enabled=True)


def known_blob_ids(blob_ids) -> set[int]:
    """Files that matched the hub's own confirmed list: never shown again."""
    return set(_verdicts(blob_ids).values_list("blob_id", flat=True))


def verdicts_for(blob_ids) -> dict[int, Match]:
    """The first verdict each known file inherited (its bank, entry and distance)."""
    verdicts: dict[int, Match] = {}
    for match in _verdicts(blob_ids).select_related("bank", "entry").order_by("matched_at", "pk"):
        verdicts.setdefault(match.blob_id, match)
    return verdicts
