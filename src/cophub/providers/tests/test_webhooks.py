"""Webhooks end to end: a real HTTP receiver on loopback, the outbox, retries, the delivery log."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from cophub.cases.services import case_for_submission, merge, transition
from cophub.providers import webhooks
from cophub.providers.models import ProviderReport, WebhookDelivery, WebhookEvent
from cophub.providers.tasks import deliver_webhook

from .conftest import minimal_report

pytestmark = pytest.mark.django_db

HOOKS = "/api/v1/webhooks"
DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


class Receiver:
    """A provider's endpoint: verifies signatures like the docs say, drops replays, records everything."""

    def __init__(self, port: int = 0):
        self.secret = ""
        self.fail_first = 0
        self.always_fail = False
        self.requests: list[dict] = []
        self.accepted: list[dict] = []
        self.rejected: list[str] = []
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/cophub"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.handle(dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    def handle(self, headers: dict, body: bytes) -> int:
        with self.lock:
            self.requests.append({"headers": headers, "body": body})
            if self.always_fail or len(self.requests) <= self.fail_first:
                return 503
            if not webhooks.verify_signature(self.secret, headers.get("Cophub-Signature", ""), body):
                self.rejected.append("signature")
                return 400
            event_id = headers["Cophub-Event-Id"]
            if event_id in self.seen:
                self.rejected.append("replay")
                return 200  # already handled: acknowledge, do not act again
            self.seen.add(event_id)
            self.accepted.append(json.loads(body))
            return 200

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks_settings(settings):
    settings.TASKS = DB_TASKS
    settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    return settings


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def register(client, receiver: Receiver, **extra) -> dict:
    response = client.post(HOOKS, {"url": receiver.url, **extra})
    assert response.status_code == 201, response.content
    body = response.json()
    receiver.secret = body["secret"]
    return body


def finished_case(client):
    response = client.post("/api/v1/reports", minimal_report(finish=True))
    assert response.status_code == 201, response.content
    report = ProviderReport.objects.get(public_id=response.json()["id"])
    return report, case_for_submission(report.submission)


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


# --- Registration ------------------------------------------------------------------------------


def test_register_shows_the_secret_once_and_lists_without_it(live, hooks_settings, receiver):
    body = register(live, receiver)
    assert body["id"].startswith("whk_") and body["secret"].startswith("whsec_") and body["active"]
    assert body["event_types"] == ["report.state_changed", "takedown.requested"]
    listed = live.get(HOOKS).json()["webhooks"]
    assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]
    from cophub.providers.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.get(public_id=body["id"])
    assert body["secret"].encode() not in bytes(endpoint.sealed_secret)  # sealed at rest
    assert webhooks.endpoint_secret(endpoint) == body["secret"]
    # The endpoint's own address is where a DELETE stops its deliveries.
    assert listed[0]["links"]["self"] == f"{HOOKS}/{body['id']}"
    assert live.client.delete(listed[0]["links"]["self"], headers=live.headers()).status_code == 204
    assert live.get(HOOKS).json()["webhooks"] == []


@pytest.mark.parametrize("url, allow", [
    ("http://hooks.example/x", True), ("http://127.0.0.1:9/x", False), ("https://10.1.2.3/x", True),
    ("https://169.254.169.254/latest", True), ("ftp://hooks.example/x", True), ("https://user:pw@hooks.example/x", True),
])
def test_unsafe_urls_are_refused(live, settings, url, allow):
    settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK = allow
    response = live.post(HOOKS, {"url": url})
    assert response.status_code == 422 and response.json()["code"] == "validation.error"
    assert response.json()["errors"][0]["loc"] == ["url"]


def test_https_url_and_an_unknown_event_type(live, settings):
    assert live.post(HOOKS, {"url": "https://hooks.example/cophub", "event_types": ["report.state_changed"]}).status_code == 201
    response = live.post(HOOKS, {"url": "https://hooks.example/cophub", "event_types": ["report.deleted"]})
    assert response.status_code == 422


def test_another_providers_endpoint_is_not_found(live, other, hooks_settings, receiver):
    body = register(live, receiver)
    response = other.client.delete(f"{HOOKS}/{body['id']}", headers=other.headers())
    assert response.status_code == 404 and response.json()["code"] == "webhook.not_found"
    assert other.get(HOOKS).json()["webhooks"] == []


# --- Events in the outbox ------------------------------------------------------------------------


