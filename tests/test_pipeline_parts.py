"""The quick start's parts that need no model: which dialogues it takes, and a server teacher's cost."""

from collections import Counter

from dialpref.data.schema import Dialogue, Turn
from dialpref.label.tasks import BUILTIN
from dialpref.pipeline import take_dialogues, teacher_cost
from dialpref.report.quickstart import cost_line

TASK = BUILTIN["dialogue_act"]


def dialogue(i: int, turns: int) -> Dialogue:
    return Dialogue(id=f"d{i}", turns=[Turn(speaker="AB"[k % 2], role=("user", "assistant")[k % 2], text=f"t{k}")
                                       for k in range(turns)])


def test_take_dialogues_skips_short_ones_and_stops_at_the_utterance_budget():
    stream = iter([dialogue(0, 1), dialogue(1, 5), dialogue(2, 3), dialogue(3, 6), dialogue(4, 8), dialogue(5, 4)])
    skipped: Counter = Counter()
    taken = take_dialogues(stream, TASK, 10, 4, skipped)
    assert [d.id for d in taken] == ["d1", "d3"] and skipped["shorter than min_turns"] == 2
    assert [d.id for d in take_dialogues(stream, TASK, 100, 4, skipped)] == ["d4", "d5"]  # the stream goes on


def test_a_server_teacher_is_never_called_again_to_time_it():
    run = {"answered_from_cache": False, "utterances": 40, "seconds": 8.0}
    cost = teacher_cost(None, TASK, [dialogue(0, 4)], None, None, 3, served=run)
    assert cost["seconds_per_label"] == 0.2 and cost["from"] == "the labelling run"
    cached = teacher_cost(None, TASK, [dialogue(0, 4)], None, None, 3, served={**run, "answered_from_cache": True})
    assert cached["seconds_per_label"] is None
    line = cost_line({"teacher_seconds_per_label": None, "student_ms_per_utterance": 3.0, "ratio": None})
    assert "not known from this run" in line
