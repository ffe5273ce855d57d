"""Takedown notices end to end: a local web server serves the content, then answers 404."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from cophub.alerts.models import Alert
from cophub.cases.models import EventKind
from cophub.cases.services import transition
from cophub.cases.tests.helpers import report
from cophub.cases.services import case_for_submission
from cophub.detection.services import urls_for
from cophub.referrals import outbox, safehttp, services, takedown
from cophub.referrals.models import ChannelKind, ContentState, Delivery, ReferralState, TargetKind
from cophub.triage.services import triage

from .peers import WebhookReceiver
from .test_outbox import top_admin  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


class ContentServer:
    """A platform's page: 200 while `status` says so, then whatever `status` is set to."""

    def __init__(self, host: str = "127.0.0.1"):
        self.status = 200
        self.away = ""
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path == "/away":
                    self.send_response(302)
                    self.send_header("Location", server.away)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"<html><body>video 123</body></html>" if server.status == 200 else b"<html>Not found</html>"
                self.send_response(server.status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host = host
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/v/123") -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def content():
    server = ContentServer()
    yield server
    server.stop()


@pytest.fixture
def platform_inbox(settings):
    settings.COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    peer = WebhookReceiver()
    yield peer
    peer.stop()


def later(hours: float):
    return timezone.now() + timedelta(hours=hours)


def notice_for(url: str, units, staff, top_admin, platform_inbox):
    receipt = report(units["school_a"], category="cyberbullying", description="Có video bêu xấu bạn cùng lớp.", where_url=url)
    triage(receipt.submission.pk)  # extracts the case's links, as the worker does
    case = case_for_submission(receipt.submission)
    transition(case, "assessing", staff["handler"])
    [link] = urls_for([receipt.submission.pk])
    target = services.save_target(top_admin, name="Nền tảng video", kind=TargetKind.PLATFORM, domains=urlsplit(link).hostname)
    channel, secret = services.add_channel(target, ChannelKind.WEBHOOK, top_admin, address=platform_inbox.url)
    platform_inbox.secret = secret
    assert services.targets_for_url(link) == [target]
    return case, link, services.send_takedown(case, link, channel, staff["handler"])


def test_the_hub_chases_a_notice_every_24_hours_until_the_content_is_gone(units, staff, top_admin, platform_inbox, content, settings):
    settings.COPHUB_FETCH_ALLOW_PRIVATE = True  # the test platform lives on loopback
    case, link, notice = notice_for(content.url(), units, staff, top_admin, platform_inbox)
    assert outbox.deliver_due() == {"delivered": 1}
    notice.refresh_from_db()
    sent_at = notice.delivered_at
    assert notice.state == ReferralState.DELIVERED and services.legal_deadline(notice) == sent_at + timedelta(hours=24)
    assert platform_inbox.accepted[0]["type"] == "takedown.notice" and platform_inbox.accepted[0]["referral"]["url"] == link
    assert "reports" not in platform_inbox.accepted[0]["referral"]  # a platform gets the address, not the child's words

    result = takedown.check_now(notice.pk, later(1.01))
    notice.refresh_from_db()
    assert result == "present", (notice.last_check_detail, link)
    assert takedown.check_now(notice.pk, later(1.02)) == "not_due"  # one check per interval, whoever runs it
    notice.refresh_from_db()
    assert notice.content_state == ContentState.PRESENT and Delivery.objects.count() == 1

    # A day on, still there: the notice goes again, and the case's people hear that the legal time is up.
    assert takedown.schedule(later(25)) == 1
    assert takedown.check_now(notice.pk, later(25)) == "present"
    assert outbox.deliver_due(later(25)) == {"delivered": 1}
    assert [doc["sequence"] for doc in platform_inbox.accepted] == [1, 2]
    assert Alert.objects.filter(kind="takedown.overdue", case=case).count() >= 1
    assert case.events.filter(kind=EventKind.REFERRAL, data__what="still_online").count() == 1
    assert takedown.check_now(notice.pk, later(26)) == "present"
    assert Delivery.objects.count() == 2  # not again before another 24 hours
    assert case.events.filter(kind=EventKind.REFERRAL, data__what="still_online").count() == 1  # alerted once

    content.status = 404
    assert takedown.check_now(notice.pk, later(27)) == "gone"
    notice.refresh_from_db()
    assert notice.state == ReferralState.CLOSED and notice.content_state == ContentState.GONE
    taken = services.time_to_removal(notice)
    assert timedelta(hours=26.9) < taken < timedelta(hours=27.1)
    removed = case.events.get(kind=EventKind.REFERRAL, data__what="removed")
    assert removed.data["hours"] == 27.0 and removed.data["url"] == link
    assert takedown.schedule(later(60)) == 0  # a closed notice is not looked at again
    assert len(platform_inbox.accepted) == 2


def test_a_server_error_or_a_timeout_never_closes_a_notice(units, staff, top_admin, platform_inbox, content, settings):
    settings.COPHUB_FETCH_ALLOW_PRIVATE = True
    _, _, notice = notice_for(content.url(), units, staff, top_admin, platform_inbox)
    outbox.deliver_due()
    content.status = 503
    assert takedown.check_now(notice.pk, later(2)) == "unknown"
    notice.refresh_from_db()
    assert notice.removed_at is None and notice.state == ReferralState.DELIVERED and "HTTP 503" in notice.last_check_detail


def test_in_the_production_configuration_the_checker_never_fetches_loopback_or_private_addresses(units, staff, top_admin, platform_inbox, content, settings):
    settings.COPHUB_FETCH_ALLOW_PRIVATE = False  # the default
    _, _, notice = notice_for(content.url(), units, staff, top_admin, platform_inbox)
    outbox.deliver_due()
    assert takedown.check_now(notice.pk, later(2)) == "unknown"
    notice.refresh_from_db()
    assert content.requests == [] and "private_address" in notice.last_check_detail
    assert notice.removed_at is None

    for private in ("http://10.0.0.8/x", "http://192.168.1.1/router", "http://169.254.169.254/latest/meta-data/", "http://[::1]/x"):
        with pytest.raises(safehttp.FetchRefused):
            safehttp.fetch(private)


def test_a_redirect_from_a_public_page_to_a_private_address_is_refused_in_production(units, staff, top_admin, platform_inbox, settings, monkeypatch):
    """127.0.0.2 stands in for a public platform; it redirects to the hub's own loopback."""
    settings.COPHUB_FETCH_ALLOW_PRIVATE = False
    try:
        public = ContentServer("127.0.0.2")
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 here")
    private = ContentServer("127.0.0.1")
    real_check = safehttp.check_address
    monkeypatch.setattr(safehttp, "check_address", lambda ip, allow: None if str(ip) == "127.0.0.2" else real_check(ip, allow))
    try:
        public.away = private.url("/admin")
        _, _, notice = notice_for(public.url("/away"), units, staff, top_admin, platform_inbox)
        outbox.deliver_due()
        assert takedown.check_now(notice.pk, later(2)) == "unknown"
        notice.refresh_from_db()
        assert public.requests == ["/away"] and private.requests == []
        assert "private_address" in notice.last_check_detail and notice.removed_at is None
    finally:
        public.stop()
        private.stop()


def test_a_platform_saying_removed_makes_the_hub_look_for_itself(units, staff, top_admin, platform_inbox, content, settings):
    import json
    import time

    from cophub.providers.webhooks import sign

    settings.COPHUB_FETCH_ALLOW_PRIVATE = True
    _, _, notice = notice_for(content.url(), units, staff, top_admin, platform_inbox)
    outbox.deliver_due()
    body = json.dumps({"status": "removed", "reference": "TT-88", "message": "Đã gỡ."}).encode()
    headers = {"Cophub-Signature": sign(platform_inbox.secret, body, int(time.time()))}
    assert services.receive_callback(notice.public_id, headers, body) == 200
    notice.refresh_from_db()
    assert notice.removed_at is None and notice.external_ref == "TT-88"  # a claim, not yet a fact
    assert takedown.check_now(notice.pk) == "present"  # it is still up: the notice stays open
    content.status = 410
    notice.refresh_from_db()
    assert takedown.check_now(notice.pk, later(1.5)) == "gone"
    assert services.receive_callback(notice.public_id, {"Cophub-Signature": "t=1,v1=00"}, body) == 401


def test_a_host_that_stops_resolving_must_say_so_twice_before_the_notice_closes(units, staff, top_admin, platform_inbox):
    _, _, notice = notice_for("http://da-go-bo.invalid/video/9", units, staff, top_admin, platform_inbox)
    outbox.deliver_due()
    assert takedown.check_now(notice.pk, later(1.01)) == "gone"
    notice.refresh_from_db()
    assert notice.removed_at is None and notice.state == ReferralState.DELIVERED  # maybe a resolver hiccup
    assert notice.next_check_at < later(1.01) + timedelta(minutes=11)
    assert takedown.check_now(notice.pk, later(1.2)) == "gone"
    notice.refresh_from_db()
    assert notice.state == ReferralState.CLOSED and notice.removed_at is not None
