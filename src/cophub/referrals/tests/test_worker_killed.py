"""A referral reaches its receiver exactly once although the worker is killed mid-delivery and the receiver goes down.

A real `cophub serve` (web server and task worker, its own database), a
webhook receiver on loopback, and `kill -9` on the task worker while the
receiver holds its answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cophub.core.livehub import LiveHub, wait_until

from .peers import WebhookReceiver

pytestmark = pytest.mark.slow

ENV = {
    "COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK": "1",
    "COPHUB_REFERRAL_CLAIM_SECONDS": "4",
    "COPHUB_SCHEDULE_SECONDS": "1",
    "COPHUB_WORKER_STALE_SECONDS": "6",
    "COPHUB_WEBHOOK_BACKOFF_BASE": "1",
    "COPHUB_WEBHOOK_BACKOFF_FACTOR": "2",
    "COPHUB_WEBHOOK_BACKOFF_MAX": "2",
}

CHANNEL = """
from django.contrib.auth import get_user_model
from cophub.referrals import services
from cophub.referrals.models import ChannelKind
admin = get_user_model().objects.create_superuser("referral-admin", password="x" * 16)
target = services.save_target(admin, name="VN-COP", kind="vncop")
channel, secret = services.add_channel(target, ChannelKind.WEBHOOK, admin, address="{url}")
print("SECRET=" + secret); print("CHANNEL=%s" % channel.pk)
"""

REFER = """
from django.contrib.auth import get_user_model
from cophub.cases.services import case_for_submission, transition
from cophub.intake import services as intake
from cophub.orgs.models import Unit
from cophub.referrals import services
from cophub.referrals.models import Channel
handler = get_user_model().objects.get(username="handler")
receipt = intake.receive(unit=Unit.objects.filter(kind="school").first(), channel="web_child", reporter_kind="child", category="grooming",
                         description="Có người lạ hẹn gặp em và dặn không được nói với bố mẹ.")
case = transition(case_for_submission(receipt.submission), "assessing", handler)
referral = services.refer(case, Channel.objects.get(pk={channel}), handler)
print("REFERRAL=" + referral.public_id)
"""

STATE = """
from cophub.referrals.models import Referral
r = Referral.objects.get(public_id="{referral}")
d = r.deliveries.get()
events = r.case.events.filter(kind="referral", data__what="delivered").count()
print("STATE=%s" % r.state); print("DELIVERY=%s" % d.state); print("ATTEMPTS=%s" % d.attempts); print("EVENTS=%s" % events)
print("ERROR=%s" % d.last_error.replace(chr(10), " "))
"""


def shell(hub: LiveHub, code: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "cophub", "shell", "-c", code], env=hub.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def task_workers(hub: LiveHub) -> list[int]:
    return [pid for pid in hub.children() if b"cophub\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_a_referral_arrives_exactly_once_through_a_killed_worker_and_a_receiver_outage():
    receiver = WebhookReceiver()
    receiver.mode = "hang"  # keeps the first copy, then never answers
    hub = LiveHub(extra_env=ENV)
    try:
        hub.start()
        made = shell(hub, CHANNEL.format(url=receiver.url))
        receiver.secret = made["SECRET"]
        referral = shell(hub, REFER.format(channel=made["CHANNEL"]))["REFERRAL"]

        assert receiver.hanging.wait(60), "the worker never sent the referral:\n" + "\n".join(hub.output[-30:])
        assert len(receiver.accepted) == 1
        workers = task_workers(hub)
        assert workers, "no task worker found among the hub's processes"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)  # mid-delivery: the receiver has the referral, the hub never heard back

        receiver.stop()  # and the receiver goes down: connection refused
        receiver.release.set()
        assert wait_until(lambda: set(task_workers(hub)) - set(workers), timeout=30), "\n".join(hub.output[-20:]) + str(hub.children())
        time.sleep(8)  # the claim runs out; the new worker tries again against a closed port
        down = shell(hub, STATE.format(referral=referral))
        assert down["DELIVERY"] == "pending" and down["STATE"] == "queued"

        receiver.mode = "up"
        receiver.start()

        def delivered() -> bool:
            return shell(hub, STATE.format(referral=referral))["DELIVERY"] == "delivered"

        assert wait_until(delivered, timeout=90, interval=1), "\n".join(hub.output[-30:])
        final = shell(hub, STATE.format(referral=referral))
    finally:
        receiver.release.set()
        hub.stop()
        receiver.stop()
    assert final["STATE"] == "delivered" and final["EVENTS"] == "1"
    assert int(final["ATTEMPTS"]) >= 2
    assert len(receiver.accepted) == 1, receiver.accepted  # exactly once
    assert receiver.accepted[0]["id"] == referral
    assert len([r for r in receiver.requests if r["event_id"] == f"{referral}.1"]) >= 2  # it did come again
    assert receiver.rejected == []
