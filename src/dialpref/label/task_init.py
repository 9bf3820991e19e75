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

MAX_CLASSES = 26


def class_name(value: str) -> str:
    return re.sub(r"\W+", "_", value.strip().lower()).strip("_") or "empty"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def task_yaml(name: str, label: str, dialogues: Iterable[Dialogue]) -> tuple[str, Counter[str]]:
    """The spec's YAML text and the label values counted."""
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
