"""`dialpref next samples|train|predict|eval`: next-user-utterance models from ProUtt records."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Optional

import typer

from dialpref.cli._console import _out, _progress, console
from dialpref.proutt.causal_lm import DEFAULT_CAUSAL_LM
from dialpref.teachers.packaged import CHAT_MODEL

next_app = typer.Typer(
    help="Next-user-utterance models (ProUtt): pick held-out samples, train (SFT then DPO, LoRA), predict "
         "four next turns with reasoning, and evaluate (LLM judge, embedding similarity, pairwise, human "
         "agreement).", no_args_is_help=True)

STYLE_HELP = ("proutt (think block + four <predict> lines), proutt_no_tree (the ablation) or simulator "
              "(one raw turn per sample, four samples).")


@next_app.command("samples")
def samples_command(
    source: str = typer.Argument(..., help="Chat logs (ShareGPT, LMSYS, OpenAI messages, CrossWOZ)."),
    output: Path = typer.Option(Path("runs/next/test_samples.jsonl"), "--output", "-o", help="Samples JSONL."),
    part: str = typer.Option("test", help="'test' (held out from synthesis with --part train), 'train' or 'all'."),
    limit: Optional[int] = typer.Option(100, help="At most this many samples."),
    test_share: float = typer.Option(0.1, help="Share of conversations in the 'test' part (as in synth run)."),
) -> None:
    """Write next-turn samples (context + real next user turn) for predict and eval."""
    from dialpref.data import Rejects
    from dialpref.proutt.run import select_samples
    from dialpref.proutt.synthesize import SynthConfig

    output.parent.mkdir(parents=True, exist_ok=True)
    rejects = Rejects(output.with_suffix(".rejects.jsonl"))
    samples = select_samples(source, rejects, SynthConfig(), part=part, test_share=test_share, limit=limit)  # type: ignore[arg-type]
    rejects.close()
    output.write_text("".join(s.model_dump_json() + "\n" for s in samples), encoding="utf-8")
    console.print(f"{len(samples)} samples -> {output}")


@next_app.command("train", add_help_option=False,
                  context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_command(ctx: typer.Context, stage: str = typer.Argument("", help="sft or dpo")) -> None:
    """SFT or DPO with LoRA (TRL). Flags or --config run.yaml; `dialpref next train sft --help` lists them.

    Example: dialpref next train sft --data runs/synth --output_dir runs/next/sft, then
    dialpref next train dpo --data runs/synth --model runs/next/sft/merged --output_dir runs/next/dpo
    """
    from dialpref.next_utterance.config import parse_train_args

    argv = list(ctx.args)
    if stage not in ("sft", "dpo") or "--help" in argv or "-h" in argv:
        if stage not in ("", "--help", "-h", "sft", "dpo"):
            typer.echo(f"stage is 'sft' or 'dpo', not {stage!r}", err=True)
        _train_help(ctx)
        raise typer.Exit(0 if stage in ("", "--help", "-h", "sft", "dpo") else 2)
    run, args = parse_train_args(stage, argv)  # type: ignore[arg-type]
    from dialpref.next_utterance.train import train

    summary = train(stage, run, args)  # type: ignore[arg-type]
    console.print(f"{stage}: {summary['records']} records, {summary['steps']} steps, loss {summary['train_loss']}, "
                  f"{summary['seconds']} s -> {summary['merged'] or args.output_dir}")


def _train_help(ctx: typer.Context) -> None:
    """`next train --help` in the same form as every other command's help: dialpref's own flags, then the TRL
    flags whose default dialpref changes; every other SFTConfig / DPOConfig flag works as TRL documents it."""
    import dataclasses

    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    from dialpref.next_utterance.config import STAGE_DEFAULTS, TRAINING_DEFAULTS, NextRunConfig

    out = Console()
    out.print("\n [yellow]Usage:[/yellow] [bold]dialpref next train[/bold] [bold]sft|dpo[/bold] [OPTIONS]\n")
    out.print(" " + escape(inspect.cleandoc(train_command.__doc__ or "")).replace("\n", "\n "), highlight=False)
    table = Table(box=None, show_header=False, pad_edge=False, expand=True)
    for name in ("flag", "type", "help"):
        table.add_column(name, style="bold cyan" if name == "flag" else "yellow" if name == "type" else None,
                         no_wrap=name != "help")
    for f in dataclasses.fields(NextRunConfig):
        kind = str(f.type).replace("Optional[", "").rstrip("]")
        default = "required" if f.default is dataclasses.MISSING else f"default: {f.default}"
        flag = f"--{f.name}" + (f" / --no_{f.name}" if kind == "bool" else "")
        table.add_row(flag, "" if kind == "bool" else f"<{kind}>", escape(f"{f.metadata.get('help', '')} [{default}]"))
    for name, value in {**TRAINING_DEFAULTS, **STAGE_DEFAULTS["sft"], **STAGE_DEFAULTS["dpo"]}.items():
        stages = [s for s in ("sft", "dpo") if name in STAGE_DEFAULTS[s]]
        note = f" ({stages[0]} only)" if len(stages) == 1 and name != "learning_rate" else ""
        shown = "sft 2e-4, dpo 5e-5" if name == "learning_rate" else value
        table.add_row(f"--{name}", "TRL", escape(f"TRL's flag, dialpref's default{note} [default: {shown}]"))
    table.add_row("--...", "TRL", "Any other flag of TRL's SFTConfig (sft) or DPOConfig (dpo), e.g. --bf16, --use_cpu, "
                  "--warmup_ratio, --max_steps: see TRL's documentation.")
    table.add_row("--config", "<path>", "A YAML file of these settings (flags given beside it win).")
    table.add_row("--help", "", "Show this message and exit.")
    out.print(Panel(table, title="Options", title_align="left", border_style="dim", box=box.ROUNDED))


@next_app.command("predict")
def predict_command(
    samples: Optional[Path] = typer.Option(None, help="Samples JSONL from `next samples` (or NextTurnSample rows)."),
    conversation: Optional[Path] = typer.Option(None, help="One conversation: a JSON list of {role, content}; "
                                                           "its next user turn is predicted."),
    model: str = typer.Option(DEFAULT_CAUSAL_LM, help="A trained run's merged/ folder, a packaged model or an HF name."),
    style: str = typer.Option("proutt", help=STYLE_HELP),
    output: Path = typer.Option(Path("runs/next/predictions.jsonl"), "--output", "-o", help="Predictions JSONL."),
    history_chars: int = typer.Option(1200, help="History budget in characters (use the training value)."),
    max_new_tokens: int = typer.Option(256, help="Generation cap for a trace when --think-budget is 0 (a simulator "
                                                  "turn: at most 64)."),
    think_budget: int = typer.Option(160, help="Budget forcing: a trace with no prediction after this many tokens is "
                                               "closed with </think>, given <predict> and continued for "
                                               "--answer-tokens (0: off)."),
    answer_tokens: int = typer.Option(128, help="Tokens generated after a forced <predict>."),
    batch_size: int = typer.Option(16, help="Sequences generated together."),
    temperature: float = typer.Option(0.7, help="Sampling temperature."),
    seed: int = typer.Option(0, help="Sampling seed."),
) -> None:
    """Predict the next user turn: the think block and four predictions, parsed. A generation with no
    prediction is reported (error column, format-failure count), never fatal."""
    from rich.table import Table

    from dialpref.next_utterance.predict import GenerationSettings, NextUtterancePredictor

    if (samples is None) == (conversation is None):
        console.print("[red]give exactly one of --samples or --conversation[/red]")
        raise typer.Exit(2)
    from dialpref.next_utterance.records import STYLES

    if style not in STYLES:
        console.print(f"[red]--style: {STYLE_HELP}[/red]")
        raise typer.Exit(2)
    contexts, ids = _contexts(samples, conversation)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, simulator_max_new_tokens=min(64, max_new_tokens),
                                  batch_size=batch_size, temperature=temperature, seed=seed,
                                  history_chars=history_chars, think_budget=think_budget or None,
                                  answer_tokens=answer_tokens)
    predictor = NextUtterancePredictor(model, style=style, settings=settings)  # type: ignore[arg-type]
    with _progress() as bar:
        task = bar.add_task("predicting", total=len(contexts))
        results = predictor.predict(contexts, ids, progress=lambda done, _: bar.update(task, completed=done))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in results), encoding="utf-8")
    failures = sum(p.failed for p in results)
    table = Table("sample", "predictions", "error")
    for p in results[:5]:
        table.add_row(p.sample_id, "\n".join(p.predictions) or "-", p.error or "")
    _out().print(table)
    forced = sum(p.budget_forced for p in results)
    console.print(f"{len(results)} predicted, {forced} budget-forced, {failures} format failures -> {output}")


def _contexts(samples: Optional[Path], conversation: Optional[Path]) -> tuple[list[list[dict]], list[str]]:
    """The conversations to predict for, and their ids: every sample of a file, or one conversation."""
    if conversation is None:
        from dialpref.next_utterance.evaluate import read_samples

        rows = read_samples(samples)  # type: ignore[arg-type]
        return [s.model_dump()["context"] for s in rows], [s.id for s in rows]
    try:
        context = list(json.loads(conversation.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as err:
        console.print(f"[red]{conversation}: expected a JSON list of {{role, content}} messages ({err})[/red]")
        raise typer.Exit(2)
    bad = [i for i, m in enumerate(context) if not (isinstance(m, dict) and {"role", "content"} <= set(m))]
    if bad:
        console.print(f"[red]{conversation}: message {bad[0]} is not a {{role, content}} object; expected a "
                      "JSON list of such messages[/red]")
        raise typer.Exit(2)
    return [context], [conversation.stem]


@next_app.command("eval")
def eval_command(
    samples: Path = typer.Option(..., help="Samples JSONL (the real next turns)."),
    predictions: Path = typer.Option(..., help="Predictions JSONL of the system to score."),
    against: Optional[Path] = typer.Option(None, help="A second system's predictions: pairwise win / tie / loss."),
    metrics: str = typer.Option("judge,embed", help="Any of judge, embed, pairwise (pairwise needs --against)."),
    judge: str = typer.Option(CHAT_MODEL, help="Judge: a packaged model, a .gguf or a server URL "
                                                   "($OPENAI_API_KEY)."),
    server_model: str = typer.Option("default", help="Model name to send to a server judge."),
    human: Optional[Path] = typer.Option(None, help="The CSV `next annotate` writes: the judge against the people's "
                                                   "majority, Cohen's kappa, leave-one-out between annotators."),
    embedder: Optional[str] = typer.Option(None, help="Sentence embedding model (default packaged MiniLM)."),
    output: Path = typer.Option(Path("runs/next/eval.json"), "--output", "-o", help="Report JSON (+ per-sample "
                                                                                    "rows beside it)."),
    cache: Path = typer.Option(Path(".dialpref/judge-cache.sqlite"), help="Judge call cache."),
    lenient: bool = typer.Option(False, help="Score format failures by their first four lines instead of 0 (a "
                                             "looser reading to report beside the rule, not instead of it)."),
) -> None:
    """Score predictions against the real next turns: judge (0-1 rubric, best of four), embedding
    similarity (best of four), pairwise against another system (both orders; flips count as ties)."""
    from dialpref.evaluate import next_utterance as figures
    from dialpref.next_utterance import evaluate as ev
    from dialpref.next_utterance.annotate import read_answers
    from dialpref.teachers.factory import make_teacher

    wanted = {m.strip() for m in metrics.split(",") if m.strip()}
    if not wanted <= {"judge", "embed", "pairwise"} or ("pairwise" in wanted and against is None):
        console.print("[red]--metrics: judge, embed, pairwise; pairwise needs --against[/red]")
        raise typer.Exit(2)
    if human is not None and "pairwise" not in wanted:
        console.print("[red]--human compares pairwise verdicts: add pairwise to --metrics (and --against)[/red]")
        raise typer.Exit(2)
    rows = ev.read_samples(samples)
    preds = ev.read_predictions(predictions)
    teacher = (make_teacher(judge, server_model=server_model, cache_path=cache)
               if wanted & {"judge", "pairwise"} else None)
    report: dict = {"samples": len(rows), "predictions": str(predictions), "judge": judge if teacher else None,
                    "rule": "lenient" if lenient else "format failure scores 0"}
    with _progress() as bar:
        if wanted & {"judge", "embed"}:
            task = bar.add_task("scoring", total=len(rows))
            scored = ev.score_predictions(rows, preds, judge=teacher if "judge" in wanted else None,
                                          embedder=ev.EmbeddingSimilarity(embedder) if "embed" in wanted else None,
                                          lenient=lenient,
                                          progress=lambda d, _: bar.update(task, completed=d))
            report["scores"] = figures.summarise_scores(scored)
            output.parent.mkdir(parents=True, exist_ok=True)
            output.with_suffix(".scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored))
        if "pairwise" in wanted:
            task = bar.add_task("pairwise", total=len(rows))
            pairs = ev.pairwise_compare(rows, preds, ev.read_predictions(against), teacher,  # type: ignore[arg-type]
                                        progress=lambda d, _: bar.update(task, completed=d))
            report["pairwise"] = {"against": str(against), **figures.summarise_pairwise(pairs)}
            output.parent.mkdir(parents=True, exist_ok=True)
            output.with_suffix(".pairwise.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
            if human is not None:
                report["human_agreement"] = figures.human_report({r["sample_id"]: r["verdict"] for r in pairs},
                                                                 read_answers(human))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    _out().print_json(json.dumps(report))


SHARED_SHAREGPT = Path("../shared/data/sharegpt/sharegpt_v3_4k.jsonl.gz")


@next_app.command("annotate")
def annotate_command(
    samples: Path = typer.Option(..., help="Samples JSONL (the conversations and their real next turns)."),
    a: Path = typer.Option(..., "--a", help="System A's predictions JSONL."),
    b: Path = typer.Option(..., "--b", help="System B's predictions JSONL."),
    output: Path = typer.Option(Path("runs/next/human.csv"), "--output", "-o",
                                help="Answers CSV: sample_id, annotator, shown_order, verdict, timestamp. A restart "
                                     "resumes from it; give it to `next eval --human`."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8765, help="Port (0: any free one)."),
    seed: int = typer.Option(0, help="Seed of the left / right order drawn per sample and annotator."),
) -> None:
    """A local web page for people to say which of two systems predicted the next user turn better.

    Each annotator types a name, then sees the conversation, the real next turn and both systems'
    predictions, blind and in a random left / right order (recorded); buttons or keys a / b / t / x
    answer A, B, tie or both bad. Every answer is written at once, so stopping loses nothing.
    """
    from dialpref.next_utterance.annotate import AnnotationStore
    from dialpref.next_utterance.annotate_app import run

    store = AnnotationStore.open(samples, a, b, output, seed)
    answered = sum(len(v) for v in store.done.values())
    run(store, host, port, on_ready=lambda url: console.print(
        f"annotate {len(store.samples)} samples at {url}  ({answered} answers already in {output}; Ctrl-C stops)"))


@next_app.command("quickstart")
def quickstart_command(
    source: str = typer.Option("auto", help="Chats: 'auto' (ShareGPT from ../shared/data when present, else the "
                                            "chitchat-dataset package) or a file."),
    samples: int = typer.Option(4, help="Conversations to synthesize training records from (~35 s each)."),
    held_out: int = typer.Option(3, help="Held-out conversations to predict."),
    output: Path = typer.Option(Path("runs/next-quickstart"), "--output", "-o", help="Run folder (resumes)."),
) -> None:
    """The whole next-utterance path in minutes on embedded defaults: synthesize a few real chats with the
    packaged SmolLM2 teacher, SFT then DPO SmolLM2-135M with LoRA, predict held-out conversations."""
    from rich.table import Table
    from dialpref.data import Rejects
    from dialpref.next_utterance.config import NextRunConfig, training_args
    from dialpref.next_utterance.predict import GenerationSettings, NextUtterancePredictor
    from dialpref.next_utterance.train import train
    from dialpref.proutt.run import select_samples, synth_run
    from dialpref.proutt.synthesize import SynthConfig
    from dialpref.teachers.factory import make_teacher

    if source == "auto":
        source = str(SHARED_SHAREGPT) if SHARED_SHAREGPT.exists() else "chitchat"
    console.print(f"1/4 synthesizing {samples} training samples from {source} (packaged SmolLM2 teacher)")
    teacher = make_teacher(CHAT_MODEL, cache_path=output / "teacher-cache.sqlite")
    # The packaged 135M teacher fails the degenerate-sample checks on nearly every sample
    # (benchmarks/results/proutt_checks.json): the quick start shows the path with them off and says so.
    console.print("   (degenerate-sample checks off: the 135M teacher's samples would not pass them; "
                  "`dialpref synth run` keeps them on)")
    summary = synth_run(source, output / "synth", teacher, SynthConfig(checks=False), part="train", limit=samples)
    if not summary["samples"]:
        console.print(f"[red]no sample survived synthesis; see {output / 'synth' / 'rejects.jsonl'}[/red]")
        raise typer.Exit(1)
    data = dict(data=str(output / "synth"), history_chars=800)
    trl = dict(num_train_epochs=1.0, gradient_accumulation_steps=2, max_length=768)
    console.print(f"2/4 SFT on {summary['samples']} records")
    train("sft", NextRunConfig(**data), training_args("sft", output_dir=str(output / "sft"), **trl))
    console.print("3/4 DPO from the SFT model")
    train("dpo", NextRunConfig(model=str(output / "sft" / "merged"), **data),
          training_args("dpo", output_dir=str(output / "dpo"), **trl))
    rejects = Rejects(output / "held_out_rejects.jsonl")
    tests = select_samples(source, rejects, SynthConfig(), part="test", limit=held_out)
    rejects.close()
    console.print(f"4/4 predicting {len(tests)} held-out conversations")
    predictor = NextUtterancePredictor(str(output / "dpo" / "merged"),
                                       settings=GenerationSettings(history_chars=800, batch_size=8))
    results = predictor.predict([s.model_dump()["context"] for s in tests], [s.id for s in tests])
    (output / "predictions.jsonl").write_text("".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n"
                                                      for p in results), encoding="utf-8")
    table = Table("sample", "real next turn", "predictions", "error")
    for sample, p in zip(tests, results):
        table.add_row(sample.id, sample.target[:120], "\n".join(x[:100] for x in p.predictions) or "-", p.error or "")
    _out().print(table)
    console.print(f"done: models in {output}/sft/merged and {output}/dpo/merged (Hugging Face format), "
                  f"predictions in {output}/predictions.jsonl. Score them with `dialpref next eval`.")
