"""Predicting the next user turn with a trained (or prompted base) causal LM.

Batched generation with transformers on CPU or GPU: prompts are sorted by length so a batch pads
little, and sampling is seeded per batch so a rerun gives the same generations. ProUtt styles write
one reasoning trace with four `<predict>` lines; the simulator style samples four separate turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from dialpref.next.parse import MAX_PREDICTIONS, Prediction, parse_trace, parse_utterances
from dialpref.next.records import Style, prompt_for
from dialpref.proutt.samples import HistoryBudget

Progress = Callable[[int, int], None]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    simulator_max_new_tokens: int = 64  # one user turn, not a trace
    batch_size: int = 16
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    history_chars: int = 1200


class NextUtterancePredictor:
    """Load once, predict many: `predictor.predict([context, ...])` -> one `Prediction` per context."""

    def __init__(self, model: str = "smollm2-135m", *, style: Style = "proutt",
                 settings: GenerationSettings = GenerationSettings()) -> None:
        from dialpref.proutt.causal_lm import load_causal_lm

        self.model, self.tokenizer = load_causal_lm(model)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        self.style, self.settings, self.model_name = style, settings, model

    def prompts(self, contexts: Sequence[list[dict]]) -> list[str]:
        budget = HistoryBudget(max_chars=self.settings.history_chars)
        return [self.tokenizer.apply_chat_template([{"role": "user", "content": prompt_for(c, self.style, budget)}],
                                                   tokenize=False, add_generation_prompt=True) for c in contexts]

    def predict(self, contexts: Sequence[list[dict]], ids: Sequence[str] | None = None,
                progress: Progress | None = None) -> list[Prediction]:
        import torch

        ids = list(ids) if ids is not None else [str(i) for i in range(len(contexts))]
        prompts = self.prompts(contexts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: dict[int, Prediction] = {}
        simulator = self.style == "simulator"
        n = MAX_PREDICTIONS if simulator else 1
        max_new = self.settings.simulator_max_new_tokens if simulator else self.settings.max_new_tokens
        step = max(1, self.settings.batch_size // n)
        for start in range(0, len(order), step):
            batch = order[start:start + step]
            encoded = self.tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                                     add_special_tokens=False)
            torch.manual_seed(self.settings.seed * 100_003 + start)
            with torch.no_grad():
                output = self.model.generate(**encoded, max_new_tokens=max_new, do_sample=True,
                                             temperature=self.settings.temperature, top_p=self.settings.top_p,
                                             num_return_sequences=n, pad_token_id=self.tokenizer.pad_token_id)
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            eos = self.tokenizer.eos_token_id
            stopped = [bool((row == eos).any()) for row in new_tokens]
            for k, i in enumerate(batch):
                mine = texts[k * n:(k + 1) * n]
                truncated = not all(stopped[k * n:(k + 1) * n])
                results[i] = (parse_utterances(ids[i], mine, truncated=truncated) if simulator
                              else parse_trace(ids[i], mine[0], truncated=truncated))
            if progress is not None:
                progress(min(start + step, len(order)), len(order))
        return [results[i] for i in range(len(prompts))]


def predict_next(context: list[dict], model: str = "smollm2-135m", *, style: Style = "proutt",
                 settings: GenerationSettings = GenerationSettings()) -> Prediction:
    """One conversation in (a list of {"role", "content"}), its parsed next-turn predictions out."""
    return NextUtterancePredictor(model, style=style, settings=settings).predict([context])[0]
