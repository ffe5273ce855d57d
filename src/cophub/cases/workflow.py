"""The case states and the transitions between them: defined here only."""

from __future__ import annotations

from .models import State

TRANSITIONS: dict[str, set[str]] = {
    State.NEW: {State.TRIAGED, State.ASSESSING, State.DUPLICATE, State.NOT_ACTIONABLE, State.RETRACTED},
    State.TRIAGED: {State.ASSESSING, State.DUPLICATE, State.NOT_ACTIONABLE, State.RETRACTED},
    State.ASSESSING: {State.REFERRED, State.RESOLVED, State.NOT_ACTIONABLE, State.DUPLICATE, State.RETRACTED},
    State.REFERRED: {State.RESOLVED, State.ASSESSING},
    State.RESOLVED: {State.CLOSED, State.ASSESSING},
    State.NOT_ACTIONABLE: {State.CLOSED, State.ASSESSING},
    State.CLOSED: {State.ASSESSING},
    State.DUPLICATE: set(),
    State.RETRACTED: set(),
}

# Ends of the road: the SLA clock stops and the case leaves the open queue.
FINAL = {State.CLOSED, State.DUPLICATE, State.RETRACTED, State.NOT_ACTIONABLE, State.RESOLVED}
OPEN = [s for s in State.values if s not in FINAL]
# Reached only through their own operation (merge; a provider's retraction).
SPECIAL = {State.DUPLICATE: "merge", State.RETRACTED: "retract"}


class TransitionError(Exception):
    pass


def allowed(current: str) -> list[str]:
    """The states a handler can move a case to from `current`, in order."""
    return [s for s in State.values if s in TRANSITIONS[current] and s not in SPECIAL]


def check(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, set()):
        raise TransitionError(f"a case cannot go from {current} to {target}")
