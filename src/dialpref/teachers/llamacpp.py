"""The embedded teacher: a GGUF model run in-process by llama-cpp-python.

Prompts are rendered with the model's own chat template (from the GGUF
metadata) or, for base models without one, a plain "User:/Assistant:" form.
JSON answers are constrained by a grammar built from the schema. Option
probabilities come from the logits after one forward pass over the prompt.
llama.cpp keeps the KV state of the previous prompt, so a prompt that shares
a prefix with the last one (same instructions, same dialogue) only evaluates
the new suffix.

Reused and streamed KV states give exactly the logits of a from-scratch pass
only if every token goes through the same CPU kernels. Two things in
llama.cpp break that, both measured on Gemma-3-270M (option probabilities off
by up to 0.11): weight repacking (a different matmul for batches than for
single rows) and batches of fewer than about 8 tokens. So repacking is off by
default (`exact=True`; 0-11 % slower here, measured) and no evaluated
batch is shorter than `min_batch` tokens: a shorter tail is widened by
re-evaluating the tokens just before it.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import math
import os
from contextlib import contextmanager, nullcontext
from typing import Any, Sequence

import numpy as np

from dialpref.teachers.base import (ChatRequest, Completion, ContinuationScores, Message, OptionScores,
                                   SequentialMixin, TeacherError)
from dialpref.teachers.context import CUT_MARKER, cut_middle, recent_start
from dialpref.teachers.fingerprint import file_sha256
from dialpref.teachers.packaged import DEFAULT_MODEL, resolve_model_path

log = logging.getLogger("dialpref.teachers.llamacpp")

PLAIN_ROLES = {"system": "", "user": "User: ", "assistant": "Assistant: "}
MIN_EXACT_BATCH = 8  # shorter batches take other CPU kernels (measured: 7 tokens differ, 8 and up match)


@contextmanager
def no_weight_repacking(llama_cpp):
    """llama-cpp-python has no flag for llama.cpp's `use_extra_bufts`; set it in the default model params."""
    low = llama_cpp.llama_cpp
    original = low.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    low.llama_model_default_params = params
    try:
        yield
    finally:
        low.llama_model_default_params = original


@contextmanager
def parallel_sequences(llama_cpp):
    """A context whose KV cache holds up to llama.cpp's maximum of parallel sequences in one unified buffer
    (so sequence 0 keeps the whole context): whole-value scoring evaluates a slot's values side by side.
    Single-sequence answers are bit-identical with and without it (checked on SmolLM2 and Gemma 3)."""
    low = llama_cpp.llama_cpp
    original = low.llama_context_default_params

    def params():
        p = original()
        p.n_seq_max = llama_cpp.llama_max_parallel_sequences()
        p.kv_unified = True
        return p

    low.llama_context_default_params = params
    try:
        yield
    finally:
        low.llama_context_default_params = original


_LOG_CALLBACK = None  # kept referenced: llama.cpp holds only a C pointer to it


