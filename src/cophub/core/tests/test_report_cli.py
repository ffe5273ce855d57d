"""`cophub report …` run as a user runs it: a subprocess, against a real `cophub serve` with its sandbox key."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from cophub.core.livehub import LiveHub


def cophub_report(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("COPHUB_URL", "COPHUB_API_KEY")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "cophub", "report", *args], env=environment, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_usage_errors_exit_2_without_calling_a_hub():
    missing_key = cophub_report("show", "rpt_x")
    assert missing_key.returncode == 2 and "COPHUB_API_KEY" in missing_key.stderr
    no_type = cophub_report("--url", "http://127.0.0.1:9", "--key", "k", "open")
    assert no_type.returncode == 2 and "--type" in no_type.stderr
    nothing_to_file = cophub_report("file", "rpt_x", env={"COPHUB_URL": "http://127.0.0.1:9", "COPHUB_API_KEY": "k"})
    assert nothing_to_file.returncode == 2 and "--sha256" in nothing_to_file.stderr
    assert cophub_report("frobnicate").returncode == 2


@pytest.fixture(scope="module")
def hub():
    with LiveHub() as live:
        assert live.sandbox_key and live.sandbox_key.startswith("cph_test_")
        yield live


@pytest.fixture
def env(hub):
    return {"COPHUB_URL": hub.url, "COPHUB_API_KEY": hub.sandbox_key}


@pytest.mark.slow
def test_open_finish_and_show(hub, env):
    opened = cophub_report("open", "--type", "sextortion", "--time", "2026-11-20T21:15:00+07:00", "--summary", "Đe doạ đăng ảnh",
                           "--content-url", "https://chat.example/c/1", "--app", "ChatApp", "--escalate", "threat within 24 hours",
                           "--annotation", "sextortion", "--age-band", "13_15", "--finish", env=env)
    assert opened.returncode == 0, opened.stderr
    report = json.loads(opened.stdout)
    assert report["state"] == "finished" and report["sandbox"] is True and report["incident_type"] == "sextortion"

    # The options also work before the subcommand, instead of the environment.
    shown = cophub_report("--url", hub.url, "--key", hub.sandbox_key, "show", report["id"])
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == report["id"] and json.loads(shown.stdout)["state"] == "finished"


@pytest.mark.slow
def test_files_then_finish_twice_and_a_wrong_key(hub, env, tmp_path):
    draft = json.loads(cophub_report("open", "--type", "scam", env=env).stdout)
    assert draft["state"] == "draft"
    picture = tmp_path / "trang-gia.png"
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 30, 30)).save(buffer, "PNG")
    picture.write_bytes(buffer.getvalue())

    uploaded = cophub_report("file", draft["id"], str(picture), "--grade", "B1", "--viewed", env=env)
    assert uploaded.returncode == 0, uploaded.stderr
    result = json.loads(uploaded.stdout)
    assert result["sha256"] == hashlib.sha256(picture.read_bytes()).hexdigest() and result["original_name"] == "trang-gia.png"
    assert result["metadata"]["grade"] == "B1" and result["metadata"]["viewed_by_provider"] is True
    declared = cophub_report("file", draft["id"], "--sha256", "ab" * 32, "--name", "clip.mp4", env=env)
    assert declared.returncode == 0 and json.loads(declared.stdout)["hash_only"] is True

    assert cophub_report("finish", draft["id"], env=env).returncode == 0
    again = cophub_report("finish", draft["id"], env=env)
    assert again.returncode == 1 and again.stdout == ""
    assert "report.already_finished" in again.stderr
    retract = cophub_report("retract", draft["id"], env=env)
    assert retract.returncode == 1 and "report.already_finished" in retract.stderr

    wrong = cophub_report("show", draft["id"], env={**env, "COPHUB_API_KEY": "cph_test_nosuchkey_secret"})
    assert wrong.returncode == 1 and "auth.invalid_key" in wrong.stderr
    invalid = cophub_report("open", "--type", "not-a-category", env=env)
    assert invalid.returncode == 1 and "validation.error" in invalid.stderr and "incident_type" in invalid.stderr


@pytest.mark.slow
def test_batch_from_jsonl(env, tmp_path):
    lines = [json.dumps({"incident_type": "scam", "incident_time": "2026-11-29T10:00:00+07:00", "finish": True}), "",
             json.dumps({"incident_type": "grooming", "incident_time": "2026-11-29T11:00:00+07:00"})]
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = cophub_report("batch", str(path), env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["succeeded"], result["failed"]) == (2, 0)
    assert [r["report"]["state"] for r in result["results"]] == ["finished", "draft"]

    bad = lines[:1] + [json.dumps({"incident_type": "nope", "incident_time": "2026-11-29T10:00:00+07:00"})]
    failed = cophub_report("batch", "-", env=env, stdin="\n".join(bad))
    assert failed.returncode == 1 and "1 of 2 reports were refused" in failed.stderr
    assert [r["status"] for r in json.loads(failed.stdout)["results"]] == [201, 422]
    assert cophub_report("batch", str(tmp_path / "missing.jsonl"), env=env).returncode == 2


@pytest.mark.slow
def test_the_sandbox_hash_list_through_the_cli(env):
    """The demo's sandbox key reads the sandbox list: the hashes of a harmless test file, never real material."""
    listed = cophub_report("hashes", env=env)
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    test_file = b"cophub sandbox test file 1"
    assert {(a["signal_type"], a["value"]) for a in page["added"]} == {
        ("sha256", hashlib.sha256(test_file).hexdigest()), ("md5", hashlib.md5(test_file).hexdigest())}
    assert page["removed"] == [] and page["more"] is False
    after = json.loads(cophub_report("hashes", "--cursor", str(page["cursor"]), env=env).stdout)
    assert after["added"] == [] and after["cursor"] == page["cursor"]