def test_a_handlers_transition_makes_one_event_per_endpoint_in_the_same_transaction(live, hooks_settings, staff, receiver):
    second = Receiver()
    try:
        register(live, receiver)
        second.secret = live.post(HOOKS, {"url": second.url}).json()["secret"]
        live.post(HOOKS, {"url": "https://hooks.example/t", "event_types": ["takedown.requested"]})  # not subscribed
        report, case = finished_case(live)
        assert not WebhookEvent.objects.exists()  # finishing: the answer already says "received"
        transition(case, "assessing", staff["handler"])
        event = WebhookEvent.objects.get()
        assert event.type == "report.state_changed" and event.data == {"report_id": report.public_id, "state": "working"}
        deliveries = list(WebhookDelivery.objects.all())
        assert len(deliveries) == 2
        assert DBTaskResult.objects.filter(task_path="cophub.providers.tasks.deliver_webhook").count() == 2
        assert webhooks.deliver_due() == {"delivered": 2}
        for server in (receiver, second):
            assert [e["data"] for e in server.accepted] == [{"report_id": report.public_id, "state": "working"}]
            assert server.accepted[0]["id"] == event.public_id and server.accepted[0]["type"] == "report.state_changed"
            headers = server.requests[0]["headers"]
            assert headers["Cophub-Event-Id"] == event.public_id and headers["Cophub-Event-Type"] == "report.state_changed"
    finally:
        second.stop()


def test_a_change_that_rolls_back_leaves_no_event_and_no_task(live, hooks_settings, staff, receiver):
    register(live, receiver)
    _, case = finished_case(live)
    before = DBTaskResult.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        transition(case, "assessing", staff["handler"])
        raise RuntimeError("the change fails after the transition")
    assert not WebhookEvent.objects.exists() and not WebhookDelivery.objects.exists()
    assert DBTaskResult.objects.count() == before


def test_only_a_change_of_public_step_is_announced(live, hooks_settings, staff, receiver):
    register(live, receiver)
    report, case = finished_case(live)
    transition(case, "triaged", staff["handler"])  # still "received" for the provider
    assert not WebhookEvent.objects.exists()
    transition(case, "assessing", staff["handler"])
    transition(case, "referred", staff["handler"])
    transition(case, "resolved", staff["handler"])
    transition(case, "closed", staff["handler"])  # still "done"
    webhooks.deliver_due()
    assert [e["data"]["state"] for e in receiver.accepted] == ["working", "referred", "done"]
    assert {e["data"]["report_id"] for e in receiver.accepted} == {report.public_id}


def test_a_merged_case_announces_the_surviving_cases_step(live, hooks_settings, staff, receiver):
    register(live, receiver)
    _, surviving = finished_case(live)
    duplicate_report, duplicate = finished_case(live)
    transition(surviving, "assessing", staff["handler"])
    merge(duplicate, surviving, staff["handler"], "same content")
    webhooks.deliver_due()
    assert [e["data"]["state"] for e in receiver.accepted] == ["working", "working"]
    assert receiver.accepted[1]["data"]["report_id"] == duplicate_report.public_id


def test_another_providers_endpoints_are_never_called(live, other, hooks_settings, staff, receiver):
    theirs = Receiver()
    try:
        register(live, receiver)
        theirs.secret = other.post(HOOKS, {"url": theirs.url}).json()["secret"]
        _, case = finished_case(live)
        transition(case, "assessing", staff["handler"])
        webhooks.deliver_due()
        assert len(receiver.accepted) == 1 and theirs.requests == []
    finally:
        theirs.stop()


def test_sandbox_reports_emit_nothing_and_sandbox_endpoints_are_separate(live, sandbox, hooks_settings, receiver):
    body = register(sandbox, receiver)
    assert body["sandbox"] and live.get(HOOKS).json()["webhooks"] == []
    assert [w["id"] for w in sandbox.get(HOOKS).json()["webhooks"]] == [body["id"]]
    response = sandbox.post("/api/v1/reports", minimal_report(finish=True))
    assert response.json()["case"] is None
    assert not WebhookEvent.objects.exists()


def test_takedown_requested_is_a_defined_event_type(live, hooks_settings, receiver):
    register(live, receiver, event_types=["takedown.requested"])
    report, _ = finished_case(live)
    with transaction.atomic():
        webhooks.emit(report.provider, "takedown.requested", {"report_id": report.public_id, "state": "requested"})
    webhooks.deliver_due()
    assert receiver.accepted[0]["type"] == "takedown.requested"
    with pytest.raises(ValueError):
        webhooks.emit(report.provider, "report.deleted", {})


