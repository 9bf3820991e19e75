"""SFT then DPO of a causal LM with LoRA, through TRL's trainers.

A run folder holds `config.yaml` (the settings, rerunnable with `--config`), `checkpoints/`
(resumed from when a run is interrupted), `adapter/` (the LoRA weights), `merged/` (the adapter
merged into the model: a plain HF model that transformers, a DPO stage or `next predict` loads)
and `train_summary.json` (records, losses, seconds). A finished run (merged/ present) is not redone.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

from dialpref.next.config import NextTrainConfig
from dialpref.next.records import dpo_records, sft_records
from dialpref.rows import read_rows_lenient
from dialpref.proutt.samples import HistoryBudget

log = logging.getLogger("dialpref.next.train")

Stage = Literal["sft", "dpo"]


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


def _records(stage: Stage, config: NextTrainConfig) -> list[dict[str, Any]]:
    rows = synth_rows(config.data)[: config.limit]
    budget = HistoryBudget(max_chars=config.history_chars)
    if stage == "sft":
        return sft_records(rows, config.style, budget)  # type: ignore[arg-type]
    return dpo_records(rows, config.style, budget)  # type: ignore[arg-type]


def train(stage: Stage, config: NextTrainConfig) -> dict[str, Any]:
    """Fine-tune `config.model` on the run's records; returns the summary (also written to the folder)."""
    out = Path(config.output_dir)
    summary_path = out / "train_summary.json"
    if config.resume and (out / "merged" / "config.json").exists() and summary_path.exists():
        log.info("%s is finished already (merged/ present); delete it to train again", out)
        return json.loads(summary_path.read_text(encoding="utf-8"))

    from datasets import Dataset
    from peft import LoraConfig
    from transformers.trainer_utils import get_last_checkpoint

    from dialpref.proutt.causal_lm import load_causal_lm

    records = _records(stage, config)
    dataset = Dataset.from_list([{k: v for k, v in r.items() if k != "sample_id"} for r in records])
    out.mkdir(parents=True, exist_ok=True)
    config.to_yaml(out / "config.yaml")
    model, tokenizer = load_causal_lm(config.model)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    common = dict(output_dir=str(out / "checkpoints"), num_train_epochs=config.epochs,
                  learning_rate=config.lr_for(stage), per_device_train_batch_size=config.batch_size,
                  gradient_accumulation_steps=config.grad_accum, max_length=config.max_length, seed=config.seed,
                  save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, logging_steps=1,
                  lr_scheduler_type="cosine", report_to=[], use_cpu=True,
                  activation_checkpointing=False)  # TRL turns it on; on CPU it costs a fifth more time
    if stage == "sft":
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(model=model, args=SFTConfig(**common, completion_only_loss=True), train_dataset=dataset,
                             processing_class=tokenizer, peft_config=lora)
    else:
        from trl import DPOConfig, DPOTrainer

        # With a LoRA adapter the reference is the same model with the adapter switched off: no second copy.
        trainer = DPOTrainer(model=model, args=DPOConfig(**common, beta=config.beta), train_dataset=dataset,
                             processing_class=tokenizer, peft_config=lora)
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
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    summary = {"stage": stage, "style": config.style, "model": config.model, "records": len(records),
               "steps": trainer.state.global_step, "resumed_from": last, "seconds": round(seconds, 1),
               "train_loss": round(result.training_loss, 4), "first_losses": losses[:3], "last_losses": losses[-3:],
               "reward_accuracy": [e["rewards/accuracies"] for e in trainer.state.log_history
                                   if "rewards/accuracies" in e][-3:],
               "merged": str(out / "merged") if config.merge else None, "config": config.__dict__}
    summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
