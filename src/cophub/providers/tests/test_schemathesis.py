"""Schemathesis against the live OpenAPI document of a real `cophub serve` (issue 3, acceptance).

Every operation, a fixed seed, all of schemathesis' phases that apply
(examples, coverage, fuzzing, stateful); checks: no 5xx, every response
matching its documented status, content type, schema and headers, a
schema-violating request refused, the key actually required, and deleted
or missing resources staying missing.

Left out, on purpose: `positive_data_acceptance`. It expects every
schema-valid request to succeed, which this API deliberately refuses in
cases a schema cannot express: an Idempotency-Key reused with another body
(422 idempotency.key_reused, the point of the header), a webhook URL that is
syntactically a string but not a public https:// address (422), a report id
that is well-formed but does not exist (404), or one equal to a fixed path
segment (GET /reports/batch → 405). Every such answer is still checked
against the document by the other checks.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from cophub.core.livehub import LiveHub

SEED = "20261130"
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "response_headers_conformance", "negative_data_rejection", "ignored_auth", "use_after_free", "ensure_resource_availability",
])


def schemathesis(hub: LiveHub, token: str, examples: int, timeout: float = 240) -> tuple[subprocess.CompletedProcess, float]:
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{hub.url}/api/v1/openapi.json",
               "-H", f"Authorization: Bearer {token}", "--seed", SEED, "--max-examples", str(examples),
               "--phases", "examples,coverage,fuzzing,stateful", "--checks", CHECKS,
               "--workers", "1", "--no-color"]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=hub.data_dir)
    return result, time.monotonic() - started


def live_key(hub: LiveHub) -> str:
    """A live `reports:write` key for the demo provider, issued inside the hub's own database."""
    prefix = hub.sandbox_key.split("_")[2]
    code = ("from cophub.providers import keys; from cophub.providers.models import ApiKey; "
            f"print(keys.issue_key(ApiKey.objects.get(prefix={prefix!r}).provider, ['reports:write'])[1])")
    result = subprocess.run([sys.executable, "-m", "cophub", "shell", "-c", code], env=hub.env, capture_output=True, text=True, timeout=60, check=True)
    return [line for line in result.stdout.split() if line.startswith("cph_live_")][-1]


def report(result: subprocess.CompletedProcess, seconds: float) -> str:
    return f"schemathesis exited {result.returncode} after {seconds:.0f} s\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_the_openapi_document_holds_for_every_operation():
    with LiveHub(extra_env={"COPHUB_API_RATE": "100000/m"}) as hub:
        assert hub.sandbox_key, "cophub serve --demo printed no sandbox key"
        runs = [("sandbox", hub.sandbox_key, 40), ("live", live_key(hub), 15)]
        for name, token, examples in runs:
            result, seconds = schemathesis(hub, token, examples)
            print(f"--- {name} key ---\n{result.stdout[-2500:]}")
            assert result.returncode == 0, report(result, seconds)
            assert "12 selected / 12 total" in result.stdout, "not every operation was in the document"
