"""`dialpref label` (teacher scores with provenance) and `dialpref calibrate` (ECE, reliability, post-hoc
calibration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dialpref.cli._console import ACTORS_OPTION, CPUS_PER_ACTOR_OPTION, ENGINE_OPTION, RAY_ADDRESS_OPTION, \
    EMBEDDED_TEACHER, EXAMPLES_HELP, BANK_HELP, MAP_HELP, STRICT_HELP, TASK_HELP, \
    TEACHER_HELP, _progress, console
from dialpref.data import Rejects, read_dialogues


ESTIMATOR_HELP = ("'expected': option probabilities, one forward pass per prompt. 'votes': N sampled answers over "
                  "the bank (the paper).")
SAMPLER_HELP = ("votes: 'generate' (one teacher call per vote) or 'distribution' (drawn from one forward pass's "
                "answer distribution).")
MODE_HELP = ("'prefix': the whole dialogue as a reused prefix; 'causal': read once, ask after each utterance "
             "(embedded teacher, expected estimator, its own prompt); 'auto': causal where it applies (embedded "
             "teacher, expected estimator, no --bank), else prefix.")
PRIOR_HELP = ("Divide out the teacher's label prior: none, content_free, unlabelled, or content_free_em (the "
              "content-free prior, then class frequencies EM estimates from the same unlabelled utterances).")
CONTEXT_HELP = ("The teacher's context window in tokens [default: 4096 embedded, 8192 for a server]; a longer "
                "dialogue keeps its most recent turns (docs/labelling.md).")
RETRY_FAILED_HELP = ("Ask the teacher again where the cache holds an answer an earlier run found invalid (by "
                     "default it is re-read and reported as invalid again; good answers are never asked twice).")
FRESH_HELP = "--engine ray: drop the output's shards and label everything again (the cache still answers finished calls)."


def _examples(path: Optional[str], task, split: Optional[str] = "train"):
    from dialpref.label.bank import examples_from

    if not path:
        return []
    return examples_from(read_dialogues(path, Rejects(echo=False), split=split, limit=500), task)


def label(
    source: str = typer.Argument(..., help="Dialogue file (any supported format), or 'chitchat'."),
    task: str = typer.Option("dialogue_act", help=TASK_HELP),
    teacher: str = typer.Option(EMBEDDED_TEACHER, help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server."),
    bank: Optional[str] = typer.Option(None, help=BANK_HELP + " [default: choice_names@v1]"),
    examples: Optional[str] = typer.Option(None, help=EXAMPLES_HELP),
    estimator: str = typer.Option("expected", help=ESTIMATOR_HELP),
    votes: int = typer.Option(10, help="N for the votes estimator (answers per utterance, round-robin over prompts)."),
    sampler: str = typer.Option("generate", help=SAMPLER_HELP),
    mode: str = typer.Option("auto", help=MODE_HELP),
    prior: str = typer.Option("unlabelled", help=PRIOR_HELP),
    buckets: int = typer.Option(10, help="ECE buckets (the paper uses 5)."),
    dialogues: int = typer.Option(5, help="Label this many dialogues."),
    split: Optional[str] = typer.Option(None, help="Only dialogues of this split."),
    output: Path = typer.Option(Path("runs/label/scores.jsonl"), help="Rows: .jsonl or .parquet (both load with "
                                                                      "datasets.load_dataset)."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (SQLite): "
                                                                            "a rerun repeats no finished call."),
    context: Optional[int] = typer.Option(None, help=CONTEXT_HELP),
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
    retry_failed: bool = typer.Option(False, "--retry-failed", help=RETRY_FAILED_HELP),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
    qps: Optional[float] = typer.Option(None, help="Server teachers: at most this many requests per second to "
                                                   "each endpoint (a fleet: to each of its URLs)."),
    engine: str = ENGINE_OPTION,
    ray_address: Optional[str] = RAY_ADDRESS_OPTION,
    actors: int = ACTORS_OPTION,
    cpus_per_actor: float = CPUS_PER_ACTOR_OPTION,
    shard_dialogues: int = typer.Option(20, help="--engine ray: dialogues per output shard (a killed run "
                                                 "loses at most one shard's rows, never its paid calls)."),
    fresh: bool = typer.Option(False, "--fresh", help=FRESH_HELP),
) -> None:
    """Soft scores S[utterance, class] from a prompt bank, with provenance; ECE and plots where gold is known.

    The defaults are the embedded configuration that did best on the dev dialogues
    (benchmarks/teacher_search.py): Gemma-3-270M in causal mode with the unlabelled prior divided out.

    Example: dialpref label ../shared/data/dailydialog/data.zip --split test --bank choice_names@v1,yes_no@v1
    --estimator votes --votes 10 --output runs/dd/scores.parquet
    """
    from dialpref.label.run import resolve_mode

    kind = _task_kind(task)
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine is 'local' or 'ray', not {engine!r}")
    _label_run(source, task, teacher, server_model, dialogues, split, output, cache,
               dict(bank=bank or "choice_names@v1", estimator=estimator, votes=votes, sampler=sampler,
                    mode=resolve_mode(mode, teacher, estimator, bank, kind), prior=prior, buckets=buckets), examples,
               context, retry_failed, map, strict, qps,
               None if engine == "local" else dict(address=ray_address, actors=actors, cpus_per_actor=cpus_per_actor,
                                                   dialogues_per_shard=shard_dialogues, fresh=fresh))


def _task_kind(name: str) -> str:
    """The kind of task `name` names ("" when it names none: the run reports that error itself)."""
    from dialpref.label.tasks import load_task

    try:
        return load_task(name).kind
    except ValueError:
        return ""


def _label_run(source, task_name, teacher_spec, server_model, n_dialogues, split, output, cache_path,
               options=None, examples=None, context=None, retry_failed=False, mapping=None, strict=False, qps=None,
               ray=None):
    """One `label` run, holding the lock on its output (a second run on the same output stops at once);
    `ray`: the Ray engine's options (None: this process)."""
    from dialpref.files import output_lock

    with output_lock(output):
        if ray is not None:
            return _label_on_ray(source, task_name, teacher_spec, server_model, n_dialogues, split, output,
                                 cache_path, options, examples, context, retry_failed, mapping, qps, ray)
        return _label_locked(source, task_name, teacher_spec, server_model, n_dialogues, split, output,
                             cache_path, options, examples, context, retry_failed, mapping, strict, qps)


