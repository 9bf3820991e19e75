"""Dialogue state tracking figures: joint goal accuracy, per-slot accuracy and turn-level change F1.

States and changes are flat `{domain-slot: value}` dicts with `none` for an unset slot (or an untouched
one, in a change). A dialogue's predicted states come from accumulating its predicted changes turn by turn
(`label.slots.accumulate`), so an early mistake costs every later turn, as it does for a live tracker.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from dialpref.evaluate.calibration_error import ece_of

NONE = "none"

State = Mapping[str, str]


def accumulate(changes: Iterable[Mapping[str, str] | None], slots: Sequence[str],
               start: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """The dialogue state after each turn from its changes: a slot keeps its last value other than `none`
    (a turn without a prediction, None, changes nothing); `start` is the state before the first change."""
    state = {s: (start or {}).get(s, NONE) for s in slots}
    states = []
    for change in changes:
        change = change or {}
        state = {s: state[s] if (change.get(s) or NONE) == NONE else change[s] for s in slots}
        states.append(dict(state))
    return states


def joint_goal_accuracy(predicted: Sequence[State], gold: Sequence[State], slots: Sequence[str]) -> float | None:
    """Share of turns whose whole state is right (every slot, `none` included); None with no turns."""
    if not gold:
        return None
    right = sum(all(p.get(s, NONE) == g.get(s, NONE) for s in slots) for p, g in zip(predicted, gold, strict=True))
    return right / len(gold)


def slot_accuracy(predicted: Sequence[State], gold: Sequence[State], slots: Sequence[str]) -> dict[str, float]:
    """Per slot, the share of turns where its value is right; `mean` over the slots."""
    if not gold:
        return {}
    per = {s: sum(p.get(s, NONE) == g.get(s, NONE) for p, g in zip(predicted, gold, strict=True)) / len(gold)
           for s in slots}
    return {**per, "mean": sum(per.values()) / len(per)}


def change_f1(predicted: Sequence[State], gold: Sequence[State], slots: Sequence[str]) -> dict[str, float]:
    """Precision, recall and F1 over (turn, slot, value) changes other than `none`: what each turn sets."""
    tp = fp = fn = 0
    for p, g in zip(predicted, gold, strict=True):
        for s in slots:
            pv, gv = p.get(s, NONE), g.get(s, NONE)
            if pv != NONE and pv == gv:
                tp += 1
            else:
                fp += pv != NONE
                fn += gv != NONE
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "gold_changes": tp + fn}


def tracking_report(predicted_states: Sequence[State], gold_states: Sequence[State],
                    predicted_changes: Sequence[State], gold_changes: Sequence[State],
                    slots: Sequence[str]) -> dict:
    """All three figures at once, rounded for a result file, with the number of turns."""
    jga = joint_goal_accuracy(predicted_states, gold_states, slots)
    return {"turns": len(gold_states),
            "joint_goal_accuracy": None if jga is None else round(jga, 4),
            "slot_accuracy": {k: round(v, 4) for k, v in slot_accuracy(predicted_states, gold_states, slots).items()},
            "change": {k: round(v, 4) if isinstance(v, float) else v
                       for k, v in change_f1(predicted_changes, gold_changes, slots).items()}}


def rows_report(rows: Sequence[dict[str, Any]], slots: Sequence[str], buckets: int = 10) -> dict:
    """`tracking_report` for score rows (label or predict output) with gold, plus the ECE of every (turn,
    slot) prediction pooled. Rows are grouped by dialogue in turn order; predicted changes accumulate."""
    rows = sorted((r for r in rows if r.get("gold_state") is not None),
                  key=lambda r: (str(r["dialogue_id"]), r["turn_index"]))
    pred_states, gold_states, pred_changes, gold_changes = [], [], [], []
    for _, turns in groupby(rows, key=lambda r: str(r["dialogue_id"])):
        turns = list(turns)
        pred_changes += [r.get("predicted") or {} for r in turns]
        gold_changes += [r["gold"] for r in turns]
        pred_states += accumulate([r.get("predicted") for r in turns], slots)
        gold_states += [r["gold_state"] for r in turns]
    confidence, correct = [], []
    for row in rows:
        for slot in slots:
            dist = (row.get("scores") or {}).get(slot)
            if dist:
                best = max(dist, key=dist.get)
                confidence.append(dist[best])
                correct.append(float(best == row["gold"].get(slot, NONE)))
    report = tracking_report(pred_states, gold_states, pred_changes, gold_changes, slots)
    report["ece"] = round(ece_of(np.array(confidence), np.array(correct), buckets), 4) if confidence else None
    return report
