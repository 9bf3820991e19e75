"""The README's quick start, measured as a user runs it (issue 18).

- chitchat: `dialpref quickstart` exactly as written, from a folder with no ../shared beside it (the
  chitchat-dataset package; no gold, so agreement with the teacher and its 95 % interval);
- dailydialog: `dialpref quickstart` where ../shared is present (DailyDialog acts, gold), once per seed:
  the student (teacher pairs + 10 % gold) against the same student on that gold alone, the teacher and the
  majority class, on the same held-out utterances. Seeds share the teacher cache, so only the first run of
  a source pays for the teacher; its wall time is the one reported.

    python benchmarks/quickstart.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, machine, write_result  # noqa: E402

WHO = ("student", "gold_only", "teacher", "majority_class")


def run_quickstart(cwd: Path, extra: list[str]) -> tuple[dict, float]:
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "dialpref.cli", "quickstart", *extra]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads((cwd / "runs" / "quickstart" / "summary.json").read_text()), wall


def spread(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 4), "std": round(statistics.pstdev(values), 4),
            "per_seed": values}


def source_entry(runs: list[tuple[dict, float]], seeds: list[int]) -> dict:
    first = runs[0][0]
    entry = {"wall_seconds": round(runs[0][1], 1), "wall_seconds_cached_reruns": [round(w, 1) for _, w in runs[1:]],
             "seeds": seeds, "eval_utterances": first["eval_utterances"], "train_utterances": first["train_utterances"],
             "gold_examples": first["gold_examples"],
             "teacher_seconds_per_label": spread([r["cost"]["teacher_seconds_per_label"] for r, _ in runs]),
             "student_ms_per_utterance": spread([r["cost"]["student_ms_per_utterance"] for r, _ in runs]),
             "cost_ratio": spread([r["cost"]["ratio"] for r, _ in runs])}
    if first["has_gold"]:
        for who in WHO:
            if first.get(who):
                entry[who] = {m: spread([r[who][m] for r, _ in runs]) for m in ("accuracy", "macro_f1")}
        gains = [r["student"]["accuracy"] - r["gold_only"]["accuracy"] for r, _ in runs]
        entry["student_minus_gold_only_accuracy"] = spread([round(g, 4) for g in gains])
    else:
        entry["student"] = {"agreement_with_teacher": [r["student_teacher_agreement"] for r, _ in runs]}
        entry["gold_only"] = entry["teacher"] = "no gold labels"
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sources", nargs="+", default=["chitchat", "dailydialog"])
    args = parser.parse_args()
    previous = RESULTS / "quickstart.json"  # a run of some sources keeps the others' figures
    kept = json.loads(previous.read_text()) if previous.exists() else {}
    payload: dict = {k: v for k, v in kept.items() if k not in ("command", "machine", "finished")}
    payload.setdefault("sources", {})
    with tempfile.TemporaryDirectory() as tmp:
        for source in args.sources:
            cwd = Path(tmp) / source / "clone"  # no ../shared beside it
            cwd.mkdir(parents=True)
            if source == "dailydialog":
                extra = ["--source", str(SHARED_DATA / "dailydialog" / "data.zip")]
                runs = [run_quickstart(cwd, [*extra, "--seed", str(s)]) for s in args.seeds]
                seeds = args.seeds
            else:
                runs, seeds = [run_quickstart(cwd, [])], [0]  # the default command, as written
            payload["sources"][source] = {
                "command": "dialpref quickstart " + " ".join(extra if source == "dailydialog" else []),
                "benchmark_command": "python " + " ".join(sys.argv), "machine": machine(),
                **source_entry(runs, seeds)}
            print(source, json.dumps(payload["sources"][source])[:1500], flush=True)
    write_result("quickstart", payload)


if __name__ == "__main__":
    main()
