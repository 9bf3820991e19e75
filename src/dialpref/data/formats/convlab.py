"""ConvLab-3 unified JSON (DailyDialog, WOZ 2.0, CamRest676), read straight from `data.zip`.

Gold labels carried per turn:
- `dialogue_acts`: every act as {type, intent, domain, slot, value};
- `dialogue_act`: the first act's intent (DailyDialog has exactly one per turn);
- `emotion` where the dataset has it (DailyDialog);
- `state`: the dialogue state {domain: {slot: value}} on user turns (WOZ, CamRest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import RecordError, convert_records, record_id, require, validate_for
from dialpref.data.formats._io import RawRecord, display_name, iter_json_records
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "convlab"
ROLES = {"user": "user", "system": "assistant"}
_ACT_TYPES = ("binary", "categorical", "non-categorical")


def sniff(record: dict[str, Any]) -> bool:
    turns = record.get("turns")
    return (isinstance(turns, list) and bool(turns) and isinstance(turns[0], dict)
            and "utterance" in turns[0])


def _labels(turn: dict[str, Any]) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    acts_by_type = turn.get("dialogue_acts") or {}
    if not isinstance(acts_by_type, dict):
        raise RecordError(f"dialogue_acts should be an object of {', '.join(_ACT_TYPES)} lists, "
                          f"got {type(acts_by_type).__name__}")
    acts = []
    for act_type in _ACT_TYPES:
        for act in acts_by_type.get(act_type, []) or []:
            if not isinstance(act, dict):
                raise RecordError(f"a {act_type} dialogue act should be an object, got {type(act).__name__}")
            acts.append({"type": act_type, **{k: act.get(k, "") for k in ("intent", "domain", "slot")},
                         **({"value": act["value"]} if "value" in act else {})})
    if acts:
        labels["dialogue_acts"] = acts
        labels["dialogue_act"] = acts[0]["intent"]
    if "emotion" in turn:
        labels["emotion"] = turn["emotion"]
    if "state" in turn:
        labels["state"] = turn["state"]
    return labels


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)

    def build(record: RawRecord) -> Dialogue:
        value = record.value
        raw_turns = require(value, "turns", list)
        turns = []
        for index, turn in enumerate(raw_turns):
            if not isinstance(turn, dict):
                raise RecordError(f"turns[{index}] is not an object")
            speaker = turn.get("speaker")
            if speaker not in ROLES:
                raise RecordError(f"unknown role {speaker!r} at turns[{index}] (known: user, system)")
            if "utterance" not in turn:
                raise RecordError(f"missing field 'utterance' in turns[{index}]")
            turns.append({"speaker": speaker, "role": ROLES[speaker], "text": turn["utterance"],
                          "labels": _labels(turn), "metadata": {"utt_idx": turn.get("utt_idx", index)}})
        dialogue_id = record_id(value.get("dialogue_id"), name, record)
        metadata = {"format": NAME, "dataset": value.get("dataset"), "split": value.get("data_split"),
                    "domains": value.get("domains", [])}
        return validate_for(rejects, dialogue_id, turns, metadata)

    return convert_records(iter_json_records(source), name, rejects, build)
