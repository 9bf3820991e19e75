"""CPU serving: the student exported to ONNX, optionally int8 (dynamic quantisation), run by ONNX Runtime.

`export_onnx` writes `model.onnx` (fp32) and `model.int8.onnx` into the student's folder; `OnnxStudent`
loads either with the student's tokenizer and sidecar and offers the same `predict_proba` / `predict`,
so `StreamingClassifier` and the benchmarks use it in place of the torch model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dialpref.data.windows import Window, windows_of
from dialpref.label.tasks import TaskSpec
from dialpref.student.encoding import encode_windows, pad
from dialpref.student.model import SIDECAR, Student, StudentConfig, resolve_device
from dialpref.student.slot_heads import output_names, segments, to_changes

PADDING_SLACK = 2  # pad tokens a window may carry to share a batch (measured in benchmarks/student_speed.py)


def length_groups(lengths: Sequence[int], batch_size: int, slack: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most `batch_size` whose lengths differ by <= slack."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    for i in order:
        if groups and len(groups[-1]) < batch_size and lengths[i] - lengths[groups[-1][0]] <= slack:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def forward_ordered(model, sample: dict) -> dict:
    """The inputs in the order of `model.forward`'s parameters: the exporter names the graph's inputs in
    that order, whatever the order of the dict."""
    import inspect

    order = [name for name in inspect.signature(model.forward).parameters if name in sample]
    return {name: sample[name] for name in order}


def export_onnx(student: Student, folder: str | Path, int8: bool = True) -> dict[str, Path]:
    """Write model.onnx (and model.int8.onnx) beside a saved student; return their paths."""
    folder = Path(folder)
    if not (folder / SIDECAR).exists():
        student.save(folder)
    model = student.build().model_.eval().cpu()
    sample = forward_ordered(model, student._collate(student._tokens([Window("x", 0, "A: hello there", "B: hi")]))([0]))
    names = list(sample)  # the model's real inputs (no token_type_ids for DistilBERT or RoBERTa)
    fp32 = folder / "model.onnx"
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent branches of the HF attention code
        torch.onnx.export(model, (), str(fp32), kwargs=sample, input_names=names, output_names=["logits"],
                          opset_version=17, dynamo=False,
                          dynamic_axes={**{k: {0: "batch", 1: "tokens"} for k in names}, "logits": {0: "batch"}})
    model.to(resolve_device(student.config.device))
    paths = {"fp32": fp32}
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        paths["int8"] = folder / "model.int8.onnx"
        quantize_dynamic(str(fp32), str(paths["int8"]), weight_type=QuantType.QInt8)
    return paths


class OnnxStudent:
    """A saved student served by ONNX Runtime: `precision` 'fp32' or 'int8'."""

    def __init__(self, folder: str | Path, precision: str = "int8", threads: int = 1) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        folder = Path(folder)
        name = {"fp32": "model.onnx", "int8": "model.int8.onnx"}.get(precision)
        if name is None:
            raise ValueError(f"precision must be 'fp32' or 'int8', not {precision!r}")
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} is missing: export it with `dialpref student export {folder}`")
        sidecar = json.loads((folder / SIDECAR).read_text())
        self.task = TaskSpec.from_dict(sidecar["task"], str(folder / SIDECAR))
        self.config = StudentConfig(encoder=str(folder), **sidecar["config"])
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]  # what the graph takes, no more
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.padding_slack = PADDING_SLACK

    def windows(self, dialogues) -> list[Window]:
        return windows_of(dialogues, self.config.context_turns, self.task.roles)

    def predict_proba(self, windows: Sequence[Window], batch_size: int = 64) -> np.ndarray:
        """Class probabilities; windows are tokenised once and run in groups of near-equal token length,
        so a batch pays for almost no padding (on CPU, padding costs as much as real tokens)."""
        names = output_names(self.task)
        out = np.zeros((len(windows), len(names)), dtype=np.float32)
        if not windows:
            return out
        bounds = segments(self.task) if self.task.kind == "slots" else [(0, len(names))]
        encodings = encode_windows(self.tokenizer, windows, self.config.max_length)
        lengths = [len(e["input_ids"]) for e in encodings]
        for group in length_groups(lengths, batch_size, self.padding_slack):
            feeds = pad(encodings, group, self.input_names, self.pad_id)
            logits = self.session.run(["logits"], feeds)[0]
            for a, b in bounds:  # a softmax per slot for a slots task, over all classes otherwise
                part = np.exp(logits[:, a:b] - logits[:, a:b].max(-1, keepdims=True))
                out[np.array(group)[:, None], np.arange(a, b)[None]] = part / part.sum(-1, keepdims=True)
        return out

    def predict(self, windows: Sequence[Window], batch_size: int = 64) -> list:
        probs = self.predict_proba(windows, batch_size)
        if self.task.kind == "slots":
            return to_changes(probs, self.task)
        return [self.task.class_names[i] for i in probs.argmax(-1)]
