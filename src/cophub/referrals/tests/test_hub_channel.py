"""A referral to an upstream hub through its provider API: two `cophub serve` processes, two databases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cophub.core.livehub import LiveHub, wait_until
from cophub.federation.tests.test_two_hubs import ASSESS, DISTRICT_CASE, PROVIDER_FOR_SCHOOL_HUB, shell

pytestmark = pytest.mark.slow

REFER_UPSTREAM = """
import io
from PIL import Image
from django.contrib.auth import get_user_model
from cophub.cases.services import case_for_submission, transition
from cophub.intake import services as intake
from cophub.orgs.models import Unit
from cophub.referrals import services
from cophub.referrals.models import Channel
handler = get_user_model().objects.get(username="handler")
picture = io.BytesIO(); Image.new("RGB", (40, 30), (20, 140, 90)).save(picture, "PNG")
receipt = intake.receive(unit=Unit.objects.filter(kind="school").first(), channel="web_child", reporter_kind="child", category="grooming",
                         description="Người lạ hẹn gặp em ở quán net.", files=[("tin-nhan.png", picture.getvalue())])
case = transition(case_for_submission(receipt.submission), "assessing", handler)
channel = Channel.objects.get(kind="hub", upstream__name="district")
referral = services.refer(case, channel, handler, note="Đề nghị Phòng hỗ trợ xác minh.")
print("REFERRAL=" + referral.public_id); print("CASE_STATE=" + type(case).objects.get(pk=case.pk).state)
"""

REFERRAL_STATE = """
from cophub.referrals.models import Referral
r = Referral.objects.get(public_id="{referral}")
d = r.deliveries.get()
print("STATE=%s" % r.state); print("REPORT=%s" % r.external_ref); print("ATTEMPTS=%s" % d.attempts)
print("ERROR=%s" % d.last_error.replace(chr(10), " "))
print("EVENTS=%s" % ",".join(r.case.events.filter(kind="referral").values_list("data__what", flat=True)))
"""

REPORTS_FROM_SCHOOL = """
from cophub.providers.models import ProviderReport
print("REPORTS=%s" % ProviderReport.objects.filter(provider__name="School hub", state="finished").count())
"""


def test_a_referral_to_the_district_hub_is_filed_once_and_follows_the_district_case():
    district, school = LiveHub(), LiveHub()
    district.extra_env = {"COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK": "1", "COPHUB_PUBLIC_URL": district.url}
    school.extra_env = {"COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK": "1", "COPHUB_PUBLIC_URL": school.url}
    with district, school:
        key = shell(district, PROVIDER_FOR_SCHOOL_HUB)["KEY"]
        connect = subprocess.run([sys.executable, "-m", "cophub", "federation-connect", "--name", "district", "--url", district.url, "--key", key],
                                 env=school.env, capture_output=True, text=True, timeout=120)
        assert connect.returncode == 0, connect.stdout + connect.stderr

        made = shell(school, REFER_UPSTREAM)  # the directory got the district as a target with a hub channel when it was connected
        referral = made["REFERRAL"]
        assert made["CASE_STATE"] == "referred"
        state: dict = {}

        def reached(wanted: str):
            def check() -> bool:
                state.update(shell(school, REFERRAL_STATE.format(referral=referral)))
                return state["STATE"] == wanted
            return check

        assert wait_until(reached("delivered"), timeout=60, interval=1), state
        assert state["REPORT"].startswith("rpt_")
        district_case = shell(district, DISTRICT_CASE.format(report=state["REPORT"]))
        assert district_case["CASE"] and district_case["FILES"] == "1" and district_case["CATEGORY"] == "grooming"
        assert shell(district, REPORTS_FROM_SCHOOL)["REPORTS"] == "1"

        # The district works the case; its webhook moves the school's referral on.
        assert shell(district, ASSESS.format(case=district_case["CASE"]))["STATE"] == "referred"
        assert wait_until(reached("answered"), timeout=60, interval=1), state
        assert state["EVENTS"].split(",")[:2] == ["queued", "delivered"] and "answered" in state["EVENTS"]
        assert shell(district, REPORTS_FROM_SCHOOL)["REPORTS"] == "1"  # filed once
