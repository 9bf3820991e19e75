"""`dialpref synth run|view`: ProUtt preference data from chat logs, and a page to read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dialpref.cli._console import ACTORS_OPTION, CPUS_PER_ACTOR_OPTION, ENGINE_OPTION, RAY_ADDRESS_OPTION, _Progress, \
    _out, console
from dialpref.teachers.packaged import CHAT_MODEL

TEACHER_HELP = ("Teacher: a packaged model (smollm2-135m, gemma3-270m; qwen2.5-coder-1.5b opt-in), a .gguf path, "
                "an OpenAI-compatible server URL (key from $OPENAI_API_KEY), or several URLs joined by commas (a "
                "fleet serving one model).")
CHECKS_HELP = ("Reject degenerate samples with their reason: a tree copied from the prompt, placeholder predictions, "
               "the wrong language, a scorer that rates another user turn as high as the real one (docs/proutt.md).")
RETRY_HELP = "Try the samples an earlier run rejected again, asking the teacher afresh where its answer was invalid."

synth_app = typer.Typer(
    help="ProUtt synthesis: chat logs -> intent trees, category and mining / exploration reasoning, scored "
         "predictions, chosen / rejected traces -> SFT and DPO files (TRL's conversational forms).",
    no_args_is_help=True)


# what `synth run` prints of its summary.json
SUMMARY_KEYS = ("samples", "rejected_samples", "check_rejections", "synthesized_this_run", "skipped_short_conversations",
                "tokens_per_sample", "evaluated_prompt_tokens_per_sample", "seconds_per_sample", "tau_bands",
                "json_valid_first_try", "json_valid_after_retry", "files")


@synth_app.command("run")
def synth_run_command(
    source: str = typer.Argument(..., help="Chat logs: ShareGPT, LMSYS, OpenAI messages or CrossWOZ "
                                           "(.jsonl / .json / .gz / .zip), format detected from the content."),
    output: Path = typer.Option(Path("runs/synth"), "--output", "-o", help="Run folder (resumes if it exists)."),
    teacher: str = typer.Option(CHAT_MODEL, help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server teacher."),
    limit: Optional[int] = typer.Option(None, help="Synthesize at most this many samples."),
    format: Optional[str] = typer.Option(None, help="Input format, when detection is not enough."),
    mode: str = typer.Option("last", help="Targets: 'last' user turn of each conversation (the reference) or "
                                          "'all' user turns after the first round."),
    part: str = typer.Option("all", help="'train' / 'test': only conversations hashed to that split (ShareGPT parts "
                                         "of one conversation stay together), 'all' for every one."),
    test_share: float = typer.Option(0.1, help="Share of conversations in the 'test' part."),
    tau_high: float = typer.Option(0.8, help="top_sim at or above: the original reasoning is chosen."),
    tau_low: float = typer.Option(0.3, help="top_sim below: the revised reasoning is chosen over the original."),
    language: str = typer.Option("the language of the conversation",
                                 help="Language of the predictions, e.g. 'Chinese' for CrossWOZ."),
    history_chars: int = typer.Option(2000, help="History budget in characters (most recent rounds kept)."),
    retries: int = typer.Option(2, help="Retries per stage after an invalid answer (the error is sent back)."),
    temperature: float = typer.Option(0.3, help="Teacher sampling temperature."),
    seed: int = typer.Option(0, help="Seed for sampling and negatives."),
    concurrency: int = typer.Option(8, help="Samples in flight at once (server teachers only)."),
    llamafactory: bool = typer.Option(False, help="Also write dpo_llamafactory.json (ShareGPT preference form)."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (resumable runs)."),
    map: Optional[Path] = typer.Option(None, "--map", help="A data map (YAML) for chat logs of your own shape "
                                                           "(docs/data.md)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help=RETRY_HELP),
    checks: bool = typer.Option(True, help=CHECKS_HELP),
    engine: str = ENGINE_OPTION,
    ray_address: Optional[str] = RAY_ADDRESS_OPTION,
    actors: int = ACTORS_OPTION,
    cpus_per_actor: float = CPUS_PER_ACTOR_OPTION,
) -> None:
    """Synthesize preference-labelled intent reasoning (ProUtt) from chat logs.

    Writes synth.jsonl (every stage's output and provenance), sft.jsonl, dpo.jsonl, rejects.jsonl and
    summary.json to the run folder. Example: dialpref synth run ../shared/data/sharegpt/sharegpt_v3_4k.jsonl.gz
    --limit 20 -o runs/synth
    """
    from dialpref.proutt.samples import HistoryBudget
    from dialpref.proutt.synthesize import SynthConfig

    if mode not in ("last", "all") or part not in ("all", "train", "test") or engine not in ("local", "ray"):
        console.print("[red]--mode is 'last' or 'all'; --part is 'all', 'train' or 'test'; --engine is 'local' "
                      "or 'ray'[/red]")
        raise typer.Exit(2)
    settings = dict(mode=mode, history=HistoryBudget(max_chars=history_chars), retries=retries, checks=checks,
                    temperature=temperature, seed=seed, tau_high=tau_high, tau_low=tau_low, language=language)
    config, llm = _config_and_teacher(SynthConfig, settings, teacher, server_model=server_model, cache_path=cache,
                                      concurrency=concurrency, n_ctx=4096, retry_failed=retry_failed)
    runner = None if engine == "local" else _ray_engine(
        config, dict(spec=teacher, server_model=server_model, cache_path=str(cache), n_ctx=4096,
                     retry_failed=retry_failed, threads=max(1, int(cpus_per_actor))),
        dict(address=ray_address, actors=actors, cpus_per_actor=cpus_per_actor))
    summary = _synthesize(source, output, llm, config, retry_failed=retry_failed, mapping=map, format=format,
                          part=part, test_share=test_share, limit=limit, concurrency=concurrency,
                          llamafactory=llamafactory, engine=runner)
    _out().print_json(json.dumps({k: summary.get(k) for k in SUMMARY_KEYS}))


@synth_app.command("view")
def synth_view_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `dialpref synth run`."),
    output: Optional[Path] = typer.Option(None, help="HTML file (default: <run_dir>/view.html)."),
    limit: Optional[int] = typer.Option(None, help="Show at most this many samples."),
) -> None:
    """One HTML page for a run: per sample the history, the intent tree as a tree, both views with
    their scored predictions, and chosen beside rejected."""
    from dialpref.proutt.view import write_view

    try:
        path = write_view(run_dir, output, limit=limit)
    except FileNotFoundError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from None
    console.print(f"wrote {path}")


def _ray_engine(config, teacher: dict, options: dict):
    """The Ray engine for `synth_run` (--engine ray), or a one-line error when Ray is missing."""
    try:
        from dialpref.scale.cluster import RayOptions, TeacherSpec
        from dialpref.scale.ray_synth import ray_engine
    except ImportError as err:
        console.print(f"[red]--engine ray needs Ray: pip install 'dialpref[scale]' ({err})[/red]")
        raise typer.Exit(1) from None
    return ray_engine(TeacherSpec(**teacher), config, RayOptions(**options))


def _config_and_teacher(config_class, settings: dict, teacher: str, **options):
    """The synthesis config and the teacher, or a one-line error (exit 1) for settings that cannot work."""
    from dialpref.teachers.factory import make_teacher

    try:
        return config_class(**settings), make_teacher(teacher, **options)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from None


def _synthesize(source, output, llm, config, **options) -> dict:
    """`synth_run` under a progress bar that also counts the tokens spent."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from dialpref.proutt.run import synth_run

    columns = (TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[tokens]} tokens"))
    with _Progress(*columns, console=console) as bar:
        task = bar.add_task("synth", total=None, tokens=0)

        def progress(done: int, total: int, totals: dict) -> None:
            bar.update(task, completed=done, total=total,
                       tokens=totals.get("prompt_tokens", 0) + totals.get("completion_tokens", 0))

        return synth_run(source, output, llm, config, progress=progress, **options)