def _quiet_llama_logs(llama_cpp) -> None:
    """Send llama.cpp's own log lines (e.g. `llama_kv_cache_iswa: using full-size SWA cache`, which it
    prints whatever `verbose` says) to this module's logger at debug level instead of the user's stderr."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(level, text, user_data):
        log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK = callback
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def batch_bounds(n: int, size: int, least: int) -> list[tuple[int, int]]:
    """Cut n tokens into batches of at most `size`, none under `least` (unless n itself is)."""
    starts = list(range(0, n, size)) or [0]
    if len(starts) > 1 and n - starts[-1] < least:
        starts[-1] = n - least
    return [(a, b) for a, b in zip(starts, starts[1:] + [n])]


class LlamaCppTeacher(SequentialMixin):
    backend = "llamacpp"

    def __init__(self, model: str = DEFAULT_MODEL, *, n_ctx: int = 4096, n_threads: int | None = None,
                 seed: int = 0, exact: bool = True) -> None:
        try:
            import llama_cpp
        except ImportError as err:  # pragma: no cover - depends on the extra
            raise TeacherError("the embedded teacher needs llama-cpp-python: pip install 'dialpref[llamacpp]'") \
                from err
        _quiet_llama_logs(llama_cpp)
        self.model, self.path = resolve_model_path(model)
        self.n_ctx = n_ctx
        self._sha256: str | None = None
        with no_weight_repacking(llama_cpp) if exact else nullcontext(), parallel_sequences(llama_cpp):
            threads = n_threads or max(1, os.cpu_count() or 1)
            # the prompt's threads too: llama.cpp's default for them is every core, which two teachers of
            # one thread each on two cores turn into four spinning threads (measured: 4x slower)
            self.llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, seed=seed, verbose=False,
                                       n_threads=threads, n_threads_batch=threads)
        # freed before the interpreter tears down llama_cpp's modules, or __del__ fails at exit with a traceback
        atexit.register(self.llm.close)
        self.min_batch = MIN_EXACT_BATCH if exact else 1
        self._llama_cpp = llama_cpp
        template = self.llm.metadata.get("tokenizer.chat_template")
        self._formatter = None
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatter = Jinja2ChatFormatter(template=template, eos_token=self._token_text(self.llm.token_eos()),
                                                  bos_token=self._token_text(self.llm.token_bos()),
                                                  add_generation_prompt=True)
        self._option_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}
        self._grammars: dict[tuple, Any] = {}
        self.reuse_prefix = True  # False: every prompt is evaluated from scratch (the naive cost, for benchmarks)
        self.evaluated_tokens = 0  # prompt tokens actually run through the model (after prefix reuse)

    def _token_text(self, token: int) -> str:
        return self.llm._model.token_get_text(token) if token != -1 else ""

    def identity(self) -> dict[str, Any]:
        """The weights by content (SHA-256), the llama.cpp build and the kernel setting: a changed file
        or engine never gets another's cached answers."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return {"model": self.model, "sha256": self._sha256, "llama_cpp": self._llama_cpp.__version__,
                # the kernels change the numbers, so cached answers of one must not stand in for the other
                **({"kernels": "exact"} if self.min_batch > 1 else {}),
                # truncated prompts depend on the context size; 4096 (the default) keeps older cache keys
                **({"n_ctx": self.n_ctx} if self.n_ctx != 4096 else {})}

    def fits(self, messages: Sequence[Message]) -> bool:
        """Whether the prompt for `messages` leaves room for a one-token answer in the context."""
        return len(self.tokenize(self.render(messages)[0])) < self.llm.n_ctx() - 1

    # --- prompts --------------------------------------------------------------------------
    def render(self, messages: Sequence[Message]) -> tuple[str, list[str]]:
        """The prompt text for `messages`, ending where the assistant's answer begins, and stop strings."""
        if self._formatter is not None:
            response = self._formatter(messages=list(messages))
            stop = response.stop if isinstance(response.stop, list) else [response.stop] if response.stop else []
            return response.prompt, stop
        parts = [f"{PLAIN_ROLES.get(m['role'], '')}{m['content']}" for m in messages]
        return "\n\n".join(parts) + "\n\nAssistant:", ["\nUser:", "\n\nUser"]

    def tokenize(self, prompt: str) -> list[int]:
        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        bos = self.llm.token_bos()
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]
        return tokens

    def tokenize_piece(self, text: str) -> list[int]:
        """Tokens of text that continues a prompt (no BOS, special tokens as plain text)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    # --- protocol -------------------------------------------------------------------------
    def complete(self, request: ChatRequest) -> Completion:
        prompt, stop = self.render(request.message_list)
        grammar = self._grammar(request)
        if not self.reuse_prefix:
            self.llm.n_tokens = 0
        before = self._shared_prefix(self.tokenize(prompt))
        try:
            out = self.llm.create_completion(
                prompt, max_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
                top_k=request.top_k if request.top_k is not None else 0, seed=request.seed, stop=stop,
                grammar=grammar)
        except ValueError as err:  # e.g. prompt longer than the context window
            raise TeacherError(f"{self.model}: {err}") from None
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        self.evaluated_tokens += usage.get("prompt_tokens", 0) - before
        return Completion(text=choice["text"], finish_reason=choice.get("finish_reason") or "stop",
                          prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0),
                          extra={"evaluated_prompt_tokens": usage.get("prompt_tokens", 0) - before})

    def _grammar(self, request: ChatRequest):
        """A GBNF grammar for the request's schema or choices, built once per distinct constraint."""
        if request.json_schema is None and not request.choices:
            return None
        key = (request.json_schema, request.choices)
        if key not in self._grammars:
            if request.choices:
                gbnf = "root ::= " + " | ".join(json.dumps(c) for c in request.choices)
                self._grammars[key] = self._llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
            else:
                self._grammars[key] = self._llama_cpp.LlamaGrammar.from_json_schema(request.json_schema,
                                                                                   verbose=False)
        return self._grammars[key]

    def _shared_prefix(self, tokens: list[int]) -> int:
        cached = self.llm._input_ids[: self.llm.n_tokens]
        shared = 0
        for a, b in zip(cached, tokens[:-1]):
            if a != b:
                break
            shared += 1
        return shared

    def option_token_ids(self, options: Sequence[str]) -> dict[str, list[int]]:
        """First token of each option, bare and after a space; options must not share one."""
        key = tuple(options)
        if key in self._option_ids:
            return self._option_ids[key]
        ids: dict[str, list[int]] = {}
        owner: dict[int, str] = {}
        for option in options:
            firsts = []
            for variant in (option, " " + option):
                toks = self.tokenize_piece(variant)
                if toks and toks[0] not in firsts:
                    firsts.append(toks[0])
            for tok in firsts:
                if tok in owner and owner[tok] != option:
                    raise TeacherError(f"options {owner[tok]!r} and {option!r} start with the same token "
                                       f"{self._token_text(tok)!r}; use distinct first words or letters")
                owner[tok] = option
            ids[option] = firsts
        self._option_ids[key] = ids
        return ids

    def option_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        prompt, _ = self.render(messages)
        tokens = self.tokenize(prompt)
        if len(tokens) >= self.llm.n_ctx():
            raise TeacherError(f"{self.model}: prompt of {len(tokens)} tokens exceeds the context of "
                               f"{self.llm.n_ctx()}")
        ids = self.option_token_ids(options)
        shared = self._shared_prefix(tokens) if self.reuse_prefix else 0
        self._eval_tail(tokens, shared)
        return OptionScores(self._option_logprobs_now(ids), prompt_tokens=len(tokens))

    def _eval_tail(self, tokens: list[int], start: int) -> None:
        """Evaluate tokens[start:] on top of the KV state already holding tokens[:start].

        A tail under `min_batch` tokens starts earlier (re-evaluating tokens
        already held), and long tails are cut so that no batch is short, so the
        logits equal those of evaluating `tokens` from scratch.
        """
        start = max(0, min(start, len(tokens) - self.min_batch))
        self.llm.n_tokens = start
        tail = tokens[start:]
        for a, b in batch_bounds(len(tail), self.llm.n_batch, self.min_batch):
            self.llm.eval(tail[a:b])
        self.evaluated_tokens += len(tail)

    def _option_logprobs_now(self, ids: dict[str, list[int]]) -> dict[str, float]:
        """Log-probabilities of the options at the last evaluated token."""
        # Without logits_all, llama-cpp-python keeps no `scores`; the context still holds the
        # logits of the last evaluated token, which is all one forward pass needs.
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),)).astype(np.float64)
        top = logits.max()
        log_z = top + math.log(np.exp(logits - top).sum())
        logprobs = {}
        for option, toks in ids.items():
            values = logits[toks] - log_z
            m = values.max()
            logprobs[option] = float(m + math.log(np.exp(values - m).sum()))
        return logprobs

    # --- whole-value scoring (slot tasks) -----------------------------------------------------------
    def continuation_logprobs(self, messages: Sequence[Message],
                              groups: Sequence[tuple[str, Sequence[str]]]) -> ContinuationScores:
        """log P(continuation | prompt + lead) for each group's continuations, every token of it counted.

        The prompt is evaluated once (its shared prefix reused), then each group's lead once on top of it;
        the continuations of a group are then evaluated together, one KV sequence each, in one batch
        (`_score_parallel`), and dropped again. A continuation whose tokens do not start with the lead's
        (a tokenizer merging across the boundary) is scored on its own, from the prompt (`_score_piece`).
        The numbers do not depend on what the KV state held before (tested). Batching a slot's values
        changes the kernels' rounding: against one value at a time, normalised probabilities moved by at most
        9e-5 on a WOZ prompt (75 food values), for 3.6x less time.
        """
        prompt, _ = self.render(messages)
        tokens = self.tokenize(prompt)
        if len(tokens) + 64 >= self.llm.n_ctx():
            raise TeacherError(f"{self.model}: prompt of {len(tokens)} tokens leaves no room for the answer in "
                               f"the context of {self.llm.n_ctx()}")
        shared = self._shared_prefix(tokens) if self.reuse_prefix else 0
        self._eval_tail(tokens, shared)
        out = [self._score_group(tokens, self.tokenize_piece(lead), {c: self.tokenize_piece(lead + c)
                                                                     for c in continuations})
               for lead, continuations in groups]
        self.llm.n_tokens = len(tokens)
        self._llama_cpp_memory_trim(len(tokens))
        return ContinuationScores(out, prompt_tokens=len(tokens))

    def _score_group(self, prompt: list[int], lead: list[int], pieces: dict[str, list[int]]) -> dict[str, float]:
        """One group: the lead evaluated once, then every continuation that extends it in parallel."""
        follows = {c: p[len(lead):] for c, p in pieces.items() if p[:len(lead)] == lead and len(p) > len(lead)}
        scores = {c: self._score_piece(prompt, lead, p) for c, p in pieces.items() if c not in follows}
        if follows:
            head = prompt + lead
            self.llm.n_tokens = len(prompt)
            self._eval_tail(head, len(prompt))
            first = self._log_softmax(np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),)))
            scores.update(self._score_parallel(len(head), follows, first))
            self.llm.n_tokens = len(prompt)
            self._llama_cpp_memory_trim(len(prompt))
        return {c: scores[c] for c in pieces}

    def _score_parallel(self, start: int, rests: dict[str, list[int]], first: np.ndarray) -> dict[str, float]:
        """Each continuation's tokens after the lead on its own KV sequence (a copy of the prompt + lead, held
        in sequence 0), as many per batch as fit; the first token's log-prob comes from `first`."""
        scores = {c: float(first[r[0]]) for c, r in rests.items()}
        todo = [c for c, r in rests.items() if len(r) > 1]
        limit = self._llama_cpp.llama_max_parallel_sequences() - 2  # sequence 0 and a filler
        batch = self.llm._batch.batch
        while todo:
            chunk, size = [], 0
            while todo and len(chunk) < limit and size + len(rests[todo[0]]) - 1 <= self.llm.n_batch:
                size += len(rests[todo[0]]) - 1
                chunk.append(todo.pop(0))
            batch.n_tokens = 0
            for seq, c in enumerate(chunk, 1):
                self.llm._ctx.kv_cache_seq_cp(0, seq, 0, start)
                for j, token in enumerate(rests[c][:-1]):
                    i = batch.n_tokens
                    batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, start + j, 1, True
                    batch.seq_id[i][0] = seq
                    batch.n_tokens += 1
            filler = self._fill_batch(batch, len(chunk) + 1)
            self.llm._ctx.decode(self.llm._batch)
            self.evaluated_tokens += batch.n_tokens
            if filler:
                self.llm._ctx.kv_cache_seq_rm(len(chunk) + 1, 0, -1)
            row = 0  # the batch index: logits by index (`get_logits_ith`), as a multi-sequence batch's
            for seq, c in enumerate(chunk, 1):  # outputs need not come back in batch order
                for token in rests[c][1:]:
                    logits = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(row), shape=(self.llm.n_vocab(),))
                    scores[c] += float(self._log_softmax(logits)[token])
                    row += 1
                self.llm._ctx.kv_cache_seq_rm(seq, 0, -1)
        return scores

    def _fill_batch(self, batch, seq: int) -> int:
        """Widen a batch under `min_batch` tokens with filler tokens on a sequence of their own (no logits):
        short batches take other CPU kernels, as `_eval_tail` explains."""
        filler = max(0, self.min_batch - batch.n_tokens)
        for j in range(filler):
            i = batch.n_tokens
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = self.llm.token_bos(), j, 1, False
            batch.seq_id[i][0] = seq
            batch.n_tokens += 1
        return filler

    @staticmethod
    def _log_softmax(row: np.ndarray) -> np.ndarray:
        row = row.astype(np.float64)
        top = row.max()
        return row - top - math.log(np.exp(row - top).sum())

    def _score_piece(self, prompt: list[int], lead: list[int], piece: list[int]) -> float:
        """Sum of log-probs of `piece` after the common prefix it shares with `lead`, on top of `prompt`."""
        first = 0
        while first < min(len(lead), len(piece)) and lead[first] == piece[first]:
            first += 1
        first = min(first, len(piece) - 1)  # at least one token scored
        n = len(prompt)
        start = max(0, min(n - 1, n + len(piece) - self.min_batch))  # the prompt's last token is in the batch
        batch = prompt[start:] + piece
        self._llama_cpp_memory_trim(start)
        wanted = range(n - start + first - 1, len(batch) - 1)  # the positions predicting piece[first:]
        self.llm._batch.set_batch(batch=batch, n_past=start, logits_all=False)
        for i in range(len(batch)):
            self.llm._batch.batch.logits[i] = i in wanted
        self.llm._ctx.decode(self.llm._batch)
        self.evaluated_tokens += len(batch)
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(len(wanted), self.llm.n_vocab()))
        total = sum(float(self._log_softmax(logits[k])[piece[j]]) for k, j in enumerate(range(first, len(piece))))
        self._llama_cpp_memory_trim(n)
        return total

    def _llama_cpp_memory_trim(self, keep: int) -> None:
        """Drop sequence 0's KV entries from position `keep` on (what a continuation added); `n_tokens`
        says how much of the prompt is held, which the next `eval` trusts."""
        self.llm._ctx.kv_cache_seq_rm(0, keep, -1)

    # --- causal mode --------------------------------------------------------------------------
    def stream_option_logprobs(self, head: str, segments: Sequence[str], ask: str,
                               options: Sequence[str]) -> list[OptionScores]:
        """Read `head`, then each segment once; after each, the options' log-probs for `head+segments+ask`.

        The `ask` tokens are dropped from the KV state before the next segment
        is appended, so segment i is answered from exactly the prompt
        head + segments[:i+1] + ask, while each segment is evaluated only once.
        A dialogue longer than the context follows `teachers/context.py`: the
        window restarts from the head and the most recent segments that fill
        half the room, and a segment longer than the room is cut to its head
        and tail. `OptionScores.prompt_tokens` is the prompt's length;
        `turns_dropped` / `utterance_cut` say what it left out.
        """
        ids = self.option_token_ids(options)
        ask_tokens = self.tokenize_piece(ask)
        head_tokens = self.tokenize(head)
        room = self.llm.n_ctx() - 1 - len(head_tokens) - len(ask_tokens)
        if room < 4 * self.min_batch:
            raise TeacherError(f"{self.model}: the instructions alone ({len(head_tokens)} tokens) leave no room "
                               f"in the context of {self.llm.n_ctx()}")
        marker = self.tokenize_piece(CUT_MARKER)
        pieces = [self.tokenize_piece(s) for s in segments]
        cut = [len(p) > room for p in pieces]
        pieces = [cut_middle(p, room, marker) for p in pieces]
        shared = self._shared_prefix(head_tokens) if self.reuse_prefix else 0
        if head_tokens[shared:]:
            self._eval_tail(head_tokens, shared)
        context, first = list(head_tokens), 0  # the KV state holds head + pieces[first:i]
        out = []
        for i, piece in enumerate(pieces):
            if len(context) - len(head_tokens) + len(piece) > room:
                first = recent_start([len(p) for p in pieces[:i]], min(room // 2, room - len(piece)))
                context = head_tokens + [t for p in pieces[first:i] for t in p]
                self._eval_tail(context, len(head_tokens))
            asked = context + piece + ask_tokens
            self._eval_tail(asked, len(context))  # the segment and the question in one batch
            out.append(OptionScores(self._option_logprobs_now(ids), prompt_tokens=len(asked), turns_dropped=first,
                                    utterance_cut=cut[i]))
            context = context + piece
            self.llm.n_tokens = len(context)  # forget the question; the next segment follows this one
        return out

    def fresh_option_logprobs(self, text_pieces: Sequence[str], options: Sequence[str]) -> OptionScores:
        """The same token sequence `stream_option_logprobs` builds, evaluated from scratch (for checks)."""
        ids = self.option_token_ids(options)
        tokens = self.tokenize(text_pieces[0])
        for piece in text_pieces[1:]:
            tokens += self.tokenize_piece(piece)
        self._eval_tail(tokens, 0)
        return OptionScores(self._option_logprobs_now(ids), prompt_tokens=len(tokens))
