"""Task specs and the prompt bank: YAML built-ins, every template renders, the question comes last."""

import pytest

from dialpref.data.schema import Dialogue
from dialpref.label.bank import (BUILTIN_PROMPTS, Bank, Example, PromptSpec, default_instructions, dialogue_queries,
                                 load_bank, utterance_queries)
from dialpref.label.tasks import BUILTIN, TaskSpec, load_task

DIALOGUE = Dialogue(id="d", turns=[{"speaker": "A", "role": "user", "text": "Could you pass the salt?"},
                                   {"speaker": "B", "role": "assistant", "text": "Sure, here you go."},
                                   {"speaker": "A", "role": "user", "text": "Thanks a lot."}])
EXAMPLES = [Example(f"example {c} {i}", c) for c in BUILTIN["dialogue_act"].classes for i in range(3)]


def test_builtin_tasks_come_from_yaml_and_validate(tmp_path):
    assert {"dialogue_act", "sentiment", "emotion", "has_intent"} <= set(BUILTIN)
    assert BUILTIN["has_intent"].kind == "binary" and set(BUILTIN["has_intent"].classes) == {"yes", "no"}
    assert BUILTIN["emotion"].gold({"emotion": "happiness"}) == "joy"
    assert BUILTIN["dialogue_act"].letters == {"A": "inform", "B": "question", "C": "directive", "D": "commissive"}
    spec = tmp_path / "t.yaml"
    spec.write_text("name: t\nkind: binary\nclasses: {a: one, b: two, c: three}\n")
    with pytest.raises(ValueError, match="exactly two"):
        load_task(str(spec))
    spec.write_text("name: t\nkind: multiclass\nclasses: {a: one, b: two}\ncolour: red\n")
    with pytest.raises(ValueError, match="unknown task fields"):
        load_task(str(spec))
    with pytest.raises(ValueError, match="does not exist"):
        load_task(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("prompt_id", [p for p in BUILTIN_PROMPTS if BUILTIN_PROMPTS[p].per_utterance])
def test_every_utterance_prompt_shares_its_prefix_and_asks_last(prompt_id):
    task = BUILTIN["dialogue_act"]
    prompt = BUILTIN_PROMPTS[prompt_id]
    shots = Bank([prompt], EXAMPLES).shots_for(prompt, task)
    first = utterance_queries(prompt, task, DIALOGUE, 0, shots)
    last = utterance_queries(prompt, task, DIALOGUE, 2, shots)
    a, b = first[0].messages[0]["content"], last[0].messages[0]["content"]
    split = a.index("[3] A: Thanks a lot.") + len("[3] A: Thanks a lot.")
    assert a[:split] == b[:split], "instructions and dialogue must be an identical prefix"
    assert "[1]" in a[split:] and "[3]" in b[split:], "the question names its utterance after the dialogue"
    if prompt.form == "yes_no":
        assert [q.target_class for q in first] == list(task.classes) and first[0].options == ["yes", "no"]
    elif prompt.answer == "letter":
        assert first[0].options == ["A", "B", "C", "D"] and first[0].to_class["C"] == "directive"
        assert "C) directive" in a
    else:
        assert first[0].options == list(task.classes)
    if prompt.shots:
        assert all(f'"{e.text}" -> {e.label}' in a for e in shots) and len(shots) == 2 * len(task.classes)


def test_dialogue_list_prompt_asks_once_per_class():
    task = BUILTIN["sentiment"]
    queries = dialogue_queries(BUILTIN_PROMPTS["dialogue_list@v1"], task, DIALOGUE)
    assert [q.target_class for q in queries] == list(task.classes)
    assert '{"utterances"' in queries[0].messages[0]["content"]
    with pytest.raises(ValueError, match="once per dialogue"):
        utterance_queries(BUILTIN_PROMPTS["dialogue_list@v1"], task, DIALOGUE, 0)


def test_bank_yaml_round_trip_with_paraphrased_instructions(tmp_path):
    task = BUILTIN["dialogue_act"]
    para = PromptSpec("choice_names@para1", "multiple_choice", instructions="Tag each line of this chat.")
    path = tmp_path / "bank.yaml"
    path.write_text(Bank([BUILTIN_PROMPTS["choice_names@v1"], para]).to_yaml())
    bank = load_bank(path)
    assert bank.ids == ["choice_names@v1", "choice_names@para1"]
    content = utterance_queries(bank.prompts[1], task, DIALOGUE, 1)[0].messages[0]["content"]
    assert content.startswith("Tag each line of this chat.")
    assert default_instructions(bank.prompts[0], task).startswith("You label utterances")
    assert load_bank("few_shot@v1").usable() == []  # few-shot needs examples
    with pytest.raises(ValueError, match="unknown prompt"):
        load_bank("nope@v1")


def test_context_window_limits_what_the_teacher_sees():
    task = TaskSpec("t", "multiclass", {"x": "one", "y": "two"}, context_turns=1)
    content = utterance_queries(BUILTIN_PROMPTS["choice_names@v1"], task, DIALOGUE, 2)[0].messages[0]["content"]
    assert "Could you pass the salt" not in content and "Sure, here you go" in content and "[2]" in content
