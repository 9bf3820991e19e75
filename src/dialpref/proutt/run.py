"""`dialpref synth run`: chat logs in, a run folder of synthesized samples and SFT / DPO files out.

The run folder holds `synth.jsonl` (one full record per sample, appended as each
finishes), `rejects.jsonl` (records the reader could not use, and samples that
failed a stage after its retries, with the stage and reason), `sft.jsonl`,
`dpo.jsonl` and `summary.json`. A rerun skips samples already in either file,
and the teacher cache answers every call that had completed, so an interrupted
run resumes without paying twice. `--retry-failed` tries failed samples again
(answers the cache marked invalid are asked afresh). One run at a time holds the
folder's lock; a second one stops with a message.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

from dialpref.data import Rejects, read_dialogues
from dialpref.files import atomic_write, atomic_write_text, output_lock
from dialpref.proutt.export import export_records
from dialpref.proutt.samples import NextTurnSample, SampleStats, iter_samples, split_of
from dialpref.proutt.checks import CheckFailed
from dialpref.proutt.stages import StageFailed
from dialpref.proutt.synthesize import SynthConfig, synthesize_sample
from dialpref.rows import read_rows_lenient
from dialpref.teachers.base import Teacher, TeacherError

Part = Literal["all", "train", "test"]
Progress = Callable[[int, int, dict[str, Any]], None]


def iter_selected(source: str, rejects: Rejects, config: SynthConfig, *, format: str | None = None,
                  part: Part = "all", test_share: float = 0.1, limit: int | None = None,
                  stats: SampleStats | None = None, mapping: Path | None = None) -> Iterator[NextTurnSample]:
    """The run's samples as the reader streams them (an engine takes them as they come)."""
    samples = iter_samples(read_dialogues(source, rejects, format=format, mapping=mapping), mode=config.mode,
                           max_negatives=config.max_negatives, seed=config.seed, stats=stats)
    if part != "all":
        samples = (s for s in samples if split_of(s, test_share=test_share) == part)
    return itertools.islice(samples, limit)


def select_samples(source: str, rejects: Rejects, config: SynthConfig, **options: Any) -> list[NextTurnSample]:
    return list(iter_selected(source, rejects, config, **options))


def _sample_failure(row: dict[str, Any]) -> bool:
    """A reject row written for a sample that failed (not a record the reader could not use)."""
    return str(row.get("reason", "")).startswith(("stage ", "check ", "teacher: ", "internal error"))


def _prepare(out_dir: Path, retry_failed: bool) -> tuple[set[str], set[str]]:
    """Ids already synthesized and ids that failed before (and stay failed unless retried); the rejects
    file keeps only those failures, so this run's reader rejects are written once, not once per run."""
    synth_path, rejects_path = out_dir / "synth.jsonl", out_dir / "rejects.jsonl"
    repair_tail(synth_path)
    done = {row["id"] for row in read_rows_lenient(synth_path) if isinstance(row, dict) and "id" in row}
    kept = [] if retry_failed else [r for r in read_rows_lenient(rejects_path) if _sample_failure(r)]
    with atomic_write(rejects_path) as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    return done, {str(r.get("id")) for r in kept if r.get("id")}


def repair_tail(path: Path) -> None:
    """Cut a last line a kill left half-written, so the next append starts on a line of its own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, 2)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        handle.truncate(data.rfind(b"\n") + 1)


def reject_reason(err: Exception) -> tuple[str, dict | None]:
    """A failed sample's reject: the reason (its first word says what failed) and the raw answers, if any."""
    if isinstance(err, CheckFailed):
        return f"check {err.check}: {err.reason}", None
    if isinstance(err, StageFailed):
        return f"stage {err.stage}: {err.reason}", {"stage": err.stage, "raw_outputs": err.record.raw_outputs,
                                                     "errors": err.record.errors}
    if isinstance(err, TeacherError):
        return f"teacher: {err}", None
    return f"internal error: {type(err).__name__}: {str(err)[:200]}", None


def synthesize_one(teacher: Teacher, sample: NextTurnSample,
                   config: SynthConfig) -> tuple[dict[str, Any] | None, tuple[str, dict | None] | None]:
    """One sample's record, or its reject (reason, raw answers): the record-to-record step every engine runs;
    one sample's failure is its reject, never the run's end."""
    try:
        return synthesize_sample(teacher, sample, config), None
    except Exception as err:  # noqa: BLE001
        return None, reject_reason(err)


Engine = Callable[[Iterable[NextTurnSample]], Iterator[tuple[NextTurnSample, "dict | None", "tuple | None"]]]


