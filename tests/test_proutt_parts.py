"""ProUtt synthesis parts that need no teacher: samples, the history rule, schemas, bands, records."""

import json

import pytest
from pydantic import ValidationError

from dialpref.data.schema import Dialogue, Turn
from dialpref.proutt.export import dpo_record, prediction_prompt, sft_record
from dialpref.proutt.preference import PreferenceConfig, Trace, ViewTrace, choose, needs
from dialpref.proutt.samples import (ChatMessage, HistoryBudget, NextTurnSample, SampleStats, render_history,
                                     samples_from_dialogue, split_of)
from dialpref.proutt.schemas import GoldCategory, Insight, Revision, Scores
from dialpref.proutt.stages import CHARS_PER_TOKEN, token_cap


def dialogue(*texts, id="d1"):
    roles = ["user", "assistant"]
    return Dialogue(id=id, turns=[Turn(speaker=roles[i % 2], role=roles[i % 2], text=t) for i, t in enumerate(texts)])


def test_last_target_and_negatives_never_equal_the_target():
    d = dialogue("hi there", "hello", "what is 2+2?", "4", "hi there", "hey", "what is 2+2?", "still 4")
    (sample,) = samples_from_dialogue(d)
    assert sample.id == "d1#6" and sample.target == "what is 2+2?"
    assert [m.content for m in sample.context][-1] == "hey"
    # the other user turns: 'hi there' (twice, once kept) and an earlier copy of the target (never kept)
    assert sample.negatives == ["hi there"]


def test_all_mode_and_short_conversations_are_counted():
    stats = SampleStats()
    assert samples_from_dialogue(dialogue("only one round", "answer"), stats=stats) == []
    assert samples_from_dialogue(dialogue("just a user turn"), stats=stats) == []
    many = samples_from_dialogue(dialogue("a", "b", "c", "d", "e", "f"), mode="all", stats=stats)
    assert [s.target for s in many] == ["c", "e"]
    assert stats.skipped_short == 2 and stats.samples == 2 and stats.dialogues == 3


def test_split_keeps_parts_of_one_conversation_together():
    parts = [NextTurnSample(id=f"abc_{k}#2", dialogue_id=f"abc_{k}", context=[], target="x") for k in range(5)]
    assert len({split_of(p, test_share=0.5) for p in parts}) == 1
    spread = {split_of(NextTurnSample(id=f"c{k}#2", dialogue_id=f"c{k}_0", context=[], target="x"), test_share=0.5)
              for k in range(40)}
    assert spread == {"train", "test"}


def test_history_rounds_and_budget():
    context = [ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"turn {i} " + "x" * 300)
               for i in range(10)]
    full = render_history(context, HistoryBudget(max_chars=100_000))
    assert full.startswith("[Round 1]\nUser: turn 0") and "[Round 5]" in full
    cut = render_history(context, HistoryBudget(max_chars=1400))
    assert cut.startswith("[3 earlier rounds left out]") and "[Round 4]" in cut and "[Round 3]" not in cut
    assert len(cut) < 1500
    long_reply = [ChatMessage(role="user", content="q"), ChatMessage(role="assistant", content="a" * 2000)]
    shown = render_history(long_reply, HistoryBudget(max_assistant_chars=300))
    assert "[...]" in shown and len(shown) < 400
    # the very same text at synthesis and at prediction time
    assert render_history([m.model_dump() for m in context]) == render_history(context)


def test_schemas_bound_cost_and_check_what_grammars_cannot():
    # an answer at every bound fits the derived token cap, and the cap stays small
    widest = GoldCategory(reasoning="x" * 160, category="Instruction").model_dump_json(indent=1)
    assert len(widest) // CHARS_PER_TOKEN <= token_cap(GoldCategory.model_json_schema()) < 200
    view = {"reasoning": "r" * 240, "path": "p" * 80, "predictions": ["a" * 160, "b" * 160]}
    widest = Insight.model_validate({"mining": view, "exploration": view}).model_dump_json(indent=1)
    assert len(widest) // CHARS_PER_TOKEN <= token_cap(Insight.model_json_schema()) < 1000
    with pytest.raises(ValidationError, match="repeat"):
        Revision.model_validate({"thinking": "t", "revised": "r", "predictions": ["Same thing", "same thing"]})
    cut = Revision.model_validate({"thinking": "t", "revised": "r" * 900, "predictions": ["a", "b", "c"]})
    assert cut.predictions == ["a", "b"] and len(cut.revised) <= 303
    scores = Scores.model_validate({"scores": [{"reason": "r", "similarity": v} for v in (0.2, 0.7, 0.30000001, 0)]})
    assert scores.top_sim == 0.7 and scores.scores[2].similarity == 0.3
    with pytest.raises(ValidationError):
        Scores.model_validate({"scores": [{"reason": "r", "similarity": 1.5}] * 4})
    with pytest.raises(ValidationError):
        GoldCategory.model_validate({"reasoning": "r", "category": "Command"})


