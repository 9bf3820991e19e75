"""Slot tasks (dialogue state tracking): slots with their values, and the state changes gold states imply.

A slot task labels each user turn with its state *change*: for every slot, the value the turn sets, or
`none` when it leaves the slot alone (the paper's per-utterance framing). `dontcare` is a value like any
other. The dialogue state after a turn is the changes so far, accumulated
(`evaluate.state_tracking.accumulate`).

A slot's values come from the spec (categorical, from an ontology) or, with `values: open`, from the
training dialogues' gold states (`with_open_values`): a value never seen there cannot be predicted,
as for any classifier over a closed set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

NONE = "none"  # the turn does not set this slot
DONTCARE = "dontcare"
SPECIAL = (NONE, DONTCARE)
EMPTY_VALUES = ("", "none", "not mentioned")  # how gold states say "unset"


@dataclass(frozen=True)
class SlotSpec:
    """One slot: `domain-slot` name, a one-line description (shown to the teacher) and its values, with
    `none` first and `dontcare` second (the classes its scores range over)."""

    name: str
    description: str
    values: tuple[str, ...]  # every value including none / dontcare; empty while `open` is unresolved
    open: bool = False  # values gathered from training data

    @property
    def domain(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def slot(self) -> str:
        return self.name.split("-", 1)[1]


def normalise_value(value: Any) -> str:
    """Gold values as the spec writes them: lower case, single spaces; unset values become `none`."""
    text = " ".join(str(value).lower().split())
    return NONE if text in EMPTY_VALUES else text


def parse_slots(domains: Any, source: str) -> tuple[SlotSpec, ...]:
    """`domains: {domain: {description, slots: {slot: {description, values: [...] | open}}}}` -> slots."""
    if not isinstance(domains, dict) or not domains:
        raise ValueError(f"{source}: a slots task needs `domains`: {{domain: {{slots: {{slot: {{description, "
                         "values}}}}}}}}")
    slots = []
    for domain, body in domains.items():
        raw_slots = (body or {}).get("slots") if isinstance(body, dict) else None
        if not isinstance(raw_slots, dict) or not raw_slots:
            raise ValueError(f"{source}: domain {domain!r} lists no slots")
        for slot, raw in raw_slots.items():
            raw = raw or {}
            values = raw.get("values", "open")
            where = f"{source}: slot {domain}-{slot}"
            if values == "open":
                slots.append(SlotSpec(f"{domain}-{slot}", str(raw.get("description", slot)), (), open=True))
                continue
            if not isinstance(values, list) or not values:
                raise ValueError(f"{where}: values must be a list or `open`")
            slots.append(SlotSpec(f"{domain}-{slot}", str(raw.get("description", slot)),
                                  _with_special(normalise_value(v) for v in values)))
    names = [s.name for s in slots]
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: slot names repeat: {sorted(n for n in names if names.count(n) > 1)}")
    return tuple(slots)


def _with_special(values: Iterable[str]) -> tuple[str, ...]:
    seen = [v for v in dict.fromkeys(values) if v not in SPECIAL]
    return (NONE, DONTCARE, *seen)


def flat_state(state: Any) -> dict[str, str]:
    """A gold state `{domain: {slot: value}}` (or already flat `{domain-slot: value}`) as flat, normalised."""
    flat: dict[str, str] = {}
    if not isinstance(state, dict):
        return flat
    for key, value in state.items():
        if isinstance(value, dict):
            flat.update({f"{key}-{slot}": normalise_value(v) for slot, v in value.items()})
        else:
            flat[str(key)] = normalise_value(value)
    return flat


def state_changes(states: Sequence[Any], slots: Sequence[SlotSpec]) -> list[dict[str, str]]:
    """Per labelled turn, what its gold state changed: the new value, or `none` where it stayed."""
    before = {s.name: NONE for s in slots}
    changes = []
    for state in states:
        now = flat_state(state)
        change = {}
        for slot in slots:
            value = now.get(slot.name, NONE)
            change[slot.name] = value if value != before[slot.name] and value != NONE else NONE
            if value != NONE:
                before[slot.name] = value
        changes.append(change)
    return changes


def with_open_values(slots: Sequence[SlotSpec], dialogue_states: Iterable[Sequence[Any]],
                     min_count: int = 1) -> tuple[SlotSpec, ...]:
    """Open slots given the values the gold states hold (seen at least `min_count` times), most frequent
    first; closed slots unchanged."""
    counts: dict[str, Counter] = {s.name: Counter() for s in slots if s.open}
    for states in dialogue_states:
        for state in states:
            for name, value in flat_state(state).items():
                if name in counts and value not in SPECIAL:
                    counts[name][value] += 1
    out = []
    for slot in slots:
        if slot.open:
            seen = [v for v, n in counts[slot.name].most_common() if n >= min_count]
            if not seen:
                raise ValueError(f"slot {slot.name} is open but no training state gives it a value")
            slot = replace(slot, values=_with_special(seen), open=False)
        out.append(slot)
    return tuple(out)


def value_distribution(states: Iterable[Any], slots: Sequence[SlotSpec]) -> dict[str, Counter]:
    """How often each slot holds each value over gold states (for `data inspect`)."""
    counts = {s.name: Counter() for s in slots}
    for state in states:
        for name, value in flat_state(state).items():
            if name in counts:
                counts[name][value] += 1
    return counts
