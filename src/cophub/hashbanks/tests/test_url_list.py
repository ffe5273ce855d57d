"""The published list of harmful addresses: what is on it, its review dates, its formats, the API route and the command."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from cophub.audit.models import AuditEvent
from cophub.cases.tests.helpers import flash, log_in
from cophub.conftest import make_user
from cophub.hashbanks import formats, services
from cophub.hashbanks.models import Bank, BankEntry, BankKind
from cophub.orgs.models import Role
from cophub.providers import keys
from cophub.providers.tests.conftest import ApiClient

pytestmark = pytest.mark.django_db
ROUTE = "/api/v1/lists/blocked-urls"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def add(bank: Bank, kind: str, value: str, source: str = "test") -> BankEntry:
    return services.add_signals(bank, {kind: value}, source=source, actor=None).entries[0]


def values(rows) -> list[str]:
    return [row.value for row in rows]


@pytest.fixture
def imported():
    return services.create_bank("IWF URL list", BankKind.IMPORTED, actor=None, shared=True, origin="IWF")


@pytest.fixture
def allow():
    return services.create_bank("Known harmless", BankKind.ALLOW, actor=None)


@pytest.fixture
def reader(provider):
    return ApiClient(keys.issue_key(provider, ["lists:read"])[1])


def get(api: ApiClient, query: str = "", **headers):
    return api.client.get(ROUTE + query, headers={"Authorization": f"Bearer {api.token}", **headers})


def body(response) -> str:
    assert response.streaming, "the list is streamed, never built in memory"
    return b"".join(response.streaming_content).decode()


# --- What is published ----------------------------------------------------------------------------


def test_hub_and_imported_addresses_are_published_with_their_source(imported):
    add(services.hub_bank(), "url", "https://bad.example.vn/page?id=1", source="case:2026-000012")
    add(imported, "domain", "www.evil.example")
    add(services.hub_bank(), "sha256", hashlib.sha256(b"x").hexdigest())  # not an address
    rows = list(services.published_urls())
    assert [(r.kind, r.value, r.host, r.source, r.bank) for r in rows] == [
        ("domain", "evil.example", "evil.example", "test", "IWF URL list"),
        ("url", "https://bad.example.vn/page?id=1", "bad.example.vn", "case:2026-000012", services.HUB_BANK_NAME),
    ]
    assert rows[1].listed_at is not None and rows[1].reviewed_at is None


def test_removed_sandbox_switched_off_and_allow_listed_addresses_are_not_published(imported, allow):
    hub = services.hub_bank()
    add(hub, "url", "https://kept.example/a")
    services.disable_entry(add(hub, "url", "https://withdrawn.example/a"), None, "nhầm lẫn")
    add(services.sandbox_bank(), "url", "https://sandbox.example/a")
    off = services.create_bank("Old list", BankKind.IMPORTED, actor=None)
    add(off, "domain", "old.example")
    services.set_bank_enabled(off, False, actor=None, reason="hết hạn")
    # The allow list: the same URL, a domain covering a host (of a URL and of a domain entry).
    add(hub, "url", "https://same.example/x")
    add(allow, "url", "https://same.example/x")
    add(imported, "url", "https://www.platform.example/group/1")
    add(imported, "domain", "shop.platform.example")
    add(allow, "domain", "platform.example")
    assert values(services.published_urls()) == ["https://kept.example/a"]
    # An allow list switched off allows nothing.
    services.set_bank_enabled(allow, False, actor=None, reason="thử")
    assert values(services.published_urls()) == ["shop.platform.example", "https://kept.example/a", "https://same.example/x",
                                                 "https://www.platform.example/group/1"]
    # The sandbox list is published to sandbox keys only.
    assert values(services.published_urls(sandbox=True)) == ["https://sandbox.example/a"]


def test_an_address_on_two_lists_is_published_once_from_the_hubs_list(imported):
    add(imported, "url", "https://twice.example/p", source="import:iwf.csv")
    add(services.hub_bank(), "url", "https://twice.example/p", source="case:2026-000001")
    [row] = services.published_urls()
    assert (row.source, row.bank) == ("case:2026-000001", services.HUB_BANK_NAME)


def test_lists_not_shared_with_providers_stay_off_the_api_list():
    private = services.create_bank("Licensed list", BankKind.IMPORTED, actor=None, shared=False)
    add(private, "domain", "licensed.example")
    assert values(services.published_urls()) == ["licensed.example"]
    assert values(services.published_urls(shared_only=True)) == []


# --- Review dates -----------------------------------------------------------------------------------


def test_review_by_follows_the_setting_and_a_review_moves_it(settings):
    entry = add(services.hub_bank(), "url", "https://bad.example/p")
    [row] = services.published_urls()
    assert row.review_by == entry.added_at + timedelta(days=180)
    settings.COPHUB_URL_REVIEW_DAYS = 30
    assert next(services.published_urls()).review_by == entry.added_at + timedelta(days=30)
    before = timezone.now()
    services.mark_reviewed(entry, None)
    [row] = services.published_urls()
    assert row.reviewed_at >= before and row.review_by == row.reviewed_at + timedelta(days=30)
    assert AuditEvent.objects.filter(action="hashbank.entry_reviewed", object_id=str(entry.pk)).count() == 1


def test_only_a_listed_address_is_reviewed():
    entry = add(services.hub_bank(), "sha256", hashlib.sha256(b"y").hexdigest())
    with pytest.raises(ValueError):
        services.mark_reviewed(entry, None)


@pytest.fixture
def admin_client(client, units):
    log_in(client, make_user("admin-province", Role.ADMIN, units["province"]))
    return client


def test_the_console_flags_overdue_addresses_and_marks_them_reviewed(admin_client, settings):
    hub = services.hub_bank()
    old = add(hub, "url", "https://old.example/p")
    BankEntry.objects.filter(pk=old.pk).update(added_at=timezone.now() - timedelta(days=200))
    add(hub, "domain", "fresh.example")
    page_url = reverse("hashlists:bank", args=[hub.pk])
    page = html.unescape(admin_client.get(page_url).content.decode())
    assert "1 địa chỉ đã quá ngày xem lại." in page and page.count('class="review-overdue"') == 2
    due = html.unescape(admin_client.get(page_url + "?state=review").content.decode())
    assert "https://old.example/p" in due and "fresh.example" not in due

    response = admin_client.post(reverse("hashlists:entry_review", args=[hub.pk, old.pk]))
    assert response.status_code == 302
    old.refresh_from_db()
    assert old.reviewed_at is not None and not old.review_overdue
    assert any("xem lại" in message for message in flash(response))
    event = AuditEvent.objects.get(action="hashbank.entry_reviewed")
    assert event.actor == "admin-province" and event.data["value"] == "https://old.example/p"
    page = html.unescape(admin_client.get(page_url).content.decode())
    assert 'class="review-overdue"' not in page


def test_marking_reviewed_needs_the_hash_list_role(client, units):
    hub = services.hub_bank()
    entry = add(hub, "url", "https://bad.example/p")
    log_in(client, make_user("admin-district", Role.ADMIN, units["district"]))
    assert client.post(reverse("hashlists:entry_review", args=[hub.pk, entry.pk])).status_code == 403
    assert client.get(reverse("hashlists:entry_review", args=[hub.pk, entry.pk])).status_code in (403, 405)
    entry.refresh_from_db()
    assert entry.reviewed_at is None


# --- The API route -----------------------------------------------------------------------------------


@pytest.fixture
def listed(imported):
    hub = services.hub_bank()
    add(hub, "url", "https://www.bad.example/", source="case:2026-000012")  # a front page: its host is blocked
    add(hub, "url", "https://www.bad.example/?ref=x")  # a query: a page, not the site
    add(hub, "url", "https://facebook.com/groups/harm")  # a deep URL on a big platform: never its host
    add(imported, "domain", "evil.example")
    add(imported, "url", "http://evil.example/")  # its host is already a domain entry: once in `domains`
    return hub


def test_no_key_is_401_and_a_key_without_the_scope_403(client, provider):
    assert client.get(ROUTE).status_code == 401
    assert client.get(ROUTE, headers={"Authorization": "Bearer cph_live_nope_nope"}).status_code == 401
    hashes_only = ApiClient(keys.issue_key(provider, ["hashes:read", "reports:write"])[1])
    response = get(hashes_only)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "auth.scope" and response.json()["required_scope"] == "lists:read"


def test_json_is_the_default_format(reader, listed):
    response = get(reader)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    document = json.loads(body(response))
    assert set(document) == {"generated_at", "count", "entries"}
    assert document["count"] == len(document["entries"]) == 5
    first = document["entries"][0]
    assert set(first) == {"kind", "value", "host", "source", "listed_at", "reviewed_at", "review_by", "bank"}
    assert (first["kind"], first["value"], first["host"], first["reviewed_at"]) == ("domain", "evil.example", "evil.example", None)
    front = next(e for e in document["entries"] if e["value"] == "https://www.bad.example/")
    assert front["source"] == "case:2026-000012" and front["host"] == "www.bad.example" and front["review_by"] > front["listed_at"]


def test_an_empty_list_is_valid_json(reader):
    assert json.loads(body(get(reader))) | {"generated_at": None} == {"generated_at": None, "count": 0, "entries": []}


def test_csv_has_a_header_row(reader, listed):
    response = get(reader, "?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body(response))))
    assert rows[0] == ["kind", "value", "host", "source", "listed_at", "reviewed_at", "review_by", "bank"]
    assert len(rows) == 6 and rows[1][:4] == ["domain", "evil.example", "evil.example", "test"]


def test_domains_lists_hosts_once_and_never_the_host_of_a_deep_url(reader, listed):
    response = get(reader, "?format=domains")
    assert response["Content-Type"].startswith("text/plain")
    assert body(response) == "evil.example\nwww.bad.example\n"


def test_hosts_is_a_hosts_file(reader, listed):
    assert body(get(reader, "?format=hosts")) == "0.0.0.0 evil.example\n0.0.0.0 www.bad.example\n"


def test_an_unknown_format_is_a_validation_problem(reader):
    response = get(reader, "?format=xml")
    assert response.status_code == 422 and response.json()["code"] == "validation.error"


def test_a_sandbox_key_reads_the_sandbox_list(provider, listed):
    add(services.sandbox_bank(), "domain", "test-block.example")
    sandbox = ApiClient(keys.issue_key(provider, ["lists:read"], sandbox=True)[1])
    assert body(get(sandbox, "?format=domains")) == "test-block.example\n"


def test_304_until_the_list_changes_and_each_download_is_audited_once(reader, listed):
    first = get(reader, "?format=domains")
    body(first)
    etag = first["ETag"]
    assert etag and first["Last-Modified"]
    again = get(reader, "?format=domains", **{"If-None-Match": etag})
    assert again.status_code == 304 and again["ETag"] == etag and not again.content
    assert get(reader, "?format=domains", **{"If-Modified-Since": first["Last-Modified"]}).status_code == 304
    # Another format is another document.
    assert get(reader, "?format=hosts", **{"If-None-Match": etag}).status_code == 200
    events = AuditEvent.objects.filter(action="url_list.downloaded")
    assert events.count() == 2 and {e.data["format"] for e in events} == {"domains", "hosts"}
    assert events.first().actor == f"provider:{reader_provider_id(reader)}"
    # A new entry, a review, a switched allow list: a new version.
    add(listed, "domain", "new.example")
    changed = get(reader, "?format=domains", **{"If-None-Match": etag})
    assert changed.status_code == 200 and "new.example" in body(changed)
    etag = changed["ETag"]
    services.mark_reviewed(BankEntry.objects.get(value="new.example"), None)
    reviewed = get(reader, "?format=domains", **{"If-None-Match": etag})
    assert reviewed.status_code == 200
    etag = reviewed["ETag"]
    services.create_bank("Allow", BankKind.ALLOW, actor=None)
    assert get(reader, "?format=domains", **{"If-None-Match": etag}).status_code == 200


def reader_provider_id(api: ApiClient) -> int:
    prefix = api.token.split("_")[2]
    from cophub.providers.models import ApiKey

    return ApiKey.objects.get(prefix=prefix).provider_id


def test_twenty_thousand_entries_stream_in_a_few_queries(reader, django_assert_max_num_queries):
    rows = (formats.make_row("url", f"https://site{n}.example/page/{n}", n) for n in range(20_000))
    result = services.import_signals(services.hub_bank(), rows, actor=None, source="import:big.txt")
    assert result.added == 20_000
    with django_assert_max_num_queries(30):
        document = json.loads(body(get(reader)))
    assert document["count"] == 20_000
    with django_assert_max_num_queries(30):
        assert body(get(reader, "?format=domains")) == ""  # deep URLs only: no host to block


def test_the_openapi_document_describes_the_route(reader):
    operation = reader.client.get("/api/v1/openapi.json").json()["paths"][ROUTE]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"format"}
    assert {"200", "401", "403", "422"} <= set(operation["responses"])


# --- The command --------------------------------------------------------------------------------------


def test_the_command_writes_every_format(listed, tmp_path):
    tmp_path = tmp_path / "filter"
    tmp_path.mkdir()
    private = services.create_bank("Licensed list", BankKind.IMPORTED, actor=None, shared=False)
    add(private, "domain", "licensed.example")  # the file stays on the hub's network: every list is in it
    out = io.StringIO()
    call_command("url_list", "export", "--format", "domains", stdout=out)
    assert out.getvalue() == "evil.example\nlicensed.example\nwww.bad.example\n"
    target = tmp_path / "blocked.hosts"
    err = io.StringIO()
    call_command("url_list", "export", "--format", "hosts", "--output", str(target), stderr=err)
    assert target.read_text() == "0.0.0.0 evil.example\n0.0.0.0 licensed.example\n0.0.0.0 www.bad.example\n"
    assert str(target) in err.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["blocked.hosts"]  # no temporary file left
    call_command("url_list", "export", "--output", str(tmp_path / "list.json"))
    assert json.loads((tmp_path / "list.json").read_text())["count"] == 6
    call_command("url_list", "export", "--format", "csv", "--output", str(tmp_path / "list.csv"))
    assert (tmp_path / "list.csv").read_text().startswith("kind,value,host,source,listed_at,reviewed_at,review_by,bank\n")
    assert AuditEvent.objects.filter(action="url_list.exported").count() == 4
