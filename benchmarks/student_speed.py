"""Student serving speed and training speed on this CPU.

1. A student fine-tuned on all of the pool's gold labels (DailyDialog acts, the 200 training dialogues of
   Table 1; also reported as the pool-sized gold ceiling), exported to ONNX fp32 and int8 (dynamic
   quantisation of the weights).
2. Single-utterance latency, one thread: each test window alone, end to end (tokenising included);
   median and p95 over the test windows. Batch throughput, two threads, batches of 64 length-sorted
   windows. Accuracy of each runtime on the same test windows.
3. Training speed, pairwise against pointwise pretraining, windows per second in one run (same windows,
   same batch size, alternating twice so neither gets the warm machine).

    python benchmarks/student_speed.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from table1 import evaluate, keep, load_part  # noqa: E402

from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.student.export import OnnxStudent, export_onnx  # noqa: E402
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


def throughput(predictor, windows) -> float:
    predictor.predict_proba(windows[:64])
    started = time.perf_counter()
    predictor.predict_proba(windows, batch_size=64)
    return round(len(windows) / (time.perf_counter() - started), 1)


def main() -> None:
    task = BUILTIN["dialogue_act"]
    torch.set_num_threads(2)
    pool_d, pool_rows = load_part("dailydialog_acts", "pool", task)
    test_d, test_rows = load_part("dailydialog_acts", "test", task)
    student = Student(task, StudentConfig(), seed=0)
    pool, pool_s, pool_gold = keep(student.windows(pool_d), pool_rows, task)
    test, _, test_gold = keep(student.windows(test_d), test_rows, task)
    result: dict = {"dataset": "dailydialog_acts", "test_utterances": len(test)}

    # training speed: pairwise vs pointwise, alternating
    speeds = {"pairwise": [], "pointwise": []}
    for _ in range(2):
        for loss in ("pairwise", "pointwise"):
            probe = Student(task, StudentConfig(), seed=0)
            h = probe.pretrain(pool, pool_s, loss, TrainConfig(steps=15, batch_windows=32, threads=2))
            speeds[loss].append(h["windows_per_second"])
    pw, pt = statistics.mean(speeds["pairwise"]), statistics.mean(speeds["pointwise"])
    result["pairwise_vs_pointwise_train_speed"] = {"pairwise_windows_per_second": round(pw, 2),
                                                   "pointwise_windows_per_second": round(pt, 2),
                                                   "ratio": round(pw / pt, 3), "runs": speeds}
    print(result["pairwise_vs_pointwise_train_speed"], flush=True)

    history = student.fit(pool, [task.class_names[g] for g in pool_gold],
                          TrainConfig(epochs=2, batch_windows=16, learning_rate=2e-4, head_learning_rate=2e-3,
                                      threads=2))
    result["gold_ceiling_pool"] = {**evaluate(student, test, test_gold), "gold_examples": len(pool),
                                   "train_seconds": history["seconds"]}
    print("gold ceiling (pool)", result["gold_ceiling_pool"], flush=True)
    folder = Path(tempfile.mkdtemp(prefix="dialpref-speed-"))
    student.save(folder)
    export_onnx(student, folder)
    result["model_bytes"] = {"fp32": (folder / "model.onnx").stat().st_size,
                             "int8": (folder / "model.int8.onnx").stat().st_size}
    runtimes = {"torch_fp32": student, "fp32": OnnxStudent(folder, "fp32", threads=1),
                "int8": OnnxStudent(folder, "int8", threads=1)}
    for name, predictor in runtimes.items():
        entry = evaluate(predictor, test, test_gold)
        torch.set_num_threads(1)
        entry.update(latency(predictor, test[:300]))
        torch.set_num_threads(2)
        if name != "torch_fp32":
            predictor = OnnxStudent(folder, name, threads=2)
        entry["utterances_per_second"] = throughput(predictor, test)
        result[name] = entry
        print(name, entry, flush=True)
    result["accuracy_cost_int8_points"] = round(100 * (result["fp32"]["accuracy"] - result["int8"]["accuracy"]), 2)
    result["aims"] = {"median_ms": 4.0, "utterances_per_second": 400, "max_accuracy_loss_points": 0.5}
    write_result("student_speed", result)


if __name__ == "__main__":
    main()
