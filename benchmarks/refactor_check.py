"""Do the benchmarks give the same figures after a restructuring? (issue 21)

Runs each benchmark, on a small slice where the full run takes hours, in two clean checkouts (git
worktrees): `--before` (a commit before the change) and `--after` (default HEAD), each importing its own
`src/`. The two share one teacher cache, so the after run is answered by the teacher calls the before run
paid for: a prompt the change altered shows up as computed calls, a figure that moved as a difference.
Figures are compared after dropping what a rerun may change (times, speeds, the machine, the command).

Writes benchmarks/results/refactor_check.json: per benchmark, the command, whether the figures match,
and the first differing keys with both values. Resumable: a benchmark already compared is kept.

    nice -n 10 python benchmarks/refactor_check.py --before ccf1db6 > /work/logs/check.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORK_ROOT = Path("/tmp/dialpref-refactor-check")
WORK = WORK_ROOT
# benchmark -> (arguments, result files it writes)
SLICES: dict[str, tuple[list[str], list[str]]] = {
    "table1_real": (["table1.py", "--dataset", "dailydialog_acts", "--seeds", "0", "--fractions", "5",
                     "--pretrain-epochs", "0.25"], ["table1_dailydialog_acts"]),
    "table1_simulated": (["table1.py", "--dataset", "meld_sentiment", "--teacher", "simulated", "--levels", "low",
                          "--seeds", "0", "--fractions", "5", "--pretrain-epochs", "0.25"],
                         ["table1_meld_sentiment_simulated"]),
    "labeling_quality": (["labeling_quality.py", "--dd", "3", "--meld", "2", "--check-dialogues", "1", "--configs",
                          "votes=smollm2-135m:choice_names@v1:unlabelled", "causal=gemma3-270m:causal@v1:unlabelled"],
                         ["labeling_quality"]),
    "teacher_scores": (["teacher_scores.py", "--pool", "3", "--dd-test", "2", "--meld-test", "2"], ["teacher_scores"]),
    "labeling_cost": (["labeling_cost.py", "--dialogues", "2", "--vote-dialogues", "1", "--votes", "4", "--configs",
                       "smollm2-135m:choice_names@v1"], ["labeling_cost"]),
    "generate_fidelity": (["generate_fidelity.py", "--teachers", "smollm2-135m", "--datasets", "dailydialog_acts",
                           "--dialogues", "1", "--questions", "3", "--samples", "4"], ["generate_fidelity"]),
    "teacher_search": (["teacher_search.py", "--dialogues", "2", "--models", "smollm2-135m"], ["teacher_search"]),
    "fault_suite": (["fault_suite.py"], ["fault_suite"]),
    "pairs_ablation": (["pairs_ablation.py"], ["pairs_ablation"]),
    "finetune_defaults": (["finetune_defaults.py", "--threads", "1"], ["finetune_defaults"]),
}
VOLATILE = ("second", "per_s", "machine", "command", "finished", "wall", "rss", "latency", "speed", "_ms",
            "from_cache", "computed", "plots", "png", "path", "cache")


def worktree(name: str, commit: str) -> Path:
    """A clean checkout of `commit` (made once, moved to `commit` on later runs), whose benchmarks share one
    teacher cache folder and see ../shared as the repository does."""
    tree = WORK / name
    if not tree.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True)
        (WORK / "cache").mkdir(exist_ok=True)
        (tree / "benchmarks" / ".cache").symlink_to(WORK / "cache", target_is_directory=True)
    subprocess.run(["git", "-C", str(tree), "checkout", "-q", "--detach", commit], check=True)
    if not (WORK / "shared").exists():  # benchmarks find ../shared beside the checkout
        (WORK / "shared").symlink_to(REPO.parent / "shared", target_is_directory=True)
    return tree


def restore_data(tree: Path) -> None:
    """Put back the committed teacher scores a sliced teacher_scores.py run overwrote (table1 reads them)."""
    subprocess.run(["git", "-C", str(tree), "checkout", "-q", "--", "benchmarks/data"], check=True)


def run_in(tree: Path, args: list[str], log: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    with log.open("w") as out:
        return subprocess.run([sys.executable, f"benchmarks/{args[0]}", *args[1:]], cwd=tree, env=env, stdout=out,
                              stderr=subprocess.STDOUT).returncode


def flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list) and value and all(isinstance(x, (dict, list)) for x in value):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


def kept(key: str) -> bool:
    return not any(word in key.lower() for word in VOLATILE)


def differences(before: dict, after: dict) -> tuple[list[dict], list[str]]:
    """Figures both runs state with different values, and the keys only one of them states (a field a
    change added is not a figure that moved)."""
    a, b = flatten(before), flatten(after)
    out = []
    for key in sorted(k for k in set(a) & set(b) if kept(k)):
        x, y = a[key], b[key]
        same = x == y or (isinstance(x, float) and isinstance(y, float) and math.isclose(x, y, rel_tol=1e-9,
                                                                                         abs_tol=1e-12))
        if not same:
            out.append({"key": key, "before": x, "after": y})
    only = sorted(f"{'after' if k in b else 'before'} only: {k}" for k in set(a) ^ set(b) if kept(k))
    return out, only


def check(name: str, before: Path, after: Path) -> dict:
    args, files = SLICES[name]
    started = time.perf_counter()
    for tree in (before, after):  # a committed result would make a resumable benchmark skip its work
        for file in files:
            (tree / "benchmarks" / "results" / f"{file}.json").unlink(missing_ok=True)
    codes = {side: run_in(tree, args, WORK / f"{name}.{side}.log") for side, tree in (("before", before),
                                                                                       ("after", after))}
    for tree in (before, after):
        restore_data(tree)
    diffs: list[dict] = []
    one_sided: list[str] = []
    for file in files:
        paths = [tree / "benchmarks" / "results" / f"{file}.json" for tree in (before, after)]
        if not all(p.exists() for p in paths):
            diffs.append({"key": file, "before": paths[0].exists(), "after": paths[1].exists()})
            continue
        moved, only = differences(*(json.loads(p.read_text()) for p in paths))
        diffs += [{**d, "file": file} for d in moved]
        one_sided += only
    return {"command": "python benchmarks/" + " ".join(args), "exit_codes": codes, "same_figures": not diffs and
            set(codes.values()) == {0}, "differences": diffs[:20], "differing_keys": len(diffs),
            "keys_in_one_run_only": one_sided[:20], "seconds_both": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="a commit before the change")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--only", nargs="*", choices=list(SLICES), help="these benchmarks (default: all)")
    parser.add_argument("--name", default="refactor_check", help="result file (and work folder) name")
    args = parser.parse_args()
    global WORK
    WORK = WORK_ROOT if args.name == "refactor_check" else WORK_ROOT.with_name(WORK_ROOT.name + "-" + args.name)
    resolve = lambda rev: subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], capture_output=True, text=True,  # noqa: E731
                                         check=True).stdout.strip()  # in this checkout: a worktree has its own HEAD
    before, after = worktree("before", resolve(args.before)), worktree("after", resolve(args.after))
    out = RESULTS / f"{args.name}.json"
    results = json.loads(out.read_text()).get("benchmarks", {}) if out.exists() else {}
    commits = {side: subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                                    text=True).stdout.strip() for side, tree in (("before", before), ("after", after))}
    for name in args.only or list(SLICES):
        if name in results and results[name].get("commits") == commits:
            continue
        results[name] = {**check(name, before, after), "commits": commits}
        print(f"{time.strftime('%H:%M:%S')} {name}: same figures {results[name]['same_figures']} "
              f"({results[name]['differing_keys']} differing keys)", flush=True)
        write_result(args.name, {"before": commits["before"], "after": commits["after"], "benchmarks": results})


if __name__ == "__main__":
    main()
