"""Federation end to end: a school hub and a district hub, two `cophub serve` processes, two databases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cophub.core.livehub import LiveHub, wait_until

pytestmark = pytest.mark.slow


def shell(hub: LiveHub, code: str) -> dict[str, str]:
    """Run Python in the hub's environment; KEY=value lines of its output as a dict."""
    done = subprocess.run([sys.executable, "-m", "cophub", "shell", "-c", code], env=hub.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


PROVIDER_FOR_SCHOOL_HUB = """
from cophub.orgs.models import Membership
from cophub.providers.models import Provider
from cophub.providers import keys
unit = Membership.objects.filter(user__username="handler").first().unit
provider = Provider.objects.create(name="School hub", unit=unit)
print("KEY=" + keys.issue_key(provider, ["reports:write"])[1])
"""

FILE_AND_FORWARD = """
import io
from PIL import Image
from django.contrib.auth import get_user_model
from cophub.cases.services import case_for_submission
from cophub.federation.models import Upstream
from cophub.federation.services import forward
from cophub.intake import services as intake
from cophub.orgs.models import Unit
picture = io.BytesIO(); Image.new("RGB", (40, 30), (200, 40, 90)).save(picture, "PNG")
receipt = intake.receive(unit=Unit.objects.filter(kind="school").first(), channel="web_child", reporter_kind="child", category="sextortion",
                         description="Có người đòi ảnh và doạ đăng lên mạng.", files=[("anh.png", picture.getvalue())])
case = case_for_submission(receipt.submission)
forward(case, Upstream.objects.get(name="district"), get_user_model().objects.get(username="handler"))
print("CASE=%s" % case.pk)
"""

SCHOOL_FORWARDING = """
from cophub.federation.models import Forwarding
f = Forwarding.objects.get(case_id={case})
events = f.case.events.filter(kind="upstream", data__step=f.upstream_step).count()
print("STATE=%s" % f.state); print("STEP=%s" % f.upstream_step); print("REPORT=%s" % f.upstream_report_id); print("EVENTS=%s" % events)
print("ERROR=%s" % f.last_error.replace(chr(10), " "))
"""

DISTRICT_CASE = """
from cophub.cases.services import case_for_submission
from cophub.providers.models import ProviderReport
report = ProviderReport.objects.filter(public_id="{report}", state="finished").first()
case = case_for_submission(report.submission) if report and report.submission_id else None
print("CASE=%s" % (case.pk if case else ""))
if case: print("FILES=%s" % report.submission.files.count()); print("CATEGORY=%s" % case.category)
"""

ASSESS = """
from django.contrib.auth import get_user_model
from cophub.cases import services
from cophub.cases.models import Case
handler = get_user_model().objects.get(username="handler")
case = Case.objects.get(pk={case})
for state in ("triaged", "assessing", "referred"):
    case = services.transition(case, state, handler, "federation test")
print("STATE=%s" % case.state)
"""


def test_a_case_forwarded_to_the_district_hub_shows_the_district_state():
    district, school = LiveHub(), LiveHub()
    district.extra_env = {"COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK": "1", "COPHUB_PUBLIC_URL": district.url}
    school.extra_env = {"COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK": "1", "COPHUB_PUBLIC_URL": school.url}
    with district, school:
        key = shell(district, PROVIDER_FOR_SCHOOL_HUB)["KEY"]
        connect = subprocess.run([sys.executable, "-m", "cophub", "federation-connect", "--name", "district", "--url", district.url, "--key", key],
                                 env=school.env, capture_output=True, text=True, timeout=120)
        assert connect.returncode == 0, connect.stdout + connect.stderr
        assert "webhook whk_" in connect.stdout

        school_case = shell(school, FILE_AND_FORWARD)["CASE"]
        state = {}

        def sent():
            state.update(shell(school, SCHOOL_FORWARDING.format(case=school_case)))
            return state["STATE"] == "sent"

        assert wait_until(sent, timeout=60, interval=1), state
        assert state["REPORT"].startswith("rpt_") and state["STEP"] == "received"

        district_case = shell(district, DISTRICT_CASE.format(report=state["REPORT"]))
        assert district_case["CASE"] and district_case["FILES"] == "1" and district_case["CATEGORY"] == "sextortion"
        assert shell(district, ASSESS.format(case=district_case["CASE"]))["STATE"] == "referred"

        def referred():
            state.update(shell(school, SCHOOL_FORWARDING.format(case=school_case)))
            return state["STEP"] == "referred"

        assert wait_until(referred, timeout=60, interval=1), state
        assert state["EVENTS"] == "1"
