"""How much of a small teacher's synthesis the degenerate-sample checks reject (issue 26, item 4).

For each packaged teacher and each source (CrossWOZ chats with `--language Chinese`, ShareGPT chats in the
conversation's language), the same N samples through `synth run` with the checks on: the share of samples
kept, rejected by each check (`proutt.checks`), and failed at a stage, plus seconds per sample. Each
(teacher, source) run is a resumable synthesis folder under benchmarks/.cache/proutt_checks/ with its own
teacher cache, so a killed run continues and a rerun costs nothing.

    nice -n 10 python benchmarks/proutt_checks.py --samples 8 > /work/logs/checks.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, write_result  # noqa: E402

from dialpref.proutt.checks import CHECKS  # noqa: E402
from dialpref.proutt.run import synth_run  # noqa: E402
from dialpref.proutt.synthesize import SynthConfig  # noqa: E402
from dialpref.rows import read_rows_lenient  # noqa: E402
from dialpref.teachers.factory import make_teacher  # noqa: E402

WORK = Path(__file__).resolve().parent / ".cache" / "proutt_checks"
SOURCES = {"crosswoz_chinese": ("crosswoz/val.json.zip", "Chinese"),
           "sharegpt": ("sharegpt/sharegpt_v3_4k.jsonl.gz", None)}


def one(teacher_name: str, source: str, samples: int) -> dict:
    path, language = SOURCES[source]
    out = WORK / teacher_name / source
    teacher = make_teacher(teacher_name, cache_path=out.parent / f"{source}.cache.sqlite", n_ctx=4096)
    config = SynthConfig(language=language) if language else SynthConfig()
    started = time.perf_counter()
    summary = synth_run(str(SHARED_DATA / path), out, teacher, config, part="train", limit=samples)
    failed = [r for r in read_rows_lenient(out / "rejects.jsonl") if r.get("id")]
    n = summary["samples"] + len(failed)
    by_check = summary.get("check_rejections", {})
    return {"samples": n, "kept": summary["samples"],
            "kept_share": round(summary["samples"] / n, 3) if n else None,
            "rejected_by_check": {c: by_check.get(c, 0) for c in CHECKS},
            "rejected_share_by_check": {c: round(by_check.get(c, 0) / n, 3) if n else None for c in CHECKS},
            "stage_failures": summary.get("stage_failures", {}), "tau_bands_of_kept": summary.get("band_counts"),
            "seconds_per_sample": summary.get("seconds_per_sample"),
            "reject_reasons": [r["reason"][:160] for r in failed][:8],
            "wall_seconds_this_run": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="samples per teacher and source")
    parser.add_argument("--teachers", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    args = parser.parse_args()
    out = RESULTS / "proutt_checks.json"
    previous = json.loads(out.read_text()).get("runs", {}) if out.exists() else {}  # other teachers' runs kept
    result: dict = {"samples_per_run": args.samples, "checks": list(CHECKS), "runs": previous}
    for teacher in args.teachers:
        for source in args.sources:
            result["runs"].setdefault(teacher, {})[source] = one(teacher, source, args.samples)
            print(teacher, source, result["runs"][teacher][source]["rejected_by_check"], flush=True)
            write_result("proutt_checks", result)


if __name__ == "__main__":
    main()
