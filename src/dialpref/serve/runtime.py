"""Which engine runs the student inside the server: ONNX Runtime int8 (default), fp32, or torch."""

from __future__ import annotations

from pathlib import Path

RUNTIMES = ("onnx-int8", "onnx-fp32", "torch")


def load_predictor(folder: str | Path, runtime: str = "onnx-int8", threads: int = 1):
    """A predictor with `task`, `config`, `windows` and `predict_proba`, pinned to `threads` intra-op threads."""
    folder = Path(folder)
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, not {threads}")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: pass the student folder `dialpref student train` or "
                                "`dialpref quickstart` wrote")
    if runtime == "torch":
        import torch

        from dialpref.student.model import Student

        torch.set_num_threads(threads)
        return Student.load(folder)
    from dialpref.student.export import OnnxStudent

    return OnnxStudent(folder, runtime.split("-")[1], threads=threads)
