"""The student's training through `transformers.Trainer`: checkpoints, `--resume`, devices, bf16, and
`accelerate launch` / `torchrun` on many GPUs, with the same optimisation as the plain loop (train.py).

Each item Trainer sees is one of the loop's batches (`train.length_bucketed_batches`: whole dialogues
for the pairwise loss, similar lengths together), drawn for every epoch up front from the loop's seeded
generator and read in order, so the two engines take the same batches in the same order; the optimiser
(body and head learning rates), the warm-up and decay, the gradient clipping and the seeding of dropout
are the loop's too.
`compute_loss` is the student's loss (pairwise / pointwise / gold cross-entropy) on those batches. A
resumed run skips the batches its checkpoint had done (Trainer's own resume) and ends where an
uninterrupted one would.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Sequence

import torch
from torch import nn

from dialpref.student.train import TrainConfig, forward_sorted, length_bucketed_batches, schedule_lambda


def planned_batches(units: Sequence[Sequence[int]], lengths: Sequence[int], config: TrainConfig, total: int
                    ) -> list[list[int]]:
    """The loop's batches, epoch after epoch from its seeded generator, cut at `total` steps."""
    rng, batches = random.Random(config.seed), []
    while len(batches) < total:
        batches.extend(length_bucketed_batches(units, lengths, config.batch_windows, rng))
    return batches[:total]


def _trainer_class():
    from transformers import Trainer

    class StudentTrainer(Trainer):
        """Trainer with the student's loss on pre-planned batches, and the loop's optimiser and schedule."""

        def __init__(self, *args, student_loss: nn.Module, collate, targets, groups, config: TrainConfig,
                     **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.student_loss, self.collate, self.config = student_loss, collate, config
            self.targets, self.groups, self.step_losses = targets, groups, []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.state.global_step == 0 and not self.step_losses:
                torch.manual_seed(self.config.seed)  # as the loop seeds just before its first step: the same
                # dropout (a resumed run keeps the generator state its checkpoint restored)
            batch = inputs["batch"][0].tolist()
            index = torch.tensor(batch, device=self.targets.device)
            logits = forward_sorted(model, self.collate, batch)
            loss = self.student_loss(logits.float(), self.targets[index], self.groups[index])
            self.step_losses.append(round(loss.item(), 5))
            return (loss, logits) if return_outputs else loss

        def create_optimizer(self, model=None):
            if self.optimizer is None:
                named = list((model or self.model).named_parameters())
                head = [p for n, p in named if n.startswith(("classifier", "score"))]
                body = [p for n, p in named if not n.startswith(("classifier", "score"))]
                self.optimizer = torch.optim.AdamW([{"params": body, "lr": self.config.learning_rate},
                                                    {"params": head, "lr": self.config.head_learning_rate}],
                                                   weight_decay=self.config.weight_decay)
            return self.optimizer

        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                    optimizer or self.optimizer, schedule_lambda(num_training_steps, self.config.warmup))
            return self.lr_scheduler

        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

    return StudentTrainer


def _arguments(config: TrainConfig, total: int, device: torch.device):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(config.checkpoint_dir or "runs/student-checkpoints"), max_steps=total,
        per_device_train_batch_size=1, max_grad_norm=config.max_grad_norm, seed=config.seed,
        bf16=config.precision == "bf16", use_cpu=device.type == "cpu", report_to="none", disable_tqdm=True,
        remove_unused_columns=False, logging_steps=max(1, total), dataloader_num_workers=0,
        save_strategy="steps" if config.checkpoint_dir else "no", save_steps=config.checkpoint_steps,
        save_total_limit=2)


def run_with_trainer(model: nn.Module, collate: Callable[[list[int]], dict], units: Sequence[Sequence[int]],
                     lengths: Sequence[int], targets: torch.Tensor, groups: torch.Tensor, loss: nn.Module,
                     config: TrainConfig, total: int, on_step=None) -> dict:
    """Train `model` in place through Trainer; the same history as `train.run_training`."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    if config.threads:
        torch.set_num_threads(config.threads)
    device = next(model.parameters()).device
    batches = planned_batches(units, lengths, config, total)

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if on_step is not None:
                on_step(state.global_step, total, trainer.step_losses[-1] if trainer.step_losses else 0.0)

    trainer = _trainer_class()(
        model=model, args=_arguments(config, total, device), train_dataset=batches,
        data_collator=lambda items: {"batch": torch.tensor([items[0]])}, callbacks=[Progress()],
        student_loss=loss, collate=collate, targets=targets.to(device), groups=groups.to(device), config=config)
    trainer.remove_callback(PrinterCallback)  # its dict of logs would land in the CLI's JSON; on_step reports
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=bool(config.resume) or None)
    seconds = time.perf_counter() - started
    model.eval()
    windows = sum(len(b) for b in batches[len(batches) - len(trainer.step_losses):])
    return {"steps": trainer.state.global_step, "steps_this_run": len(trainer.step_losses), "windows": windows,
            "seconds": round(seconds, 2), "windows_per_second": round(windows / seconds, 2) if seconds else None,
            "loss": trainer.step_losses, "engine": "trainer", "resumed_at_step": trainer.state.global_step - len(trainer.step_losses),
            "loss_config": {"name": type(loss).__name__, **loss.get_config_dict()}, "train_config": config.as_dict()}
