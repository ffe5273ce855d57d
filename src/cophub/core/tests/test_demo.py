"""`cophub demo` builds a usable hub and can be run again without harm."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from cophub.audit.services import verify
from cophub.cases.models import Case
from cophub.intake.models import Submission
from cophub.orgs.models import Membership, Unit

pytestmark = pytest.mark.django_db(transaction=True)


def run_demo() -> dict[str, str]:
    out = io.StringIO()
    call_command("demo", stdout=out)
    return dict(re.findall(r"login: (\S+)\s+password: (\S+)", out.getvalue()))


def counts() -> tuple[int, ...]:
    return (Unit.objects.count(), Membership.objects.count(), Submission.objects.count(), Case.objects.count())


def test_demo_twice():
    first = run_demo()
    assert set(first) == {"admin", "handler", "counsellor", "teacher", "itadmin", "observer"}
    units = {u.kind for u in Unit.objects.all()}
    assert units == {"province", "district", "school"} and Unit.objects.filter(kind="school").count() == 2
    assert Unit.objects.get(is_hub_home=True).kind == "district"
    before = counts()
    assert before[3] >= 4 and Case.objects.exclude(state="new").exists()

    second = run_demo()
    assert counts() == before, "a second run adds nothing"
    for username, password in second.items():
        assert password != first[username]
        assert authenticate(username=username, password=password) is not None
        assert authenticate(username=username, password=first[username]) is None
    assert verify().ok


def test_demo_reports_are_triaged_by_detection():
    from cophub.detection.models import Match

    run_demo()
    # The 111 call: a stranger asking for a meeting kept from the parents.
    call = Case.objects.get(links__submission__channel="phone_111")
    assert call.priority == "P1" and call.events.filter(kind="triage").exists()
    # The scam link's domain and the screenshot's picture are on the demo's imported lists: leads, not verdicts.
    assert set(Match.objects.values_list("signal_type", "bank_kind")) == {("domain", "imported"), ("pdq", "imported")}