def test_bands_at_the_thresholds():
    config = PreferenceConfig()
    assert [config.band(v) for v in (1.0, 0.8, 0.7, 0.3, 0.2, 0.0)] == ["high", "high", "mid", "mid", "low", "low"]
    assert needs("high") == (False, True) and needs("mid") == (True, True) and needs("low") == (True, False)
    with pytest.raises(ValueError):
        PreferenceConfig(tau_high=0.2, tau_low=0.5)


def _trace(tag):
    view = ViewTrace(f"{tag} reasoning", "A -> B", (f"{tag} 1", f"{tag} 2"))
    return Trace({"Topic": {"a": "b"}}, "Question", f"{tag} because", view, view)


def test_choose_follows_the_rule_and_traces_render_four_predictions():
    original, revised, negative = _trace("orig"), _trace("rev"), _trace("neg")
    assert choose("high", original, None, negative)[:2] == (original, negative)
    assert choose("mid", original, revised, negative)[:2] == (revised, negative)
    assert choose("low", original, revised, None)[:2] == (revised, original)
    text = original.text()
    assert text.startswith("<think>") and text.count("<predict>") == 4 and "</think>" in text


def test_records_are_trl_conversational_forms():
    row = {"id": "d#2", "history": "[Round 1]\nUser: hi\nAssistant: hello", "config": {"language": "Chinese"},
           "chosen": {"text": "<think>c</think>"}, "rejected": {"text": "<think>r</think>"}, "intent_tree": {"T": {}}}
    sft, dpo = sft_record(row), dpo_record(row)
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant"]
    assert sft["messages"][0]["content"] == prediction_prompt(row["history"], "Chinese")
    assert "in Chinese" in sft["messages"][0]["content"] and row["history"] in sft["messages"][0]["content"]
    assert dpo["prompt"][0]["role"] == "user" and dpo["chosen"][0]["content"] == "<think>c</think>"
    assert dpo["rejected"] == [{"role": "assistant", "content": "<think>r</think>"}]
    assert json.loads(dpo["provenance"])["intent_tree"] == {"T": {}}


def test_degenerate_synthesis_checks_give_their_reasons():
    from dialpref.proutt import checks

    hotel = "user: 我想在北京找一家酒店。\nassistant: 好的，您的预算是多少？"
    assert "Code debugging" in checks.tree_from_prompt({"Code debugging": {"Python": "Python"}}, hotel)
    assert checks.tree_from_prompt({"Coding": {"language": "Python"}}, "user: my Python script fails") is None
    assert checks.tree_from_prompt({"Travel": {"language": "Japanese"}}, "user: a trip to Japan") is None  # one word
    for junk in ('"] ,"', "1.0 1.0 1.0 1.0", "Topic -> New topic - Attribute", "..."):
        assert checks.placeholder(junk), junk
    for fine in ("How much does a week in Kyoto cost?", "好的，收到，谢谢你！", "print(x[0]) fails, why?"):
        assert checks.placeholder(fine) is None, fine
    assert "latin" in checks.wrong_language(["Thanks, it is booked."], "Chinese", hotel)
    assert checks.wrong_language(["好的，我订了。"], "Chinese", hotel) is None
    assert checks.wrong_language(["Thanks!"], "the language of the conversation", hotel)  # the chat's own script
    assert checks.wrong_language(["Thanks!"], "the language of the conversation", "user: hello there") is None
    assert checks.blind_scorer(1.0, 1.0) and checks.blind_scorer(0.9, 0.2) is None
    assert checks.blind_scorer(0.0, 0.0) is None  # two zeros can be right: the predictions match neither turn
    record = {"top_sim": 1.0, "negative_top_sim": 0.9, "target": "好的，收到，谢谢你！",
              "insight": {"mining": {"predictions": ["Topic one", "Topic two"]}, "exploration": {"predictions": []}}}
    assert len(checks.suspicions(record)) == 2
