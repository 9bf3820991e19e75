"""The training loop both phases share: length-bucketed batches, AdamW, linear warm-up and decay.

Pretraining batches are whole dialogues (every window of a dialogue in the same batch, so its pairs are
formed from windows encoded once); fine-tuning batches are single windows. Either way, units of similar
token length are batched together, which cuts padding (most windows are short) and so training time.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from torch import nn


@dataclass
class TrainConfig:
    """epochs: passes over the data; steps: if set, the number of optimiser steps instead (small gold sets
    need more passes than one epoch gives). batch_windows: windows per batch (pretraining packs whole
    dialogues up to it). threads: torch CPU threads (None: torch's default). precision: "fp32", or "bf16"
    (autocast for the forward pass and loss; weights and optimiser stay fp32), for CPUs with AVX-512 BF16 or
    AMX and for GPUs; off by default, so published figures keep their precision. engine: "loop" (this
    module) or "trainer" (transformers.Trainer, student/hf_trainer.py: the same batches and optimiser, plus
    checkpoints every `checkpoint_steps` in `checkpoint_dir`, `resume` from the last, and multi-GPU under
    `accelerate launch`)."""

    epochs: float = 1.0
    steps: int | None = None
    batch_windows: int = 32
    learning_rate: float = 1e-4
    head_learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    threads: int | None = None
    precision: str = "fp32"
    engine: str = "loop"
    checkpoint_dir: str | None = None
    checkpoint_steps: int = 200
    resume: bool = False

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision is 'fp32' or 'bf16', not {self.precision!r}")
        if self.engine not in ("loop", "trainer"):
            raise ValueError(f"engine is 'loop' or 'trainer', not {self.engine!r}")
        if (self.checkpoint_dir or self.resume) and self.engine != "trainer":
            raise ValueError("checkpoints and resume come with engine='trainer'")

    def as_dict(self) -> dict:
        return asdict(self)


def length_bucketed_batches(units: Sequence[Sequence[int]], lengths: Sequence[int], batch_windows: int,
                            rng: random.Random, pool: int = 50) -> list[list[int]]:
    """Shuffle units (dialogues or single windows), sort each pool of `pool` batches by length, pack batches
    of at most `batch_windows` windows, and shuffle the batches."""
    order = list(range(len(units)))
    rng.shuffle(order)
    unit_len = [max(lengths[i] for i in units[u]) for u in range(len(units))]
    chunk = max(1, pool * max(1, batch_windows // max(1, round(sum(map(len, units)) / max(1, len(units))))))
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda u: unit_len[u])
        batch: list[int] = []
        for u in part:
            if batch and len(batch) + len(units[u]) > batch_windows:
                batches.append(batch)
                batch = []
            batch.extend(units[u])
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def forward_sorted(model: nn.Module, collate: Callable[[list[int]], dict], batch: list[int],
                   micro: int = 8) -> torch.Tensor:
    """Logits for `batch` in its order, computed in length-sorted micro-batches: a dialogue's windows differ
    in length, and padding them all to the longest wastes most of the compute on short ones."""
    lengths = collate.lengths  # type: ignore[attr-defined]
    order = sorted(range(len(batch)), key=lambda k: lengths[batch[k]])
    parts, where = [], []
    for start in range(0, len(order), micro):
        chunk = order[start:start + micro]
        parts.append(model(**collate([batch[k] for k in chunk])).logits)
        where.extend(chunk)
    logits = torch.cat(parts)
    return logits[torch.argsort(torch.tensor(where, device=logits.device))]


def finetune_schedule(n_gold: int, batch: int = 16) -> tuple[int, float]:
    """Default fine-tune steps and learning rate for n gold utterances: at least 60 steps at 2e-4.

    Three epochs of a small gold set are a handful of steps, which leaves a student at the majority
    class; 60 steps at 2e-4 (what the quick start uses) let it learn, and a larger set gets three epochs."""
    return max(60, math.ceil(3 * n_gold / batch)), 2e-4


def schedule_lambda(total: int, warmup: float) -> Callable[[int], float]:
    """Linear warm-up over the first `warmup` share of the steps, then linear decay to zero."""
    warm = max(1, int(total * warmup))
    return lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))


def total_steps(units: Sequence[Sequence[int]], lengths: Sequence[int], config: TrainConfig) -> int:
    per_epoch = len(length_bucketed_batches(units, lengths, config.batch_windows, random.Random(0)))
    return config.steps if config.steps is not None else max(1, math.ceil(per_epoch * config.epochs))


def run_training(model: nn.Module, collate: Callable[[list[int]], dict], units: Sequence[Sequence[int]],
                 lengths: Sequence[int], targets: torch.Tensor, groups: torch.Tensor, loss: nn.Module,
                 config: TrainConfig, on_step: Callable[[int, int, float], None] | None = None) -> dict:
    """Train `model` in place; return a history (loss per step, windows per second)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    device = next(model.parameters()).device  # the batches come there from the collate function
    targets, groups = targets.to(device), groups.to(device)
    total = total_steps(units, lengths, config)
    head = [p for n, p in model.named_parameters() if n.startswith(("classifier", "score"))]
    body = [p for n, p in model.named_parameters() if not n.startswith(("classifier", "score"))]
    optimizer = torch.optim.AdamW([{"params": body, "lr": config.learning_rate},
                                   {"params": head, "lr": config.head_learning_rate}],
                                  weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_lambda(total, config.warmup))
    model.train()
    losses, windows, step, started = [], 0, 0, time.perf_counter()
    while step < total:
        for batch in length_bucketed_batches(units, lengths, config.batch_windows, rng):
            if step >= total:
                break
            index = torch.tensor(batch, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                logits = forward_sorted(model, collate, batch)
                value = loss(logits.float(), targets[index], groups[index])
            optimizer.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(round(value.item(), 5))
            windows += len(batch)
            step += 1
            if on_step is not None:
                on_step(step, total, losses[-1])
    model.eval()
    seconds = time.perf_counter() - started
    return {"steps": step, "windows": windows, "seconds": round(seconds, 2),
            "windows_per_second": round(windows / seconds, 2) if seconds and windows else None, "loss": losses,
            "loss_config": {"name": type(loss).__name__, **loss.get_config_dict()}, "train_config": config.as_dict()}
