"""Triage rules: what detection found → priority, category and who handles the case.

Rules only ever make a case more urgent. Each fired rule gives a reason
code, shown on the case's timeline (in the reader's language) and kept in
the audit log, so a handler can see why the hub ranked a case as it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.utils.translation import gettext_lazy as _

# Text indicator categories (detection.text) → the case category they point to.
TEXT_CATEGORY = {
    "meeting": "grooming",
    "grooming": "grooming",
    "sextortion": "sextortion",
    "self_harm": "self_harm",
    "bullying": "cyberbullying",
    "private_info": "privacy_disclosure",
}

# Priority per text category when its indicators reach the minimum score.
TEXT_PRIORITY = {"self_harm": "P1", "sextortion": "P1", "meeting": "P2", "grooming": "P2", "private_info": "P2", "bullying": "P3"}

REASONS = {
    "known_material": _("a file matches the hub's list of confirmed illegal material"),
    "bank_lead": _("a file matches an imported hash list (a lead to check)"),
    "url_listed": _("a link is on a list of harmful addresses"),
    "danger": _("the reporter said someone is in danger now"),
    "meeting_secret": _("the text speaks of meeting in person and keeping it secret"),
    "text:meeting": _("the text speaks of meeting in person"),
    "text:grooming": _("the text has signs of grooming"),
    "text:sextortion": _("the text has signs of sextortion"),
    "text:self_harm": _("the text speaks of self-harm or suicide"),
    "text:bullying": _("the text has signs of bullying"),
    "text:private_info": _("the text discloses private information"),
    "image:sexual_content": _("an image classifier suspects sexual content in a picture (a lead to check)"),
}


def reason_label(code: str) -> str:
    return str(REASONS.get(code, code))


@dataclass
class Decision:
    priority: str = "P4"
    category: str | None = None  # None: leave the case's category alone
    reasons: list[str] = field(default_factory=list)
    route_to_kind: str | None = None  # a unit kind ("province", "district") to hand the case to

    def raise_to(self, priority: str, reason: str) -> None:
        self.priority = min(self.priority, priority)
        if reason not in self.reasons:
            self.reasons.append(reason)


def decide(findings, *, danger: bool, current_category: str) -> Decision:
    decision = Decision()
    if danger:
        decision.raise_to("P1", "danger")
    if findings.verdicts():
        # Known material: a verdict the hub already gave, no one needs to look again to rank it.
        decision.raise_to("P1", "known_material")
        decision.category = "csam"
    elif findings.leads():
        decision.raise_to("P2", "bank_lead")
    if findings.listed_urls():
        decision.raise_to("P2", "url_listed")
    _text_rules(decision, findings)
    _classifier_rules(decision, findings)
    if decision.category is None and current_category == "other":
        decision.category = _text_category(findings)
    route = settings.COPHUB_TRIAGE_ROUTES.get(decision.category or current_category)
    decision.route_to_kind = route or None
    return decision


def _text_rules(decision: Decision, findings) -> None:
    minimum = settings.COPHUB_TEXT_MIN_SCORE
    for category, score in findings.text_scores.items():
        if score < minimum or category not in TEXT_PRIORITY:
            continue
        decision.raise_to(TEXT_PRIORITY[category], f"text:{category}")
    if "meeting" in findings.strong_text:
        # A plan to meet that the child is told to keep from their parents: the grooming pattern that ends offline.
        decision.raise_to("P1", "meeting_secret")


def _classifier_rules(decision: Decision, findings) -> None:
    """Pluggable classifiers: a text label counts as the lexicon's category would; a picture's
    sexual-content label is a lead (P2), never a verdict: a person must look."""
    minimum = settings.COPHUB_CLASSIFIER_MIN_SCORE
    for key, labels in findings.labels.items():
        for category, score in labels:
            if score < minimum:
                continue
            if key.startswith("text:") and category in TEXT_PRIORITY:
                decision.raise_to(TEXT_PRIORITY[category], f"text:{category}")
            elif key.startswith("image:") and category == "sexual_content":
                decision.raise_to("P2", "image:sexual_content")


def _text_category(findings) -> str | None:
    minimum = settings.COPHUB_TEXT_MIN_SCORE
    scored = [(score, category) for category, score in findings.text_scores.items() if score >= minimum and category in TEXT_CATEGORY]
    if not scored:
        return None
    return TEXT_CATEGORY[max(scored)[1]]