# --- Signatures and replays -------------------------------------------------------------------------


def test_reference_receiver_verifies_and_refuses_replays(live, hooks_settings, staff, receiver):
    register(live, receiver)
    _, case = finished_case(live)
    transition(case, "assessing", staff["handler"])
    webhooks.deliver_due()
    sent = receiver.requests[0]
    assert len(receiver.accepted) == 1
    # The captured request sent again (a replay inside the window): same event id, not acted on.
    assert receiver.handle(sent["headers"], sent["body"]) == 200 and len(receiver.accepted) == 1
    # The same body under a fresh, validly signed header with an old time: refused.
    old = int(time.time()) - 301
    stale = {**sent["headers"], "Cophub-Signature": webhooks.sign(receiver.secret, sent["body"], old), "Cophub-Event-Id": "evt_other"}
    assert receiver.handle(stale, sent["body"]) == 400
    assert receiver.rejected == ["replay", "signature"]


def test_verify_signature():
    body = b'{"id":"evt_1"}'
    now = 1_800_000_000
    header = webhooks.sign("whsec_a", body, now)
    assert webhooks.verify_signature("whsec_a", header, body, now=now + 300)
    assert not webhooks.verify_signature("whsec_a", header, body, now=now + 301)
    assert not webhooks.verify_signature("whsec_a", header, body, now=now - 301)
    assert not webhooks.verify_signature("whsec_b", header, body, now=now)
    assert not webhooks.verify_signature("whsec_a", header, body + b" ", now=now)
    assert webhooks.verify_signature("whsec_a", header + ",v1=" + "0" * 64, body, now=now)  # several v1 values
    for garbage in ("", "t=,v1=", "v1=abc", f"t={now}", f"t=x,v1={header.split('v1=')[1]}", f"t={now},t={now},v1=00"):
        assert not webhooks.verify_signature("whsec_a", garbage, body, now=now)


# --- Retries, failure, idempotency -------------------------------------------------------------------


def test_a_receiver_down_for_a_while_gets_every_event_once_afterwards(live, hooks_settings, staff):
    down = Receiver()
    port = down.port
    down.stop()  # the port is closed: connection refused
    receiver = None
    try:
        body = live.post(HOOKS, {"url": f"http://127.0.0.1:{port}/hooks/cophub"}).json()
        _, case = finished_case(live)
        transition(case, "assessing", staff["handler"])
        transition(case, "referred", staff["handler"])
        before = timezone.now()
        assert webhooks.deliver_due() == {"retry": 2}
        after = timezone.now()
        delivery = WebhookDelivery.objects.first()
        assert delivery.attempts == 1 and delivery.last_status is None and "Connection" in delivery.last_error
        # 10 s ± 20 % after the attempt, which happened between `before` and `after`.
        assert before + timedelta(seconds=8) <= delivery.next_attempt_at <= after + timedelta(seconds=12)
        assert webhooks.deliver_due() == {}  # nothing due yet
        receiver = Receiver(port)
        receiver.secret = body["secret"]
        receiver.fail_first = 2  # back up, but answering 503 at first
        assert webhooks.deliver_due(later(15)) == {"retry": 2}
        assert webhooks.deliver_due(later(60)) == {"delivered": 2}
        assert webhooks.deliver_due(later(7200)) == {}
        assert sorted(e["data"]["state"] for e in receiver.accepted) == ["referred", "working"]
        assert receiver.rejected == [] and len(receiver.requests) == 4
        assert all(d.attempts == 3 and d.state == "delivered" and d.last_status == 200 for d in WebhookDelivery.objects.all())
        # The outbox scheduled each retry as a task of its own.
        assert DBTaskResult.objects.filter(task_path="cophub.providers.tasks.deliver_webhook").count() == 2 + 2 + 2
    finally:
        if receiver:
            receiver.stop()


def test_after_the_last_attempt_the_delivery_is_failed_and_in_the_log(live, hooks_settings, staff, receiver):
    hooks_settings.COPHUB_WEBHOOK_MAX_ATTEMPTS = 3
    register(live, receiver)
    receiver.always_fail = True
    _, case = finished_case(live)
    transition(case, "assessing", staff["handler"])
    outcomes = [webhooks.deliver_due(later(hours * 3600)) for hours in (0, 1, 2, 3)]
    assert outcomes == [{"retry": 1}, {"retry": 1}, {"failed": 1}, {}]
    assert len(receiver.requests) == 3
    log = live.get(f"{HOOKS}/deliveries").json()
    assert log["next_cursor"] is None
    entry = log["deliveries"][0]
    assert entry["state"] == "failed" and entry["attempts"] == 3 and entry["last_status"] == 503
    assert entry["next_attempt_at"] is None and entry["delivered_at"] is None and entry["event_type"] == "report.state_changed"
    assert entry["event_id"] == WebhookEvent.objects.get().public_id


