"""SFT then DPO of a causal LM with LoRA, through TRL's trainers.

The settings are dialpref's `NextRunConfig` and TRL's own `SFTConfig` / `DPOConfig` (see
`dialpref.next_utterance.config`). A run folder (TRL's `output_dir`) holds `config.yaml` (both, rerunnable
with `--config`), `checkpoints/`
(resumed from when a run is interrupted), `adapter/` (the LoRA weights), `merged/` (the adapter
merged into the model: a plain HF model that transformers, a DPO stage or `next predict` loads)
and `train_summary.json` (records, losses, seconds). A finished run (merged/ present) is not redone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from dialpref.next_utterance.config import NextRunConfig, Stage, training_args, write_yaml
from dialpref.next_utterance.records import dpo_records, sft_records
from dialpref.rows import read_rows_lenient
from dialpref.proutt.samples import HistoryBudget

log = logging.getLogger("dialpref.next_utterance.train")
# the TRL settings a summary repeats (all of them are in config.yaml)
TRAINING_KEYS = ("num_train_epochs", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "max_length", "seed", "beta", "use_cpu")

def synth_rows(data: str | Path) -> list[dict[str, Any]]:
    path = Path(data)
    if path.is_dir():
        path = path / "synth.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no synthesis records (make them with `dialpref synth run`)")
    rows = read_rows_lenient(path)  # a line cut by a kill is skipped, as synthesis itself does
    if not rows:
        raise ValueError(f"{path}: no records to train on")
    return rows


def _records(stage: Stage, config: NextRunConfig) -> list[dict[str, Any]]:
    rows = synth_rows(config.data)[: config.limit]
    budget = HistoryBudget(max_chars=config.history_chars)
    if stage == "sft":
        return sft_records(rows, config.style, budget)  # type: ignore[arg-type]
    return dpo_records(rows, config.style, budget)  # type: ignore[arg-type]


def train(stage: Stage, config: NextRunConfig, args=None) -> dict[str, Any]:
    """Fine-tune `config.model` on the run's records with TRL's `args` (default: `training_args(stage)`);
    returns the summary (also written to the run folder, `args.output_dir`)."""
    args = args if args is not None else training_args(stage)
    out = Path(args.output_dir)
    summary_path = out / "train_summary.json"
    if config.resume and (out / "merged" / "config.json").exists() and summary_path.exists():
        log.info("%s is finished already (merged/ present); delete it to train again", out)
        return json.loads(summary_path.read_text(encoding="utf-8"))
    records = _records(stage, config)
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(stage, config, args, out / "config.yaml")
    trainer, tokenizer = _trainer(stage, config, dataclasses.replace(args, output_dir=str(out / "checkpoints")),
                                  records)
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(out / "checkpoints")) if config.resume and (out / "checkpoints").exists() else None
    if last:
        log.info("resuming from %s", last)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    trainer.save_model(str(out / "adapter"))
    if config.merge:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(out / "merged"))
        tokenizer.save_pretrained(str(out / "merged"))
    return _summary(stage, config, args, trainer, result, records, last, seconds, summary_path)


def _trainer(stage: Stage, config: NextRunConfig, args, records: list[dict[str, Any]]):
    """TRL's trainer for the stage, with a LoRA adapter over every linear layer."""
    from datasets import Dataset
    from peft import LoraConfig

    from dialpref.proutt.causal_lm import load_causal_lm

    dataset = Dataset.from_list([{k: v for k, v in r.items() if k != "sample_id"} for r in records])
    model, tokenizer = load_causal_lm(config.model)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    if stage == "sft":
        from trl import SFTTrainer

        return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=lora), tokenizer
    from trl import DPOTrainer

    # With a LoRA adapter the reference is the same model with the adapter switched off: no second copy.
    return DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=lora), tokenizer


def _summary(stage, config, args, trainer, result, records, last, seconds, summary_path: Path) -> dict[str, Any]:
    out = Path(args.output_dir)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    summary = {"stage": stage, "style": config.style, "model": config.model, "records": len(records),
               "steps": trainer.state.global_step, "resumed_from": last, "seconds": round(seconds, 1),
               "train_loss": round(result.training_loss, 4), "first_losses": losses[:3], "last_losses": losses[-3:],
               "reward_accuracy": [e["rewards/accuracies"] for e in trainer.state.log_history
                                   if "rewards/accuracies" in e][-3:],
               "merged": str(out / "merged") if config.merge else None, "config": dataclasses.asdict(config),
               "training_args": {k: v for k, v in args.to_dict().items() if k in TRAINING_KEYS}}
    summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