def _run_setup(task_name, options, examples):
    """The task, the label config and the bank, or a one-line error for settings that cannot work."""
    from dialpref.label.bank import load_bank
    from dialpref.label.run import LabelConfig
    from dialpref.label.tasks import load_task

    try:
        task = load_task(task_name)
        config = LabelConfig(**(options or {}))
        return task, config, load_bank(config.bank, _examples(examples, task))
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def _label_locked(source, task_name, teacher_spec, server_model, n_dialogues, split, output, cache_path,
                  options, examples, context, retry_failed, mapping, strict, qps=None):
    from dialpref.label.run import label_run
    from dialpref.teachers.factory import make_teacher

    task, config, bank = _run_setup(task_name, options, examples)
    input_rejects = output.with_name(output.stem + ".input-rejects.jsonl")
    input_rejects.unlink(missing_ok=True)  # this run's rejects, not the sum of every run's
    sink = Rejects(input_rejects, strict=strict)
    items = list(read_dialogues(source, sink, split=split, limit=n_dialogues, mapping=mapping))
    sink.close()
    if not items:
        console.print(f"[red]no dialogues read from {source}[/red] ({sink.summary()})")
        raise typer.Exit(1)
    task = _slot_values(task, examples, items)
    try:
        teacher = make_teacher(teacher_spec, server_model=server_model, cache_path=cache_path, n_ctx=context,
                               retry_failed=retry_failed, qps=qps)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    total = sum(1 for d in items for t in d.turns if task.labelled(t))
    with _progress() as progress:
        bar = progress.add_task(f"labelling {task.name} with {teacher.model}", total=total)
        summary = label_run(teacher, task, items, config, output, bank, source=str(source),
                            on_dialogue=lambda d, rows: progress.advance(bar, len(rows)))
    summary["input_rejects"] = sink.summary()
    console.print_json(json.dumps(summary))
    return summary


def _label_on_ray(source, task_name, teacher_spec, server_model, n_dialogues, split, output, cache_path, options,
                  examples, context, retry_failed, mapping, qps, ray):
    """`label --engine ray`: the same rows as the local path, labelled by Ray actors (dialpref.scale)."""
    try:
        from dialpref.scale import shards
        from dialpref.scale.ray_label import RayOptions, TeacherSpec, label_with_ray
    except ImportError as err:
        raise typer.BadParameter(f"--engine ray needs Ray: pip install 'dialpref[scale]' ({err})") from None
    task, config, bank = _run_setup(task_name, options, examples)
    if ray.pop("fresh"):
        shards.clear(shards.shard_dir(output))
    task = _slot_values(task, examples, read_dialogues(source, Rejects(echo=False), split=split, limit=n_dialogues,
                                                       mapping=mapping))
    teacher = TeacherSpec(teacher_spec, server_model, str(cache_path), context, retry_failed,
                          threads=max(1, int(ray["cpus_per_actor"])),
                          qps=qps / ray["actors"] if qps else None)  # each actor keeps its share of the limit
    with _progress() as progress:
        bar = progress.add_task(f"labelling {task.name} with {teacher_spec} on Ray ({ray['actors']} actors)",
                                total=None)
        try:
            summary = label_with_ray(str(source), task, config, bank, output, teacher, RayOptions(**ray),
                                     split=split, limit=n_dialogues, mapping=mapping,
                                     on_dialogue=lambda n: progress.advance(bar, n))
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    console.print_json(json.dumps(summary))
    return summary


