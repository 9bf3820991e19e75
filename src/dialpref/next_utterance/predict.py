"""Predicting the next user turn with a trained (or prompted base) causal LM.

Batched generation with transformers on CPU or GPU: prompts are sorted by length so a batch pads
little, and sampling is seeded per batch so a rerun gives the same generations. ProUtt styles write
one reasoning trace with four `<predict>` lines; the simulator style samples four separate turns.

Budget forcing (as in s1, arXiv 2501.19393), for ProUtt styles: a generation that has written no
prediction within `think_budget` tokens is cut at its first `<predict>`, closed with `</think>`,
given `<predict>`, and continued for `answer_tokens` more. A small model that reasons on until the
cap otherwise ends with no prediction at all (84 % of the time for a 135M model at 256 tokens).
Opening the answer with `<think>` as well was tried and dropped: on 25 held-out samples the trained
135M model then wrote placeholder predictions at once (embedding similarity 0.055 against 0.107).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from dialpref.next_utterance.parse import MAX_PREDICTIONS, Prediction, parse_trace, parse_utterances
from dialpref.next_utterance.records import Style, prompt_for
from dialpref.proutt.causal_lm import DEFAULT_CAUSAL_LM
from dialpref.proutt.samples import HistoryBudget

Progress = Callable[[int, int], None]


@dataclass
class GenerationSettings:
    """How a trained model writes its traces; `think_budget` forces `</think><predict>` after that many tokens,
    since a small model left alone reasons until the cap and never predicts."""

    max_new_tokens: int = 256
    simulator_max_new_tokens: int = 64  # one user turn, not a trace
    batch_size: int = 16
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    history_chars: int = 1200
    think_budget: int | None = 160  # None: one pass of max_new_tokens, no forcing
    answer_tokens: int = 128  # the forced continuation after `<predict>`


THINK_CLOSE, PREDICT_OPEN = "</think>", "<predict>"


def forced_prefix(text: str) -> str:
    """What a forced continuation starts from: the reasoning so far, closed, then an open `<predict>`."""
    kept = text.split(PREDICT_OPEN, 1)[0].rstrip()
    if THINK_CLOSE not in kept:
        kept += "\n" + THINK_CLOSE
    return kept + "\n" + PREDICT_OPEN


class NextUtterancePredictor:
    """Load once, predict many: `predictor.predict([context, ...])` -> one `Prediction` per context."""

    def __init__(self, model: str = DEFAULT_CAUSAL_LM, *, style: Style = "proutt",
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

    def generate(self, prompts: Sequence[str], max_new: int, seed: int, n: int = 1) -> tuple[list[str], list[bool]]:
        """Sampled continuations of `prompts` (n each) and whether each stopped by itself (not at the cap)."""
        import torch

        encoded = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seed)
        with torch.no_grad():
            output = self.model.generate(**encoded, max_new_tokens=max_new, do_sample=True,
                                         temperature=self.settings.temperature, top_p=self.settings.top_p,
                                         num_return_sequences=n, pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        eos = self.tokenizer.eos_token_id
        return (self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True),
                [bool((row == eos).any()) for row in new_tokens])

    def predict(self, contexts: Sequence[list[dict]], ids: Sequence[str] | None = None,
                progress: Progress | None = None) -> list[Prediction]:
        ids = list(ids) if ids is not None else [str(i) for i in range(len(contexts))]
        prompts = self.prompts(contexts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: dict[int, Prediction] = {}
        simulator = self.style == "simulator"
        forcing = not simulator and self.settings.think_budget is not None
        n = MAX_PREDICTIONS if simulator else 1
        max_new = (self.settings.simulator_max_new_tokens if simulator
                   else self.settings.think_budget if forcing else self.settings.max_new_tokens)
        step = max(1, self.settings.batch_size // n)
        for start in range(0, len(order), step):
            batch = order[start:start + step]
            seed = self.settings.seed * 100_003 + start
            texts, stopped = self.generate([prompts[i] for i in batch], max_new, seed, n)
            for k, i in enumerate(batch):
                mine = texts[k * n:(k + 1) * n]
                truncated = not all(stopped[k * n:(k + 1) * n])
                results[i] = (parse_utterances(ids[i], mine, truncated=truncated) if simulator
                              else parse_trace(ids[i], mine[0], truncated=truncated))
            if forcing:
                self.force_answers(batch, prompts, results, seed + 1)
            if progress is not None:
                progress(min(start + step, len(order)), len(order))
        return [results[i] for i in range(len(prompts))]

    def force_answers(self, batch: list[int], prompts: list[str], results: dict[int, Prediction], seed: int) -> None:
        """Budget forcing: reasoning that wrote no prediction in the budget is closed and made to predict."""
        failed = [i for i in batch if results[i].failed]
        if not failed:
            return
        prefixes = {i: forced_prefix(results[i].raw) for i in failed}
        texts, stopped = self.generate([prompts[i] + prefixes[i] for i in failed], self.settings.answer_tokens, seed)
        for i, text, done in zip(failed, texts, stopped):
            forced = parse_trace(results[i].sample_id, prefixes[i] + text, truncated=not done)
            forced.budget_forced = True
            results[i] = forced


def predict_next(context: list[dict], model: str = DEFAULT_CAUSAL_LM, *, style: Style = "proutt",
                 settings: GenerationSettings = GenerationSettings()) -> Prediction:
    """One conversation in (a list of {"role", "content"}), its parsed next-turn predictions out."""
    return NextUtterancePredictor(model, style=style, settings=settings).predict([context])[0]
