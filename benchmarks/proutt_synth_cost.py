"""What a ProUtt sample costs to synthesize, stage by stage, with the packaged teacher.

Runs `synth_run` over the first N ShareGPT samples (last user turn of each
conversation, the 'train' part so the held-out conversations stay unseen) on a
fresh teacher cache, then reports prompt / completion tokens and seconds per
stage, the share of samples per tau band, and JSON validity before and after
retries. The shared-prefix saving is measured twice: in tokens (prompt tokens
sent against those llama.cpp actually evaluated after reusing the KV state of
the previous stage's prompt), and in seconds, by running the first
`--prefix-check` samples again with prefix reuse switched off (fresh cache).

    python benchmarks/proutt_synth_cost.py --samples 30
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, write_result  # noqa: E402

from dialpref.proutt.run import synth_run  # noqa: E402
from dialpref.proutt.synthesize import SynthConfig  # noqa: E402
from dialpref.teachers.cache import CachedTeacher, TeacherCache  # noqa: E402
from dialpref.teachers.llamacpp import LlamaCppTeacher  # noqa: E402

REFERENCE = {"prompt_tokens": 5783, "completion_tokens": 7502, "total_tokens": 13285,
             "note": "ProUtt release, GLM-4.6, per sample (usage field of synthesized_raw_LMSYS.jsonl)"}


def run(teacher_name: str, samples: int, work: Path, *, reuse_prefix: bool) -> tuple[dict, float]:
    shutil.rmtree(work, ignore_errors=True)
    llm = LlamaCppTeacher(teacher_name, n_ctx=4096)
    llm.reuse_prefix = reuse_prefix
    teacher = CachedTeacher(llm, TeacherCache(work / "cache.sqlite"))
    started = time.perf_counter()
    # checks off: this measures the stages' cost as committed; proutt_checks.py measures the checks
    summary = synth_run(str(SHARED_DATA / "sharegpt" / "sharegpt_v3_4k.jsonl.gz"), work / "run", teacher,
                        SynthConfig(checks=False), part="train", limit=samples,
                        progress=lambda done, total, _: print(f"  {done}/{total}", flush=True))
    return summary, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--prefix-check", type=int, default=5, help="Samples rerun without prefix reuse.")
    parser.add_argument("--teacher", default="smollm2-135m")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.cache/proutt_synth_cost"))
    args = parser.parse_args()

    summary, wall = run(args.teacher, args.samples, args.work / "reuse", reuse_prefix=True)
    stages = summary["per_sample_by_stage"]
    sent, evaluated = summary["prompt_tokens_per_sample"], summary["evaluated_prompt_tokens_per_sample"]
    result = {
        "teacher": args.teacher, "samples": summary["samples"], "samples_selected": summary["samples_selected"],
        "rejected_samples": summary["rejected_samples"], "stage_failures": summary["stage_failures"],
        "stages": {name: {k: s[k] for k in ("prompt_tokens", "evaluated_prompt_tokens", "completion_tokens",
                                            "seconds", "calls", "attempts_per_call")} for name, s in stages.items()},
        "prompt_tokens_per_sample": sent, "completion_tokens_per_sample": summary["completion_tokens_per_sample"],
        "tokens_per_sample": summary["tokens_per_sample"], "evaluated_prompt_tokens_per_sample": evaluated,
        "seconds_per_sample": summary["seconds_per_sample"], "tau_bands": summary["tau_bands"],
        "band_counts": summary["band_counts"], "json_valid_first_try": summary["json_valid_first_try"],
        "json_valid_after_retry": summary["json_valid_after_retry"], "wall_seconds": round(wall, 1),
        "reference": REFERENCE,
        "tokens_vs_reference": round(summary["tokens_per_sample"] / REFERENCE["total_tokens"], 3),
    }
    shared = {"prompt_tokens_sent": sent, "prompt_tokens_evaluated": evaluated,
              "evaluated_share": round(evaluated / sent, 3) if sent else None}
    if args.prefix_check:
        kept = [r for r in _rows(args.work / "reuse" / "run")][: args.prefix_check]
        ids = {r["id"] for r in kept}
        fresh, _ = run(args.teacher, args.prefix_check, args.work / "fresh", reuse_prefix=False)
        fresh_rows = [r for r in _rows(args.work / "fresh" / "run") if r["id"] in ids]
        same = ids & {r["id"] for r in fresh_rows}
        with_reuse = sum(r["usage"]["seconds"] for r in kept if r["id"] in same)
        without = sum(r["usage"]["seconds"] for r in fresh_rows if r["id"] in same)
        shared.update({"timing_samples": len(same), "seconds_with_reuse": round(with_reuse, 1),
                       "seconds_without_reuse": round(without, 1),
                       "speedup": round(without / with_reuse, 3) if with_reuse else None,
                       "note": "the same samples, same prompts and answers, prefix reuse on vs off, in one run"})
        del fresh
    result["shared_prefix"] = shared
    path = write_result("proutt_synth_cost", result)
    print(f"wrote {path}")


def _rows(run_dir: Path):
    from dialpref.rows import read_rows_lenient

    return read_rows_lenient(run_dir / "synth.jsonl")


if __name__ == "__main__":
    main()
