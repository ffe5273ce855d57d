"""`GET /api/v1/hashes`: the scope, the key, and walking the feed with its cursor."""

from __future__ import annotations

import hashlib

import pytest

from cophub.hashbanks import services
from cophub.hashbanks.models import BankChange, BankEntry, ChangeAction
from cophub.providers import keys
from cophub.providers.tests.conftest import ApiClient

pytestmark = pytest.mark.django_db
READ = ["hashes:read"]


@pytest.fixture
def reader(provider):
    return ApiClient(keys.issue_key(provider, READ)[1])


@pytest.fixture
def sandbox_reader(provider):
    return ApiClient(keys.issue_key(provider, READ, sandbox=True)[1])


def sha(n) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def bulk_entries(count: int) -> list[BankEntry]:
    """Many entries at once, each with its "added" change (the services write them one by one)."""
    bank = services.hub_bank()
    entries = BankEntry.objects.bulk_create([BankEntry(bank=bank, signal_type="sha256", value=sha(n), source="test") for n in range(count)])
    entries = list(BankEntry.objects.filter(bank=bank).order_by("pk"))
    BankChange.objects.bulk_create([BankChange(entry=entry, action=ChangeAction.ADDED) for entry in entries])
    return entries


def test_a_key_without_the_scope_gets_the_scope_problem(live):
    response = live.get("/api/v1/hashes")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "auth.scope" and problem["required_scope"] == "hashes:read"


@pytest.mark.parametrize("header", [None, "Bearer cph_live_nope_nope", "Bearer not-a-key"])
def test_no_key_or_a_wrong_key_is_401(client, header):
    response = client.get("/api/v1/hashes", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.json()["code"] in {"auth.missing_key", "auth.invalid_key"}


def test_empty_feed(reader):
    response = reader.get("/api/v1/hashes")
    assert response.status_code == 200
    assert response.json() == {"added": [], "removed": [], "cursor": 0, "more": False}


@pytest.mark.parametrize("query", ["cursor=-1", "cursor=abc", "limit=0", "limit=10001", f"cursor={2**63}"])
def test_bad_parameters_are_validation_problems(reader, query):
    response = reader.get(f"/api/v1/hashes?{query}")
    assert response.status_code == 422
    assert response.json()["code"] == "validation.error"


def test_walking_the_cursor_gets_every_entry_exactly_once(reader):
    entries = bulk_entries(2500)
    cursor, seen, calls = 0, [], 0
    while True:
        page = reader.get(f"/api/v1/hashes?cursor={cursor}&limit=1000").json()
        calls += 1
        seen += [item["value"] for item in page["added"]]
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert calls == 3
    assert len(seen) == 2500 and set(seen) == {e.value for e in entries}
    # Nothing new: the same cursor comes back, with nothing in it.
    assert reader.get(f"/api/v1/hashes?cursor={cursor}").json() == {"added": [], "removed": [], "cursor": cursor, "more": False}


def test_a_removal_comes_after_the_cursor(reader):
    entry = services.add_signals(services.hub_bank(), {"sha256": sha(1)}, source="test", actor=None).entries[0]
    first = reader.get("/api/v1/hashes").json()
    assert [i["value"] for i in first["added"]] == [sha(1)]
    services.disable_entry(entry, None, "nhầm lẫn")
    later = reader.get(f"/api/v1/hashes?cursor={first['cursor']}").json()
    assert later["added"] == [] and [i["value"] for i in later["removed"]] == [sha(1)]
    assert later["removed"][0]["signal_type"] == "sha256" and later["cursor"] > first["cursor"]


def test_sandbox_keys_read_the_sandbox_list(reader, sandbox_reader):
    services.add_signals(services.hub_bank(), {"sha256": sha("real")}, source="test", actor=None)
    services.add_signals(services.sandbox_bank(), {"md5": hashlib.md5(b"test").hexdigest()}, source="test", actor=None)
    assert [i["value"] for i in reader.get("/api/v1/hashes").json()["added"]] == [sha("real")]
    assert [i["signal_type"] for i in sandbox_reader.get("/api/v1/hashes").json()["added"]] == ["md5"]


def test_the_openapi_document_describes_the_feed(reader):
    document = reader.client.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/hashes"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"cursor", "limit"}
    assert {"200", "401", "403", "422", "429"} <= set(operation["responses"])
    assert operation["responses"]["403"]["content"]["application/problem+json"]
