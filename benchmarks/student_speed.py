"""Student serving speed and training speed on this CPU.

1. A student fine-tuned on all of the pool's gold labels (DailyDialog acts, the 200 training dialogues of
   Table 1; also reported as the pool-sized gold ceiling), exported to ONNX fp32 and int8 (dynamic
   quantisation of the weights). The trained student is kept in benchmarks/.cache/ for reruns.
2. Every candidate runtime of `_runtimes.py` side by side in this one run (torch fp32, today's ONNX fp32 and
   int8, ORT-optimized fp32 / int8, static int8, OpenVINO fp32 / NNCF int8, and sentence-transformers'
   CrossEncoder on its ONNX backend with its avx512_vnni dynamic int8, run in its own venv when
   $DIALPREF_ST_PYTHON names one): single-utterance latency, one thread, each test window alone, end to end
   (tokenising included), median and p95; batch throughput, two threads, batches of 64 windows sorted by
   length and, for the default runtime, 32 at a time as a server gets them, with and without its length
   grouping; accuracy on the same windows; ratios to today's int8.
3. Training speed, pairwise against pointwise pretraining, windows per second in one run (same windows,
   same batch size, alternating twice so neither gets the warm machine).

    DIALPREF_ST_PYTHON=/work/venv-st/bin/python python benchmarks/student_speed.py [--skip-train-speed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
import _runtimes  # noqa: E402
from table1 import evaluate, keep, load_part  # noqa: E402

from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.student.export import PADDING_SLACK, OnnxStudent, export_onnx  # noqa: E402
from dialpref.student.model import Student, StudentConfig  # noqa: E402
from dialpref.student.train import TrainConfig  # noqa: E402


def latency(predictor, windows) -> dict:
    for w in windows[:20]:
        predictor.predict_proba([w])  # warm-up
    times = []
    for w in windows:
        started = time.perf_counter()
        predictor.predict_proba([w])
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 3), "p95_ms": round(float(np.percentile(times, 95)), 3)}


def throughput(predictor, windows, arriving: int | None = None) -> float:
    """Utterances per second: all windows in one call (the runtime batches them, 64 at most), or, as a
    server sees them, `arriving` at a time in test order (lengths mixed)."""
    predictor.predict_proba(windows[:64])
    step = arriving or len(windows)
    started = time.perf_counter()
    for start in range(0, len(windows), step):
        predictor.predict_proba(windows[start:start + step], batch_size=64)
    return round(len(windows) / (time.perf_counter() - started), 1)


def padding_slack_curve(predictor, windows) -> dict:
    """Server-like batches (32 arriving at once, one thread) against how much padding a batch may carry:
    the runtime's length grouping (slack 0, 2, 4 tokens) against padding every batch to its longest."""
    curve = {}
    for slack in (0, 2, 4, 10_000):
        predictor.padding_slack = slack
        curve["pad_to_longest" if slack == 10_000 else f"slack_{slack}"] = throughput(predictor, windows, 32)
    predictor.padding_slack = PADDING_SLACK
    return curve


CACHE = Path(__file__).resolve().parent / ".cache" / "student_speed"


def train_speed(task, pool, pool_s) -> dict:
    speeds = {"pairwise": [], "pointwise": []}
    for _ in range(2):
        for loss in ("pairwise", "pointwise"):
            probe = Student(task, StudentConfig(), seed=0)
            h = probe.pretrain(pool, pool_s, loss, TrainConfig(steps=15, batch_windows=32, threads=2)).history_[-1]
            speeds[loss].append(h["windows_per_second"])
    pw, pt = statistics.mean(speeds["pairwise"]), statistics.mean(speeds["pointwise"])
    return {"pairwise_windows_per_second": round(pw, 2), "pointwise_windows_per_second": round(pt, 2),
            "ratio": round(pw / pt, 3), "runs": speeds}


def trained_student(task, pool, pool_gold, test, test_gold) -> tuple[Student, dict]:
    """The pool-gold student, trained once and kept in the cache folder."""
    if (CACHE / "ceiling.json").exists():
        return Student.load(CACHE), json.loads((CACHE / "ceiling.json").read_text())
    student = Student(task, StudentConfig(), seed=0)
    history = student.fit(pool, [task.class_names[g] for g in pool_gold],
                          TrainConfig(epochs=2, batch_windows=16, learning_rate=2e-4, head_learning_rate=2e-3,
                                      threads=2)).history_[-1]
    ceiling = {**evaluate(student, test, test_gold), "gold_examples": len(pool), "train_seconds": history["seconds"]}
    student.save(CACHE)
    (CACHE / "ceiling.json").write_text(json.dumps(ceiling))
    return student, ceiling


