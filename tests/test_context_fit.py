"""Dialogues longer than the teacher's context: the rule (instructions, the most recent turns that fit, the
utterance whole or cut to head and tail), exact KV reuse after a restart, and every utterance labelled."""

import pytest

from conftest import embedded_teacher
from dialpref.data import read_dialogues
from dialpref.data.schema import Dialogue, Turn
from dialpref.label.bank import BUILTIN_PROMPTS, utterance_queries
from dialpref.label.causal import causal_pieces
from dialpref.label.run import LabelConfig, label_run
from dialpref.label.tasks import BUILTIN
from dialpref.teachers.base import TeacherError
from dialpref.teachers.calls import normalise
from dialpref.teachers.context import cut_middle, first_fitting_start, recent_start

TASK = BUILTIN["dialogue_act"]
WORDS = ("the weather was cold and the train was late so we walked along the river talking about books "
         "music and the strange habits of our neighbours ").split()


def long_dialogue(turns: int, words_per_turn: int, dialogue_id: str = "long") -> Dialogue:
    out = []
    for i in range(turns):
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(words_per_turn)) + f" number {i}?"
        out.append(Turn(speaker="A" if i % 2 == 0 else "B", role="user" if i % 2 == 0 else "assistant", text=text))
    return Dialogue(id=dialogue_id, turns=out)


def test_cut_middle_keeps_head_and_tail():
    assert cut_middle(list(range(10)), 20, ["…"]) == list(range(10))
    cut = cut_middle(list(range(100)), 11, ["…"])
    assert len(cut) == 11 and cut[:5] == [0, 1, 2, 3, 4] and cut[5] == "…" and cut[-5:] == [95, 96, 97, 98, 99]


def test_recent_start_takes_the_latest_turns_that_fit():
    assert recent_start([5, 5, 5, 5], 10) == 2
    assert recent_start([5, 5, 5, 5], 100) == 0
    assert recent_start([5, 5, 50], 10) == 3  # the latest one alone is too long: nothing fits


def test_first_fitting_start_is_the_smallest_on_the_stride_grid():
    assert first_fitting_start(0, 30, lambda s: True) == 0
    assert first_fitting_start(0, 30, lambda s: s >= 13) == 16  # grid 0, 8, 16, 24, then the target
    assert first_fitting_start(0, 30, lambda s: s >= 29) == 30
    assert first_fitting_start(0, 30, lambda s: False) is None


@pytest.fixture(scope="module")
def gemma():
    return embedded_teacher("gemma3-270m")


def test_causal_labels_every_turn_of_a_10k_token_dialogue_exactly_and_counts_truncation(gemma, tmp_path):
    dialogue = long_dialogue(160, 50)  # over 10,000 tokens; the test teacher's context is 2048
    head, segments, ask = causal_pieces(TASK, dialogue)
    assert sum(len(gemma.tokenize_piece(s)) for s in segments) > 10_000
    summary = label_run(gemma, TASK, [dialogue], LabelConfig(mode="causal", prior="none"), tmp_path / "rows.jsonl")
    rows = rows_of(summary)
    assert len(rows) == 160 and all(r["scores"] for r in rows)
    truncated = [r for r in rows if r["truncation"]]
    assert summary["truncated"] == len(truncated) > 100 and rows[0]["truncation"] is None
    assert summary["prompts"] == ["causal@v1"] and summary["config"]["bank"] is None
    assert all(r["prompt_tokens"] < gemma.llm.n_ctx() for r in rows)
    for i in (0, 60, 159):  # a streamed answer equals its window evaluated from scratch (exact KV reuse)
        k = (rows[i]["truncation"] or {}).get("turns_dropped", 0)
        fresh = normalise(gemma.fresh_option_logprobs([head, *segments[k:i + 1], ask], TASK.class_names).logprobs)
        for c in TASK.class_names:
            assert fresh[c] == pytest.approx(rows[i]["per_prompt"]["causal@v1"][c], abs=1e-4)


def test_an_utterance_longer_than_the_context_is_cut_to_head_and_tail(gemma, tmp_path):
    giant = Turn(speaker="A", role="user", text=" ".join(WORDS * 120))  # about 3,000 tokens alone
    dialogue = Dialogue(id="giant", turns=[*long_dialogue(3, 20).turns, giant, *long_dialogue(2, 10).turns])
    rows = rows_of(label_run(gemma, TASK, [dialogue], LabelConfig(mode="causal", prior="none"),
                             tmp_path / "rows.jsonl"))
    assert [r["turn_index"] for r in rows] == list(range(len(dialogue.turns))) and all(r["scores"] for r in rows)
    assert rows[3]["truncation"]["utterance_cut"] and rows[3]["truncation"]["turns_dropped"] == 3
    assert rows[4]["truncation"]["turns_dropped"] >= 3 and not rows[4]["truncation"]["utterance_cut"]


def rows_of(summary):
    from dialpref.rows import read_rows_strict
    return read_rows_strict(summary["output"])


def test_real_long_chitchat_dialogue_labels_every_utterance(gemma, tmp_path):
    pytest.importorskip("chitchat_dataset")
    long = next(d for d in read_dialogues("chitchat") if d.id.startswith("3a70241f"))
    assert len(long.turns) >= 100
    summary = label_run(gemma, TASK, [long], LabelConfig(mode="causal", prior="none"), tmp_path / "rows.jsonl")
    rows = rows_of(summary)
    assert len(rows) == len([t for t in long.turns if TASK.labelled(t)]) and all(r["scores"] for r in rows)
    assert summary["truncated"] > 0  # 15.7k characters do not fit a 2048-token context


def test_prompt_mode_drops_the_oldest_turns_and_rejects_an_utterance_alone_too_long(gemma, tmp_path):
    prompt = BUILTIN_PROMPTS["choice_names@v1"]
    dialogue = long_dialogue(80, 40)
    queries = utterance_queries(prompt, TASK, dialogue, 79, fits=gemma.fits)
    assert queries[0].turns_dropped > 0 and queries[0].turns_dropped % 8 == 0
    assert gemma.fits(queries[0].messages)
    giant = Dialogue(id="g", turns=[Turn(speaker="A", role="user", text=" ".join(WORDS * 120))])
    with pytest.raises(TeacherError, match="alone does not fit"):
        utterance_queries(prompt, TASK, giant, 0, fits=gemma.fits)
    summary = label_run(gemma, TASK, [giant], LabelConfig(mode="prefix", prior="none"), tmp_path / "rows.jsonl")
    rows = rows_of(summary)
    assert rows[0]["scores"] is None and "alone does not fit" in rows[0]["errors"][0]


def test_a_server_teachers_context_is_a_setting_and_prompts_are_cut_to_it():
    from dialpref.teachers.factory import make_teacher
    from dialpref.teachers.openai_compat import OpenAICompatTeacher

    assert make_teacher("http://127.0.0.1:9", cache_path=None).context_tokens == 8192  # the default
    small = make_teacher("http://127.0.0.1:9", cache_path=None, n_ctx=600)
    assert isinstance(small, OpenAICompatTeacher) and small.context_tokens == 600
    dialogue = long_dialogue(40, 40)
    queries = utterance_queries(BUILTIN_PROMPTS["choice_names@v1"], TASK, dialogue, 39, fits=small.fits)
    assert queries[0].turns_dropped >= 24 and small.fits(queries[0].messages)
    roomy = utterance_queries(BUILTIN_PROMPTS["choice_names@v1"], TASK, dialogue, 39,
                              fits=make_teacher("http://127.0.0.1:9", cache_path=None).fits)
    assert roomy[0].turns_dropped == 0