def _slot_values(task, examples: Optional[str], items):
    """A slots task's open values, gathered from the gold states of --examples (else of the dialogues being
    labelled, said so); other tasks unchanged."""
    if task.kind != "slots" or not any(s.open for s in task.slots):
        return task
    source = list(read_dialogues(examples, Rejects(echo=False))) if examples else items
    if not examples:
        console.print("[yellow]open slots take their values from the gold states of the dialogues being "
                      "labelled; pass --examples with training dialogues to keep test values out[/yellow]")
    try:
        return task.with_values_from(source)
    except ValueError as err:
        raise typer.BadParameter(f"{err} (pass --examples with dialogues whose gold states give its values)") \
            from None


def calibrate(
    scores: Path = typer.Argument(..., help="Rows from `dialpref label` (.jsonl or .parquet) with gold labels."),
    fit: Optional[Path] = typer.Option(None, help="Gold dev rows to fit a post-hoc calibrator on; without it, "
                                                  "only measure."),
    method: str = typer.Option("temperature", help="temperature (one T on log S) or isotonic (per class)."),
    task: Optional[str] = typer.Option(None, help=TASK_HELP + " [default: the task the rows were labelled for]"),
    buckets: int = typer.Option(10, help="ECE buckets (the paper uses 5)."),
    output: Optional[Path] = typer.Option(None, help="Write the calibrated rows here (scores replaced, "
                                                     "`scores_uncalibrated` kept)."),
    plots: Path = typer.Option(Path("runs/calibrate"), help="Folder for reliability.png and ece_by_n.png."),
) -> None:
    """ECE, a reliability diagram and (for votes) ECE against ensemble size; optionally fit and apply
    temperature or isotonic calibration on gold dev rows, with before / after ECE."""
    import numpy as np

    from dialpref.evaluate.calibration_error import quality
    from dialpref.label import calibration as cal
    from dialpref.rows import read_rows_strict, write_rows
    from dialpref.label.run import ece_by_n
    from dialpref.label.tasks import task_for_rows

    rows = read_rows_strict(scores)
    if not rows:
        raise typer.BadParameter(f"{scores} holds no rows")
    spec = task_for_rows(rows, scores, task)
    classes = spec.class_names
    probs, gold = cal.arrays(rows, classes)
    if len(gold) == 0:
        raise typer.BadParameter(f"{scores}: no row has both scores and a gold label of task {spec.name}")
    report = {"rows": len(rows), "before": quality(probs, gold, buckets)}
    curves = {"before": (probs, gold)}
    if fit is not None:
        dev_probs, dev_gold = cal.arrays(read_rows_strict(fit), classes)
        calibrator = cal.Calibrator(method, classes).fit(dev_probs, dev_gold)
        after = calibrator.transform(probs)
        report["calibrator"] = calibrator.describe()
        report["after"] = quality(after, gold, buckets)
        curves[f"after {method}"] = (after, gold)
        if output is not None:
            fixed = []
            for row in rows:
                new = None
                if row.get("scores"):
                    scored = calibrator.transform(np.array([[row["scores"][c] for c in classes]]))[0]
                    new = dict(zip(classes, map(float, scored)))
                fixed.append({**row, "scores_uncalibrated": row.get("scores"), "scores": new,
                              "predicted": max(new, key=new.get) if new else None, "calibration": report["calibrator"]})
            write_rows(fixed, output)
            report["output"] = str(output)
    report["reliability_png"] = str(cal.plot_reliability(curves, plots / "reliability.png", buckets,
                                                         title=f"{spec.name}: reliability"))
    if rows and rows[0].get("estimator") == "votes" and rows[0].get("votes"):
        curve = ece_by_n(rows, classes, buckets)
        report["ece_by_n"] = curve
        report["ece_by_n_png"] = str(cal.plot_ece_by_n({spec.name: curve}, plots / "ece_by_n.png"))
    console.print_json(json.dumps(report))
