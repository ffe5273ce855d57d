"""Federation on one hub: forwarding a case (outbox, permissions, console) and the webhook receiver."""

from __future__ import annotations

import json
import time

import pytest

from cophub.cases.models import EventKind
from cophub.cases.tests.helpers import log_in, report_case
from cophub.federation import services
from cophub.federation.models import Forwarding, ReceivedEvent, Upstream
from cophub.providers.webhooks import sign

SECRET = "whsec_test-secret"


@pytest.fixture
def upstream(db):
    upstream = services.connect("District hub", "http://127.0.0.1:9", "cph_live_abc_secret", register_webhook=False)
    upstream.sealed_webhook_secret = services.seal(SECRET, upstream.name, "webhook-secret")
    upstream.save()
    return upstream


@pytest.fixture
def forwarded(units, staff, upstream, monkeypatch):
    monkeypatch.setattr(services, "_enqueue", lambda *a, **k: None)
    case = report_case(units["school_a"], category="scam")
    forwarding = services.forward(case, upstream, staff["handler"])
    Forwarding.objects.filter(pk=forwarding.pk).update(upstream_report_id="rpt_up1", state="sent", upstream_step="received")
    return case


def _event(event_id="evt_1", state="working", report_id="rpt_up1", created_at="2026-11-30T08:15:40+00:00"):
    return json.dumps({"id": event_id, "type": "report.state_changed", "created_at": created_at,
                       "data": {"report_id": report_id, "state": state}}).encode()


def _post(client, upstream_id, body, secret=SECRET, event_id="evt_1", timestamp=None):
    headers = {"HTTP_COPHUB_SIGNATURE": sign(secret, body, int(timestamp or time.time())), "HTTP_COPHUB_EVENT_ID": event_id}
    return client.post(f"/federation/webhook/{upstream_id}", body, content_type="application/json", **headers)


def test_secrets_are_sealed_and_read_back(upstream):
    assert b"cph_live_abc_secret" not in bytes(upstream.sealed_key)
    assert services.api_key(upstream) == "cph_live_abc_secret"
    assert services.webhook_secret(upstream) == SECRET


def test_forward_needs_case_transition_and_is_once_per_upstream(units, staff, upstream, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "_enqueue", lambda pk, run_after=None: queued.append(pk))
    case = report_case(units["school_a"])
    with pytest.raises(Exception):
        services.forward(case, upstream, staff["counsellor"])
    first = services.forward(case, upstream, staff["handler"])
    again = services.forward(case, upstream, staff["handler"])
    assert first.pk == again.pk and queued == [first.pk]
    assert case.events.filter(kind=EventKind.UPSTREAM, data__forwarded=True).count() == 1


def test_signed_event_updates_the_case(client, forwarded, upstream):
    assert _post(client, upstream.pk, _event()).status_code == 200
    forwarding = Forwarding.objects.get(case=forwarded)
    assert forwarding.upstream_step == "working"
    event = forwarded.events.get(kind=EventKind.UPSTREAM, data__step="working")
    assert event.data["upstream"] == "District hub"


def test_bad_signature_is_refused(client, forwarded, upstream):
    assert _post(client, upstream.pk, _event(), secret="whsec_wrong").status_code == 401
    assert _post(client, upstream.pk, _event(), timestamp=time.time() - 3600).status_code == 401
    assert Forwarding.objects.get(case=forwarded).upstream_step == "received"
    assert not ReceivedEvent.objects.exists()


def test_unknown_upstream_is_404(client, forwarded, upstream):
    assert _post(client, upstream.pk + 100, _event()).status_code == 404


def test_get_is_not_allowed(client, upstream):
    assert client.get(f"/federation/webhook/{upstream.pk}").status_code == 405


def test_replay_is_acknowledged_and_ignored(client, forwarded, upstream):
    body = _event()
    assert _post(client, upstream.pk, body).status_code == 200
    assert _post(client, upstream.pk, body).status_code == 200
    assert forwarded.events.filter(kind=EventKind.UPSTREAM, data__step="working").count() == 1


def test_older_event_does_not_overwrite_a_newer_step(client, forwarded, upstream):
    _post(client, upstream.pk, _event("evt_2", "referred", created_at="2026-11-30T09:00:00+00:00"), event_id="evt_2")
    _post(client, upstream.pk, _event("evt_1", "working", created_at="2026-11-30T08:00:00+00:00"), event_id="evt_1")
    assert Forwarding.objects.get(case=forwarded).upstream_step == "referred"


def test_event_for_an_unknown_report_is_acknowledged(client, forwarded, upstream):
    assert _post(client, upstream.pk, _event(report_id="rpt_other")).status_code == 200
    assert Forwarding.objects.get(case=forwarded).upstream_step == "received"


def test_report_body_follows_the_case(units, forwarded):
    body = services.report_body(forwarded)
    assert body["incident_type"] == "scam"
    assert forwarded.reference in body["summary"]


class FakeClient:
    """Records the calls of `send`; fails once at `fail_at` with a connection error, like a lost answer."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def _call(self, name, key):
        from cophub.client import CophubError

        self.calls.append((name, key))
        if name == self.fail_at:
            self.fail_at = None
            raise CophubError(0, "client.connection_failed")

    def open_report(self, idempotency_key, **body):
        from types import SimpleNamespace

        self._call("open", idempotency_key)
        return SimpleNamespace(id="rpt_up9")

    def upload_file(self, report_id, content, *, idempotency_key, **kwargs):
        self._call("upload", idempotency_key)

    def declare_file(self, report_id, *, idempotency_key, **kwargs):
        self._call("declare", idempotency_key)

    def finish(self, report_id, *, idempotency_key):
        from types import SimpleNamespace

        self._call("finish", idempotency_key)
        return SimpleNamespace(case=SimpleNamespace(step="received"))


def test_send_retries_with_the_same_idempotency_keys_and_stops_once_sent(units, staff, upstream, monkeypatch):
    from cophub.cases.tests.helpers import case_with_image

    retries = []
    monkeypatch.setattr(services, "_enqueue", lambda pk, run_after=None: retries.append(run_after))
    case = case_with_image(units["school_a"])
    forwarding = services.forward(case, upstream, staff["handler"])
    fake = FakeClient(fail_at="finish")
    monkeypatch.setattr(services, "client_for", lambda upstream, retries=3: fake)
    assert services.send(forwarding.pk) == "retry"
    assert retries[-1] is not None  # re-queued with a backoff
    assert services.send(forwarding.pk) == "sent"
    assert services.send(forwarding.pk) == "sent"  # a task run twice does nothing more
    names = [name for name, _ in fake.calls]
    assert names == ["open", "upload", "finish", "upload", "finish"]  # opened once: the report id was kept
    keys = dict.fromkeys(key for _, key in fake.calls)
    assert len(keys) == 3 and all(key.startswith(forwarding.idempotency_key) for key in keys)
    forwarding.refresh_from_db()
    assert (forwarding.state, forwarding.upstream_report_id, forwarding.upstream_step, forwarding.attempts) == ("sent", "rpt_up9", "received", 2)
