"""The path a user would take without dialpref: sentence-transformers' CrossEncoder on its ONNX backend,
quantised with `export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...)`, on the same student.

Run by student_speed.py in a separate virtual environment (sentence-transformers' ONNX extra pins an older
transformers than dialpref's), so it reads the test windows from a JSON file and writes its figures to one:

    /work/venv-st/bin/python benchmarks/_st_path.py STUDENT_DIR windows.json out.json
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def load(folder: Path, file_name: str | None, threads: int):
    import onnxruntime as ort
    from sentence_transformers import CrossEncoder

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    kwargs = {"session_options": options, "provider": "CPUExecutionProvider"}
    if file_name:
        kwargs["file_name"] = file_name
    return CrossEncoder(str(folder), backend="onnx", device="cpu", model_kwargs=kwargs)


def figures(model, pairs, gold) -> dict:
    logits = np.asarray(model.predict(pairs, batch_size=64, activation_fn=None, show_progress_bar=False))
    accuracy = float((logits.argmax(-1) == np.asarray(gold)).mean())
    for pair in pairs[:20]:
        model.predict([pair], activation_fn=None, show_progress_bar=False)
    times = []
    for pair in pairs[:300]:
        started = time.perf_counter()
        model.predict([pair], activation_fn=None, show_progress_bar=False)
        times.append((time.perf_counter() - started) * 1000)
    return {"accuracy": round(accuracy, 4), "median_ms": round(statistics.median(times), 3),
            "p95_ms": round(float(np.percentile(times, 95)), 3)}


def throughput(model, pairs) -> float:
    model.predict(pairs[:64], batch_size=64, show_progress_bar=False)
    started = time.perf_counter()
    model.predict(pairs, batch_size=64, show_progress_bar=False)
    return round(len(pairs) / (time.perf_counter() - started), 1)


def main() -> None:
    import sentence_transformers
    from sentence_transformers import export_dynamic_quantized_onnx_model

    student, windows_file, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    windows = json.loads(windows_file.read_text())
    pairs, gold = [(w["text"], w["context"]) for w in windows], [w["gold"] for w in windows]
    work = Path(tempfile.mkdtemp(prefix="dialpref-st-"))
    folder = work / "student"
    shutil.copytree(student, folder, ignore=shutil.ignore_patterns("*.onnx"))
    result = {"sentence_transformers": sentence_transformers.__version__}
    fp32 = load(folder, None, 1)  # exports model.onnx through optimum on first load
    fp32.save_pretrained(str(folder))
    export_dynamic_quantized_onnx_model(fp32, "avx512_vnni", str(folder))
    for name, file_name in (("st_onnx_fp32", None), ("st_onnx_int8", "onnx/model_qint8_avx512_vnni.onnx")):
        entry = figures(load(folder, file_name, 1), pairs, gold)
        entry["utterances_per_second"] = throughput(load(folder, file_name, 2), pairs)
        result[name] = entry
        print(name, entry, flush=True)
    out.write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
