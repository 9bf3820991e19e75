"""Training settings: dialpref's own (`NextRunConfig`: the data, the model, the record style, LoRA) beside
TRL's own `SFTConfig` / `DPOConfig`, so that every TRL flag works unchanged.

`parse_train_args` builds one `TrlParser` over both: `--flag` options and `--config file.yaml`, flags over
the file over dialpref's defaults. Those defaults (`TRAINING_DEFAULTS`, `STAGE_DEFAULTS`) differ from TRL's
only where a small model trained with LoRA on a laptop needs it; `training_args` makes the same TRL config in
Python. The run folder is TRL's `output_dir` (its checkpoints go to `output_dir/checkpoints`). Nothing pins
the device: TRL trains on a GPU when there is one (`--use_cpu` forces the CPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from dialpref.proutt.causal_lm import DEFAULT_CAUSAL_LM

Stage = Literal["sft", "dpo"]
# TRL fields whose dialpref default differs from TRL's, and why: one record at a time with accumulation (a
# 135M model on a CPU), a step checkpoint every 20 optimiser steps (a killed run loses little), a loss line
# per step, no experiment tracker, and activation checkpointing off (on a CPU it costs a fifth more time).
# bf16 follows the machine (`defaults`): TRL turns it on everywhere, and on a CPU-only machine that is an error.
TRAINING_DEFAULTS: dict[str, Any] = {
    "output_dir": "runs/next/sft", "num_train_epochs": 2.0, "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 4, "max_length": 1024, "save_strategy": "steps", "save_steps": 20,
    "save_total_limit": 2, "logging_steps": 1, "lr_scheduler_type": "cosine", "report_to": "none",
    "activation_checkpointing": False}
# LoRA learns at a higher rate than full fine-tuning; SFT learns only the completion (the trace).
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {"sft": {"learning_rate": 2e-4, "completion_only_loss": True},
                                              "dpo": {"learning_rate": 5e-5, "beta": 0.1}}


@dataclass
class NextRunConfig:
    """What dialpref adds to TRL's settings: where the records come from and how they are shaped."""

    data: str = field(metadata={"help": "A synthesis run folder (or its synth.jsonl) from `dialpref synth run`."})
    model: str = field(default=DEFAULT_CAUSAL_LM, metadata={
        "help": "Causal LM to fine-tune: a packaged model (smollm2-135m), an HF folder (e.g. an SFT run's "
                "merged/ for DPO) or a hub name."})
    style: str = field(default="proutt", metadata={
        "help": "proutt (reasoning trace + four predictions), proutt_no_tree (the same without the intent "
                "tree: the ablation) or simulator (the raw next turn, SFT only)."})
    history_chars: int = field(default=1200, metadata={"help": "History budget in characters (most recent rounds)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    resume: bool = field(default=True, metadata={"help": "Resume from the last checkpoint in output_dir."})
    merge: bool = field(default=True, metadata={"help": "Also save the adapter merged into the model (merged/)."})
    limit: Optional[int] = field(default=None, metadata={"help": "Train on at most this many records."})

    def __post_init__(self) -> None:
        from dialpref.next_utterance.records import STYLES

        if self.style not in STYLES:
            raise ValueError(f"style is proutt, proutt_no_tree or simulator, not {self.style!r}")


def config_class(stage: Stage):
    """TRL's config class of a stage."""
    if stage not in ("sft", "dpo"):
        raise ValueError(f"stage is 'sft' or 'dpo', not {stage!r}")
    from trl import DPOConfig, SFTConfig

    return SFTConfig if stage == "sft" else DPOConfig


def defaults(stage: Stage) -> dict[str, Any]:
    """dialpref's defaults for a stage's TRL config on this machine (bf16 where a GPU supports it)."""
    import torch

    bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return {**TRAINING_DEFAULTS, "bf16": bf16, **STAGE_DEFAULTS[stage]}


def training_args(stage: Stage, **overrides: Any):
    """TRL's SFTConfig / DPOConfig with dialpref's defaults, any TRL field overridable by keyword."""
    return config_class(stage)(**{**defaults(stage), **overrides})


def parse_train_args(stage: Stage, argv: list[str], prog: str | None = None):
    """Flags and an optional `--config file.yaml` (flags win, then the file, then dialpref's defaults) ->
    (NextRunConfig, TRL config); `prog` names the command in argparse's messages."""
    from trl import TrlParser

    parser = TrlParser([NextRunConfig, config_class(stage)], prog=prog or f"dialpref next train {stage}")
    parser.set_defaults_with_config(**defaults(stage))
    run, args = parser.parse_args_and_config(argv)
    return run, args


def changed_fields(stage: Stage, args) -> dict[str, Any]:
    """The TRL fields of `args` that dialpref sets or that differ from TRL's own defaults (what a YAML file
    must say for a rerun to be the same, on this machine or another)."""
    plain = config_class(stage)(output_dir=args.output_dir, bf16=False, activation_checkpointing=False).to_dict()
    ours = defaults(stage)
    return {k: v for k, v in args.to_dict().items() if plain.get(k) != v or k in ours}


def write_yaml(stage: Stage, run: NextRunConfig, args, path: Path) -> None:
    """Both halves as one YAML file that `--config` reads back to the same settings."""
    path.write_text(yaml.safe_dump({**asdict(run), **changed_fields(stage, args)}, sort_keys=False), encoding="utf-8")
