"""Every installed dependency of cophub has a licence compatible with Apache-2.0."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement

ALLOWED = re.compile(r"\b(MIT|MIT-0|MIT-CMU|BSD|BSD-2-Clause|BSD-3-Clause|Apache|Apache-2\.0|PSF|PSF-2\.0|ISC|HPND|Unlicense|LGPL|LGPL-3\.0-only|MPL-2\.0|Python Software Foundation)\b", re.I)
FORBIDDEN = re.compile(r"\b(AGPL|Affero|SSPL|GPL-[23]\.0(?!.*linking)|GNU General Public)\b", re.I)


def licence_of(name: str) -> str:
    meta = distribution(name).metadata
    parts = [meta.get("License-Expression") or "", (meta.get("License") or "")[:200]]
    parts += [c.split("::")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return " | ".join(p for p in parts if p)


def runtime_dependencies(root: str = "cophub") -> dict[str, str]:
    seen: dict[str, str] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen[key] = licence_of(name)
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    seen.pop("cophub", None)
    return seen


def test_runtime_dependencies_allow_apache_2():
    deps = runtime_dependencies()
    assert "django" in deps and "cryptography" in deps
    problems = {name: text for name, text in deps.items() if FORBIDDEN.search(text) or not ALLOWED.search(text)}
    assert problems == {}, f"licences to review: {problems}"


def test_agpl_and_gpl_built_packages_are_optional_extras_only():
    """NudeNet (AGPL-3.0) and vpdq (built against Debian's GPL FFmpeg) are never installed by default."""
    requirements = [Requirement(spec) for spec in distribution("cophub").requires or []]
    default = {r.name.lower() for r in requirements if r.marker is None}
    extras = {r.name.lower(): str(r.marker) for r in requirements if r.marker is not None}
    assert "nudenet" not in default and "vpdq" not in default
    assert 'extra == "nudity"' in extras["nudenet"] and 'extra == "video"' in extras["vpdq"]
