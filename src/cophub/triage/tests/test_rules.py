"""Triage rules on their own: findings in, decision out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cophub.detection.services import Findings
from cophub.triage import rules


def match(kind: str, url: str = ""):
    return SimpleNamespace(bank_kind=kind, url=url)


def test_a_link_on_the_hubs_list_is_not_known_material():
    decision = rules.decide(findings([match("hub", url="https://x.example/a")]), danger=False, current_category="other")
    assert decision.priority == "P2" and decision.category is None and decision.reasons == ["url_listed"]


def findings(matches=(), scores=None, strong=()):
    return Findings(submission_id=1, matches=list(matches), text_scores=dict(scores or {}), strong_text=set(strong))


def test_nothing_found_changes_nothing():
    decision = rules.decide(findings(), danger=False, current_category="scam")
    assert decision.priority == "P4" and decision.category is None and decision.reasons == []


def test_known_material_is_p1_csam_and_routed_to_the_province():
    decision = rules.decide(findings([match("hub")]), danger=False, current_category="other")
    assert (decision.priority, decision.category, decision.route_to_kind) == ("P1", "csam", "province")
    assert decision.reasons == ["known_material"]


def test_an_imported_list_is_a_lead_not_a_verdict():
    decision = rules.decide(findings([match("imported")]), danger=False, current_category="other")
    assert decision.priority == "P2" and decision.category is None and decision.reasons == ["bank_lead"]


def test_an_allow_list_match_alone_is_nothing():
    decision = rules.decide(findings([match("allow")]), danger=False, current_category="other")
    assert decision.priority == "P4" and decision.reasons == []


def test_a_listed_url_is_p2():
    decision = rules.decide(findings([match("hub", url="https://x.example/a")]), danger=False, current_category="other")
    assert "url_listed" in decision.reasons


@pytest.mark.parametrize("category, priority, case_category", [
    ("self_harm", "P1", "self_harm"), ("sextortion", "P1", "sextortion"), ("meeting", "P2", "grooming"),
    ("grooming", "P2", "grooming"), ("private_info", "P2", "privacy_disclosure"), ("bullying", "P3", "cyberbullying"),
])
def test_text_categories(category, priority, case_category):
    decision = rules.decide(findings(scores={category: 1.5}), danger=False, current_category="other")
    assert decision.priority == priority and decision.category == case_category


def test_a_weak_text_signal_under_the_minimum_is_ignored(settings):
    settings.COPHUB_TEXT_MIN_SCORE = 1.0
    decision = rules.decide(findings(scores={"self_harm": 0.5}), danger=False, current_category="other")
    assert decision.priority == "P4"


def test_a_secret_meeting_is_p1():
    decision = rules.decide(findings(scores={"meeting": 2.0}, strong={"meeting"}), danger=False, current_category="grooming")
    assert decision.priority == "P1" and "meeting_secret" in decision.reasons
    assert decision.category is None  # the reporter's own category stays


def test_the_most_urgent_rule_wins_and_every_reason_is_kept():
    decision = rules.decide(findings([match("imported")], scores={"bullying": 3.0, "self_harm": 1.0}), danger=True,
                            current_category="other")
    assert decision.priority == "P1"
    assert set(decision.reasons) == {"danger", "bank_lead", "text:bullying", "text:self_harm"}
    assert decision.category == "cyberbullying"  # the highest-scoring text category


def test_every_reason_has_words():
    for code in rules.REASONS:
        assert rules.reason_label(code) and rules.reason_label(code) != code