def synth_run(source: str, out_dir: Path, teacher: Teacher, config: SynthConfig = SynthConfig(), *,
              retry_failed: bool = False, mapping: Path | None = None,
              format: str | None = None, part: Part = "all", test_share: float = 0.1, limit: int | None = None,
              concurrency: int = 1, llamafactory: bool = False, progress: Progress | None = None,
              engine: Engine | None = None) -> dict[str, Any]:
    """`engine`: run the samples' synthesis elsewhere (None: here, in a loop or a thread pool); the files,
    resume and summary are the same either way."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with output_lock(out_dir):
        return _synth_locked(source, out_dir, teacher, config, retry_failed=retry_failed, mapping=mapping,
                             format=format, part=part,
                             test_share=test_share, limit=limit, concurrency=concurrency,
                             llamafactory=llamafactory, progress=progress, engine=engine)


def _synth_locked(source: str, out_dir: Path, teacher: Teacher, config: SynthConfig, *, retry_failed: bool,
                  mapping: Path | None, format: str | None, part: Part, test_share: float, limit: int | None,
                  concurrency: int, llamafactory: bool, progress: Progress | None,
                  engine: Engine | None = None) -> dict[str, Any]:
    synth_path = out_dir / "synth.jsonl"
    rejects_path = out_dir / "rejects.jsonl"
    done, failed_before = _prepare(out_dir, retry_failed)
    rejects = Rejects(rejects_path)
    stats = SampleStats()
    started = time.perf_counter()
    samples = iter_selected(source, rejects, config, format=format, part=part, test_share=test_share, limit=limit,
                            stats=stats, mapping=mapping)
    selected = [0]

    def todo_of(stream):
        for sample in stream:
            selected[0] += 1
            if sample.id not in done and sample.id not in failed_before:
                yield sample

    # the local path lists its samples (the progress bar knows its total); an engine takes them streamed
    todo = todo_of(samples) if engine is not None else list(todo_of(samples))
    lock = threading.Lock()
    totals: Counter[str] = Counter()
    finished = 0

    def record(sample: NextTurnSample, row: dict | None, reject: tuple[str, dict | None] | None) -> None:
        nonlocal finished
        with lock:
            if reject is not None:
                rejects.add(source=source, line=None, record_id=sample.id, reason=reject[0], raw=reject[1])
            else:
                with synth_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                for key in ("prompt_tokens", "completion_tokens"):
                    totals[key] += row["usage"][key]
            finished += 1
            if progress is not None:
                progress(finished, None if engine is not None else len(todo), dict(totals))

    _execute(todo, teacher, config, concurrency, engine, record)
    rejects.close()

    rows = read_rows_lenient(synth_path)
    paths = export_records(rows, out_dir, llamafactory=llamafactory)
    summary = summarise(rows, read_rows_lenient(rejects_path))
    summary.update({"source": source, "samples_selected": selected[0], "synthesized_this_run": finished,
                    "skipped_short_conversations": stats.skipped_short, "skipped_no_user_turn": stats.skipped_no_user,
                    "wall_seconds_this_run": round(time.perf_counter() - started, 1), "files": paths,
                    "teacher": teacher.identity(), "config": config.to_dict()})
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def _execute(todo, teacher: Teacher, config: SynthConfig, concurrency: int, engine: Engine | None, record) -> None:
    """Each sample through `synthesize_one`: on an engine (its results come back here), in a thread pool (a
    server teacher), or in a loop; `record` writes each result as it comes."""
    if engine is not None:
        for sample, row, reject in engine(todo):
            record(sample, row, reject)
    elif concurrency > 1 and getattr(teacher, "backend", "") == "openai":
        with ThreadPoolExecutor(concurrency) as pool:
            futures = {pool.submit(synthesize_one, teacher, s, config): s for s in todo}
            for future in as_completed(futures):
                record(futures[future], *future.result())
    else:
        for sample in todo:
            record(sample, *synthesize_one(teacher, sample, config))


def summarise(rows: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens and seconds by stage, tau bands and JSON validity over a run's records."""
    stages: dict[str, Counter] = {}
    first_try = Counter()
    for row in rows:
        for name, record in row["stages"].items():
            bucket = stages.setdefault(name, Counter())
            bucket["calls"] += 1
            for key in ("prompt_tokens", "completion_tokens", "evaluated_prompt_tokens", "attempts"):
                bucket[key] += record[key]
            bucket["seconds"] += record["seconds"]
            first_try[record["valid_first_try"]] += 1
    stage_failures = Counter(r["reason"].split(":")[0] for r in rejected if r.get("reason", "").startswith("stage "))
    check_rejects = Counter(r["reason"].split(":")[0].removeprefix("check ") for r in rejected
                            if r.get("reason", "").startswith("check "))
    n = max(len(rows), 1)
    bands = Counter(row["band"] for row in rows)
    per_stage = {name: {"calls": c["calls"], "prompt_tokens": round(c["prompt_tokens"] / n, 1),
                        "evaluated_prompt_tokens": round(c["evaluated_prompt_tokens"] / n, 1),
                        "completion_tokens": round(c["completion_tokens"] / n, 1),
                        "seconds": round(c["seconds"] / n, 2), "attempts_per_call": round(c["attempts"] / c["calls"], 2)}
                 for name, c in stages.items()}
    prompt = sum(r["usage"]["prompt_tokens"] for r in rows) / n
    completion = sum(r["usage"]["completion_tokens"] for r in rows) / n
    evaluated = sum(r["usage"]["evaluated_prompt_tokens"] for r in rows) / n
    calls = sum(first_try.values())
    failed = sum(stage_failures.values())
    return {
        "samples": len(rows), "rejected_samples": failed,
        "stage_failures": dict(stage_failures),
        "check_rejections": dict(check_rejects),
        "per_sample_by_stage": per_stage,
        "prompt_tokens_per_sample": round(prompt, 1), "completion_tokens_per_sample": round(completion, 1),
        "tokens_per_sample": round(prompt + completion, 1),
        "evaluated_prompt_tokens_per_sample": round(evaluated, 1),
        "seconds_per_sample": round(sum(r["usage"]["seconds"] for r in rows) / n, 2),
        "tau_bands": {b: round(bands[b] / n, 3) for b in ("high", "mid", "low")},
        "band_counts": {b: bands[b] for b in ("high", "mid", "low")},
        # Over the stage calls of kept samples, plus the one failing stage of each rejected sample.
        "json_valid_first_try": round(first_try[True] / (calls + failed), 3) if calls + failed else None,
        "json_valid_after_retry": round(calls / (calls + failed), 3) if calls + failed else None,
        "stage_calls": calls,
    }
