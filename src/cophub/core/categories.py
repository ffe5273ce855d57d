"""The hub's report categories (ARCHITECTURE.md), in staff and child words.

Codes are stable: the API, exports and statistics use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Category:
    code: str
    label: str  # for staff
    child_label: str  # plain words for a child
    example: str  # a short example a child recognises
    icon: str  # an emoji, read as decoration only
    ncmec: str  # the NCMEC incident type it maps to, or ""
    default_priority: str


CATEGORIES: tuple[Category, ...] = (
    Category("csam", _("Child sexual abuse material"), _("Naked or sexual pictures or videos of a child"),
             _("Someone shared or sent a naked photo of a child, or of you."), "🚫", "child pornography", "P2"),
    Category("grooming", _("Grooming or enticement"), _("An adult or stranger trying to get close to you"),
             _("Someone online asks for photos, gives gifts, wants to meet, or says to keep it secret."), "🕵️", "online enticement of children", "P2"),
    Category("sextortion", _("Sextortion"), _("Someone threatening to share your pictures"),
             _("Someone says they will post your photos unless you send more or pay money."), "⚠️", "online enticement of children (sextortion)", "P2"),
    Category("obscene_to_child", _("Unsolicited obscene material sent to a child"), _("Someone sent you rude or sexual things"),
             _("You got sexual pictures, videos or messages you did not ask for."), "🙈", "unsolicited obscene material sent to a child", "P2"),
    Category("trafficking", _("Trafficking or sexual exploitation"), _("Someone offering money or a job for something wrong"),
             _("An offer of money, a job or travel that feels wrong or involves sex."), "🆘", "child sex trafficking", "P2"),
    Category("cyberbullying", _("Cyberbullying and harassment"), _("Being bullied, mocked or threatened online"),
             _("Mean messages, a group that makes fun of you, fake accounts about you."), "💬", "", "P3"),
    Category("privacy_disclosure", _("Disclosure of a child's private information"), _("Your private things shared without asking"),
             _("Your photo, address, phone number or secrets posted for others to see."), "🔓", "", "P3"),
    Category("self_harm", _("Self-harm or suicide risk"), _("Someone talking about hurting themselves"),
             _("You or a friend feel like hurting yourselves, or a challenge that asks you to."), "💙", "", "P2"),
    Category("violent_content", _("Violent or age-inappropriate content"), _("Scary, violent or grown-up videos"),
             _("Videos or games with fighting, blood or things not meant for children."), "📺", "", "P3"),
    Category("scam", _("Scams targeting children"), _("A trick to take money, game items or your account"),
             _("Free skins or diamonds, fake prizes, someone asking for your password or code."), "🎣", "", "P3"),
    Category("misleading_content", _("Misleading domain names, words or images"), _("A fake website or a trick picture"),
             _("A website pretending to be a game or a school, or a picture that tricks children."), "🎭", "misleading domain name / words or images", "P4"),
    Category("other", _("Anything else"), _("Something else that worries you"),
             _("Anything online that made you feel bad, scared or unsafe."), "❓", "", "P3"),
)

BY_CODE = {c.code: c for c in CATEGORIES}
CODES = [c.code for c in CATEGORIES]


CATEGORY_CHOICES = [(c.code, c.label) for c in CATEGORIES]


def label(code: str) -> str:
    category = BY_CODE.get(code)
    return str(category.label) if category else code


AGE_BANDS = [
    ("under_9", _("Under 9")),
    ("9_12", _("9 to 12")),
    ("13_15", _("13 to 15")),
    ("16_17", _("16 or 17")),
    ("adult", _("18 or older")),
    ("unsure", _("I'd rather not say")),
]
