"""The candidate CPU runtimes of student_speed.py, each built from one trained student folder.

Every candidate is a file (or an OpenVINO compiled model) behind the same tokenising front end as
`OnnxStudent`, so the figures differ only by the graph and the engine that runs it:

- onnx_fp32 / onnx_int8: today's export (`dialpref student export`), dynamic int8 weights;
- ort_opt_fp32 / ort_opt_int8: the export with eager attention, then ONNX Runtime's transformer optimizer
  (`model_type="bert"` with the encoder's real heads and hidden size; fused-operator counts kept), then
  dynamic int8 per channel (the AVX-512 VNNI preset of optimum: per-channel, no reduced range);
- ort_static_int8: static QDQ int8, activations calibrated on training windows;
- openvino_fp32 / openvino_int8: OpenVINO on the fp32 export, and NNCF post-training int8 of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dialpref.student.export import OnnxStudent


class FileStudent(OnnxStudent):
    """`OnnxStudent` on any ONNX file of the folder (an optimized or differently quantised graph)."""

    def __init__(self, folder: Path, file: Path, threads: int) -> None:
        import onnxruntime as ort

        super().__init__(folder, "fp32", threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]


class _OpenVinoSession:
    """The slice of `ort.InferenceSession` that `OnnxStudent.predict_proba` calls, over OpenVINO."""

    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def run(self, outputs, feeds):
        result = self.request.infer(feeds)
        return [result[self.compiled.output(0)]]


class OpenVinoStudent(OnnxStudent):
    def __init__(self, folder: Path, model, threads: int) -> None:
        import openvino as ov

        super().__init__(folder, "fp32", threads)
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                          "PERFORMANCE_HINT": "LATENCY"})
        self.session = _OpenVinoSession(compiled)
        self.input_names = [i.get_any_name() for i in compiled.inputs]


def export_eager(student, folder: Path) -> Path:
    """The student exported with eager attention (the pattern ORT's attention fusion recognises)."""
    import torch

    from dialpref.data.windows import Window

    student.model_.set_attn_implementation("eager")
    from dialpref.student.export import forward_ordered

    sample = forward_ordered(student.model_, student._collate(student._tokens([Window("x", 0, "A: hello there",
                                                                                       "B: hi")]))([0]))
    path = folder / "eager.onnx"
    with torch.inference_mode():
        torch.onnx.export(student.model_.eval(), (), str(path), kwargs=sample, input_names=list(sample),
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={**{k: {0: "batch", 1: "tokens"} for k in sample}, "logits": {0: "batch"}})
    student.model_.set_attn_implementation("sdpa")
    return path


def ort_optimize(source: Path, folder: Path, config) -> tuple[Path, dict]:
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1)
    path = folder / "ort_opt.onnx"
    optimized.save_model_to_file(str(path))
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    return path, fused


def dynamic_int8(source: Path, path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                     extra_options={"DefaultTensorType": 1})  # 1 = FLOAT: fused ops lack type info
    return path


class _Calibration:
    """Feeds of tokenised training windows for static quantisation's activation ranges."""

    def __init__(self, predictor: OnnxStudent, windows) -> None:
        self.feeds = []
        for start in range(0, len(windows), 16):
            batch = windows[start:start + 16]
            enc = predictor.tokenizer([w.text for w in batch], [w.context for w in batch], truncation=True,
                                      max_length=predictor.config.max_length, padding=True, return_tensors="np")
            self.feeds.append({k: enc[k].astype(np.int64) for k in predictor.input_names})
        self.feeds = iter(self.feeds)

    def get_next(self):
        return next(self.feeds, None)


def static_int8(folder: Path, predictor: OnnxStudent, windows) -> Path:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = folder / "static_pre.onnx"
    quant_pre_process(str(folder / "model.onnx"), str(prepared), skip_symbolic_shape=True)
    path = folder / "static_int8.onnx"
    quantize_static(str(prepared), str(path), _Calibration(predictor, windows), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=["MatMul", "Gemm"])
    return path


def openvino_int8(folder: Path, predictor: OnnxStudent, windows):
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(folder / "model.onnx"))
    calibration = list(_Calibration(predictor, windows).feeds)
    return nncf.quantize(model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(calibration))