def candidates(student, folder: Path, calibration) -> tuple[dict, dict]:
    """name -> builder(threads) of every candidate runtime; and what building them reported."""
    export_onnx(student, folder)
    notes = {"model_bytes": {"fp32": (folder / "model.onnx").stat().st_size,
                             "int8": (folder / "model.int8.onnx").stat().st_size}}
    optimized, notes["ort_fused_operators"] = _runtimes.ort_optimize(_runtimes.export_eager(student, folder), folder,
                                                                     student.model_.config)
    opt_int8 = _runtimes.dynamic_int8(optimized, folder / "ort_opt_int8.onnx")
    probe = OnnxStudent(folder, "fp32", threads=1)
    static = _runtimes.static_int8(folder, probe, calibration)
    ov_int8 = _runtimes.openvino_int8(folder, probe, calibration)
    builders = {
        "torch_fp32": lambda threads: student,
        "fp32": lambda threads: OnnxStudent(folder, "fp32", threads=threads),
        "int8": lambda threads: OnnxStudent(folder, "int8", threads=threads),
        "ort_opt_fp32": lambda threads: _runtimes.FileStudent(folder, optimized, threads),
        "ort_opt_int8": lambda threads: _runtimes.FileStudent(folder, opt_int8, threads),
        "ort_static_int8": lambda threads: _runtimes.FileStudent(folder, static, threads),
        "openvino_fp32": lambda threads: _runtimes.OpenVinoStudent(folder, str(folder / "model.onnx"), threads),
        "openvino_int8": lambda threads: _runtimes.OpenVinoStudent(folder, ov_int8, threads),
    }
    return builders, notes


def measure(name, build, test, test_gold) -> dict:
    torch.set_num_threads(1)
    single = build(1)
    entry = evaluate(single, test, test_gold)
    entry.update(latency(single, test[:300]))
    torch.set_num_threads(2)
    batch = build(2)
    entry["utterances_per_second"] = throughput(batch, test)
    if name == "int8":
        entry["arriving_32_one_thread"] = padding_slack_curve(single, test)
    return entry


def sentence_transformers_path(folder: Path, test, test_gold) -> dict | None:
    python = os.environ.get("DIALPREF_ST_PYTHON")
    if not python:
        return None
    windows = folder / "st_windows.json"
    windows.write_text(json.dumps([{"text": w.text, "context": w.context, "gold": int(g)} for w, g in zip(test, test_gold)]))
    out = folder / "st_result.json"
    run = subprocess.run([python, str(Path(__file__).resolve().parent / "_st_path.py"), str(folder), str(windows),
                          str(out)], capture_output=True, text=True)
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"}
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-train-speed", action="store_true", help="keep the training-speed figures of the last run")
    args = parser.parse_args()
    task = BUILTIN["dialogue_act"]
    torch.set_num_threads(2)
    pool_d, pool_rows = load_part("dailydialog_acts", "pool", task)
    test_d, test_rows = load_part("dailydialog_acts", "test", task)
    probe = Student(task, StudentConfig(), seed=0)
    pool, pool_s, pool_gold = keep(probe.windows(pool_d), pool_rows, task)
    test, _, test_gold = keep(probe.windows(test_d), test_rows, task)
    result: dict = {"dataset": "dailydialog_acts", "test_utterances": len(test)}
    if args.skip_train_speed:
        old = json.loads((Path(__file__).resolve().parent / "results" / "student_speed.json").read_text())
        result["pairwise_vs_pointwise_train_speed"] = old["pairwise_vs_pointwise_train_speed"]
    else:
        result["pairwise_vs_pointwise_train_speed"] = train_speed(task, pool, pool_s)
    print(result["pairwise_vs_pointwise_train_speed"], flush=True)
    student, result["gold_ceiling_pool"] = trained_student(task, pool, pool_gold, test, test_gold)
    print("gold ceiling (pool)", result["gold_ceiling_pool"], flush=True)
    folder = CACHE / "runtimes"
    folder.mkdir(parents=True, exist_ok=True)
    student.save(folder)
    builders, notes = candidates(student, folder, pool[:256])
    result.update(notes)
    for name, build in builders.items():
        result[name] = measure(name, build, test, test_gold)
        print(name, result[name], flush=True)
    st = sentence_transformers_path(folder, test, test_gold)
    if st:
        result["sentence_transformers_path"] = st
    compare(result)
    write_result("student_speed", result)


def compare(result: dict) -> None:
    """Ratios to today's int8 export and to the sentence-transformers int8 path; the aims and who meets them."""
    names = [k for k, v in result.items() if isinstance(v, dict) and "median_ms" in v]
    st = (result.get("sentence_transformers_path") or {}).get("st_onnx_int8")
    base = result["int8"]
    result["ratios_to_int8"] = {n: {"latency": round(result[n]["median_ms"] / base["median_ms"], 3),
                                    "throughput": round(result[n]["utterances_per_second"]
                                                        / base["utterances_per_second"], 3)} for n in names}
    if st and "median_ms" in st:
        result["ratios_to_sentence_transformers_int8"] = {
            n: {"latency": round(result[n]["median_ms"] / st["median_ms"], 3),
                "throughput": round(result[n]["utterances_per_second"] / st["utterances_per_second"], 3)}
            for n in names}
    fp32 = result["fp32"]["accuracy"]
    result["accuracy_cost_int8_points"] = round(100 * (fp32 - base["accuracy"]), 2)
    result["aims"] = {"median_ms": 4.0, "utterances_per_second": 400, "max_accuracy_loss_points": 0.5}
    result["meets_aims"] = [n for n in names if result[n]["median_ms"] <= 4.0
                            and result[n]["utterances_per_second"] >= 400
                            and 100 * (fp32 - result[n]["accuracy"]) <= 0.5
                            and (not st or "median_ms" not in st or result[n]["median_ms"] <= st["median_ms"])]


if __name__ == "__main__":
    main()
