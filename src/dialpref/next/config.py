"""Training settings: one dataclass that is at once the CLI flags and a YAML file.

`TrlParser` (TRL's HfArgumentParser) turns `NextTrainConfig` into `--flag` options and reads
`--config file.yaml` with flags overriding the file, so a run can be written down, shared and
rerun. Learning rates left unset take the stage's default (LoRA SFT 2e-4, DPO 5e-5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from dialpref.proutt.causal_lm import DEFAULT_CAUSAL_LM

DEFAULT_LEARNING_RATE = {"sft": 2e-4, "dpo": 5e-5}


@dataclass
class NextTrainConfig:
    data: str = field(metadata={"help": "A synthesis run folder (or its synth.jsonl) from `dialpref synth run`."})
    output_dir: str = field(default="runs/next/sft", metadata={
        "help": "Run folder: checkpoints/, adapter/, merged/ (a plain HF model) and train_summary.json."})
    model: str = field(default=DEFAULT_CAUSAL_LM, metadata={
        "help": "Causal LM to fine-tune: a packaged model (smollm2-135m), an HF folder (e.g. an SFT run's "
                "merged/ for DPO) or a hub name."})
    style: str = field(default="proutt", metadata={
        "help": "proutt (reasoning trace + four predictions), proutt_no_tree (the same without the intent "
                "tree: the ablation) or simulator (the raw next turn, SFT only)."})
    history_chars: int = field(default=1200, metadata={"help": "History budget in characters (most recent rounds)."})
    epochs: float = field(default=2.0, metadata={"help": "Passes over the records."})
    learning_rate: Optional[float] = field(default=None, metadata={"help": "Default: 2e-4 for SFT, 5e-5 for DPO."})
    batch_size: int = field(default=1, metadata={"help": "Records per device step."})
    grad_accum: int = field(default=4, metadata={"help": "Steps per optimizer update."})
    max_length: int = field(default=1024, metadata={"help": "Tokens per record (prompt + completion); longer ones "
                                                            "are cut."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    beta: float = field(default=0.1, metadata={"help": "DPO beta (strength of the pull toward the reference)."})
    seed: int = field(default=0, metadata={"help": "Seed for LoRA init and record order."})
    save_steps: int = field(default=20, metadata={"help": "Checkpoint every this many optimizer steps."})
    resume: bool = field(default=True, metadata={"help": "Resume from the last checkpoint in output_dir."})
    merge: bool = field(default=True, metadata={"help": "Also save the adapter merged into the model (merged/)."})
    limit: Optional[int] = field(default=None, metadata={"help": "Train on at most this many records."})

    def __post_init__(self) -> None:
        from dialpref.next.records import STYLES

        if self.style not in STYLES:
            raise ValueError(f"style is proutt, proutt_no_tree or simulator, not {self.style!r}")
        if self.epochs <= 0 or self.batch_size < 1 or self.grad_accum < 1 or self.max_length < 64:
            raise ValueError("epochs > 0, batch_size >= 1, grad_accum >= 1 and max_length >= 64 are needed")

    def lr_for(self, stage: str) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[stage]

    def to_yaml(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(asdict(self), sort_keys=False), encoding="utf-8")


def parse_train_args(argv: list[str], prog: str = "dialpref next train") -> NextTrainConfig:
    """Flags and an optional `--config file.yaml` (flags win) -> a config; `prog` names the command in
    argparse's messages."""
    from trl import TrlParser

    (config,) = TrlParser([NextTrainConfig], prog=prog).parse_args_and_config(argv)
    return config
