"""cophub.client: unit tests against tiny loopback servers, and end to end against a real `cophub serve`."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import http.server
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from PIL import Image

from cophub import client as client_module
from cophub.client import CophubClient, CophubError, encode_multipart
from cophub.core.livehub import LiveHub

# --- Loopback servers (real sockets, real HTTP) ------------------------------------------


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A real HTTP server on a free loopback port, serving from a thread."""

    daemon_threads = True

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class Scripted(LoopbackServer):
    """Answers each request with the next (status, headers, body) of `script`; records the requests."""

    def __init__(self, script):
        self.script = list(script)
        self.seen: list[dict] = []
        super().__init__(_ScriptedHandler)


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append({"time": time.monotonic(), "path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)})
        status, headers, body = self.server.script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _problem(status: int, code: str) -> dict:
    return {"type": f"https://cophub.vn/problems/{code}", "title": code, "status": status, "detail": f"detail of {code}", "code": code}


REPORT = {"id": "rpt_abc", "state": "draft", "sandbox": True, "incident_type": "scam", "incident_time": "2026-11-29T03:00:00+00:00",
          "created_at": "2026-11-30T07:35:01.120512+00:00", "expires_at": "2026-12-03T07:35:01+00:00", "finished_at": None,
          "retracted_at": None, "files": [], "case": None, "takedown_requests": [], "links": {"self": "/api/v1/reports/rpt_abc"}}


def png_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (seed % 256, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


# --- Fast tests ---------------------------------------------------------------------------


def test_multipart_body_parses_back_with_the_stdlib_email_parser():
    content = png_bytes() + b"\r\n--not-the-boundary\r\n"
    body, content_type = encode_multipart({"metadata": json.dumps({"grade": "A2", "original_name": "ảnh.png"}, ensure_ascii=False)},
                                          {"file": ('shot "1".png', content, "image/png")})
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert message.is_multipart()
    metadata, upload = message.iter_parts()
    assert metadata.get_param("name", header="content-disposition") == "metadata"
    assert json.loads(metadata.get_content()) == {"grade": "A2", "original_name": "ảnh.png"}
    assert upload.get_param("name", header="content-disposition") == "file"
    assert upload.get_filename() == "shot %221%22.png"
    assert upload.get_content_type() == "image/png"
    assert upload.get_payload(decode=True) == content


def test_429_is_retried_after_retry_after_with_the_same_idempotency_key():
    with Scripted([(429, {"Retry-After": "1"}, _problem(429, "request.rate_limited")), (201, {}, REPORT)]) as server:
        hub = CophubClient(server.url, "cph_test_x_y", retries=2)
        report = hub.open_report("scam", "2026-11-29T10:00:00+07:00", summary="Trang giả")
    assert report.id == "rpt_abc" and report.state == "draft" and report.sandbox
    first, second = server.seen
    assert second["time"] - first["time"] >= 0.95  # waited Retry-After
    assert first["path"] == second["path"] == "/api/v1/reports"
    key = first["headers"]["Idempotency-Key"]
    assert str(uuid.UUID(key)) == key and second["headers"]["Idempotency-Key"] == key
    assert first["body"] == second["body"]
    assert json.loads(first["body"]) == {"incident_type": "scam", "incident_time": "2026-11-29T10:00:00+07:00", "summary": "Trang giả"}
    assert first["headers"]["User-Agent"] == f"cophub-client/{client_module.__version__}"
    assert first["headers"]["Authorization"] == "Bearer cph_test_x_y"


def test_5xx_and_in_progress_are_retried_and_the_last_error_is_raised():
    script = [(503, {}, _problem(503, "server.error")), (409, {"Retry-After": "0"}, _problem(409, "idempotency.in_progress")),
              (500, {}, _problem(500, "server.error"))]
    with Scripted(script) as server:
        hub = CophubClient(server.url, "k", retries=2, backoff=0.01)
        with pytest.raises(CophubError) as caught:
            hub.finish("rpt_abc", idempotency_key="mine")
    assert (caught.value.status, caught.value.code, caught.value.detail) == (500, "server.error", "detail of server.error")
    assert [s["headers"]["Idempotency-Key"] for s in server.seen] == ["mine"] * 3
    assert [s["path"] for s in server.seen] == ["/api/v1/reports/rpt_abc/finish"] * 3


def test_a_retry_after_beyond_the_bound_is_not_waited_for_and_4xx_is_not_retried():
    with Scripted([(429, {"Retry-After": "3600"}, _problem(429, "request.rate_limited"))]) as server:
        started = time.monotonic()
        with pytest.raises(CophubError) as caught:
            CophubClient(server.url, "k", retries=3, max_wait=5).retract("rpt_abc")
        assert time.monotonic() - started < 2
        assert caught.value.code == "request.rate_limited" and caught.value.headers["retry-after"] == "3600"
    with Scripted([(409, {}, _problem(409, "report.already_finished"))]) as server:
        with pytest.raises(CophubError) as caught:
            CophubClient(server.url, "k", retries=3).retract("rpt_abc")
        assert caught.value.code == "report.already_finished" and len(server.seen) == 1


def test_no_hub_is_a_connection_error_after_the_retries():
    with Scripted([]) as server:
        url = server.url
    with pytest.raises(CophubError) as caught:
        CophubClient(url, "k", retries=1, backoff=0.01).open_report("scam", "2026-11-29T10:00:00+07:00")
    assert caught.value.status == 0 and caught.value.code == "client.connection_failed"


def test_the_client_does_not_import_django():
    code = "import sys, cophub.client; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- Against a real hub ----------------------------------------------------------------------

LIVE_KEY_CODE = """
from cophub.orgs.models import Unit
from cophub.providers import keys
from cophub.providers.models import Provider
provider = Provider.objects.create(name="Client test provider", unit=Unit.objects.filter(kind="district").first())
print("KEY=" + keys.issue_key(provider, ["reports:write", "hashes:read"])[1])
print("PROVIDER=" + str(provider.pk))
"""


def hub_shell(hub: LiveHub, code: str) -> str:
    """Run Python in the hub's environment (its database and data folder)."""
    done = subprocess.run([sys.executable, "-m", "cophub", "shell", "-c", code], env=hub.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def live_hub():
    with LiveHub() as hub:
        values = dict(line.split("=", 1) for line in hub_shell(hub, LIVE_KEY_CODE).splitlines() if "=" in line)
        hub.live_key, hub.provider_pk = values["KEY"], values["PROVIDER"]
        yield hub


def report_count(hub) -> int:
    code = f"from cophub.providers.models import ProviderReport; print(ProviderReport.objects.filter(provider_id={hub.provider_pk}).count())"
    return int(hub_shell(hub, code).strip().splitlines()[-1])


@pytest.mark.slow
def test_open_upload_finish_against_a_live_hub(live_hub):
    hub = CophubClient(live_hub.url, live_hub.live_key)
    draft = hub.open_report("sextortion", "2026-11-20T21:15:00+07:00", summary="Tài khoản đe doạ đăng ảnh của học sinh.",
                            annotations=["sextortion"], internet_details=[{"kind": "chat", "app": "ChatApp"}],
                            reported_user={"username": "ke_xau_99"}, victim={"age_band": "13_15"})
    assert draft.state == "draft" and not draft.sandbox and draft.expires_at is not None and "finish" in draft.links
    picture = png_bytes(7)
    uploaded = hub.upload_file(draft.id, picture, filename="ảnh chụp.png", metadata={"viewed_by_provider": True, "grade": "A2"})
    assert uploaded.sha256 == hashlib.sha256(picture).hexdigest() and uploaded.md5 == hashlib.md5(picture).hexdigest()
    assert uploaded.size == len(picture) and not uploaded.hash_only and uploaded.metadata["grade"] == "A2"
    declared = hub.declare_file(draft.id, sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", metadata={"original_name": "clip.mp4"})
    assert declared.hash_only and declared.original_name == "clip.mp4"
    finished = hub.finish(draft.id)
    assert finished.state == "finished" and finished.finished_at is not None
    shown = hub.get_report(draft.id)
    assert shown.state == "finished" and shown.case is not None and shown.case.step == "received"
    assert {f.id for f in shown.files} == {uploaded.id, declared.id}

    with pytest.raises(CophubError) as caught:
        hub.finish(draft.id)
    assert caught.value.status == 409 and caught.value.code == "report.already_finished" and caught.value.title


@pytest.mark.slow
def test_an_idempotent_retry_never_files_twice(live_hub):
    hub = CophubClient(live_hub.url, live_hub.live_key)
    before = report_count(live_hub)
    key = str(uuid.uuid4())
    first = hub.open_report("scam", "2026-11-29T10:00:00+07:00", finish=True, idempotency_key=key)
    again = hub.open_report("scam", "2026-11-29T10:00:00+07:00", finish=True, idempotency_key=key)
    assert again.id == first.id and again.replayed and not first.replayed

    # The answer is lost on the way back: the client retries with the same key and gets the stored answer.
    with _LosingProxy(live_hub.url) as proxy:
        lost = CophubClient(proxy.url, live_hub.live_key, backoff=0.01).open_report("scam", "2026-11-29T11:00:00+07:00", finish=True)
    assert lost.replayed and lost.state == "finished"
    assert [h["Idempotency-Key"] for h in proxy.seen][:2] == [proxy.seen[0]["Idempotency-Key"]] * 2
    assert report_count(live_hub) == before + 2


@pytest.mark.slow
def test_a_wrong_key_and_a_batch(live_hub):
    with pytest.raises(CophubError) as caught:
        CophubClient(live_hub.url, "cph_live_nosuchkey_secret").get_report("rpt_x")
    assert (caught.value.status, caught.value.code) == (401, "auth.invalid_key")

    hub = CophubClient(live_hub.url, live_hub.sandbox_key)
    result = hub.batch([{"incident_type": "scam", "incident_time": "2026-11-29T10:00:00+07:00", "finish": True},
                        {"incident_type": "not-a-category", "incident_time": "2026-11-29T10:00:00+07:00"}])
    assert (result.succeeded, result.failed) == (1, 1)
    ok, bad = result.results
    assert ok.ok and ok.report.sandbox and ok.report.state == "finished" and ok.report.case is None
    assert not bad.ok and bad.error.code == "validation.error" and bad.error.errors[0]["loc"] == ["incident_type"]


class _LosingProxy(LoopbackServer):
    """Forwards to the hub, but drops the first answer (closes the connection without replying)."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.seen: list[dict] = []
        super().__init__(_LosingHandler)


class _LosingHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        self.server.seen.append(headers)
        request = urllib.request.Request(self.server.upstream + self.path, data=body, headers=headers, method="POST")
        try:
            response = urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        with response:
            status, reply_headers, data = response.status, response.headers, response.read()
        if len(self.server.seen) == 1:  # the hub did the work; the client never hears of it
            self.close_connection = True
            return
        self.send_response(status)
        for name in ("Content-Type", "Idempotent-Replayed"):
            if reply_headers.get(name):
                self.send_header(name, reply_headers[name])
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


HUB_LIST_CODE = """
from cophub.hashbanks import services
from cophub.hashbanks.models import BankEntry
if {add}:
    services.add_signals(services.hub_bank(), {{"sha256": "{value}"}}, source="test", actor=None)
else:
    services.disable_entry(BankEntry.objects.get(value="{value}"), None, "test")
"""


def _hub_list(hub: LiveHub, action: str, n: int) -> str:
    """Add or remove a SHA-256 on the hub's own list, inside the hub; returns the value."""
    value = hashlib.sha256(f"hash feed {n}".encode()).hexdigest()
    hub_shell(hub, HUB_LIST_CODE.format(add=action == "add", value=value))
    return value


@pytest.mark.slow
def test_a_provider_keeps_its_copy_of_the_hash_list_in_step(live_hub):
    hub = CophubClient(live_hub.url, live_hub.live_key)
    known: set[tuple[str, str]] = set()
    first, second, third = (_hub_list(live_hub, "add", n) for n in (1, 2, 3))
    cursor = hub.sync_hashes(known, limit=2)  # two pages
    assert known >= {("sha256", first), ("sha256", second), ("sha256", third)}
    _hub_list(live_hub, "remove", 2)
    fourth = _hub_list(live_hub, "add", 4)
    page = hub.hash_changes(cursor)
    assert [c.value for c in page.removed] == [second] and [c.value for c in page.added] == [fourth] and not page.more
    cursor = hub.sync_hashes(known, cursor)
    assert ("sha256", second) not in known and ("sha256", fourth) in known
    assert hub.hash_changes(cursor).added == [] and hub.hash_changes(cursor).cursor == cursor
