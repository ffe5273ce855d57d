"""A small typed client for the cophub provider API (docs/api.md).

One file, standard library only, no Django: a provider may copy it into its
own code base as it is. Python 3.10 or newer.

    from cophub.client import CophubClient, CophubError

    hub = CophubClient("https://hub.example", "cph_live_…")
    report = hub.open_report("sextortion", "2026-11-20T21:15:00+07:00", summary="…")
    hub.upload_file(report.id, "screenshot.png", metadata={"viewed_by_provider": True})
    hub.finish(report.id)

Every POST carries an `Idempotency-Key` (a new UUID unless one is given) and
is retried with the same key after a connection error, a 429 (honouring
`Retry-After`, bounded), a `409 idempotency.in_progress` or a 5xx, so a retry
never files a report twice. Errors raise `CophubError` with the hub's RFC 9457
problem document.
"""

from __future__ import annotations

import json
import mimetypes
import os
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Iterable, Mapping

__version__ = "1.0"
__all__ = ["BatchItem", "BatchResult", "CaseStatus", "CophubClient", "CophubError", "FileResult", "Report"]

API_PREFIX = "/api/v1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


# --- Results -------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class FileResult:
    """A file of a report, with the hashes the hub computed (or was given)."""

    id: str
    sha256: str
    md5: str
    size: int | None
    original_name: str
    hash_only: bool
    metadata: dict

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FileResult":
        return cls(id=data["id"], sha256=data.get("sha256", ""), md5=data.get("md5", ""), size=data.get("size"),
                   original_name=data.get("original_name", ""), hash_only=bool(data.get("hash_only")),
                   metadata=dict(data.get("metadata") or {}))


@dataclass
class CaseStatus:
    """The public step of the hub's case: received, working, referred, done or withdrawn."""

    step: str
    text: str
    updated_at: datetime | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CaseStatus":
        return cls(step=data["step"], text=data.get("text", ""), updated_at=_time(data.get("updated_at")))


@dataclass
class Report:
    """A report as its provider may see it; `raw` is the hub's JSON document."""

    id: str
    state: str  # draft, finished, retracted or expired
    sandbox: bool
    incident_type: str
    incident_time: datetime | None
    created_at: datetime | None
    expires_at: datetime | None
    finished_at: datetime | None
    retracted_at: datetime | None
    files: list[FileResult]
    case: CaseStatus | None
    takedown_requests: list[dict]
    links: dict[str, str]
    raw: dict = field(repr=False, default_factory=dict)
    replayed: bool = False  # the hub answered from its idempotency store (`Idempotent-Replayed: true`)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, replayed: bool = False) -> "Report":
        return cls(
            id=data["id"], state=data["state"], sandbox=bool(data.get("sandbox")), incident_type=data.get("incident_type", ""),
            incident_time=_time(data.get("incident_time")), created_at=_time(data.get("created_at")),
            expires_at=_time(data.get("expires_at")), finished_at=_time(data.get("finished_at")),
            retracted_at=_time(data.get("retracted_at")),
            files=[FileResult.from_dict(f) for f in data.get("files") or []],
            case=CaseStatus.from_dict(data["case"]) if data.get("case") else None,
            takedown_requests=list(data.get("takedown_requests") or []), links=dict(data.get("links") or {}),
            raw=dict(data), replayed=replayed,
        )


@dataclass
class HashChange:
    signal_type: str  # sha256, md5 (pdq, vpdq and url later)
    value: str
    at: datetime | None  # when it was added or removed


@dataclass
class HashChanges:
    """One page of the hub's hash list feed: apply `removed` and `added`, keep `cursor`."""

    added: list[HashChange]
    removed: list[HashChange]
    cursor: int
    more: bool

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HashChanges":
        return cls(
            added=[HashChange(a["signal_type"], a["value"], _time(a.get("added_at"))) for a in data.get("added") or []],
            removed=[HashChange(r["signal_type"], r["value"], _time(r.get("removed_at"))) for r in data.get("removed") or []],
            cursor=int(data.get("cursor", 0)), more=bool(data.get("more")),
        )


@dataclass
class BatchItem:
    index: int
    status: int
    report: Report | None = None
    error: "CophubError | None" = None

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass
class BatchResult:
    succeeded: int
    failed: int
    results: list[BatchItem]
    raw: dict = field(repr=False, default_factory=dict)


# --- Errors --------------------------------------------------------------------------


class CophubError(Exception):
    """An error answer of the hub (an RFC 9457 problem), or no answer at all.

    `code` is the stable thing to test (`report.already_finished`,
    `auth.invalid_key`, …). Without an answer from the hub `status` is 0 and
    `code` is `client.connection_failed`.
    """

    def __init__(self, status: int, code: str, title: str = "", detail: str = "", problem: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None):
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.problem = dict(problem or {})
        self.headers = dict(headers or {})
        super().__init__(f"{status} {code}: {detail or title}")

    @property
    def errors(self) -> list[dict]:
        """Field errors of a `validation.error` (loc, msg, type)."""
        return list(self.problem.get("errors") or [])

    @classmethod
    def from_problem(cls, problem: Mapping[str, Any], status: int | None = None, headers=None) -> "CophubError":
        return cls(status=int(problem.get("status") or status or 0), code=str(problem.get("code") or f"http.{status}"),
                   title=str(problem.get("title") or ""), detail=str(problem.get("detail") or ""), problem=problem, headers=headers)


