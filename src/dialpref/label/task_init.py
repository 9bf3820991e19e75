"""`dialpref task init`: a task spec written from the label values a user's data holds.

The classes come from the label column (lower-cased, spaces to underscores); the data's own values map
to them through `gold_map`, and every class gets a description slot to fill in, since the teacher
reads the descriptions.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

import yaml

from dialpref.data.schema import Dialogue
from dialpref.label.slots import SPECIAL, flat_state

MAX_CLASSES = 26
MAX_LISTED = 40  # a slot with more distinct values is written `open`


def class_name(value: str) -> str:
    return re.sub(r"\W+", "_", value.strip().lower()).strip("_") or "empty"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def task_yaml(name: str, label: str, dialogues: Iterable[Dialogue]) -> tuple[str, Counter[str]]:
    """The spec's YAML text and the label values counted (a state label, {domain: {slot: value}}: a slots
    spec, `slots_yaml`)."""
    dialogues = list(dialogues)
    if any(isinstance(t.labels.get(label), dict) for d in dialogues for t in d.turns):
        return slots_yaml(name, label, dialogues)
    values: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    for dialogue in dialogues:
        for turn in dialogue.turns:
            value = turn.labels.get(label)
            if isinstance(value, (str, int, bool)) and str(value).strip():
                values[str(value)] += 1
                roles[turn.role] += 1
    if len(values) < 2:
        raise ValueError(f"label {label!r} has {len(values)} distinct value(s) in these dialogues; a task needs "
                         "at least two (is the label name right? `dialpref data inspect` lists them)")
    if len(values) > MAX_CLASSES:
        raise ValueError(f"label {label!r} has {len(values)} distinct values; a task has at most {MAX_CLASSES}")
    classes = {class_name(v): f"TODO: what {_article(class_name(v))} {class_name(v)} utterance is ({n:,} in the data)"
               for v, n in values.most_common()}
    spec = {"name": name, "kind": "binary" if len(classes) == 2 else "multiclass",
            "description": f"TODO: what is labelled, in a few words (e.g. the {label} of the utterance)",
            "classes": classes, "gold_key": label, "roles": sorted(roles), "context_turns": None,
            "gold_map": {v: class_name(v) for v in values if v != class_name(v)}}
    header = (f"# Task spec written by `dialpref task init` from {sum(values.values()):,} labelled turns.\n"
              "# Fill in every TODO: the teacher reads the description and each class's line.\n")
    return header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110), values


def slots_yaml(name: str, label: str, dialogues: Iterable[Dialogue]) -> tuple[str, Counter[str]]:
    """A slots spec from gold states: every slot that ever holds a value, its values listed when there are at
    most MAX_LISTED, else `open` (gathered from training data when labelling); returns slot -> distinct values."""
    seen: dict[str, Counter[str]] = {}
    roles: Counter[str] = Counter()
    for dialogue in dialogues:
        for turn in dialogue.turns:
            state = turn.labels.get(label)
            if isinstance(state, dict):
                roles[turn.role] += 1
                for slot, value in flat_state(state).items():
                    seen.setdefault(slot, Counter())
                    if value not in SPECIAL:
                        seen[slot][value] += 1
    used = {slot: counts for slot, counts in seen.items() if counts}
    if not used:
        raise ValueError(f"label {label!r} holds states, but no slot ever has a value in these dialogues")
    domains: dict[str, dict] = {}
    for slot, counts in used.items():
        domain, _, short = slot.partition("-")
        entry = domains.setdefault(domain, {"description": f"TODO: what the {domain} domain is about", "slots": {}})
        entry["slots"][short or domain] = {"description": f"TODO: what {short or domain} means",
                                           "values": list(counts) if len(counts) <= MAX_LISTED else "open"}
    spec = {"name": name, "kind": "slots", "description": "TODO: what the user wants, in a few words",
            "gold_key": label, "roles": sorted(roles), "context_turns": None, "domains": domains}
    header = (f"# Slots spec written by `dialpref task init` from {sum(roles.values()):,} turns with a state.\n"
              "# Fill in every TODO: the teacher reads each slot's description. `values: open` slots take their\n"
              "# values from the training dialogues' states when labelling.\n")
    return header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110), \
        Counter({slot: len(counts) for slot, counts in used.items()})