def test_the_task_run_twice_delivers_once(live, hooks_settings, staff, receiver):
    register(live, receiver)
    _, case = finished_case(live)
    transition(case, "assessing", staff["handler"])
    delivery = WebhookDelivery.objects.get()
    assert deliver_webhook.call(delivery.pk) == "delivered"
    assert deliver_webhook.call(delivery.pk) == "delivered"
    assert len(receiver.requests) == 1
    entry = live.get(f"{HOOKS}/deliveries").json()["deliveries"][0]
    assert entry["state"] == "delivered" and entry["delivered_at"] and entry["attempts"] == 1


def test_a_claimed_delivery_is_not_sent_by_a_second_sender(live, hooks_settings, staff, receiver):
    register(live, receiver)
    _, case = finished_case(live)
    transition(case, "assessing", staff["handler"])
    delivery = WebhookDelivery.objects.get()
    token = webhooks._claim(delivery.pk, timezone.now())
    assert token and webhooks.attempt(delivery.pk) == "busy" and receiver.requests == []
    # The first sender died; once its claim runs out another one takes over, and the dead one's late answer is ignored.
    assert webhooks.attempt(delivery.pk, later(webhooks.CLAIM_SECONDS + 1)) == "delivered"
    assert webhooks._record(delivery, token, webhooks.Answer(200), timezone.now()) == "lost_claim"
    assert len(receiver.accepted) == 1


def test_redirects_are_not_followed(live, hooks_settings, staff):
    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        live.post(HOOKS, {"url": f"http://127.0.0.1:{server.server_address[1]}/"})
        _, case = finished_case(live)
        transition(case, "assessing", staff["handler"])
        assert webhooks.deliver_due() == {"retry": 1}
        assert WebhookDelivery.objects.get().last_status == 307
    finally:
        server.shutdown()
        server.server_close()


def test_deleting_an_endpoint_stops_its_deliveries(live, hooks_settings, staff, receiver):
    body = register(live, receiver)
    receiver.always_fail = True
    _, case = finished_case(live)
    transition(case, "assessing", staff["handler"])
    webhooks.deliver_due()
    response = live.client.delete(f"{HOOKS}/{body['id']}", headers=live.headers())
    assert response.status_code == 204
    assert live.get(HOOKS).json()["webhooks"] == []
    transition(case, "referred", staff["handler"])
    assert webhooks.deliver_due(later(7200)) == {}
    assert len(receiver.requests) == 1
    assert [d["state"] for d in live.get(f"{HOOKS}/deliveries").json()["deliveries"]] == ["cancelled"]
    assert live.client.delete(f"{HOOKS}/{body['id']}", headers=live.headers()).status_code == 404


def test_the_delivery_log_pages_with_a_cursor(live, hooks_settings, staff, receiver, monkeypatch):
    from cophub.providers import api

    monkeypatch.setattr(api, "DELIVERY_PAGE", 2)
    register(live, receiver)
    _, case = finished_case(live)
    for target in ("assessing", "referred", "resolved"):
        transition(case, target, staff["handler"])
    first = live.get(f"{HOOKS}/deliveries").json()
    second = live.get(f"{HOOKS}/deliveries?cursor={first['next_cursor']}").json()
    assert len(first["deliveries"]) == 2 and len(second["deliveries"]) == 1 and second["next_cursor"] is None
    ids = [d["id"] for d in first["deliveries"] + second["deliveries"]]
    assert ids == list(WebhookDelivery.objects.order_by("-pk").values_list("public_id", flat=True))
    assert live.get(f"{HOOKS}/deliveries?cursor=abc").status_code == 422


def test_backoff_grows_with_jitter_and_is_capped(settings):
    for attempt, nominal in ((1, 10), (2, 30), (3, 90), (4, 270), (5, 810), (6, 2430)):
        assert nominal * 0.8 <= webhooks.backoff_seconds(attempt) <= nominal * 1.2
    assert all(webhooks.backoff_seconds(n) <= 3600 for n in range(7, 13))
    settings.COPHUB_WEBHOOK_BACKOFF_BASE = 0
    assert webhooks.backoff_seconds(5) == 0