# --- Multipart -----------------------------------------------------------------------


def _quote_param(value: str) -> str:
    # What browsers do (HTML's multipart/form-data encoding): names stay UTF-8, these three are escaped.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def encode_multipart(fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]], boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type. `files` maps a field to (filename, content, content type)."""
    boundary = boundary or f"cophub-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_param(name)}"\r\n'
                     f"Content-Type: text/plain; charset=utf-8\r\n\r\n".encode())
        parts.append(value.encode() + b"\r\n")
    for name, (filename, content, content_type) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_param(name)}"; filename="{_quote_param(filename)}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n".encode())
        parts.append(content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- The client ----------------------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def _drop_none(data: Mapping[str, Any]) -> dict:
    return {k: v for k, v in data.items() if v is not None}


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    body: Any


class CophubClient:
    """The provider API of one hub, with one API key.

    `base_url` is the hub's address (`https://hub.example`) or its API root
    (`https://hub.example/api/v1`). `retries` is how many times a request is
    repeated after a retryable failure; `max_wait` bounds every pause
    (a longer `Retry-After` ends the retries and raises the 429).
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0, retries: int = 3, *,
                 backoff: float = 0.5, max_wait: float = 60.0, user_agent: str | None = None):
        base = base_url.rstrip("/")
        if not base.endswith(API_PREFIX):
            base += API_PREFIX
        self.base_url = base
        self.api_key = api_key
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_wait = max_wait
        self.user_agent = user_agent or f"cophub-client/{__version__}"
        self._opener = urllib.request.build_opener()

    # -- reports --
    def open_report(self, incident_type: str, incident_time: datetime | str, *, summary: str | None = None,
                    escalate_reason: str | None = None, annotations: Iterable[str] | None = None,
                    internet_details: Iterable[Mapping[str, Any]] | None = None, reported_user: Mapping[str, Any] | None = None,
                    victim: Mapping[str, Any] | None = None, reporter_contact: Mapping[str, Any] | None = None,
                    finish: bool = False, idempotency_key: str | None = None) -> Report:
        """Open a report (a draft), or file it at once with `finish=True`."""
        body = report_body(incident_type, incident_time, summary=summary, escalate_reason=escalate_reason, annotations=annotations,
                           internet_details=internet_details, reported_user=reported_user, victim=victim,
                           reporter_contact=reporter_contact, finish=finish)
        return self._report("POST", "/reports", body, idempotency_key)

    def upload_file(self, report_id: str, path_or_bytes: str | os.PathLike | bytes, *, filename: str | None = None,
                    metadata: Mapping[str, Any] | None = None, content_type: str | None = None,
                    idempotency_key: str | None = None) -> FileResult:
        """Upload a file to a draft; the answer has the hub's SHA-256 and MD5 of the bytes."""
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            if not filename:
                raise ValueError("filename is required when uploading bytes")
            content = bytes(path_or_bytes)
        else:
            with open(path_or_bytes, "rb") as handle:
                content = handle.read()
            filename = filename or os.path.basename(os.fspath(path_or_bytes))
        content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        fields = {"metadata": json.dumps(dict(metadata), ensure_ascii=False)} if metadata else {}
        body, multipart_type = encode_multipart(fields, {"file": (filename, content, content_type)})
        answer = self._request("POST", f"/reports/{_segment(report_id)}/files", body, multipart_type, idempotency_key)
        return FileResult.from_dict(answer.body)

    def declare_file(self, report_id: str, *, sha256: str | None = None, md5: str | None = None,
                     metadata: Mapping[str, Any] | None = None, idempotency_key: str | None = None) -> FileResult:
        """Declare a file by its hashes alone (content the provider will not send)."""
        if not sha256 and not md5:
            raise ValueError("declare at least one of sha256 and md5")
        body = {**dict(metadata or {}), **_drop_none({"sha256": sha256, "md5": md5})}
        answer = self._json("POST", f"/reports/{_segment(report_id)}/files", body, idempotency_key)
        return FileResult.from_dict(answer.body)

    def finish(self, report_id: str, *, idempotency_key: str | None = None) -> Report:
        return self._report("POST", f"/reports/{_segment(report_id)}/finish", None, idempotency_key)

    def retract(self, report_id: str, *, idempotency_key: str | None = None) -> Report:
        return self._report("POST", f"/reports/{_segment(report_id)}/retract", None, idempotency_key)

    def get_report(self, report_id: str) -> Report:
        return self._report("GET", f"/reports/{_segment(report_id)}", None, None)

    def batch(self, reports: Iterable[Mapping[str, Any]], *, idempotency_key: str | None = None) -> BatchResult:
        """Up to 100 reports (dicts shaped like `report_body`), each stored on its own."""
        answer = self._json("POST", "/reports/batch", {"reports": [dict(r) for r in reports]}, idempotency_key)
        data = answer.body
        items = []
        for item in data.get("results", []):
            problem = item.get("problem")
            items.append(BatchItem(index=item["index"], status=item["status"],
                                   report=Report.from_dict(item["report"]) if item.get("report") else None,
                                   error=CophubError.from_problem(problem, item["status"]) if problem else None))
        return BatchResult(succeeded=data.get("succeeded", 0), failed=data.get("failed", 0), results=items, raw=data)

    def hash_changes(self, cursor: int = 0, *, limit: int = 1000) -> HashChanges:
        """One page of changes to the hub's hash list after `cursor` (needs the `hashes:read` scope)."""
        return HashChanges.from_dict(self._json("GET", f"/hashes?cursor={int(cursor)}&limit={int(limit)}", None, None).body)

    def sync_hashes(self, known: set[tuple[str, str]], cursor: int = 0, *, limit: int = 1000) -> int:
        """Bring `known` ((signal_type, value) pairs) up to date from `cursor`; returns the cursor to keep."""
        while True:
            page = self.hash_changes(cursor, limit=limit)
            known.difference_update((c.signal_type, c.value) for c in page.removed)
            known.update((c.signal_type, c.value) for c in page.added)
            cursor = page.cursor
            if not page.more:
                return cursor

    # -- transport --
    def _report(self, method: str, path: str, body, idempotency_key) -> Report:
        answer = self._json(method, path, body, idempotency_key)
        return Report.from_dict(answer.body, replayed=answer.headers.get("idempotent-replayed") == "true")

    def _json(self, method: str, path: str, body, idempotency_key) -> _Answer:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        return self._request(method, path, data, "application/json" if data is not None else None, idempotency_key)

    def _request(self, method: str, path: str, data: bytes | None, content_type: str | None, idempotency_key: str | None) -> _Answer:
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json", "User-Agent": self.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        if method == "POST":
            # One key for every attempt: the hub runs the operation at most once.
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                answer = self._send(method, url, data, headers)
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError) as exc:
                if attempt >= self.retries:
                    reason = getattr(exc, "reason", exc)
                    raise CophubError(0, "client.connection_failed", "No answer from the hub", f"{url}: {reason}") from exc
                self._pause(attempt, None)
                attempt += 1
                continue
            if 200 <= answer.status < 300:
                return answer
            error = self._error(answer)
            retryable = answer.status in RETRY_STATUSES or error.code == "idempotency.in_progress"
            if retryable and attempt < self.retries:
                wait = _retry_after(answer.headers.get("retry-after"))
                if wait is None or wait <= self.max_wait:
                    self._pause(attempt, wait)
                    attempt += 1
                    continue
            raise error

    def _send(self, method: str, url: str, data: bytes | None, headers: dict) -> _Answer:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return _Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, _decode(response.read()))
        except urllib.error.HTTPError as error:
            with error:
                return _Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, _decode(error.read()))

    @staticmethod
    def _error(answer: _Answer) -> CophubError:
        if isinstance(answer.body, dict) and answer.body.get("code"):
            return CophubError.from_problem(answer.body, answer.status, answer.headers)
        text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        return CophubError(answer.status, f"http.{answer.status}", "Unexpected answer", (text or "")[:500], headers=answer.headers)

    def _pause(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            wait = retry_after
        else:  # exponential backoff with jitter
            wait = self.backoff * (2 ** attempt) * (0.5 + random.random() / 2)
        time.sleep(min(wait, self.max_wait))


def _segment(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def report_body(incident_type: str, incident_time: datetime | str, *, summary: str | None = None, escalate_reason: str | None = None,
                annotations: Iterable[str] | None = None, internet_details: Iterable[Mapping[str, Any]] | None = None,
                reported_user: Mapping[str, Any] | None = None, victim: Mapping[str, Any] | None = None,
                reporter_contact: Mapping[str, Any] | None = None, finish: bool = False) -> dict:
    """The JSON of one report, for `open_report` and for the items of `batch`."""
    when = incident_time.isoformat() if isinstance(incident_time, datetime) else str(incident_time)
    body = _drop_none({
        "incident_type": incident_type, "incident_time": when, "summary": summary, "escalate_reason": escalate_reason,
        "annotations": list(annotations) if annotations is not None else None,
        "internet_details": [dict(d) for d in internet_details] if internet_details is not None else None,
        "reported_user": dict(reported_user) if reported_user is not None else None,
        "victim": dict(victim) if victim is not None else None,
        "reporter_contact": dict(reporter_contact) if reporter_contact is not None else None,
    })
    if finish:
        body["finish"] = True
    return body
